/**
 * FP8 mixed precision (DeepSeek-V3 §3.3): FP32 vs FP8 Linear GEMMs with V3's fine-grained
 * scaling (activations 1×128 tiles, weights 128×128 blocks) vs naive per-tensor scaling. V3's
 * claim: the FP8 training loss stays within 0.25% (relative) of the high-precision baseline.
 * The GEMMs are simulated (bit-exact E4M3 operands, FP32 products and accumulation, i.e. the
 * promoted accumulator; `lib/fp8/linear.ts`).
 *
 * @module
 */

import { brown, experiment, fp8, model } from "../lib/dsl/mod.ts";
import { SUITE_SEEDS, SUITE_TRAIN } from "./_suite.ts";

// 1) the base: the suite's dense decoder in FP32
const base = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 4, seqLen: 64 });

// 2) the variants: which GEMMs see FP8 operands, and with which scales
export const fp8Training = experiment({
  name: "fp8",
  base,
  vary: {
    "fp32": {},
    "fp8-tile-block": { fp8: fp8({ granularity: "tile", promotion: 128 }) },
    "fp8-per-tensor": { fp8: fp8({ granularity: "tensor", promotion: 128 }) },
  },
  data: brown(),
  train: SUITE_TRAIN,
  eval: ["valLoss"],
  seeds: SUITE_SEEDS,
});
