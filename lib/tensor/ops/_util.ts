/**
 * Graph-free building blocks shared by the op families: wrapping kernel results, turning numbers
 * into tensors, broadcast views, and the raw reduction that backward rules use to undo
 * broadcasting (`sumToShape`).
 *
 * @module
 */

import type { ReduceOp, Storage } from "../../backend/backend.ts";
import type { DType } from "../dtype.ts";
import { contiguousStrides, formatShape, type Shape, shapeSize } from "../shape.ts";
import { Tensor } from "../tensor.ts";

/** A tensor, or a number broadcast as a scalar of the other operand's dtype. */
export type TensorLike = Tensor | number;

/** Wrap a fresh kernel result as a contiguous tensor. */
export function wrap(like: Tensor, storage: Storage, shape: Shape): Tensor {
  return Tensor.fromStorage(like.backend, storage, shape);
}

/** Throw unless every tensor lives on the same backend as the first. */
export function checkSameBackend(op: string, tensors: readonly Tensor[]): void {
  const backend = tensors[0].backend;
  for (const t of tensors) {
    if (t.backend !== backend) {
      throw new Error(
        `Cannot ${op} tensors on different backends ('${backend.name}' and '${t.backend.name}')`,
      );
    }
  }
}

/** A scalar tensor of `dtype` on `like`'s backend. */
export function scalarLike(like: Tensor, value: number, dtype: DType = like.dtype): Tensor {
  return Tensor.fromStorage(like.backend, like.backend.fill(dtype, 1, value), []);
}

/** Turn numbers into scalars matching the tensor operand. */
export function asTensors(a: TensorLike, b: TensorLike, op: string): [Tensor, Tensor] {
  if (a instanceof Tensor && b instanceof Tensor) {
    checkSameBackend(op, [a, b]);
    return [a, b];
  }
  if (a instanceof Tensor) return [a, scalarLike(a, b as number)];
  if (b instanceof Tensor) return [scalarLike(b, a), b];
  throw new TypeError(`Cannot ${op} two numbers: at least one operand must be a tensor`);
}

/** A view of `t` broadcast to `shape` (stride 0 on new and size-1 dims); no copy. */
export function broadcastView(t: Tensor, shape: Shape): Tensor {
  const lead = shape.length - t.rank;
  if (lead < 0) {
    throw new Error(`Cannot broadcast shape ${formatShape(t.shape)} to ${formatShape(shape)}`);
  }
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const own = t.shape[i - lead];
    if (own === d) return own === 1 ? 0 : t.strides[i - lead];
    if (own === 1) return 0;
    throw new Error(`Cannot broadcast shape ${formatShape(t.shape)} to ${formatShape(shape)}`);
  });
  return Tensor.view(t, shape, strides, t.offset);
}

/** Whether two shapes are equal. */
export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Reduce `x` over sorted, distinct `axes` without recording a graph. Returns the result with the
 * reduced axes removed. Adjacent axes reduce in place; others are first permuted to the end.
 */
export function reduceRaw(op: ReduceOp, x: Tensor, axes: readonly number[]): Tensor {
  const keptShape = x.shape.filter((_, i) => !axes.includes(i));
  if (axes.length === 0) {
    return wrap(x, x.backend.copy(x.view), x.shape);
  }
  const adjacent = axes.every((a, i) => i === 0 || a === axes[i - 1] + 1);
  let source = x;
  let outer: number, size: number, inner: number;
  if (adjacent) {
    outer = shapeSize(x.shape.slice(0, axes[0]));
    size = shapeSize(axes.map((a) => x.shape[a]));
    inner = shapeSize(x.shape.slice(axes[axes.length - 1] + 1));
  } else {
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const order = [...kept, ...axes];
    source = Tensor.view(x, order.map((i) => x.shape[i]), order.map((i) => x.strides[i]), x.offset);
    outer = shapeSize(keptShape);
    size = shapeSize(axes.map((a) => x.shape[a]));
    inner = 1;
  }
  const { storage, owned } = source.contiguousStorage();
  try {
    return wrap(x, x.backend.reduce(op, storage, outer, size, inner), keptShape);
  } finally {
    if (owned) x.backend.release(storage);
    if (source !== x) source.dispose();
  }
}

/** Sum a broadcast gradient back down to `shape` (graph-free; for backward rules). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const reduced = reduceRaw("sum", g, axes);
  return Tensor.view(reduced, shape, contiguousStrides(shape), 0);
}
