/**
 * The wasm backend's FP8 kernels, emitted with `asm.ts` into the backend's kernel module (so
 * that its worker threads split them like every other op, `pool.ts`): online quantisation
 * (per-tensor, 1×128-tile, 128×1-column or 128×128-block scales), dequantisation and the GEMM
 * simulation with a limited, promoted accumulator of DeepSeek-V3 §3.3 (arXiv:2412.19437). The
 * cpu twin is `lib/backend/cpu/fp8.ts`, which runs the definitions of `lib/fp8`; these kernels
 * give the same codes, scales and products bit for bit (tests/backend/fp8_test.ts).
 *
 * Algorithm (threads split rows, or groups of rows):
 * - amax: `fp8RowAmax`, the largest magnitude of each row within each column block, four lanes
 *   at a time with `f32x4.pmax` (which skips NaN, as `blockAmax`): `[R, gridCols]` partials that
 *   the host folds over each block's rows; for one-column blocks `fp8ColumnAmax` takes each
 *   block's amax directly, four columns at a time. The host takes the scales from
 *   `scalesFromAmax` of `lib/fp8/scaling.ts` (one number per block).
 * - `fp8Quantize_<format>_<overflow>`: `code = encode(x / scale)` for four values at a time, the
 *   rounding of `encodeFp8` (`lib/fp8/format.ts`) without branches: sign and exponent from the
 *   float32 bits, the exponent clamped to the subnormal one, the significand brought to the FP8
 *   last place by an exact multiplication by a power of two and rounded by `f32x4.nearest`
 *   (ties to even), infinities and NaN selected from their own lanes; the tail of a row one value
 *   at a time with integer arithmetic (shift and round the shifted-out bits). The four scales
 *   come from one splat (blocks a multiple of 4 wide), one load (128×1 tiles) or four lookups.
 * - `fp8Dequantize`: per element `table[code] · scale` with the 256-entry `decodeTable` in the heap.
 * - The GEMM, the reference's float64 arithmetic two lanes per f64x2:
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
 * Limits: the limited accumulator's sums stay in float64's normal range (products of FP8 codes
 * are at least 2⁻³²); `K · 128` bytes of a panel < 2³¹.
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
  f32Abs: 0x8b,
  f64PromoteF32: 0xbb,
  i32ReinterpretF32: 0xbc,
} as const;
/** SIMD opcodes (after 0xfd) this module needs beyond `asm.ts`'s. */
const V = {
  v128Load64Splat: 0x0a,
  i64x2Splat: 0x12,
  f64x2Splat: 0x14,
  f32x4ReplaceLane: 0x20,
  i32x4Eq: 0x37,
  i32x4Ne: 0x38,
  i32x4GtS: 0x3b,
  v128Store32Lane: 0x5a,
  f32x4DemoteF64x2Zero: 0x5e,
  f64x2PromoteLowF32x4: 0x5f,
  i8x16NarrowI16x8U: 0x66,
  i16x8NarrowI32x4U: 0x86,
  i32x4ShrU: 0xad,
  i32x4Sub: 0xb1,
  i32x4MaxS: 0xb8,
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

/** The first `n` values of an `f32` storage, viewed in the heap. */
function f32View(host: Fp8Heap, s: Storage, n: number): Float32Array {
  return new Float32Array(host.heap.memory.buffer, ptrOf(s), n);
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

/**
 * Emit `code = encode(v)` for the four f32 lanes of the v128 local `v` into the v128 local
 * `code` (i32 lanes), without branches: the rounding of {@linkcode emitEncode}, with the FP8 last
 * place reached by an exact multiplication by `2^(manBits − eOut)` and rounded by
 * `f32x4.nearest` (to nearest, ties to even), so every lane equals `encodeFp8` bit for bit.
 */
function emitEncode4(f: Func, v: number, code: number, format: Fp8Format, saturate: boolean): void {
  const overflow = saturate ? format.maxCode : (format.infCode ?? format.nanCode);
  const sign = f.local(V128), expField = f.local(V128), eOut = f.local(V128);
  const mag = f.local(V128), finite = f.local(V128);
  f.get(v).i32(31).simd(V.i32x4ShrU).i32(7).simd(SIMD.i32x4Shl).set(sign);
  f.get(v).i32(23).simd(V.i32x4ShrU).constI32x4(0xff).simd(SIMD.v128And).set(expField);
  // eOut = max(e, 1 − bias) with e = expField − 127: the subnormal exponent at the bottom
  f.get(expField).constI32x4(127).simd(V.i32x4Sub).constI32x4(1 - format.bias).simd(V.i32x4MaxS)
    .set(eOut);
  // q = nearest(|v| · 2^(manBits − eOut)): the significand at the FP8 last place (exact product)
  f.get(v).simd(SIMD.f32x4Abs);
  f.constI32x4(format.manBits + 127).get(eOut).simd(V.i32x4Sub).i32(23).simd(SIMD.i32x4Shl);
  f.simd(SIMD.f32x4Mul).simd(SIMD.f32x4Nearest).simd(SIMD.i32x4TruncSatF32x4S);
  // mag = ((eOut + bias − 1) << manBits) + q: a carry of q moves to the next binade
  f.get(eOut).constI32x4(format.bias - 1).simd(SIMD.i32x4Add).i32(format.manBits)
    .simd(SIMD.i32x4Shl).simd(SIMD.i32x4Add).set(mag);
  // finite = sign | (mag > maxCode ? overflow : mag)
  f.get(sign).constI32x4(overflow).get(mag).get(mag).constI32x4(format.maxCode).simd(V.i32x4GtS)
    .simd(SIMD.v128Bitselect).simd(SIMD.v128Or).set(finite);
  // inf or NaN (expField 255): sign | (fraction ≠ 0 ? nanCode : overflow)
  f.get(sign).constI32x4(format.nanCode).constI32x4(overflow).get(v).constI32x4(0x7fffff)
    .simd(SIMD.v128And).constI32x4(0).simd(V.i32x4Ne).simd(SIMD.v128Bitselect)
    .simd(SIMD.v128Or);
  f.get(finite).get(expField).constI32x4(0xff).simd(V.i32x4Eq).simd(SIMD.v128Bitselect).set(code);
}

/** Emit `for (r = row0; r < row0 + rows; r++) body()` over i32 locals. */
function emitRows(f: Func, r: number, row0: number, rows: number, body: () => void): void {
  const end = f.local(I32);
  f.get(row0).get(rows).emit(OP.i32Add).set(end);
  loop(f, r, () => f.get(row0), end, body);
}

/** Emit `m = max(m, |x|)` for f32 locals, NaN skipped (it compares false), as `blockAmax`. */
function emitAmax(f: Func, m: number, address: () => void): void {
  const a = f.local(F32);
  address();
  f.mem(OP.f32Load, 2).emit(W.f32Abs).set(a);
  f.get(a).get(m).emit(W.f32Gt).if().get(a).set(m).end();
}

/** Emit `m4 = pmax(m4, |x4|)` for v128 locals: `pmax(m, a) = m < a ? a : m` skips NaN lanes. */
function emitAmax4(f: Func, m4: number, address: () => void): void {
  f.get(m4);
  address();
  f.simdMem(SIMD.v128Load, 2).simd(SIMD.f32x4Abs).simd(SIMD.f32x4Pmax).set(m4);
}

/**
 * Add the FP8 codec kernels to the backend's kernel module, each a split job over rows (or row
 * groups) whose first one it is given (`row0`), so that worker threads share them:
 * - `fp8RowAmax(x, out, row0, rows, cols, bc, gridCols)`: `out[r, g] = max |x[r, block g]|`;
 * - `fp8ColumnAmax(x, out, gr0, groups, rows, cols, br)`: `out[gr, c] = max |x[rows of group gr, c]|`
 *   (one-column blocks, 128×1);
 * - `fp8Quantize_<format>_<saturate|overflow>(x, codes, scales, row0, rows, cols, br, bc,
 *   gridCols)`: `code = encode(x / scale)`, four values per step;
 * - `fp8Dequantize(codes, scales, out, row0, rows, cols, br, bc, gridCols, table)`:
 *   `table[code] · scale`.
 * Amax skips NaN, as `blockAmax`; the maxima are exact, so their order does not matter.
 *
 * @param mb The kernel module under construction.
 */
function addFp8CodecKernels(mb: ModuleBuilder): void {
  mb.func("fp8RowAmax", [I32, I32, I32, I32, I32, I32, I32], [], (f) => {
    const [x, out, row0, rows, cols, bc, gridCols] = [0, 1, 2, 3, 4, 5, 6];
    const r = f.local(I32), g = f.local(I32), c = f.local(I32), c1 = f.local(I32);
    const xRow = f.local(I32), m = f.local(F32), m4 = f.local(V128);
    emitRows(f, r, row0, rows, () => {
      f.get(x).get(r).get(cols).emit(OP.i32Mul).i32(4).emit(OP.i32Mul).emit(OP.i32Add).set(xRow);
      loop(f, g, () => f.i32(0), gridCols, () => {
        // c = g·bc, c1 = min(c + bc, cols)
        f.get(g).get(bc).emit(OP.i32Mul).set(c);
        f.get(c).get(bc).emit(OP.i32Add).set(c1);
        f.get(c1).get(cols).get(c1).get(cols).emit(OP.i32LtU).emit(OP.select).set(c1);
        f.f32x4(0).set(m4);
        f.forStep(c, c1, 4, () => {
          emitAmax4(f, m4, () => f.get(xRow).get(c).i32(4).emit(OP.i32Mul).emit(OP.i32Add));
        });
        // m = the largest lane (lanes are never NaN), then the tail
        f.get(m4).simd(SIMD.f32x4ExtractLane, 0).get(m4).simd(SIMD.f32x4ExtractLane, 1)
          .emit(OP.f32Max).get(m4).simd(SIMD.f32x4ExtractLane, 2).emit(OP.f32Max).get(m4)
          .simd(SIMD.f32x4ExtractLane, 3).emit(OP.f32Max).set(m);
        f.forStep(c, c1, 1, () => {
          emitAmax(f, m, () => f.get(xRow).get(c).i32(4).emit(OP.i32Mul).emit(OP.i32Add));
        });
        f.get(out).get(r).get(gridCols).emit(OP.i32Mul).get(g).emit(OP.i32Add).i32(4)
          .emit(OP.i32Mul).emit(OP.i32Add).get(m).mem(OP.f32Store, 2);
      });
    });
  });

  mb.func("fp8ColumnAmax", [I32, I32, I32, I32, I32, I32, I32], [], (f) => {
    const [x, out, gr0, groups, rows, cols, br] = [0, 1, 2, 3, 4, 5, 6];
    const gr = f.local(I32), r = f.local(I32), r0 = f.local(I32), r1 = f.local(I32);
    const c = f.local(I32), m = f.local(F32), m4 = f.local(V128);
    const at = () =>
      // x + (r·cols + c)·4
      f.get(x).get(r).get(cols).emit(OP.i32Mul).get(c).emit(OP.i32Add).i32(4).emit(OP.i32Mul)
        .emit(OP.i32Add);
    emitRows(f, gr, gr0, groups, () => {
      f.get(gr).get(br).emit(OP.i32Mul).tee(r0).get(br).emit(OP.i32Add).set(r1);
      f.get(r1).get(rows).get(r1).get(rows).emit(OP.i32LtU).emit(OP.select).set(r1);
      f.i32(0).set(c);
      f.forStep(c, cols, 4, () => {
        f.f32x4(0).set(m4);
        loop(f, r, () => f.get(r0), r1, () => emitAmax4(f, m4, at));
        f.get(out).get(gr).get(cols).emit(OP.i32Mul).get(c).emit(OP.i32Add).i32(4)
          .emit(OP.i32Mul).emit(OP.i32Add).get(m4).simdMem(SIMD.v128Store, 2);
      });
      f.forStep(c, cols, 1, () => {
        f.f32(0).set(m);
        loop(f, r, () => f.get(r0), r1, () => emitAmax(f, m, at));
        f.get(out).get(gr).get(cols).emit(OP.i32Mul).get(c).emit(OP.i32Add).i32(4)
          .emit(OP.i32Mul).emit(OP.i32Add).get(m).mem(OP.f32Store, 2);
      });
    });
  });

  for (const format of [FP8_FORMATS.e4m3, FP8_FORMATS.e5m2]) {
    for (const saturate of [true, false]) {
      const name = `fp8Quantize_${format.name}_${saturate ? "saturate" : "overflow"}`;
      mb.func(name, [I32, I32, I32, I32, I32, I32, I32, I32, I32], [], (f) => {
        const [x, codes, scales, row0, rows, cols, br, bc, gridCols] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
        const r = f.local(I32), c = f.local(I32), sRow = f.local(I32), xRow = f.local(I32);
        const cRow = f.local(I32), mode = f.local(I32);
        const s4 = f.local(V128), v4 = f.local(V128), code4 = f.local(V128), t16 = f.local(V128);
        const s = f.local(F32), v = f.local(F32), code = f.local(I32);
        const scaleOf = (col: () => void) => { // scales[(r / br)·gridCols + col / bc]
          f.get(sRow);
          col();
          return f.get(bc).emit(W.i32DivU).i32(4).emit(OP.i32Mul).emit(OP.i32Add)
            .mem(OP.f32Load, 2);
        };
        // mode 1: a scale per column (128×1 tiles); 0: four columns share one (blocks a multiple
        // of 4 wide, or one block per row); 2: look each one up
        f.i32(0).i32(2).get(bc).i32(3).emit(OP.i32And).emit(OP.i32Eqz).get(bc).get(cols)
          .emit(OP.i32GeU).emit(W.i32Or).emit(OP.select).set(mode);
        f.i32(1).get(mode).get(bc).i32(1).emit(OP.i32Eq).emit(OP.select).set(mode);
        emitRows(f, r, row0, rows, () => {
          f.get(scales).get(r).get(br).emit(W.i32DivU).get(gridCols).emit(OP.i32Mul).i32(4)
            .emit(OP.i32Mul).emit(OP.i32Add).set(sRow);
          f.get(x).get(r).get(cols).emit(OP.i32Mul).i32(4).emit(OP.i32Mul).emit(OP.i32Add)
            .set(xRow);
          f.get(codes).get(r).get(cols).emit(OP.i32Mul).emit(OP.i32Add).set(cRow);
          f.i32(0).set(c);
          f.forStep(c, cols, 4, () => {
            f.get(mode).i32(1).emit(OP.i32Eq).if();
            f.get(sRow).get(c).i32(4).emit(OP.i32Mul).emit(OP.i32Add).simdMem(SIMD.v128Load, 2)
              .set(s4);
            f.else();
            scaleOf(() => f.get(c)).simd(SIMD.f32x4Splat).set(s4);
            f.get(mode).i32(2).emit(OP.i32Eq).if();
            for (let l = 1; l < 4; l++) {
              f.get(s4);
              scaleOf(() => f.get(c).i32(l).emit(OP.i32Add)).simd(V.f32x4ReplaceLane, l).set(s4);
            }
            f.end();
            f.end();
            f.get(xRow).get(c).i32(4).emit(OP.i32Mul).emit(OP.i32Add).simdMem(SIMD.v128Load, 2)
              .get(s4).simd(SIMD.f32x4Div).set(v4);
            emitEncode4(f, v4, code4, format, saturate);
            // four codes (≤ 255) narrowed to bytes, stored at once
            f.get(cRow).get(c).emit(OP.i32Add);
            f.get(code4).get(code4).simd(V.i16x8NarrowI32x4U).tee(t16).get(t16)
              .simd(V.i8x16NarrowI16x8U);
            f.simdMem(V.v128Store32Lane, 0).emit(0);
          });
          f.forStep(c, cols, 1, () => {
            f.get(xRow).get(c).i32(4).emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2);
            scaleOf(() => f.get(c)).set(s);
            f.get(s).emit(OP.f32Div).set(v);
            emitEncode(f, v, code, format, saturate);
            f.get(cRow).get(c).emit(OP.i32Add).get(code).mem(W.i32Store8, 0);
          });
        });
      });
    }
  }

  mb.func("fp8Dequantize", [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32], [], (f) => {
    const [codes, scales, out, row0, rows, cols, br, bc, gridCols, table] = [
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
    ];
    const r = f.local(I32), g = f.local(I32), c = f.local(I32), c1 = f.local(I32);
    const s = f.local(F32), idx = f.local(I32);
    emitRows(f, r, row0, rows, () => {
      loop(f, g, () => f.i32(0), gridCols, () => {
        f.get(scales).get(r).get(br).emit(W.i32DivU).get(gridCols).emit(OP.i32Mul).get(g)
          .emit(OP.i32Add).i32(4).emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2).set(s);
        f.get(g).get(bc).emit(OP.i32Mul).set(c);
        f.get(c).get(bc).emit(OP.i32Add).set(c1);
        f.get(c1).get(cols).get(c1).get(cols).emit(OP.i32LtU).emit(OP.select).set(c1);
        f.forStep(c, c1, 1, () => {
          f.get(r).get(cols).emit(OP.i32Mul).get(c).emit(OP.i32Add).set(idx);
          f.get(out).get(idx).i32(4).emit(OP.i32Mul).emit(OP.i32Add);
          f.get(table).get(codes).get(idx).emit(OP.i32Add).mem(W.i32Load8U, 0).i32(4)
            .emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2).get(s).emit(OP.f32Mul);
          f.mem(OP.f32Store, 2);
        });
      });
    });
  });
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
 * Add the FP8 kernels to the backend's kernel module, so that the worker threads have them too:
 * the codecs (amax, quantise, dequantise; see `addFp8CodecKernels`), `fp8Panels(codes, table,
 * out, n, k, rows)`, which decodes `rows` rows of B into the panels, and `fp8Gemm_truncate` /
 * `fp8Gemm_nearest(params, row0, rows)`, which compute rows `row0 .. row0 + rows` of C (see the
 * module doc). Each is a split job (`pool.ts`).
 *
 * @param mb The kernel module under construction.
 *
 * @example The kernels are in the module
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { ModuleBuilder } from "./asm.ts";
 * import { addFp8Kernels } from "./fp8.ts";
 * const mb = new ModuleBuilder({ min: 1, max: 1, shared: true });
 * addFp8Kernels(mb);
 * const names = WebAssembly.Module.exports(new WebAssembly.Module(mb.build())).map((e) => e.name);
 * ok(["fp8Quantize_e4m3_saturate", "fp8Panels", "fp8Gemm_truncate"].every((n) => names.includes(n)));
 * ```
 */
export function addFp8Kernels(mb: ModuleBuilder): void {
  addFp8CodecKernels(mb);
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
              f.get(v).simd(V.f32x4DemoteF64x2Zero).simd(SIMD.f32x4ExtractLane, half);
              f.mem(OP.f32Store, 2, 4 * col);
              f.end();
            }
          });
        });
      });
    });
  }
}

/**
 * The FP8 ops of a wasm backend on its heap and threads (kernels: {@linkcode addFp8Kernels}),
 * with the decode tables of both formats in the heap (f32 for dequantisation, f64 for the GEMM).
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
  #tables: Record<string, Storage>;
  #tables64: Record<string, Storage>;

  constructor(host: Fp8Heap) {
    this.#host = host;
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
    this.#host.splitFp8({
      fn: `fp8Quantize_${spec.format}_${spec.saturate ? "saturate" : "overflow"}`,
      count: rows,
      countArg: 4,
      align: 1,
      args: [ptrOf(x), ptrOf(codes), ptrOf(scales), 0, rows, cols, br, bc, gridCols],
      steps: [0, 0, 0, 1, 0, 0, 0, 0, 0],
    }, rows * cols);
    return { codes, scales };
  }

  /**
   * Scales from each block's amax (`scalesFromAmax` here): one-column blocks directly in wasm,
   * wider ones as row partials in wasm folded over the block's rows here.
   */
  #scales(x: Storage, spec: Fp8QuantizeSpec): Storage {
    const { rows, cols } = spec;
    const { br, bc, gridRows, gridCols } = fp8Grid(spec);
    const host = this.#host;
    let amax: Float32Array;
    if (bc === 1) {
      const out = host.allocate("f32", gridRows * cols);
      host.splitFp8({
        fn: "fp8ColumnAmax",
        count: gridRows,
        countArg: 3,
        align: 1,
        args: [ptrOf(x), ptrOf(out), 0, gridRows, rows, cols, br],
        steps: [0, 0, 1, 0, 0, 0, 0],
      }, rows * cols);
      amax = Float32Array.from(f32View(host, out, gridRows * cols));
      host.release(out);
    } else {
      const partial = host.allocate("f32", rows * gridCols);
      host.splitFp8({
        fn: "fp8RowAmax",
        count: rows,
        countArg: 3,
        align: 1,
        args: [ptrOf(x), ptrOf(partial), 0, rows, cols, bc, gridCols],
        steps: [0, 0, 1, 0, 0, 0, 0],
      }, rows * cols);
      const rowAmax = f32View(host, partial, rows * gridCols);
      amax = new Float32Array(gridRows * gridCols);
      for (let r = 0; r < rows; r++) {
        const g = Math.floor(r / br) * gridCols;
        for (let c = 0; c < gridCols; c++) {
          amax[g + c] = Math.max(amax[g + c], rowAmax[r * gridCols + c]);
        }
      }
      host.release(partial);
    }
    return host.upload(
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
    const { rows, cols } = spec;
    const { br, bc, gridCols } = fp8Grid(spec);
    const out = this.#host.allocate("f32", rows * cols);
    const table = ptrOf(this.#tables[spec.format]);
    this.#host.splitFp8({
      fn: "fp8Dequantize",
      count: rows,
      countArg: 4,
      align: 1,
      args: [ptrOf(codes), ptrOf(scales), ptrOf(out), 0, rows, cols, br, bc, gridCols, table],
      steps: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    }, rows * cols);
    return out;
  }

  /** The simulated FP8 GEMM, see `Backend.fp8Matmul` (kernels: {@linkcode addFp8Kernels}). */
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
