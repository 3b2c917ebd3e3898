/**
 * FP8 training of Linear layers, simulated (DeepSeek-V3 §3.3, Figure 6): the three GEMMs of a
 * Linear — forward `y = x Wᵀ`, input gradient `dX = dY W`, weight gradient `dW = dYᵀ x` — take
 * their operands quantised to E4M3 with fine-grained scales (activations and output gradients
 * per 1×128 tile along the channels, weights per 128×128 block), while everything else
 * (embedding, output head, MoE gating, norms, the attention core) stays in FP32.
 *
 * Simulation model: each operand is quantised and dequantised exactly as `lib/fp8/scaling.ts`
 * defines (bit-exact E4M3 rounding, amax scaling, saturation), then multiplied in FP32. Products
 * of FP8 values are exact in FP32, and FP32 accumulation is what V3's promotion every N_C = 128
 * elements approximates, so this models the promoted GEMM; the error of an unpromoted
 * accumulator is measured separately on typed arrays (`gemm.ts`).
 *
 * Which layers: a `Linear` runs in FP8 inside {@linkcode withFp8} unless marked
 * `fp8Exempt` (the output head and the MoE gate are). Quantisation is a Backend operation
 * (`ops.ts`), so FP8 training runs on every backend — cpu, wasm and WebGPU.
 *
 * Tolerance between backends (tests/fp8/linear_test.ts): for equal inputs every backend gives
 * the same codes and scales bit for bit, so one FP8 Linear (forward, `dX`, `dW`) differs from the
 * cpu backend only by float32 matmul rounding (checked at `atol` 1e-5, `rtol` 1e-5). In training,
 * those ~1e-7 differences upstream occasionally carry a value across an E4M3 rounding boundary
 * (about one value in 10^5), and the flipped code moves the gradients by ~1e-3 norm-wise: a
 * 6-step loss curve stays within `rtol` 1e-3 of the cpu curve (measured at most 3.6e-4 on wasm
 * and on Mesa's lavapipe).
 *
 * @module
 */

import { matmul, record, reshape, type Tensor, tidy, transpose } from "../tensor/mod.ts";
import { dequantizeFp8Tensor, quantizeFp8Tensor } from "./ops.ts";
import type { Fp8Granularity } from "./scaling.ts";

/** FP8 settings of a model (the `fp8` part of a ModelConfig). */
export interface Fp8LinearSpec {
  /** `tile`: activations 1×128, weights 128×128 (V3); `block`: 128×128 both; `tensor`: one scale. */
  granularity: "tensor" | "tile" | "block";
}

/**
 * Defaults of a model's FP8 part (the DSL's `fp8()`, `ModelConfig.fp8`), DeepSeek-V3 §3.3: 1×128
 * activation tiles with 128×128 weight blocks; for the GEMM simulation (`gemm.ts`), promotion
 * to FP32 every `N_C` = 128 elements of K (every 4 WGMMAs, §3.3.2) and a 14-bit limited
 * accumulator (what V3 measured on H800 Tensor Cores).
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
 * @param granularity One scale per 1×128 tile, 128×128 block or the whole tensor.
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

function granularities(spec: Fp8LinearSpec): { act: Fp8Granularity; weight: Fp8Granularity } {
  switch (spec.granularity) {
    case "tensor":
      return { act: "tensor", weight: "tensor" };
    case "tile":
      return { act: "tile", weight: "block" };
    case "block":
      return { act: "block", weight: "block" };
    default:
      throw new Error(`Unknown FP8 granularity '${spec.granularity satisfies never}'`);
  }
}

/**
 * `y = x Wᵀ` with the three GEMMs on FP8-quantised operands (see the module doc).
 * `x: [..., d_in]`, `weight: [d_out, d_in]` → `[..., d_out]`.
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
  const { act, weight: wg } = granularities(spec);
  const lead = x.shape.slice(0, -1), din = x.shape[x.rank - 1], dout = weight.shape[0];
  const x2 = reshape(x, [-1, din]);
  const xq = fp8RoundTrip(x2, act), wq = fp8RoundTrip(weight, wg);
  const y = matmul(xq, transpose(wq)).detach();
  const out = record(y, "fp8Linear", [x2, weight], (dy) => {
    // Output gradients are activations of the backward pass: 1×128 tiles (E4M3 in V3).
    const dyq = fp8RoundTrip(dy, act);
    return [
      x2.requiresGrad ? matmul(dyq, wq) : null, // dX = dY · W     [N, d_in]
      weight.requiresGrad ? matmul(transpose(dyq), xq) : null, // dW = dYᵀ · X  [d_out, d_in]
    ];
  });
  return reshape(out, [...lead, dout]);
}
