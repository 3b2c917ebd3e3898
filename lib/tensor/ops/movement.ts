/**
 * Movement ops: reshape, permute/transpose, slice, expand (views sharing storage where the layout
 * allows), and concat/split, squeeze/unsqueeze, contiguous (copies).
 *
 * @module
 */

import { isGradEnabled, record } from "../autograd.ts";
import {
  checkShape,
  contiguousStrides,
  formatShape,
  normalizeAxis,
  type Shape,
  shapeSize,
} from "../shape.ts";
import { Tensor } from "../tensor.ts";
import { broadcastView, checkSameBackend, sumToShape, wrap } from "./_util.ts";

/** A contiguous copy of `x` (or `x` itself if already contiguous from offset 0). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  return record(wrap(x, x.backend.copy(x.view), x.shape), "contiguous", [x], (dy) => [dy]);
}

/**
 * Reshape to `shape` (one dimension may be -1). A view when `x` is contiguous, else a copy.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { arange, reshape } from "../mod.ts";
 * deepStrictEqual(reshape(arange(6), [2, -1]).shape, [2, 3]);
 * ```
 */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const inferred = shape.filter((d) => d === -1).length;
  const known = shapeSize(shape.filter((d) => d !== -1));
  let target = [...shape];
  if (inferred > 1 || (inferred === 1 && (known === 0 || x.size % known !== 0))) {
    throw new Error(`Cannot reshape ${formatShape(x.shape)} to ${formatShape(shape)}`);
  }
  if (inferred === 1) target = shape.map((d) => (d === -1 ? x.size / known : d));
  checkShape(target, "reshape");
  if (shapeSize(target) !== x.size) {
    throw new Error(
      `Cannot reshape ${formatShape(x.shape)} (${x.size} elements) to ${formatShape(shape)} ` +
        `(${shapeSize(target)} elements)`,
    );
  }
  const base = contiguous(x);
  const out = Tensor.view(base, target, contiguousStrides(target), base.offset);
  return record(out, "reshape", [base], (dy) => [reshape(dy, base.shape)]);
}

/** Reorder dimensions: output dim `i` is input dim `axes[i]` (a view). */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const norm = axes.map((a) => normalizeAxis(a, x.rank, "permute"));
  if (norm.length !== x.rank || new Set(norm).size !== x.rank) {
    throw new Error(
      `Cannot permute shape ${formatShape(x.shape)} with axes [${axes.join(", ")}]: ` +
        `expected a permutation of ${x.rank} axes`,
    );
  }
  const out = Tensor.view(x, norm.map((a) => x.shape[a]), norm.map((a) => x.strides[a]), x.offset);
  const inverse = new Array<number>(x.rank);
  norm.forEach((a, i) => (inverse[a] = i));
  return record(out, "permute", [x], (dy) => [permute(dy, inverse)]);
}

/** Swap two dimensions (default: the last two) as a view. */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  if (x.rank < 2 && a === -2 && b === -1) {
    throw new Error(`Cannot transpose shape ${formatShape(x.shape)}: it has fewer than 2 dims`);
  }
  const axes = Array.from({ length: x.rank }, (_, i) => i);
  const i = normalizeAxis(a, x.rank, "transpose"), j = normalizeAxis(b, x.rank, "transpose");
  [axes[i], axes[j]] = [axes[j], axes[i]];
  return permute(x, axes);
}

/**
 * Elements `start ≤ i < end` (negative values count from the end) along `axis`, as a view.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { arange, slice } from "../mod.ts";
 * deepStrictEqual(Array.from(slice(arange(5), 0, 1, -1).dataSync()), [1, 2, 3]);
 * ```
 */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const ax = normalizeAxis(axis, x.rank, "slice");
  const n = x.shape[ax];
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  const s = clamp(start), e = Math.max(clamp(end ?? n), s);
  if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end))) {
    throw new Error(`Cannot slice axis ${axis} from ${start} to ${end}: bounds must be integers`);
  }
  const shape = [...x.shape];
  shape[ax] = e - s;
  const out = Tensor.view(x, shape, x.strides, x.offset + s * x.strides[ax]);
  return record(out, "slice", [x], (dy) => [padSlice(dy, x.shape, ax, s)]);
}

/** Zeros of `shape` with `g` written at `start` along `axis` (the transpose of slice). */
function padSlice(g: Tensor, shape: Shape, axis: number, start: number): Tensor {
  const out = wrap(g, g.backend.fill(g.dtype, shapeSize(shape), 0), shape);
  const strides = contiguousStrides(shape);
  const window = Tensor.view(out, g.shape, strides, start * strides[axis]);
  g.backend.assign(window.view, g.view);
  window.dispose();
  return out;
}

/** Broadcast to `shape` (a view with stride 0 on broadcast dims). */
export function expand(x: Tensor, shape: Shape): Tensor {
  checkShape(shape, "expand");
  const out = broadcastView(x, shape);
  return record(out, "expand", [x], (dy) => [sumToShape(dy, x.shape)]);
}

/** Insert a size-1 dimension at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const ax = normalizeAxis(axis, x.rank + 1, "unsqueeze");
  const shape = [...x.shape];
  shape.splice(ax, 0, 1);
  return reshape(x, shape);
}

/** Remove size-1 dimensions (all of them, or only `axis`). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const ax = normalizeAxis(axis, x.rank, "squeeze");
  if (x.shape[ax] !== 1) {
    throw new Error(`Cannot squeeze axis ${axis} of shape ${formatShape(x.shape)}: it is not 1`);
  }
  return reshape(x, x.shape.filter((_, i) => i !== ax));
}

/**
 * Join tensors along `axis`; all other dimensions must match.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { concat, tensor } from "../mod.ts";
 * const y = concat([tensor([[1, 2]]), tensor([[3, 4], [5, 6]])], 0);
 * deepStrictEqual(Array.from(y.dataSync()), [1, 2, 3, 4, 5, 6]);
 * ```
 */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error("Cannot concat an empty list of tensors");
  const first = tensors[0];
  checkSameBackend("concat", tensors);
  const ax = normalizeAxis(axis, first.rank, "concat");
  for (const t of tensors) {
    if (t.dtype !== first.dtype) {
      throw new TypeError(`Cannot concat dtypes '${first.dtype}' and '${t.dtype}'`);
    }
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(
        `Cannot concat shapes ${formatShape(first.shape)} and ${formatShape(t.shape)} ` +
          `along axis ${axis}`,
      );
    }
  }
  const shape = [...first.shape];
  shape[ax] = tensors.reduce((n, t) => n + t.shape[ax], 0);
  const out = wrap(first, first.backend.fill(first.dtype, shapeSize(shape), 0), shape);
  const strides = contiguousStrides(shape);
  let at = 0;
  for (const t of tensors) {
    const window = Tensor.view(out, t.shape, strides, at * strides[ax]);
    first.backend.assign(window.view, t.view);
    window.dispose();
    at += t.shape[ax];
  }
  const sizes = tensors.map((t) => t.shape[ax]);
  return record(out, "concat", tensors, (dy) => split(dy, sizes, ax));
}

/** Split along `axis` into pieces of the given sizes, or into `count` equal pieces (views). */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const ax = normalizeAxis(axis, x.rank, "split");
  const n = x.shape[ax];
  let list: readonly number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes <= 0 || n % sizes !== 0) {
      throw new Error(`Cannot split axis ${axis} of size ${n} into ${sizes} equal parts`);
    }
    list = new Array<number>(sizes).fill(n / sizes);
  } else {
    list = sizes;
  }
  if (list.some((s) => !Number.isInteger(s) || s < 0) || list.reduce((a, b) => a + b, 0) !== n) {
    throw new Error(
      `Cannot split axis ${axis} of size ${n} into sizes [${
        list.join(", ")
      }]: they must sum to ${n}`,
    );
  }
  if (!(isGradEnabled() && x.requiresGrad) || list.length < 2) {
    let at = 0;
    return list.map((s) => {
      const part = slice(x, ax, at, at + s);
      at += s;
      return part;
    });
  }
  // Recording: one gradient buffer for all the parts instead of a zero-padded copy of x per
  // part (what separate slices' backwards make, then sum). The parts are views of a private
  // `hub` (an identity of x that nothing else reads); the first part whose backward runs
  // allocates the zeroed buffer and returns it as the hub's gradient, every part writes its
  // window into it, and the hub's backward — after all of theirs — passes it on to x.
  let buffer: Tensor | null = null;
  const hub = record(Tensor.view(x, x.shape, x.strides, x.offset), "split", [x], (dy) => {
    buffer = null; // this backward pass is done with it
    return [dy];
  });
  const strides = contiguousStrides(x.shape);
  let at = 0;
  return list.map((s) => {
    const start = at;
    at += s;
    const shape = [...x.shape];
    shape[ax] = s;
    const part = Tensor.view(hub, shape, x.strides, x.offset + start * x.strides[ax]);
    return record(part, "split", [hub], (dy) => {
      const first = buffer === null;
      const grad: Tensor = buffer ?? wrap(dy, dy.backend.fill(dy.dtype, x.size, 0), x.shape);
      buffer = grad;
      const window = Tensor.view(grad, dy.shape, strides, start * strides[ax]);
      dy.backend.assign(window.view, dy.view);
      window.dispose();
      return [first ? grad : null];
    });
  });
}
