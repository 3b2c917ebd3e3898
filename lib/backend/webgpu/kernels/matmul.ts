/**
 * WGSL batched matmul `C[b] = op(A[b]) · op(B[b])` (see `MatmulSpec`).
 *
 * Algorithm: register blocking straight from storage buffers — each invocation computes a
 * 4×4 block of C, loading 4 values of A and 4 of B per step of K and doing 16 FMAs, with no
 * workgroup memory or barriers (barriers are expensive on Mesa's llvmpipe/lavapipe, see
 * ../shared/notes/webgpu.md). Transposes are index changes; reads past the edge are clamped
 * and their results not written, so any size is safe. Where B can be read as vec4 rows (not
 * transposed, `n % 4 = 0`, 16-byte aligned) a vec4 variant computes 8×8 blocks instead: 2.3
 * GFLOP/s at 1024³ on lavapipe here against 0.8 for the 4×4 scalar kernel — far from the ~25 the
 * notes report for a tuned kernel, and workgroup size (8–256) made no difference, so the limit is
 * elsewhere (bounds-checked loads are the first suspect). A GPU-shaped variant with workgroup
 * tiles, chosen by adapter, is TODO(#4).
 *
 * @module
 */

import type { MatmulSpec } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL, grid, WORKGROUP } from "../_wgsl.ts";
import type { KernelInfo } from "../cache.ts";

/** Rows and columns of C per invocation. */
const BLOCK = 4;

/** Invocations per workgroup of the vec4 kernel. */
const WG_V4 = 64;

function gridOf(n: number, size: number): [number, number] {
  const groups = Math.ceil(n / size);
  if (groups <= 65535) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** Rows of C per invocation in the vec4 kernel (each row: 2 vec4 = 8 columns). */
const ROWS_V4 = 8;

/** Whether the vec4 kernel applies: B read as rows of vec4 (not transposed, 16-byte aligned). */
export function vec4Applies(spec: MatmulSpec): boolean {
  return !spec.transB && spec.n % 4 === 0 && spec.offsetB % 4 === 0 &&
    (spec.batch === 1 || spec.strideB % 4 === 0);
}

/**
 * The vec4 variant: each invocation computes an 8×8 block of C (8 rows × 2 vec4 columns), B
 * loaded as vec4 rows and A one scalar per row and step of K, 16 vec4 FMAs per step; adjacent
 * invocations take adjacent column blocks. No workgroup memory or barriers — the CPU-driver
 * shape that suits llvmpipe/lavapipe (../shared/notes/webgpu.md).
 */
function matmulVec4Kernel(spec: MatmulSpec): KernelInfo {
  const aAt = spec.transA ? "a0 + p * m + row" : "a0 + row * k + p";
  const rows = Array.from({ length: ROWS_V4 }, (_, i) => i);
  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> params: array<u32>; // integer parameters
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // result
@group(0) @binding(2) var<storage, read> in0: array<f32>; // A
@group(0) @binding(3) var<storage, read> in1: array<vec4<f32>>; // B as rows of vec4
fn loadA(a0: u32, row: u32, p: u32, m: u32, k: u32) -> f32 { return in0[${aAt}]; }
@compute @workgroup_size(${WG_V4})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG_V4}u;
  let m = params[1]; let n = params[2]; let k = params[3];
  let bm = params[8]; let bn = params[9];
  if (i >= params[0] * bm * bn) { return; }
  let b = i / (bm * bn);
  let r0 = ((i / bn) % bm) * ${ROWS_V4}u;
  let q0 = (i % bn) * 2u; // first vec4 column
  let n4 = n / 4u;
  let q1 = min(q0 + 1u, n4 - 1u);
  let a0 = params[4] + b * params[6];
  let b4 = (params[5] + b * params[7]) / 4u;
  ${rows.map((j) => `let ra${j} = min(r0 + ${j}u, m - 1u);`).join("\n  ")}
  ${rows.map((j) => `var lo${j} = vec4<f32>(); var hi${j} = vec4<f32>();`).join("\n  ")}
  for (var p = 0u; p < k; p++) {
    let bl = in1[b4 + p * n4 + q0];
    let bh = in1[b4 + p * n4 + q1];
    ${
    rows.map((j) =>
      `{ let av = vec4<f32>(loadA(a0, ra${j}, p, m, k)); lo${j} = fma(av, bl, lo${j}); hi${j} = fma(av, bh, hi${j}); }`
    ).join("\n    ")
  }
  }
  let base = b * m * n + q0 * 4u;
  let both = q0 + 1u < n4;
  ${
    rows.map((j) =>
      `if (r0 + ${j}u < m) { let o = base + (r0 + ${j}u) * n; out[o] = lo${j}.x; out[o + 1u] = lo${j}.y; out[o + 2u] = lo${j}.z; out[o + 3u] = lo${j}.w; if (both) { out[o + 4u] = hi${j}.x; out[o + 5u] = hi${j}.y; out[o + 6u] = hi${j}.z; out[o + 7u] = hi${j}.w; } }`
    ).join("\n  ")
  }
}`;
  const bm = Math.ceil(spec.m / ROWS_V4), bn = Math.ceil(spec.n / 8);
  const threads = spec.batch * bm * bn;
  return {
    key: `matmul:v4x8:${spec.transA}`,
    code,
    workgroupSize: WG_V4,
    dispatch: gridOf(threads, WG_V4),
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

/** Which matmul kernel: `auto` (vec4 where it applies), or one forced (tests, the bench). */
export type MatmulVariant = "auto" | "block4" | "vec4";

/** The launcher: params [batch, m, n, k, offsetA, offsetB, strideA, strideB, blocksM, blocksN]. */
export function matmulKernel(spec: MatmulSpec, variant: MatmulVariant = "auto"): KernelInfo {
  if (variant !== "block4" && vec4Applies(spec) && spec.k > 0) return matmulVec4Kernel(spec);
  if (variant === "vec4") throw new Error("the vec4 matmul kernel does not apply to this spec");
  return matmulBlock4Kernel(spec);
}

function matmulBlock4Kernel(spec: MatmulSpec): KernelInfo {
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
