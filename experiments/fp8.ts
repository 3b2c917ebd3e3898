/**
 * FP8 mixed precision (DeepSeek-V3 §3.3): FP32 vs FP8 GEMMs with V3's fine-grained scaling
 * (activations 1×128 tiles, weights 128×128 blocks) vs naive per-tensor scaling, and per-tensor
 * scaling without promotion. V3's claim: the FP8 training loss stays within 0.25% (relative) of
 * the high-precision baseline.
 *
 * What runs in FP8 (`lib/fp8/linear.ts`): the three GEMMs (forward, input gradient, weight
 * gradient) of every Linear but the output head and the MoE gate — attention projections and the
 * SwiGLU FFN here. Each is simulated bit for bit: E4M3 operands with online scales, products
 * summed in a 14-bit accumulator (V3's measurement on H800) that is promoted to FP32 every 128
 * elements of K (V3's `N_C`). The embedding, norms, attention core and head stay FP32.
 *
 * The variants pair up: `fp8-per-tensor` vs `fp8-tile-block` shows what fine-grained scaling
 * buys, and `fp8-tensor-no-promotion` vs `fp8-per-tensor` what promotion buys (never promoting
 * needs one scale along K: fine-grained scales are applied at promotion). In this model K is 64
 * or 171 in the forward and input-gradient GEMMs, and 1024 tokens (16 × 64) in the weight-gradient
 * GEMMs: the limited accumulator matters mostly there.
 *
 * @module
 */

import { brown, experiment, fp8, model } from "../lib/dsl/mod.ts";
import { SUITE_SEEDS, SUITE_TRAIN } from "./_suite.ts";

// 1) the base: the suite's dense decoder in FP32
const base = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 4, seqLen: 64 });

// 2) the variants: which scales the FP8 GEMMs use, and whether their sums are promoted
export const fp8Training = experiment({
  name: "fp8",
  base,
  vary: {
    "fp32": {},
    "fp8-tile-block": { fp8: fp8({ granularity: "tile", promotion: 128 }) },
    "fp8-per-tensor": { fp8: fp8({ granularity: "tensor", promotion: 128 }) },
    "fp8-tensor-no-promotion": { fp8: fp8({ granularity: "tensor", promotion: null }) },
  },
  data: brown(),
  train: SUITE_TRAIN,
  eval: ["valLoss"],
  seeds: SUITE_SEEDS,
});
