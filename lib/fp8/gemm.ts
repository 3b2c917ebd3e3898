/**
 * FP8 GEMM simulation on typed arrays: `C[M, N] = A[M, K] · B[K, N]` with FP8 inputs, a
 * limited-precision accumulator and promotion to FP32 every `N_C` elements of K, the scheme of
 * DeepSeek-V3 §3.3.2 "Increasing Accumulation Precision" (arXiv:2412.19437, Figure 7b).
 *
 * Shape letters: `M` rows of A and C, `K` the inner dimension, `N` columns of B and C, `N_C` the
 * promotion interval. A is quantised with 1×128 tiles along K (activations), B with 128×128
 * blocks (weights); see `scaling.ts`.
 *
 * The model, for one output `C[i, j]`:
 * 1) products: `p_k = a_ik · b_kj` of the decoded codes, without scales. Exact: two FP8
 *    significands have at most 4 bits each, so a product has at most 8.
 * 2) limited accumulator (the Tensor Core): a running sum `s ← round(s + p_k)`, rounded after
 *    every add to `accumulatorBits` mantissa bits, i.e. a `(accumulatorBits + 1)`-bit
 *    significand; V3 measured "around 14 bits" on H800. Only the width is modelled: the exponent
 *    range is unbounded. The default rounding is toward zero (`"truncate"`): the Tensor Cores of
 *    V100, T4 and A100 measured by Fasi et al. (PeerJ CS 7:e330, 2021) align the addends to the
 *    largest exponent in a fixed-width register and drop the bits shifted out (H800's FP8 path
 *    is undocumented; this model truncates the exact sum, which is close). Truncation errors take
 *    the sign of the sum, so they add up about linearly in K: with 14 bits, no promotion and normal
 *    inputs the norm-wise relative error is about 1.3% at K = 4096 (tests/fp8/gemm_test.ts),
 *    the size V3 reports ("nearly 2%" maximum). `"nearest"` (ties to even) is the optimistic
 *    model: its errors are a random walk and grow like √K, about 0.03% at K = 4096.
 * 3) promotion (the CUDA cores): every `N_C` elements of K (and at the end of K) the partial sum
 *    is scaled and added to an FP32 accumulator, `acc ← fp32(acc + fp32(s · fp32(sa · sb)))`,
 *    where `sa`, `sb` are the scales of A's tile and B's block for this stretch of K; then
 *    `s ← 0`. `N_C = Infinity` never promotes: the whole of K stays in the limited accumulator.
 *
 * Because scales are applied at promotion, they must be constant over each interval: `N_C` must
 * divide the K-extent of A's tiles and B's blocks (128 each), unless those cover all of K (per-
 * tensor scales). Fine-grained scaling therefore needs promotion at least every 128 elements, as
 * in V3; to see the error of never promoting, quantise with per-tensor scales.
 *
 * @module
 */

import { decodeTable } from "./format.ts";
import type { Fp8Quantized } from "./scaling.ts";

/** A row-major float32 matrix. */
export interface Fp32Matrix {
  /** Row-major values, `shape[0] · shape[1]` of them. */
  readonly data: Float32Array;
  /** `[rows, cols]`. */
  readonly shape: readonly [number, number];
}

/** How the limited accumulator rounds: to nearest (ties to even), or toward zero. */
export type AccumulatorRounding = "nearest" | "truncate";

/** Options for {@linkcode fp8Matmul}. */
export interface Fp8MatmulOptions {
  /** Mantissa bits kept by the limited accumulator, 1–52 (float32 has 23). @default {14} */
  accumulatorBits?: number;
  /** Rounding of the limited accumulator after each add. @default {"truncate"} */
  accumulatorRounding?: AccumulatorRounding;
  /** `N_C`: elements of K per promotion to FP32; `Infinity` never promotes. @default {128} */
  promotionInterval?: number;
}

/** Options for {@linkcode roundMantissa}. */
export interface RoundMantissaOptions {
  /** To nearest (ties to even), or toward zero. @default {"nearest"} */
  rounding?: AccumulatorRounding;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > 52) {
    throw new RangeError(
      `Cannot accumulate with ${bits} mantissa bits: expected an integer in [1, 52]`,
    );
  }
}

/** `x` rounded to a `(bits + 1)`-bit significand, unbounded exponent; see {@linkcode roundMantissa}. */
function roundBits(x: number, bits: number, truncate: boolean): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax)); // exponent of the leading bit; log2 may be off by one
  if (2 ** e > ax) e -= 1;
  else if (2 ** (e + 1) <= ax) e += 1;
  const ulp = 2 ** Math.max(e - bits, -1074); // weight of the last kept bit
  const s = ax / ulp; // exact (power-of-two scaling): an integer part of bits + 1 bits
  let q = Math.floor(s);
  if (!truncate) {
    const rest = s - q; // exact
    if (rest > 0.5 || (rest === 0.5 && q % 2 === 1)) q += 1;
  }
  return Math.sign(x) * q * ulp;
}

/**
 * Round `x` to `bits` mantissa bits (a `bits + 1`-bit significand) with an unbounded exponent:
 * the limited accumulator's rounding.
 *
 * @param x The value.
 * @param bits Mantissa bits kept, 1–52.
 * @param options Rounding mode.
 * @returns `x` rounded; zeros, infinities and NaN unchanged.
 *
 * @example 1 + 2^-15 needs 15 mantissa bits
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { roundMantissa } from "./gemm.ts";
 * strictEqual(roundMantissa(1 + 2 ** -15, 14), 1); // tie, to even
 * strictEqual(roundMantissa(1 + 3 * 2 ** -15, 14), 1 + 2 ** -13); // tie, to even
 * strictEqual(roundMantissa(-(1 + 3 * 2 ** -15), 14, { rounding: "truncate" }), -(1 + 2 ** -14));
 * ```
 */
export function roundMantissa(
  x: number,
  bits: number,
  options: RoundMantissaOptions = {},
): number {
  const { rounding = "nearest" } = options;
  checkBits(bits);
  return roundBits(x, bits, truncates(rounding));
}

function truncates(rounding: AccumulatorRounding): boolean {
  switch (rounding) {
    case "nearest":
      return false;
    case "truncate":
      return true;
    default: {
      const name: never = rounding;
      throw new RangeError(
        `Cannot accumulate with rounding '${name}': expected 'nearest' or 'truncate'`,
      );
    }
  }
}

/**
 * Plain float32 matmul, the reference: `C[i, j] = Σ_k A[i, k] · B[k, j]`, each product and each
 * partial sum rounded to float32, k in order.
 *
 * @param a `[M, K]`.
 * @param b `[K, N]`.
 * @returns Row-major `C`, `[M, N]`.
 *
 * @example [1, 2] · [[3], [4]] = [11]
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { matmulF32 } from "./gemm.ts";
 * const a = { data: new Float32Array([1, 2]), shape: [1, 2] as const };
 * const b = { data: new Float32Array([3, 4]), shape: [2, 1] as const };
 * deepStrictEqual(matmulF32(a, b), new Float32Array([11]));
 * ```
 */
export function matmulF32(a: Fp32Matrix, b: Fp32Matrix): Float32Array {
  const [m, k, n] = checkMatmul(a.shape, b.shape);
  for (const [x, name] of [[a, "A"], [b, "B"]] as const) {
    if (x.data.length !== x.shape[0] * x.shape[1]) {
      throw new RangeError(
        `Cannot matmul ${name} of shape [${
          x.shape.join(", ")
        }] with ${x.data.length} values: expected ${x.shape[0] * x.shape[1]}`,
      );
    }
  }
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let kk = 0; kk < k; kk++) {
        acc = Math.fround(acc + Math.fround(a.data[i * k + kk] * b.data[kk * n + j]));
      }
      c[i * n + j] = acc;
    }
  }
  return c;
}

function checkMatmul(
  a: readonly [number, number],
  b: readonly [number, number],
): [number, number, number] {
  if (a[1] !== b[0]) {
    throw new RangeError(
      `Cannot matmul shapes [${a.join(", ")}] and [${
        b.join(", ")
      }]: expected A's columns to equal B's rows`,
    );
  }
  return [a[0], a[1], b[1]];
}

/** Throw unless every promotion interval lies within one scale group of `name` (K-extent `g`). */
function checkInterval(interval: number, group: number, k: number, name: string): void {
  if (group >= k) return; // one scale along all of K
  if (!Number.isFinite(interval) || group % interval !== 0) {
    throw new RangeError(
      `Cannot promote every ${interval} elements of K: ${name}'s scales change every ${group} elements of K, expected an interval that divides ${group}`,
    );
  }
}

/**
 * Check the accumulator options of an FP8 GEMM against its operands' scale groups and fill the
 * defaults: every backend's {@linkcode fp8Matmul} kernel checks its spec with this.
 *
 * @param groupA Elements of K per scale of A (its block width; `k` or more for one scale).
 * @param groupB Elements of K per scale of B (its block height).
 * @param k The inner dimension.
 * @param options Accumulator width and rounding, promotion interval.
 * @returns The options with every default filled.
 *
 * @example Promotion must not straddle a change of scale
 * ```ts
 * import { deepStrictEqual, throws } from "node:assert/strict";
 * import { checkFp8Matmul } from "./gemm.ts";
 * deepStrictEqual(checkFp8Matmul(128, 128, 256), {
 *   accumulatorBits: 14, accumulatorRounding: "truncate", promotionInterval: 128,
 * });
 * throws(() => checkFp8Matmul(128, 128, 256, { promotionInterval: 96 }), /divides 128/);
 * ```
 */
export function checkFp8Matmul(
  groupA: number,
  groupB: number,
  k: number,
  options: Fp8MatmulOptions = {},
): Required<Fp8MatmulOptions> {
  const { accumulatorBits = 14, accumulatorRounding = "truncate", promotionInterval = 128 } =
    options;
  checkBits(accumulatorBits);
  truncates(accumulatorRounding);
  const nc = promotionInterval;
  if (!(nc === Infinity || (Number.isInteger(nc) && nc > 0))) {
    throw new RangeError(
      `Cannot promote every ${nc} elements of K: expected a positive integer or Infinity`,
    );
  }
  checkInterval(nc, groupA, k, "A");
  checkInterval(nc, groupB, k, "B");
  return { accumulatorBits, accumulatorRounding, promotionInterval: nc };
}

/**
 * Simulated FP8 GEMM `C = A · B` with a limited-precision accumulator promoted to FP32 every
 * `N_C` elements of K, scales applied at promotion (see the module header for the model).
 *
 * @param a `[M, K]`, quantised (1×128 tiles along K in V3).
 * @param b `[K, N]`, quantised (128×128 blocks in V3).
 * @param options Accumulator width and rounding, promotion interval.
 * @returns Row-major float32 `C`, `[M, N]`.
 *
 * @example Close to the float32 product of the dequantised inputs
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { fp8Matmul, matmulF32 } from "./gemm.ts";
 * import { dequantizeFp8, quantizeFp8 } from "./scaling.ts";
 * const x = Float32Array.from({ length: 2 * 256 }, (_, i) => Math.sin(i));
 * const w = Float32Array.from({ length: 256 * 3 }, (_, i) => Math.cos(i));
 * const a = quantizeFp8(x, [2, 256]); // 1×128 tiles
 * const b = quantizeFp8(w, [256, 3], { granularity: "block" }); // 128×128 blocks
 * const c = fp8Matmul(a, b);
 * const ref = matmulF32(
 *   { data: dequantizeFp8(a), shape: [2, 256] },
 *   { data: dequantizeFp8(b), shape: [256, 3] },
 * );
 * ok(c.every((v, i) => Math.abs(v - ref[i]) < 1e-2));
 * ```
 */
export function fp8Matmul(
  a: Fp8Quantized,
  b: Fp8Quantized,
  options: Fp8MatmulOptions = {},
): Float32Array {
  const [m, k, n] = checkMatmul(a.shape, b.shape);
  const groupA = a.blockShape[1], groupB = b.blockShape[0]; // K-extent of one scale
  const { accumulatorBits, accumulatorRounding, promotionInterval: nc } = checkFp8Matmul(
    groupA,
    groupB,
    k,
    options,
  );
  const truncate = accumulatorRounding === "truncate";

  // Decoded codes (no scales): A row-major [M, K], B transposed to [N, K] for contiguous k.
  const tableA = decodeTable(a.format), tableB = decodeTable(b.format);
  const av = new Float64Array(m * k);
  for (let i = 0; i < m * k; i++) av[i] = tableA[a.codes[i]];
  const bt = new Float64Array(n * k);
  for (let kk = 0; kk < k; kk++) {
    for (let j = 0; j < n; j++) bt[j * k + kk] = tableB[b.codes[kk * n + j]];
  }

  const step = Math.min(nc, k);
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const aRow = Math.floor(i / a.blockShape[0]) * a.scaleShape[1];
    for (let j = 0; j < n; j++) {
      const bCol = Math.floor(j / b.blockShape[1]);
      let acc = 0; // the FP32 accumulator
      for (let k0 = 0; k0 < k; k0 += step) {
        const k1 = Math.min(k0 + step, k);
        let s = 0; // the limited accumulator, in units of the codes
        for (let kk = k0; kk < k1; kk++) {
          s = roundBits(s + av[i * k + kk] * bt[j * k + kk], accumulatorBits, truncate);
        }
        const sa = a.scales[aRow + Math.floor(k0 / groupA)];
        const sb = b.scales[Math.floor(k0 / groupB) * b.scaleShape[1] + bCol];
        acc = Math.fround(acc + Math.fround(s * Math.fround(sa * sb)));
      }
      c[i * n + j] = acc;
    }
  }
  return c;
}
