/**
 * The WebGPU backend: every op of `Backend` as a WGSL kernel (`webgpu/kernels/<family>.ts`),
 * storage buffers from a pool, pipelines from a cache, and all work recorded into one command
 * encoder (one compute pass) that is submitted only when the host reads a result.
 *
 * Status (#4): every op is implemented and checked against the cpu reference; most kernels are
 * the plain correctness-first versions (one invocation per output element). Matmul has two
 * shapes (`webgpu/kernels/matmul.ts`): CPU-driver-shaped register blocks read straight from
 * storage buffers (`block4`, `vec4`, `dot4`) and a GPU-shaped kernel with workgroup-memory tiles
 * (`tiled`). `auto` picks by adapter — the register blocks on a CPU implementation (Mesa
 * llvmpipe/lavapipe, SwiftShader, or a fallback adapter: {@linkcode isCpuAdapter}), `tiled` on a
 * GPU — and `matmulVariant` (a constructor option and a settable field) forces one for tests and
 * the bench. `deno task bench` reports each variant, plain and A·Bᵀ, beside the WebGPU peers
 * (tfjs-backend-webgpu, jax-js) and the per-dispatch overhead (tests/bench/main.ts); every
 * variant is checked against the cpu backend in tests/backend/webgpu_matmul_test.ts. Fused
 * kernels are still to come.
 *
 * @module
 */

import type {
  AdamWHyperparams,
  Backend,
  BinaryOp,
  CrossEntropyResult,
  CrossEntropySpec,
  DType,
  HostArray,
  MatmulSpec,
  ReduceOp,
  Storage,
  TopKResult,
  UnaryOp,
  View,
} from "./backend.ts";
import { COMPARISON_OPS } from "./backend.ts";
import { BufferPool } from "./webgpu/buffers.ts";
import { type KernelInfo, PipelineCache } from "./webgpu/cache.ts";
import { acquireGpu, type GpuContext } from "./webgpu/device.ts";
import {
  assignKernel,
  binaryKernel,
  castKernel,
  fillKernel,
  unaryKernel,
  whereKernel,
} from "./webgpu/kernels/elementwise.ts";
import {
  crossEntropyBackwardKernel,
  crossEntropyKernel,
  reduceKernel,
  softmaxKernel,
  topkKernel,
} from "./webgpu/kernels/reduce.ts";
import { matmulKernel, type MatmulVariant } from "./webgpu/kernels/matmul.ts";
import { adamwKernel } from "./webgpu/kernels/optim.ts";
import {
  gatherKernel,
  indexAddKernel,
  indexSelectKernel,
  scatterAddKernel,
} from "./webgpu/kernels/gather.ts";

/** A storage buffer holding `size` elements of 4 bytes (u8 values one per word). */
export class WebGpuStorage implements Storage {
  #buffer: GPUBuffer | null;
  readonly dtype: DType;
  readonly size: number;

  constructor(buffer: GPUBuffer, dtype: DType, size: number) {
    this.#buffer = buffer;
    this.dtype = dtype;
    this.size = size;
  }

  /** The buffer; throws once released. */
  get buffer(): GPUBuffer {
    if (this.#buffer === null) throw new Error("Cannot use a released WebGPU storage");
    return this.#buffer;
  }

  /** Detach the buffer (the pool takes it back). */
  take(): GPUBuffer {
    const b = this.buffer;
    this.#buffer = null;
    return b;
  }
}

function toWords(dtype: DType, data: ArrayLike<number>): Float32Array | Int32Array | Uint32Array {
  switch (dtype) {
    case "f32":
      return Float32Array.from(data);
    case "i32":
      return Int32Array.from(data);
    case "u8":
      return Uint32Array.from(data, (v) => ((Math.trunc(v) % 256) + 256) % 256);
    default:
      throw new Error(`Cannot upload unknown dtype '${dtype satisfies never}'`);
  }
}

export type { MatmulVariant } from "./webgpu/kernels/matmul.ts";

/**
 * Whether an adapter is a CPU implementation of WebGPU rather than a GPU: a fallback adapter, or
 * one whose vendor, architecture, device or description names Mesa's llvmpipe/lavapipe or
 * Google's SwiftShader. Such adapters want the CPU-driver-shaped matmul kernels (workgroup
 * barriers are expensive there, see shared/notes/webgpu.md).
 *
 * @param info The adapter's `GPUAdapter.info`.
 * @returns `true` for a CPU implementation.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isCpuAdapter } from "./webgpu.ts";
 * const info = { vendor: "mesa", architecture: "", device: "", isFallbackAdapter: false,
 *   description: "llvmpipe (LLVM 15.0.6, 256 bits)" } as unknown as GPUAdapterInfo;
 * equal(isCpuAdapter(info), true);
 * equal(isCpuAdapter({ ...info, description: "NVIDIA H200" } as GPUAdapterInfo), false);
 * ```
 */
export function isCpuAdapter(info: GPUAdapterInfo): boolean {
  if (info.isFallbackAdapter === true) return true;
  const names = [info.vendor, info.architecture, info.device, info.description].join(" ");
  return /llvmpipe|lavapipe|swiftshader/i.test(names);
}

/** Options for {@linkcode WebGpuBackend} and {@linkcode createWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /**
   * The matmul kernel: `auto` picks by adapter ({@linkcode isCpuAdapter}: `vec4`/`dot4`/`block4`
   * on a CPU implementation, `tiled` on a GPU); the others force one (tests, the bench).
   * @default {"auto"}
   */
  matmulVariant?: MatmulVariant;
}

/**
 * The WebGPU backend. Create it with {@linkcode createWebGpuBackend}.
 */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  readonly description: string;
  readonly canReadSync = false;
  /** Whether the adapter is a CPU driver (llvmpipe/lavapipe) rather than a GPU. */
  readonly isCpuFallback: boolean;
  /**
   * The matmul kernel for the next matmuls (`auto`: by adapter, see
   * {@linkcode WebGpuBackendOptions}); set it to force a variant. A forced `vec4` throws on
   * specs it does not apply to.
   */
  matmulVariant: MatmulVariant;
  readonly #device: GPUDevice;
  readonly #pool: BufferPool;
  readonly #cache: PipelineCache;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #transient: GPUBuffer[] = [];
  #error: string | null = null;
  /** Dispatches recorded since the backend was created (for tests and the bench). */
  dispatches = 0;

  constructor(ctx: GpuContext, options: WebGpuBackendOptions = {}) {
    this.#device = ctx.device;
    this.#pool = new BufferPool(ctx.device);
    this.#cache = new PipelineCache(ctx.device);
    this.isCpuFallback = ctx.isCpuFallback || isCpuAdapter(ctx.adapter.info);
    this.matmulVariant = options.matmulVariant ?? "auto";
    this.description = `webgpu (${ctx.description}${this.isCpuFallback ? ", CPU fallback" : ""})`;
    this.#device.addEventListener("uncapturederror", (e) => {
      this.#error ??= (e as GPUUncapturedErrorEvent).error.message;
    });
  }

  #storage(s: Storage): WebGpuStorage {
    if (!(s instanceof WebGpuStorage)) {
      throw new Error("Cannot use a storage from another backend on the webgpu backend");
    }
    return s;
  }

  #alloc(dtype: DType, size: number): WebGpuStorage {
    return new WebGpuStorage(this.#pool.acquire(Math.max(size, 1) * 4), dtype, size);
  }

  /** Record `kernel` writing `out` and reading (or additionally writing) `rest` at bindings 2…. */
  #run(kernel: KernelInfo, out: Storage, rest: readonly Storage[]): void {
    if (kernel.n === 0) return;
    const pipeline = this.#cache.get(kernel);
    const params = this.#device.createBuffer({
      size: Math.max(16, Math.ceil(kernel.params.byteLength / 4) * 4),
      usage: GPUBufferUsage.STORAGE,
      mappedAtCreation: true,
    });
    new Uint32Array(params.getMappedRange()).set(kernel.params);
    params.unmap();
    this.#transient.push(params);
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: params } },
      { binding: 1, resource: { buffer: this.#storage(out).buffer } },
      ...rest.map((s, i) => ({ binding: i + 2, resource: { buffer: this.#storage(s).buffer } })),
    ];
    const bindGroup = this.#device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    this.#encoder ??= this.#device.createCommandEncoder();
    this.#pass ??= this.#encoder.beginComputePass();
    this.#pass.setPipeline(pipeline);
    this.#pass.setBindGroup(0, bindGroup);
    this.#pass.dispatchWorkgroups(kernel.dispatch[0], kernel.dispatch[1]);
    this.dispatches++;
  }

  #launch(kernel: KernelInfo, size: number, rest: readonly Storage[]): WebGpuStorage {
    const out = this.#alloc(kernel.outDType, size);
    this.#run(kernel, out, rest);
    return out;
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (this.#encoder === null) return;
    this.#pass?.end();
    this.#pass = null;
    this.#device.queue.submit([this.#encoder.finish()]);
    this.#encoder = null;
    for (const b of this.#transient) b.destroy();
    this.#transient = [];
  }

  upload(dtype: DType, data: ArrayLike<number>): Storage {
    return new WebGpuStorage(this.#pool.create(toWords(dtype, data)), dtype, data.length);
  }

  fill(dtype: DType, size: number, value: number): Storage {
    return this.#launch(fillKernel(dtype, size, value), size, []);
  }

  async read(storage: Storage): Promise<HostArray> {
    const s = this.#storage(storage);
    const bytes = Math.max(s.size, 1) * 4;
    const staging = this.#device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#encoder ??= this.#device.createCommandEncoder();
    this.#pass?.end();
    this.#pass = null;
    this.#encoder.copyBufferToBuffer(s.buffer, 0, staging, 0, bytes);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const words = staging.getMappedRange().slice(0, s.size * 4);
    staging.unmap();
    staging.destroy();
    if (this.#error !== null) {
      const message = this.#error;
      this.#error = null;
      throw new Error(`WebGPU error before this read: ${message}`);
    }
    switch (s.dtype) {
      case "f32":
        return new Float32Array(words);
      case "i32":
        return new Int32Array(words);
      case "u8":
        return Uint8Array.from(new Uint32Array(words));
      default:
        throw new Error(`Cannot read unknown dtype '${s.dtype satisfies never}'`);
    }
  }

  readSync(_storage: Storage): HostArray {
    throw new Error("Cannot read a WebGPU storage synchronously: use await t.data()");
  }

  release(storage: Storage): void {
    this.#pool.release(this.#storage(storage).take());
  }

  copy(x: View): Storage {
    return this.#launch(castKernel(x, x.storage.dtype), sizeOf(x.shape), [x.storage]);
  }

  assign(dst: View, src: View): void {
    this.#run(assignKernel(dst, src), dst.storage, [src.storage]);
  }

  cast(x: View, dtype: DType): Storage {
    return this.#launch(castKernel(x, dtype), sizeOf(x.shape), [x.storage]);
  }

  unary(op: UnaryOp, x: View): Storage {
    return this.#launch(unaryKernel(op, x), sizeOf(x.shape), [x.storage]);
  }

  binary(op: BinaryOp, a: View, b: View, shape: readonly number[]): Storage {
    const out = COMPARISON_OPS.has(op) ? "f32" : a.storage.dtype;
    return this.#launch(binaryKernel(op, a, b, shape, out), sizeOf(shape), [a.storage, b.storage]);
  }

  where(cond: View, a: View, b: View, shape: readonly number[]): Storage {
    return this.#launch(whereKernel(cond, a, b, shape), sizeOf(shape), [
      cond.storage,
      a.storage,
      b.storage,
    ]);
  }

  reduce(op: ReduceOp, x: Storage, outer: number, size: number, inner: number): Storage {
    return this.#launch(reduceKernel(op, x.dtype, outer, size, inner), outer * inner, [x]);
  }

  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    const kernel = matmulKernel(spec, this.matmulVariant, { cpuDriver: this.isCpuFallback });
    return this.#launch(kernel, spec.batch * spec.m * spec.n, [a, b]);
  }

  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage {
    return this.#launch(softmaxKernel(rows, cols, log), rows * cols, [x]);
  }

  crossEntropy(logits: Storage, targets: Storage, spec: CrossEntropySpec): CrossEntropyResult {
    const lse = this.#alloc("f32", spec.rows);
    const loss = this.#launch(
      crossEntropyKernel(spec.rows, spec.cols, spec.ignoreIndex),
      spec.rows,
      [
        logits,
        targets,
        lse,
      ],
    );
    return { loss, lse };
  }

  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    lse: Storage,
    dloss: Storage,
    spec: CrossEntropySpec,
  ): Storage {
    const kernel = crossEntropyBackwardKernel(spec.rows, spec.cols, spec.ignoreIndex);
    return this.#launch(kernel, spec.rows * spec.cols, [logits, targets, lse, dloss]);
  }

  indexSelect(x: Storage, index: Storage, outer: number, size: number, inner: number): Storage {
    const kernel = indexSelectKernel(x.dtype, outer, size, inner, index.size);
    return this.#launch(kernel, outer * index.size * inner, [x, index]);
  }

  indexAdd(index: Storage, src: Storage, outer: number, size: number, inner: number): Storage {
    const kernel = indexAddKernel(outer, size, inner, index.size);
    return this.#launch(kernel, outer * size * inner, [index, src]);
  }

  gather(
    x: Storage,
    index: Storage,
    outer: number,
    size: number,
    inner: number,
    k: number,
  ): Storage {
    return this.#launch(gatherKernel(x.dtype, outer, size, inner, k), outer * k * inner, [
      x,
      index,
    ]);
  }

  scatterAdd(
    index: Storage,
    src: Storage,
    outer: number,
    size: number,
    inner: number,
    k: number,
  ): Storage {
    return this.#launch(scatterAddKernel(outer, size, inner, k), outer * size * inner, [
      index,
      src,
    ]);
  }

  topk(x: Storage, rows: number, cols: number, k: number): TopKResult {
    const indices = this.#alloc("i32", rows * k);
    const values = this.#launch(topkKernel(rows, cols, k), rows * k, [x, indices]);
    return { values, indices };
  }

  /** Fused AdamW step in place (one dispatch), see {@linkcode Backend.adamwUpdate}. */
  adamwUpdate(param: Storage, grad: View, m: Storage, v: Storage, h: AdamWHyperparams): void {
    const size = sizeOf(grad.shape);
    const all = [param, grad.storage, m, v];
    if (all.some((s) => s.dtype !== "f32") || [param, m, v].some((s) => s.size < size)) {
      throw new Error(
        `Cannot run the fused AdamW update on ${size} elements: expected f32 storages of at least ${size} elements`,
      );
    }
    if (new Set(all).size !== 4) {
      throw new Error("Cannot run the fused AdamW update: expected 4 distinct storages");
    }
    this.#run(adamwKernel(grad, h), param, [grad.storage, m, v]);
  }
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Acquire an adapter and device and create the backend (throws with the fix if none).
 *
 * @param options The matmul variant (default: chosen by adapter).
 * @returns The backend.
 *
 * @example Forcing the GPU-shaped matmul kernel
 * ```ts ignore
 * import { createWebGpuBackend } from "./webgpu.ts";
 * const gpu = await createWebGpuBackend({ matmulVariant: "tiled" });
 * gpu.matmulVariant = "auto"; // back to the adapter's choice
 * ```
 */
export async function createWebGpuBackend(
  options: WebGpuBackendOptions = {},
): Promise<WebGpuBackend> {
  return new WebGpuBackend(await acquireGpu(), options);
}
