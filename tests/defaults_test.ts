/**
 * Documented defaults of the public options (`@default` tags and the `*_DEFAULTS` tables they
 * point to), checked by behaviour: a call that leaves an option out gives what the documented
 * value gives when passed explicitly, and a different value gives something else (so the option
 * is observable in the check). FP8 (lib/fp8), routing (lib/nn/moe.ts, lib/dsl/model.ts),
 * optimizer and training loop (lib/train, lib/dsl/train.ts), GRPO's objective (lib/rl/grpo.ts).
 */
import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { CpuBackend } from "../lib/backend/cpu.ts";
import { withBackend } from "../lib/backend/mod.ts";
import { RandomBatches } from "../lib/data/batches.ts";
import { fp8, model, moe } from "../lib/dsl/model.ts";
import { resolveTrain } from "../lib/dsl/train.ts";
import {
  decodeFp8,
  dequantizeArray,
  E4M3,
  E5M2,
  encodeFp8,
  fp8Matmul,
  type Fp8MatmulOptions,
  type Fp8Quantized,
  quantizeArray,
  quantizeFp8,
  roundMantissa,
} from "../lib/fp8/mod.ts";
import { DelayedScaling, dequantizeFp8 } from "../lib/fp8/scaling.ts";
import { FP8_DEFAULTS, fp8Linear, type Fp8LinearSpec } from "../lib/fp8/linear.ts";
import { Moe, MOE_V3, type MoeConfig } from "../lib/nn/moe.ts";
import { grpoObjective, type GrpoObjectiveOptions } from "../lib/rl/grpo.ts";
import * as T from "../lib/tensor/mod.ts";
import { AdamW } from "../lib/train/optim.ts";
import { cosineSchedule } from "../lib/train/schedule.ts";
import {
  type StepMetrics,
  train,
  type TrainableModel,
  type TrainerOptions,
} from "../lib/train/trainer.ts";
import { assertAllClose } from "./_utils.ts";

// ---------------------------------------------------------------------------------------------
// FP8

/** Positive operands, per-tensor scaled, K = 2048: long sums where the accumulator's width,
 * rounding and promotion interval all show in the result. */
function gemmOperands(): { a: Fp8Quantized; b: Fp8Quantized } {
  const k = 2048, rng = new T.Rng(7);
  const x = Float32Array.from({ length: 2 * k }, () => 0.5 + rng.float());
  const w = Float32Array.from({ length: k * 3 }, () => 0.5 + rng.float());
  return {
    a: quantizeFp8(x, [2, k], { granularity: "tensor" }),
    b: quantizeFp8(w, [k, 3], { granularity: "tensor" }),
  };
}

Deno.test("fp8Matmul() defaults: accumulatorBits 14, accumulatorRounding 'truncate', promotionInterval 128", () => {
  const { a, b } = gemmOperands();
  const documented: Fp8MatmulOptions = {
    accumulatorBits: 14,
    accumulatorRounding: "truncate",
    promotionInterval: 128,
  };
  const byDefault = fp8Matmul(a, b);
  deepStrictEqual(byDefault, fp8Matmul(a, b, documented));
  const others: Fp8MatmulOptions[] = [
    { accumulatorBits: 13 },
    { accumulatorBits: 15 },
    { accumulatorRounding: "nearest" },
    { promotionInterval: 64 },
    { promotionInterval: 256 },
    { promotionInterval: Infinity },
  ];
  for (const other of others) {
    notDeepStrictEqual(
      byDefault,
      fp8Matmul(a, b, { ...documented, ...other }),
      JSON.stringify(other),
    );
  }
});

Deno.test("roundMantissa() default rounding: 'nearest'", () => {
  const x = 1 + 3 * 2 ** -16; // between two 14-bit values, nearer the upper one
  strictEqual(roundMantissa(x, 14), roundMantissa(x, 14, { rounding: "nearest" }));
  strictEqual(roundMantissa(x, 14), 1 + 2 ** -14);
  strictEqual(roundMantissa(x, 14, { rounding: "truncate" }), 1);
});

Deno.test("quantizeFp8() defaults: 1×128 tiles, E4M3, amax floor 1e-4, exact scales, saturating", () => {
  const rng = new T.Rng(8);
  const x = Float32Array.from({ length: 2 * 300 }, (_, i) => (i < 300 ? 3 * rng.normal() : 0));
  const q = quantizeFp8(x, [2, 300]);
  const explicit = quantizeFp8(x, [2, 300], {
    granularity: "tile",
    tileSize: 128,
    format: E4M3,
    amaxFloor: 1e-4,
    powerOfTwo: false,
    saturate: true,
  });
  deepStrictEqual(q, explicit);
  deepStrictEqual([q.blockShape, q.scaleShape, q.format], [[1, 128], [2, 3], E4M3]);
  // amaxFloor: the all-zero second row gets scale 1e-4 / 448.
  strictEqual(q.scales[3], Math.fround(1e-4 / E4M3.max));
  // powerOfTwo false: the first tile's scale is its amax / 448, not rounded up to 2^k.
  let amax = 0;
  for (let i = 0; i < 128; i++) amax = Math.max(amax, Math.abs(x[i]));
  strictEqual(q.scales[0], Math.fround(amax / E4M3.max));
  ok(!Number.isInteger(Math.log2(q.scales[0])));
  // saturate: past ±max with a given scale, a value becomes ±448 (not NaN).
  const big = quantizeFp8(new Float32Array([1000, -1000]), [1, 2], {
    granularity: "tensor",
    scales: new Float32Array([1]),
  });
  deepStrictEqual(dequantizeFp8(big), new Float32Array([448, -448]));
});

Deno.test("DelayedScaling default historyLength: 16 calls of amax", () => {
  const scaler = new DelayedScaling({ granularity: "tensor" });
  strictEqual(scaler.historyLength, 16);
  const x = (v: number) => new Float32Array([v, 1]);
  scaler.quantize(x(100), [1, 2]); // an outlier, then 16 quiet calls
  for (let i = 0; i < 15; i++) scaler.quantize(x(1), [1, 2]);
  // call 17 still sees the outlier (16 calls of history), call 18 no longer does
  strictEqual(scaler.quantize(x(1), [1, 2]).scales[0], Math.fround(100 / 448));
  strictEqual(scaler.quantize(x(1), [1, 2]).scales[0], Math.fround(1 / 448));
});

Deno.test("encodeFp8(), quantizeArray(), dequantizeArray() defaults: saturate, scale 1", () => {
  strictEqual(decodeFp8(encodeFp8(1000, E4M3), E4M3), 448);
  strictEqual(decodeFp8(encodeFp8(-1e6, E5M2), E5M2), -57344);
  ok(Number.isNaN(decodeFp8(encodeFp8(1000, E4M3, { saturate: false }), E4M3)));
  const src = new Float32Array([0.5, -3, 1000]);
  const codes = quantizeArray(src, E4M3);
  deepStrictEqual(codes, quantizeArray(src, E4M3, { scale: 1, saturate: true }));
  deepStrictEqual(dequantizeArray(codes, E4M3), new Float32Array([0.5, -3, 448]));
  deepStrictEqual(dequantizeArray(codes, E4M3), dequantizeArray(codes, E4M3, { scale: 1 }));
});

Deno.test("fp8() defaults in the DSL: granularity 'tile', promotion 128, accumulatorBits 14", () => {
  const m = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 16, fp8: fp8() });
  deepStrictEqual(m.fp8, { granularity: "tile", promotion: 128, accumulatorBits: 14 });
});

Deno.test("fp8Linear() defaults: promotion 128, accumulatorBits 14 (FP8_DEFAULTS), by behaviour", () => {
  const rng = new T.Rng(12);
  const x = T.randn([4, 512], { rng }), w = T.randn([8, 512], { rng }); // K = 512
  const y = (spec: Fp8LinearSpec) => Array.from(fp8Linear(x, w, spec).dataSync());
  const byDefault = y({ granularity: "tile" });
  deepStrictEqual(byDefault, y({ granularity: "tile", promotion: 128, accumulatorBits: 14 }));
  deepStrictEqual([FP8_DEFAULTS.promotion, FP8_DEFAULTS.accumulatorBits], [128, 14]);
  for (const other of [{ promotion: 64 }, { accumulatorBits: 13 }, { accumulatorBits: 15 }]) {
    notDeepStrictEqual(byDefault, y({ granularity: "tile", ...other }), JSON.stringify(other));
  }
});

// ---------------------------------------------------------------------------------------------
// Routing

/** The routing values documented in MOE_DEFAULTS (lib/nn/moe.ts): V3's router, no groups. */
const DEFAULT_ROUTING: Omit<MoeConfig, "dModel" | "routedExperts" | "topK" | "expertHidden"> = {
  sharedExperts: 1,
  score: "sigmoid",
  routeScale: 1,
  groups: 1,
  topkGroup: 1,
  groupScore: "top2-sum",
  normTopK: true,
  balance: "aux-free",
  gamma: 0.001,
  biasRecenter: false,
  alpha: 0.0001,
  auxLossScope: "sequence",
  initStd: 0.02,
};

Deno.test("Moe defaults: V3's router (sigmoid, renormalised gates summing to 1, no groups, γ 0.001, α 0.0001)", () => {
  const sizes = { dModel: 8, routedExperts: 16, topK: 2, expertHidden: 4 };
  const x = T.randn([2, 5, 8], { rng: new T.Rng(9) });
  const run = (config: MoeConfig) => {
    const layer = new Moe(config, new T.Rng(10));
    const out = layer.forward(x);
    layer.updateBias();
    return {
      y: Array.from(out.y.dataSync()),
      aux: out.auxLoss?.itemSync(),
      indices: Array.from(out.indices.dataSync()),
      gates: Array.from(out.gates.dataSync()),
      bias: Array.from(layer.eScoreCorrectionBias.dataSync()),
    };
  };
  const byDefault = run(sizes);
  deepStrictEqual(byDefault, run({ ...sizes, ...DEFAULT_ROUTING }));
  const others: Partial<MoeConfig>[] = [
    { score: "softmax" },
    { routeScale: 2.5 },
    { normTopK: false },
    { groups: 4, topkGroup: 1 },
    { groups: 4, topkGroup: 1, groupScore: "max" },
    { gamma: 0.01 },
    { biasRecenter: true },
    { alpha: 0.01 },
    { auxLossScope: "batch" },
    { sharedExperts: 0 },
    { balance: "none" },
  ];
  for (const other of others) {
    notDeepStrictEqual(
      byDefault,
      run({ ...sizes, ...DEFAULT_ROUTING, ...other }),
      JSON.stringify(other),
    );
  }
  // routeScale 1 on renormalised gates: every token's gates sum to 1
  for (let t = 0; t < 10; t++) {
    assertAllClose(byDefault.gates[2 * t] + byDefault.gates[2 * t + 1], 1, { atol: 1e-5 });
  }
  // γ = 0.001 and no re-centring: each bias moved by exactly ±0.001 (or 0 at the mean load)
  ok(byDefault.bias.every((b) => Math.abs(Math.abs(b) - 0.001) < 1e-9 || b === 0));
});

Deno.test("MOE_V3: V3's 256 routed experts of width 2048, top-8, one shared expert", () => {
  const layer = new Moe({ ...MOE_V3, dModel: 1 }, new T.Rng(11));
  strictEqual(layer.experts.length, 256);
  deepStrictEqual(layer.experts[0].parameters().get("gate_proj.weight")?.shape, [2048, 1]);
  deepStrictEqual(layer.sharedExperts?.parameters().get("gate_proj.weight")?.shape, [2048, 1]);
  const out = layer.forward(T.randn([1, 2, 1], { rng: new T.Rng(12) }));
  deepStrictEqual(out.indices.shape, [1, 2, 8]);
});

Deno.test("moe() defaults in the DSL: α by balance, topkGroup = groups, widths from dModel", () => {
  const base = { vocab: "bytes" as const, dModel: 24, layers: 2, heads: 2, seqLen: 16 };
  const ffn = model({ ...base, ffn: moe({ routedExperts: 8, topK: 2 }) }).ffn;
  deepStrictEqual(ffn, {
    kind: "moe",
    routedExperts: 8,
    sharedExperts: 1,
    topK: 2,
    expertHidden: Math.round((8 / 3) * 24 / (2 + 1)), // 21
    score: "sigmoid",
    balance: "aux-free",
    gamma: 0.001,
    alpha: 0.0001,
    routeScale: 1,
    groups: 1,
    topkGroup: 1,
    firstDenseLayers: 0,
    denseHidden: Math.round((8 / 3) * 24), // 64
  });
  const alpha = (balance: "aux-free" | "aux-loss" | "none") => {
    const f = model({ ...base, ffn: moe({ routedExperts: 8, topK: 2, balance }) }).ffn;
    return f.kind === "moe" ? f.alpha : NaN;
  };
  deepStrictEqual([alpha("aux-free"), alpha("aux-loss"), alpha("none")], [0.0001, 0.01, 0]);
  const grouped = model({ ...base, ffn: moe({ routedExperts: 8, topK: 2, groups: 4 }) }).ffn;
  strictEqual(grouped.kind === "moe" && grouped.topkGroup, 4);
});

// ---------------------------------------------------------------------------------------------
// Optimizer and training loop

Deno.test("AdamW defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0.01", () => {
  const steps = (options: ConstructorParameters<typeof AdamW>[1]) => {
    const w = T.tensor([1, -2, 3], { requiresGrad: true });
    const opt = new AdamW([w], options);
    // a tiny gradient makes eps visible; a changing one makes β2 visible
    for (const g of [[1e-8, 0.5, -0.2], [3e-8, -0.1, 0.4], [-2e-8, 0.3, 0.1]]) {
      w.grad = T.tensor(g);
      opt.step();
    }
    return Array.from(w.dataSync());
  };
  const documented = {
    lr: 1e-3,
    betas: [0.9, 0.999] as [number, number],
    eps: 1e-8,
    weightDecay: 0.01,
  };
  const byDefault = steps(undefined);
  deepStrictEqual(byDefault, steps(documented));
  for (
    const other of [
      { lr: 2e-3 },
      { betas: [0.8, 0.999] as [number, number] },
      { betas: [0.9, 0.95] as [number, number] },
      { eps: 1e-6 },
      { weightDecay: 0.1 },
    ]
  ) {
    notDeepStrictEqual(byDefault, steps({ ...documented, ...other }), JSON.stringify(other));
  }
});

Deno.test("cosineSchedule() defaults: minLr lr / 10, no warmup", () => {
  const o = { lr: 2, totalSteps: 10 };
  strictEqual(cosineSchedule(0, o), 2); // no warmup: the peak at step 0
  strictEqual(cosineSchedule(10, o), 0.2);
  strictEqual(cosineSchedule(5, o), cosineSchedule(5, { ...o, minLr: 0.2, warmup: 0 }));
});

const backend = new CpuBackend();
const TOKENS = Int32Array.from({ length: 300 }, (_, i) => (i * i + 7 * i) % 32);

/** A bigram model whose gradients are large enough for clipping at norm 1 to bite. */
function bigram(): TrainableModel & { table: T.Tensor } {
  return withBackend(backend, () => {
    const table = T.randn([32, 32], { rng: new T.Rng(13), std: 1, requiresGrad: true });
    return {
      table,
      parameters: () => new Map([["lm.weight", table]]),
      loss: (inputs, targets) => ({
        loss: T.crossEntropy(T.mul(T.embedding(table, inputs), 4), targets),
        logs: {},
      }),
    };
  });
}

async function trainRun(
  options: Partial<TrainerOptions>,
): Promise<{ weights: number[]; metrics: StepMetrics[] }> {
  const m = bigram(), metrics: StepMetrics[] = [];
  await train(m, () => new RandomBatches(TOKENS, { batch: 2, seqLen: 8, seed: 1 }), backend, {
    steps: 4,
    lr: 0.05,
    ...options,
    onStep: (s) => void metrics.push(s),
  });
  return { weights: Array.from(m.table.dataSync()), metrics };
}

Deno.test("train() defaults: minLr lr/10, warmup 0, weightDecay 0.1, gradClip 1, accumulate 1, betas [0.9, 0.95]", async () => {
  const documented: Partial<TrainerOptions> = {
    minLr: 0.005,
    warmup: 0,
    weightDecay: 0.1,
    gradClip: 1,
    accumulate: 1,
    betas: [0.9, 0.95],
    checkpointEvery: 0,
  };
  const byDefault = await trainRun({});
  deepStrictEqual(byDefault.weights, (await trainRun(documented)).weights);
  ok(byDefault.metrics.some((s) => s.gradNorm > 1), "clipping at 1 is active");
  deepStrictEqual(
    byDefault.metrics.map((s) => s.lr),
    [0, 1, 2, 3].map((s) => cosineSchedule(s, { lr: 0.05, minLr: 0.005, totalSteps: 4 })),
  );
  strictEqual(byDefault.metrics[0].tokens, 2 * 8); // one micro-batch per step
  const others: Partial<TrainerOptions>[] = [
    { minLr: 0.025 },
    { warmup: 2 },
    { weightDecay: 0 },
    { gradClip: 0 },
    { accumulate: 2 },
    { betas: [0.9, 0.999] },
  ];
  for (const other of others) {
    const run = await trainRun({ ...documented, ...other });
    notDeepStrictEqual(byDefault.weights, run.weights, JSON.stringify(other));
  }
});

Deno.test("train() default checkpointEvery 0: a checkpoint only at the end", async () => {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "defaults_" });
  const exists = async (path: string) => {
    try {
      await Deno.stat(path);
      return true;
    } catch {
      return false;
    }
  };
  try {
    const seen: boolean[] = [];
    for (const [name, every] of [["default", undefined], ["every", 1]] as const) {
      const ckpt = `${dir}/${name}`;
      const m = bigram();
      await train(m, () => new RandomBatches(TOKENS, { batch: 2, seqLen: 8, seed: 1 }), backend, {
        steps: 3,
        lr: 0.05,
        checkpointEvery: every,
        checkpointDir: ckpt,
        onStep: async (s) => void (s.step === 2 && seen.push(await exists(ckpt))),
      });
      ok(await exists(ckpt), `${name}: the final checkpoint`);
    }
    deepStrictEqual(seen, [false, true]); // after step 2 of 3: none by default, one with 1
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveTrain() defaults: minLr lr/10, warmup 0, weightDecay 0.1, gradClip 1, accumulate 1, evalEvery ⌈steps/10⌉, checkpointEvery 0, no λ schedule", () => {
  const c = resolveTrain({ tokens: 8 * 16 * 95, batch: 8, lr: 0.01 }, { seqLen: 16 });
  deepStrictEqual(
    [c.minLr, c.warmup, c.weightDecay, c.gradClip, c.accumulate, c.evalEvery, c.checkpointEvery],
    [0.001, 0, 0.1, 1, 1, 10, 0],
  );
  strictEqual(c.steps, 95);
  strictEqual(c.mtpLambdaSchedule, null);
});

// ---------------------------------------------------------------------------------------------
// GRPO

Deno.test("grpoObjective() defaults: clipEps 0.2, beta 0.04", () => {
  const objective = (options?: GrpoObjectiveOptions) =>
    grpoObjective({
      logp: T.tensor([[-1.0, -0.5]]), // ρ = e^0.5 ≈ 1.65 and e^-0.7 ≈ 0.50: both clipped at 0.2
      logpOld: T.tensor([[-1.5, 0.2]]),
      logpRef: T.tensor([[-1.2, -0.9]]),
      advantages: T.tensor([[1]]),
      mask: T.tensor([[1, 1]]),
      invLengths: T.tensor([[0.5]]),
    }, options).objective.itemSync();
  const byDefault = objective();
  strictEqual(byDefault, objective({ clipEps: 0.2, beta: 0.04 }));
  for (const other of [{ clipEps: 0.3 }, { beta: 0.1 }]) {
    ok(byDefault !== objective({ clipEps: 0.2, beta: 0.04, ...other }), JSON.stringify(other));
  }
});
