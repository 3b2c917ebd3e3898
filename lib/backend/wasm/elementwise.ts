/**
 * The wasm backend's elementwise kernels, emitted with `asm.ts`: fill, copy, unary and binary
 * maps over contiguous runs, 128-bit SIMD with a one-lane tail.
 *
 * Every map kernel walks `n` elements 4 at a time (`v128.load`), then the `n mod 4` tail one
 * element at a time through the same vector code (`v128.load32_splat` in, lane 0 out), so the
 * tail has exactly the numerics of the body. Unary and binary kernels work on `rows` rows of
 * `cols` elements in `mats` blocks (a coalesced 3-D view: block and row strides are free, the last stride is 1
 * or 0), so a broadcast such as `[R, C] + [C]`, `[R, C] · [R, 1]` or RoPE's `[B·T, H, d/2]`
 * even/odd halves times `[T, 1, d/2]` is one call that threads split by blocks or rows.
 * A binary kernel takes a `mode`: 0 both operands advance along a row, 1 `b` is a scalar per row
 * (stride 0), 2 `a` is. `exp` is the Cephes
 * `expf` reduction `x = n ln2 + r`, a degree-7 polynomial in `r` and `2ⁿ` built in the exponent
 * bits (n rounded with the 1.5·2²³ trick, not `nearest` + `trunc_sat`, which V8 lowers to long
 * sequences on x64) (max error ~2 ulp over [-86.9, 88.72]; 0 below, +Inf above), so `exp`, `sigmoid`, `silu`
 * and `siluBackward` are SIMD too. The math of each op is the cpu table's (`cpu/elementwise.ts`),
 * in f32 rather than f64 then rounded: results agree to a few ulp, which the parity tests bound.
 *
 * All pointers are byte addresses in the shared memory; counts are elements.
 *
 * @module
 */

import { type Func, I32, type ModuleBuilder, OP, SIMD, V128 } from "./asm.ts";

/** Unary ops with a SIMD kernel (`u_<op>`); the others use the cpu kernels. */
export const SIMD_UNARY = [
  "copy",
  "neg",
  "abs",
  "sqrt",
  "rsqrt",
  "reciprocal",
  "square",
  "exp",
  "sigmoid",
  "silu",
  "relu",
] as const;

/** Binary ops with a SIMD kernel (`b_<op>`). */
export const SIMD_BINARY = [
  "add",
  "sub",
  "mul",
  "div",
  "maximum",
  "minimum",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
  "siluBackward",
] as const;

/** A unary op with a SIMD kernel. */
export type SimdUnary = (typeof SIMD_UNARY)[number];
/** A binary op with a SIMD kernel. */
export type SimdBinary = (typeof SIMD_BINARY)[number];

/** The elementwise exports (byte addresses, element counts). */
export interface ElementwiseExports {
  /** `n` 32-bit words at `dst` set to the bit pattern `bits`. */
  fill32(dst: number, n: number, bits: number): void;
  /** `bytes` zero bytes at `dst` (`memory.fill`). */
  zero(dst: number, bytes: number): void;
  /** `memory.copy` of `bytes` from `src` to `dst`. */
  copyBytes(dst: number, src: number, bytes: number): void;
  /** `out[j, :] = x[idx[j], :]`, rows of `inner` 32-bit words. */
  selectRows(x: number, idx: number, out: number, n: number, inner: number): void;
  /** `out[idx[j], :] += src[j, :]` (f32). */
  addRows(idx: number, src: number, out: number, n: number, inner: number): void;
  /** Blocks of rows of 32-bit words (byte steps `srcMat`, `srcRow`, `srcCol`) to `dst`. */
  copy3d(
    dst: number,
    src: number,
    cols: number,
    rows: number,
    srcRow: number,
    srcCol: number,
    mats: number,
    srcMat: number,
    dstMat: number,
  ): void;
}

const LOG2E = Math.LOG2E;
/** ln(FLT_MAX): above it exp overflows to +Inf. */
const EXP_HI = 88.72283935546875;
/** Below this 2ⁿ⁻¹ would leave the normal range; exp is then < 2e-38 and flushed to 0. */
const EXP_LO = -86.9;
const EXP_C1 = 0.693359375, EXP_C2 = -2.12194440e-4;
const EXP_P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1];
const EXP_P5 = 5.0000001201e-1;
/** 1.5 · 2²³: adding it rounds an f32 of magnitude < 2²² to an integer kept in the low bits. */
const MAGIC = 12582912;

/** Push `exp(x)` (f32x4) for the v128 local `x`. */
export function emitExp(f: Func, x: number): void {
  const r = f.local(V128), n = f.local(V128), j = f.local(V128), y = f.local(V128);
  // r = clamp(x) (pmin/pmax: one instruction each, NaN passes through);
  // j = r · log2 e + 1.5·2²³ rounds to the nearest integer n in its low mantissa bits
  f.get(x).constF32x4(EXP_HI).simd(SIMD.f32x4Pmin).constF32x4(EXP_LO).simd(SIMD.f32x4Pmax).set(r);
  f.get(r).constF32x4(LOG2E).simd(SIMD.f32x4Mul).constF32x4(MAGIC).simd(SIMD.f32x4Add).set(j);
  f.get(j).constF32x4(MAGIC).simd(SIMD.f32x4Sub).set(n);
  // r −= n · ln 2 (two-part constant)
  f.get(r).get(n).constF32x4(EXP_C1).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Sub);
  f.get(n).constF32x4(EXP_C2).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Sub).set(r);
  // y = ((((p0 r + p1) r + p2) r + p3) r + p4) r + p5; y = y r² + r + 1
  f.constF32x4(EXP_P[0]);
  for (let i = 1; i < EXP_P.length; i++) {
    f.get(r).simd(SIMD.f32x4Mul).constF32x4(EXP_P[i]).simd(SIMD.f32x4Add);
  }
  f.get(r).simd(SIMD.f32x4Mul).constF32x4(EXP_P5).simd(SIMD.f32x4Add).set(y);
  f.get(y).get(r).get(r).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Mul).get(r).simd(SIMD.f32x4Add)
    .constF32x4(1).simd(SIMD.f32x4Add);
  // · 2 · 2ⁿ⁻¹ (so n = 128 at ln(FLT_MAX) stays finite): the bits of j shifted left by 23 are
  // n << 23; add the exponent bias of 2⁻¹, 126 << 23
  f.constF32x4(2).simd(SIMD.f32x4Mul);
  f.get(j).i32(23).simd(SIMD.i32x4Shl).constI32x4(0x3f000000).simd(SIMD.i32x4Add)
    .simd(SIMD.f32x4Mul).set(y);
  // x < EXP_LO → 0 (NaN stays NaN); x > 88.72 → +Inf
  f.get(y).get(x).constF32x4(EXP_LO).simd(SIMD.f32x4Lt).simd(SIMD.v128AndNot).set(y);
  f.constI32x4(0x7f800000).get(y).get(x).constF32x4(EXP_HI).simd(SIMD.f32x4Gt)
    .simd(SIMD.v128Bitselect);
}

/** Push `1 / (1 + exp(-x))` for the v128 local `x`. */
function emitSigmoid(f: Func, x: number): void {
  const nx = f.local(V128);
  f.get(x).simd(SIMD.f32x4Neg).set(nx);
  f.constF32x4(1);
  f.constF32x4(1);
  emitExp(f, nx);
  f.simd(SIMD.f32x4Add).simd(SIMD.f32x4Div);
}

/** Push the unary `op` of the v128 local `x`. */
function unaryCode(op: SimdUnary, f: Func, x: number): void {
  switch (op) {
    case "copy":
      f.get(x);
      return;
    case "neg":
      f.get(x).simd(SIMD.f32x4Neg);
      return;
    case "abs":
      f.get(x).simd(SIMD.f32x4Abs);
      return;
    case "sqrt":
      f.get(x).simd(SIMD.f32x4Sqrt);
      return;
    case "rsqrt":
      f.constF32x4(1).get(x).simd(SIMD.f32x4Sqrt).simd(SIMD.f32x4Div);
      return;
    case "reciprocal":
      f.constF32x4(1).get(x).simd(SIMD.f32x4Div);
      return;
    case "square":
      f.get(x).get(x).simd(SIMD.f32x4Mul);
      return;
    case "exp":
      emitExp(f, x);
      return;
    case "sigmoid":
      emitSigmoid(f, x);
      return;
    case "silu": {
      const s = f.local(V128);
      emitSigmoid(f, x);
      f.set(s).get(x).get(s).simd(SIMD.f32x4Mul);
      return;
    }
    case "relu":
      // pmax(0, x) = 0 < x ? x : 0, so NaN and -0 give +0 like the cpu `x > 0 ? x : 0`
      f.constF32x4(0).get(x).simd(SIMD.f32x4Pmax);
      return;
    default:
      throw new Error(`Cannot emit unknown unary op '${op satisfies never}'`);
  }
}

const COMPARE: Partial<Record<SimdBinary, number>> = {
  eq: SIMD.f32x4Eq,
  ne: SIMD.f32x4Ne,
  lt: SIMD.f32x4Lt,
  le: SIMD.f32x4Le,
  gt: SIMD.f32x4Gt,
  ge: SIMD.f32x4Ge,
};

/** Push the binary `op` of the v128 locals `a` and `b`. */
function binaryCode(op: SimdBinary, f: Func, a: number, b: number): void {
  switch (op) {
    case "add":
      f.get(a).get(b).simd(SIMD.f32x4Add);
      return;
    case "sub":
      f.get(a).get(b).simd(SIMD.f32x4Sub);
      return;
    case "mul":
      f.get(a).get(b).simd(SIMD.f32x4Mul);
      return;
    case "div":
      f.get(a).get(b).simd(SIMD.f32x4Div);
      return;
    case "maximum":
      f.get(a).get(b).simd(SIMD.f32x4Max);
      return;
    case "minimum":
      f.get(a).get(b).simd(SIMD.f32x4Min);
      return;
    case "eq":
    case "ne":
    case "lt":
    case "le":
    case "gt":
    case "ge":
      f.get(a).get(b).simd(COMPARE[op] as number).constF32x4(1).simd(SIMD.v128And);
      return;
    case "siluBackward": {
      // dy · s · (1 + x (1 − s)), s = σ(x); a = x, b = dy
      const s = f.local(V128);
      emitSigmoid(f, a);
      f.set(s);
      f.get(b).get(s).simd(SIMD.f32x4Mul);
      f.constF32x4(1).get(a).constF32x4(1).get(s).simd(SIMD.f32x4Sub).simd(SIMD.f32x4Mul)
        .simd(SIMD.f32x4Add);
      f.simd(SIMD.f32x4Mul);
      return;
    }
    default:
      throw new Error(`Cannot emit unknown binary op '${op satisfies never}'`);
  }
}

/**
 * Emit a map over `n` elements: inputs are byte-pointer params, each either advancing (`true`)
 * or a scalar splatted once (`false`); `code` pushes the result from the input v128 locals.
 */
export function emitMap(
  f: Func,
  inputs: readonly { ptr: number; advance: boolean }[],
  out: number,
  n: number,
  code: (vals: number[]) => void,
): void {
  const vals = inputs.map(() => f.local(V128));
  const i = f.local(I32);
  f.i32(0).set(i);
  inputs.forEach((inp, k) => {
    if (!inp.advance) f.get(inp.ptr).simdMem(SIMD.v128Load32Splat, 2).set(vals[k]);
  });
  // Body: 4 lanes per step.
  f.forStep(i, n, 4, () => {
    inputs.forEach((inp, k) => {
      if (inp.advance) {
        f.get(inp.ptr).simdMem(SIMD.v128Load, 2).set(vals[k]);
        f.inc(inp.ptr, 16);
      }
    });
    f.get(out);
    code(vals);
    f.simdMem(SIMD.v128Store, 2);
    f.inc(out, 16);
  });
  // Tail: one element per step through the same vector code.
  f.forStep(i, n, 1, () => {
    inputs.forEach((inp, k) => {
      if (inp.advance) {
        f.get(inp.ptr).simdMem(SIMD.v128Load32Splat, 2).set(vals[k]);
        f.inc(inp.ptr, 4);
      }
    });
    f.get(out);
    code(vals);
    f.simd(SIMD.f32x4ExtractLane, 0).mem(OP.f32Store, 2);
    f.inc(out, 4);
  });
}

/**
 * `for m < mats: body(cur)` where `cur[k]` starts each block at `base_k + m · step_k` (params
 * `[base, step]`); the body may advance its copies freely.
 */
function forMats(
  f: Func,
  mats: number,
  bases: readonly [number, number][],
  body: (cur: number[]) => void,
): void {
  const m = f.local(I32);
  const cur = bases.map(() => f.local(I32));
  f.forStep(m, mats, 1, () => {
    bases.forEach(([base], k) => f.get(base).set(cur[k]));
    body(cur);
    for (const [base, step] of bases) f.get(base).get(step).emit(OP.i32Add).set(base);
  });
}

/** Add the elementwise kernels to `mb`. */
export function addElementwiseKernels(mb: ModuleBuilder): void {
  mb.func("fill32", [I32, I32, I32], [], (f) => {
    const [dst, n, bits] = [0, 1, 2];
    const v = f.local(V128), i = f.local(I32);
    f.get(bits).simd(SIMD.i32x4Splat).set(v);
    f.forStep(i, n, 4, () => {
      f.get(dst).get(v).simdMem(SIMD.v128Store, 2);
      f.inc(dst, 16);
    });
    f.forStep(i, n, 1, () => {
      f.get(dst).get(bits).mem(OP.i32Store, 2);
      f.inc(dst, 4);
    });
  });
  mb.func("zero", [I32, I32], [], (f) => {
    f.get(0).i32(0).get(1).memoryFill();
  });
  mb.func("copyBytes", [I32, I32, I32], [], (f) => {
    f.get(0).get(1).get(2).memoryCopy();
  });
  // copy3d(dst, src, cols, rows, srcRow, srcCol, mats, srcMat, dstMat): `mats` blocks of `rows`
  // rows of 32-bit words; source element (m, r, c) at src + m·srcMat + r·srcRow + c·srcCol bytes,
  // destination rows contiguous from dst + m·dstMat.
  mb.func("copy3d", [I32, I32, I32, I32, I32, I32, I32, I32, I32], [], (f) => {
    const [dst0, src0, cols, rows, srcRow, srcCol, mats, srcMat, dstMat] = [
      0,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
    ];
    const r = f.local(I32), i = f.local(I32), p = f.local(I32), rowBytes = f.local(I32);
    f.get(cols).i32(4).emit(OP.i32Mul).set(rowBytes);
    forMats(f, mats, [[dst0, dstMat], [src0, srcMat]], ([dst, src]) => {
      f.i32(0).set(r);
      f.forStep(r, rows, 1, () => {
        f.get(srcCol).i32(4).emit(OP.i32Eq).if();
        f.get(dst).get(src).get(rowBytes).memoryCopy();
        f.get(dst).get(rowBytes).emit(OP.i32Add).set(dst);
        f.else();
        f.get(src).set(p);
        f.i32(0).set(i);
        f.forStep(i, cols, 1, () => {
          f.get(dst).get(p).mem(OP.i32Load, 2).mem(OP.i32Store, 2);
          f.inc(dst, 4);
          f.get(p).get(srcCol).emit(OP.i32Add).set(p);
        });
        f.end();
        f.get(src).get(srcRow).emit(OP.i32Add).set(src);
      });
    });
  });
  // selectRows(x, idx, out, n, inner): out row j = x row idx[j] (rows of `inner` 32-bit words).
  mb.func("selectRows", [I32, I32, I32, I32, I32], [], (f) => {
    const [x, idx, out, n, inner] = [0, 1, 2, 3, 4];
    const j = f.local(I32), rowBytes = f.local(I32);
    f.get(inner).i32(4).emit(OP.i32Mul).set(rowBytes);
    f.forStep(j, n, 1, () => {
      f.get(out).get(x).get(idx).mem(OP.i32Load, 2).get(rowBytes).emit(OP.i32Mul)
        .emit(OP.i32Add).get(rowBytes).memoryCopy();
      f.inc(idx, 4);
      f.get(out).get(rowBytes).emit(OP.i32Add).set(out);
    });
  });
  // addRows(idx, src, out, n, inner): out row idx[j] += src row j (f32; duplicates accumulate in
  // order, so it runs on one thread).
  mb.func("addRows", [I32, I32, I32, I32, I32], [], (f) => {
    const [idx, src, out, n, inner] = [0, 1, 2, 3, 4];
    const j = f.local(I32), d = f.local(I32), dIn = f.local(I32);
    f.forStep(j, n, 1, () => {
      f.get(out).get(idx).mem(OP.i32Load, 2).get(inner).emit(OP.i32Mul).i32(4).emit(OP.i32Mul)
        .emit(OP.i32Add).tee(d).set(dIn);
      emitMap(f, [{ ptr: dIn, advance: true }, { ptr: src, advance: true }], d, inner, (v) => {
        f.get(v[0]).get(v[1]).simd(SIMD.f32x4Add);
      });
      f.inc(idx, 4);
    });
  });
  // u_<op>(x, out, cols, rows, xRow, mats, xMat, outMat): `mats` blocks of `rows` rows of `cols`
  // contiguous elements; row (m, r) of x at x + m·xMat + r·xRow bytes; out rows contiguous from
  // out + m·outMat.
  for (const op of SIMD_UNARY) {
    mb.func(`u_${op}`, [I32, I32, I32, I32, I32, I32, I32, I32], [], (f) => {
      const [x0, out0, cols, rows, xRow, mats, xMat, outMat] = [0, 1, 2, 3, 4, 5, 6, 7];
      const r = f.local(I32), px = f.local(I32);
      forMats(f, mats, [[x0, xMat], [out0, outMat]], ([x, out]) => {
        f.i32(0).set(r);
        f.forStep(r, rows, 1, () => {
          f.get(x).set(px);
          emitMap(f, [{ ptr: px, advance: true }], out, cols, ([v]) => unaryCode(op, f, v));
          f.get(x).get(xRow).emit(OP.i32Add).set(x);
        });
      });
    });
  }
  // b_<op>(a, b, out, cols, mode, rows, aRow, bRow, mats, aMat, bMat, outMat): blocks of rows of
  // `cols` elements; inside a row both operands advance (mode 0), or b (mode 1) or a (mode 2) is
  // a broadcast scalar; row (m, r) of a at a + m·aMat + r·aRow bytes (likewise b); out rows
  // contiguous from out + m·outMat.
  for (const op of SIMD_BINARY) {
    mb.func(`b_${op}`, Array(12).fill(I32), [], (f) => {
      const [a0, b0, out0, cols, mode, rows, aRow, bRow, mats, aMat, bMat, outMat] = [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
      ];
      const r = f.local(I32), pa = f.local(I32), pb = f.local(I32);
      const code = ([x, y]: number[]) => binaryCode(op, f, x, y);
      forMats(f, mats, [[a0, aMat], [b0, bMat], [out0, outMat]], ([a, b, out]) => {
        f.i32(0).set(r);
        f.forStep(r, rows, 1, () => {
          f.get(a).set(pa);
          f.get(b).set(pb);
          f.get(mode).i32(0).emit(OP.i32Eq).if();
          emitMap(f, [{ ptr: pa, advance: true }, { ptr: pb, advance: true }], out, cols, code);
          f.else();
          f.get(mode).i32(1).emit(OP.i32Eq).if();
          emitMap(f, [{ ptr: pa, advance: true }, { ptr: pb, advance: false }], out, cols, code);
          f.else();
          emitMap(f, [{ ptr: pa, advance: false }, { ptr: pb, advance: true }], out, cols, code);
          f.end().end();
          f.get(a).get(aRow).emit(OP.i32Add).set(a);
          f.get(b).get(bRow).emit(OP.i32Add).set(b);
        });
      });
    });
  }
}
