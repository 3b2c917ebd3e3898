/**
 * Auxiliary-loss-free balancing (DeepSeek-V3 §2.1.2; Wang et al., arXiv:2408.15664) against the
 * classic auxiliary loss (two α values) and no balancing, plus a dense FFN with the same
 * activated parameters: validation loss, MaxVio (global), training throughput.
 *
 * The paper's claim (1B model, 100B tokens): aux-loss-free reaches lower MaxVio_global (0.04 vs
 * 0.72) at equal or better perplexity. At this scale we can only check the direction.
 *
 * @module
 */

import { brown, dense, experiment, model, moe } from "../lib/dsl/mod.ts";
import { SUITE_SEEDS, SUITE_TRAIN } from "./_suite.ts";

// 1) the base: 8 routed experts top-2 + 1 shared, balanced by the bias (V3)
const base = model({
  vocab: "bytes",
  dModel: 64,
  layers: 2,
  heads: 4,
  seqLen: 64,
  ffn: moe({ routedExperts: 8, topK: 2, sharedExperts: 1, balance: "aux-free", gamma: 0.01 }),
});

// 2) the variants: only the balancing changes (γ is 10× V3's 0.001: runs are 1000× shorter)
export const moeBalance = experiment({
  name: "moe-balance",
  base,
  vary: {
    "aux-free": {},
    "aux-loss-0.01": { ffn: { balance: "aux-loss", alpha: 0.01 } },
    "aux-loss-0.001": { ffn: { balance: "aux-loss", alpha: 0.001 } },
    "none": { ffn: { balance: "none", alpha: 0 } },
    // (K_r + N_s) · expertHidden = 3 · 57 = 171 = dense hidden: equal activated FFN width
    "dense": { ffn: dense() },
  },
  data: brown(),
  // 3) budgets: `small` is the quick look; `full` the setting for claims
  train: SUITE_TRAIN,
  eval: ["valLoss", "maxVio", "trainTokensPerSec"],
  seeds: SUITE_SEEDS,
});
