/**
 * The cpu reference backend: plain TypeScript over typed arrays, every op of `Backend`.
 *
 * It is the numeric truth the WebGPU and wasm kernels are tested against, so it favours clarity
 * over speed (matmul still uses a cache-friendly loop order). With `{ float64: true }` it stores
 * `f32` tensors as `Float64Array`, which gradient checks use to take central differences without
 * f32 rounding noise.
 *
 * @module
 */

import type {
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
import { assignStrided, BINARY, mapBinary, mapUnary, mapWhere, UNARY } from "./cpu/elementwise.ts";
import { matmul } from "./cpu/matmul.ts";
import { attention, attentionBackward } from "./cpu/attention.ts";
import { crossEntropy, crossEntropyBackward, reduce, softmax, topk } from "./cpu/reduce.ts";
import { gather, indexAdd, indexSelect, scatterAdd } from "./cpu/gather.ts";
import { rmsNorm, rmsNormBackward, swiglu, swigluBackward } from "./cpu/norm.ts";
import { rope } from "./cpu/rope.ts";
import { fp8Dequantize, fp8Matmul, fp8Quantize } from "./cpu/fp8.ts";
import { sizeOf } from "./cpu/_strided.ts";

/** A cpu storage: a typed array plus its dtype. */
export class CpuStorage implements Storage {
  /** The elements; `null` once released. */
  #data: HostArray | null;
  readonly dtype: DType;
  readonly size: number;

  constructor(dtype: DType, data: HostArray) {
    this.dtype = dtype;
    this.#data = data;
    this.size = data.length;
  }

  /** The backing array; throws if the storage was released. */
  get data(): HostArray {
    if (this.#data === null) throw new Error("Cannot use a released cpu storage");
    return this.#data;
  }

  /** Drop the array so later use fails loudly. */
  release(): void {
    this.#data = null;
  }
}

/** Options for {@linkcode CpuBackend}. */
export interface CpuBackendOptions {
  /**
   * Store `f32` tensors in `Float64Array` (for gradient checks).
   * @default {false}
   */
  float64?: boolean;
  /** Backend name, for subclasses that reuse these kernels. @default {"cpu"} */
  name?: string;
  /** Device description, for subclasses. */
  description?: string;
}

/**
 * The reference backend.
 *
 * @example Run a kernel directly
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { CpuBackend } from "./cpu.ts";
 * const cpu = new CpuBackend();
 * const x = cpu.upload("f32", [1, 2, 3, 4]);
 * const y = cpu.reduce("sum", x, 1, 4, 1);
 * deepStrictEqual(Array.from(cpu.readSync(y)), [10]);
 * ```
 */
export class CpuBackend implements Backend {
  readonly name: string;
  readonly description: string;
  readonly canReadSync = true;
  readonly float64: boolean;

  constructor(options: CpuBackendOptions = {}) {
    this.float64 = options.float64 ?? false;
    this.name = options.name ?? "cpu";
    this.description = options.description ??
      `cpu reference (TypeScript, ${this.float64 ? "float64" : "float32"})`;
  }

  #array(dtype: DType, size: number): HostArray {
    switch (dtype) {
      case "f32":
        return this.float64 ? new Float64Array(size) : new Float32Array(size);
      case "i32":
        return new Int32Array(size);
      case "u8":
        return new Uint8Array(size);
      default:
        throw new Error(`Cannot allocate unknown dtype '${dtype satisfies never}'`);
    }
  }

  /**
   * Allocate a zero-filled storage. Subclasses that keep storages elsewhere (the wasm backend's
   * shared heap) override this together with {@linkcode CpuBackend.release}.
   */
  allocate(dtype: DType, size: number): CpuStorage {
    return new CpuStorage(dtype, this.#array(dtype, size));
  }

  #new(dtype: DType, size: number): CpuStorage {
    return this.allocate(dtype, size);
  }

  #data(s: Storage): HostArray {
    if (!(s instanceof CpuStorage)) {
      throw new Error("Cannot use a storage from another backend on the cpu backend");
    }
    return s.data;
  }

  upload(dtype: DType, data: ArrayLike<number>): Storage {
    const s = this.#new(dtype, data.length);
    const arr = s.data;
    for (let i = 0; i < data.length; i++) arr[i] = data[i];
    return s;
  }

  fill(dtype: DType, size: number, value: number): Storage {
    const s = this.#new(dtype, size);
    s.data.fill(value);
    return s;
  }

  read(storage: Storage): Promise<HostArray> {
    return Promise.resolve(this.readSync(storage));
  }

  readSync(storage: Storage): HostArray {
    return this.#data(storage).slice();
  }

  release(storage: Storage): void {
    (storage as CpuStorage).release();
  }

  copy(x: View): Storage {
    const out = this.#new(x.storage.dtype, sizeOf(x.shape));
    mapUnary(this.#data(x.storage), x, out.data, UNARY.copy);
    return out;
  }

  assign(dst: View, src: View): void {
    assignStrided(this.#data(dst.storage), dst, this.#data(src.storage), src);
  }

  cast(x: View, dtype: DType): Storage {
    const out = this.#new(dtype, sizeOf(x.shape));
    const f = x.storage.dtype === "f32" && dtype !== "f32" ? Math.trunc : UNARY.copy;
    mapUnary(this.#data(x.storage), x, out.data, f);
    return out;
  }

  unary(op: UnaryOp, x: View): Storage {
    const out = this.#new(x.storage.dtype, sizeOf(x.shape));
    mapUnary(this.#data(x.storage), x, out.data, UNARY[op], op);
    return out;
  }

  binary(op: BinaryOp, a: View, b: View, shape: readonly number[]): Storage {
    const dtype = COMPARISON_OPS.has(op) ? "f32" : a.storage.dtype;
    const out = this.#new(dtype, sizeOf(shape));
    const f = dtype === "i32" && op === "div"
      ? (x: number, y: number) => Math.trunc(x / y)
      : BINARY[op];
    mapBinary(this.#data(a.storage), a, this.#data(b.storage), b, shape, out.data, f, op);
    return out;
  }

  where(cond: View, a: View, b: View, shape: readonly number[]): Storage {
    const out = this.#new(a.storage.dtype, sizeOf(shape));
    mapWhere(
      this.#data(cond.storage),
      cond,
      this.#data(a.storage),
      a,
      this.#data(b.storage),
      b,
      shape,
      out.data,
    );
    return out;
  }

  reduce(op: ReduceOp, x: Storage, outer: number, size: number, inner: number): Storage {
    const out = this.#new(op === "argmax" ? "i32" : x.dtype, outer * inner);
    reduce(op, this.#data(x), out.data, outer, size, inner);
    return out;
  }

  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    const out = this.#new("f32", spec.batch * spec.m * spec.n);
    matmul(this.#data(a), this.#data(b), out.data, spec);
    return out;
  }

  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage {
    const out = this.#new("f32", rows * cols);
    softmax(this.#data(x), out.data, rows, cols, log);
    return out;
  }

  crossEntropy(logits: Storage, targets: Storage, spec: CrossEntropySpec): CrossEntropyResult {
    const loss = this.#new("f32", spec.rows), lse = this.#new("f32", spec.rows);
    crossEntropy(this.#data(logits), this.#data(targets), loss.data, lse.data, spec);
    return { loss, lse };
  }

  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    lse: Storage,
    dloss: Storage,
    spec: CrossEntropySpec,
  ): Storage {
    const out = this.#new("f32", spec.rows * spec.cols);
    crossEntropyBackward(
      this.#data(logits),
      this.#data(targets),
      this.#data(lse),
      this.#data(dloss),
      out.data,
      spec,
    );
    return out;
  }

  indexSelect(x: Storage, index: Storage, outer: number, size: number, inner: number): Storage {
    const out = this.#new(x.dtype, outer * index.size * inner);
    indexSelect(this.#data(x), this.#data(index), out.data, outer, size, inner);
    return out;
  }

  indexAdd(index: Storage, src: Storage, outer: number, size: number, inner: number): Storage {
    const out = this.#new(src.dtype, outer * size * inner);
    indexAdd(this.#data(index), this.#data(src), out.data, outer, size, inner);
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
    const out = this.#new(x.dtype, outer * k * inner);
    gather(this.#data(x), this.#data(index), out.data, outer, size, inner, k);
    return out;
  }

  scatterAdd(
    index: Storage,
    src: Storage,
    outer: number,
    size: number,
    inner: number,
    k: number,
  ): Storage {
    const out = this.#new(src.dtype, outer * size * inner);
    scatterAdd(this.#data(index), this.#data(src), out.data, outer, size, inner, k);
    return out;
  }

  topk(x: Storage, rows: number, cols: number, k: number): TopKResult {
    const values = this.#new("f32", rows * k), indices = this.#new("i32", rows * k);
    topk(this.#data(x), values.data, indices.data, rows, cols, k);
    return { values, indices };
  }

  /** FP8 quantisation with online or given scales, see {@linkcode Backend.fp8Quantize}. */
  fp8Quantize(x: Storage, spec: Fp8QuantizeSpec, scales?: Storage): Fp8Storages {
    const q = fp8Quantize(this.#data(x), spec, scales && this.#data(scales));
    return { codes: this.upload("u8", q.codes), scales: scales ?? this.upload("f32", q.scales) };
  }

  /** FP8 dequantisation, see {@linkcode Backend.fp8Dequantize}. */
  fp8Dequantize(codes: Storage, scales: Storage, spec: Fp8BlockSpec): Storage {
    const out = this.#new("f32", spec.rows * spec.cols);
    fp8Dequantize(this.#data(codes), this.#data(scales), spec, out.data);
    return out;
  }

  /** The simulated FP8 GEMM, see {@linkcode Backend.fp8Matmul}. */
  fp8Matmul(a: Fp8Storages, b: Fp8Storages, spec: Fp8MatmulSpec): Storage {
    const out = this.#new("f32", spec.m * spec.n);
    const host = (q: Fp8Storages) => ({ codes: this.#data(q.codes), scales: this.#data(q.scales) });
    fp8Matmul(host(a), host(b), spec, out.data);
    return out;
  }

  /** Fused causal attention forward, see {@linkcode Backend.attention}. */
  attention(q: Storage, k: Storage, v: Storage, spec: AttentionSpec): AttentionResult {
    const out = this.#new("f32", spec.batch * spec.t * spec.dv);
    const lse = this.#new("f32", spec.batch * spec.t);
    attention(this.#data(q), this.#data(k), this.#data(v), out.data, lse.data, spec);
    return { out, lse };
  }

  /** Fused causal attention backward, see {@linkcode Backend.attentionBackward}. */
  attentionBackward(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    dout: Storage,
    spec: AttentionSpec,
  ): AttentionGrads {
    const kvRows = (spec.batch / spec.group) * spec.s;
    const dq = this.#new("f32", spec.batch * spec.t * spec.d);
    const dk = this.#new("f32", kvRows * spec.d), dv = this.#new("f32", kvRows * spec.dv);
    const grads = { dq: dq.data, dk: dk.data, dv: dv.data };
    const [qd, kd, vd] = [this.#data(q), this.#data(k), this.#data(v)];
    attentionBackward(qd, kd, vd, this.#data(out), this.#data(lse), this.#data(dout), grads, spec);
    return { dq, dk, dv };
  }

  /** Fused RMSNorm forward, see {@linkcode Backend.rmsNorm}. */
  rmsNorm(x: Storage, weight: Storage, spec: RmsNormSpec): RmsNormResult {
    const y = this.#new("f32", spec.rows * spec.cols), rstd = this.#new("f32", spec.rows);
    rmsNorm(this.#data(x), this.#data(weight), y.data, rstd.data, spec);
    return { y, rstd };
  }

  /** Fused RMSNorm backward, see {@linkcode Backend.rmsNormBackward}. */
  rmsNormBackward(
    x: Storage,
    weight: Storage,
    rstd: Storage,
    dy: Storage,
    spec: RmsNormSpec,
  ): RmsNormGrads {
    const dx = this.#new("f32", spec.rows * spec.cols), dweight = this.#new("f32", spec.cols);
    const [xs, ws, rs, ds] = [x, weight, rstd, dy].map((s) => this.#data(s));
    rmsNormBackward(xs, ws, rs, ds, dx.data, dweight.data, spec);
    return { dx, dweight };
  }

  /** Fused SwiGLU gate `silu(a) ⊙ b`, see {@linkcode Backend.swiglu}. */
  swiglu(a: Storage, b: Storage, n: number): Storage {
    const out = this.#new("f32", n);
    swiglu(this.#data(a), this.#data(b), out.data, n);
    return out;
  }

  /** Fused SwiGLU gate backward, see {@linkcode Backend.swigluBackward}. */
  swigluBackward(a: Storage, b: Storage, dout: Storage, n: number): SwigluGrads {
    const da = this.#new("f32", n), db = this.#new("f32", n);
    swigluBackward(this.#data(a), this.#data(b), this.#data(dout), da.data, db.data, n);
    return { da, db };
  }

  /** Fused rotary embedding, see {@linkcode Backend.rope}. */
  rope(x: Storage, cos: Storage, sin: Storage, spec: RopeSpec): Storage {
    const out = this.#new("f32", spec.rows * 2 * spec.half);
    rope(this.#data(x), this.#data(cos), this.#data(sin), out.data, spec);
    return out;
  }
}
