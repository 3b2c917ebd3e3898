/**
 * WGSL index kernels: indexSelect / indexAdd and gather / scatterAdd on `[outer, size, inner]`.
 *
 * Algorithm: one invocation per output element. The scatter-style kernels (indexAdd,
 * scatterAdd) are written as gathers — each output element loops over the index list and sums
 * the sources that target it — so they need no float atomics and are deterministic.
 * Limits: O(n) work per output element for the scatters; out-of-range indices read 0 / are skipped.
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

/** `out[o, v, i] = Σ_{j: index[j] = v} src[o, j, i]`; params [total, size, inner, n]. */
export function indexAddKernel(outer: number, size: number, inner: number, n: number): KernelInfo {
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["i32", "f32"])}
${ENTRY_WGSL}
  let size = params[1]; let inner = params[2]; let n = params[3];
  if (i >= params[0]) { return; }
  let o = i / (size * inner); let v = i32((i / inner) % size); let e = i % inner;
  var acc = 0.0;
  for (var j = 0u; j < n; j++) {
    if (in0[j] == v) { acc += in1[(o * n + j) * inner + e]; }
  }
  out[i] = acc;
}`;
  return kernelInfo(
    "indexAdd",
    code,
    outer * size * inner,
    [outer * size * inner, size, inner, n],
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
