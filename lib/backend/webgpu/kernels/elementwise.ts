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
import {
  bindingsWgsl,
  ENTRY_WGSL,
  MATH_WGSL,
  MAX_RANK,
  paramsWgsl,
  stridedWgsl,
  wgslType,
} from "../_wgsl.ts";
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

const UNARY_EXPR: Record<UnaryOp, string> = {
  copy: "a",
  neg: "-a",
  abs: "abs(a)",
  sign: "sign(a)",
  exp: "exp(a)",
  log: "log(a)",
  sqrt: "sqrt(a)",
  rsqrt: "inverseSqrt(a)",
  reciprocal: "1.0 / a",
  square: "a * a",
  sin: "sin(a)",
  cos: "cos(a)",
  tanh: "tanhf(a)",
  sigmoid: "sigmoidf(a)",
  relu: "max(a, 0.0)",
  silu: "a * sigmoidf(a)",
  gelu: "0.5 * a * (1.0 + erff(a * 0.70710678118654752))",
  floor: "floor(a)",
  round: "round(a)",
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

/** A view re-expressed in units of vec4, or the shape those views share. */
interface Vec4Plan {
  shape: number[];
  views: View[];
}

/**
 * The views of an elementwise kernel over `shape` as views of vec4 elements — last dim divided
 * by 4, other strides and offsets divided by 4 — where every view is 32-bit, has stride 1 along
 * a last dim that is a multiple of 4, and 16-byte-aligned other strides and offset (broadcast
 * dims, stride 0, included). `null` where one does not.
 */
function vec4Plan(shape: readonly number[], views: readonly View[]): Vec4Plan | null {
  const rank = shape.length;
  if (rank === 0 || shape[rank - 1] % 4 !== 0 || shape[rank - 1] === 0) return null;
  for (const v of views) {
    if (v.strides[rank - 1] !== 1 || v.offset % 4 !== 0) return null;
    if (v.strides.some((st, d) => d < rank - 1 && shape[d] !== 1 && st % 4 !== 0)) return null;
  }
  const shape4 = [...shape.slice(0, -1), shape[rank - 1] / 4];
  return {
    shape: shape4,
    views: views.map((v) => ({
      storage: v.storage,
      shape: shape4,
      strides: v.strides.map((st, d) => (d === rank - 1 ? 1 : st / 4)),
      offset: v.offset / 4,
    })),
  };
}

/** What an elementwise kernel computes (see {@linkcode elementwiseKernel}). */
interface ElementwiseSpec {
  /** Cache-key prefix naming the operation. */
  key: string;
  /** Output shape (the inputs are broadcast to it). */
  shape: readonly number[];
  /** Inputs, bound at 2, 3, … and named `a`, `b`, `c` in `expr`. */
  inputs: readonly View[];
  /** WGSL expression of one output element in terms of the input elements. */
  expr: string;
  /** Output dtype. */
  out: DType;
  /** Optional conversion applied to each input element before `expr` (e.g. `f32`). */
  convert?: string;
  /** Write through this strided view of the output storage (assign) instead of contiguously. */
  dst?: View;
}

const NAMES = ["a", "b", "c"];

/**
 * The one generator behind unary, binary, where, cast and assign. Each input (and a strided
 * destination) is indexed either as `offset + i` (row-major over the shape) or through
 * `stridedOffset`, unrolled for the shape's rank. Where {@linkcode vec4Plan} applies, each
 * invocation handles four consecutive elements of the last dim with one vec4 load per input
 * and one vec4 store, the expression applied per lane — on CPU drivers a vec4 storage access
 * costs far less than four scalar ones, and the index arithmetic is paid once per four
 * elements. `params`: see {@linkcode stridedParams} (destination first, when there is one).
 */
function elementwiseKernel(spec: ElementwiseSpec): KernelInfo {
  const all = spec.dst ? [spec.dst, ...spec.inputs] : [...spec.inputs];
  const plan = vec4Plan(spec.shape, all);
  const shape = plan ? plan.shape : [...spec.shape];
  const views = plan ? plan.views : all.map((v) => ({ ...v, shape }));
  const rank = shape.length;
  const flat = views.map((v) => isRowMajor(v, shape));
  const strided = flat.some((f) => !f);
  const wrap = (t: string) => (plan ? `vec4<${t}>` : t);
  const at = (slot: number) =>
    flat[slot]
      ? `param(${inputBase(slot) + MAX_RANK}u) + i`
      : `stridedOffset(i, ${inputBase(slot)}u)`;
  const first = spec.dst ? 1 : 0; // slot of input 0
  const decls = spec.inputs.map((v, k) =>
    `@group(0) @binding(${k + 2}) var<storage, read> in${k}: array<${
      wrap(wgslType(v.storage.dtype))
    }>;`
  ).join("\n");
  const loads = spec.inputs.map((_, k) => `let v${k} = in${k}[${at(first + k)}];`).join(" ");
  const conv = (x: string) => (spec.convert ? `${spec.convert}(${x})` : x);
  const lane = (e: string) =>
    spec.inputs.map((_, k) => `let ${NAMES[k]} = ${conv(`v${k}${e}`)};`).join(" ");
  const outAt = spec.dst ? at(0) : "i";
  const body = plan
    ? /* wgsl */ `var r: vec4<${wgslType(spec.out)}>;
  for (var e = 0u; e < 4u; e++) { ${lane("[e]")} r[e] = ${spec.expr}; }
  out[${outAt}] = r;`
    : `${lane("")} out[${outAt}] = ${spec.expr};`;
  const code = /* wgsl */ `
${paramsWgsl("integer parameters")}
@group(0) @binding(1) var<storage, read_write> out: array<${wrap(wgslType(spec.out))}>;
${decls}
${strided ? stridedWgsl(SHAPE_AT, 1, rank) : ""}
${MATH_WGSL}
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  ${loads}
  ${body}
}`;
  const n = shape.reduce((x, y) => x * y, 1);
  const key = `${spec.key}:${plan ? "v4" : "s"}:${flat.map(Number).join("")}` +
    (strided ? `:r${rank}` : "");
  return kernelInfo(key, code, n, stridedParams(shape, views), spec.out);
}

/** `out[i] = op(x[offset(i)])` over `x.shape`. */
export function unaryKernel(op: UnaryOp, x: View): KernelInfo {
  return elementwiseKernel({
    key: `unary:${op}`,
    shape: x.shape,
    inputs: [x],
    expr: UNARY_EXPR[op],
    out: "f32",
  });
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
  return elementwiseKernel({
    key: `binary:${op}:${inType}`,
    shape,
    inputs: [a, b],
    expr: BINARY_EXPR[op],
    out: outDType,
    convert: isCompare && inType !== "f32" ? "f32" : undefined,
  });
}

/** `out[i] = cond[..] != 0 ? a[..] : b[..]`. */
export function whereKernel(cond: View, a: View, b: View, shape: readonly number[]): KernelInfo {
  const [dc, dv] = [cond.storage.dtype, a.storage.dtype];
  const zero = dc === "f32" ? "0.0" : dc === "i32" ? "0i" : "0u";
  return elementwiseKernel({
    key: `where:${dc}:${dv}`,
    shape,
    inputs: [cond, a, b],
    expr: `select(c, b, a != ${zero})`,
    out: dv,
  });
}

function convertExpr(from: DType, to: DType): string {
  if (from === to) return "a";
  if (to === "f32") return "f32(a)";
  if (to === "i32") return from === "f32" ? "i32(trunc(a))" : "i32(a)";
  // to u8: wrap modulo 256 like Uint8Array
  return from === "f32" ? "u32(i32(trunc(a))) & 255u" : "u32(a) & 255u";
}

/** Contiguous copy of a strided view, converting dtype. */
export function castKernel(x: View, to: DType): KernelInfo {
  const from = x.storage.dtype;
  return elementwiseKernel({
    key: `cast:${from}:${to}`,
    shape: x.shape,
    inputs: [x],
    expr: convertExpr(from, to),
    out: to,
  });
}

/**
 * In place: `out[dstOffset(i)] = src[srcOffset(i)]`. The destination is the strided view
 * described as input slot 0 (its storage is bound as `out`), the source as input slot 1.
 */
export function assignKernel(dst: View, src: View): KernelInfo {
  return elementwiseKernel({
    key: `assign:${dst.storage.dtype}`,
    shape: dst.shape,
    inputs: [src],
    expr: "a",
    out: dst.storage.dtype,
    dst,
  });
}

/** `out[i] = value` for `n` elements. */
export function fillKernel(dtype: DType, n: number, value: number): KernelInfo {
  const t = dtype === "f32" ? "f32" : dtype === "i32" ? "i32" : "u32";
  const code = /* wgsl */ `
${bindingsWgsl(dtype, [])}
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  out[i] = bitcast<${t}>(param(1));
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
