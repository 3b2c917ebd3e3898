/**
 * FP8 weights as DeepSeek-V3 ships them (arXiv:2412.19437 §3.3; the `F8_E4M3` tensors of its
 * Hugging Face checkpoint): a Linear weight `W: [d_out, d_in]` stored as E4M3 codes, one byte
 * each, with `weight_scale_inv: [⌈d_out / 128⌉, ⌈d_in / 128⌉]`, one float32 per 128×128 block,
 * and `W = decode(code) · scale` (`scaling.ts`'s "scale_inv" convention).
 *
 * A model can hold such weights instead of float32 ones (`loadModel(dir, { fp8: "keep" })`):
 * 1 byte per weight plus the scales, a quarter of the float32 memory. Each forward dequantises
 * the weight on the host for the one product that needs it, then:
 * - without FP8 activations, `y = x Wᵀ` in float32 (V3's inference `gemm_impl = "bf16"`);
 * - inside `withFp8` (the model's `fp8` config), the activations are quantised too, per
 *   1×128 tile with online scales, so the product is V3's `fp8_gemm` (`act_quant` then the FP8
 *   GEMM, accumulated in FP32) — simulated as `dequant(quant(x)) · Wᵀ` in float32: exact
 *   products summed in FP32, without the limited accumulator that training's GEMMs simulate
 *   (`linear.ts`).
 * Gradients flow to `x` (not to the codes) in the float32 path; the FP8-activation path is for
 * inference.
 *
 * Shapes: `d_out` output features, `d_in` input features, `...` leading dims of `x`.
 *
 * @module
 */

import { matmul, reshape, type Tensor, tensor, transpose } from "../tensor/mod.ts";
import { E4M3 } from "./format.ts";
import { type Fp8LinearSpec, fp8RoundTrip } from "./linear.ts";
import { dequantizeFp8, type Fp8Quantized, scaleBlockShape, scaleGridShape } from "./scaling.ts";

/** The block edge of DeepSeek-V3's weight scales (`weight_block_size: [128, 128]`). */
export const FP8_WEIGHT_BLOCK = 128;

/**
 * The shape of the `weight_scale_inv` grid of a `[d_out, d_in]` weight.
 *
 * @param shape `[d_out, d_in]`.
 * @returns `[⌈d_out / 128⌉, ⌈d_in / 128⌉]`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fp8ScaleShape } from "./weights.ts";
 * deepStrictEqual(fp8ScaleShape([160, 32]), [2, 1]);
 * ```
 */
export function fp8ScaleShape(shape: readonly number[]): [number, number] {
  if (shape.length !== 2) {
    throw new Error(
      `Cannot block-scale a weight of shape [${shape.join(", ")}]: expected [d_out, d_in]`,
    );
  }
  return scaleGridShape([shape[0], shape[1]], {
    granularity: "block",
    tileSize: FP8_WEIGHT_BLOCK,
  });
}

/**
 * A block-scaled E4M3 weight on the host as an {@linkcode Fp8Quantized} (for `dequantizeFp8`).
 *
 * @param codes E4M3 codes, row-major `[d_out, d_in]`.
 * @param scales float32 `weight_scale_inv`, row-major `[⌈d_out / 128⌉, ⌈d_in / 128⌉]`.
 * @param shape `[d_out, d_in]`.
 * @returns The quantised matrix.
 *
 * @example One 2×2 block with scale 0.5
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { dequantizeFp8 } from "./scaling.ts";
 * import { fp8BlockWeight } from "./weights.ts";
 * const w = fp8BlockWeight(new Uint8Array([0x38, 0xb8, 0x40, 0]), new Float32Array([0.5]), [2, 2]);
 * deepStrictEqual(dequantizeFp8(w), new Float32Array([0.5, -0.5, 1, 0]));
 * ```
 */
export function fp8BlockWeight(
  codes: Uint8Array,
  scales: Float32Array,
  shape: readonly [number, number],
): Fp8Quantized {
  const scaleShape = fp8ScaleShape(shape);
  if (codes.length !== shape[0] * shape[1]) {
    throw new Error(
      `Cannot read ${codes.length} FP8 codes as a weight of shape [${shape.join(", ")}]`,
    );
  }
  if (scales.length !== scaleShape[0] * scaleShape[1]) {
    throw new Error(
      `Cannot scale a weight of shape [${shape.join(", ")}] with ${scales.length} block ` +
        `scales: expected [${scaleShape.join(", ")}] (one per 128×128 block)`,
    );
  }
  const options = { granularity: "block" as const, tileSize: FP8_WEIGHT_BLOCK };
  return {
    format: E4M3,
    shape: [shape[0], shape[1]],
    blockShape: scaleBlockShape([shape[0], shape[1]], options),
    scaleShape,
    codes,
    scales,
  };
}

/**
 * Dequantise a held FP8 weight on the host: `W = decode(code) · scale` in float32.
 *
 * @param codes `u8` tensor of E4M3 codes `[d_out, d_in]`.
 * @param scales `f32` tensor `[⌈d_out / 128⌉, ⌈d_in / 128⌉]`.
 * @returns `W: [d_out, d_in]` `f32`, on the codes' backend.
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tensor } from "../tensor/mod.ts";
 * import { dequantizeFp8Weight } from "./weights.ts";
 * const codes = tensor([[0x38, 0x40]], { dtype: "u8" }); // 1, 2
 * assertAllClose(dequantizeFp8Weight(codes, tensor([[0.25]])), [[0.25, 0.5]]);
 * ```
 */
export function dequantizeFp8Weight(codes: Tensor, scales: Tensor): Tensor {
  if (codes.dtype !== "u8" || codes.rank !== 2 || scales.dtype !== "f32") {
    throw new Error(
      `Cannot dequantise ${codes} with scales ${scales}: expected u8 codes [d_out, d_in] and ` +
        `f32 block scales`,
    );
  }
  if (!codes.backend.canReadSync) {
    throw new Error(
      `Cannot dequantise FP8 weights on the '${codes.backend.name}' backend: it needs ` +
        `synchronous reads (cpu or wasm); load with fp8: "dequantize" instead`,
    );
  }
  const shape: [number, number] = [codes.shape[0], codes.shape[1]];
  const q = fp8BlockWeight(
    Uint8Array.from(codes.dataSync()),
    Float32Array.from(scales.dataSync()),
    shape,
  );
  return tensor(dequantizeFp8(q), { shape, backend: codes.backend });
}

/**
 * `y = x Wᵀ` with `W` held as E4M3 codes and block scales; with `spec`, the activations are
 * quantised first (V3's FP8 inference GEMM), see the module doc.
 *
 * @param x `[..., d_in]`.
 * @param codes `u8` `[d_out, d_in]`.
 * @param scales `f32` `[⌈d_out / 128⌉, ⌈d_in / 128⌉]`.
 * @param spec FP8 activations (`granularity` of their scales), or `null` for float32.
 * @returns `[..., d_out]`.
 *
 * @example The float32 path equals a product with the dequantised weight
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { matmul, tensor, transpose } from "../tensor/mod.ts";
 * import { dequantizeFp8Weight, fp8WeightLinear } from "./weights.ts";
 * const codes = tensor([[0x38, 0x40], [0xb8, 0x30]], { dtype: "u8" });
 * const scales = tensor([[0.5]]), x = tensor([[1, 2]]);
 * const w = dequantizeFp8Weight(codes, scales);
 * assertAllClose(fp8WeightLinear(x, codes, scales, null), matmul(x, transpose(w)));
 * ```
 */
export function fp8WeightLinear(
  x: Tensor,
  codes: Tensor,
  scales: Tensor,
  spec: Fp8LinearSpec | null,
): Tensor {
  const din = x.shape[x.rank - 1], dout = codes.shape[0];
  if (codes.rank !== 2 || codes.shape[1] !== din) {
    throw new Error(
      `Cannot apply an FP8 weight [${codes.shape.join(", ")}] to input [${
        x.shape.join(", ")
      }]: expected weight [d_out, ${din}]`,
    );
  }
  const w = dequantizeFp8Weight(codes, scales); // W = decode(code) · scale: [d_out, d_in]
  const lead = x.shape.slice(0, -1);
  let x2 = reshape(x, [-1, din]); // [N, d_in]
  // act_quant (V3: 1×128 tiles): the values the FP8 GEMM sees
  if (spec !== null) x2 = fp8RoundTrip(x2, spec.granularity);
  const y = matmul(x2, transpose(w)); // [N, d_out]
  return reshape(y, [...lead, dout]); // [..., d_out]
}
