/**
 * The cpu reference FP8 kernels: the definitions of `lib/fp8` themselves. Quantisation is
 * `quantizeFp8` of `lib/fp8/scaling.ts` (amax per block, scales, E4M3/E5M2 codes with round to
 * nearest, ties to even), dequantisation `dequantizeFp8`, and the GEMM simulation with a limited,
 * promoted accumulator `fp8Matmul` of `lib/fp8/gemm.ts`. The WebGPU and wasm FP8 kernels are
 * tested against these (tests/backend/fp8_test.ts).
 *
 * `lib/fp8/format.ts`, `scaling.ts` and `gemm.ts` work on typed arrays and import nothing, so the
 * backend layer can use them without importing anything above it.
 *
 * @module
 */

import type { Fp8BlockSpec, Fp8MatmulSpec, Fp8QuantizeSpec, HostArray } from "../backend.ts";
import { FP8_FORMATS } from "../../fp8/format.ts";
import { checkFp8Matmul, fp8Matmul as simulatedFp8Matmul } from "../../fp8/gemm.ts";
import {
  dequantizeFp8,
  type Fp8Quantized,
  quantizeFp8,
  scaleBlockShape,
  scaleGridShape,
} from "../../fp8/scaling.ts";

/** The values as float32 (a float64 cpu backend stores `f32` tensors in `Float64Array`). */
function asFloat32(x: HostArray): Float32Array {
  return x instanceof Float32Array ? x : Float32Array.from(x);
}

/**
 * Quantise `x: [rows, cols]` with online scales, or the given ones (`quantizeFp8` of
 * `lib/fp8/scaling.ts`).
 *
 * @param x The values, row-major.
 * @param spec Blocks, format and scaling.
 * @param scales One scale per block; from each block's amax when omitted.
 * @returns The codes (one byte per value) and the scales (row-major over the grid of blocks).
 *
 * @example One tile of [1, 2, 4]: amax 4, scale 4/448, codes of 112, 224 and 448
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fp8Quantize } from "./fp8.ts";
 * const spec = {
 *   rows: 1, cols: 3, granularity: "tile", tileSize: 128, format: "e4m3",
 *   saturate: true, amaxFloor: 1e-4, powerOfTwo: false,
 * } as const;
 * deepStrictEqual(fp8Quantize(new Float32Array([1, 2, 4]), spec).codes, new Uint8Array([0x6e, 0x76, 0x7e]));
 * ```
 */
export function fp8Quantize(
  x: HostArray,
  spec: Fp8QuantizeSpec,
  scales?: HostArray,
): { codes: Uint8Array; scales: Float32Array } {
  const q = quantizeFp8(asFloat32(x), [spec.rows, spec.cols], {
    ...scalingOf(spec),
    saturate: spec.saturate,
    amaxFloor: spec.amaxFloor,
    powerOfTwo: spec.powerOfTwo,
    scales: scales === undefined ? undefined : asFloat32(scales),
  });
  return { codes: q.codes, scales: q.scales };
}

/**
 * Dequantise into `out`: `decode(code) · scale` (`dequantizeFp8` of `lib/fp8/scaling.ts`).
 *
 * @param codes One code per value, row-major `[rows, cols]`.
 * @param scales One scale per block.
 * @param spec Blocks and format.
 * @param out The values, row-major `[rows, cols]`.
 */
export function fp8Dequantize(
  codes: HostArray,
  scales: HostArray,
  spec: Fp8BlockSpec,
  out: HostArray,
): void {
  out.set(dequantizeFp8(quantized(codes, scales, spec)));
}

/**
 * The simulated FP8 GEMM into `out: [m, n]` (`fp8Matmul` of `lib/fp8/gemm.ts`).
 *
 * @param a A's codes and scales, `[m, k]`.
 * @param b B's codes and scales, `[k, n]`.
 * @param spec Sizes, blocks and the accumulator.
 * @param out The product, row-major.
 */
export function fp8Matmul(
  a: { codes: HostArray; scales: HostArray },
  b: { codes: HostArray; scales: HostArray },
  spec: Fp8MatmulSpec,
  out: HostArray,
): void {
  const c = simulatedFp8Matmul(
    quantized(a.codes, a.scales, spec.a),
    quantized(b.codes, b.scales, spec.b),
    {
      accumulatorBits: spec.accumulatorBits,
      accumulatorRounding: spec.accumulatorRounding,
      promotionInterval: spec.promotionInterval,
    },
  );
  out.set(c);
}

/**
 * Throw unless `spec`'s operands fit together (`[m, k] · [k, n]`) and its accumulator options
 * are valid for their scale groups (`checkFp8Matmul` of `lib/fp8/gemm.ts`): the check every
 * backend's FP8 GEMM runs first.
 *
 * @param spec The GEMM.
 *
 * @example A's columns must equal B's rows
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkFp8MatmulSpec } from "./fp8.ts";
 * const a = { rows: 2, cols: 8, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
 * throws(() => checkFp8MatmulSpec({
 *   m: 2, n: 3, k: 8, a, b: { ...a, rows: 7, cols: 3 }, accumulatorBits: 14,
 *   accumulatorRounding: "truncate", promotionInterval: 128,
 * }), /Cannot matmul FP8 shapes \[2, 8\] and \[7, 3\]/);
 * ```
 */
export function checkFp8MatmulSpec(spec: Fp8MatmulSpec): void {
  const { a, b } = spec;
  if (a.rows !== spec.m || a.cols !== spec.k || b.rows !== spec.k || b.cols !== spec.n) {
    throw new RangeError(
      `Cannot matmul FP8 shapes [${a.rows}, ${a.cols}] and [${b.rows}, ${b.cols}]: expected [m, k] = [${spec.m}, ${spec.k}] and [k, n] = [${spec.k}, ${spec.n}]`,
    );
  }
  checkFp8Matmul(fp8Grid(a).bc, fp8Grid(b).br, spec.k, spec); // K-extent of A's and B's scales
}

/** The blocks of a matrix, from {@linkcode fp8Grid}. */
export interface Fp8Grid {
  /** Rows of a block (1 for tiles; edge blocks may have fewer). */
  br: number;
  /** Columns of a block. */
  bc: number;
  /** Blocks down the matrix. */
  gridRows: number;
  /** Blocks across the matrix: the row stride of the scales. */
  gridCols: number;
}

/**
 * The block shape and the grid of scales of `spec` (`scaleBlockShape` and `scaleGridShape` of
 * `lib/fp8/scaling.ts`): what the wasm and WebGPU kernels index scales with.
 *
 * @param spec The blocks of a matrix.
 * @returns Block rows and columns, grid rows and columns.
 *
 * @example 1×128 tiles of a [3, 300] matrix: a 3 × 3 grid
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fp8Grid } from "./fp8.ts";
 * const spec = { rows: 3, cols: 300, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
 * deepStrictEqual(fp8Grid(spec), { br: 1, bc: 128, gridRows: 3, gridCols: 3 });
 * ```
 */
export function fp8Grid(spec: Fp8BlockSpec): Fp8Grid {
  const shape: [number, number] = [spec.rows, spec.cols];
  const [br, bc] = scaleBlockShape(shape, scalingOf(spec));
  const [gridRows, gridCols] = scaleGridShape(shape, scalingOf(spec));
  return { br, bc, gridRows, gridCols };
}

function scalingOf(spec: Fp8BlockSpec) {
  return {
    granularity: spec.granularity,
    tileSize: spec.tileSize,
    format: FP8_FORMATS[spec.format],
  };
}

/** The {@linkcode Fp8Quantized} record `lib/fp8` takes, from a backend's codes and scales. */
function quantized(codes: HostArray, scales: HostArray, spec: Fp8BlockSpec): Fp8Quantized {
  const shape: [number, number] = [spec.rows, spec.cols];
  const scaling = scalingOf(spec);
  if (!(codes instanceof Uint8Array)) {
    throw new Error(`Cannot read FP8 codes from a ${codes.constructor.name}: expected u8 codes`);
  }
  return {
    format: scaling.format,
    shape,
    blockShape: scaleBlockShape(shape, scaling),
    scaleShape: scaleGridShape(shape, scaling),
    codes,
    scales: asFloat32(scales),
  };
}
