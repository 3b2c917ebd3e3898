/**
 * FP8 training of Linear layers, simulated (DeepSeek-V3 §3.3, Figures 6 and 7): the three GEMMs
 * of a Linear — Fprop `y = x Wᵀ`, Dgrad `dX = dY W`, Wgrad `dW = dYᵀ x` — take their operands
 * quantised to E4M3 with fine-grained scales and run as the simulated FP8 GEMM of `gemm.ts`
 * (the Backend's `fp8Matmul`): products of the codes summed in a limited accumulator of
 * `accumulatorBits` mantissa bits, promoted to FP32 every `promotion` (= `N_C`) elements of K.
 * Everything else stays in FP32: the embedding, the output head, the MoE gate, the norms and the
 * attention core (V3 §3.3.1).
 *
 * Operands of the three GEMMs, with `granularity: "tile"` (V3):
 * 1) Fprop, K = d_in: `x` in 1×128 tiles along d_in, `Wᵀ` in 128×128 blocks.
 * 2) Dgrad, K = d_out: `dY` in 1×128 tiles along d_out, `W` in 128×128 blocks (the same codes as
 *    Fprop's `Wᵀ`, transposed: square blocks keep their scales).
 * 3) Wgrad, K = tokens: `dYᵀ` in 1×128 tiles along the tokens, and `x` in 128×1 tiles along the
 *    tokens — re-quantised from the FP8 `x` that Fprop cached (dequantise, transpose,
 *    re-quantise: the data path V3 §3.5.2 describes), so it sees the values V3's Wgrad sees.
 * With `"block"` every operand is in 128×128 blocks; with `"tensor"`, one scale per operand.
 * Scales are online (each block's current amax). What is not modelled: BF16 storage of the
 * FP32 values in between, V3's power-of-two scales for a few activations (§3.3.3), FP8 caching
 * of other activations, and FP8 communication.
 *
 * `promotion` must divide the K-extent of the operands' scales (128) unless one scale covers all
 * of K: fine-grained scales are applied at promotion, which is why V3 needs promotion at all.
 * Never promoting (`promotion: null`) therefore needs `granularity: "tensor"`; the DSL checks
 * this when the model is declared.
 *
 * Which layers: a `Linear` runs in FP8 inside {@linkcode withFp8} unless marked `fp8Exempt`
 * (the output head and the MoE gate are); the SwiGLU FFNs — the dense FFN, the shared and the
 * routed experts — are made of such Linears. Quantisation and the GEMM are Backend operations
 * (`ops.ts`), so FP8 training runs on every backend — cpu, wasm and WebGPU.
 *
 * Tolerance between backends (tests/fp8/linear_test.ts): for equal inputs every backend gives
 * the same codes, scales and FP8 GEMM results bit for bit, so one FP8 Linear (Fprop, Dgrad,
 * Wgrad) equals the cpu backend's exactly. In training, ~1e-7 float32 differences elsewhere
 * (matmul order, fused kernels) occasionally carry a value across an E4M3 rounding boundary
 * (about one value in 10^5), and the flipped code moves the gradients by ~1e-3 norm-wise: a
 * 6-step loss curve stays within `rtol` 1e-3 of the cpu curve.
 *
 * @module
 */

import { record, reshape, type Tensor, tidy, transpose } from "../tensor/mod.ts";
import type { Fp8MatmulOptions } from "./gemm.ts";
import { dequantizeFp8Tensor, fp8MatmulTensor, type Fp8Tensor, quantizeFp8Tensor } from "./ops.ts";
import type { Fp8Granularity } from "./scaling.ts";

/** FP8 settings of a model (the `fp8` part of a ModelConfig). */
export interface Fp8LinearSpec {
  /** `tile`: activations 1×128, weights 128×128 (V3); `block`: 128×128 both; `tensor`: one scale. */
  granularity: "tensor" | "tile" | "block";
  /**
   * `N_C`: elements of K summed in the limited accumulator before each promotion to FP32;
   * `null` never promotes (needs `granularity: "tensor"`, see the module doc).
   * @default {128}
   */
  promotion?: number | null;
  /** Mantissa bits of the limited accumulator (V3 measured about 14 on H800). @default {14} */
  accumulatorBits?: number;
}

/**
 * Defaults of a model's FP8 part (the DSL's `fp8()`, `ModelConfig.fp8`), DeepSeek-V3 §3.3: 1×128
 * activation tiles with 128×128 weight blocks; promotion to FP32 every `N_C` = 128 elements of
 * K (every 4 WGMMAs, §3.3.2) and a 14-bit limited accumulator (what V3 measured on H800 Tensor
 * Cores), the accumulator of every FP8 GEMM in training (`gemm.ts`).
 */
export const FP8_DEFAULTS = {
  granularity: "tile",
  promotion: 128,
  accumulatorBits: 14,
} as const;

let current: Fp8LinearSpec | null = null;

/** The FP8 setting in effect for Linear layers (`null` = full precision). */
export function currentFp8(): Fp8LinearSpec | null {
  return current;
}

/** Run `fn` with Linear layers in FP8 (`spec` non-null) or in full precision. */
export function withFp8<T>(spec: Fp8LinearSpec | null, fn: () => T): T {
  const previous = current;
  current = spec;
  try {
    return fn();
  } finally {
    current = previous;
  }
}

/**
 * Quantise-dequantise a 2-D tensor `[rows, cols]` to E4M3 on its backend (no graph): the values
 * an FP8 GEMM sees.
 *
 * @param x `[rows, cols]`.
 * @param granularity One scale per 1×128 tile, 128×128 block, 128×1 column tile or the whole
 *   tensor.
 * @returns `dequantize(quantize(x))`, `[rows, cols]`.
 *
 * @example A value on the E4M3 grid of its tile comes back exactly
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "../tensor/mod.ts";
 * import { fp8RoundTrip } from "./linear.ts";
 * deepStrictEqual(Array.from(fp8RoundTrip(tensor([[448, 1.75, 0.3]]), "tile").dataSync()), [448, 1.75, 0.3125]);
 * ```
 */
export function fp8RoundTrip(x: Tensor, granularity: Fp8Granularity): Tensor {
  return tidy(() => dequantizeFp8Tensor(quantizeFp8Tensor(x, { granularity })));
}

/** The scales of each operand role of a Linear's GEMMs under `spec` (see the module doc). */
export interface Fp8LinearOperands {
  /** Activations and output gradients with K along their rows' length (1×128 tiles in V3). */
  act: Fp8Granularity;
  /** Activations with K along the tokens, as Wgrad's right operand (128×1 tiles in V3). */
  actColumn: Fp8Granularity;
  /** Weights (128×128 blocks in V3). */
  weight: Fp8Granularity;
}

/**
 * The scale granularity of each operand of a Linear's three FP8 GEMMs.
 *
 * @param granularity The model's FP8 granularity.
 * @returns Per operand role: activations along K, activations along the tokens, weights.
 *
 * @example V3's tiles
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fp8LinearOperands } from "./linear.ts";
 * deepStrictEqual(fp8LinearOperands("tile"), { act: "tile", actColumn: "column", weight: "block" });
 * ```
 */
export function fp8LinearOperands(granularity: Fp8LinearSpec["granularity"]): Fp8LinearOperands {
  switch (granularity) {
    case "tensor":
      return { act: "tensor", actColumn: "tensor", weight: "tensor" };
    case "tile":
      return { act: "tile", actColumn: "column", weight: "block" };
    case "block":
      return { act: "block", actColumn: "block", weight: "block" };
    default:
      throw new Error(`Unknown FP8 granularity '${granularity satisfies never}'`);
  }
}

/**
 * The accumulator of the FP8 GEMMs under `spec`: `accumulatorBits` mantissa bits, truncating
 * (gemm.ts), promoted every `promotion` elements of K (`Infinity` for `null`).
 *
 * @param spec The model's FP8 settings.
 * @returns Options for `fp8MatmulTensor`.
 *
 * @example Never promoting
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fp8GemmOptions } from "./linear.ts";
 * deepStrictEqual(fp8GemmOptions({ granularity: "tensor", promotion: null, accumulatorBits: 12 }), {
 *   accumulatorBits: 12, promotionInterval: Infinity,
 * });
 * ```
 */
export function fp8GemmOptions(spec: Fp8LinearSpec): Fp8MatmulOptions {
  const { promotion = FP8_DEFAULTS.promotion, accumulatorBits = FP8_DEFAULTS.accumulatorBits } =
    spec;
  return { accumulatorBits, promotionInterval: promotion ?? Infinity };
}

/**
 * `y = x Wᵀ` with the three GEMMs as simulated FP8 GEMMs on quantised operands (see the module
 * doc). `x: [..., d_in]`, `weight: [d_out, d_in]` → `[..., d_out]`.
 *
 * @param x Input `[..., d_in]`.
 * @param weight `W: [d_out, d_in]`.
 * @param spec Granularity, promotion interval and accumulator width.
 * @returns `[..., d_out]`, with a gradient to `x` and `weight`.
 *
 * @example FP8 changes the result by less than E4M3's precision
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { matmul, randn, Rng, transpose } from "../tensor/mod.ts";
 * import { fp8Linear } from "./linear.ts";
 * const rng = new Rng(0);
 * const x = randn([4, 8], { rng }), w = randn([3, 8], { rng });
 * const exact = matmul(x, transpose(w)).dataSync(), q = fp8Linear(x, w, { granularity: "tile" }).dataSync();
 * ok(q.every((v, i) => Math.abs(v - exact[i]) < 0.2 * (1 + Math.abs(exact[i]))));
 * ```
 */
export function fp8Linear(x: Tensor, weight: Tensor, spec: Fp8LinearSpec): Tensor {
  const g = fp8LinearOperands(spec.granularity), options = fp8GemmOptions(spec);
  const lead = x.shape.slice(0, -1), din = x.shape[x.rank - 1], dout = weight.shape[0];
  const x2 = reshape(x, [-1, din]); // [N, d_in]
  const quantize = (t: Tensor, granularity: Fp8Granularity): Fp8Tensor =>
    quantizeFp8Tensor(t.detach(), { granularity });
  // 1) Fprop, K = d_in: y = X · Wᵀ   [N, d_out]
  const { y, xq } = tidy(() => {
    const xq = quantize(x2, g.act); // cached for Wgrad, as V3 caches the FP8 input
    return { y: fp8MatmulTensor(xq, quantize(transpose(weight), g.weight), options), xq };
  });
  const out = record(y, "fp8Linear", [x2, weight], (dy) =>
    tidy(() => [
      // 2) Dgrad, K = d_out: dX = dY · W   [N, d_in]
      x2.requiresGrad
        ? fp8MatmulTensor(quantize(dy, g.act), quantize(weight, g.weight), options)
        : null,
      // 3) Wgrad, K = N: dW = dYᵀ · X   [d_out, d_in]; X re-quantised from the cached FP8 X
      weight.requiresGrad
        ? fp8MatmulTensor(
          quantize(transpose(dy), g.act),
          quantize(dequantizeFp8Tensor(xq), g.actColumn),
          options,
        )
        : null,
    ]));
  return reshape(out, [...lead, dout]);
}
