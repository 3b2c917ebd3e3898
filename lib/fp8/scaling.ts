/**
 * Scales for FP8 quantisation, kept apart from the ops that consume them: per tensor, per
 * 1×128 tile (activations: per token per 128 channels) and per 128×128 block (weights), the
 * "fine-grained quantization" of DeepSeek-V3 §3.3.2 (arXiv:2412.19437, Figure 7a).
 *
 * A matrix is a row-major `Float32Array` of shape `[rows, cols]`; the sizes need not be
 * multiples of the tile size (edge blocks are partial). Each block `b` gets
 * `scale_b = max(amax_b, 1e-4) / FP8_max` (the floor is from the V3 inference code), optionally
 * rounded up to a power of two (the "ue8m0" scale format), and stores `code = encode(x / scale_b)`.
 * Scales follow the "scale_inv" convention of V3 checkpoints: `dequantised = decode(code) · scale`.
 *
 * Online scaling ({@linkcode quantizeFp8}) takes amax from the tensor being quantised, as V3
 * does. {@linkcode DelayedScaling} is the baseline V3 argues against: it takes amax from a
 * history of previous steps, so a new outlier saturates.
 *
 * Shape letters: `R` rows, `C` columns, `t` tile size (128).
 *
 * @module
 */

import { decodeTable, E4M3, encodeFp8, type Fp8Format } from "./format.ts";

/**
 * How many values share a scale: the whole tensor, a `1 × t` tile, a `t × t` block, or a `t × 1`
 * column tile (V3's 128×1 tiles: an activation's tiles along the tokens, the K of the
 * weight-gradient GEMM, §3.5.2).
 */
export type Fp8Granularity = "tensor" | "tile" | "block" | "column";

/** Options for computing FP8 scales. */
export interface Fp8ScalingOptions {
  /**
   * `"tensor"`: one scale. `"tile"`: one per `1 × tileSize` (activations). `"block"`: one per
   * `tileSize × tileSize` (weights). `"column"`: one per `tileSize × 1` (activations along the
   * tokens, the right-hand operand of the weight-gradient GEMM).
   *
   * @default {"tile"}
   */
  granularity?: Fp8Granularity;
  /** Tile and block edge. @default {128} */
  tileSize?: number;
  /** The encoding whose `max` sets the scale. @default {E4M3} */
  format?: Fp8Format;
  /** Lower bound on amax, so an all-zero block gets a finite scale. @default {1e-4} */
  amaxFloor?: number;
  /** Round every scale up to a power of two ("ue8m0"), so rescaling is exact. @default {false} */
  powerOfTwo?: boolean;
}

/** Options for {@linkcode quantizeFp8}. */
export interface QuantizeFp8Options extends Fp8ScalingOptions {
  /** Saturate values past `±max` (training casts saturate). @default {true} */
  saturate?: boolean;
  /** Scales to use, one per block (row-major grid); computed from the current amax if omitted. */
  scales?: Float32Array;
}

/** A quantised matrix: packed codes with their scales. */
export interface Fp8Quantized {
  /** The encoding of `codes`. */
  readonly format: Fp8Format;
  /** `[R, C]` of the matrix. */
  readonly shape: readonly [number, number];
  /** `[rows, cols]` covered by one scale (edge blocks may be smaller). */
  readonly blockShape: readonly [number, number];
  /** `[⌈R / rows⌉, ⌈C / cols⌉]`: the grid of scales. */
  readonly scaleShape: readonly [number, number];
  /** One code per value, row-major `[R, C]`. */
  readonly codes: Uint8Array;
  /** One float32 scale per block, row-major `scaleShape`: `value = decode(code) · scale`. */
  readonly scales: Float32Array;
}

/** Bytes of a quantised matrix against float32, from {@linkcode fp8Footprint}. */
export interface Fp8Footprint {
  /** One byte per value. */
  valueBytes: number;
  /** Four bytes (float32) per scale. */
  scaleBytes: number;
  /** `valueBytes + scaleBytes`. */
  totalBytes: number;
  /** Four bytes per value. */
  fp32Bytes: number;
  /** `totalBytes / fp32Bytes`: a little above 1/4. */
  ratio: number;
}

function checkShape(shape: readonly [number, number], action: string): void {
  if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new RangeError(
      `Cannot ${action} shape [${shape.join(", ")}]: expected two positive integers`,
    );
  }
}

function checkData(x: Float32Array, shape: readonly [number, number], action: string): void {
  checkShape(shape, action);
  if (x.length !== shape[0] * shape[1]) {
    throw new RangeError(
      `Cannot ${action} ${x.length} values as shape [${shape.join(", ")}]: expected ${
        shape[0] * shape[1]
      } values`,
    );
  }
}

/**
 * The block of values that share one scale, clipped to the matrix.
 *
 * @param shape `[R, C]` of the matrix.
 * @param options Granularity and tile size.
 * @returns `[1, t]` for tiles, `[t, t]` for blocks, `[t, 1]` for column tiles, `[R, C]` per
 *   tensor (each clipped to `shape`).
 *
 * @example Tiles and blocks of a [3, 300] matrix
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { scaleBlockShape } from "./scaling.ts";
 * deepStrictEqual(scaleBlockShape([3, 300]), [1, 128]);
 * deepStrictEqual(scaleBlockShape([3, 300], { granularity: "block" }), [3, 128]);
 * deepStrictEqual(scaleBlockShape([3, 300], { granularity: "column" }), [3, 1]);
 * deepStrictEqual(scaleBlockShape([3, 300], { granularity: "tensor" }), [3, 300]);
 * ```
 */
export function scaleBlockShape(
  shape: readonly [number, number],
  options: Fp8ScalingOptions = {},
): [number, number] {
  const { granularity = "tile", tileSize = 128 } = options;
  checkShape(shape, "scale");
  if (!Number.isInteger(tileSize) || tileSize <= 0) {
    throw new RangeError(`Cannot quantize with tile size ${tileSize}: expected a positive integer`);
  }
  const [rows, cols] = shape;
  switch (granularity) {
    case "tensor":
      return [rows, cols];
    case "tile":
      return [1, Math.min(tileSize, cols)];
    case "block":
      return [Math.min(tileSize, rows), Math.min(tileSize, cols)];
    case "column":
      return [Math.min(tileSize, rows), 1];
    default: {
      const name: never = granularity;
      throw new RangeError(
        `Cannot scale with granularity '${name}': expected 'tensor', 'tile', 'block' or 'column'`,
      );
    }
  }
}

/**
 * The grid of scales of a matrix: how many blocks along each dimension.
 *
 * @param shape `[R, C]` of the matrix.
 * @param options Granularity and tile size.
 * @returns `[⌈R / rows⌉, ⌈C / cols⌉]` for blocks of `[rows, cols]`.
 *
 * @example A [3, 300] activation has 3 × 3 tile scales
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { scaleGridShape } from "./scaling.ts";
 * deepStrictEqual(scaleGridShape([3, 300]), [3, 3]);
 * ```
 */
export function scaleGridShape(
  shape: readonly [number, number],
  options: Fp8ScalingOptions = {},
): [number, number] {
  const [br, bc] = scaleBlockShape(shape, options);
  return [Math.ceil(shape[0] / br), Math.ceil(shape[1] / bc)];
}

/**
 * Largest magnitude in each block (NaNs are skipped).
 *
 * @param x Row-major values of shape `shape`.
 * @param shape `[R, C]`.
 * @param options Granularity and tile size.
 * @returns amax per block, row-major over {@linkcode scaleGridShape}.
 *
 * @example Two 1×2 tiles per row
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { blockAmax } from "./scaling.ts";
 * const x = new Float32Array([1, -5, 2, 0, 3, 0]);
 * deepStrictEqual(blockAmax(x, [2, 3], { tileSize: 2 }), new Float32Array([5, 2, 3, 0]));
 * ```
 */
export function blockAmax(
  x: Float32Array,
  shape: readonly [number, number],
  options: Fp8ScalingOptions = {},
): Float32Array {
  checkData(x, shape, "scale");
  const [rows, cols] = shape;
  const [br, bc] = scaleBlockShape(shape, options);
  const gridCols = Math.ceil(cols / bc);
  const amax = new Float32Array(Math.ceil(rows / br) * gridCols);
  for (let r = 0; r < rows; r++) {
    const gridRow = Math.floor(r / br) * gridCols;
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(x[r * cols + c]);
      const g = gridRow + Math.floor(c / bc);
      if (a > amax[g]) amax[g] = a;
    }
  }
  return amax;
}

/** The smallest power of two ≥ `x`, for a positive normal float32 `x` (from its bits). */
function ceilPowerOfTwo(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if ((u[0] & 0x7fffff) !== 0) u[0] = ((u[0] >>> 23) + 1) << 23; // clear the fraction, exponent + 1
  return f[0];
}

/**
 * Scales from amax: `scale = fp32(max(amax, amaxFloor) / format.max)`, optionally rounded up to
 * a power of two (rounding up keeps `amax / scale ≤ max`, so nothing saturates).
 *
 * @param amax Largest magnitude per block.
 * @param options Format, floor and power-of-two rounding.
 * @returns One scale per block.
 *
 * @example amax 448 gives scale 1; the floor applies to all-zero blocks
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { scalesFromAmax } from "./scaling.ts";
 * const scales = scalesFromAmax(new Float32Array([448, 0, 300]), { powerOfTwo: true });
 * deepStrictEqual(scales, new Float32Array([1, 2 ** -22, 1]));
 * ```
 */
export function scalesFromAmax(amax: Float32Array, options: Fp8ScalingOptions = {}): Float32Array {
  const { format = E4M3, amaxFloor = 1e-4, powerOfTwo = false } = options;
  if (!(amaxFloor > 0) || !Number.isFinite(amaxFloor)) {
    throw new RangeError(
      `Cannot scale with amax floor ${amaxFloor}: expected a positive finite number`,
    );
  }
  const scales = new Float32Array(amax.length);
  for (let i = 0; i < amax.length; i++) {
    const scale = Math.fround(Math.max(amax[i], amaxFloor) / format.max);
    scales[i] = powerOfTwo && Number.isFinite(scale) ? ceilPowerOfTwo(scale) : scale;
  }
  return scales;
}

/**
 * Quantise a matrix: `code = encode(fp32(x / scale_b))` for the block `b` holding `x`. Online
 * scaling by default: each block's scale comes from its current amax.
 *
 * @param x Row-major values of shape `shape`.
 * @param shape `[R, C]`; any sizes, not only multiples of the tile size.
 * @param options Granularity (default 1×128 tiles), format, floor, power-of-two scales, or
 *   precomputed scales.
 * @returns Packed codes and float32 scales.
 *
 * @example A [2, 130] activation: two tiles per row, the second 2 wide
 * ```ts
 * import { deepStrictEqual, ok } from "node:assert/strict";
 * import { dequantizeFp8, quantizeFp8 } from "./scaling.ts";
 * const x = Float32Array.from({ length: 260 }, (_, i) => Math.sin(i));
 * const q = quantizeFp8(x, [2, 130]);
 * deepStrictEqual(q.scaleShape, [2, 2]);
 * const y = dequantizeFp8(q);
 * ok(x.every((v, i) => Math.abs(v - y[i]) <= Math.abs(v) / 16 + 1e-6));
 * ```
 *
 * @example Given scales: per-tensor scale 2
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { dequantizeFp8, quantizeFp8 } from "./scaling.ts";
 * const x = new Float32Array([1, 2, 3, 4]);
 * const q = quantizeFp8(x, [2, 2], { granularity: "tensor", scales: new Float32Array([2]) });
 * deepStrictEqual(q.codes, new Uint8Array([0x30, 0x38, 0x3c, 0x40])); // 0.5, 1, 1.5, 2
 * deepStrictEqual(dequantizeFp8(q), x);
 * ```
 */
export function quantizeFp8(
  x: Float32Array,
  shape: readonly [number, number],
  options: QuantizeFp8Options = {},
): Fp8Quantized {
  const { format = E4M3, saturate = true } = options;
  checkData(x, shape, "quantize");
  const blockShape = scaleBlockShape(shape, options);
  const scaleShape = scaleGridShape(shape, options);
  const scales = options.scales ?? scalesFromAmax(blockAmax(x, shape, options), options);
  if (scales.length !== scaleShape[0] * scaleShape[1]) {
    throw new RangeError(
      `Cannot quantize with ${scales.length} scales: expected ${
        scaleShape[0] * scaleShape[1]
      } for a [${scaleShape.join(", ")}] grid`,
    );
  }
  const [rows, cols] = shape;
  const [br, bc] = blockShape;
  const codes = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const gridRow = Math.floor(r / br) * scaleShape[1];
    for (let c = 0; c < cols; c++) {
      const scale = scales[gridRow + Math.floor(c / bc)];
      codes[r * cols + c] = encodeFp8(Math.fround(x[r * cols + c] / scale), format, { saturate });
    }
  }
  return { format, shape: [rows, cols], blockShape, scaleShape, codes, scales };
}

/**
 * Dequantise: `value = fp32(decode(code) · scale_b)`.
 *
 * @param q A quantised matrix.
 * @returns Row-major float32 values of shape `q.shape`.
 *
 * @example Exact for values that fit the format
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { dequantizeFp8, quantizeFp8 } from "./scaling.ts";
 * const x = new Float32Array([0.5, -448, 1.75, 0]);
 * deepStrictEqual(dequantizeFp8(quantizeFp8(x, [2, 2], { granularity: "tensor" })), x);
 * ```
 */
export function dequantizeFp8(q: Fp8Quantized): Float32Array {
  const [rows, cols] = q.shape;
  const [br, bc] = q.blockShape;
  const table = decodeTable(q.format);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const gridRow = Math.floor(r / br) * q.scaleShape[1];
    for (let c = 0; c < cols; c++) {
      out[r * cols + c] = table[q.codes[r * cols + c]] * q.scales[gridRow + Math.floor(c / bc)];
    }
  }
  return out;
}

/**
 * Bytes of a matrix stored as FP8 codes plus float32 scales, against float32.
 *
 * @param shape `[R, C]`.
 * @param options Granularity and tile size.
 * @returns Value, scale and total bytes, float32 bytes and their ratio.
 *
 * @example A 128×128 weight block costs 16384 + 4 bytes against 65536
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { fp8Footprint } from "./scaling.ts";
 * const f = fp8Footprint([128, 128], { granularity: "block" });
 * strictEqual(f.totalBytes, 16388);
 * strictEqual(f.fp32Bytes, 65536);
 * ```
 */
export function fp8Footprint(
  shape: readonly [number, number],
  options: Fp8ScalingOptions = {},
): Fp8Footprint {
  const [gr, gc] = scaleGridShape(shape, options);
  const valueBytes = shape[0] * shape[1];
  const scaleBytes = 4 * gr * gc;
  const totalBytes = valueBytes + scaleBytes;
  const fp32Bytes = 4 * valueBytes;
  return { valueBytes, scaleBytes, totalBytes, fp32Bytes, ratio: totalBytes / fp32Bytes };
}

/** Options for {@linkcode DelayedScaling}. */
export interface DelayedScalingOptions extends Omit<QuantizeFp8Options, "scales"> {
  /** Steps of amax kept; the scale uses their maximum. @default {16} */
  historyLength?: number;
}

/**
 * Delayed scaling, the baseline DeepSeek-V3 §3.3.2 argues against: each call quantises with
 * scales from the largest amax of the previous `historyLength` calls (its own amax on the first
 * call), then records its own amax. A value past the history's range saturates.
 *
 * Ref: NVIDIA Transformer Engine `DelayedScaling` (amax history); V3 §3.3.2 "Online Quantization".
 *
 * @example A sudden outlier saturates under delayed scaling
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { DelayedScaling, dequantizeFp8 } from "./scaling.ts";
 * const scaler = new DelayedScaling({ granularity: "tensor", historyLength: 4 });
 * scaler.quantize(new Float32Array([1, -1]), [1, 2]); // history: amax 1
 * const q = scaler.quantize(new Float32Array([1, 10]), [1, 2]); // scale from amax 1
 * strictEqual(dequantizeFp8(q)[1], 1); // 10 saturated to the old amax
 * ```
 */
export class DelayedScaling {
  /** Steps of amax kept. */
  readonly historyLength: number;
  #options: DelayedScalingOptions;
  #history: Float32Array[] = [];
  #shape: readonly [number, number] | null = null;

  /** Create a scaler with an empty history. */
  constructor(options: DelayedScalingOptions = {}) {
    const { historyLength = 16 } = options;
    if (!Number.isInteger(historyLength) || historyLength <= 0) {
      throw new RangeError(
        `Cannot keep an amax history of length ${historyLength}: expected a positive integer`,
      );
    }
    this.historyLength = historyLength;
    this.#options = { ...options };
  }

  /** The recorded amax grids, oldest first (copies). */
  get amaxHistory(): Float32Array[] {
    return this.#history.map((a) => a.slice());
  }

  /**
   * Quantise with scales from the history, then record this matrix's amax.
   *
   * @param x Row-major values of shape `shape`.
   * @param shape `[R, C]`, the same on every call.
   * @returns Packed codes and the (history) scales.
   */
  quantize(x: Float32Array, shape: readonly [number, number]): Fp8Quantized {
    const prev = this.#shape;
    if (prev !== null && (prev[0] !== shape[0] || prev[1] !== shape[1])) {
      throw new RangeError(
        `Cannot quantize shape [${shape.join(", ")}] with delayed scaling: expected [${
          prev.join(", ")
        }] as in the amax history`,
      );
    }
    const current = blockAmax(x, shape, this.#options);
    const amax = this.#history.length === 0 ? current.slice() : new Float32Array(current.length);
    for (const past of this.#history) {
      for (let i = 0; i < amax.length; i++) amax[i] = Math.max(amax[i], past[i]);
    }
    const scales = scalesFromAmax(amax, this.#options);
    const q = quantizeFp8(x, shape, { ...this.#options, scales });
    this.#shape = [shape[0], shape[1]];
    this.#history.push(current);
    if (this.#history.length > this.historyLength) this.#history.shift();
    return q;
  }
}
