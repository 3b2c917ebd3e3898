/**
 * The WebGPU backend: every op of `Backend` as a WGSL kernel (`webgpu/kernels/<family>.ts`),
 * storage buffers from a pool, pipelines from a cache, and all work recorded into one command
 * encoder (one compute pass) that is submitted only when the host reads a result.
 *
 * Kernels: every op of `Backend` in WGSL, checked against the cpu reference
 * (tests/backend/webgpu*_test.ts and the fused-kernel tests beside them). Elementwise kernels
 * run four elements per invocation with vec4 loads wherever the views allow it
 * (`webgpu/kernels/elementwise.ts`); every kernel reads its integer parameters from a uniform
 * buffer declared by `paramsWgsl` (`webgpu/_wgsl.ts`) — a 256-byte slot of a reused 64 KiB arena
 * (`webgpu/buffers.ts`, `ParamArena`), so a steady-state step allocates no buffers. Matmul has two shapes
 * (`webgpu/kernels/matmul.ts`): on CPU drivers (Mesa llvmpipe/lavapipe, SwiftShader, a fallback
 * adapter: {@linkcode isCpuAdapter}) `auto` packs the operands into storage textures and runs
 * 16×16 register blocks (`texture`, `webgpu/kernels/matmul_texture.ts`; storage-texture reads
 * cost a fraction of storage-buffer reads there), falling back to register blocks read straight
 * from storage buffers (`vec4`, `dot4`, `block4`) for tiny products or textures past the device
 * limit; on a GPU it takes the workgroup-memory tiles (`tiled`). `matmulVariant` (a constructor
 * option and a settable field) forces one for tests and the bench. Fused kernels: RMSNorm
 * forward/backward and the SwiGLU gate (`webgpu/kernels/norm.ts`), RoPE
 * (`webgpu/kernels/rope.ts`), causal attention with an online softmax
 * (`webgpu/kernels/attention.ts`), softmax and cross-entropy (`webgpu/kernels/reduce.ts`),
 * AdamW (`webgpu/kernels/optim.ts`); FP8 quantise, dequantise and the simulated FP8 GEMM
 * (`webgpu/kernels/fp8.ts`, bit for bit with the cpu reference). `deno task bench` reports the figures beside the WebGPU peers
 * (tfjs-backend-webgpu, jax-js).
 *
 * @module
 */

import type {
  AdamWHyperparams,
  AttentionGrads,
  AttentionResult,
  AttentionSpec,
  Backend,
  BinaryOp,
  CrossEntropyResult,
  CrossEntropySpec,
  DType,
  Fp8BlockSpec,
  Fp8MatmulSpec,
  Fp8QuantizeSpec,
  Fp8Storages,
  HostArray,
  MatmulSpec,
  ReduceOp,
  RmsNormGrads,
  RmsNormResult,
  RmsNormSpec,
  RopeSpec,
  Storage,
  SwigluGrads,
  TopKResult,
  UnaryOp,
  View,
} from "./backend.ts";
import { COMPARISON_OPS } from "./backend.ts";
import { BufferPool, ParamArena, TexturePool } from "./webgpu/buffers.ts";
import { type KernelInfo, PipelineCache } from "./webgpu/cache.ts";
import { PARAM_VEC4S } from "./webgpu/_wgsl.ts";
import { acquireGpu, type GpuContext, isCpuAdapter } from "./webgpu/device.ts";
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
import { matmulKernel, type MatmulVariant, resolveMatmulVariant } from "./webgpu/kernels/matmul.ts";
import {
  packKernels,
  packRowsKernel,
  textureMatmulKernel,
  textureMatmulSizes,
} from "./webgpu/kernels/matmul_texture.ts";
import { adamwKernel } from "./webgpu/kernels/optim.ts";
import {
  attentionBackwardKvKernel,
  attentionBackwardQKernel,
  attentionKernel,
  attentionTexturesApply,
} from "./webgpu/kernels/attention.ts";
import {
  rmsNormBackwardKernel,
  rmsNormChunks,
  rmsNormKernel,
  rmsNormWeightGradKernel,
  swigluBackwardKernel,
  swigluKernel,
} from "./webgpu/kernels/norm.ts";
import { ropeKernel } from "./webgpu/kernels/rope.ts";
import {
  fp8DequantizeKernel,
  fp8MatmulKernel,
  fp8QuantizeKernel,
  fp8RowAmaxKernel,
  fp8ScalesKernel,
} from "./webgpu/kernels/fp8.ts";
import { checkFp8MatmulSpec } from "./cpu/fp8.ts";
import {
  gatherKernel,
  indexAddSortedKernel,
  indexCountKernel,
  indexPlaceKernel,
  indexScanKernel,
  indexSelectKernel,
  indexSortKernel,
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
export { isCpuAdapter } from "./webgpu/device.ts";

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
  /** The device's `maxTextureDimension2D` (bounds the `texture` matmul variant). */
  readonly maxTextureDimension: number;
  /** The device's `maxStorageBufferBindingSize`: the largest tensor it can hold, in bytes. */
  readonly maxTensorBytes: number;
  readonly #device: GPUDevice;
  readonly #pool: BufferPool;
  readonly #textures: TexturePool;
  readonly #cache: PipelineCache;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  readonly #params: ParamArena;
  #error: string | null = null;
  /** Dispatches recorded since the backend was created (for tests and the bench). */
  dispatches = 0;

  constructor(ctx: GpuContext, options: WebGpuBackendOptions = {}) {
    this.#device = ctx.device;
    this.#pool = new BufferPool(ctx.device);
    this.#textures = new TexturePool(ctx.device);
    this.#params = new ParamArena(ctx.device, 16 * PARAM_VEC4S); // paramsWgsl's block
    this.maxTextureDimension = ctx.device.limits.maxTextureDimension2D;
    this.maxTensorBytes = ctx.device.limits.maxStorageBufferBindingSize;
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

  /** The binding of a storage's whole buffer. */
  #buf(s: Storage): GPUBufferBinding {
    return { buffer: this.#storage(s).buffer };
  }

  /** Record `kernel` writing `out` and reading (or additionally writing) `rest` at bindings 2…. */
  #run(kernel: KernelInfo, out: Storage, rest: readonly Storage[]): void {
    this.#dispatch(kernel, [out, ...rest].map((s) => this.#buf(s)));
  }

  /** Record `kernel` with its params at binding 0 and `resources` at bindings 1…. */
  #dispatch(kernel: KernelInfo, resources: readonly GPUBindingResource[]): void {
    if (kernel.n === 0) return;
    const pipeline = this.#cache.get(kernel);
    if (kernel.params.length > 4 * PARAM_VEC4S) {
      throw new Error(
        `Cannot launch '${kernel.key}' with ${kernel.params.length} parameters ` +
          `(at most ${4 * PARAM_VEC4S})`,
      );
    }
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: this.#params.take(kernel.params) },
      ...resources.map((resource, i) => ({ binding: i + 1, resource })),
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
    this.#params.upload(this.#device.queue); // the parameter blocks this submit binds
    this.#device.queue.submit([this.#encoder.finish()]);
    this.#params.recycle();
    this.#encoder = null;
    this.#textures.collect();
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

  /**
   * The kernel the next `matmul(…, spec)` runs: {@linkcode matmulVariant} resolved for `spec`
   * and this adapter (throws where a forced variant does not apply).
   */
  matmulVariantFor(spec: MatmulSpec): Exclude<MatmulVariant, "auto"> {
    return resolveMatmulVariant(spec, this.matmulVariant, this.#matmulOptions());
  }

  #matmulOptions() {
    return { cpuDriver: this.isCpuFallback, maxTextureDimension: this.maxTextureDimension };
  }

  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    if (this.matmulVariantFor(spec) === "texture") return this.#textureMatmul(a, b, spec);
    const kernel = matmulKernel(spec, this.matmulVariant, this.#matmulOptions());
    return this.#launch(kernel, spec.batch * spec.m * spec.n, [a, b]);
  }

  /** The texture variant: pack op(A) and op(B) into pooled textures, then multiply. */
  #textureMatmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    const sizes = textureMatmulSizes(spec);
    const ta = this.#textures.acquire(...sizes.a);
    const tb = this.#textures.acquire(...sizes.b);
    const pack = packKernels(spec);
    this.#dispatch(pack.a, [ta.createView(), this.#buf(a)]);
    this.#dispatch(pack.b, [tb.createView(), this.#buf(b)]);
    const out = this.#alloc("f32", spec.batch * spec.m * spec.n);
    this.#dispatch(textureMatmulKernel(spec), [
      this.#buf(out),
      ta.createView(),
      tb.createView(),
    ]);
    this.#textures.release(ta);
    this.#textures.release(tb);
    return out;
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
    const n = index.size;
    const out = this.#alloc("f32", outer * size * inner);
    if (n === 0 || outer * size * inner === 0) {
      this.#run(fillKernel("f32", outer * size * inner, 0), out, []);
      return out;
    }
    // A counting sort of the index into per-row buckets, then one sum per output row
    // (webgpu/kernels/gather.ts, indexCountKernel and the steps after it).
    const count = this.#launch(fillKernel("i32", size, 0), size, []);
    this.#run(indexCountKernel(size, n), count, [index]);
    const start = this.#alloc("i32", size + 1);
    this.#run(indexScanKernel(size), start, [count]);
    const list = this.#alloc("i32", n);
    this.#run(indexPlaceKernel(size, n), list, [index, start, count]);
    this.#run(indexSortKernel(size), list, [start]);
    this.#run(indexAddSortedKernel(outer, size, inner, n), out, [src, list, start]);
    for (const t of [count, start, list]) this.release(t);
    return out;
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

  /**
   * FP8 quantisation (three dispatches: row amax partials, scales, codes; only the codes with
   * given scales), see {@linkcode Backend.fp8Quantize}.
   */
  fp8Quantize(x: Storage, spec: Fp8QuantizeSpec, given?: Storage): Fp8Storages {
    const scales = given ?? this.#fp8Scales(x, spec);
    const codes = this.#launch(fp8QuantizeKernel(spec), spec.rows * spec.cols, [x, scales]);
    return { codes, scales };
  }

  /** Per-block scales from the amax of `x` (two dispatches, no barriers). */
  #fp8Scales(x: Storage, spec: Fp8QuantizeSpec): Storage {
    const amax = fp8RowAmaxKernel(spec);
    const partial = this.#launch(amax, amax.n, [x]);
    const scaleKernel = fp8ScalesKernel(spec);
    const scales = this.#launch(scaleKernel, scaleKernel.n, [partial]);
    this.release(partial);
    return scales;
  }

  /** FP8 dequantisation (one dispatch), see {@linkcode Backend.fp8Dequantize}. */
  fp8Dequantize(codes: Storage, scales: Storage, spec: Fp8BlockSpec): Storage {
    return this.#launch(fp8DequantizeKernel(spec), spec.rows * spec.cols, [codes, scales]);
  }

  /** The simulated FP8 GEMM (one dispatch), see {@linkcode Backend.fp8Matmul}. */
  fp8Matmul(a: Fp8Storages, b: Fp8Storages, spec: Fp8MatmulSpec): Storage {
    checkFp8MatmulSpec(spec);
    const kernel = fp8MatmulKernel(spec);
    return this.#launch(kernel, spec.m * spec.n, [a.codes, a.scales, b.codes, b.scales]);
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

  /** Fused causal attention forward (one dispatch), see {@linkcode Backend.attention}. */
  attention(q: Storage, k: Storage, v: Storage, spec: AttentionSpec): AttentionResult {
    const lse = this.#alloc("f32", spec.batch * spec.t);
    const out = this.#alloc("f32", spec.batch * spec.t * spec.dv);
    const kvRows = (spec.batch / spec.group) * spec.s;
    const tex = this.#attentionTextures(spec);
    const kernel = attentionKernel(spec, { textures: tex });
    const streamed = tex
      ? [this.#packRows(k, kvRows, spec.d), this.#packRows(v, kvRows, spec.dv)]
      : null;
    this.#dispatch(kernel, [
      this.#buf(out),
      this.#buf(q),
      ...this.#streamedResources([k, v], streamed),
      this.#buf(lse),
    ]);
    streamed?.forEach((t) => this.#textures.release(t));
    return { out, lse };
  }

  /** Whether the attention kernels read their streamed operands from textures (CPU drivers). */
  #attentionTextures(spec: AttentionSpec): boolean {
    return this.isCpuFallback && attentionTexturesApply(spec, this.maxTextureDimension);
  }

  /** A pooled texture holding the contiguous `[rows, cols]` storage `x`, one row per row. */
  #packRows(x: Storage, rows: number, cols: number): GPUTexture {
    const texture = this.#textures.acquire(Math.ceil(cols / 4), rows);
    this.#dispatch(packRowsKernel(rows, cols), [
      texture.createView(),
      this.#buf(x),
    ]);
    return texture;
  }

  /** Bindings of streamed operands: their textures where packed, else their buffers. */
  #streamedResources(
    storages: readonly Storage[],
    textures: readonly GPUTexture[] | null,
  ): GPUBindingResource[] {
    return storages.map((s, i) => textures ? textures[i].createView() : this.#buf(s));
  }

  /** Fused causal attention backward (two dispatches), see {@linkcode Backend.attentionBackward}. */
  attentionBackward(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    dout: Storage,
    spec: AttentionSpec,
  ): AttentionGrads {
    const rows = spec.batch * spec.t, kvRows = (spec.batch / spec.group) * spec.s;
    const tex = this.#attentionTextures(spec);
    const rowD = this.#alloc("f32", rows);
    const dq = this.#alloc("f32", rows * spec.d);
    const kv = tex ? [this.#packRows(k, kvRows, spec.d), this.#packRows(v, kvRows, spec.dv)] : null;
    this.#dispatch(attentionBackwardQKernel(spec, { textures: tex }), [
      this.#buf(dq),
      this.#buf(q),
      ...this.#streamedResources([k, v], kv),
      this.#buf(out),
      this.#buf(lse),
      this.#buf(dout),
      this.#buf(rowD),
    ]);
    kv?.forEach((t) => this.#textures.release(t));
    const dk = this.#alloc("f32", kvRows * spec.d);
    const dv = this.#alloc("f32", kvRows * spec.dv);
    const qg = tex ? [this.#packRows(q, rows, spec.d), this.#packRows(dout, rows, spec.dv)] : null;
    this.#dispatch(attentionBackwardKvKernel(spec, { textures: tex }), [
      this.#buf(dk),
      ...this.#streamedResources([q], qg && qg.slice(0, 1)),
      this.#buf(k),
      this.#buf(v),
      this.#buf(lse),
      ...this.#streamedResources([dout], qg && qg.slice(1)),
      this.#buf(rowD),
      this.#buf(dv),
    ]);
    qg?.forEach((t) => this.#textures.release(t));
    this.release(rowD);
    return { dq, dk, dv };
  }

  /** Fused RMSNorm forward (one dispatch), see {@linkcode Backend.rmsNorm}. */
  rmsNorm(x: Storage, weight: Storage, spec: RmsNormSpec): RmsNormResult {
    const rstd = this.#alloc("f32", spec.rows);
    const kernel = rmsNormKernel(spec.rows, spec.cols, spec.eps);
    const y = this.#launch(kernel, spec.rows * spec.cols, [x, weight, rstd]);
    return { y, rstd };
  }

  /**
   * Fused RMSNorm backward: `dx` per row, then `dweight` as per-chunk column partials summed by
   * the reduce kernel (2–3 dispatches, no atomics), see {@linkcode Backend.rmsNormBackward}.
   */
  rmsNormBackward(
    x: Storage,
    weight: Storage,
    rstd: Storage,
    dy: Storage,
    spec: RmsNormSpec,
  ): RmsNormGrads {
    const { rows, cols } = spec;
    const dx = this.#launch(rmsNormBackwardKernel(rows, cols), rows * cols, [x, weight, rstd, dy]);
    const chunks = rmsNormChunks(rows);
    const partial = this.#launch(rmsNormWeightGradKernel(rows, cols), chunks * cols, [x, rstd, dy]);
    if (chunks === 1) return { dx, dweight: partial };
    const dweight = this.#launch(reduceKernel("sum", "f32", 1, chunks, cols), cols, [partial]);
    this.release(partial);
    return { dx, dweight };
  }

  /** Fused SwiGLU gate (one dispatch), see {@linkcode Backend.swiglu}. */
  swiglu(a: Storage, b: Storage, n: number): Storage {
    return this.#launch(swigluKernel(n), n, [a, b]);
  }

  /** SwiGLU gate backward (`da` and `db`, one dispatch), see {@linkcode Backend.swigluBackward}. */
  swigluBackward(a: Storage, b: Storage, dout: Storage, n: number): SwigluGrads {
    const db = this.#alloc("f32", n);
    const da = this.#launch(swigluBackwardKernel(n), n, [a, b, dout, db]);
    return { da, db };
  }

  /** Fused rotary embedding (one dispatch, vec4 for even `d/2`), see {@linkcode Backend.rope}. */
  rope(x: Storage, cos: Storage, sin: Storage, spec: RopeSpec): Storage {
    return this.#launch(ropeKernel(spec), spec.rows * 2 * spec.half, [x, cos, sin]);
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
