/**
 * The wasm backend's reduction and row kernels, emitted with `asm.ts`: sum/max/min over the
 * last axis (`[rows, cols]`, a vector accumulator folded across lanes at the end) or over the
 * middle axis of `[outer, size, inner]` (rows of `inner` folded into an output row with SIMD),
 * and the passes softmax, log-softmax and fused cross-entropy are built from:
 * - `rowStats`: per row `max` (NaN ignored, as the cpu `x > max`) and `Σ exp(x − max)`;
 * - `rowsExpScale`: `out = exp(x − shift[r]) · scale[r]` (softmax, cross-entropy backward);
 * - `rowsShift`: `out = x − shift[r]` (log-softmax).
 * The launcher (`wasm.ts`) turns the stats into `1/sum` or `lse = max + log sum` on the host —
 * one scalar per row — so the kernels need no `log`.
 *
 * Accumulation is f32 with 4 lanes (the cpu reference sums in f64), so sums agree to about
 * `√n · 2⁻²⁴` relative.
 *
 * @module
 */

import { F32, type Func, I32, type ModuleBuilder, OP, SIMD, V128 } from "./asm.ts";
import { emitExp, emitMap } from "./elementwise.ts";

/** Reductions with a SIMD kernel (`rowReduce_<op>`, `colReduce_<op>`). */
export const SIMD_REDUCE = ["sum", "max", "min"] as const;
/** A reduction with a SIMD kernel. */
export type SimdReduce = (typeof SIMD_REDUCE)[number];

/** The row-kernel exports (byte addresses, element counts). */
export interface RowExports {
  /** `maxes[r] = max_c x[r, c]`, `sums[r] = Σ_c exp(x[r, c] − maxes[r])`. */
  rowStats(x: number, maxes: number, sums: number, rows: number, cols: number): void;
  /** `out[r, c] = exp(x[r, c] − shift[r]) · scale[r]`. */
  rowsExpScale(
    x: number,
    out: number,
    rows: number,
    cols: number,
    shift: number,
    scale: number,
  ): void;
  /** `out[r, c] = x[r, c] − shift[r]`. */
  rowsShift(x: number, out: number, rows: number, cols: number, shift: number): void;
}

const INIT: Record<SimdReduce, number> = { sum: 0, max: -Infinity, min: Infinity };
const VEC: Record<SimdReduce, number> = {
  sum: SIMD.f32x4Add,
  max: SIMD.f32x4Max,
  min: SIMD.f32x4Min,
};
const SCALAR: Record<SimdReduce, number> = { sum: OP.f32Add, max: OP.f32Max, min: OP.f32Min };

/** Fold the 4 lanes of the v128 local `v` with the scalar op `op` (pushes an f32). */
function emitLanes(f: Func, v: number, op: number): void {
  f.get(v).simd(SIMD.f32x4ExtractLane, 0);
  for (let l = 1; l < 4; l++) f.get(v).simd(SIMD.f32x4ExtractLane, l).emit(op);
}

/** Add the reduction and row kernels to `mb`. */
export function addReduceKernels(mb: ModuleBuilder): void {
  for (const op of SIMD_REDUCE) {
    // rowReduce(x, out, rows, cols): out[r] = op over x[r, :]
    mb.func(`rowReduce_${op}`, [I32, I32, I32, I32], [], (f) => {
      const [x, out, rows, cols] = [0, 1, 2, 3];
      const r = f.local(I32), j = f.local(I32), acc = f.local(V128), s = f.local(F32);
      f.forStep(r, rows, 1, () => {
        f.constF32x4(INIT[op]).set(acc);
        f.i32(0).set(j);
        f.forStep(j, cols, 4, () => {
          f.get(acc).get(x).simdMem(SIMD.v128Load, 2).simd(VEC[op]).set(acc);
          f.inc(x, 16);
        });
        emitLanes(f, acc, SCALAR[op]);
        f.set(s);
        f.forStep(j, cols, 1, () => {
          f.get(s).get(x).mem(OP.f32Load, 2).emit(SCALAR[op]).set(s);
          f.inc(x, 4);
        });
        f.get(out).get(s).mem(OP.f32Store, 2);
        f.inc(out, 4);
      });
    });
    // colReduce(x, out, outer, size, inner, xRow): out[o, :inner] = op over s of the rows
    // x + (o·size + s)·xRow bytes; size ≥ 1. `xRow` is the full row (4·inner unless threads
    // split the columns of a single outer slice, which then each reduce `inner` of them).
    mb.func(`colReduce_${op}`, [I32, I32, I32, I32, I32, I32], [], (f) => {
      const [x, out, outer, size, inner, xRow] = [0, 1, 2, 3, 4, 5];
      const o = f.local(I32), s = f.local(I32), d = f.local(I32), rowBytes = f.local(I32);
      const dIn = f.local(I32), px = f.local(I32);
      f.get(inner).i32(4).emit(OP.i32Mul).set(rowBytes);
      f.forStep(o, outer, 1, () => {
        f.get(out).get(x).get(rowBytes).memoryCopy();
        f.i32(1).set(s);
        f.forStep(s, size, 1, () => {
          f.get(x).get(s).get(xRow).emit(OP.i32Mul).emit(OP.i32Add).set(px);
          f.get(out).set(d);
          f.get(out).set(dIn);
          emitMap(f, [{ ptr: dIn, advance: true }, { ptr: px, advance: true }], d, inner, (v) => {
            f.get(v[0]).get(v[1]).simd(VEC[op]);
          });
        });
        f.get(x).get(size).get(xRow).emit(OP.i32Mul).emit(OP.i32Add).set(x);
        f.get(out).get(xRow).emit(OP.i32Add).set(out); // output rows are full rows too
      });
    });
  }

  mb.func("rowStats", [I32, I32, I32, I32, I32], [], (f) => {
    const [x, maxes, sums, rows, cols] = [0, 1, 2, 3, 4];
    const r = f.local(I32), j = f.local(I32), p = f.local(I32);
    const acc = f.local(V128), tail = f.local(V128), v = f.local(V128), m = f.local(F32);
    const lane = f.local(F32), mv = f.local(V128);
    f.forStep(r, rows, 1, () => {
      // max, ignoring NaN: pmax(acc, x) = acc < x ? x : acc
      f.get(x).set(p);
      f.constF32x4(-Infinity).set(acc);
      f.i32(0).set(j);
      f.forStep(j, cols, 4, () => {
        f.get(acc).get(p).simdMem(SIMD.v128Load, 2).simd(SIMD.f32x4Pmax).set(acc);
        f.inc(p, 16);
      });
      f.forStep(j, cols, 1, () => {
        f.get(acc).get(p).simdMem(SIMD.v128Load32Splat, 2).simd(SIMD.f32x4Pmax).set(acc);
        f.inc(p, 4);
      });
      f.get(acc).simd(SIMD.f32x4ExtractLane, 0).set(m);
      for (let l = 1; l < 4; l++) {
        f.get(acc).simd(SIMD.f32x4ExtractLane, l).set(lane);
        f.get(lane).get(m).get(m).get(lane).emit(0x5d /* f32.lt */).emit(OP.select).set(m);
      }
      f.get(maxes).get(m).mem(OP.f32Store, 2);
      // Σ exp(x − max): body lanes in acc, tail (splatted) in lane 0 of `tail`
      f.get(m).simd(SIMD.f32x4Splat).set(mv);
      f.constF32x4(0).set(acc);
      f.constF32x4(0).set(tail);
      f.i32(0).set(j);
      f.forStep(j, cols, 4, () => {
        f.get(x).simdMem(SIMD.v128Load, 2).get(mv).simd(SIMD.f32x4Sub).set(v);
        f.get(acc);
        emitExp(f, v);
        f.simd(SIMD.f32x4Add).set(acc);
        f.inc(x, 16);
      });
      f.forStep(j, cols, 1, () => {
        f.get(x).simdMem(SIMD.v128Load32Splat, 2).get(mv).simd(SIMD.f32x4Sub).set(v);
        f.get(tail);
        emitExp(f, v);
        f.simd(SIMD.f32x4Add).set(tail);
        f.inc(x, 4);
      });
      f.get(sums);
      emitLanes(f, acc, OP.f32Add);
      f.get(tail).simd(SIMD.f32x4ExtractLane, 0).emit(OP.f32Add).mem(OP.f32Store, 2);
      f.inc(maxes, 4);
      f.inc(sums, 4);
    });
  });

  mb.func("rowsExpScale", [I32, I32, I32, I32, I32, I32], [], (f) => {
    const [x, out, rows, cols, shift, scale] = [0, 1, 2, 3, 4, 5];
    const r = f.local(I32), t = f.local(V128);
    f.forStep(r, rows, 1, () => {
      emitMap(
        f,
        [{ ptr: x, advance: true }, { ptr: shift, advance: false }, {
          ptr: scale,
          advance: false,
        }],
        out,
        cols,
        ([xv, sh, sc]) => {
          f.get(xv).get(sh).simd(SIMD.f32x4Sub).set(t);
          emitExp(f, t);
          f.get(sc).simd(SIMD.f32x4Mul);
        },
      );
      f.inc(shift, 4);
      f.inc(scale, 4);
    });
  });

  mb.func("rowsShift", [I32, I32, I32, I32, I32], [], (f) => {
    const [x, out, rows, cols, shift] = [0, 1, 2, 3, 4];
    const r = f.local(I32);
    f.forStep(r, rows, 1, () => {
      emitMap(
        f,
        [{ ptr: x, advance: true }, { ptr: shift, advance: false }],
        out,
        cols,
        ([xv, sh]) => f.get(xv).get(sh).simd(SIMD.f32x4Sub),
      );
      f.inc(shift, 4);
    });
  });
}
