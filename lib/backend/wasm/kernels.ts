/**
 * The wasm backend's SGEMM kernels, emitted with `asm.ts`.
 *
 * Algorithm (the classic Goto/BLIS decomposition, sized for 128-bit SIMD and 16 registers):
 * - `packA`: rows of `op(A)` in blocks of MR = 6, stored `[block][p][6]` (zero-padded rows), so
 *   the micro-kernel reads its 6 A values per step with constant offsets;
 * - `packB`: 8 columns of `op(B)` stored `[p][8]` (zero-padded columns);
 * - `micro`: a 6×8 block of C held in 12 f32x4 accumulators; each step of K loads 2 vectors of
 *   B, splats 6 values of A and issues 12 fused multiply-adds (`f32x4.relaxed_madd` where the
 *   runtime has relaxed SIMD, else mul + add). 12 accumulators + 2 B + 1 A = 15 of the 16 xmm
 *   registers V8 uses. The result overwrites the 6×8 block at `c` (row stride `ldc` bytes).
 * Transposed operands are handled by the packing strides (element `(r, p)` at
 * `r·rowStride + p·pStride`), so every transpose variant runs the same micro-kernel.
 *
 * @module
 */

import { I32, ModuleBuilder, OP, SIMD, V128 } from "./asm.ts";
import { addElementwiseKernels, type ElementwiseExports } from "./elementwise.ts";
import { addFp8Kernels } from "./fp8.ts";
import { addReduceKernels, type RowExports } from "./reduce.ts";

/** Rows of C per micro-kernel call. */
export const MR = 6;
/** Columns of C per micro-kernel call. */
export const NR = 8;
/** Steps of K per iteration of the micro-kernel's main loop. */
export const UNROLL = 4;

/** Whether the runtime validates relaxed-SIMD `f32x4.relaxed_madd`. */
export function hasRelaxedSimd(): boolean {
  const mb = new ModuleBuilder({ min: 1, max: 1, shared: false });
  mb.func("t", [V128, V128, V128], [V128], (f) => {
    f.get(0).get(1).get(2).simd(SIMD.f32x4RelaxedMadd);
  });
  return WebAssembly.validate(mb.build());
}

/**
 * Build the kernel module for a shared memory of `maxPages` pages: the SGEMM kernels below,
 * the elementwise kernels (`elementwise.ts`), the reduction/row kernels (`reduce.ts`) and the
 * FP8 GEMM (`fp8.ts`).
 */
export function buildKernelModule(
  options: { maxPages: number; relaxed: boolean },
): Uint8Array<ArrayBuffer> {
  const mb = new ModuleBuilder({ min: 1, max: options.maxPages, shared: true });

  // packA(a, rowStride, pStride, rows, k, dst): dst[(blk·k + p)·6 + r] = A[blk·6 + r, p] (bytes).
  mb.func("packA", [I32, I32, I32, I32, I32, I32], [], (f) => {
    const [a, rs, ps, rows, k, dst] = [0, 1, 2, 3, 4, 5];
    const blk = f.local(I32), p = f.local(I32), r = f.local(I32), row = f.local(I32);
    const blocks = f.local(I32), src = f.local(I32), base = f.local(I32);
    // blocks = ceil(rows / 6)
    f.get(rows).i32(MR - 1).emit(OP.i32Add).i32(MR).emit(OP.i32DivU).set(blocks);
    f.forStep(blk, blocks, 1, () => {
      f.get(a).get(blk).i32(MR).emit(OP.i32Mul).get(rs).emit(OP.i32Mul).emit(OP.i32Add).set(base);
      f.i32(0).set(p);
      // Fast path: op(A) transposed in memory (rowStride 4) and a full block — the 6 values of a
      // step of K are contiguous: one vector and one 8-byte copy.
      f.get(rs).i32(4).emit(OP.i32Eq).get(blk).i32(1).emit(OP.i32Add).i32(MR).emit(OP.i32Mul)
        .get(rows).emit(OP.i32LeU).emit(OP.i32And).if();
      f.forStep(p, k, 1, () => {
        f.get(dst).get(base).simdMem(SIMD.v128Load, 2).simdMem(SIMD.v128Store, 2);
        f.get(dst).get(base).mem(0x29, /* i64.load */ 2, 16).mem(0x37, /* i64.store */ 2, 16);
        f.inc(dst, MR * 4);
        f.get(base).get(ps).emit(OP.i32Add).set(base);
      });
      f.end();
      // General path (p = k already when the fast path ran): dst[p][r] = A[row, p], 0 past rows.
      f.forStep(p, k, 1, () => {
        f.i32(0).set(r);
        f.block().loop();
        f.get(r).i32(MR).emit(OP.i32GeU).brIf(1);
        f.get(blk).i32(MR).emit(OP.i32Mul).get(r).emit(OP.i32Add).set(row);
        f.get(row).get(rows).emit(OP.i32LtU);
        f.if();
        f.get(base).get(r).get(rs).emit(OP.i32Mul).emit(OP.i32Add).get(p).get(ps).emit(OP.i32Mul)
          .emit(OP.i32Add).set(src);
        f.get(dst).get(src).mem(OP.f32Load, 2).mem(OP.f32Store, 2);
        f.else();
        f.get(dst).f32(0).mem(OP.f32Store, 2);
        f.end();
        f.inc(dst, 4);
        f.inc(r, 1);
        f.br(0).end().end();
      });
    });
  });

  // packB(b, pStride, colStride, k, cols, dst): dst[p·8 + j] = B[p, j] for j < cols, else 0.
  mb.func("packB", [I32, I32, I32, I32, I32, I32], [], (f) => {
    const [b, ps, cs, k, cols, dst] = [0, 1, 2, 3, 4, 5];
    const p = f.local(I32), j = f.local(I32), rowPtr = f.local(I32);
    // Fast path: 8 contiguous columns (op(B) not transposed, a full panel) — two vector copies
    // per step of K.
    f.get(cols).i32(NR).emit(OP.i32Eq).get(cs).i32(4).emit(OP.i32Eq).emit(OP.i32And).if();
    f.forStep(p, k, 1, () => {
      f.get(dst).get(b).simdMem(SIMD.v128Load, 2).simdMem(SIMD.v128Store, 2);
      f.get(dst).get(b).simdMem(SIMD.v128Load, 2, 16).simdMem(SIMD.v128Store, 2, 16);
      f.inc(dst, NR * 4);
      f.get(b).get(ps).emit(OP.i32Add).set(b);
    });
    f.get(k).set(p); // skip the general loop
    f.end();
    f.block().loop();
    f.get(p).get(k).emit(OP.i32GeU).brIf(1);
    f.get(b).get(p).get(ps).emit(OP.i32Mul).emit(OP.i32Add).set(rowPtr);
    f.i32(0).set(j);
    f.block().loop();
    f.get(j).i32(NR).emit(OP.i32GeU).brIf(1);
    f.get(j).get(cols).emit(OP.i32LtU);
    f.if();
    f.get(dst).get(rowPtr).get(j).get(cs).emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2)
      .mem(OP.f32Store, 2);
    f.else();
    f.get(dst).f32(0).mem(OP.f32Store, 2);
    f.end();
    f.get(dst).i32(4).emit(OP.i32Add).set(dst);
    f.get(j).i32(1).emit(OP.i32Add).set(j);
    f.br(0).end().end();
    f.get(p).i32(1).emit(OP.i32Add).set(p);
    f.br(0).end().end();
  });

  // micro(ap, bp, c, ldc, k): C[6×8] = Σ_p Apacked[p][0..6] ⊗ Bpacked[p][0..8];
  // microAdd: the same, added to C (for K split into blocks).
  for (const [fname, accumulate] of [["micro", false], ["microAdd", true]] as const) {
    mb.func(fname, [I32, I32, I32, I32, I32], [], (f) => {
      const [ap, bp, c, ldc, k] = [0, 1, 2, 3, 4];
      const acc = Array.from({ length: MR * 2 }, () => f.local(V128));
      const b0 = f.local(V128), b1 = f.local(V128), av = f.local(V128);
      const madd = (accIdx: number, b: number) => {
        if (options.relaxed) {
          f.get(av).get(b).get(acc[accIdx]).simd(SIMD.f32x4RelaxedMadd).set(acc[accIdx]);
        } else {
          f.get(av).get(b).simd(SIMD.f32x4Mul).get(acc[accIdx]).simd(SIMD.f32x4Add).set(
            acc[accIdx],
          );
        }
      };
      // Main loop unrolled UNROLL times (K divisible part), then a remainder loop.
      const step = (offA: number, offB: number) => {
        f.get(bp).simdMem(SIMD.v128Load, 4, offB).set(b0);
        f.get(bp).simdMem(SIMD.v128Load, 4, offB + 16).set(b1);
        for (let r = 0; r < MR; r++) {
          f.get(ap).simdMem(SIMD.v128Load32Splat, 2, offA + r * 4).set(av);
          madd(2 * r, b0);
          madd(2 * r + 1, b1);
        }
      };
      f.block().loop();
      f.get(k).i32(UNROLL).emit(OP.i32LtU).brIf(1);
      for (let u = 0; u < UNROLL; u++) step(u * MR * 4, u * NR * 4);
      f.get(ap).i32(UNROLL * MR * 4).emit(OP.i32Add).set(ap);
      f.get(bp).i32(UNROLL * NR * 4).emit(OP.i32Add).set(bp);
      f.get(k).i32(UNROLL).emit(OP.i32Sub).set(k);
      f.br(0).end().end();
      f.block().loop();
      f.get(k).emit(OP.i32Eqz).brIf(1);
      step(0, 0);
      f.get(ap).i32(MR * 4).emit(OP.i32Add).set(ap);
      f.get(bp).i32(NR * 4).emit(OP.i32Add).set(bp);
      f.get(k).i32(1).emit(OP.i32Sub).set(k);
      f.br(0).end().end();
      for (let r = 0; r < MR; r++) {
        for (const half of [0, 1]) {
          f.get(c).get(acc[2 * r + half]);
          if (accumulate) f.get(c).simdMem(SIMD.v128Load, 4, half * 16).simd(SIMD.f32x4Add);
          f.simdMem(SIMD.v128Store, 4, half * 16);
        }
        f.get(c).get(ldc).emit(OP.i32Add).set(c);
      }
    });
  }
  addElementwiseKernels(mb);
  addReduceKernels(mb);
  addFp8Kernels(mb);
  return mb.build();
}

/** The SGEMM exports. */
export interface GemmExports {
  packA(a: number, rowStride: number, pStride: number, rows: number, k: number, dst: number): void;
  packB(b: number, pStride: number, colStride: number, k: number, cols: number, dst: number): void;
  micro(ap: number, bp: number, c: number, ldc: number, k: number): void;
  microAdd(ap: number, bp: number, c: number, ldc: number, k: number): void;
}

/** Every export of the kernel module; kernels not named in the interfaces are looked up by name. */
export type KernelExports =
  & GemmExports
  & ElementwiseExports
  & RowExports
  & Record<string, (...args: number[]) => void>;
