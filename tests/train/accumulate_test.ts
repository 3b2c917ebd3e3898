/**
 * Gradient accumulation in `train()` (lib/train/trainer.ts): `accumulate: k` backpropagates
 * `loss / k` per micro-batch, so the accumulated gradient is the mean of the micro-batch
 * gradients — the gradient of one batch `k` times as large — and the logged loss their mean.
 *
 * AdamW's update is invariant to the scale of the gradient (`m̂ / √v̂`, up to `ε`), so a loss
 * not divided by `k` would barely move the weights; the logged gradient norm (taken before
 * clipping) is what shows it.
 */
import { strictEqual } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import { RandomBatches } from "../../lib/data/batches.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { Rng, type Tensor, tensor } from "../../lib/tensor/mod.ts";
import { type StepMetrics, train, type TrainerOptions } from "../../lib/train/trainer.ts";
import { assertAllClose } from "../_utils.ts";

const backend = new CpuBackend();
const SEQ = 8;
const CONFIG = tinyConfig({ vocab: 32, seqLen: SEQ, mtp: { depth: 1, lambda: 0.3 } });
const OPTIONS: TrainerOptions = { steps: 1, lr: 0.01, gradClip: 0, weightDecay: 0.1 };

function newModel(): Decoder {
  return withBackend(backend, () => new Decoder(CONFIG, new Rng(3)));
}

/** Train one step on the batches of `tokens` (stream seed 5) and return its metrics. */
async function oneStep(
  model: Decoder,
  tokens: Int32Array,
  accumulate: number,
): Promise<StepMetrics> {
  let metrics: StepMetrics | null = null;
  await train(model, () => new RandomBatches(tokens, { batch: 2, seqLen: SEQ, seed: 5 }), backend, {
    ...OPTIONS,
    accumulate,
    onStep: (m) => void (metrics = m),
  });
  if (metrics === null) throw new Error("train() logged no step");
  return metrics;
}

function parameterValues(model: Decoder): number[][] {
  return [...model.parameters().values()].map((p) => Array.from(p.dataSync()));
}

Deno.test("train({ accumulate: 2 }) on two identical micro-batches: the loss, gradient norm and update of one", async () => {
  // SEQ + 1 tokens: the only window starts at 0, so every micro-batch is the same.
  const tokens = Int32Array.from({ length: SEQ + 1 }, (_, i) => (7 * i + 3) % 32);
  const single = newModel(), double = newModel();
  const one = await oneStep(single, tokens, 1);
  const two = await oneStep(double, tokens, 2);
  strictEqual(two.tokens, 2 * one.tokens);
  assertAllClose(two.loss, one.loss, { atol: 0, rtol: 1e-6, message: "loss" });
  assertAllClose(two.mainLoss, one.mainLoss, { atol: 0, rtol: 1e-6, message: "mainLoss" });
  assertAllClose(two.gradNorm, one.gradNorm, { atol: 0, rtol: 1e-5, message: "gradient norm" });
  const after = parameterValues(double);
  parameterValues(single).forEach((want, i) =>
    assertAllClose(after[i], want, { atol: 1e-7, rtol: 1e-5, message: `parameter ${i}` })
  );
});

Deno.test("train({ accumulate: 2 }) on two different micro-batches: the mean loss and the norm of the mean gradient", async () => {
  const tokens = Int32Array.from({ length: 200 }, (_, i) => (i * i + 3 * i) % 32);
  const metrics = await oneStep(newModel(), tokens, 2);
  // By hand: the same two batches (same stream seed), one backward each, gradients averaged.
  const stream = new RandomBatches(tokens, { batch: 2, seqLen: SEQ, seed: 5 });
  const reference = newModel();
  const params = [...reference.parameters().values()].filter((p) => p.requiresGrad);
  const losses: number[] = [];
  const grads: Float64Array[] = params.map((p) => new Float64Array(p.size));
  for (let micro = 0; micro < 2; micro++) {
    const { inputs, targets, shape } = stream.next();
    withBackend(backend, () => {
      const out = reference.loss(
        tensor(inputs, { dtype: "i32", shape }),
        tensor(targets, { dtype: "i32", shape }),
      );
      out.loss.backward();
      losses.push(out.loss.itemSync());
    });
    params.forEach((p, i) => {
      const g = (p.grad as Tensor).dataSync();
      for (let j = 0; j < g.length; j++) grads[i][j] += g[j] / 2;
      p.grad = null;
    });
  }
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  assertAllClose(metrics.loss, (losses[0] + losses[1]) / 2, { atol: 0, rtol: 1e-6 });
  assertAllClose(metrics.gradNorm, norm, { atol: 0, rtol: 1e-5, message: "‖(g₁ + g₂) / 2‖" });
});
