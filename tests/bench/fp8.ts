/**
 * FP8 figures for `deno task bench`: the FP8 Backend operations on each backend — quantise
 * (amax, scales and E4M3 codes, 1×128 tiles) plus dequantise, and the simulated GEMM with a
 * 14-bit accumulator promoted every 128 — against the cpu backend (the `lib/fp8` reference);
 * FP8 training throughput of a small decoder against FP32 on wasm and WebGPU; the weight memory;
 * and the GEMM error table of DeepSeek-V3 §3.3.2 — relative error of an FP8 GEMM against FP32 on
 * the same (dequantised) operands as K grows, with the 14-bit accumulator promoted to FP32 every
 * 128 elements of K, and never promoted.
 *
 * @module
 */

import { fp8Matmul } from "../../lib/fp8/gemm.ts";
import { dequantizeFp8, fp8Footprint, quantizeFp8 } from "../../lib/fp8/scaling.ts";
import type { Backend, Fp8BlockSpec } from "../../lib/backend/backend.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import { RandomBatches } from "../../lib/data/batches.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder } from "../../lib/models/decoder.ts";
import { loadTokens } from "../../lib/runner/run.ts";
import { Rng } from "../../lib/tensor/random.ts";
import { train } from "../../lib/train/trainer.ts";
import { bestMs, type Impl, printComparison } from "./_common.ts";
import { TINY_GPT, trainTokensPerSecAsync } from "./tiny_gpt.ts";

/** The suite's small dense model (experiments/fp8.ts), as a variant of the bench model. */
const SMALL: ModelConfig = {
  ...TINY_GPT,
  dModel: 64,
  layers: 2,
  seqLen: 64,
  ffn: { kind: "dense", hidden: 171 },
};

/** FP8 with 1×128 activation tiles and 128×128 weight blocks (V3 §3.3). */
const FP8_TILE_BLOCK = { granularity: "tile", promotion: 128, accumulatorBits: 14 } as const;

function randomData(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** Quantise then dequantise `[rows, cols]` on `backend` and wait for the values. */
async function roundTrip(backend: Backend, x: Float32Array, spec: Fp8BlockSpec): Promise<void> {
  const input = backend.upload("f32", x);
  const q = backend.fp8Quantize(input, {
    ...spec,
    saturate: true,
    amaxFloor: 1e-4,
    powerOfTwo: false,
  });
  const y = backend.fp8Dequantize(q.codes, q.scales, spec);
  await backend.read(backend.reduce("sum", y, 1, spec.rows * spec.cols, 1)); // one small read
  for (const s of [input, q.codes, q.scales, y]) backend.release(s);
}

/** The simulated FP8 GEMM `[m, k] · [k, n]` (tiles · blocks) on `backend`, waited for. */
async function simulatedGemm(backend: Backend, m: number, k: number, n: number): Promise<void> {
  const a = { rows: m, cols: k, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
  const b = { rows: k, cols: n, granularity: "block", tileSize: 128, format: "e4m3" } as const;
  const qs = { saturate: true, amaxFloor: 1e-4, powerOfTwo: false };
  const qa = backend.fp8Quantize(backend.upload("f32", randomData(m * k, 2)), { ...a, ...qs });
  const qb = backend.fp8Quantize(backend.upload("f32", randomData(k * n, 3)), { ...b, ...qs });
  const c = backend.fp8Matmul(qa, qb, {
    m,
    n,
    k,
    a,
    b,
    accumulatorBits: 14,
    accumulatorRounding: "truncate",
    promotionInterval: 128,
  });
  await backend.read(backend.reduce("sum", c, 1, m * n, 1));
}

/** Print the FP8 section (Markdown). */
export async function fp8Bench(cpu: Backend, wasm: Backend, gpu: Backend | null): Promise<void> {
  const [rows, cols] = [1024, 4096];
  const x = randomData(rows * cols, 1);
  const tiles = { rows, cols, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
  const impls = (run: (b: Backend) => Promise<void>, reps: number): Impl[] => [
    ["cpu (lib/fp8 reference)", null, () => bestMs(() => run(cpu), reps)],
    ["wasm", null, () => bestMs(() => run(wasm), reps)],
    ["webgpu", gpu ? null : "no adapter", () => bestMs(() => run(gpu as Backend), reps)],
  ];
  console.log("\n## FP8 Backend operations (E4M3), against the cpu reference\n");
  console.log("| op | backend | ms | ratio |");
  console.log("|---|---|---:|---:|");
  await printComparison(
    `quantise + dequantise [${rows}, ${cols}], 1×128 tiles (incl. upload)`,
    impls((b) => roundTrip(b, x, tiles), 3),
  );
  await printComparison(
    "simulated GEMM [64, 1024] · [1024, 64], 14-bit accumulator promoted every 128",
    impls((b) => simulatedGemm(b, 64, 1024, 64), 3),
  );

  // FP8 training throughput: the suite's small model, FP32 against FP8 (tile/block).
  const fp8Small: ModelConfig = { ...SMALL, fp8: FP8_TILE_BLOCK };
  console.log("\n## FP8 training throughput (d 64, 2 layers, T 64), tokens/s\n");
  console.log("| backend | FP32 | FP8 | FP8 / FP32 |");
  console.log("|---|---:|---:|---:|");
  for (const [name, backend] of [["wasm", wasm], ["webgpu", gpu]] as const) {
    if (backend === null) {
      console.log(`| ${name} | not available: no adapter | | |`);
      continue;
    }
    const fp32 = await trainTokensPerSecAsync(backend, SMALL, 5);
    const fp8 = await trainTokensPerSecAsync(backend, fp8Small, 5);
    console.log(
      `| ${name} | ${fp32.toFixed(0)} | ${fp8.toFixed(0)} | ${(fp8 / fp32).toFixed(2)}× |`,
    );
  }

  // Memory of the Linear weights of the reference tiny GPT (docs/design.md §6) in FP8 + block scales.
  const shapes: [number, number][] = [];
  for (let l = 0; l < 4; l++) {
    shapes.push([256, 256], [256, 256], [256, 256], [256, 256], [683, 256], [683, 256], [256, 683]);
  }
  let fp8Bytes = 0, fp32Bytes = 0;
  for (const shape of shapes) {
    const f = fp8Footprint(shape, { granularity: "block" });
    fp8Bytes += f.totalBytes;
    fp32Bytes += f.fp32Bytes;
  }
  console.log(
    "\n## FP8 weight memory: Linear weights of the reference tiny GPT, 128×128 block scales\n",
  );
  console.log("| FP32 bytes | FP8 values + scales | ratio |");
  console.log("|---:|---:|---:|");
  console.log(`| ${fp32Bytes} | ${fp8Bytes} | ${(fp8Bytes / fp32Bytes).toFixed(3)} |`);

  console.log("\n## FP8 GEMM relative error vs FP32 on the same operands (C = A·B, M = N = 4)\n");
  console.log("| K | promoted every 128 | never promoted | ratio |");
  console.log("|---:|---:|---:|---:|");
  for (const k of [128, 512, 2048, 8192, 16384]) {
    const a = quantizeFp8(randomData(4 * k, k), [4, k], { granularity: "tensor" });
    const b = quantizeFp8(randomData(k * 4, k + 1), [k, 4], { granularity: "tensor" });
    const da = dequantizeFp8(a), db = dequantizeFp8(b);
    const exact = new Float64Array(16);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += da[i * k + p] * db[p * 4 + j];
        exact[i * 4 + j] = s;
      }
    }
    const err = (c: Float32Array) => {
      let num = 0, den = 0;
      for (let i = 0; i < 16; i++) {
        num += (c[i] - exact[i]) ** 2;
        den += exact[i] ** 2;
      }
      return Math.sqrt(num / den);
    };
    const promoted = err(fp8Matmul(a, b, { promotionInterval: 128 }));
    const never = err(fp8Matmul(a, b, { promotionInterval: Infinity }));
    console.log(
      `| ${k} | ${promoted.toExponential(2)} | ${never.toExponential(2)} | ${
        (never / promoted).toFixed(0)
      }× |`,
    );
  }
}

/** Train the suite's small dense model in FP32 and in FP8 (tile/block) and print the gap. */
export async function fp8TrainingGap(backend: Backend, steps = 60): Promise<void> {
  const tokens = await loadTokens({ corpus: "brown", tokenizer: "bytes" });

  const finalLoss = async (config: ModelConfig) => {
    const model = withBackend(backend, () => new Decoder(config, new Rng(0)));
    const losses: number[] = [];
    await train(
      model,
      () => new RandomBatches(tokens.train, { batch: 16, seqLen: 64, seed: 1 }),
      backend,
      {
        steps,
        lr: 3e-3,
        warmup: 5,
        onStep: (m) => void losses.push(m.loss),
      },
    );
    const tail = losses.slice(-10);
    return tail.reduce((a, b) => a + b, 0) / tail.length;
  };
  const fp32 = await finalLoss(SMALL);
  const fp8 = await finalLoss({ ...SMALL, fp8: FP8_TILE_BLOCK });
  console.log(`\n## FP8 training (tile/block scales, ${steps} steps, mean loss of the last 10)\n`);
  console.log("| FP32 | FP8 | relative gap | V3's claim |");
  console.log("|---:|---:|---:|---|");
  console.log(
    `| ${fp32.toFixed(4)} | ${fp8.toFixed(4)} | ${
      ((100 * (fp8 - fp32)) / fp32).toFixed(3)
    }% | < 0.25% |`,
  );
}
