/**
 * Reductions over axes: sum, mean, max, min (values), argmax (indices).
 *
 * `max`/`min` split the gradient evenly between tied extrema (as `torch.amax`).
 *
 * @module
 */

import type { ReduceOp } from "../../backend/backend.ts";
import { record, recordNonDifferentiable } from "../autograd.ts";
import { checkDType } from "../dtype.ts";
import { normalizeAxes, normalizeAxis, shapeSize } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { reduceRaw } from "./_util.ts";
import { div, eq, mul } from "./elementwise.ts";
import { expand, reshape } from "./movement.ts";

/** Options for reductions. */
export interface ReduceOptions {
  /**
   * Keep reduced axes as size 1.
   * @default {false}
   */
  keepDims?: boolean;
}

/** Axes given as one axis, a list, or all (undefined). */
export type Axes = number | readonly number[] | undefined;

function keptShape(x: Tensor, axes: readonly number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reduceWith(op: ReduceOp, x: Tensor, axes: readonly number[], keepDims: boolean): Tensor {
  const raw = reduceRaw(op, x, axes);
  return keepDims ? reshape(raw, keptShape(x, axes)) : raw;
}

/** Broadcast a reduced gradient back over the reduced axes. */
function spread(dy: Tensor, x: Tensor, axes: readonly number[]): Tensor {
  return expand(reshape(dy, keptShape(x, axes)), x.shape);
}

/**
 * Sum over `axes` (default: all).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { sum, tensor } from "../mod.ts";
 * deepStrictEqual(Array.from(sum(tensor([[1, 2], [3, 4]]), 0).dataSync()), [4, 6]);
 * ```
 */
export function sum(x: Tensor, axes?: Axes, options: ReduceOptions = {}): Tensor {
  checkDType(x.dtype, ["f32", "i32"], "sum");
  const ax = normalizeAxes(axes, x.rank, "sum");
  const out = reduceWith("sum", x, ax, options.keepDims ?? false);
  return record(out, "sum", [x], (dy) => [spread(dy, x, ax)]);
}

/** Mean over `axes` (default: all). */
export function mean(x: Tensor, axes?: Axes, options: ReduceOptions = {}): Tensor {
  checkDType(x.dtype, ["f32"], "take the mean of");
  const ax = normalizeAxes(axes, x.rank, "mean");
  const count = shapeSize(ax.map((a) => x.shape[a]));
  return div(sum(x, ax, options), count);
}

function extremum(op: "max" | "min", x: Tensor, axes: Axes, options: ReduceOptions): Tensor {
  checkDType(x.dtype, ["f32"], `take the ${op} of`);
  const ax = normalizeAxes(axes, x.rank, op);
  const out = reduceWith(op, x, ax, options.keepDims ?? false);
  return record(out, op, [x], (dy) => {
    const hit = eq(x, spread(out, x, ax));
    const share = div(hit, spread(reduceRaw("sum", hit, ax), x, ax));
    return [mul(spread(dy, x, ax), share)];
  });
}

/** Maximum over `axes` (default: all); tied maxima share the gradient. */
export function max(x: Tensor, axes?: Axes, options: ReduceOptions = {}): Tensor {
  return extremum("max", x, axes, options);
}

/** Minimum over `axes` (default: all); tied minima share the gradient. */
export function min(x: Tensor, axes?: Axes, options: ReduceOptions = {}): Tensor {
  return extremum("min", x, axes, options);
}

/** Index (`i32`) of the first maximum along `axis`; not differentiable. */
export function argmax(x: Tensor, axis = -1, options: ReduceOptions = {}): Tensor {
  checkDType(x.dtype, ["f32"], "take the argmax of");
  const ax = normalizeAxis(axis, x.rank, "argmax");
  return recordNonDifferentiable(
    reduceWith("argmax", x, [ax], options.keepDims ?? false),
    "argmax",
    [
      x,
    ],
  );
}
