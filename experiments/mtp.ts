/**
 * Multi-token prediction (DeepSeek-V3 §2.2): depth 0 vs 1 vs 2 at equal training tokens. The
 * main-head validation loss is compared (MTP modules are dropped at inference), and module 1
 * drafts for speculative decoding (V3: 85–90% acceptance of the second token).
 *
 * @module
 */

import { brown, experiment, model, mtp } from "../lib/dsl/mod.ts";
import { SUITE_SEEDS, SUITE_TRAIN } from "./_suite.ts";

// 1) the base: a dense decoder without MTP
const base = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 4, seqLen: 64 });

// 2) the variants: MTP depth (λ = 0.3, V3's value for most of training)
export const mtpDepth = experiment({
  name: "mtp",
  base,
  vary: {
    "depth-0": {},
    "depth-1": { mtp: mtp({ depth: 1, lambda: 0.3 }) },
    "depth-2": { mtp: mtp({ depth: 2, lambda: 0.3 }) },
  },
  data: brown(),
  // 3) budgets
  train: SUITE_TRAIN,
  eval: ["valLoss", "mtpAcceptance", "decodeTokensPerSec"],
  seeds: SUITE_SEEDS,
});
