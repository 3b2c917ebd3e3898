/**
 * WGSL elementwise kernels: unary, binary, where, copy/cast (strided), fill.
 *
 * Algorithm: one invocation per output element; each strided input maps the row-major output
 * index to its storage offset with `stridedOffset` (a loop over at most MAX_RANK dims), so
 * broadcasting (stride 0), transposes and slices need no copies. No workgroup memory.
 * Fast path (unary, binary): when every input is contiguous in row-major order (any offset), the
 * index is `offset + i` — no per-dimension division and modulo, which dominate on CPU drivers.
 * Params layout: [n, rank, shape × MAX_RANK, then per input: strides × MAX_RANK, offset].
 *
 * @module
 */

import type { BinaryOp, DType, UnaryOp, View } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL, MATH_WGSL, MAX_RANK, stridedWgsl } from "../_wgsl.ts";
import { type KernelInfo, kernelInfo } from "../cache.ts";

const SHAPE_AT = 2;
/** Params index where input `k`'s strides start. */
function inputBase(k: number): number {
  return SHAPE_AT + MAX_RANK + k * (MAX_RANK + 1);
}

/** Params for `n` elements of `shape` read through `views`. */
export function stridedParams(shape: readonly number[], views: readonly View[]): Uint32Array {
  if (shape.length > MAX_RANK) {
    throw new Error(
      `Cannot run a WebGPU elementwise kernel on rank ${shape.length} (max ${MAX_RANK})`,
    );
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const p = new Uint32Array(inputBase(views.length));
  p[0] = n;
  p[1] = shape.length;
  shape.forEach((d, i) => (p[SHAPE_AT + i] = d));
  views.forEach((v, k) => {
    const base = inputBase(k);
    v.strides.forEach((s, i) => (p[base + i] = s));
    p[base + MAX_RANK] = v.offset;
  });
  return p;
}

/** Whether `v` is row-major contiguous over `shape` (dims of size 1 may have any stride). */
export function isRowMajor(v: View, shape: readonly number[]): boolean {
  if (v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i])) return false;
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && v.strides[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** WGSL for the storage index of element `i` of input `k`: strided, or `offset + i`. */
function indexOf(k: number, contiguous: boolean): string {
  return contiguous
    ? `params[${inputBase(k) + MAX_RANK}u] + i`
    : `stridedOffset(i, ${inputBase(k)}u)`;
}

const UNARY_EXPR: Record<UnaryOp, string> = {
  copy: "x",
  neg: "-x",
  abs: "abs(x)",
  sign: "sign(x)",
  exp: "exp(x)",
  log: "log(x)",
  sqrt: "sqrt(x)",
  rsqrt: "inverseSqrt(x)",
  reciprocal: "1.0 / x",
  square: "x * x",
  sin: "sin(x)",
  cos: "cos(x)",
  tanh: "tanhf(x)",
  sigmoid: "sigmoidf(x)",
  relu: "max(x, 0.0)",
  silu: "x * sigmoidf(x)",
  gelu: "0.5 * x * (1.0 + erff(x * 0.70710678118654752))",
  floor: "floor(x)",
  round: "round(x)",
};

const BINARY_EXPR: Record<BinaryOp, string> = {
  add: "a + b",
  sub: "a - b",
  mul: "a * b",
  div: "a / b",
  pow: "powf(a, b)",
  maximum: "max(a, b)",
  minimum: "min(a, b)",
  eq: "select(0.0, 1.0, a == b)",
  ne: "select(0.0, 1.0, a != b)",
  lt: "select(0.0, 1.0, a < b)",
  le: "select(0.0, 1.0, a <= b)",
  gt: "select(0.0, 1.0, a > b)",
  ge: "select(0.0, 1.0, a >= b)",
  siluBackward: "b * sigmoidf(a) * (1.0 + a * (1.0 - sigmoidf(a)))",
  geluBackward:
    "b * (0.5 * (1.0 + erff(a * 0.70710678118654752)) + a * 0.3989422804014327 * exp(-0.5 * a * a))",
};

/** `out[i] = op(x[offset(i)])` over `x.shape`. */
export function unaryKernel(op: UnaryOp, x: View): KernelInfo {
  const flat = isRowMajor(x, x.shape);
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32"])}
${flat ? "" : stridedWgsl(SHAPE_AT, 1)}
${MATH_WGSL}
${ENTRY_WGSL}
  if (i >= params[0]) { return; }
  let x = in0[${indexOf(0, flat)}];
  out[i] = ${UNARY_EXPR[op]};
}`;
  const n = x.shape.reduce((a, b) => a * b, 1);
  const key = `unary:${op}${flat ? ":flat" : ""}`;
  return kernelInfo(key, code, n, stridedParams(x.shape, [x]), "f32");
}

/** `out[i] = op(a[..], b[..])` over `shape` (views already broadcast). */
export function binaryKernel(
  op: BinaryOp,
  a: View,
  b: View,
  shape: readonly number[],
  outDType: DType,
): KernelInfo {
  const inType = a.storage.dtype;
  const isCompare = ["eq", "ne", "lt", "le", "gt", "ge"].includes(op);
  // Integer arithmetic uses the same expressions on i32 (pow and the backward ops are f32-only).
  const expr = inType === "f32" || isCompare ? BINARY_EXPR[op] : BINARY_EXPR[op];
  const cast = isCompare && inType !== "f32" ? `f32(a), f32(b)` : null;
  const flatA = isRowMajor(a, shape), flatB = isRowMajor(b, shape);
  const code = /* wgsl */ `
${bindingsWgsl(outDType, [inType, inType])}
${flatA && flatB ? "" : stridedWgsl(SHAPE_AT, 1)}
${MATH_WGSL}
${ENTRY_WGSL}
  if (i >= params[0]) { return; }
  let a0 = in0[${indexOf(0, flatA)}];
  let b0 = in1[${indexOf(1, flatB)}];
  ${cast ? `let a = f32(a0); let b = f32(b0);` : "let a = a0; let b = b0;"}
  out[i] = ${expr};
}`;
  const n = shape.reduce((x, y) => x * y, 1);
  const key = `binary:${op}:${inType}:${Number(flatA)}${Number(flatB)}`;
  return kernelInfo(key, code, n, stridedParams(shape, [a, b]), outDType);
}

/** `out[i] = cond[..] != 0 ? a[..] : b[..]`. */
export function whereKernel(cond: View, a: View, b: View, shape: readonly number[]): KernelInfo {
  const [dc, dv] = [cond.storage.dtype, a.storage.dtype];
  const zero = dc === "f32" ? "0.0" : dc === "i32" ? "0i" : "0u";
  const code = /* wgsl */ `
${bindingsWgsl(dv, [dc, dv, dv])}
${stridedWgsl(SHAPE_AT, 1)}
${ENTRY_WGSL}
  if (i >= params[0]) { return; }
  let c = in0[stridedOffset(i, ${inputBase(0)}u)];
  let a = in1[stridedOffset(i, ${inputBase(1)}u)];
  let b = in2[stridedOffset(i, ${inputBase(2)}u)];
  out[i] = select(b, a, c != ${zero});
}`;
  const n = shape.reduce((x, y) => x * y, 1);
  return kernelInfo(`where:${dc}:${dv}`, code, n, stridedParams(shape, [cond, a, b]), dv);
}

function convertExpr(from: DType, to: DType): string {
  if (from === to) return "x";
  if (to === "f32") return "f32(x)";
  if (to === "i32") return from === "f32" ? "i32(trunc(x))" : "i32(x)";
  // to u8: wrap modulo 256 like Uint8Array
  return from === "f32" ? "u32(i32(trunc(x))) & 255u" : "u32(x) & 255u";
}

/** Contiguous copy of a strided view, converting dtype. */
export function castKernel(x: View, to: DType): KernelInfo {
  const from = x.storage.dtype;
  const code = /* wgsl */ `
${bindingsWgsl(to, [from])}
${stridedWgsl(SHAPE_AT, 1)}
${ENTRY_WGSL}
  if (i >= params[0]) { return; }
  let x = in0[stridedOffset(i, ${inputBase(0)}u)];
  out[i] = ${convertExpr(from, to)};
}`;
  const n = x.shape.reduce((a, b) => a * b, 1);
  return kernelInfo(`cast:${from}:${to}`, code, n, stridedParams(x.shape, [x]), to);
}

/**
 * In place: `out[dstOffset(i)] = src[srcOffset(i)]`. The destination is the strided view
 * described as input slot 0 (its storage is bound as `out`), the source as input slot 1.
 */
export function assignKernel(dst: View, src: View): KernelInfo {
  const d = dst.storage.dtype;
  const code = /* wgsl */ `
${bindingsWgsl(d, [d])}
${stridedWgsl(SHAPE_AT, 1)}
${ENTRY_WGSL}
  if (i >= params[0]) { return; }
  out[stridedOffset(i, ${inputBase(0)}u)] = in0[stridedOffset(i, ${inputBase(1)}u)];
}`;
  const n = dst.shape.reduce((a, b) => a * b, 1);
  return kernelInfo(`assign:${d}`, code, n, stridedParams(dst.shape, [dst, src]), d);
}

/** `out[i] = value` for `n` elements. */
export function fillKernel(dtype: DType, n: number, value: number): KernelInfo {
  const t = dtype === "f32" ? "f32" : dtype === "i32" ? "i32" : "u32";
  const code = /* wgsl */ `
${bindingsWgsl(dtype, [])}
${ENTRY_WGSL}
  if (i >= params[0]) { return; }
  out[i] = bitcast<${t}>(params[1]);
}`;
  const p = new Uint32Array(2);
  p[0] = n;
  const word = new DataView(new ArrayBuffer(4));
  if (dtype === "f32") word.setFloat32(0, value, true);
  else if (dtype === "i32") word.setInt32(0, value, true);
  else word.setUint32(0, ((value % 256) + 256) % 256, true);
  p[1] = word.getUint32(0, true);
  return kernelInfo(`fill:${dtype}`, code, n, p, dtype);
}
