/**
 * Reference index kernels: `indexSelect` / `indexAdd` (embedding lookup and its gradient, one
 * index list for the whole middle axis) and `gather` / `scatterAdd` (an index per element,
 * torch.gather semantics along the middle axis of `[outer, size, inner]`).
 *
 * Out-of-range indices throw a `RangeError` naming the index, its position and the valid range.
 *
 * @module
 */

import type { HostArray } from "../backend.ts";

function checkIndex(op: string, idx: number, pos: number, size: number): void {
  if (!(idx >= 0 && idx < size)) {
    throw new RangeError(`Cannot ${op}: index ${idx} at position ${pos} is outside [0, ${size})`);
  }
}

/** `out[o, j, i] = x[o, index[j], i]`. */
export function indexSelect(
  x: HostArray,
  index: HostArray,
  out: HostArray,
  outer: number,
  size: number,
  inner: number,
): void {
  const n = index.length;
  for (let j = 0; j < n; j++) checkIndex("select rows", index[j], j, size);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const src = (o * size + index[j]) * inner, dst = (o * n + j) * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = x[src + i];
    }
  }
}

/** `out[o, index[j], i] += src[o, j, i]` into the zero-filled `out`. */
export function indexAdd(
  index: HostArray,
  src: HostArray,
  out: HostArray,
  outer: number,
  size: number,
  inner: number,
): void {
  const n = index.length;
  for (let j = 0; j < n; j++) checkIndex("add rows", index[j], j, size);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const dst = (o * size + index[j]) * inner, s = (o * n + j) * inner;
      for (let i = 0; i < inner; i++) out[dst + i] += src[s + i];
    }
  }
}

/** `out[o, j, i] = x[o, index[o, j, i], i]` with `index: [outer, k, inner]`. */
export function gather(
  x: HostArray,
  index: HostArray,
  out: HostArray,
  outer: number,
  size: number,
  inner: number,
  k: number,
): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * k + j) * inner + i;
        const idx = index[p];
        checkIndex("gather", idx, p, size);
        out[p] = x[(o * size + idx) * inner + i];
      }
    }
  }
}

/** `out[o, index[o, j, i], i] += src[o, j, i]` into the zero-filled `out`. */
export function scatterAdd(
  index: HostArray,
  src: HostArray,
  out: HostArray,
  outer: number,
  size: number,
  inner: number,
  k: number,
): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * k + j) * inner + i;
        const idx = index[p];
        checkIndex("scatter-add", idx, p, size);
        out[(o * size + idx) * inner + i] += src[p];
      }
    }
  }
}
