/**
 * Creating tensors: from host data, constants, ranges, and seeded random initialisers.
 *
 * @module
 */

import type { Backend } from "../../backend/backend.ts";
import { getBackend } from "../../backend/mod.ts";
import { type DType, parseDType } from "../dtype.ts";
import type { Rng } from "../random.ts";
import { checkShape, formatShape, type Shape, shapeSize } from "../shape.ts";
import { Tensor } from "../tensor.ts";

/** Options for creating a tensor. */
export interface TensorOptions {
  /**
   * Element type.
   * @default {"f32"}
   */
  dtype?: DType;
  /** Backend to create it on (default: the current backend, see `setBackend`). */
  backend?: Backend;
  /**
   * Make it a leaf that accumulates gradients.
   * @default {false}
   */
  requiresGrad?: boolean;
  /** Shape for flat data (default: inferred from nesting). */
  shape?: Shape;
}

/** Nested arrays of numbers, or a typed array. */
export type TensorData = number | readonly TensorData[] | ArrayLike<number>;

function inferShape(data: TensorData): number[] {
  const shape: number[] = [];
  let level: TensorData = data;
  while (typeof level !== "number") {
    const arr = level as ArrayLike<TensorData>;
    shape.push(arr.length);
    if (arr.length === 0) break;
    level = arr[0];
  }
  return shape;
}

function flatten(data: TensorData, shape: Shape): number[] {
  const out: number[] = [];
  const walk = (x: TensorData, d: number) => {
    if (d === shape.length) {
      if (typeof x !== "number") {
        throw new Error("Cannot create a tensor from ragged nested arrays");
      }
      out.push(x);
      return;
    }
    const arr = x as ArrayLike<TensorData>;
    if (typeof x === "number" || arr.length !== shape[d]) {
      throw new Error(
        `Cannot create a tensor from ragged nested arrays: expected length ${
          shape[d]
        } at depth ${d}`,
      );
    }
    for (let i = 0; i < arr.length; i++) walk(arr[i], d + 1);
  };
  walk(data, 0);
  return out;
}

function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad) t.setRequiresGrad(true);
  return t;
}

/**
 * A tensor from nested arrays, a typed array or a number.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "../mod.ts";
 * const t = tensor([[1, 2, 3], [4, 5, 6]]);
 * deepStrictEqual(t.shape, [2, 3]);
 * deepStrictEqual(tensor([1, 2, 3, 4], { shape: [2, 2], dtype: "i32" }).dtype, "i32");
 * ```
 */
export function tensor(data: TensorData, options: TensorOptions = {}): Tensor {
  const dtype = parseDType(options.dtype ?? "f32");
  const backend = options.backend ?? getBackend();
  let flat: ArrayLike<number>;
  let shape: Shape;
  const isFlatTyped = ArrayBuffer.isView(data);
  if (options.shape !== undefined) {
    checkShape(options.shape, "create a tensor");
    flat = isFlatTyped ? data as ArrayLike<number> : flatten(data, inferShape(data));
    shape = options.shape;
    if (flat.length !== shapeSize(shape)) {
      throw new Error(
        `Cannot create a tensor of shape ${formatShape(shape)} from ${flat.length} values`,
      );
    }
  } else {
    shape = isFlatTyped ? [(data as ArrayLike<number>).length] : inferShape(data);
    flat = isFlatTyped ? data as ArrayLike<number> : flatten(data, shape);
  }
  return finish(Tensor.fromStorage(backend, backend.upload(dtype, flat), shape), options);
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  checkShape(shape, "create a tensor");
  const backend = options.backend ?? getBackend();
  const dtype = parseDType(options.dtype ?? "f32");
  return finish(
    Tensor.fromStorage(backend, backend.fill(dtype, shapeSize(shape), value), shape),
    options,
  );
}

/** Zeros of `shape`. */
export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}

/** Ones of `shape`. */
export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** Zeros shaped and placed like `t`. */
export function zerosLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, backend: t.backend, ...options });
}

/** `[start, start + step, …]` below `end` (`arange(n)` counts `0 … n-1`). */
export function arange(startOrEnd: number, end?: number, options: ArangeOptions = {}): Tensor {
  const [start, stop] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  const step = options.step ?? 1;
  if (step === 0 || !Number.isFinite(step)) {
    throw new Error(`Cannot arange with step ${step}: expected a finite nonzero number`);
  }
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const data = Array.from({ length: n }, (_, i) => start + i * step);
  return tensor(data, { ...options, shape: [n] });
}

/** Options for {@linkcode arange}. */
export interface ArangeOptions extends TensorOptions {
  /**
   * Increment.
   * @default {1}
   */
  step?: number;
}

/** Options for the random initialisers. */
export interface RandomOptions extends TensorOptions {
  /** The generator; its state advances by the number of samples drawn. */
  rng: Rng;
}

function randomTensor(shape: Shape, options: RandomOptions, draw: () => number): Tensor {
  checkShape(shape, "create a random tensor");
  const n = shapeSize(shape);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = draw();
  return tensor(data, { ...options, shape, dtype: "f32" });
}

/**
 * Normal samples `N(mean, std²)`.
 *
 * @example Same seed, same weights
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../mod.ts";
 * const a = randn([3], { rng: new Rng(7) }), b = randn([3], { rng: new Rng(7) });
 * deepStrictEqual(a.dataSync(), b.dataSync());
 * ```
 */
export function randn(
  shape: Shape,
  options: RandomOptions & { mean?: number; std?: number },
): Tensor {
  const { rng, mean = 0, std = 1 } = options;
  return randomTensor(shape, options, () => rng.normal(mean, std));
}

/** Uniform samples in `[low, high)`. */
export function rand(
  shape: Shape,
  options: RandomOptions & { low?: number; high?: number },
): Tensor {
  const { rng, low = 0, high = 1 } = options;
  return randomTensor(shape, options, () => rng.uniform(low, high));
}

/** Normal samples truncated to `[a, b]` (absolute bounds, as `torch.nn.init.trunc_normal_`). */
export function truncNormal(
  shape: Shape,
  options: RandomOptions & { mean?: number; std?: number; a?: number; b?: number },
): Tensor {
  const { rng, mean = 0, std = 1, a = -2, b = 2 } = options;
  return randomTensor(shape, options, () => rng.truncatedNormal(mean, std, a, b));
}
