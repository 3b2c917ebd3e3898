/**
 * WGSL batched matmul `C[b] = op(A[b]) · op(B[b])` (see `MatmulSpec`).
 *
 * Algorithm: register blocking straight from storage buffers — each invocation computes a
 * 4×4 block of C, loading 4 values of A and 4 of B per step of K and doing 16 FMAs, with no
 * workgroup memory or barriers (barriers are expensive on Mesa's llvmpipe/lavapipe, see
 * ../shared/notes/webgpu.md). Transposes are index changes; reads past the edge are clamped
 * and their results not written, so any size is safe. A GPU-shaped variant with workgroup
 * tiles, chosen by adapter, and vec4 loads are TODO(#4).
 *
 * @module
 */

import type { MatmulSpec } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL, grid, WORKGROUP } from "../_wgsl.ts";
import type { KernelInfo } from "../cache.ts";

/** Rows and columns of C per invocation. */
const BLOCK = 4;

/** The launcher: params [batch, m, n, k, offsetA, offsetB, strideA, strideB, blocksM, blocksN]. */
export function matmulKernel(spec: MatmulSpec): KernelInfo {
  // Element (row, p) of op(A) and (p, col) of op(B) for the given storage layouts.
  const aAt = spec.transA ? "a0 + p * m + row" : "a0 + row * k + p"; // A stored [k, m] if transA
  const bAt = spec.transB ? "b0 + col * k + p" : "b0 + p * n + col"; // B stored [n, k] if transB
  const rows = Array.from({ length: BLOCK }, (_, i) => i);
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32", "f32"])}
fn loadA(a0: u32, row: u32, p: u32, m: u32, k: u32) -> f32 { return in0[${aAt}]; }
fn loadB(b0: u32, p: u32, col: u32, n: u32, k: u32) -> f32 { return in1[${bAt}]; }
${ENTRY_WGSL}
  let m = params[1]; let n = params[2]; let k = params[3];
  let bm = params[8]; let bn = params[9];
  if (i >= params[0] * bm * bn) { return; }
  let b = i / (bm * bn);
  let r0 = ((i / bn) % bm) * ${BLOCK}u;
  let c0 = (i % bn) * ${BLOCK}u;
  let a0 = params[4] + b * params[6];
  let b0 = params[5] + b * params[7];
  // Clamp edge rows/columns to valid ones; their results are discarded below.
  ${
    rows.map((j) => `let ra${j} = min(r0 + ${j}u, m - 1u); let cb${j} = min(c0 + ${j}u, n - 1u);`)
      .join("\n  ")
  }
  var acc: array<vec4<f32>, ${BLOCK}>;
  for (var p = 0u; p < k; p++) {
    let bv = vec4<f32>(${rows.map((j) => `loadB(b0, p, cb${j}, n, k)`).join(", ")});
    ${rows.map((j) => `acc[${j}] += loadA(a0, ra${j}, p, m, k) * bv;`).join("\n    ")}
  }
  let base = b * m * n;
  for (var j = 0u; j < ${BLOCK}u; j++) {
    let row = r0 + j;
    if (row >= m) { break; }
    for (var q = 0u; q < ${BLOCK}u; q++) {
      if (c0 + q < n) { out[base + row * n + c0 + q] = acc[j][q]; }
    }
  }
}`;
  const bm = Math.ceil(spec.m / BLOCK), bn = Math.ceil(spec.n / BLOCK);
  const threads = spec.batch * bm * bn;
  return {
    key: `matmul:block${BLOCK}:${spec.transA}:${spec.transB}`,
    code,
    workgroupSize: WORKGROUP,
    dispatch: grid(threads),
    params: Uint32Array.from([
      spec.batch,
      spec.m,
      spec.n,
      spec.k,
      spec.offsetA,
      spec.offsetB,
      spec.strideA,
      spec.strideB,
      bm,
      bn,
    ]),
    outDType: "f32",
    n: spec.m * spec.n === 0 ? 0 : threads,
  };
}
