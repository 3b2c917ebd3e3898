/**
 * WGSL FP8 kernels (DeepSeek-V3 §3.3, arXiv:2412.19437): online quantisation with per-tensor,
 * 1×128-tile or 128×128-block scales, dequantisation, and the GEMM simulation with a limited
 * accumulator promoted to FP32 every `N_C` elements of K. The cpu twin is
 * `lib/backend/cpu/fp8.ts`, which runs the definitions of `lib/fp8` (format.ts, scaling.ts,
 * gemm.ts); tests/backend/fp8_test.ts checks these kernels against it bit for bit.
 *
 * Algorithm:
 * - `fp8RowAmax`: invocation `(r, g)` takes the largest magnitude of row `r` within column block
 *   `g` (NaNs skipped, as `blockAmax`): `[R, gridCols]` partials.
 * - `fp8Scales`: invocation `b` folds the partials of block `b`'s rows into its amax and writes
 *   `scale = fp32(max(amax, floor) / max)` (the floor's scale and threshold computed on the
 *   host, so a floor that is not a float32 behaves as in `scalesFromAmax`), rounded up to a
 *   power of two on request. Two passes instead of a workgroup reduction: no barriers, which are
 *   expensive on CPU drivers (shared/notes of the project: docs/…); the second pass loops over
 *   at most `tileSize` rows (all `R` per tensor).
 * - `fp8Quantize`: one invocation per element, `code = encode(x / scale)` with integer
 *   arithmetic on the float32 bits (below).
 * - `fp8Dequantize`: one invocation per element, `decode(code) · scale`.
 * - `fp8Matmul`: one invocation per output `C[i, j]`; the limited accumulator is an f32 rounded
 *   to `accumulatorBits` after every add, the sum `s + p` made exact with TwoSum (`hi + lo`), so
 *   the rounding sees the exact sum as the float64 reference does (exact there for E4M3 operands:
 *   spans below 53 bits). TwoSum and the promotion `acc + fp32(s · sc)` pass their intermediates
 *   through `opaque()`, an OR with a zero the compiler cannot see: drivers may otherwise apply
 *   rewrites valid only in real numbers (Mesa's NIR turns `(s + p) − s` into `p`, which zeroes
 *   TwoSum's error term) or contract the promotion into an FMA.
 * Encoding (per element, integer arithmetic on the float32 bits, as format.ts): split sign,
 * exponent and significand; pick the FP8 exponent (clamped to the subnormal exponent
 * `1 − bias`); shift the 24-bit significand right to the FP8 last place and round the
 * shifted-out bits to nearest, ties to even (a carry into the exponent field is the correct next
 * binade); overflow past the largest finite code saturates or becomes inf/NaN.
 * Per-thread work: O(tileSize) for the amax passes, O(1) for the codecs, O(K) for the GEMM. No
 * workgroup memory.
 * Limits: `R · C` < 2³² elements; codes are `u8` storages (one code per u32 word); the GEMM's
 * accumulator keeps at most 23 mantissa bits (float32); division `x / scale` must be correctly
 * rounded for bit equality with the cpu backend (it is on Mesa's lavapipe; WGSL allows 2.5 ulp).
 *
 * @module
 */

import type { Fp8BlockSpec, Fp8MatmulSpec, Fp8QuantizeSpec } from "../../backend.ts";
import { FP8_FORMATS, type Fp8Format } from "../../../fp8/format.ts";
import { fp8Grid } from "../../cpu/fp8.ts";
import { ENTRY_WGSL, paramsWgsl } from "../_wgsl.ts";
import { type KernelInfo, kernelInfo } from "../cache.ts";

/** `f32` bits of `v`, for float params. */
function f32Bits(v: number): number {
  return new Uint32Array(new Float32Array([v]).buffer)[0];
}

/** The smallest float32 `≥ v`. */
function ceilF32(v: number): number {
  const f = new Float32Array([v]);
  if (f[0] >= v) return f[0];
  const u = new Uint32Array(f.buffer);
  u[0] += f[0] >= 0 ? 1 : -1;
  return f[0];
}

/**
 * WGSL of `fn encode(x: f32) -> u32`: the FP8 code of `x` in `format`, round to nearest, ties to
 * even, exactly as `encodeFp8` of `lib/fp8/format.ts` (checked bit for bit in
 * tests/backend/fp8_test.ts).
 *
 * @param format The encoding.
 * @param saturate Overflow gives `±max` (else inf or NaN).
 * @returns The WGSL function.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { E4M3 } from "../../../fp8/format.ts";
 * import { encodeFnWgsl } from "./fp8.ts";
 * ok(encodeFnWgsl(E4M3, true).includes("fn encode(x: f32) -> u32"));
 * ```
 */
export function encodeFnWgsl(format: Fp8Format, saturate: boolean): string {
  const overflow = saturate ? format.maxCode : (format.infCode ?? format.nanCode);
  return /* wgsl */ `
fn encode(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 31u) << 7u;
  let expField = (bits >> 23u) & 0xffu;
  let frac = bits & 0x7fffffu;
  if (expField == 0xffu) {
    return sign | select(${overflow}u, ${format.nanCode}u, frac != 0u); // inf or NaN
  }
  if (expField == 0u) { return sign; } // ±0 and float32 subnormals
  let sig = frac | 0x800000u;
  let e = i32(expField) - 127;
  let eOut = max(e, ${1 - format.bias}); // subnormal exponent 1 − bias
  let shift = u32(${23 - format.manBits} + (eOut - e));
  if (shift > 24u) { return sign; } // below half the smallest subnormal
  var q = sig >> shift;
  let rest = sig - (q << shift);
  let half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (q & 1u) == 1u)) { q = q + 1u; } // nearest, ties to even
  let mag = (u32(eOut + ${format.bias - 1}) << ${format.manBits}u) + q;
  return sign | select(mag, ${overflow}u, mag > ${format.maxCode}u);
}`;
}

/**
 * WGSL of `fn ${name}(code: u32) -> f32`: the value of an FP8 code (`decodeFp8` of
 * `lib/fp8/format.ts`): a normal code's float32 bits are assembled from its fields, a subnormal
 * is `m · 2^(1 − bias − manBits)` (exact), NaN and inf codes give NaN and ±inf.
 */
function decodeFnWgsl(format: Fp8Format, name: string): string {
  const m = format.manBits, expMask = (1 << format.expBits) - 1, manMask = (1 << m) - 1;
  const nan = format.specials === "fn"
    ? `(mag == ${format.nanCode}u)` // S.1111.111 only
    : `((mag >> ${m}u) == ${expMask}u && (mag & ${manMask}u) != 0u)`;
  const inf = format.infCode === null
    ? ""
    : `\n  if (mag == ${format.infCode}u) { return bitcast<f32>(sign | 0x7f800000u); }`;
  return /* wgsl */ `
fn ${name}(code: u32) -> f32 {
  let sign = (code & 0x80u) << 24u;
  let mag = code & 0x7fu;
  if (${nan}) { return bitcast<f32>(0x7fc00000u); }${inf}
  let e = mag >> ${m}u;
  if (e == 0u) { // subnormal or zero: m · 2^(1 − bias − manBits)
    return bitcast<f32>(sign | bitcast<u32>(f32(mag) * ${2 ** (1 - format.bias - m)}));
  }
  return bitcast<f32>(sign | ((e + ${127 - format.bias}u) << 23u) | ((mag & ${manMask}u) << ${
    23 - m
  }u));
}`;
}

/** `rows · cols`, checked to fit the kernels' u32 indices. */
function elements(spec: Fp8BlockSpec): number {
  const n = spec.rows * spec.cols;
  if (n >= 2 ** 32) {
    throw new Error(`Cannot run FP8 kernels on ${n} elements on webgpu: at most 2^32 − 1`);
  }
  return n;
}

/**
 * Pass 1 of the scales: binding 1 `partial: [R, gridCols]` (amax of each row within each
 * column block), 2 `x: [R, C]`.
 *
 * @param spec The blocks.
 * @returns The kernel launch.
 *
 * @example 1×128 tiles of a [4, 300] matrix: 3 per row
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { fp8RowAmaxKernel } from "./fp8.ts";
 * const spec = { rows: 4, cols: 300, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
 * equal(fp8RowAmaxKernel(spec).n, 12);
 * ```
 */
export function fp8RowAmaxKernel(spec: Fp8BlockSpec): KernelInfo {
  const { bc, gridCols } = fp8Grid(spec);
  elements(spec);
  const code = /* wgsl */ `
${paramsWgsl("[rows · gridCols, cols, block cols, gridCols]")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // amax partials [R, gridCols]
@group(0) @binding(2) var<storage, read> x: array<f32>; // values [R, C]
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let cols = param(1);
  let row = i / param(3);
  let c0 = (i % param(3)) * param(2);
  let c1 = min(c0 + param(2), cols);
  var m = 0.0;
  for (var c = c0; c < c1; c++) {
    let a = abs(x[row * cols + c]);
    if (a > m) { m = a; } // NaN compares false: skipped, as blockAmax
  }
  out[i] = m;
}`;
  return kernelInfo("fp8RowAmax", code, spec.rows * gridCols, [
    spec.rows * gridCols,
    spec.cols,
    bc,
    gridCols,
  ], "f32");
}

/**
 * Pass 2 of the scales: binding 1 `scales: [gridRows, gridCols]`, 2 `partial: [R, gridCols]`.
 *
 * @param spec The blocks, format, amax floor and power-of-two rounding.
 * @returns The kernel launch.
 *
 * @example 128×128 blocks of a [300, 300] matrix: a 3 × 3 grid
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { fp8ScalesKernel } from "./fp8.ts";
 * const spec = {
 *   rows: 300, cols: 300, granularity: "block", tileSize: 128, format: "e4m3",
 *   saturate: true, amaxFloor: 1e-4, powerOfTwo: false,
 * } as const;
 * equal(fp8ScalesKernel(spec).n, 9);
 * ```
 */
export function fp8ScalesKernel(spec: Fp8QuantizeSpec): KernelInfo {
  const { br, gridRows, gridCols } = fp8Grid(spec);
  const format = FP8_FORMATS[spec.format];
  if (!(spec.amaxFloor > 0) || !Number.isFinite(spec.amaxFloor)) {
    throw new RangeError(
      `Cannot scale with amax floor ${spec.amaxFloor}: expected a positive finite number`,
    );
  }
  const code = /* wgsl */ `
${
    paramsWgsl(
      "[blocks, rows, block rows, gridCols, floor threshold, floor scale, max (f32 bits), powerOfTwo]",
    )
  }
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // scales [gridRows, gridCols]
@group(0) @binding(2) var<storage, read> partial: array<f32>; // amax partials [R, gridCols]
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let gridCols = param(3);
  let r0 = (i / gridCols) * param(2);
  let r1 = min(r0 + param(2), param(1));
  var amax = 0.0;
  for (var r = r0; r < r1; r++) { amax = max(amax, partial[r * gridCols + i % gridCols]); }
  // scale = fp32(max(amax, floor) / max): the floor's own scale when amax is below it
  var scale = bitcast<f32>(param(5));
  if (amax >= bitcast<f32>(param(4))) { scale = amax / bitcast<f32>(param(6)); }
  let bits = bitcast<u32>(scale);
  if (param(7) != 0u && (bits & 0x7fffffu) != 0u && (bits >> 23u) < 0xffu) {
    scale = bitcast<f32>(((bits >> 23u) + 1u) << 23u); // up to a power of two ("ue8m0")
  }
  out[i] = scale;
}`;
  return kernelInfo("fp8Scales", code, gridRows * gridCols, [
    gridRows * gridCols,
    spec.rows,
    br,
    gridCols,
    f32Bits(ceilF32(spec.amaxFloor)),
    f32Bits(spec.amaxFloor / format.max),
    f32Bits(format.max),
    spec.powerOfTwo ? 1 : 0,
  ], "f32");
}

/**
 * `code = encode(x / scale)` per element: binding 1 `codes: u8 [R, C]`, 2 `x: [R, C]`,
 * 3 `scales: [gridRows, gridCols]`.
 *
 * @param spec The blocks, format and saturation.
 * @returns The kernel launch.
 *
 * @example One pipeline per format and overflow mode
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { fp8QuantizeKernel } from "./fp8.ts";
 * const spec = {
 *   rows: 2, cols: 3, granularity: "tensor", tileSize: 128, format: "e5m2",
 *   saturate: false, amaxFloor: 1e-4, powerOfTwo: false,
 * } as const;
 * equal(fp8QuantizeKernel(spec).key, "fp8Quantize:e5m2:overflow");
 * ```
 */
export function fp8QuantizeKernel(spec: Fp8QuantizeSpec): KernelInfo {
  const { br, bc, gridCols } = fp8Grid(spec);
  const n = elements(spec);
  const code = /* wgsl */ `
${paramsWgsl("[n, cols, block rows, block cols, gridCols]")}
@group(0) @binding(1) var<storage, read_write> out: array<u32>; // codes [R, C], one per word
@group(0) @binding(2) var<storage, read> x: array<f32>; // values [R, C]
@group(0) @binding(3) var<storage, read> scales: array<f32>; // [gridRows, gridCols]
${encodeFnWgsl(FP8_FORMATS[spec.format], spec.saturate)}
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let row = i / param(1);
  let col = i % param(1);
  out[i] = encode(x[i] / scales[(row / param(2)) * param(4) + col / param(3)]);
}`;
  const key = `fp8Quantize:${spec.format}:${spec.saturate ? "saturate" : "overflow"}`;
  return kernelInfo(key, code, n, [n, spec.cols, br, bc, gridCols], "u8");
}

/**
 * `x = decode(code) · scale` per element: binding 1 `x: [R, C]`, 2 `codes: u8 [R, C]`,
 * 3 `scales: [gridRows, gridCols]`.
 *
 * @param spec The blocks and format.
 * @returns The kernel launch.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { fp8DequantizeKernel } from "./fp8.ts";
 * const spec = { rows: 2, cols: 3, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
 * equal(fp8DequantizeKernel(spec).n, 6);
 * ```
 */
export function fp8DequantizeKernel(spec: Fp8BlockSpec): KernelInfo {
  const { br, bc, gridCols } = fp8Grid(spec);
  const n = elements(spec);
  const code = /* wgsl */ `
${paramsWgsl("[n, cols, block rows, block cols, gridCols]")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // values [R, C]
@group(0) @binding(2) var<storage, read> codes: array<u32>; // [R, C], one per word
@group(0) @binding(3) var<storage, read> scales: array<f32>; // [gridRows, gridCols]
${decodeFnWgsl(FP8_FORMATS[spec.format], "decode")}
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let row = i / param(1);
  let col = i % param(1);
  out[i] = decode(codes[i]) * scales[(row / param(2)) * param(4) + col / param(3)];
}`;
  return kernelInfo(
    `fp8Dequantize:${spec.format}`,
    code,
    n,
    [n, spec.cols, br, bc, gridCols],
    "f32",
  );
}

/**
 * WGSL of `fn accumulate(s: f32, p: f32) -> f32`: `s + p` exactly (TwoSum: `hi + lo`), then
 * rounded to `bits` mantissa bits toward zero or to nearest, ties to even — `roundMantissa` of
 * `lib/fp8/gemm.ts` applied to the exact sum.
 */
function accumulateWgsl(bits: number, truncate: boolean): string {
  const k = 23 - bits; // float32 bits below the kept precision
  const mask = `0x${((1 << k) - 1).toString(16)}u`;
  const round = truncate
    ? /* wgsl */ `
  // toward zero: |hi + lo| < |hi| only when lo opposes hi; on a kept value that is one step down
  if ((mag & ${mask}) == 0u && lo != 0.0 && (lo < 0.0) != (hi < 0.0)) {
    return bitcast<f32>(sign | (mag - ${1 << k}u)); // the predecessor (a borrow crosses binades)
  }
  return bitcast<f32>(sign | (mag & ~${mask}));`
    : k === 0
    ? /* wgsl */ `
  return hi; // 23 bits: hi is already the nearest float32`
    : /* wgsl */ `
  let low = mag & ${mask};
  if (low == ${1 << (k - 1)}u && lo != 0.0) { // a tie of hi broken by lo
    let up = (lo < 0.0) == (hi < 0.0);
    return bitcast<f32>(sign | (select(mag - low, mag - low + ${1 << k}u, up)));
  }
  let r = mag + ${(1 << (k - 1)) - 1}u + ((mag >> ${k}u) & 1u); // nearest, ties to even
  return bitcast<f32>(sign | (r & ~${mask}));`;
  return /* wgsl */ `
// opaque(x) = x, behind an OR with a zero the compiler cannot see (param 10): it keeps driver
// rewrites such as (s + p) − s → p, valid in real numbers only, away from TwoSum.
fn opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) | param(10)); }
fn accumulate(s: f32, p: f32) -> f32 {
  let hi = opaque(s + p);
  let bp = opaque(hi - s);
  let lo = (s - (hi - bp)) + (p - bp); // TwoSum: s + p = hi + lo exactly
  let u = bitcast<u32>(hi);
  let sign = u & 0x80000000u;
  let mag = u & 0x7fffffffu;
  if (mag == 0u || mag >= 0x7f800000u) { return hi; } // 0 (then lo = 0), inf, NaN${round}
}`;
}

/**
 * The simulated FP8 GEMM, one invocation per output: binding 1 `C: [m, n]`, 2 A's codes
 * `[m, k]`, 3 A's scales, 4 B's codes `[k, n]`, 5 B's scales.
 *
 * @param spec Sizes, blocks, formats and the accumulator (checked with `checkFp8Matmul`).
 * @returns The kernel launch.
 *
 * @example Formats, accumulator width and rounding are in the key; sizes are params
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { fp8MatmulKernel } from "./fp8.ts";
 * const a = { rows: 2, cols: 256, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
 * const b = { ...a, rows: 256, cols: 3, granularity: "block" } as const;
 * const k = fp8MatmulKernel({
 *   m: 2, n: 3, k: 256, a, b, accumulatorBits: 14, accumulatorRounding: "truncate",
 *   promotionInterval: 128,
 * });
 * equal(k.key, "fp8Matmul:e4m3:e4m3:14:truncate");
 * ```
 */
export function fp8MatmulKernel(spec: Fp8MatmulSpec): KernelInfo {
  const { m, n, k, accumulatorBits: bits } = spec;
  if (bits > 23) {
    throw new RangeError(
      `Cannot simulate a ${bits}-bit FP8 accumulator on webgpu: expected at most 23 mantissa bits (float32)`,
    );
  }
  const a = fp8Grid(spec.a), b = fp8Grid(spec.b); // block sizes and grids of A and B
  const step = Math.min(spec.promotionInterval, k);
  const truncate = spec.accumulatorRounding === "truncate";
  const code = /* wgsl */ `
${
    paramsWgsl(
      "[m · n, n, k, step, A block rows, A block cols, A gridCols, B block rows, B block cols, B gridCols, 0]",
    )
  }
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // C [m, n]
@group(0) @binding(2) var<storage, read> aCodes: array<u32>; // A [m, k], one code per word
@group(0) @binding(3) var<storage, read> aScales: array<f32>; // A's scale grid
@group(0) @binding(4) var<storage, read> bCodes: array<u32>; // B [k, n], one code per word
@group(0) @binding(5) var<storage, read> bScales: array<f32>; // B's scale grid
${decodeFnWgsl(FP8_FORMATS[spec.a.format], "decodeA")}
${decodeFnWgsl(FP8_FORMATS[spec.b.format], "decodeB")}
${accumulateWgsl(bits, truncate)}
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let n = param(1);
  let k = param(2);
  let row = i / n;
  let col = i % n;
  let aRow = (row / param(4)) * param(6); // first scale of A's row
  let bCol = col / param(8); // B's block column
  var acc = 0.0; // the FP32 accumulator
  for (var k0 = 0u; k0 < k; k0 += param(3)) {
    let k1 = min(k0 + param(3), k);
    var s = 0.0; // the limited accumulator, in units of the codes
    for (var kk = k0; kk < k1; kk++) {
      s = accumulate(s, decodeA(aCodes[row * k + kk]) * decodeB(bCodes[kk * n + col])); // exact product
    }
    let sc = aScales[aRow + k0 / param(5)] * bScales[(k0 / param(7)) * param(9) + bCol];
    acc = acc + opaque(s * sc); // promotion, the product rounded first: no FMA
  }
  out[i] = acc;
}`;
  const key = `fp8Matmul:${spec.a.format}:${spec.b.format}:${bits}:${
    truncate ? "truncate" : "nearest"
  }`;
  const params = [m * n, n, k, step, a.br, a.bc, a.gridCols, b.br, b.bc, b.gridCols, 0];
  return kernelInfo(key, code, m * n, params, "f32");
}
