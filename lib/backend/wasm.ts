/**
 * The wasm backend: the fast path on machines without a GPU.
 *
 * Storages live in one shared `WebAssembly.Memory` (`wasm/heap.ts`), and every hot op of a
 * training step runs there as a 128-bit SIMD kernel emitted from TypeScript (`wasm/asm.ts`: no
 * toolchain, no committed binary, no build step — the source is the build, which is why we emit
 * bytes rather than compile AssemblyScript or WAT): the packed, register-blocked SGEMM
 * (`wasm/kernels.ts`, `wasm/gemm.ts`), elementwise maps with broadcasting over 3-D blocks
 * (`wasm/elementwise.ts`), reductions, softmax / log-softmax and fused cross-entropy
 * (`wasm/reduce.ts`), fill, strided copy and assign, embedding select/add. Ops large enough are
 * split among worker threads sharing the memory (`wasm/pool.ts`). Data never leaves the heap
 * between ops: kernels read and write storages in place, and only per-row scalars (log of a
 * softmax sum, cross-entropy targets) are touched on the host. Ops without a kernel (`gather`,
 * `scatterAdd`, `topk`, `where`, `cast`, `pow`, gelu/tanh/sin/…, i32 and u8 math) reuse the cpu
 * reference kernels over typed-array views of the same memory.
 * The FP8 ops (quantise with SIMD encoding, dequantise, the simulated FP8 GEMM as f64x2 kernels)
 * are `wasm/fp8.ts`'s kernels in the same module, split among the threads and equal to the cpu
 * reference bit for bit.
 * The optional fused ops of `Backend` have no SIMD kernels here yet: RMSNorm and RoPE run the
 * inherited cpu reference kernels (faster than the composed SIMD ops), the SwiGLU gate runs as
 * SIMD passes, and attention and AdamW take the composed path.
 *
 * @module
 */

import type {
  BinaryOp,
  CrossEntropyResult,
  CrossEntropySpec,
  DType,
  MatmulSpec,
  ReduceOp,
  Storage,
  SwigluGrads,
  UnaryOp,
  View,
} from "./backend.ts";
import { CpuBackend, CpuStorage } from "./cpu.ts";
import { coalesce, forEachRun, sizeOf } from "./cpu/_strided.ts";
import { SIMD_BINARY, SIMD_UNARY } from "./wasm/elementwise.ts";
import { type GemmJob, scratchBytes } from "./wasm/gemm.ts";
import { WasmHeap } from "./wasm/heap.ts";
import { buildKernelModule, hasRelaxedSimd, type KernelExports } from "./wasm/kernels.ts";
import { CONTROL_BYTES, type SplitJob, ThreadPool } from "./wasm/pool.ts";
import { SIMD_REDUCE } from "./wasm/reduce.ts";
import type { Fp8BlockSpec, Fp8MatmulSpec, Fp8QuantizeSpec, Fp8Storages } from "./backend.ts";
import { WasmFp8Kernels } from "./wasm/fp8.ts";

/** A storage in the shared heap: a typed-array view plus its address. */
export class WasmStorage extends CpuStorage {
  readonly ptr: number;
  readonly bytes: number;

  constructor(dtype: DType, ptr: number, bytes: number, memory: WebAssembly.Memory, size: number) {
    const buffer = memory.buffer;
    const data = dtype === "f32"
      ? new Float32Array(buffer, ptr, size)
      : dtype === "i32"
      ? new Int32Array(buffer, ptr, size)
      : new Uint8Array(buffer, ptr, size);
    super(dtype, data);
    this.ptr = ptr;
    this.bytes = bytes;
  }
}

/** Options for {@linkcode createWasmBackend}. */
export interface WasmBackendOptions {
  /** Threads including the main one. @default {navigator.hardwareConcurrency} */
  threads?: number;
  /** Use relaxed-SIMD fused multiply-add when the runtime has it. @default {true} */
  relaxedSimd?: boolean;
  /** Maximum heap size in MiB. @default {4096} */
  maxMemoryMiB?: number;
  /**
   * Elementwise, reduction and row ops with fewer elements than this run on the calling thread
   * only (waking the workers costs more than it saves). Tests set it to 1 to exercise the split.
   * @default {32768}
   */
  parallelMinElements?: number;
}

/** Matmuls below this many multiply-adds run on the main thread only. */
const PARALLEL_MIN_FLOPS = 64 * 64 * 64;

const UNARY_KERNELS: ReadonlySet<string> = new Set(SIMD_UNARY);
const BINARY_KERNELS: ReadonlySet<string> = new Set(SIMD_BINARY);
const REDUCE_KERNELS: ReadonlySet<string> = new Set(SIMD_REDUCE);

/** A 3-D walk of coalesced views: `[mats, rows, cols]` blocks with per-view steps (elements). */
interface Blocks {
  /** Offsets (elements) of each block's first element, per view, and its output position. */
  starts: { offsets: number[]; p: number }[];
  mats: number;
  rows: number;
  cols: number;
  matSteps: number[];
  rowSteps: number[];
  colSteps: number[];
}

/** Split `shape` read through `views` into 3-D blocks after coalescing. */
function blocks(shape: readonly number[], views: readonly View[]): Blocks {
  const c = coalesce(shape, views.map((v) => v.strides));
  const rank = c.shape.length;
  const dim = (back: number) => (rank >= back ? c.shape[rank - back] : 1);
  const step = (k: number, back: number) => (rank >= back ? c.strides[k][rank - back] : 0);
  const outer = c.shape.slice(0, Math.max(rank - 3, 0));
  const per = dim(1) * dim(2) * dim(3);
  const starts: Blocks["starts"] = [];
  const index = new Array(outer.length).fill(0);
  for (let n = 0; n < sizeOf(outer); n++) {
    const offsets = views.map((v, k) => {
      let o = v.offset;
      for (let d = 0; d < outer.length; d++) o += index[d] * c.strides[k][d];
      return o;
    });
    starts.push({ offsets, p: n * per });
    for (let d = outer.length - 1; d >= 0; d--) {
      if (++index[d] < outer[d]) break;
      index[d] = 0;
    }
  }
  return {
    starts,
    mats: dim(3),
    rows: dim(2),
    cols: dim(1),
    matSteps: views.map((_, k) => step(k, 3)),
    rowSteps: views.map((_, k) => step(k, 2)),
    colSteps: views.map((_, k) => step(k, 1)),
  };
}

/** The wasm backend; create it with {@linkcode createWasmBackend}. */
export class WasmBackend extends CpuBackend {
  readonly heap: WasmHeap;
  readonly threads: number;
  readonly relaxedSimd: boolean;
  #pool: ThreadPool;
  #ex: KernelExports;
  #parallelMin: number;
  #fp8: WasmFp8Kernels | null = null;

  constructor(
    heap: WasmHeap,
    pool: ThreadPool,
    ex: KernelExports,
    relaxed: boolean,
    parallelMinElements: number,
  ) {
    super({
      name: "wasm",
      description: `wasm (SIMD${relaxed ? " + relaxed FMA" : ""}, ${pool.threads} threads)`,
    });
    this.heap = heap;
    this.#pool = pool;
    this.#ex = ex;
    this.threads = pool.threads;
    this.relaxedSimd = relaxed;
    this.#parallelMin = parallelMinElements;
    // The inherited TypeScript fused attention (cpu/attention.ts) is ~6× slower here than the
    // composed path on the SIMD matmuls (B4 H4 T128 d64 fwd+bwd: ~60 vs ~10 ms), so this
    // backend reports none until it has its own kernel (a SIMD attention kernel is not written).
    Object.assign(this, { attention: undefined, attentionBackward: undefined });
  }

  /** A storage whose contents are undefined (every kernel below overwrites all of it). */
  #alloc(dtype: DType, size: number): WasmStorage {
    const bytes = Math.max(size, 1) * (dtype === "u8" ? 1 : 4);
    return new WasmStorage(dtype, this.heap.alloc(bytes), bytes, this.heap.memory, size);
  }

  #ptr(s: Storage): number {
    if (!(s instanceof WasmStorage)) {
      throw new Error("Cannot use a storage from another backend on the wasm backend");
    }
    void s.data; // throws if released
    return s.ptr;
  }

  #threadsFor(elements: number): number {
    return elements >= this.#parallelMin ? this.threads : 1;
  }

  #split(job: SplitJob, elements: number): void {
    this.#pool.split(job, this.#threadsFor(elements));
  }

  /**
   * Run a 3-D kernel on block `b`: threads split the `mats` axis when it has a share for each,
   * else the rows, or the elements of a single row. `at` gives the argument positions of the
   * three counts; `steps` the bytes each argument moves per block, row and element.
   */
  #split3(
    fn: string,
    args: number[],
    b: Blocks,
    at: { mats: number; rows: number; cols: number },
    steps: { mats: number[]; rows: number[]; cols: number[] },
  ): void {
    const n = b.mats * b.rows * b.cols;
    // A single long run (a contiguous tensor, or one plus a scalar) splits along its elements.
    const axis = b.mats >= this.threads && b.mats > 1
      ? "mats"
      : b.rows === 1 && b.mats === 1 && b.cols >= 4 * this.threads
      ? "cols"
      : "rows";
    const count = axis === "mats" ? b.mats : axis === "rows" ? b.rows : b.cols;
    this.#split({
      fn,
      count,
      countArg: at[axis],
      align: axis === "cols" ? 4 : 1,
      args,
      steps: steps[axis],
    }, n);
  }

  /** A zero-filled storage (the cpu kernels the wasm backend inherits rely on zeros). */
  override allocate(dtype: DType, size: number): CpuStorage {
    const s = this.#alloc(dtype, size);
    this.#ex.zero(s.ptr, s.bytes);
    return s;
  }

  override release(storage: Storage): void {
    const s = storage as WasmStorage;
    super.release(s);
    this.heap.free(s.ptr, s.bytes);
  }

  override upload(dtype: DType, data: ArrayLike<number>): Storage {
    const s = this.#alloc(dtype, data.length);
    s.data.set(data);
    return s;
  }

  override fill(dtype: DType, size: number, value: number): Storage {
    const s = this.#alloc(dtype, size);
    if (dtype === "u8") {
      s.data.fill(value);
      return s;
    }
    const bits = dtype === "f32" ? new Int32Array(new Float32Array([value]).buffer)[0] : value | 0;
    this.#split({
      fn: "fill32",
      count: size,
      countArg: 1,
      align: 4,
      args: [s.ptr, size, bits],
      steps: [4, 0, 0],
    }, size);
    return s;
  }

  override copy(x: View): Storage {
    if (x.storage.dtype === "u8") return super.copy(x);
    const out = this.#alloc(x.storage.dtype, sizeOf(x.shape));
    this.#copyInto(x, out.ptr);
    return out;
  }

  /** Write the 32-bit view `x` row-major into the block at `dst`. */
  #copyInto(x: View, dst: number): void {
    const px = this.#ptr(x.storage);
    const b = blocks(x.shape, [x]);
    const [sm, sr, sc] = [b.matSteps[0] * 4, b.rowSteps[0] * 4, b.colSteps[0] * 4];
    const dm = b.rows * b.cols * 4;
    for (const { offsets, p } of b.starts) {
      this.#split3(
        "copy3d",
        [dst + p * 4, px + offsets[0] * 4, b.cols, b.rows, sr, sc, b.mats, sm, dm],
        b,
        { mats: 6, rows: 3, cols: 2 },
        { mats: [dm, sm], rows: [b.cols * 4, sr], cols: [4, sc] },
      );
    }
  }

  /** `x` as a contiguous view: itself when its last stride is 0 or 1, else a fresh copy. */
  #unitInner(x: View, shape: readonly number[]): { view: View; temp: WasmStorage | null } {
    const c = coalesce(shape, [x.strides]);
    const step = c.strides[0][c.shape.length - 1];
    if (step === 0 || step === 1) return { view: x, temp: null };
    const temp = this.#alloc("f32", sizeOf(shape));
    this.#copyInto({ ...x, shape }, temp.ptr);
    const strides = shape.map(() => 0);
    for (let d = shape.length - 1, acc = 1; d >= 0; d--) {
      strides[d] = acc;
      acc *= shape[d];
    }
    return { view: { storage: temp, shape, strides, offset: 0 }, temp };
  }

  override assign(dst: View, src: View): void {
    if (dst.storage.dtype === "u8" || src.storage.dtype !== dst.storage.dtype) {
      return super.assign(dst, src);
    }
    const pd = this.#ptr(dst.storage), ps = this.#ptr(src.storage);
    const c = coalesce(dst.shape, [dst.strides, src.strides]);
    const last = c.shape.length - 1;
    if (c.strides[0][last] !== 1 || c.strides[1][last] !== 1) return super.assign(dst, src);
    forEachRun(dst.shape, [dst, src], (_p, len, o) => {
      this.#ex.copyBytes(pd + o[0] * 4, ps + o[1] * 4, len * 4);
    });
  }

  override unary(op: UnaryOp, x: View): Storage {
    if (x.storage.dtype !== "f32" || !UNARY_KERNELS.has(op)) return super.unary(op, x);
    const { view, temp } = this.#unitInner(x, x.shape);
    const b = blocks(x.shape, [view]);
    if (b.colSteps[0] === 0) return super.unary(op, x); // broadcast along the last axis
    const px = this.#ptr(view.storage);
    const out = this.#alloc("f32", sizeOf(x.shape));
    const [xm, xr] = [b.matSteps[0] * 4, b.rowSteps[0] * 4], om = b.rows * b.cols * 4;
    for (const { offsets, p } of b.starts) {
      this.#split3(
        `u_${op}`,
        [px + offsets[0] * 4, out.ptr + p * 4, b.cols, b.rows, xr, b.mats, xm, om],
        b,
        { mats: 5, rows: 3, cols: 2 },
        { mats: [xm, om], rows: [xr, b.cols * 4], cols: [4, 4] },
      );
    }
    if (temp) this.release(temp);
    return out;
  }

  override binary(op: BinaryOp, a: View, b: View, shape: readonly number[]): Storage {
    if (
      a.storage.dtype !== "f32" || b.storage.dtype !== "f32" || !BINARY_KERNELS.has(op)
    ) return super.binary(op, a, b, shape);
    const ua = this.#unitInner(a, shape), ub = this.#unitInner(b, shape);
    const k = blocks(shape, [ua.view, ub.view]);
    const [sa, sb] = k.colSteps;
    const mode = sa === 1 && sb === 1 ? 0 : sa === 1 ? 1 : sb === 1 ? 2 : -1;
    let out: Storage;
    if (mode < 0) out = super.binary(op, a, b, shape); // both broadcast along the last axis
    else {
      const pa = this.#ptr(ua.view.storage), pb = this.#ptr(ub.view.storage);
      const o = this.#alloc("f32", sizeOf(shape));
      const [am, bm] = k.matSteps.map((v) => v * 4), [ar, br] = k.rowSteps.map((v) => v * 4);
      const om = k.rows * k.cols * 4;
      for (const { offsets, p } of k.starts) {
        this.#split3(
          `b_${op}`,
          [
            pa + offsets[0] * 4,
            pb + offsets[1] * 4,
            o.ptr + p * 4,
            k.cols,
            mode,
            k.rows,
            ar,
            br,
            k.mats,
            am,
            bm,
            om,
          ],
          k,
          { mats: 8, rows: 5, cols: 3 },
          { mats: [am, bm, om], rows: [ar, br, k.cols * 4], cols: [sa * 4, sb * 4, 4] },
        );
      }
      out = o;
    }
    if (ua.temp) this.release(ua.temp);
    if (ub.temp) this.release(ub.temp);
    return out;
  }

  override reduce(op: ReduceOp, x: Storage, outer: number, size: number, inner: number): Storage {
    if (x.dtype !== "f32" || !REDUCE_KERNELS.has(op) || size === 0) {
      return super.reduce(op, x, outer, size, inner);
    }
    const px = this.#ptr(x);
    const out = this.#alloc("f32", outer * inner);
    const n = outer * size * inner;
    if (inner === 1) {
      this.#split({
        fn: `rowReduce_${op}`,
        count: outer,
        countArg: 2,
        align: 1,
        args: [px, out.ptr, outer, size],
        steps: [size * 4, 4, 0, 0],
      }, n);
    } else if (outer >= this.threads) {
      this.#split({
        fn: `colReduce_${op}`,
        count: outer,
        countArg: 2,
        align: 1,
        args: [px, out.ptr, outer, size, inner, inner * 4],
        steps: [size * inner * 4, inner * 4, 0, 0, 0, 0],
      }, n);
    } else {
      // Few outer slices (a sum over the batch): each thread reduces a range of columns.
      for (let o = 0; o < outer; o++) {
        this.#split({
          fn: `colReduce_${op}`,
          count: inner,
          countArg: 4,
          align: 4,
          args: [px + o * size * inner * 4, out.ptr + o * inner * 4, 1, size, inner, inner * 4],
          steps: [4, 4, 0, 0, 0, 0],
        }, size * inner);
      }
    }
    return out;
  }

  override matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    const pa = this.#ptr(a), pb = this.#ptr(b);
    const out = this.#alloc("f32", spec.batch * spec.m * spec.n);
    const flops = spec.batch * spec.m * spec.n * spec.k;
    const threads = flops < PARALLEL_MIN_FLOPS ? 1 : this.threads;
    const perThread = scratchBytes(spec.m, spec.n, spec.k);
    const scratch = this.heap.alloc(perThread * threads);
    const job: GemmJob = {
      a: pa + spec.offsetA * 4,
      b: pb + spec.offsetB * 4,
      c: out.ptr,
      batch: spec.batch,
      m: spec.m,
      n: spec.n,
      k: spec.k,
      transA: spec.transA ? 1 : 0,
      transB: spec.transB ? 1 : 0,
      strideA: spec.strideA,
      strideB: spec.strideB,
      scratch,
      scratchPerThread: perThread,
    };
    try {
      this.#pool.run(job, threads);
    } finally {
      this.heap.free(scratch, perThread * threads);
    }
    return out;
  }

  #checkIndex(op: string, index: Storage, size: number): void {
    const idx = (index as WasmStorage).data;
    for (let j = 0; j < idx.length; j++) {
      const v = idx[j];
      if (!(v >= 0 && v < size)) {
        throw new RangeError(`Cannot ${op}: index ${v} at position ${j} is outside [0, ${size})`);
      }
    }
  }

  override indexSelect(
    x: Storage,
    index: Storage,
    outer: number,
    size: number,
    inner: number,
  ): Storage {
    if (x.dtype === "u8" || index.dtype !== "i32") {
      return super.indexSelect(x, index, outer, size, inner);
    }
    const px = this.#ptr(x), pi = this.#ptr(index), n = index.size;
    this.#checkIndex("select rows", index, size);
    const out = this.#alloc(x.dtype, outer * n * inner);
    for (let o = 0; o < outer; o++) {
      this.#split({
        fn: "selectRows",
        count: n,
        countArg: 3,
        align: 1,
        args: [px + o * size * inner * 4, pi, out.ptr + o * n * inner * 4, n, inner],
        steps: [0, 4, inner * 4, 0, 0],
      }, n * inner);
    }
    return out;
  }

  override indexAdd(
    index: Storage,
    src: Storage,
    outer: number,
    size: number,
    inner: number,
  ): Storage {
    if (src.dtype !== "f32" || index.dtype !== "i32") {
      return super.indexAdd(index, src, outer, size, inner);
    }
    const ps = this.#ptr(src), pi = this.#ptr(index), n = index.size;
    this.#checkIndex("add rows", index, size);
    const out = this.allocate("f32", outer * size * inner) as WasmStorage;
    for (let o = 0; o < outer; o++) {
      this.#ex.addRows(pi, ps + o * n * inner * 4, out.ptr + o * size * inner * 4, n, inner);
    }
    return out;
  }

  /** Per-row `max` and `Σ exp(x − max)` of `[rows, cols]` into two fresh scratch arrays. */
  #rowStats(px: number, rows: number, cols: number): [WasmStorage, WasmStorage] {
    const maxes = this.#alloc("f32", rows), sums = this.#alloc("f32", rows);
    this.#split({
      fn: "rowStats",
      count: rows,
      countArg: 3,
      align: 1,
      args: [px, maxes.ptr, sums.ptr, rows, cols],
      steps: [cols * 4, 4, 4, 0, 0],
    }, rows * cols);
    return [maxes, sums];
  }

  #expScale(px: number, out: number, rows: number, cols: number, shift: number, scale: number) {
    this.#split({
      fn: "rowsExpScale",
      count: rows,
      countArg: 2,
      align: 1,
      args: [px, out, rows, cols, shift, scale],
      steps: [cols * 4, cols * 4, 0, 0, 4, 4],
    }, rows * cols);
  }

  override softmax(x: Storage, rows: number, cols: number, log: boolean): Storage {
    const px = this.#ptr(x);
    const out = this.#alloc("f32", rows * cols);
    const [maxes, sums] = this.#rowStats(px, rows, cols);
    const m = maxes.data, s = sums.data;
    if (log) {
      for (let r = 0; r < rows; r++) m[r] = m[r] + Math.log(s[r]); // lse
      this.#split({
        fn: "rowsShift",
        count: rows,
        countArg: 2,
        align: 1,
        args: [px, out.ptr, rows, cols, maxes.ptr],
        steps: [cols * 4, cols * 4, 0, 0, 4],
      }, rows * cols);
    } else {
      for (let r = 0; r < rows; r++) s[r] = 1 / s[r];
      this.#expScale(px, out.ptr, rows, cols, maxes.ptr, sums.ptr);
    }
    this.release(maxes);
    this.release(sums);
    return out;
  }

  override crossEntropy(
    logits: Storage,
    targets: Storage,
    spec: CrossEntropySpec,
  ): CrossEntropyResult {
    const { rows, cols } = spec;
    const px = this.#ptr(logits);
    const t = (targets as WasmStorage).data, x = (logits as WasmStorage).data;
    const [lse, sums] = this.#rowStats(px, rows, cols);
    const loss = this.#alloc("f32", rows);
    const l = lse.data, s = sums.data, out = loss.data;
    for (let r = 0; r < rows; r++) {
      l[r] = l[r] + Math.log(s[r]);
      out[r] = checkTarget(t[r], r, spec) ? l[r] - x[r * cols + t[r]] : 0;
    }
    this.release(sums);
    return { loss, lse };
  }

  override crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    lse: Storage,
    dloss: Storage,
    spec: CrossEntropySpec,
  ): Storage {
    const { rows, cols } = spec;
    const px = this.#ptr(logits), pl = this.#ptr(lse);
    const t = (targets as WasmStorage).data, g = (dloss as WasmStorage).data;
    const scale = this.#alloc("f32", rows);
    const sc = scale.data;
    for (let r = 0; r < rows; r++) sc[r] = checkTarget(t[r], r, spec) ? g[r] : 0;
    const out = this.#alloc("f32", rows * cols);
    this.#expScale(px, out.ptr, rows, cols, pl, scale.ptr);
    const o = out.data;
    for (let r = 0; r < rows; r++) {
      if (t[r] === spec.ignoreIndex) o.fill(0, r * cols, (r + 1) * cols);
      else o[r * cols + t[r]] -= g[r];
    }
    this.release(scale);
    return out;
  }

  /**
   * The SwiGLU gate as two SIMD passes (`silu`, `mul`) rather than the inherited scalar
   * TypeScript kernel, which is bound by `Math.exp` and measured ~3× slower than these.
   * There is no fused SIMD kernel for it yet. The fused RMSNorm kernels stay inherited (they
   * beat the composed SIMD ops).
   */
  override swiglu(a: Storage, b: Storage, n: number): Storage {
    const s = this.unary("silu", flatView(a, n));
    const out = this.binary("mul", flatView(s, n), flatView(b, n), [n]);
    this.release(s);
    return out;
  }

  /** SwiGLU gate backward as SIMD passes: `db = dout · silu(a)`, `da = silu'(a) · dout · b`. */
  override swigluBackward(a: Storage, b: Storage, dout: Storage, n: number): SwigluGrads {
    const s = this.unary("silu", flatView(a, n));
    const db = this.binary("mul", flatView(dout, n), flatView(s, n), [n]);
    this.release(s);
    const g = this.binary("mul", flatView(dout, n), flatView(b, n), [n]);
    const da = this.binary("siluBackward", flatView(a, n), flatView(g, n), [n]);
    this.release(g);
    return { da, db };
  }

  /** FP8 quantisation (`wasm/fp8.ts`), see {@linkcode Backend.fp8Quantize}. */
  override fp8Quantize(x: Storage, spec: Fp8QuantizeSpec, scales?: Storage): Fp8Storages {
    return this.#fp8Kernels().quantize(x, spec, scales);
  }

  /** FP8 dequantisation (`wasm/fp8.ts`), see {@linkcode Backend.fp8Dequantize}. */
  override fp8Dequantize(codes: Storage, scales: Storage, spec: Fp8BlockSpec): Storage {
    return this.#fp8Kernels().dequantize(codes, scales, spec);
  }

  /** The simulated FP8 GEMM (`wasm/fp8.ts`), see {@linkcode Backend.fp8Matmul}. */
  override fp8Matmul(a: Fp8Storages, b: Fp8Storages, spec: Fp8MatmulSpec): Storage {
    return this.#fp8Kernels().matmul(a, b, spec);
  }

  /** The FP8 kernels, built at the first FP8 op; their GEMM runs on this backend's threads. */
  #fp8Kernels(): WasmFp8Kernels {
    return this.#fp8 ??= new WasmFp8Kernels({
      heap: this.heap,
      allocate: (dtype, size) => this.allocate(dtype, size),
      upload: (dtype, data) => this.upload(dtype, data),
      release: (storage) => this.release(storage),
      splitFp8: (job, work) => this.#split(job, work),
    });
  }

  /** Stop the worker threads (the backend must not be used afterwards). */
  close(): void {
    this.#pool.close();
  }
}

/** The first `n` elements of a contiguous storage as a 1-D view. */
function flatView(storage: Storage, n: number): View {
  return { storage, shape: [n], strides: [1], offset: 0 };
}

function checkTarget(t: number, row: number, spec: CrossEntropySpec): boolean {
  if (t === spec.ignoreIndex) return false;
  if (!(t >= 0 && t < spec.cols)) {
    throw new RangeError(
      `Cannot compute cross-entropy: target ${t} at row ${row} is outside [0, ${spec.cols}) ` +
        `and is not the ignore index ${spec.ignoreIndex}`,
    );
  }
  return true;
}

/**
 * Build the kernels, the shared heap and the worker pool.
 *
 * @param options Threads, relaxed SIMD, heap limit and the size above which ops are split.
 * @returns The backend; call `close()` to stop its worker threads.
 *
 * @example Softmax rows on 2 threads
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { createWasmBackend } from "./wasm.ts";
 * const wasm = await createWasmBackend({ threads: 2, parallelMinElements: 1 });
 * const x = wasm.upload("f32", [0, Math.log(3), 5, 5]);
 * assertAllClose(wasm.readSync(wasm.softmax(x, 2, 2, false)), [0.25, 0.75, 0.5, 0.5]);
 * wasm.close();
 * ```
 */
export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const maxPages = Math.floor(((options.maxMemoryMiB ?? 4096) * 2 ** 20) / 65536);
  const relaxed = (options.relaxedSimd ?? true) && hasRelaxedSimd();
  const heap = new WasmHeap(maxPages);
  const module = new WebAssembly.Module(buildKernelModule({ maxPages, relaxed }));
  const instance = new WebAssembly.Instance(module, { env: { memory: heap.memory } });
  const ex = instance.exports as unknown as KernelExports;
  const threads = Math.max(1, Math.floor(options.threads ?? navigator.hardwareConcurrency ?? 1));
  const control = heap.alloc(CONTROL_BYTES);
  const pool = await ThreadPool.create(module, heap.memory, control, ex, threads);
  return new WasmBackend(heap, pool, ex, relaxed, options.parallelMinElements ?? 32768);
}
