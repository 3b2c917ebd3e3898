/**
 * MHA vs GQA vs MQA vs MLA (DeepSeek-V2 §2.1): validation loss, measured KV-cache bytes per
 * token, decode tokens/s. MLA caches only the latent `c^KV` and the shared RoPE key, so its
 * cache is `(d_c + d_h^R)` elements per token per layer against MHA's `2 n_h d_h`.
 *
 * Run with `deno task experiments --only attention`.
 *
 * @module
 */

import { brown, experiment, gqa, mha, mla, model, mqa } from "../lib/dsl/mod.ts";
import { SUITE_SEEDS, SUITE_TRAIN } from "./_suite.ts";

// 1) the base: a small byte-level decoder that trains in minutes on 2 CPU cores
const base = model({
  vocab: "bytes",
  dModel: 64,
  layers: 2,
  heads: 4,
  seqLen: 64,
  attention: mha(),
});

// 2) the variants: only the attention changes
export const attention = experiment({
  name: "attention",
  base,
  vary: {
    mha: {},
    gqa: { attention: gqa({ kvHeads: 2 }) },
    mqa: { attention: mqa() },
    mla: { attention: mla({ kvLatentRank: 16, ropeHeadDim: 8 }) },
  },
  data: brown(),
  // 3) budgets: `small` is the quick look (the README's main command); `full` the setting for claims
  train: SUITE_TRAIN,
  eval: ["valLoss", "kvBytesPerToken", "decodeTokensPerSec"],
  seeds: SUITE_SEEDS,
});
