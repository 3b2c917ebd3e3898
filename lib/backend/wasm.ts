/**
 * The wasm backend: the fast path on machines without a GPU.
 *
 * Storages live in one shared `WebAssembly.Memory` (`wasm/heap.ts`). Matmul — the bulk of a
 * training step's work — runs as a packed, register-blocked SIMD kernel (`wasm/kernels.ts`,
 * emitted from TypeScript: no toolchain, no committed binary) on worker threads that share the
 * memory (`wasm/pool.ts`). The other ops reuse the cpu reference kernels over views of that
 * memory, so they are exactly the reference numerics. TODO(#5): SIMD kernels for the
 * elementwise, softmax/cross-entropy, RMSNorm, attention and AdamW families.
 *
 * @module
 */

import type { DType, MatmulSpec, Storage } from "./backend.ts";
import { CpuBackend, CpuStorage } from "./cpu.ts";
import { type GemmJob, scratchBytes } from "./wasm/gemm.ts";
import { WasmHeap } from "./wasm/heap.ts";
import { buildGemmModule, type GemmExports, hasRelaxedSimd } from "./wasm/kernels.ts";
import { CONTROL_BYTES, ThreadPool } from "./wasm/pool.ts";

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
}

/** Matmuls below this many multiply-adds run on the main thread only. */
const PARALLEL_MIN_FLOPS = 64 * 64 * 64;

/** The wasm backend; create it with {@linkcode createWasmBackend}. */
export class WasmBackend extends CpuBackend {
  readonly heap: WasmHeap;
  readonly threads: number;
  readonly relaxedSimd: boolean;
  #pool: ThreadPool;

  constructor(heap: WasmHeap, pool: ThreadPool, relaxed: boolean) {
    super({
      name: "wasm",
      description: `wasm (SIMD${relaxed ? " + relaxed FMA" : ""}, ${pool.threads} threads)`,
    });
    this.heap = heap;
    this.#pool = pool;
    this.threads = pool.threads;
    this.relaxedSimd = relaxed;
  }

  override allocate(dtype: DType, size: number): CpuStorage {
    const bytes = Math.max(size, 1) * (dtype === "u8" ? 1 : 4);
    const ptr = this.heap.alloc(bytes);
    const s = new WasmStorage(dtype, ptr, bytes, this.heap.memory, size);
    s.data.fill(0);
    return s;
  }

  override release(storage: Storage): void {
    const s = storage as WasmStorage;
    super.release(s);
    this.heap.free(s.ptr, s.bytes);
  }

  override matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    if (!(a instanceof WasmStorage) || !(b instanceof WasmStorage)) {
      throw new Error("Cannot use a storage from another backend on the wasm backend");
    }
    const out = this.allocate("f32", spec.batch * spec.m * spec.n) as WasmStorage;
    const flops = spec.batch * spec.m * spec.n * spec.k;
    const threads = flops < PARALLEL_MIN_FLOPS ? 1 : this.threads;
    const perThread = scratchBytes(spec.m, spec.n, spec.k);
    const scratch = this.heap.alloc(perThread * threads);
    const job: GemmJob = {
      a: a.ptr + spec.offsetA * 4,
      b: b.ptr + spec.offsetB * 4,
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

  /** Stop the worker threads (the backend must not be used afterwards). */
  close(): void {
    this.#pool.close();
  }
}

/** Build the kernels, the shared heap and the worker pool. */
export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const maxPages = Math.floor(((options.maxMemoryMiB ?? 4096) * 2 ** 20) / 65536);
  const relaxed = (options.relaxedSimd ?? true) && hasRelaxedSimd();
  const heap = new WasmHeap(maxPages);
  const module = new WebAssembly.Module(buildGemmModule({ maxPages, relaxed }));
  const instance = new WebAssembly.Instance(module, { env: { memory: heap.memory } });
  const ex = instance.exports as unknown as GemmExports;
  const threads = Math.max(1, Math.floor(options.threads ?? navigator.hardwareConcurrency ?? 1));
  const control = heap.alloc(CONTROL_BYTES);
  const pool = await ThreadPool.create(module, heap.memory, control, ex, threads);
  return new WasmBackend(heap, pool, relaxed);
}
