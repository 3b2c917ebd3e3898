/**
 * `Tensor`: a shape, a dtype and a strided view onto a backend storage, plus its autograd state
 * and the backward engine.
 *
 * Views (reshape of a contiguous tensor, transpose, slice, expand) share their base's storage;
 * the storage is released when the last tensor using it is disposed (explicitly, by
 * {@linkcode tidy}, or when garbage collected).
 *
 * @module
 */

import type { Backend, HostArray, Storage, View } from "../backend/backend.ts";
import type { DType } from "./dtype.ts";
import { type Node, noGrad } from "./autograd.ts";
import { contiguousStrides, formatShape, type Shape, shapeSize } from "./shape.ts";

/** A storage shared by a tensor and its views, released when the last one lets go. */
class SharedStorage {
  refs = 0;
  constructor(readonly backend: Backend, readonly storage: Storage) {}
  retain(): void {
    this.refs++;
  }
  releaseRef(): void {
    if (--this.refs === 0) this.backend.release(this.storage);
  }
}

/** Storages of tensors that were garbage collected without being disposed. */
const finalizer = new FinalizationRegistry<SharedStorage>((shared) => shared.releaseRef());

/** Tensors created inside each active {@linkcode tidy} scope, innermost last. */
const scopes: Set<Tensor>[] = [];

/** Nested arrays of numbers, as returned by {@linkcode Tensor.toList}. */
export type NestedArray = number | NestedArray[];

/**
 * An n-dimensional array on a backend, with reverse-mode autograd.
 *
 * Create tensors with `tensor()`, `zeros()`, `randn()` etc. from `lib/tensor/mod.ts`.
 *
 * @example Gradient of a sum of squares
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { mul, sum, tensor } from "./mod.ts";
 * const x = tensor([1, 2, 3], { requiresGrad: true });
 * sum(mul(x, x)).backward();
 * deepStrictEqual(Array.from(x.grad!.dataSync()), [2, 4, 6]);
 * ```
 */
export class Tensor {
  /** The backend holding the storage. */
  readonly backend: Backend;
  /** Element type. */
  readonly dtype: DType;
  /** Dimensions. */
  readonly shape: Shape;
  /** Storage step per dimension, in elements (0 for broadcast dims). */
  readonly strides: Shape;
  /** Storage index of element `[0, 0, …]`. */
  readonly offset: number;
  /** Number of elements. */
  readonly size: number;
  /** Whether gradients flow to this tensor. Set on leaves with `requiresGrad: true`. */
  requiresGrad = false;
  /** Accumulated gradient (leaves only), same shape as the tensor. */
  grad: Tensor | null = null;
  /** The op that produced this tensor, or `null` for a leaf. */
  node: Node | null = null;
  /** Optional label, shown in errors and `toString()`. */
  name?: string;
  #shared: SharedStorage | null;
  #kept = false;

  /** Internal (its first argument's type is private): use the factory functions. */
  constructor(
    shared: SharedStorage,
    dtype: DType,
    shape: Shape,
    strides: Shape,
    offset: number,
  ) {
    this.backend = shared.backend;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.offset = offset;
    this.size = shapeSize(shape);
    this.#shared = shared;
    shared.retain();
    finalizer.register(this, shared, this);
    scopes.at(-1)?.add(this);
  }

  /** A contiguous tensor owning a fresh storage of `shape`. */
  static fromStorage(backend: Backend, storage: Storage, shape: Shape): Tensor {
    if (storage.size !== shapeSize(shape)) {
      throw new Error(
        `Cannot wrap a storage of ${storage.size} elements as shape ${formatShape(shape)}`,
      );
    }
    return new Tensor(
      new SharedStorage(backend, storage),
      storage.dtype,
      shape,
      contiguousStrides(shape),
      0,
    );
  }

  /** A view of `base`'s storage with another shape, strides and offset (no copy). */
  static view(base: Tensor, shape: Shape, strides: Shape, offset: number): Tensor {
    return new Tensor(base.#live(), base.dtype, shape, strides, offset);
  }

  #live(): SharedStorage {
    if (this.#shared === null) {
      throw new Error(
        `Cannot use a disposed tensor${this.name ? ` '${this.name}'` : ""} of shape ${
          formatShape(this.shape)
        }`,
      );
    }
    return this.#shared;
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** The backend storage (shared with views). */
  get storage(): Storage {
    return this.#live().storage;
  }

  /** Whether this tensor has been disposed. */
  get isDisposed(): boolean {
    return this.#shared === null;
  }

  /** The strided view the backend kernels take. */
  get view(): View {
    return { storage: this.storage, shape: this.shape, strides: this.strides, offset: this.offset };
  }

  /** Whether the elements are laid out row-major and densely from `offset`. */
  get isContiguous(): boolean {
    let expected = 1;
    for (let d = this.rank - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.strides[d] !== expected) return false;
      expected *= this.shape[d];
    }
    return true;
  }

  /**
   * A storage holding exactly this tensor's elements, row-major from index 0: the tensor's own
   * when it already is, else a copy (which the caller must release or wrap).
   */
  contiguousStorage(): { storage: Storage; owned: boolean } {
    const storage = this.storage;
    if (this.isContiguous && this.offset === 0 && storage.size === this.size) {
      return { storage, owned: false };
    }
    return { storage: this.backend.copy(this.view), owned: true };
  }

  /** Copy the elements to the host, row-major. */
  async data(): Promise<HostArray> {
    const { storage, owned } = this.contiguousStorage();
    try {
      return await this.backend.read(storage);
    } finally {
      if (owned) this.backend.release(storage);
    }
  }

  /** Copy the elements to the host synchronously (cpu backends only). */
  dataSync(): HostArray {
    if (!this.backend.canReadSync) {
      throw new Error(
        `Cannot read a tensor synchronously on the '${this.backend.name}' backend: use await t.data()`,
      );
    }
    const { storage, owned } = this.contiguousStorage();
    try {
      return this.backend.readSync(storage);
    } finally {
      if (owned) this.backend.release(storage);
    }
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    this.#checkScalar();
    return (await this.data())[0];
  }

  /** The value of a one-element tensor, synchronously (cpu backends only). */
  itemSync(): number {
    this.#checkScalar();
    return this.dataSync()[0];
  }

  #checkScalar(): void {
    if (this.size !== 1) {
      throw new Error(`Cannot take item() of a tensor of shape ${formatShape(this.shape)}`);
    }
  }

  /** The elements as nested arrays (a number for a scalar). */
  async toList(): Promise<NestedArray> {
    return nest(await this.data(), this.shape);
  }

  /** A view sharing this tensor's storage, cut from the graph. */
  detach(): Tensor {
    return Tensor.view(this, this.shape, this.strides, this.offset);
  }

  /** Set `requiresGrad` on a leaf and return it. */
  setRequiresGrad(value = true): this {
    if (this.node !== null) {
      throw new Error(
        `Cannot set requiresGrad on the output of '${this.node.op}': only leaves can be set; use detach()`,
      );
    }
    if (value && this.dtype !== "f32") {
      throw new TypeError(
        `Cannot require grad for a tensor of dtype '${this.dtype}': expected 'f32'`,
      );
    }
    this.requiresGrad = value;
    return this;
  }

  /**
   * Overwrite this tensor's elements in place with `value` (same shape and dtype), e.g. for
   * optimizer updates. Not recorded by autograd: do not assign to a tensor a pending backward
   * still needs.
   */
  assign(value: Tensor): void {
    if (value.backend !== this.backend) {
      throw new Error(
        `Cannot assign a tensor from backend '${value.backend.name}' to one on '${this.backend.name}'`,
      );
    }
    if (value.dtype !== this.dtype || value.shape.join() !== this.shape.join()) {
      throw new Error(
        `Cannot assign ${value} to ${this}: shape and dtype must match`,
      );
    }
    if (value.storage === this.storage) {
      const copy = this.backend.copy(value.view);
      const shape = this.shape, strides = contiguousStrides(shape);
      this.backend.assign(this.view, { storage: copy, shape, strides, offset: 0 });
      this.backend.release(copy);
      return;
    }
    this.backend.assign(this.view, value.view);
  }

  /** Exempt this tensor from disposal by enclosing {@linkcode tidy} scopes. */
  keep(): this {
    this.#kept = true;
    for (const scope of scopes) scope.delete(this);
    return this;
  }

  /** Release this tensor's hold on its storage (and its gradient's). Idempotent. */
  dispose(): void {
    if (this.#shared === null) return;
    finalizer.unregister(this);
    const shared = this.#shared;
    this.#shared = null;
    shared.releaseRef();
    this.node = null;
    this.grad?.dispose();
    this.grad = null;
  }

  /**
   * Backpropagate from this tensor: add `d this / d leaf` (times `grad`, default 1 for a scalar)
   * into `.grad` of every leaf with `requiresGrad`. Gradients accumulate across calls.
   */
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }

  /** Short description: shape, dtype, backend. */
  toString(): string {
    const label = this.name ? ` '${this.name}'` : "";
    return `Tensor${label}(${formatShape(this.shape)}, ${this.dtype}, ${this.backend.name})`;
  }

  /** Internal: whether tidy may dispose this tensor. */
  get isKept(): boolean {
    return this.#kept;
  }
}

function nest(data: HostArray, shape: Shape): NestedArray {
  if (shape.length === 0) return data[0];
  let pos = 0;
  const build = (d: number): NestedArray[] => {
    const out: NestedArray[] = [];
    for (let i = 0; i < shape[d]; i++) {
      out.push(d === shape.length - 1 ? data[pos++] : build(d + 1));
    }
    return out;
  };
  return build(0);
}

/** Sum of two gradients of the same shape, computed directly on the backend (no graph). */
function addGrads(a: Tensor, b: Tensor): Tensor {
  const storage = a.backend.binary("add", a.view, b.view, a.shape);
  return Tensor.fromStorage(a.backend, storage, a.shape);
}

function checkGradShape(g: Tensor, t: Tensor, op: string): void {
  if (g.shape.length !== t.shape.length || g.shape.some((d, i) => d !== t.shape[i])) {
    throw new Error(
      `Backward of '${op}' returned a gradient of shape ${formatShape(g.shape)} ` +
        `for an input of shape ${formatShape(t.shape)}`,
    );
  }
}

function runBackward(root: Tensor, seed?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error(
      "Cannot call backward() on a tensor that does not require grad: no input had " +
        "requiresGrad = true, or it was computed under noGrad()",
    );
  }
  if (seed === undefined && root.size !== 1) {
    throw new Error(
      `Cannot call backward() without a gradient on a tensor of shape ${
        formatShape(root.shape)
      }: ` +
        "reduce it to a scalar first or pass a gradient of the same shape",
    );
  }
  // Reverse topological order by iterative depth-first search.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, expanded] = stack.pop() as [Tensor, boolean];
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const input of t.node?.inputs ?? []) {
      if (input.requiresGrad && !seen.has(input)) stack.push([input, false]);
    }
  }
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    if (seed !== undefined && seed.shape.join() !== root.shape.join()) {
      throw new Error(
        `Cannot call backward() with a gradient of shape ${formatShape(seed.shape)} ` +
          `on a tensor of shape ${formatShape(root.shape)}`,
      );
    }
    grads.set(
      root,
      seed ?? Tensor.fromStorage(root.backend, root.backend.fill("f32", 1, 1), root.shape),
    );
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (g === undefined) continue;
      if (t.node === null) {
        // A leaf: accumulate into .grad, which outlives any tidy scope. A fresh view keeps the
        // leaf's gradient independent of tensors the graph may share it with.
        const previous = t.grad;
        t.grad = (previous === null ? g.detach() : addGrads(previous, g)).keep();
        previous?.dispose();
        continue;
      }
      const inputGrads = t.node.backward(g);
      t.node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (gi === null || gi === undefined || !input.requiresGrad) return;
        checkGradShape(gi, input, t.node?.op ?? "?");
        const prev = grads.get(input);
        grads.set(input, prev === undefined ? gi : addGrads(prev, gi));
      });
    }
  });
}

/** Collect every tensor inside a (nested) result value. */
function collectTensors(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) {
    out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, out);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, out);
  } else if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) collectTensors(v, out);
  }
}

/**
 * A {@linkcode tidy} scope that spans several synchronous segments — for code that awaits host
 * reads between them (`lib/nn/steps.ts`): `run()` each segment inside it, then `end()` with the
 * result to dispose every other tensor the segments created.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, mul, tensor, TidyScope } from "./mod.ts";
 * const scope = new TidyScope();
 * const x = tensor([1, 2]);
 * const t = scope.run(() => mul(x, x));
 * const y = scope.run(() => add(t, x));
 * scope.end(y);
 * strictEqual(t.isDisposed, true);
 * strictEqual(y.isDisposed, false);
 * ```
 */
export class TidyScope {
  #tensors = new Set<Tensor>();
  #ended = false;

  /** Run one synchronous segment; tensors it creates belong to this scope. */
  run<T>(fn: () => T): T {
    if (this.#ended) throw new Error("Cannot run in a TidyScope that has ended");
    scopes.push(this.#tensors);
    try {
      return fn();
    } finally {
      scopes.pop();
    }
  }

  /** Dispose every tensor of the scope except those inside `result` and kept ones. */
  end(result: unknown): void {
    this.#ended = true;
    const survivors = new Set<Tensor>();
    collectTensors(result, survivors);
    for (const t of this.#tensors) {
      if (survivors.has(t) || t.isKept) continue;
      t.dispose();
    }
    const parent = scopes.at(-1);
    if (parent) { for (const t of survivors) if (this.#tensors.has(t)) parent.add(t); }
  }
}

/**
 * Run `fn` and dispose every tensor it created except those it returns (anywhere inside the
 * returned value) and those marked with `keep()`. Gradients written to leaves are kept.
 *
 * @example Intermediates are freed, the result survives
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { add, mul, tensor, tidy } from "./mod.ts";
 * const x = tensor([1, 2]);
 * let tmp: unknown;
 * const y = tidy(() => {
 *   const t = mul(x, x);
 *   tmp = t;
 *   return add(t, x);
 * });
 * strictEqual((tmp as { isDisposed: boolean }).isDisposed, true);
 * strictEqual(y.isDisposed, false);
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) {
    throw new Error(
      "Cannot tidy an async function: tidy() tracks tensors of synchronous code only",
    );
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of scope) {
    if (survivors.has(t) || t.isKept) continue;
    t.dispose();
  }
  const parent = scopes.at(-1);
  if (parent) { for (const t of survivors) if (scope.has(t)) parent.add(t); }
  return result;
}
