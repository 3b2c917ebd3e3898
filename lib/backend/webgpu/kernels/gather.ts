/**
 * WGSL index kernels: indexSelect / indexAdd and gather / scatterAdd on `[outer, size, inner]`.
 *
 * Algorithm: one invocation per output element for the gathers. The scatter-style kernels are
 * written as gathers — each output loops over the index list in order and sums the sources that
 * target it — so they need no float atomics and are deterministic: scatterAdd per element (its
 * `k` is small: top-k), indexAdd per row and run of 64 columns with the index list in a uniform
 * buffer ({@linkcode indexAddUniformKernel}). Out-of-range indices read 0 / are skipped.
 *
 * @module
 */

import type { DType } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL } from "../_wgsl.ts";
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
  let size = params[1]; let inner = params[2]; let n = params[3];
  if (i >= params[0]) { return; }
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

/** Indices per uniform-buffer window of {@linkcode indexAddUniformKernel} (64 KiB of i32). */
export const INDEX_WINDOW = 16384;

/** vec4 columns of a row each invocation of {@linkcode indexAddUniformKernel} sums. */
const ADD_CHUNK = 16;

/**
 * `indexAdd` reading the index list from a uniform buffer window (`array<vec4<i32>, 4096>` at
 * binding 3: up to {@linkcode INDEX_WINDOW} indices, the caller's copy of the i32 index):
 * `out[o, v, e] (+)= Σ_{j in window, index[j] = v} src[o, j0 + j, e]`. One invocation per
 * output row `(o, v)` and run of {@linkcode ADD_CHUNK} vec4 columns (or columns, when `inner` is
 * not a multiple of 4), looping over the window in order — deterministic, no atomics. The loop
 * index is uniform, so each index load is one scalar load and a broadcast on CPU drivers, where a
 * storage-buffer load is a loop over the SIMD lanes: a scan per output element would cost
 * `size · inner · n` storage loads, this costs `size · ⌈inner / 64⌉ · n` uniform ones. Windows after the first add to `out` (`accumulate`).
 * Bind `out` at 1, `src` at 2, the index window at 3. Params `[outer, size, inner4, n, j0,
 * count, chunks]`, `inner4` in loaded units (vec4 or scalar).
 */
export function indexAddUniformKernel(
  outer: number,
  size: number,
  inner: number,
  n: number,
  window: { j0: number; count: number; accumulate: boolean },
): KernelInfo {
  const vec4 = inner % 4 === 0;
  const ty = vec4 ? "vec4<f32>" : "f32";
  const units = vec4 ? inner / 4 : inner;
  const chunks = Math.ceil(units / ADD_CHUNK);
  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> params: array<u32>; // integer parameters
@group(0) @binding(1) var<storage, read_write> out: array<${ty}>; // [outer, size, inner]
@group(0) @binding(2) var<storage, read> src: array<${ty}>; // [outer, n, inner]
@group(0) @binding(3) var<uniform> idx: array<vec4<i32>, ${INDEX_WINDOW / 4}>; // index window
${ENTRY_WGSL}
  let size = params[1]; let units = params[2]; let n = params[3];
  let j0 = params[4]; let count = params[5]; let chunks = params[6];
  if (i >= params[0] * size * chunks) { return; }
  let o = i / (size * chunks); let v = i32((i / chunks) % size);
  let e0 = (i % chunks) * ${ADD_CHUNK}u;
  let width = min(${ADD_CHUNK}u, units - e0);
  var acc: array<${ty}, ${ADD_CHUNK}>;
  for (var j = 0u; j < count; j++) {
    if (idx[j / 4u][j % 4u] == v) {
      let row = (o * n + j0 + j) * units + e0;
      for (var c = 0u; c < width; c++) { acc[c] += src[row + c]; }
    }
  }
  let base = (o * size + u32(v)) * units + e0;
  for (var c = 0u; c < width; c++) {
    ${window.accumulate ? "out[base + c] += acc[c];" : "out[base + c] = acc[c];"}
  }
}`;
  return kernelInfo(
    `indexAdd:uniform:${vec4 ? "vec4" : "scalar"}:${window.accumulate ? "add" : "set"}`,
    code,
    outer * size * chunks,
    [outer, size, units, n, window.j0, window.count, chunks],
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
  let size = params[1]; let inner = params[2]; let k = params[3];
  if (i >= params[0]) { return; }
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
  let size = params[1]; let inner = params[2]; let k = params[3];
  if (i >= params[0]) { return; }
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
