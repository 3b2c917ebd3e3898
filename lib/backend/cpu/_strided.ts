/**
 * Strided iteration shared by the cpu elementwise kernels.
 *
 * `forEachRun(shape, views, fn)` walks the row-major elements of `shape` as runs along the last
 * dimension: for each run it calls `fn(p, len, offsets)` with the output position `p`, the run
 * length, and each view's storage offset at the start of the run (a view's step inside the run
 * is its last stride). Dimensions that are contiguous in every view are merged first, so a
 * contiguous tensor — or one plus a broadcast scalar — is a single run and the kernel's inner
 * loop contains only the math.
 *
 * @module
 */

import type { View } from "../backend.ts";

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Whether the view walks its storage contiguously in row-major order from `offset`. */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** Drop size-1 dims and merge neighbours that are contiguous in every view. */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, v) => outStrides[v][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, v) => (outStrides[v][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, v) => outStrides[v].push(s[d]));
    }
  }
  if (outShape.length === 0) {
    outShape.push(1);
    outStrides.forEach((s) => s.push(0));
  }
  return { shape: outShape, strides: outStrides };
}

/** A run visitor: output position, run length, per-view start offsets and per-view steps. */
export type RunFn = (p: number, len: number, offsets: Int32Array, steps: Int32Array) => void;

/** Visit the elements of `shape` read through `views` as runs along the last dimension. */
export function forEachRun(shape: readonly number[], views: readonly View[], fn: RunFn): void {
  const n = sizeOf(shape);
  if (n === 0) return;
  const c = coalesce(shape, views.map((v) => v.strides));
  const rank = c.shape.length, nv = views.length;
  const inner = c.shape[rank - 1];
  const steps = Int32Array.from(c.strides.map((s) => s[rank - 1]));
  const offsets = Int32Array.from(views.map((v) => v.offset));
  const index = new Int32Array(Math.max(rank - 1, 0));
  for (let p = 0; p < n; p += inner) {
    fn(p, inner, offsets, steps);
    for (let d = rank - 2; d >= 0; d--) {
      index[d]++;
      for (let v = 0; v < nv; v++) offsets[v] += c.strides[v][d];
      if (index[d] < c.shape[d]) break;
      for (let v = 0; v < nv; v++) offsets[v] -= c.strides[v][d] * c.shape[d];
      index[d] = 0;
    }
  }
}
