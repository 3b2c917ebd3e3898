/**
 * The wasm backend's FP8 kernels, emitted with `asm.ts` into a module of their own that shares
 * the backend's heap: online quantisation (per-tensor, 1×128-tile or 128×128-block scales),
 * dequantisation and the GEMM simulation with a limited, promoted accumulator of DeepSeek-V3
 * §3.3 (arXiv:2412.19437). The cpu twin is `lib/backend/cpu/fp8.ts`, which runs the definitions
 * of `lib/fp8`; these kernels give the same codes, scales and products bit for bit
 * (tests/backend/fp8_test.ts).
 *
 * Algorithm:
 * - `rowAmax` (scalar, calling thread): the largest magnitude of each row within each column
 *   block (NaN skipped, as `blockAmax`): `[R, gridCols]` partials; the host folds them over each
 *   block's rows and takes the scales from `scalesFromAmax` of `lib/fp8/scaling.ts` (one number
 *   per block).
 * - `quantize_<format>_<overflow>` (scalar, calling thread): per element `code = encode(x / scale)`
 *   with integer arithmetic on the float32 bits, the rounding of `encodeFp8` (`lib/fp8/format.ts`):
 *   split sign, exponent and significand, clamp the exponent to the subnormal one, shift the
 *   24-bit significand to the FP8 last place, round the shifted-out bits to nearest, ties to even.
 * - `dequantize` (scalar, calling thread): per element `table[code] · scale` with the 256-entry
 *   `decodeTable` in the heap.
 * - The GEMM, in the backend's kernel module so that it runs on the worker threads
 *   ({@linkcode addFp8GemmKernels}); the reference's float64 arithmetic, two lanes per f64x2:
 *   1) `fp8Panels` decodes B's codes (without scales) into float64 panels of 16 columns,
 *      `[⌈N / 16⌉][K][16]`, zero past column N; threads split the rows of B. The host expands
 *      B's scales to one float64 per column and promotion interval, `[⌈N / 16⌉][⌈K / N_C⌉][16]`.
 *   2) `fp8Gemm_<rounding>`: per panel, per row of A (threads split the rows), 8 f64x2 limited
 *      accumulators `s` take `s ← round(s + a · b)` for each k of an interval — the product of
 *      decoded codes is exact, the add is float64's, `round` masks the float64 bits below the
 *      kept mantissa (`truncate`), or adds `half − 1 + lsb` first (`nearest`, ties to even); then
 *      the promotion `acc ← fp32(acc + fp32(s · fp32(sa · sb)))`, each `fp32` a demote-promote.
 *   No special case for zeros, infinities and NaN: the masks leave ±0 and ±inf unchanged and a
 *   NaN a NaN (the quiet bit is kept), as the reference's `roundBits`. Work per output: K
 *   multiply-add-masks and 3 promotions per `N_C`; B's panel (16 K float64s) stays in cache
 *   while the rows of A stream past it.
 * Limits: quantisation runs on one thread; the limited accumulator's sums stay in float64's
 * normal range (products of FP8 codes are at least 2⁻³²); `K · 128` bytes of a panel < 2³¹.
 *
 * @module
 */

import type {
  DType,
  Fp8BlockSpec,
  Fp8MatmulSpec,
  Fp8QuantizeSpec,
  Fp8Storages,
  Storage,
} from "../backend.ts";
import { decodeTable, FP8_FORMATS, type Fp8Format } from "../../fp8/format.ts";
import { scalesFromAmax } from "../../fp8/scaling.ts";
import { checkFp8MatmulSpec, fp8Grid } from "../cpu/fp8.ts";
import { F32, type Func, I32, ModuleBuilder, OP, SIMD, sleb, V128 } from "./asm.ts";
import type { SplitJob } from "./pool.ts";
import type { WasmHeap } from "./heap.ts";

/** Opcodes this module needs beyond `asm.ts`'s (WebAssembly Core 2.0 §5.4, SIMD §5.4.8). */
const W = {
  i32Load8U: 0x2d,
  i32Store8: 0x3a,
  f64Load: 0x2b,
  f64Store: 0x39,
  f32Gt: 0x5e,
  i32Or: 0x72,
  i32ShrU: 0x76,
  i32DivU: 0x6e,
  i32RemU: 0x70,
  f32Abs: 0x8b,
  f64PromoteF32: 0xbb,
  i32ReinterpretF32: 0xbc,
} as const;
/** SIMD opcodes (after 0xfd) of the FP8 GEMM. */
const V = {
  v128Load64Splat: 0x0a,
  i64x2Splat: 0x12,
  f64x2Splat: 0x14,
  f32x4ExtractLane: 0x1f,
  f32x4DemoteF64x2Zero: 0x5e,
  f64x2PromoteLowF32x4: 0x5f,
  i64x2ShrU: 0xcd,
  i64x2Add: 0xce,
  f64x2Add: 0xf0,
  f64x2Mul: 0xf2,
} as const;
/** Columns of B per panel of the FP8 GEMM: 8 f64x2 accumulators. */
export const FP8_PANEL = 16;

/**
 * What the kernels need from the backend: its heap, its storages (`ptr` into the heap), and its
 * threads for a split job of the kernel module (given its work in elements or multiply-adds).
 */
export interface Fp8Heap {
  readonly heap: WasmHeap;
  allocate(dtype: DType, size: number): Storage;
  upload(dtype: DType, data: ArrayLike<number>): Storage;
  release(storage: Storage): void;
  splitFp8(job: SplitJob, work: number): void;
}

/** A storage in the heap: its address. */
interface HeapStorage extends Storage {
  readonly ptr: number;
}

function ptrOf(s: Storage): number {
  const ptr = (s as Partial<HeapStorage>).ptr;
  if (typeof ptr !== "number") {
    throw new Error("Cannot run a wasm FP8 kernel on a storage outside the wasm heap");
  }
  return ptr;
}

/** `i64.const v` for a small `v` (its signed LEB128 is the 32-bit one). */
function i64(f: Func, v: number): Func {
  return f.emit(0x42, ...sleb(v));
}

/** `fp32(x)` on the f64x2 on the stack: round both lanes to float32 and back (demote, promote). */
function fp32x2(f: Func): Func {
  return f.simd(V.f32x4DemoteF64x2Zero).simd(V.f64x2PromoteLowF32x4);
}

/** Emit `for (i = from; i < end; i++) body()` over i32 locals. */
function loop(f: Func, i: number, from: () => void, end: number, body: () => void): void {
  from();
  f.set(i);
  f.forStep(i, end, 1, body);
}

/** Emit `code = encode(v)` (`encodeFp8` of format.ts) for the f32 local `v` into the i32 local. */
function emitEncode(f: Func, v: number, code: number, format: Fp8Format, saturate: boolean): void {
  const overflow = saturate ? format.maxCode : (format.infCode ?? format.nanCode);
  const bits = f.local(I32), sign = f.local(I32), expField = f.local(I32), frac = f.local(I32);
  const sig = f.local(I32), e = f.local(I32), eOut = f.local(I32), shift = f.local(I32);
  const q = f.local(I32), rest = f.local(I32), half = f.local(I32), mag = f.local(I32);
  f.get(v).emit(W.i32ReinterpretF32).set(bits);
  f.get(bits).i32(31).emit(W.i32ShrU).i32(7).emit(OP.i32Shl).set(sign);
  f.get(bits).i32(23).emit(W.i32ShrU).i32(0xff).emit(OP.i32And).set(expField);
  f.get(bits).i32(0x7fffff).emit(OP.i32And).set(frac);
  f.get(sign).set(code); // ±0, float32 subnormals, below half the smallest subnormal
  f.get(expField).i32(0xff).emit(OP.i32Eq).if(); // inf or NaN
  f.get(sign).i32(format.nanCode).i32(overflow).get(frac).emit(OP.select).emit(W.i32Or).set(code);
  f.else();
  f.get(expField).if(); // not zero
  f.get(frac).i32(0x800000).emit(W.i32Or).set(sig);
  f.get(expField).i32(127).emit(OP.i32Sub).set(e);
  // eOut = max(e, 1 − bias): the subnormal exponent
  f.get(e).i32(1 - format.bias).get(e).i32(1 - format.bias).emit(OP.i32GtS).emit(OP.select)
    .set(eOut);
  f.i32(23 - format.manBits).get(eOut).get(e).emit(OP.i32Sub).emit(OP.i32Add).set(shift);
  f.get(shift).i32(24).emit(OP.i32LeU).if();
  f.get(sig).get(shift).emit(W.i32ShrU).set(q);
  f.get(sig).get(q).get(shift).emit(OP.i32Shl).emit(OP.i32Sub).set(rest);
  f.i32(1).get(shift).i32(1).emit(OP.i32Sub).emit(OP.i32Shl).set(half);
  // q += rest > half || (rest == half && q odd): nearest, ties to even
  f.get(q).get(rest).get(half).emit(OP.i32GtU);
  f.get(rest).get(half).emit(OP.i32Eq).get(q).i32(1).emit(OP.i32And).emit(OP.i32And);
  f.emit(W.i32Or).emit(OP.i32Add).set(q);
  f.get(eOut).i32(format.bias - 1).emit(OP.i32Add).i32(format.manBits).emit(OP.i32Shl).get(q)
    .emit(OP.i32Add).set(mag);
  f.get(sign).i32(overflow).get(mag).get(mag).i32(format.maxCode).emit(OP.i32GtU)
    .emit(OP.select).emit(W.i32Or).set(code);
  f.end().end().end();
}

/** Locals holding the sizes of a row-major `[rows, cols]` matrix in column blocks of `bc`. */
interface TileLocals {
  rows: number;
  cols: number;
  bc: number;
  gridCols: number;
}

/**
 * Emit loops over the rows `r` and column blocks `g` of a matrix, and within each the elements:
 * `before(r, g)` once per (row, block), `each(idx)` per element (`idx = r·cols + c`, an i32
 * local), `after(r, g)` at the end of the block's row.
 */
function emitTiles(
  f: Func,
  d: TileLocals,
  body: {
    before?: (r: number, g: number) => void;
    each: (idx: number) => void;
    after?: (r: number, g: number) => void;
  },
): void {
  const r = f.local(I32), g = f.local(I32), c = f.local(I32), c1 = f.local(I32);
  const idx = f.local(I32);
  loop(f, r, () => f.i32(0), d.rows, () => {
    loop(f, g, () => f.i32(0), d.gridCols, () => {
      body.before?.(r, g);
      // c1 = min((g + 1)·bc, cols)
      f.get(g).i32(1).emit(OP.i32Add).get(d.bc).emit(OP.i32Mul).set(c1);
      f.get(c1).get(d.cols).get(c1).get(d.cols).emit(OP.i32LtU).emit(OP.select).set(c1);
      loop(f, c, () => f.get(g).get(d.bc).emit(OP.i32Mul), c1, () => {
        f.get(r).get(d.cols).emit(OP.i32Mul).get(c).emit(OP.i32Add).set(idx);
        body.each(idx);
      });
      body.after?.(r, g);
    });
  });
}

/** Emit `s = scales[(r / br)·gridCols + g]` (locals; `s` an f32 local). */
function emitScale(
  f: Func,
  d: { scales: number; br: number; gridCols: number },
  r: number,
  g: number,
  s: number,
): void {
  f.get(d.scales).get(r).get(d.br).emit(W.i32DivU).get(d.gridCols).emit(OP.i32Mul).get(g)
    .emit(OP.i32Add).i32(4).emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2).set(s);
}

/** Build the FP8 kernel module for a shared memory of `maxPages` pages. */
function buildFp8Module(maxPages: number): Uint8Array<ArrayBuffer> {
  const mb = new ModuleBuilder({ min: 1, max: maxPages, shared: true });

  // rowAmax(x, out, rows, cols, bc, gridCols): out[r, g] = max |x[r, g·bc .. (g+1)·bc)|
  mb.func("rowAmax", [I32, I32, I32, I32, I32, I32], [], (f) => {
    const [x, out, rows, cols, bc, gridCols] = [0, 1, 2, 3, 4, 5];
    const m = f.local(F32), a = f.local(F32);
    emitTiles(f, { rows, cols, bc, gridCols }, {
      before: () => f.f32(0).set(m),
      each: (idx) => {
        f.get(x).get(idx).i32(4).emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2)
          .emit(W.f32Abs).set(a);
        f.get(a).get(m).emit(W.f32Gt).if().get(a).set(m).end(); // NaN compares false
      },
      after: (r, g) => {
        f.get(out).get(r).get(gridCols).emit(OP.i32Mul).get(g).emit(OP.i32Add).i32(4)
          .emit(OP.i32Mul).emit(OP.i32Add).get(m).mem(OP.f32Store, 2);
      },
    });
  });

  // quantize_<format>_<overflow>(x, codes, scales, rows, cols, br, bc, gridCols)
  for (const format of [FP8_FORMATS.e4m3, FP8_FORMATS.e5m2]) {
    for (const saturate of [true, false]) {
      const name = `quantize_${format.name}_${saturate ? "saturate" : "overflow"}`;
      mb.func(name, [I32, I32, I32, I32, I32, I32, I32, I32], [], (f) => {
        const [x, codes, scales, rows, cols, br, bc, gridCols] = [0, 1, 2, 3, 4, 5, 6, 7];
        const s = f.local(F32), v = f.local(F32), code = f.local(I32);
        emitTiles(f, { rows, cols, bc, gridCols }, {
          before: (r, g) => emitScale(f, { scales, br, gridCols }, r, g, s),
          each: (idx) => {
            f.get(x).get(idx).i32(4).emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2).get(s)
              .emit(OP.f32Div).set(v);
            emitEncode(f, v, code, format, saturate);
            f.get(codes).get(idx).emit(OP.i32Add).get(code).mem(W.i32Store8, 0);
          },
        });
      });
    }
  }

  // dequantize(codes, scales, out, rows, cols, br, bc, gridCols, table): table[code] · scale
  mb.func("dequantize", [I32, I32, I32, I32, I32, I32, I32, I32, I32], [], (f) => {
    const [codes, scales, out, rows, cols, br, bc, gridCols, table] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const s = f.local(F32);
    emitTiles(f, { rows, cols, bc, gridCols }, {
      before: (r, g) => emitScale(f, { scales, br, gridCols }, r, g, s),
      each: (idx) => {
        f.get(out).get(idx).i32(4).emit(OP.i32Mul).emit(OP.i32Add);
        f.get(table).get(codes).get(idx).emit(OP.i32Add).mem(W.i32Load8U, 0).i32(4)
          .emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2).get(s).emit(OP.f32Mul);
        f.mem(OP.f32Store, 2);
      },
    });
  });

  return mb.build();
}

/** Words of the parameter block of `fp8Gemm_<rounding>`, in this order (i32 each). */
const GEMM_PARAMS = [
  "aCodes", // A's codes, u8 [M, K]
  "aScales", // A's scales, f32 over its grid
  "panels", // B decoded, f64 [⌈N / 16⌉][K][16]
  "panelScales", // B's scales per interval and column, f64 [⌈N / 16⌉][⌈K / N_C⌉][16]
  "out", // C, f32 [M, N]
  "n",
  "k",
  "step", // N_C, at most K
  "aBr", // rows of A's blocks
  "aBc", // columns of A's blocks: the K-extent of one of its scales
  "aGridCols",
  "tableA", // f64 decode table of A's format [256]
  "drop", // float64 mantissa bits below the kept ones: 52 − accumulatorBits
] as const;

/** `f64.const 0`. */
function f64Zero(f: Func): Func {
  return f.emit(0x44, 0, 0, 0, 0, 0, 0, 0, 0);
}

/**
 * Add the FP8 GEMM kernels to the backend's kernel module, so that the worker threads have them
 * too: `fp8Panels(codes, table, out, n, k, rows)` decodes `rows` rows of B into the panels, and
 * `fp8Gemm_truncate` / `fp8Gemm_nearest(params, row0, rows)` compute rows `row0 .. row0 + rows`
 * of C (see the module doc). Both are split jobs (`pool.ts`).
 *
 * @param mb The kernel module under construction.
 *
 * @example The kernels are in the module
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { ModuleBuilder } from "./asm.ts";
 * import { addFp8GemmKernels } from "./fp8.ts";
 * const mb = new ModuleBuilder({ min: 1, max: 1, shared: true });
 * addFp8GemmKernels(mb);
 * const names = WebAssembly.Module.exports(new WebAssembly.Module(mb.build())).map((e) => e.name);
 * ok(names.includes("fp8Gemm_truncate") && names.includes("fp8Panels"));
 * ```
 */
export function addFp8GemmKernels(mb: ModuleBuilder): void {
  const P = FP8_PANEL, ROW = FP8_PANEL * 8; // columns and bytes of one k-row of a panel
  // fp8Panels(codes, table, out, n, k, rows): out[j / 16][r][j % 16] = table[codes[r, j]] (f64),
  // 0 for n ≤ j < 16⌈n / 16⌉. `codes` and `out` point at the first row (rows are n and 128
  // bytes apart), so threads split the rows.
  mb.func("fp8Panels", [I32, I32, I32, I32, I32, I32], [], (f) => {
    const [codes, table, out, n, k, rows] = [0, 1, 2, 3, 4, 5];
    const r = f.local(I32), jb = f.local(I32), blocks = f.local(I32), c = f.local(I32);
    const j = f.local(I32), dst = f.local(I32), panelBytes = f.local(I32), panel = f.local(I32);
    f.i32(P).set(panel);
    f.get(n).i32(P - 1).emit(OP.i32Add).i32(P).emit(W.i32DivU).set(blocks);
    f.get(k).i32(ROW).emit(OP.i32Mul).set(panelBytes);
    loop(f, r, () => f.i32(0), rows, () => {
      loop(f, jb, () => f.i32(0), blocks, () => {
        loop(f, c, () => f.i32(0), panel, () => {
          f.get(jb).i32(P).emit(OP.i32Mul).get(c).emit(OP.i32Add).set(j);
          // dst = out + jb·k·128 + r·128 + c·8
          f.get(out).get(jb).get(panelBytes).emit(OP.i32Mul).emit(OP.i32Add).get(r).i32(ROW)
            .emit(OP.i32Mul).emit(OP.i32Add).get(c).i32(8).emit(OP.i32Mul).emit(OP.i32Add)
            .set(dst);
          f.get(j).get(n).emit(OP.i32LtU).if();
          f.get(dst).get(table).get(codes).get(r).get(n).emit(OP.i32Mul).emit(OP.i32Add).get(j)
            .emit(OP.i32Add).mem(W.i32Load8U, 0).i32(8).emit(OP.i32Mul).emit(OP.i32Add)
            .mem(W.f64Load, 3).mem(W.f64Store, 3);
          f.else();
          f64Zero(f.get(dst)).mem(W.f64Store, 3);
          f.end();
        });
      });
    });
  });

  for (const rounding of ["truncate", "nearest"] as const) {
    mb.func(`fp8Gemm_${rounding}`, [I32, I32, I32], [], (f) => {
      const [params, row0, rows] = [0, 1, 2];
      const p = Object.fromEntries(GEMM_PARAMS.map((name, i) => {
        const local = f.local(I32);
        f.get(params).mem(OP.i32Load, 2, 4 * i).set(local);
        return [name, local];
      })) as Record<(typeof GEMM_PARAMS)[number], number>;
      const [jb, blocks, i, iEnd, k0, k1, ap, aEnd, bp, bBase, sBase, sp, aRow, aRowScales] = Array
        .from({ length: 14 }, () => f.local(I32));
      const panelBytes = f.local(I32), intervalsBytes = f.local(I32), outRow = f.local(I32);
      const s = Array.from({ length: P / 2 }, () => f.local(V128)); // limited accumulators
      const acc = Array.from({ length: P / 2 }, () => f.local(V128)); // FP32 accumulators
      const a = f.local(V128), x = f.local(V128), sa = f.local(V128), zero = f.local(V128);
      const notMask = f.local(V128), halfM1 = f.local(V128), one = f.local(V128);
      // notMask = ~(2^drop − 1), halfM1 = 2^(drop − 1) − 1, one = 1 (i64 lanes); drop ≥ 1 for nearest
      f.f32x4(0).set(zero);
      i64(f, -1).get(p.drop).emit(0xad /* i64.extend_i32_u */).emit(0x86 /* i64.shl */)
        .simd(V.i64x2Splat).set(notMask);
      i64(f, 1).get(p.drop).emit(0xad).emit(0x86);
      i64(f, 1).emit(0x88 /* i64.shr_u */);
      i64(f, 1).emit(0x7d /* i64.sub */).simd(V.i64x2Splat).set(halfM1);
      i64(f, 1).simd(V.i64x2Splat).set(one);
      f.get(p.n).i32(P - 1).emit(OP.i32Add).i32(P).emit(W.i32DivU).set(blocks);
      f.get(p.k).i32(ROW).emit(OP.i32Mul).set(panelBytes);
      // intervalsBytes = ⌈k / step⌉ · 128: the panel scales of one panel
      f.get(p.k).get(p.step).emit(OP.i32Add).i32(1).emit(OP.i32Sub).get(p.step).emit(W.i32DivU)
        .i32(ROW).emit(OP.i32Mul).set(intervalsBytes);
      f.get(row0).get(rows).emit(OP.i32Add).set(iEnd);
      loop(f, jb, () => f.i32(0), blocks, () => {
        f.get(p.panels).get(jb).get(panelBytes).emit(OP.i32Mul).emit(OP.i32Add).set(bBase);
        f.get(p.panelScales).get(jb).get(intervalsBytes).emit(OP.i32Mul).emit(OP.i32Add)
          .set(sBase);
        loop(f, i, () => f.get(row0), iEnd, () => {
          for (const v of acc) f.get(zero).set(v);
          f.get(p.aCodes).get(i).get(p.k).emit(OP.i32Mul).emit(OP.i32Add).set(aRow);
          // aRowScales = aScales + (i / aBr)·aGridCols·4
          f.get(p.aScales).get(i).get(p.aBr).emit(W.i32DivU).get(p.aGridCols).emit(OP.i32Mul)
            .i32(4).emit(OP.i32Mul).emit(OP.i32Add).set(aRowScales);
          f.i32(0).set(k0);
          f.get(sBase).set(sp);
          f.block().loop();
          f.get(k0).get(p.k).emit(OP.i32GeU).brIf(1);
          // 1) the limited accumulators over k0 .. k1 = min(k0 + step, k)
          f.get(k0).get(p.step).emit(OP.i32Add).set(k1);
          f.get(k1).get(p.k).get(k1).get(p.k).emit(OP.i32LtU).emit(OP.select).set(k1);
          for (const v of s) f.get(zero).set(v);
          f.get(aRow).get(k0).emit(OP.i32Add).set(ap);
          f.get(aRow).get(k1).emit(OP.i32Add).set(aEnd);
          f.get(bBase).get(k0).i32(ROW).emit(OP.i32Mul).emit(OP.i32Add).set(bp);
          f.block().loop();
          f.get(ap).get(aEnd).emit(OP.i32GeU).brIf(1);
          // a = decode(A[i, kk]) in both lanes
          f.get(p.tableA).get(ap).mem(W.i32Load8U, 0).i32(8).emit(OP.i32Mul).emit(OP.i32Add)
            .simdMem(V.v128Load64Splat, 3).set(a);
          s.forEach((v, lane) => {
            // s ← round(s + a · b): exact product, float64 add, low bits masked
            f.get(v).get(a).get(bp).simdMem(SIMD.v128Load, 4, 16 * lane).simd(V.f64x2Mul)
              .simd(V.f64x2Add);
            if (rounding === "nearest") {
              // + half − 1 + lsb: to nearest, ties to even (a carry moves to the next binade)
              f.tee(x).get(x).get(p.drop).simd(V.i64x2ShrU).get(one).simd(SIMD.v128And)
                .get(halfM1).simd(V.i64x2Add).simd(V.i64x2Add);
            }
            f.get(notMask).simd(SIMD.v128And).set(v);
          });
          f.inc(ap, 1).inc(bp, ROW);
          f.br(0).end().end();
          // 2) promotion: acc ← fp32(acc + fp32(s · fp32(sa · sb)))
          f.get(aRowScales).get(k0).get(p.aBc).emit(W.i32DivU).i32(4).emit(OP.i32Mul)
            .emit(OP.i32Add).mem(OP.f32Load, 2).emit(W.f64PromoteF32).simd(V.f64x2Splat).set(sa);
          s.forEach((v, lane) => {
            f.get(acc[lane]).get(v);
            fp32x2(f.get(sa).get(sp).simdMem(SIMD.v128Load, 4, 16 * lane).simd(V.f64x2Mul));
            fp32x2(f.simd(V.f64x2Mul));
            fp32x2(f.simd(V.f64x2Add)).set(acc[lane]);
          });
          f.get(k0).get(p.step).emit(OP.i32Add).set(k0);
          f.inc(sp, ROW);
          f.br(0).end().end();
          // 3) C[i, 16 jb + c] for the columns that exist
          f.get(p.out).get(i).get(p.n).emit(OP.i32Mul).i32(4).emit(OP.i32Mul).emit(OP.i32Add)
            .set(outRow);
          acc.forEach((v, lane) => {
            for (const half of [0, 1]) {
              const col = 2 * lane + half;
              f.get(jb).i32(P).emit(OP.i32Mul).i32(col).emit(OP.i32Add).get(p.n)
                .emit(OP.i32LtU).if();
              f.get(outRow).get(jb).i32(P * 4).emit(OP.i32Mul).emit(OP.i32Add);
              f.get(v).simd(V.f32x4DemoteF64x2Zero).simd(V.f32x4ExtractLane, half);
              f.mem(OP.f32Store, 2, 4 * col);
              f.end();
            }
          });
        });
      });
    });
  }
}

interface Fp8Exports {
  rowAmax(x: number, out: number, rows: number, cols: number, bc: number, gridCols: number): void;
  dequantize(...args: number[]): void;
  [quantize: string]: (...args: number[]) => void;
}

/**
 * The FP8 kernels of a wasm backend: the module is built and instantiated on the backend's heap
 * at the first FP8 op, with the decode tables of both formats in the heap.
 *
 * @example Quantise and dequantise on the wasm backend
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { createWasmBackend } from "../wasm.ts";
 * const wasm = await createWasmBackend({ threads: 1 });
 * const spec = { rows: 1, cols: 3, granularity: "tile", tileSize: 128, format: "e4m3" } as const;
 * const q = wasm.fp8Quantize(wasm.upload("f32", [448, 1.75, 0.3]), {
 *   ...spec, saturate: true, amaxFloor: 1e-4, powerOfTwo: false,
 * });
 * deepStrictEqual(Array.from(wasm.readSync(wasm.fp8Dequantize(q.codes, q.scales, spec))), [448, 1.75, 0.3125]);
 * wasm.close();
 * ```
 */
export class WasmFp8Kernels {
  #host: Fp8Heap;
  #ex: Fp8Exports;
  #tables: Record<string, Storage>;
  #tables64: Record<string, Storage>;

  constructor(host: Fp8Heap) {
    this.#host = host;
    const module = new WebAssembly.Module(buildFp8Module(host.heap.maxPages));
    const instance = new WebAssembly.Instance(module, { env: { memory: host.heap.memory } });
    this.#ex = instance.exports as unknown as Fp8Exports;
    this.#tables = {
      e4m3: host.upload("f32", decodeTable(FP8_FORMATS.e4m3)),
      e5m2: host.upload("f32", decodeTable(FP8_FORMATS.e5m2)),
    };
    const table64 = (format: Fp8Format) => {
      const t = host.allocate("f32", 2 * 256);
      new Float64Array(host.heap.memory.buffer, ptrOf(t), 256).set(decodeTable(format));
      return t;
    };
    this.#tables64 = { e4m3: table64(FP8_FORMATS.e4m3), e5m2: table64(FP8_FORMATS.e5m2) };
  }

  /** FP8 quantisation with online or given scales, see `Backend.fp8Quantize`. */
  quantize(x: Storage, spec: Fp8QuantizeSpec, given?: Storage): Fp8Storages {
    const { rows, cols } = spec;
    const { br, bc, gridCols } = fp8Grid(spec);
    const scales = given ?? this.#scales(x, spec);
    const codes = this.#host.allocate("u8", rows * cols);
    const name = `quantize_${spec.format}_${spec.saturate ? "saturate" : "overflow"}`;
    this.#ex[name](ptrOf(x), ptrOf(codes), ptrOf(scales), rows, cols, br, bc, gridCols);
    return { codes, scales };
  }

  /** Scales from each block's amax: row partials in wasm, the fold and `scalesFromAmax` here. */
  #scales(x: Storage, spec: Fp8QuantizeSpec): Storage {
    const { rows, cols } = spec;
    const { br, bc, gridRows, gridCols } = fp8Grid(spec);
    const partial = this.#host.allocate("f32", rows * gridCols);
    this.#ex.rowAmax(ptrOf(x), ptrOf(partial), rows, cols, bc, gridCols);
    const rowAmax = (partial as unknown as { data: Float32Array }).data;
    const amax = new Float32Array(gridRows * gridCols);
    for (let r = 0; r < rows; r++) {
      const g = Math.floor(r / br) * gridCols;
      for (let c = 0; c < gridCols; c++) {
        amax[g + c] = Math.max(amax[g + c], rowAmax[r * gridCols + c]);
      }
    }
    this.#host.release(partial);
    return this.#host.upload(
      "f32",
      scalesFromAmax(amax, {
        format: FP8_FORMATS[spec.format],
        amaxFloor: spec.amaxFloor,
        powerOfTwo: spec.powerOfTwo,
      }),
    );
  }

  /** FP8 dequantisation, see `Backend.fp8Dequantize`. */
  dequantize(codes: Storage, scales: Storage, spec: Fp8BlockSpec): Storage {
    const { br, bc, gridCols } = fp8Grid(spec);
    const out = this.#host.allocate("f32", spec.rows * spec.cols);
    const table = ptrOf(this.#tables[spec.format]);
    this.#ex.dequantize(
      ptrOf(codes),
      ptrOf(scales),
      ptrOf(out),
      spec.rows,
      spec.cols,
      br,
      bc,
      gridCols,
      table,
    );
    return out;
  }

  /** The simulated FP8 GEMM, see `Backend.fp8Matmul` (kernels: {@linkcode addFp8GemmKernels}). */
  matmul(a: Fp8Storages, b: Fp8Storages, spec: Fp8MatmulSpec): Storage {
    checkFp8MatmulSpec(spec);
    const { m, n, k } = spec;
    const ga = fp8Grid(spec.a), gb = fp8Grid(spec.b);
    const step = Math.min(spec.promotionInterval, k), intervals = Math.ceil(k / step);
    const blocks = Math.ceil(n / FP8_PANEL);
    const host = this.#host, memory = host.heap.memory;
    const out = host.allocate("f32", m * n);
    // 1) B's codes decoded into panels of 16 columns (f64), threads splitting its rows
    const panels = host.allocate("f32", 2 * blocks * k * FP8_PANEL);
    host.splitFp8({
      fn: "fp8Panels",
      count: k,
      countArg: 5,
      align: 1,
      args: [ptrOf(b.codes), ptrOf(this.#tables64[spec.b.format]), ptrOf(panels), n, k, k],
      steps: [n, 0, FP8_PANEL * 8, 0, 0, 0],
    }, k * n);
    // 2) B's scale of each column in each promotion interval (f64), [blocks][intervals][16]
    const panelScales = host.allocate("f32", 2 * blocks * intervals * FP8_PANEL);
    const sb = new Float64Array(memory.buffer, ptrOf(panelScales), blocks * intervals * FP8_PANEL);
    const bScales = new Float32Array(memory.buffer, ptrOf(b.scales), gb.gridRows * gb.gridCols);
    for (let jb = 0; jb < blocks; jb++) {
      for (let g = 0; g < intervals; g++) {
        const row = Math.floor((g * step) / gb.br) * gb.gridCols;
        for (let c = 0; c < FP8_PANEL; c++) {
          const j = jb * FP8_PANEL + c;
          sb[(jb * intervals + g) * FP8_PANEL + c] = j < n
            ? bScales[row + Math.floor(j / gb.bc)]
            : 0;
        }
      }
    }
    // 3) the rows of C, threads splitting them
    const drop = 52 - spec.accumulatorBits; // float64 mantissa bits below the kept ones
    const truncate = spec.accumulatorRounding === "truncate" || drop === 0; // 52 bits: exact
    const values: Record<(typeof GEMM_PARAMS)[number], number> = {
      aCodes: ptrOf(a.codes),
      aScales: ptrOf(a.scales),
      panels: ptrOf(panels),
      panelScales: ptrOf(panelScales),
      out: ptrOf(out),
      n,
      k,
      step,
      aBr: ga.br,
      aBc: ga.bc,
      aGridCols: ga.gridCols,
      tableA: ptrOf(this.#tables64[spec.a.format]),
      drop,
    };
    const params = host.upload("i32", GEMM_PARAMS.map((name) => values[name]));
    host.splitFp8({
      fn: truncate ? "fp8Gemm_truncate" : "fp8Gemm_nearest",
      count: m,
      countArg: 2,
      align: 1,
      args: [ptrOf(params), 0, m],
      steps: [0, 1, 0],
    }, m * n * k);
    for (const t of [panels, panelScales, params]) host.release(t);
    return out;
  }
}
