/**
 * FP8 figures for `deno task bench`: quantise throughput (1×128 tiles, E4M3) of the TypeScript
 * codec and the WGSL kernel, and the GEMM error table of DeepSeek-V3 §3.3.2 — relative error of
 * an FP8 GEMM against FP32 on the same (dequantised) operands as K grows, with the 14-bit
 * accumulator promoted to FP32 every 128 elements of K, and never promoted.
 *
 * @module
 */

import { E4M3 } from "../../lib/fp8/format.ts";
import { fp8Matmul } from "../../lib/fp8/gemm.ts";
import { dequantizeFp8, fp8Footprint, quantizeFp8 } from "../../lib/fp8/scaling.ts";
import { GpuFp8Quantizer } from "../../lib/fp8/wgsl.ts";
import type { Backend } from "../../lib/backend/backend.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import { RandomBatches } from "../../lib/data/batches.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder } from "../../lib/models/decoder.ts";
import { loadTokens } from "../../lib/runner/run.ts";
import { Rng } from "../../lib/tensor/random.ts";
import { train } from "../../lib/train/trainer.ts";
import { TINY_GPT } from "./tiny_gpt.ts";

function randomData(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** Print the FP8 section (Markdown). */
export async function fp8Bench(): Promise<void> {
  console.log("\n## FP8 (E4M3) quantise throughput, 1×128 tiles, [1024, 4096]\n");
  console.log("| impl | ms | Melem/s |");
  console.log("|---|---:|---:|");
  const [rows, cols] = [1024, 4096];
  const x = randomData(rows * cols, 1);
  let t0 = performance.now();
  const q = quantizeFp8(x, [rows, cols], { granularity: "tile" });
  let ms = performance.now() - t0;
  console.log(
    `| TypeScript codec (lib/fp8) | ${ms.toFixed(0)} | ${(rows * cols / ms / 1e3).toFixed(1)} |`,
  );
  try {
    const gpu = await GpuFp8Quantizer.create();
    await gpu.quantize(x.subarray(0, cols), [1, cols], q.scales.subarray(0, cols / 128), {
      format: E4M3,
    });
    t0 = performance.now();
    await gpu.quantize(x, [rows, cols], q.scales, { format: E4M3 });
    ms = performance.now() - t0;
    console.log(
      `| WGSL kernel (${gpu.description}, incl. upload and read-back) | ${ms.toFixed(0)} | ${
        (rows * cols / ms / 1e3).toFixed(1)
      } |`,
    );
  } catch (e) {
    console.log(`| WGSL kernel | no adapter: ${(e as Error).message} | |`);
  }

  // Memory of the Linear weights of the reference tiny GPT (DESIGN.md §6) in FP8 + block scales.
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
  // The suite's small dense model (experiments/fp8.ts), as a variant of the bench model.
  const base: ModelConfig = {
    ...TINY_GPT,
    dModel: 64,
    layers: 2,
    seqLen: 64,
    ffn: { kind: "dense", hidden: 171 },
  };

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
  const fp32 = await finalLoss(base);
  const fp8 = await finalLoss({
    ...base,
    fp8: { granularity: "tile", promotion: 128, accumulatorBits: 14 },
  });
  console.log(`\n## FP8 training (tile/block scales, ${steps} steps, mean loss of the last 10)\n`);
  console.log("| FP32 | FP8 | relative gap | V3's claim |");
  console.log("|---:|---:|---:|---|");
  console.log(
    `| ${fp32.toFixed(4)} | ${fp8.toFixed(4)} | ${
      ((100 * (fp8 - fp32)) / fp32).toFixed(3)
    }% | < 0.25% |`,
  );
}
