/**
 * Strided iteration shared by the cpu elementwise kernels.
 *
 * `stridedOffsets(shape, view)` lists, in row-major output order, the storage offset of every
 * element of a strided view. Kernels then run one flat loop over the output, so the op's inner
 * loop contains only the math. Contiguous views skip the table entirely.
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

/**
 * Storage offsets of every element of `view` (iterated over `shape`, which must match the view's
 * shape), or `null` when the view is contiguous and element `i` is simply at `view.offset + i`.
 */
export function stridedOffsets(shape: readonly number[], view: View): Int32Array | null {
  if (isContiguous(shape, view.strides)) return null;
  const n = sizeOf(shape);
  const out = new Int32Array(n);
  const rank = shape.length;
  const strides = view.strides;
  const inner = rank === 0 ? 1 : shape[rank - 1];
  const innerStride = rank === 0 ? 0 : strides[rank - 1];
  const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  let base = view.offset;
  let p = 0;
  while (p < n) {
    for (let j = 0; j < inner; j++) out[p++] = base + j * innerStride;
    for (let d = rank - 2; d >= 0; d--) {
      index[d]++;
      base += strides[d];
      if (index[d] < shape[d]) break;
      base -= strides[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}
