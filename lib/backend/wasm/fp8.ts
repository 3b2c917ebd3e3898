/**
 * The wasm backend's FP8 kernels, emitted with `asm.ts` into a module of their own that shares
 * the backend's heap: online quantisation (per-tensor, 1×128-tile or 128×128-block scales),
 * dequantisation and the GEMM simulation with a limited, promoted accumulator of DeepSeek-V3
 * §3.3 (arXiv:2412.19437). The cpu twin is `lib/backend/cpu/fp8.ts`, which runs the definitions
 * of `lib/fp8`; these kernels give the same codes, scales and products bit for bit
 * (tests/backend/fp8_test.ts).
 *
 * Algorithm (scalar wasm on the calling thread; the training step's FP8 work is small beside
 * its matmuls):
 * - `rowAmax`: the largest magnitude of each row within each column block (NaN skipped, as
 *   `blockAmax`): `[R, gridCols]` partials; the host folds them over each block's rows and takes
 *   the scales from `scalesFromAmax` of `lib/fp8/scaling.ts` (one number per block).
 * - `quantize_<format>_<overflow>`: per element `code = encode(x / scale)` with integer
 *   arithmetic on the float32 bits, the rounding of `encodeFp8` (`lib/fp8/format.ts`): split
 *   sign, exponent and significand, clamp the exponent to the subnormal one, shift the 24-bit
 *   significand to the FP8 last place, round the shifted-out bits to nearest, ties to even.
 * - `dequantize`: per element `table[code] · scale` with the 256-entry `decodeTable` in the heap.
 * - `gemm`: per output, the reference's float64 arithmetic: exact products of decoded codes, the
 *   limited accumulator rounded after every add by masking the float64 bits (toward zero, or to
 *   nearest-even by adding `half − 1 + lsb` first), promotion as `fp32(acc + fp32(s · fp32(sa · sb)))`.
 * Limits: one thread; the limited accumulator's sums stay in float64's normal range (products
 * of FP8 codes are at least 2⁻⁶⁴).
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
import { F32, type Func, I32, ModuleBuilder, OP, sleb, type ValType } from "./asm.ts";
import type { WasmHeap } from "./heap.ts";

/** Value types and opcodes this module needs beyond `asm.ts`'s (WebAssembly Core 2.0 §5.4). */
const F64 = 0x7c as ValType, I64 = 0x7e as ValType;
const W = {
  i32Load8U: 0x2d,
  i32Store8: 0x3a,
  f64Load: 0x2b,
  i32GeS: 0x4e,
  f32Gt: 0x5e,
  f64Eq: 0x61,
  i32Or: 0x72,
  i32ShrU: 0x76,
  i32DivU: 0x6e,
  i64Eq: 0x51,
  i64Add: 0x7c,
  i64And: 0x83,
  i64Xor: 0x85,
  i64Shl: 0x86,
  i64ShrU: 0x88,
  f32Abs: 0x8b,
  f64Add: 0xa0,
  f64Mul: 0xa2,
  i64ExtendI32U: 0xad,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
  i32ReinterpretF32: 0xbc,
  i64ReinterpretF64: 0xbd,
  f64ReinterpretI64: 0xbf,
} as const;

/** What the kernels need from the backend: its heap and its storages (`ptr` into the heap). */
export interface Fp8Heap {
  readonly heap: WasmHeap;
  allocate(dtype: DType, size: number): Storage;
  upload(dtype: DType, data: ArrayLike<number>): Storage;
  release(storage: Storage): void;
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

  // gemm(aCodes, aScales, bCodes, bScales, out, m, n, k, step, aBr, aBc, aGridCols, bBr, bBc,
  //      bGridCols, tableA, tableB, dropBits, truncate)
  mb.func("gemm", Array.from({ length: 19 }, () => I32), [], (f) => {
    const [aCodes, aScales, bCodes, bScales, out, m, n, k, step] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const [aBr, aBc, aGridCols, bBr, bBc, bGridCols, tableA, tableB, drop, truncate] = [
      9,
      10,
      11,
      12,
      13,
      14,
      15,
      16,
      17,
      18,
    ];
    const i = f.local(I32), j = f.local(I32), k0 = f.local(I32), k1 = f.local(I32);
    const kk = f.local(I32), aRow = f.local(I32), bCol = f.local(I32);
    const acc = f.local(F32), s = f.local(F64), x = f.local(F64);
    const u = f.local(I64), mask = f.local(I64), notMask = f.local(I64), halfM1 = f.local(I64);
    const kBits = f.local(I64), addEven = f.local(I64);
    // mask = 2^drop − 1 (the float64 bits below the kept precision), half − 1 = 2^(drop−1) − 1
    f.get(drop).emit(W.i64ExtendI32U).set(kBits);
    i64(f, 1).get(kBits).emit(W.i64Shl);
    i64(f, 1);
    f.emit(0x7d /* i64.sub */).set(mask);
    f.get(mask);
    i64(f, -1);
    f.emit(W.i64Xor).set(notMask);
    f.get(mask).i32(1).emit(W.i64ExtendI32U).emit(W.i64ShrU).set(halfM1);
    loop(f, i, () => f.i32(0), m, () => {
      f.get(i).get(aBr).emit(W.i32DivU).get(aGridCols).emit(OP.i32Mul).set(aRow);
      loop(f, j, () => f.i32(0), n, () => {
        f.get(j).get(bBc).emit(W.i32DivU).set(bCol);
        f.f32(0).set(acc);
        f.i32(0).set(k0);
        f.block().loop();
        f.get(k0).get(k).emit(OP.i32GeU).brIf(1);
        f.get(k0).get(step).emit(OP.i32Add).set(k1);
        f.get(k1).get(k).get(k1).get(k).emit(OP.i32LtU).emit(OP.select).set(k1);
        f.emit(0x44, 0, 0, 0, 0, 0, 0, 0, 0).set(s); // f64.const 0
        loop(f, kk, () => f.get(k0), k1, () => {
          // x = s + a·b: the exact product of the decoded codes, added in float64
          f.get(s);
          f.get(tableA).get(aCodes).get(i).get(k).emit(OP.i32Mul).get(kk).emit(OP.i32Add)
            .emit(OP.i32Add).mem(W.i32Load8U, 0).i32(4).emit(OP.i32Mul).emit(OP.i32Add)
            .mem(OP.f32Load, 2).emit(W.f64PromoteF32);
          f.get(tableB).get(bCodes).get(kk).get(n).emit(OP.i32Mul).get(j).emit(OP.i32Add)
            .emit(OP.i32Add).mem(W.i32Load8U, 0).i32(4).emit(OP.i32Mul).emit(OP.i32Add)
            .mem(OP.f32Load, 2).emit(W.f64PromoteF32);
          f.emit(W.f64Mul).emit(W.f64Add).set(x);
          // s = x rounded to the kept bits; zeros, infinities and NaN unchanged
          f.get(x).emit(W.i64ReinterpretF64).set(u);
          f.get(x).set(s);
          f.get(u).i32(52).emit(W.i64ExtendI32U).emit(W.i64ShrU);
          i64(f, 0x7ff);
          f.emit(W.i64And);
          i64(f, 0x7ff);
          f.emit(0x52 /* i64.ne */).get(x).emit(0x44, 0, 0, 0, 0, 0, 0, 0, 0).emit(
            0x62, /* f64.ne */
          )
            .emit(OP.i32And).if();
          // addEven = truncate ? 0 : half − 1 + ((u >> drop) & 1)
          i64(f, 0).get(halfM1).get(u).get(kBits).emit(W.i64ShrU);
          i64(f, 1);
          f.emit(W.i64And).emit(W.i64Add).get(truncate).emit(OP.select).set(addEven);
          f.get(u).get(addEven).emit(W.i64Add).get(notMask).emit(W.i64And).emit(W.f64ReinterpretI64)
            .set(s);
          f.end();
        });
        // acc = fp32(acc + fp32(s · fp32(sa · sb))): promotion
        f.get(acc).get(s);
        f.get(aScales).get(aRow).get(k0).get(aBc).emit(W.i32DivU).emit(OP.i32Add).i32(4)
          .emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2);
        f.get(bScales).get(k0).get(bBr).emit(W.i32DivU).get(bGridCols).emit(OP.i32Mul).get(bCol)
          .emit(OP.i32Add).i32(4).emit(OP.i32Mul).emit(OP.i32Add).mem(OP.f32Load, 2);
        f.emit(OP.f32Mul).emit(W.f64PromoteF32).emit(W.f64Mul).emit(W.f32DemoteF64)
          .emit(OP.f32Add).set(acc);
        f.get(k0).get(step).emit(OP.i32Add).set(k0);
        f.br(0).end().end();
        f.get(out).get(i).get(n).emit(OP.i32Mul).get(j).emit(OP.i32Add).i32(4).emit(OP.i32Mul)
          .emit(OP.i32Add).get(acc).mem(OP.f32Store, 2);
      });
    });
  });
  return mb.build();
}

interface Fp8Exports {
  rowAmax(x: number, out: number, rows: number, cols: number, bc: number, gridCols: number): void;
  dequantize(...args: number[]): void;
  gemm(...args: number[]): void;
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

  constructor(host: Fp8Heap) {
    this.#host = host;
    const module = new WebAssembly.Module(buildFp8Module(host.heap.maxPages));
    const instance = new WebAssembly.Instance(module, { env: { memory: host.heap.memory } });
    this.#ex = instance.exports as unknown as Fp8Exports;
    this.#tables = {
      e4m3: host.upload("f32", decodeTable(FP8_FORMATS.e4m3)),
      e5m2: host.upload("f32", decodeTable(FP8_FORMATS.e5m2)),
    };
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

  /** The simulated FP8 GEMM, see `Backend.fp8Matmul`. */
  matmul(a: Fp8Storages, b: Fp8Storages, spec: Fp8MatmulSpec): Storage {
    checkFp8MatmulSpec(spec);
    const ga = fp8Grid(spec.a), gb = fp8Grid(spec.b);
    const out = this.#host.allocate("f32", spec.m * spec.n);
    const drop = 52 - spec.accumulatorBits; // float64 mantissa bits below the kept ones
    const truncate = spec.accumulatorRounding === "truncate" || drop === 0 ? 1 : 0;
    this.#ex.gemm(
      ptrOf(a.codes),
      ptrOf(a.scales),
      ptrOf(b.codes),
      ptrOf(b.scales),
      ptrOf(out),
      spec.m,
      spec.n,
      spec.k,
      Math.min(spec.promotionInterval, spec.k),
      ga.br,
      ga.bc,
      ga.gridCols,
      gb.br,
      gb.bc,
      gb.gridCols,
      ptrOf(this.#tables[spec.a.format]),
      ptrOf(this.#tables[spec.b.format]),
      drop,
      truncate,
    );
    return out;
  }
}
