/**
 * The two FP8 encodings of DeepSeek-V3 §3.3 (arXiv:2412.19437), defined bit by bit, and the
 * cast from float32 with round to nearest, ties to even.
 *
 * A code is one byte `S EEEE MMM` (E4M3) or `S EEEEE MM` (E5M2). With exponent field `e`,
 * mantissa field `m`, `manBits` mantissa bits and bias `b`:
 * - `e > 0` (normal): `(−1)^S · 2^(e − b) · (1 + m / 2^manBits)`
 * - `e = 0` (subnormal): `(−1)^S · 2^(1 − b) · (m / 2^manBits)`, so `S.0000.000` is ±0
 * - specials: E4M3 (the "fn" variant: finite and NaN) has no infinities and only `S.1111.111`
 *   is NaN, which frees `S.1111.000`–`S.1111.110` for values up to 448. E5M2 follows IEEE 754:
 *   `S.11111.00` is ±inf and `S.11111.{01,10,11}` are NaNs, so its largest value is 57344.
 *
 * Encoding works on the float32 bit pattern, as a GPU kernel would (`bitcast<u32>`): the 24-bit
 * significand is shifted right to the FP8 precision and rounded with the bits shifted out. A JS
 * number is therefore first rounded to float32 (what storing it in a `Float32Array` does).
 *
 * Ref: Micikevicius et al., "FP8 Formats for Deep Learning", arXiv:2209.05433, Table 1.
 *
 * @module
 */

/** Name of an FP8 encoding. */
export type Fp8FormatName = "e4m3" | "e5m2";

/**
 * How the all-ones exponent field is used: `"ieee"` (±inf and NaNs, as E5M2) or `"fn"` (finite
 * and NaN: no infinities, only `S.1…1.1…1` is NaN, as E4M3).
 */
export type Fp8Specials = "ieee" | "fn";

/** Description of one FP8 encoding: enough to encode and decode it generically. */
export interface Fp8Format {
  /** `"e4m3"` or `"e5m2"`. */
  readonly name: Fp8FormatName;
  /** Width of the exponent field. */
  readonly expBits: number;
  /** Width of the mantissa (fraction) field; the significand has `manBits + 1` bits. */
  readonly manBits: number;
  /** Exponent bias: a normal code with field `e` has exponent `e − bias`. */
  readonly bias: number;
  /** How the all-ones exponent field is used. */
  readonly specials: Fp8Specials;
  /** Largest finite magnitude. */
  readonly max: number;
  /** Smallest positive normal, `2^(1 − bias)`. */
  readonly minNormal: number;
  /** Smallest positive subnormal, `2^(1 − bias − manBits)`. */
  readonly minSubnormal: number;
  /** Code of `+max` (sign bit clear); `0x80 | maxCode` is `−max`. */
  readonly maxCode: number;
  /** Canonical NaN code written by the encoder (sign bit clear). */
  readonly nanCode: number;
  /** Code of `+inf`, or `null` when the format has no infinities. */
  readonly infCode: number | null;
}

/** E4M3: 1 sign, 4 exponent, 3 mantissa bits, bias 7, max 448 = `S.1111.110`, no infinities. */
export const E4M3: Fp8Format = Object.freeze({
  name: "e4m3",
  expBits: 4,
  manBits: 3,
  bias: 7,
  specials: "fn",
  max: 448, // 2^(15 − 7) · 1.75
  minNormal: 2 ** -6,
  minSubnormal: 2 ** -9,
  maxCode: 0x7e,
  nanCode: 0x7f, // S.1111.111, the only NaN
  infCode: null,
});

/** E5M2: 1 sign, 5 exponent, 2 mantissa bits, bias 15, max 57344 = `S.11110.11`, IEEE inf/NaN. */
export const E5M2: Fp8Format = Object.freeze({
  name: "e5m2",
  expBits: 5,
  manBits: 2,
  bias: 15,
  specials: "ieee",
  max: 57344, // 2^(30 − 15) · 1.75
  minNormal: 2 ** -14,
  minSubnormal: 2 ** -16,
  maxCode: 0x7b,
  nanCode: 0x7e, // S.11111.10, the quiet NaN (top mantissa bit set), as float16 → E5M2 gives
  infCode: 0x7c, // S.11111.00
});

/** Both formats by name, for configs that name a format with a string. */
export const FP8_FORMATS: Readonly<Record<Fp8FormatName, Fp8Format>> = Object.freeze({
  e4m3: E4M3,
  e5m2: E5M2,
});

/** Options for {@linkcode encodeFp8} and {@linkcode quantizeArray}. */
export interface EncodeOptions {
  /**
   * Saturating cast, as in training: finite values past the largest finite value and ±inf
   * become `±max`. Without it an overflow becomes NaN (E4M3) or ±inf (E5M2). NaN stays NaN.
   *
   * @default {true}
   */
  saturate?: boolean;
}

// Scratch views for reading and writing float32 bit patterns.
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * Whether `code` is a NaN of `format`.
 *
 * @param code A byte, 0–255.
 * @param format The encoding.
 * @returns `true` for the NaN codes: `0x7f`, `0xff` (E4M3); `S.11111.{01,10,11}` (E5M2).
 *
 * @example E4M3 has two NaN codes, E5M2 six
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { E4M3, E5M2, isNanCode } from "./format.ts";
 * const codes = Array.from({ length: 256 }, (_, c) => c);
 * strictEqual(codes.filter((c) => isNanCode(c, E4M3)).length, 2);
 * strictEqual(codes.filter((c) => isNanCode(c, E5M2)).length, 6);
 * ```
 */
export function isNanCode(code: number, format: Fp8Format): boolean {
  const mag = code & 0x7f;
  const expAllOnes = (mag >>> format.manBits) === (1 << format.expBits) - 1;
  const frac = mag & ((1 << format.manBits) - 1);
  switch (format.specials) {
    case "fn":
      return expAllOnes && frac === (1 << format.manBits) - 1;
    case "ieee":
      return expAllOnes && frac !== 0;
    default:
      return format.specials satisfies never;
  }
}

/**
 * Decode one FP8 code to its value, from the bit fields (see the module header).
 *
 * @param code A byte, 0–255.
 * @param format The encoding.
 * @returns The value: a signed zero, a subnormal, a normal, ±inf (E5M2) or NaN.
 *
 * @example Largest values, smallest subnormals and specials
 * ```ts
 * import { strictEqual, ok } from "node:assert/strict";
 * import { decodeFp8, E4M3, E5M2 } from "./format.ts";
 * strictEqual(decodeFp8(0x7e, E4M3), 448); // 0.1111.110
 * strictEqual(decodeFp8(0x01, E4M3), 2 ** -9); // 0.0000.001
 * ok(Number.isNaN(decodeFp8(0xff, E4M3))); // 1.1111.111
 * strictEqual(decodeFp8(0x7b, E5M2), 57344); // 0.11110.11
 * strictEqual(decodeFp8(0xfc, E5M2), -Infinity); // 1.11111.00
 * strictEqual(decodeFp8(0x80, E5M2), -0);
 * ```
 */
export function decodeFp8(code: number, format: Fp8Format): number {
  if (!Number.isInteger(code) || code < 0 || code > 255) {
    throw new RangeError(`Cannot decode FP8 code ${code}: expected an integer in [0, 255]`);
  }
  if (isNanCode(code, format)) return NaN;
  const m = format.manBits;
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >>> m) & ((1 << format.expBits) - 1);
  const frac = code & ((1 << m) - 1);
  if (format.infCode !== null && (code & 0x7f) === format.infCode) return sign * Infinity;
  if (e === 0) return sign * frac * 2 ** (1 - format.bias - m); // subnormal (or ±0)
  return sign * ((1 << m) + frac) * 2 ** (e - format.bias - m); // normal, implicit leading 1
}

/**
 * Encode a number as FP8: round to float32, then to nearest FP8 value, ties to even.
 *
 * Rounding works on integers. A float32 `x = sig · 2^(e − 23)` has a 24-bit significand `sig`.
 * The FP8 result has exponent `E = max(e, 1 − bias)` (below `1 − bias` it is subnormal), so its
 * significand in units of its last place `2^(E − manBits)` is `sig >> shift` with
 * `shift = 23 − manBits + (E − e)`. The bits shifted out decide the rounding: above half a unit
 * round up, below round down, exactly half round to the even significand. The code is then
 * `((E + bias − 1) << manBits) + q`, which also covers a subnormal rounding up to the smallest
 * normal and a significand carry into the next binade.
 *
 * Overflow rule: `|x|` overflows when rounding it to the format's precision with an unbounded
 * exponent gives more than `max`. E4M3: `|x| > 464` (464, half-way between 448 and 480, ties to
 * 448). E5M2: `|x| ≥ 61440` (half-way between 57344 and 65536, ties to 65536). Overflow and ±inf
 * give `±max` when saturating; otherwise NaN (E4M3) or ±inf (E5M2). NaN gives the canonical NaN
 * with the input's sign bit. Values of at most half the smallest subnormal give ±0.
 *
 * @param x The value (rounded to float32 first).
 * @param format The encoding.
 * @param options Saturation.
 * @returns The code, 0–255.
 *
 * @example Ties to even, saturation and the non-saturating cast
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { E4M3, E5M2, encodeFp8 } from "./format.ts";
 * strictEqual(encodeFp8(1.0625, E4M3), 0x38); // half-way between 1 (0x38) and 1.125 (0x39): even
 * strictEqual(encodeFp8(1.1875, E4M3), 0x3a); // half-way between 1.125 and 1.25 (0x3a): even
 * strictEqual(encodeFp8(1000, E4M3), 0x7e); // saturates to 448
 * strictEqual(encodeFp8(1000, E4M3, { saturate: false }), 0x7f); // NaN
 * strictEqual(encodeFp8(-1e6, E5M2, { saturate: false }), 0xfc); // -inf
 * strictEqual(encodeFp8(-1e-30, E4M3), 0x80); // -0
 * ```
 */
export function encodeFp8(x: number, format: Fp8Format, options: EncodeOptions = {}): number {
  const { saturate = true } = options;
  F32[0] = x;
  const bits = U32[0];
  const sign = (bits >>> 31) << 7;
  const expField = (bits >>> 23) & 0xff;
  const frac = bits & 0x7fffff;
  if (expField === 0xff) {
    return sign | (frac !== 0 ? format.nanCode : overflowCode(format, saturate));
  }
  // ±0 and float32 subnormals (|x| < 2^-126) are far below half of any FP8 subnormal.
  if (expField === 0) return sign;

  const m = format.manBits;
  const sig = frac | 0x800000; // 24-bit significand with the implicit leading 1
  const e = expField - 127; // x = sig · 2^(e − 23)
  const eOut = Math.max(e, 1 - format.bias); // exponent of the FP8 result (subnormal: 1 − bias)
  const shift = 23 - m + (eOut - e); // ≥ 20: bits below the FP8 last place 2^(eOut − m)
  if (shift > 24) return sign; // |x| < 2^(eOut − m − 1): below half the smallest subnormal

  let q = sig >>> shift; // significand in units of 2^(eOut − m), truncated
  const rest = sig - (q << shift); // the bits shifted out
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q += 1; // nearest, ties to even

  const mag = ((eOut + format.bias - 1) << m) + q;
  return sign | (mag > format.maxCode ? overflowCode(format, saturate) : mag);
}

/** Code (sign bit clear) of an overflow or ±inf: max when saturating, else inf or NaN. */
function overflowCode(format: Fp8Format, saturate: boolean): number {
  if (saturate) return format.maxCode;
  return format.infCode ?? format.nanCode;
}

const TABLES = new Map<Fp8FormatName, Float32Array>();

/** The cached 256-entry decode table of `format` (shared: callers must not write to it). */
function sharedTable(format: Fp8Format): Float32Array {
  let table = TABLES.get(format.name);
  if (table === undefined) {
    table = new Float32Array(256);
    for (let c = 0; c < 256; c++) table[c] = decodeFp8(c, format);
    TABLES.set(format.name, table);
  }
  return table;
}

/**
 * The value of every code of `format`, indexed by code (every FP8 value is exact in float32).
 *
 * @param format The encoding.
 * @returns A new `Float32Array` of 256 values (NaN at the NaN codes).
 *
 * @example Index 0x7e of the E4M3 table is 448
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { decodeTable, E4M3 } from "./format.ts";
 * strictEqual(decodeTable(E4M3)[0x7e], 448);
 * ```
 */
export function decodeTable(format: Fp8Format): Float32Array {
  return sharedTable(format).slice();
}

/** Options for {@linkcode quantizeArray}. */
export interface QuantizeArrayOptions extends EncodeOptions {
  /** One scale for the whole array: codes hold `x / scale` ("scale_inv" convention). @default {1} */
  scale?: number;
  /** Array to write the codes into; a new one when omitted. */
  out?: Uint8Array;
}

/** Options for {@linkcode dequantizeArray}. */
export interface DequantizeArrayOptions {
  /** The scale the codes were quantised with: values are `decode(code) · scale`. @default {1} */
  scale?: number;
  /** Array to write the values into; a new one when omitted. */
  out?: Float32Array;
}

function checkScale(scale: number, action: string): void {
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new RangeError(`Cannot ${action} with scale ${scale}: expected a positive finite number`);
  }
}

function checkOut(out: { length: number }, length: number, action: string): void {
  if (out.length !== length) {
    throw new RangeError(
      `Cannot ${action} ${length} values into an array of length ${out.length}: expected equal lengths`,
    );
  }
}

/**
 * Quantise a float32 array to FP8 codes with one scale: `code[i] = encode(fp32(src[i] / scale))`.
 *
 * @param src The values.
 * @param format The encoding.
 * @param options Scale, saturation and output array.
 * @returns The codes, one byte per value.
 *
 * @example Quantise with scale 2 and dequantise
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { dequantizeArray, E4M3, quantizeArray } from "./format.ts";
 * const codes = quantizeArray(new Float32Array([1, -3, 2000]), E4M3, { scale: 2 });
 * deepStrictEqual(dequantizeArray(codes, E4M3, { scale: 2 }), new Float32Array([1, -3, 896]));
 * ```
 */
export function quantizeArray(
  src: Float32Array,
  format: Fp8Format,
  options: QuantizeArrayOptions = {},
): Uint8Array {
  const { scale = 1, saturate = true, out = new Uint8Array(src.length) } = options;
  checkScale(scale, "quantize");
  checkOut(out, src.length, "quantize");
  for (let i = 0; i < src.length; i++) {
    out[i] = encodeFp8(Math.fround(src[i] / scale), format, { saturate });
  }
  return out;
}

/**
 * Dequantise FP8 codes with one scale: `value[i] = fp32(decode(code[i]) · scale)`.
 *
 * @param codes The codes.
 * @param format The encoding they were written in.
 * @param options Scale and output array.
 * @returns The values.
 *
 * @example Codes 0x38 and 0xb8 are ±1 in E4M3
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { dequantizeArray, E4M3 } from "./format.ts";
 * const values = dequantizeArray(new Uint8Array([0x38, 0xb8]), E4M3, { scale: 0.5 });
 * deepStrictEqual(values, new Float32Array([0.5, -0.5]));
 * ```
 */
export function dequantizeArray(
  codes: Uint8Array,
  format: Fp8Format,
  options: DequantizeArrayOptions = {},
): Float32Array {
  const { scale = 1, out = new Float32Array(codes.length) } = options;
  checkScale(scale, "dequantize");
  checkOut(out, codes.length, "dequantize");
  const table = sharedTable(format);
  for (let i = 0; i < codes.length; i++) out[i] = table[codes[i]] * scale;
  return out;
}
