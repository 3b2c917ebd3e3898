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
import { forEachRun } from "./_strided.ts";

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

/**
 * Apply `f` to every element of a strided view, writing row-major into `out`. When `f` is the
 * table entry of `op`, the hot ops run as plain loops without a call per element.
 */
export function mapUnary(
  src: HostArray,
  view: View,
  out: HostArray,
  f: (x: number) => number,
  op: UnaryOp | null = null,
): void {
  const fast = op !== null && UNARY[op] === f ? op : f === UNARY.copy ? "copy" : null;
  forEachRun(view.shape, [view], (p, len, o, s) => {
    const sx = s[0];
    let x = o[0];
    const end = p + len;
    switch (fast) {
      case "copy":
        if (sx === 1) { for (let j = p; j < end; j++, x++) out[j] = src[x]; }
        else for (let j = p; j < end; j++, x += sx) out[j] = src[x];
        return;
      case "neg":
        for (let j = p; j < end; j++, x += sx) out[j] = -src[x];
        return;
      case "exp":
        for (let j = p; j < end; j++, x += sx) out[j] = Math.exp(src[x]);
        return;
      case "square":
        for (let j = p; j < end; j++, x += sx) out[j] = src[x] * src[x];
        return;
      case "sqrt":
        for (let j = p; j < end; j++, x += sx) out[j] = Math.sqrt(src[x]);
        return;
      case "rsqrt":
        for (let j = p; j < end; j++, x += sx) out[j] = 1 / Math.sqrt(src[x]);
        return;
      case "sigmoid":
        for (let j = p; j < end; j++, x += sx) out[j] = 1 / (1 + Math.exp(-src[x]));
        return;
      case "silu":
        for (let j = p; j < end; j++, x += sx) {
          const v = src[x];
          out[j] = v / (1 + Math.exp(-v));
        }
        return;
      default:
        for (let j = p; j < end; j++, x += sx) out[j] = f(src[x]);
    }
  });
}

/** Inner loops of the hottest binary ops, free of per-element calls. */
function binaryRun(
  op: BinaryOp | null,
  f: (a: number, b: number) => number,
  a: HostArray,
  b: HostArray,
  out: HostArray,
  p: number,
  len: number,
  ia: number,
  sa: number,
  ib: number,
  sb: number,
): void {
  switch (op) {
    case "add":
      for (let j = 0; j < len; j++, ia += sa, ib += sb) out[p + j] = a[ia] + b[ib];
      return;
    case "sub":
      for (let j = 0; j < len; j++, ia += sa, ib += sb) out[p + j] = a[ia] - b[ib];
      return;
    case "mul":
      for (let j = 0; j < len; j++, ia += sa, ib += sb) out[p + j] = a[ia] * b[ib];
      return;
    case "div":
      for (let j = 0; j < len; j++, ia += sa, ib += sb) out[p + j] = a[ia] / b[ib];
      return;
    case "siluBackward":
      for (let j = 0; j < len; j++, ia += sa, ib += sb) {
        const x = a[ia], sg = 1 / (1 + Math.exp(-x));
        out[p + j] = b[ib] * sg * (1 + x * (1 - sg));
      }
      return;
    default:
      for (let j = 0; j < len; j++, ia += sa, ib += sb) out[p + j] = f(a[ia], b[ib]);
  }
}

/**
 * Apply `f` elementwise to two strided views of the same (broadcast) shape. When `f` is the
 * table entry of `op`, the hot arithmetic ops run as plain loops.
 */
export function mapBinary(
  a: HostArray,
  va: View,
  b: HostArray,
  vb: View,
  shape: readonly number[],
  out: HostArray,
  f: (a: number, b: number) => number,
  op: BinaryOp | null = null,
): void {
  const fast = op !== null && BINARY[op] === f ? op : null;
  forEachRun(shape, [va, vb], (p, len, o, s) => {
    binaryRun(fast, f, a, b, out, p, len, o[0], s[0], o[1], s[1]);
  });
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
  forEachRun(shape, [vc, va, vb], (p, len, o, s) => {
    let ic = o[0], ia = o[1], ib = o[2];
    for (let j = 0; j < len; j++, ic += s[0], ia += s[1], ib += s[2]) {
      out[p + j] = c[ic] !== 0 ? a[ia] : b[ib];
    }
  });
}

/** Write the strided view `src` into the strided window `dst` (same shape), in place. */
export function assignStrided(dst: HostArray, vd: View, src: HostArray, vs: View): void {
  forEachRun(vd.shape, [vd, vs], (_p, len, o, s) => {
    let id = o[0], is = o[1];
    for (let j = 0; j < len; j++, id += s[0], is += s[1]) dst[id] = src[is];
  });
}
