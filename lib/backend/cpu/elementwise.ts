/**
 * Reference elementwise kernels: unary and binary math, comparisons, where, copy, assign, cast.
 *
 * Each kernel maps a strided view (see `_strided.ts`) to a fresh contiguous array. The math of
 * every op is one small function in `UNARY` / `BINARY`; these tables are the numeric definition
 * the WebGPU and wasm kernels are tested against.
 *
 * @module
 */

import type { BinaryOp, HostArray, UnaryOp, View } from "../backend.ts";
import { sizeOf, stridedOffsets } from "./_strided.ts";

/** `erf(x)` with relative error below 1.2e-7 (Numerical Recipes `erfcc`, Chebyshev fit). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 +
            t * (0.37409196 +
                t * (0.09678418 +
                    t * (-0.18628806 +
                        t * (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** The math of every unary op. */
export const UNARY: Readonly<Record<UnaryOp, (x: number) => number>> = {
  copy: (x) => x,
  neg: (x) => -x,
  abs: Math.abs,
  sign: Math.sign,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  reciprocal: (x) => 1 / x,
  square: (x) => x * x,
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid,
  relu: (x) => (x > 0 ? x : 0),
  silu: (x) => x * sigmoid(x),
  gelu: (x) => 0.5 * x * (1 + erf(x * SQRT1_2)),
  floor: Math.floor,
  // Round half to even, as torch.round and WGSL round().
  round: (x) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  },
};

/** The math of every binary op; comparisons give 1 or 0. */
export const BINARY: Readonly<Record<BinaryOp, (a: number, b: number) => number>> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b),
  minimum: (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
  // d/dx x·σ(x) = σ(x) (1 + x (1 − σ(x)))
  siluBackward: (x, dy) => {
    const s = sigmoid(x);
    return dy * s * (1 + x * (1 - s));
  },
  // d/dx x·Φ(x) = Φ(x) + x φ(x)
  geluBackward: (x, dy) =>
    dy * (0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x)),
};

/** Apply `f` to every element of a strided view, writing row-major into `out`. */
export function mapUnary(
  src: HostArray,
  view: View,
  out: HostArray,
  f: (x: number) => number,
): void {
  const n = sizeOf(view.shape);
  const offs = stridedOffsets(view.shape, view);
  if (offs === null) {
    const o = view.offset;
    for (let i = 0; i < n; i++) out[i] = f(src[o + i]);
  } else {
    for (let i = 0; i < n; i++) out[i] = f(src[offs[i]]);
  }
}

/** Apply `f` elementwise to two strided views of the same (broadcast) shape. */
export function mapBinary(
  a: HostArray,
  va: View,
  b: HostArray,
  vb: View,
  shape: readonly number[],
  out: HostArray,
  f: (a: number, b: number) => number,
): void {
  const n = sizeOf(shape);
  const oa = stridedOffsets(shape, va);
  const ob = stridedOffsets(shape, vb);
  if (oa === null && ob === null) {
    const pa = va.offset, pb = vb.offset;
    for (let i = 0; i < n; i++) out[i] = f(a[pa + i], b[pb + i]);
    return;
  }
  for (let i = 0; i < n; i++) {
    out[i] = f(a[oa === null ? va.offset + i : oa[i]], b[ob === null ? vb.offset + i : ob[i]]);
  }
}

/** `out[i] = cond[i] != 0 ? a[i] : b[i]` over three broadcast views. */
export function mapWhere(
  c: HostArray,
  vc: View,
  a: HostArray,
  va: View,
  b: HostArray,
  vb: View,
  shape: readonly number[],
  out: HostArray,
): void {
  const n = sizeOf(shape);
  const oc = stridedOffsets(shape, vc);
  const oa = stridedOffsets(shape, va);
  const ob = stridedOffsets(shape, vb);
  for (let i = 0; i < n; i++) {
    const cv = c[oc === null ? vc.offset + i : oc[i]];
    out[i] = cv !== 0
      ? a[oa === null ? va.offset + i : oa[i]]
      : b[ob === null ? vb.offset + i : ob[i]];
  }
}

/** Write the strided view `src` into the strided window `dst` (same shape), in place. */
export function assignStrided(dst: HostArray, vd: View, src: HostArray, vs: View): void {
  const n = sizeOf(vd.shape);
  const od = stridedOffsets(vd.shape, vd);
  const os = stridedOffsets(vd.shape, vs);
  for (let i = 0; i < n; i++) {
    dst[od === null ? vd.offset + i : od[i]] = src[os === null ? vs.offset + i : os[i]];
  }
}
