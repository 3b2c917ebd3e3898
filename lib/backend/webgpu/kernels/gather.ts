/**
 * WGSL index kernels: indexSelect / indexAdd and gather / scatterAdd on `[outer, size, inner]`.
 *
 * Algorithm: one invocation per output element for the gathers. The scatter-style kernels are
 * written as gathers — each output loops over the index list in order and sums the sources that
 * target it — so they need no float atomics and are deterministic: scatterAdd per element (its
 * `k` is small: top-k), indexAdd per row over its bucket of a counting sort of the index
 * ({@linkcode indexCountKernel} and the steps after it). Out-of-range indices read 0 / are skipped.
 *
 * @module
 */

import type { DType } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL, paramsWgsl } from "../_wgsl.ts";
import { type KernelInfo, kernelInfo } from "../cache.ts";

/** `out[o, j, i] = x[o, index[j], i]`; params [total, size, inner, n]. */
export function indexSelectKernel(
  dtype: DType,
  outer: number,
  size: number,
  inner: number,
  n: number,
): KernelInfo {
  const zero = dtype === "f32" ? "0.0" : dtype === "i32" ? "0i" : "0u";
  const code = /* wgsl */ `
${bindingsWgsl(dtype, [dtype, "i32"])}
${ENTRY_WGSL}
  let size = param(1); let inner = param(2); let n = param(3);
  if (i >= param(0)) { return; }
  let o = i / (n * inner); let j = (i / inner) % n; let e = i % inner;
  let t = in1[j];
  if (t < 0 || u32(t) >= size) { out[i] = ${zero}; return; }
  out[i] = in0[(o * size + u32(t)) * inner + e];
}`;
  return kernelInfo(
    `indexSelect:${dtype}`,
    code,
    outer * n * inner,
    [outer * n * inner, size, inner, n],
    dtype,
  );
}

/**
 * indexAdd as a deterministic counting sort (no float atomics), `O(n + size + n · inner)` work:
 * 1. {@linkcode indexCountKernel}: `count[v]` = how many `j` have `index[j] = v` (u32 atomics);
 * 2. {@linkcode indexScanKernel}: `start[v]` = Σ counts before `v`, `start[size]` = valid total;
 *    the counts are reset to serve as cursors;
 * 3. {@linkcode indexPlaceKernel}: each valid `j` takes a slot of its bucket (atomic cursor);
 * 4. {@linkcode indexSortKernel}: each bucket sorted ascending (insertion sort; buckets are
 *    small when indices spread, quadratic in one bucket's size when they do not), so the
 *    order no longer depends on which invocation won a slot;
 * 5. {@linkcode indexAddSortedKernel}: each output row sums its bucket's source rows in `j`
 *    order — the cpu reference's order, so the result is the same to the bit.
 * The earlier scan of the whole index list per output element cost `size · inner · n` loads.
 * Indices outside `[0, size)` are skipped.
 */
export function indexCountKernel(size: number, n: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("[n, size]")}
@group(0) @binding(1) var<storage, read_write> count: array<atomic<u32>>; // [size], zeroed
@group(0) @binding(2) var<storage, read> index: array<i32>; // [n]
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let v = index[i];
  if (v >= 0 && u32(v) < param(1)) { atomicAdd(&count[u32(v)], 1u); }
}`;
  return kernelInfo("indexAdd:count", code, n, [n, size], "i32");
}

/** Step 2 of the indexAdd sort (one invocation): `start` from `count`, cursors reset. */
export function indexScanKernel(size: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("[size]")}
@group(0) @binding(1) var<storage, read_write> start: array<u32>; // [size + 1]
@group(0) @binding(2) var<storage, read_write> count: array<u32>; // [size], reset to 0
@compute @workgroup_size(1)
fn main() {
  var total = 0u;
  for (var v = 0u; v < param(0); v++) {
    start[v] = total;
    total += count[v];
    count[v] = 0u;
  }
  start[param(0)] = total;
}`;
  return {
    key: "indexAdd:scan",
    code,
    workgroupSize: 1,
    dispatch: [1, 1],
    params: Uint32Array.of(size),
    outDType: "i32",
    n: 1,
  };
}

/** Step 3 of the indexAdd sort: each valid `j` written into a slot of its bucket. */
export function indexPlaceKernel(size: number, n: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("[n, size]")}
@group(0) @binding(1) var<storage, read_write> list: array<u32>; // [n]: j grouped by bucket
@group(0) @binding(2) var<storage, read> index: array<i32>; // [n]
@group(0) @binding(3) var<storage, read> start: array<u32>; // [size + 1]
@group(0) @binding(4) var<storage, read_write> cursor: array<atomic<u32>>; // [size], zeroed
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let v = index[i];
  if (v < 0 || u32(v) >= param(1)) { return; }
  let slot = atomicAdd(&cursor[u32(v)], 1u);
  list[start[u32(v)] + slot] = i;
}`;
  return kernelInfo("indexAdd:place", code, n, [n, size], "i32");
}

/** Step 4 of the indexAdd sort: every bucket of `list` sorted ascending, one per invocation. */
export function indexSortKernel(size: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("[size]")}
@group(0) @binding(1) var<storage, read_write> list: array<u32>; // [n]
@group(0) @binding(2) var<storage, read> start: array<u32>; // [size + 1]
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let lo = start[i]; let hi = start[i + 1u];
  for (var a = lo + 1u; a < hi; a++) {
    let x = list[a];
    var b = a;
    for (; b > lo; b--) {
      let y = list[b - 1u];
      if (y <= x) { break; }
      list[b] = y;
    }
    list[b] = x;
  }
}`;
  return kernelInfo("indexAdd:sort", code, size, [size], "i32");
}

/** vec4 columns of a row each invocation of {@linkcode indexAddSortedKernel} sums. */
const ADD_CHUNK = 16;

/**
 * Step 5 of indexAdd: `out[o, v, :] = Σ_{q in bucket v} src[o, list[q], :]`, one invocation per
 * output row `(o, v)` and run of {@linkcode ADD_CHUNK} vec4 columns (scalars when `inner` is
 * not a multiple of 4). Bind `out` at 1, `src` at 2, `list` at 3, `start` at 4.
 */
export function indexAddSortedKernel(
  outer: number,
  size: number,
  inner: number,
  n: number,
): KernelInfo {
  const vec4 = inner % 4 === 0;
  const ty = vec4 ? "vec4<f32>" : "f32";
  const units = vec4 ? inner / 4 : inner;
  const chunks = Math.ceil(units / ADD_CHUNK);
  const code = /* wgsl */ `
${paramsWgsl("[outer, size, units, n, chunks]")}
@group(0) @binding(1) var<storage, read_write> out: array<${ty}>; // [outer, size, inner]
@group(0) @binding(2) var<storage, read> src: array<${ty}>; // [outer, n, inner]
@group(0) @binding(3) var<storage, read> list: array<u32>; // [n]: j by bucket, ascending
@group(0) @binding(4) var<storage, read> start: array<u32>; // [size + 1]
${ENTRY_WGSL}
  let size = param(1); let units = param(2); let n = param(3); let chunks = param(4);
  if (i >= param(0) * size * chunks) { return; }
  let o = i / (size * chunks); let v = (i / chunks) % size;
  let e0 = (i % chunks) * ${ADD_CHUNK}u;
  let width = min(${ADD_CHUNK}u, units - e0);
  var acc: array<${ty}, ${ADD_CHUNK}>;
  for (var q = start[v]; q < start[v + 1u]; q++) {
    let row = (o * n + list[q]) * units + e0;
    for (var c = 0u; c < width; c++) { acc[c] += src[row + c]; }
  }
  let base = (o * size + v) * units + e0;
  for (var c = 0u; c < width; c++) { out[base + c] = acc[c]; }
}`;
  return kernelInfo(
    `indexAdd:sum:${vec4 ? "vec4" : "scalar"}`,
    code,
    outer * size * chunks,
    [outer, size, units, n, chunks],
    "f32",
  );
}

/** `out[o, j, i] = x[o, index[o, j, i], i]`; params [total, size, inner, k]. */
export function gatherKernel(
  dtype: DType,
  outer: number,
  size: number,
  inner: number,
  k: number,
): KernelInfo {
  const zero = dtype === "f32" ? "0.0" : dtype === "i32" ? "0i" : "0u";
  const code = /* wgsl */ `
${bindingsWgsl(dtype, [dtype, "i32"])}
${ENTRY_WGSL}
  let size = param(1); let inner = param(2); let k = param(3);
  if (i >= param(0)) { return; }
  let o = i / (k * inner); let e = i % inner;
  let t = in1[i];
  if (t < 0 || u32(t) >= size) { out[i] = ${zero}; return; }
  out[i] = in0[(o * size + u32(t)) * inner + e];
}`;
  return kernelInfo(
    `gather:${dtype}`,
    code,
    outer * k * inner,
    [outer * k * inner, size, inner, k],
    dtype,
  );
}

/** `out[o, s, i] = Σ_{j: index[o, j, i] = s} src[o, j, i]`; params [total, size, inner, k]. */
export function scatterAddKernel(
  outer: number,
  size: number,
  inner: number,
  k: number,
): KernelInfo {
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["i32", "f32"])}
${ENTRY_WGSL}
  let size = param(1); let inner = param(2); let k = param(3);
  if (i >= param(0)) { return; }
  let o = i / (size * inner); let s = i32((i / inner) % size); let e = i % inner;
  var acc = 0.0;
  for (var j = 0u; j < k; j++) {
    let p = (o * k + j) * inner + e;
    if (in0[p] == s) { acc += in1[p]; }
  }
  out[i] = acc;
}`;
  return kernelInfo(
    "scatterAdd",
    code,
    outer * size * inner,
    [outer * size * inner, size, inner, k],
    "f32",
  );
}
