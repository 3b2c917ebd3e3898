/**
 * Weight decay in the groups the library builds (lib/train/optim.ts `decayGroups`, used by
 * `train()`): with zero gradients an AdamW step only decays, `θ ← θ (1 − lr λ)`, so after one
 * step every RMSNorm gain and the embedding must be unchanged and every other parameter scaled
 * by `1 − lr λ`. Norm gains are found by walking the model for {@linkcode RmsNorm} objects, not
 * by their names, so the check does not restate the library's name rule.
 */
import { strictEqual } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import { RandomBatches } from "../../lib/data/batches.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { RmsNorm } from "../../lib/nn/norm.ts";
import { add, mul, Rng, sum, type Tensor, zeros } from "../../lib/tensor/mod.ts";
import { AdamW, decayGroups } from "../../lib/train/optim.ts";
import { train } from "../../lib/train/trainer.ts";
import { assertAllClose } from "../_utils.ts";

const backend = new CpuBackend();

/** MLA with query compression, MoE and MTP: every kind of RMSNorm the decoder has. */
const CONFIG: ModelConfig = tinyConfig({
  attention: { kind: "mla", kvLatentRank: 6, queryLatentRank: 8, ropeHeadDim: 4 },
  ffn: {
    kind: "moe",
    routedExperts: 4,
    sharedExperts: 1,
    topK: 2,
    expertHidden: 8,
    score: "sigmoid",
    balance: "aux-free",
    gamma: 0.001,
    alpha: 0.001,
    routeScale: 2.5,
    groups: 1,
    topkGroup: 1,
    firstDenseLayers: 1,
    denseHidden: 24,
  },
  mtp: { depth: 1, lambda: 0.3 },
});

/** The gains of every RmsNorm reachable from `root` through its fields and arrays. */
function normGains(root: object): Set<Tensor> {
  const out = new Set<Tensor>(), seen = new Set<object>();
  const visit = (value: unknown): void => {
    if (typeof value !== "object" || value === null || seen.has(value)) return;
    seen.add(value);
    if (value instanceof RmsNorm) out.add(value.weight);
    for (const child of Array.isArray(value) ? value : Object.values(value)) visit(child);
  };
  visit(root);
  return out;
}

/** Parameters with a snapshot of their values. */
function snapshot(model: Decoder): [string, Tensor, number[]][] {
  return [...model.parameters()].filter(([, p]) => p.requiresGrad).map((
    [name, p],
  ) => [name, p, Array.from(p.dataSync())]);
}

/** After one decay-only step at `lr`, λ = 0.1: norms and embedding kept, the rest decayed. */
function assertDecayedOnce(model: Decoder, before: [string, Tensor, number[]][], lr: number): void {
  const kept = normGains(model);
  // RMSNorms: input and post-attention per block (3 with MTP's), model.norm, MLA's kv_a and
  // q_a per block (2 + MTP's), MTP's enorm, hnorm and shared_head.norm.
  strictEqual(kept.size, 3 * 2 + 1 + 3 * 2 + 3);
  kept.add(model.embedTokens);
  for (const [name, p, values] of before) {
    const factor = kept.has(p) ? 1 : 1 - lr * 0.1;
    assertAllClose(p, values.map((v) => v * factor), { atol: 1e-7, rtol: 1e-6, message: name });
  }
}

Deno.test("AdamW on decayGroups(): no decay for RMSNorm gains and the embedding, λ for the rest", () => {
  withBackend(backend, () => {
    const model = new Decoder(CONFIG, new Rng(0));
    const before = snapshot(model);
    const optimizer = new AdamW(decayGroups(model.parameters(), 0.1), {
      lr: 0.5,
      weightDecay: 0.1,
    });
    for (const [, p] of before) p.grad = zeros(p.shape); // a decay-only step
    optimizer.step();
    assertDecayedOnce(model, before, 0.5);
  });
});

Deno.test("train() builds its AdamW groups with no decay for RMSNorm gains and the embedding", async () => {
  const model = withBackend(backend, () => new Decoder(CONFIG, new Rng(1)));
  const before = snapshot(model);
  // A loss with zero gradient everywhere: Σ 0 · θ over the trainable parameters.
  const zeroLoss = {
    parameters: () => model.parameters(),
    loss: () => ({
      loss: before.reduce((acc: Tensor, [, p]) => add(acc, sum(mul(p, 0))), zeros([])),
      logs: {},
    }),
  };
  const tokens = Int32Array.from({ length: 40 }, (_, i) => i % 32);
  await train(zeroLoss, () => new RandomBatches(tokens, { batch: 1, seqLen: 8 }), backend, {
    steps: 1,
    lr: 0.5, // no warmup: the first step runs at lr
    weightDecay: 0.1,
  });
  assertDecayedOnce(model, before, 0.5);
});
