/**
 * Configs, experiments and loops several test files share, spelled out once: the small
 * DeepSeekMoE and MLA parts of the decoder tests (each file overrides what it is about), the
 * `tiny` experiment of the runner tests (the CLI, its `--jobs` workers and the Slurm array
 * tasks), and the seeded loss curve the cross-backend training tests compare.
 *
 * @module
 */
import type { Backend } from "../lib/backend/backend.ts";
import { withBackend } from "../lib/backend/mod.ts";
import { brown, type Experiment, experiment, gqa, model } from "../lib/dsl/mod.ts";
import type { MlaSpec, ModelConfig, MoeSpec } from "../lib/models/config.ts";
import { Decoder } from "../lib/models/decoder.ts";
import * as T from "../lib/tensor/mod.ts";
import { AdamW, decayGroups } from "../lib/train/optim.ts";

/**
 * A small MoE FFN part: 4 routed experts (top-2) and 1 shared, 8 wide, V3's sigmoid router with
 * aux-loss-free balancing, one dense first layer. Pass what a test varies.
 *
 * @param overrides Fields to replace.
 * @returns A resolved MoE part for `tinyConfig({ ffn })`.
 */
export function tinyMoe(overrides: Partial<Omit<MoeSpec, "kind">> = {}): MoeSpec {
  return {
    kind: "moe",
    routedExperts: 4,
    sharedExperts: 1,
    topK: 2,
    expertHidden: 8,
    score: "sigmoid",
    balance: "aux-free",
    gamma: 0.01,
    alpha: 0.001,
    routeScale: 1,
    groups: 1,
    topkGroup: 1,
    firstDenseLayers: 1,
    denseHidden: 24,
    ...overrides,
  };
}

/**
 * A small MLA part: a 6-dim KV latent, no query compression, 4 RoPE dims per head.
 *
 * @param overrides Fields to replace.
 * @returns An MLA part for `tinyConfig({ attention })`.
 */
export function tinyMla(overrides: Partial<Omit<MlaSpec, "kind">> = {}): MlaSpec {
  return { kind: "mla", kvLatentRank: 6, queryLatentRank: 0, ropeHeadDim: 4, ...overrides };
}

/** The runner tests' sweep: MHA vs GQA × 2 seeds, 64 steps (16 at the small budget). */
export const TINY_EXPERIMENT: Experiment = experiment({
  name: "tiny",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { mha: {}, gqa: { attention: gqa({ kvHeads: 1 }) } },
  data: brown(),
  train: { tokens: 4096, batch: 4, lr: 3e-3, budgets: { small: { tokens: 1024 } } },
  eval: ["valLoss", "kvBytesPerToken"],
  seeds: [0, 1],
});

/**
 * Losses of `steps` AdamW steps (lr 3e-3, weight decay 0.1) of `config` from seed 0 on batches of
 * 4 sequences that count up from random starts (a learnable stream). WebGPU's MoE routing goes
 * through the async host reads (`lossAsync`).
 *
 * @param backend Where to train.
 * @param config The model.
 * @param steps Optimizer steps.
 * @returns The loss of each step.
 */
export async function lossCurve(
  backend: Backend,
  config: ModelConfig,
  steps: number,
): Promise<number[]> {
  const losses: number[] = [];
  const { model, opt } = withBackend(backend, () => {
    const model = new Decoder(config, new T.Rng(0));
    return { model, opt: new AdamW(decayGroups(model.parameters(), 0.1), { lr: 3e-3 }) };
  });
  const data = new T.Rng(1);
  for (let step = 0; step < steps; step++) {
    const [B, L] = [4, config.seqLen];
    // A learnable stream: each sequence counts up from a random start.
    const starts = Array.from({ length: B }, () => data.int(config.vocab));
    const seq = (shift: number) =>
      starts.flatMap((s) => Array.from({ length: L }, (_, i) => (s + i + shift) % config.vocab));
    const [x, y] = withBackend(backend, () => [
      T.tensor(seq(0), { dtype: "i32", shape: [B, L] }),
      T.tensor(seq(1), { dtype: "i32", shape: [B, L] }),
    ]);
    // WebGPU cannot read synchronously: MoE routing goes through the async host reads.
    const out = backend.canReadSync
      ? withBackend(backend, () => model.loss(x, y))
      : await withBackend(backend, () => model.lossAsync(x, y));
    const loss = withBackend(backend, () => {
      out.loss.backward();
      return out.loss;
    });
    losses.push(await loss.item());
    withBackend(backend, () => {
      opt.step();
      opt.zeroGrad();
      model.afterOptimizerStep?.();
    });
  }
  return losses;
}
