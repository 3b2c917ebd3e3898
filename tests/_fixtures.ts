/**
 * Configs and experiments several test files share, spelled out once: the small DeepSeekMoE and
 * MLA parts of the decoder tests (each file overrides what it is about) and the `tiny`
 * experiment of the runner tests (the CLI, its `--jobs` workers and the Slurm array tasks).
 *
 * @module
 */
import { brown, type Experiment, experiment, gqa, model } from "../lib/dsl/mod.ts";
import type { MlaSpec, MoeSpec } from "../lib/models/config.ts";

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
