import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  decodeFp8,
  decodeTable,
  dequantizeArray,
  E4M3,
  E5M2,
  encodeFp8,
  FP8_FORMATS,
  type Fp8Format,
  isNanCode,
  quantizeArray,
} from "../../lib/fp8/format.ts";
import { Rng } from "../../lib/tensor/random.ts";

const FORMATS = [E4M3, E5M2];
const CODES = Array.from({ length: 256 }, (_, c) => c);

/**
 * The value of a code straight from the format definitions (arXiv:2209.05433, Table 1), written
 * independently of the codec: sign × 2^(e − bias) × (1 + m / 2^mbits), subnormals, specials.
 */
function specValue(code: number, name: "e4m3" | "e5m2"): number {
  const [ebits, mbits, bias] = name === "e4m3" ? [4, 3, 7] : [5, 2, 15];
  const sign = Math.floor(code / 128) === 1 ? -1 : 1;
  const e = Math.floor(code / 2 ** mbits) % 2 ** ebits;
  const m = code % 2 ** mbits;
  if (name === "e4m3" && e === 15 && m === 7) return NaN; // S.1111.111
  if (name === "e5m2" && e === 31) return m === 0 ? sign * Infinity : NaN; // S.11111.mm
  if (e === 0) return sign * Math.pow(2, 1 - bias) * (m / Math.pow(2, mbits));
  return sign * Math.pow(2, e - bias) * (1 + m / Math.pow(2, mbits));
}

/** The next float32 above (`dir = 1`) or below (`dir = -1`) a positive float32 `x`. */
function nextF32(x: number, dir: 1 | -1): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] += dir;
  return f[0];
}

/** Positive finite values of a format in increasing order, with their codes (0 included). */
function ladder(format: Fp8Format): { code: number; value: number }[] {
  return CODES.filter((c) => c < 0x80)
    .map((code) => ({ code, value: specValue(code, format.name) }))
    .filter(({ value }) => Number.isFinite(value))
    .sort((a, b) => a.value - b.value);
}

Deno.test("decodeFp8() gives the spec value of all 256 codes of E4M3 and E5M2", () => {
  for (const format of FORMATS) {
    for (const code of CODES) {
      const want = specValue(code, format.name);
      const got = decodeFp8(code, format);
      if (Number.isNaN(want)) ok(Number.isNaN(got), `${format.name} 0x${code.toString(16)}`);
      else strictEqual(got, want, `${format.name} 0x${code.toString(16)}`); // Object.is: ±0 kept
    }
  }
});

Deno.test("decodeFp8(): E4M3 and E5M2 landmarks and NaN codes", () => {
  const cases: [Fp8Format, number, number][] = [
    [E4M3, 0x7e, 448],
    [E4M3, 0x08, 2 ** -6],
    [E4M3, 0x07, 7 * 2 ** -9],
    [E4M3, 0x01, 2 ** -9],
    [E4M3, 0x78, 256],
    [E4M3, 0xfe, -448],
    [E4M3, 0x80, -0],
    [E5M2, 0x7b, 57344],
    [E5M2, 0x04, 2 ** -14],
    [E5M2, 0x01, 2 ** -16],
    [E5M2, 0x7c, Infinity],
    [E5M2, 0xfc, -Infinity],
    [E5M2, 0x3c, 1],
  ];
  for (const [format, code, value] of cases) strictEqual(decodeFp8(code, format), value);
  deepStrictEqual(CODES.filter((c) => isNanCode(c, E4M3)), [0x7f, 0xff]);
  deepStrictEqual(CODES.filter((c) => isNanCode(c, E5M2)), [0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff]);
  for (const format of FORMATS) {
    strictEqual(decodeFp8(format.maxCode, format), format.max);
    strictEqual(decodeFp8(0x01, format), format.minSubnormal);
    strictEqual(decodeFp8(1 << format.manBits, format), format.minNormal);
    ok(isNanCode(format.nanCode, format));
    strictEqual(FP8_FORMATS[format.name], format);
  }
  throws(
    () => decodeFp8(256, E4M3),
    /Cannot decode FP8 code 256: expected an integer in \[0, 255\]/,
  );
});

Deno.test("encodeFp8(decodeFp8(c)) === c for every non-NaN code, ±0 included", () => {
  for (const format of FORMATS) {
    for (const code of CODES) {
      if (isNanCode(code, format)) continue;
      const value = decodeFp8(code, format);
      strictEqual(encodeFp8(value, format, { saturate: false }), code, `${format.name} ${value}`);
      if (Number.isFinite(value)) strictEqual(encodeFp8(value, format), code);
    }
    strictEqual(encodeFp8(-0, format), 0x80);
    strictEqual(encodeFp8(0, format), 0x00);
  }
});

Deno.test("encodeFp8() rounds every midpoint to the even code, and off-midpoints to the nearest", () => {
  for (const format of FORMATS) {
    const values = ladder(format);
    let ties = 0;
    for (let i = 0; i + 1 < values.length; i++) {
      const lo = values[i], hi = values[i + 1];
      const mid = (lo.value + hi.value) / 2; // exact in float32: at most 5 significant bits
      strictEqual(Math.fround(mid), mid);
      const even = lo.code % 2 === 0 ? lo.code : hi.code; // the code's last bit is the mantissa's
      for (const sign of [1, -1]) {
        const s = sign === 1 ? 0 : 0x80;
        strictEqual(encodeFp8(sign * mid, format), s | even, `${format.name} ${sign * mid}`);
        strictEqual(encodeFp8(sign * nextF32(mid, -1), format), s | lo.code);
        strictEqual(encodeFp8(sign * nextF32(mid, 1), format), s | hi.code);
      }
      ties++;
    }
    strictEqual(ties, format.maxCode); // one midpoint between each pair of neighbours
  }
});

Deno.test("encodeFp8(): below half the smallest subnormal gives ±0, just above gives it", () => {
  for (const format of FORMATS) {
    const half = format.minSubnormal / 2;
    strictEqual(encodeFp8(half, format), 0x00); // tie between 0 and 0x01: even
    strictEqual(encodeFp8(-half, format), 0x80);
    strictEqual(encodeFp8(nextF32(half, 1), format), 0x01);
    strictEqual(encodeFp8(-nextF32(half, 1), format), 0x81);
    strictEqual(encodeFp8(nextF32(half, -1), format), 0x00);
    strictEqual(encodeFp8(-1e-30, format), 0x80);
    strictEqual(encodeFp8(1e-45, format), 0x00); // a float32 subnormal
    strictEqual(encodeFp8(1.5 * format.minSubnormal, format), 0x02); // tie: 1 → 2 (even)
  }
});

Deno.test("encodeFp8() overflow: saturate to ±max, else NaN (E4M3) or ±inf (E5M2)", () => {
  // E4M3: 464 is half-way between 448 (mantissa 110, even) and 480 (111): it stays 448.
  strictEqual(encodeFp8(464, E4M3, { saturate: false }), 0x7e);
  strictEqual(encodeFp8(nextF32(464, 1), E4M3, { saturate: false }), 0x7f);
  strictEqual(encodeFp8(-nextF32(464, 1), E4M3, { saturate: false }), 0xff);
  strictEqual(encodeFp8(nextF32(464, 1), E4M3), 0x7e);
  strictEqual(encodeFp8(-1e9, E4M3), 0xfe);
  strictEqual(encodeFp8(Infinity, E4M3), 0x7e);
  strictEqual(encodeFp8(-Infinity, E4M3), 0xfe);
  strictEqual(encodeFp8(Infinity, E4M3, { saturate: false }), 0x7f);
  // E5M2: 61440 is half-way between 57344 (mantissa 11, odd) and 65536: it overflows.
  strictEqual(encodeFp8(nextF32(61440, -1), E5M2, { saturate: false }), 0x7b);
  strictEqual(encodeFp8(61440, E5M2, { saturate: false }), 0x7c);
  strictEqual(encodeFp8(-61440, E5M2, { saturate: false }), 0xfc);
  strictEqual(encodeFp8(61440, E5M2), 0x7b);
  strictEqual(encodeFp8(-1e30, E5M2), 0xfb);
  strictEqual(encodeFp8(Infinity, E5M2, { saturate: false }), 0x7c);
  strictEqual(encodeFp8(-Infinity, E5M2), 0xfb);
  // Past float32's range: rounds to inf in float32 first.
  strictEqual(encodeFp8(1e300, E5M2, { saturate: false }), 0x7c);
});

Deno.test("encodeFp8(NaN) is a NaN code in both modes", () => {
  for (const format of FORMATS) {
    for (const saturate of [true, false]) {
      const code = encodeFp8(NaN, format, { saturate });
      ok(isNanCode(code, format));
      ok(Number.isNaN(decodeFp8(code, format)));
      strictEqual(code & 0x7f, format.nanCode);
    }
  }
});

Deno.test("encodeFp8() equals a brute-force nearest-value search on random float32 values", () => {
  const rng = new Rng(7);
  for (const format of FORMATS) {
    const values = ladder(format);
    for (let t = 0; t < 20_000; t++) {
      // Log-uniform magnitudes from below the smallest subnormal to past max.
      const exp = Math.log2(format.minSubnormal) - 2 +
        rng.float() * (Math.log2(format.max) - Math.log2(format.minSubnormal) + 3);
      const x = Math.fround((rng.float() < 0.5 ? -1 : 1) * 2 ** exp);
      const ax = Math.abs(x);
      let best = values[0]; // past max this ends at max: the saturating cast
      for (const v of values) {
        const d = Math.abs(v.value - ax), db = Math.abs(best.value - ax);
        if (d < db || (d === db && v.code % 2 === 0)) best = v;
      }
      strictEqual(encodeFp8(x, format), (x < 0 ? 0x80 : 0) | best.code, `${format.name} ${x}`);
    }
  }
});

Deno.test("quantizeArray() and dequantizeArray() apply the scale and check their arguments", () => {
  const src = new Float32Array([0.3, -7, 1000, 0]);
  const codes = quantizeArray(src, E4M3, { scale: 0.5 });
  deepStrictEqual(codes, new Uint8Array(Array.from(src, (x) => encodeFp8(x / 0.5, E4M3))));
  const back = dequantizeArray(codes, E4M3, { scale: 0.5 });
  deepStrictEqual(back, new Float32Array([0.3125, -7, 224, 0])); // 1000 / 0.5 saturates to 448
  const out = new Uint8Array(4);
  strictEqual(quantizeArray(src, E5M2, { out }), out);
  deepStrictEqual(dequantizeArray(out, E5M2), new Float32Array([0.3125, -7, 1024, 0]));
  deepStrictEqual(decodeTable(E5M2).subarray(0x3c, 0x3e), new Float32Array([1, 1.25]));
  throws(
    () => quantizeArray(src, E4M3, { scale: 0 }),
    /Cannot quantize with scale 0: expected a positive finite number/,
  );
  throws(
    () => dequantizeArray(codes, E4M3, { out: new Float32Array(3) }),
    /Cannot dequantize 4 values into an array of length 3: expected equal lengths/,
  );
});
