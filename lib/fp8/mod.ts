/**
 * FP8 numerics of DeepSeek-V3 §3.3 (arXiv:2412.19437) on plain typed arrays: the E4M3 and E5M2
 * encodings bit by bit (`format.ts`), fine-grained scales (`scaling.ts`) and a GEMM simulation
 * with a limited-precision accumulator promoted to FP32 every 128 elements of K (`gemm.ts`).
 * The same operations on tensors run on every backend (`ops.ts`: Backend operations whose cpu
 * kernels are these definitions and whose wasm and WebGPU kernels equal them bit for bit), and
 * FP8 training builds on them (`linear.ts`): the forward and both gradient GEMMs of every Linear
 * but the output head and the MoE gate — attention projections, FFNs, experts — as that GEMM.
 *
 * ```ts
 * import { dequantizeFp8, fp8Matmul, quantizeFp8 } from "./mod.ts";
 * const x = Float32Array.from({ length: 4 * 256 }, (_, i) => Math.sin(i)); // activations [4, 256]
 * const w = Float32Array.from({ length: 256 * 8 }, (_, i) => Math.cos(i)); // weights [256, 8]
 * const a = quantizeFp8(x, [4, 256]); // 1×128 tiles: a.codes (bytes) and a.scales [4, 2]
 * const b = quantizeFp8(w, [256, 8], { granularity: "block" }); // 128×128 blocks
 * const c = fp8Matmul(a, b, { accumulatorBits: 14, promotionInterval: 128 }); // [4, 8]
 * const xHat = dequantizeFp8(a); // back to float32
 * ```
 *
 * @module
 */

export {
  decodeFp8,
  decodeTable,
  dequantizeArray,
  type DequantizeArrayOptions,
  E4M3,
  E5M2,
  encodeFp8,
  type EncodeOptions,
  FP8_FORMATS,
  type Fp8Format,
  type Fp8FormatName,
  type Fp8Specials,
  isNanCode,
  quantizeArray,
  type QuantizeArrayOptions,
} from "./format.ts";
export {
  blockAmax,
  DelayedScaling,
  type DelayedScalingOptions,
  dequantizeFp8,
  type Fp8Footprint,
  fp8Footprint,
  type Fp8Granularity,
  type Fp8Quantized,
  type Fp8ScalingOptions,
  quantizeFp8,
  type QuantizeFp8Options,
  scaleBlockShape,
  scaleGridShape,
  scalesFromAmax,
} from "./scaling.ts";
export {
  type AccumulatorRounding,
  checkFp8Matmul,
  type Fp32Matrix,
  fp8Matmul,
  type Fp8MatmulOptions,
  matmulF32,
  roundMantissa,
  type RoundMantissaOptions,
} from "./gemm.ts";
export * from "./ops.ts";
export * from "./linear.ts";
export * from "./weights.ts";
