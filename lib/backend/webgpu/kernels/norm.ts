/**
 * WGSL fused normalisation and gating kernels: RMSNorm forward/backward along the rows of
 * `[rows, cols]` and the SwiGLU gate `silu(a) ⊙ b` forward/backward. They replace the 6–7
 * elementwise and reduction dispatches of each composed op (and its ~10 in backward) by one to
 * three, and never materialise `x²`, `x · rstd` or `silu(a)`.
 *
 * Algorithm (the cpu twin is `lib/backend/cpu/norm.ts`):
 * - `rmsNorm`: one invocation per row, looping over `cols` twice: `Σ x²` (f32, in column order,
 *   like the composed `sum`), then `y = (x · rstd) · w`; `rstd` is a second output.
 * - `rmsNormBackward` (`dx`): one invocation per row; `Σ_c dy ⊙ w ⊙ x`, then
 *   `dx = rstd · (dy ⊙ w − x · rstd² · Σ / cols)`.
 * - `rmsNormWeightGrad` (`dw`, no atomics): invocation `(chunk, c)` sums
 *   `dy[r, c] · x[r, c] · rstd[r]` over the {@linkcode RMS_NORM_CHUNK} rows of its chunk
 *   (adjacent invocations read adjacent columns: contiguous loads); with more than one chunk the
 *   `[chunks, cols]` partials are summed by the `reduce` kernel (`webgpu/kernels/reduce.ts`).
 * - `swiglu` / `swigluBackward`: one invocation per element; the backward writes `da` and `db`
 *   (a second read-write binding) in one pass.
 * Per-thread work: `O(cols)` loads for the row kernels, `O(min(rows, RMS_NORM_CHUNK))` for the
 * column partials, O(1) elementwise. No workgroup memory and no barriers (they are expensive on
 * CPU drivers, see shared/notes/webgpu.md); on a GPU the per-row loops read strided memory, which
 * a workgroup-per-row variant would coalesce (not written yet).
 * Limits: `rows · cols` < 2³² elements; inputs are contiguous from offset 0; storages bound in
 * one dispatch are distinct buffers.
 *
 * @module
 */

import { bindingsWgsl, ENTRY_WGSL, MATH_WGSL, paramsWgsl } from "../_wgsl.ts";
import { type KernelInfo, kernelInfo } from "../cache.ts";

/** Rows one invocation of the RMSNorm weight-gradient kernel sums into a partial. */
export const RMS_NORM_CHUNK = 64;

/** `f32` bits of `v`, for float params. */
function f32Bits(v: number): number {
  return new Uint32Array(new Float32Array([v]).buffer)[0];
}

/**
 * RMSNorm forward, one invocation per row: binding 1 `y: [rows, cols]`, 2 `x`, 3 `w: [cols]`,
 * 4 `rstd: [rows]` (second output).
 *
 * @param rows Rows of `x`.
 * @param cols Features per row.
 * @param eps Added to `mean(x²)` (rounded to f32).
 * @returns The kernel launch.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { rmsNormKernel } from "./norm.ts";
 * const k = rmsNormKernel(5, 17, 1e-6);
 * equal(k.key, "rmsNorm");
 * equal(k.n, 5);
 * ```
 */
export function rmsNormKernel(rows: number, cols: number, eps: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("rows, cols, f32 bits of eps")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // y [rows, cols]
@group(0) @binding(2) var<storage, read> x: array<f32>; // x [rows, cols]
@group(0) @binding(3) var<storage, read> w: array<f32>; // gain [cols]
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>; // 1 / sqrt(mean(x²) + eps) [rows]
${ENTRY_WGSL}
  let cols = param(1);
  if (i >= param(0)) { return; }
  let base = i * cols;
  var ss = 0.0;
  for (var c = 0u; c < cols; c++) { let v = x[base + c]; ss += v * v; }
  let inv = inverseSqrt(ss / f32(cols) + bitcast<f32>(param(2)));
  rstd[i] = inv;
  for (var c = 0u; c < cols; c++) { out[base + c] = x[base + c] * inv * w[c]; }
}`;
  return kernelInfo("rmsNorm", code, rows, [rows, cols, f32Bits(eps)], "f32");
}

/**
 * RMSNorm input gradient, one invocation per row: binding 1 `dx: [rows, cols]`, 2 `x`,
 * 3 `w: [cols]`, 4 `rstd: [rows]`, 5 `dy: [rows, cols]`.
 *
 * @param rows Rows of `x`.
 * @param cols Features per row.
 * @returns The kernel launch.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { rmsNormBackwardKernel } from "./norm.ts";
 * equal(rmsNormBackwardKernel(300, 3).n, 300);
 * ```
 */
export function rmsNormBackwardKernel(rows: number, cols: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("rows, cols")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // dx [rows, cols]
@group(0) @binding(2) var<storage, read> x: array<f32>; // x [rows, cols]
@group(0) @binding(3) var<storage, read> w: array<f32>; // gain [cols]
@group(0) @binding(4) var<storage, read> rstd: array<f32>; // saved by the forward [rows]
@group(0) @binding(5) var<storage, read> dy: array<f32>; // upstream gradient [rows, cols]
${ENTRY_WGSL}
  let cols = param(1);
  if (i >= param(0)) { return; }
  let base = i * cols;
  var dot = 0.0;
  for (var c = 0u; c < cols; c++) { dot += dy[base + c] * w[c] * x[base + c]; }
  let inv = rstd[i];
  let k = inv * inv * dot / f32(cols);
  for (var c = 0u; c < cols; c++) {
    out[base + c] = inv * (dy[base + c] * w[c] - x[base + c] * k);
  }
}`;
  return kernelInfo("rmsNormBackward", code, rows, [rows, cols], "f32");
}

/** Number of row chunks (and partial rows) of the RMSNorm weight gradient for `rows` rows. */
export function rmsNormChunks(rows: number): number {
  return Math.max(1, Math.ceil(rows / RMS_NORM_CHUNK));
}

/**
 * RMSNorm weight-gradient partials: binding 1 `partial: [chunks, cols]` with
 * `partial[k, c] = Σ_{r in chunk k} dy[r, c] · x[r, c] · rstd[r]`, 2 `x`, 3 `rstd`, 4 `dy`.
 * With one chunk ({@linkcode rmsNormChunks}) the partial is the gradient itself.
 *
 * @param rows Rows of `x`.
 * @param cols Features per row.
 * @returns The kernel launch (`rmsNormChunks(rows) · cols` invocations).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { rmsNormWeightGradKernel } from "./norm.ts";
 * equal(rmsNormWeightGradKernel(300, 17).n, 5 * 17); // ⌈300 / 64⌉ chunks
 * ```
 */
export function rmsNormWeightGradKernel(rows: number, cols: number): KernelInfo {
  const chunks = rmsNormChunks(rows);
  const code = /* wgsl */ `
${paramsWgsl("rows, cols, chunks, rows per chunk")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // partial sums [chunks, cols]
@group(0) @binding(2) var<storage, read> x: array<f32>; // x [rows, cols]
@group(0) @binding(3) var<storage, read> rstd: array<f32>; // saved by the forward [rows]
@group(0) @binding(4) var<storage, read> dy: array<f32>; // upstream gradient [rows, cols]
${ENTRY_WGSL}
  let rows = param(0);
  let cols = param(1);
  if (i >= param(2) * cols) { return; }
  let c = i % cols;
  let start = (i / cols) * param(3);
  let end = min(rows, start + param(3));
  var acc = 0.0;
  for (var r = start; r < end; r++) {
    let j = r * cols + c;
    acc += dy[j] * x[j] * rstd[r];
  }
  out[i] = acc;
}`;
  return kernelInfo(
    "rmsNormWeightGrad",
    code,
    chunks * cols,
    [rows, cols, chunks, RMS_NORM_CHUNK],
    "f32",
  );
}

/**
 * SwiGLU gate `out = silu(a) · b` over `n` elements: binding 1 `out`, 2 `a`, 3 `b`.
 *
 * @param n Elements.
 * @returns The kernel launch.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { swigluKernel } from "./norm.ts";
 * equal(swigluKernel(129).n, 129);
 * ```
 */
export function swigluKernel(n: number): KernelInfo {
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32", "f32"])}
${MATH_WGSL}
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let a = in0[i];
  out[i] = a * sigmoidf(a) * in1[i];
}`;
  return kernelInfo("swiglu", code, n, [n], "f32");
}

/**
 * SwiGLU gate backward over `n` elements: binding 1 `da = dout · b · silu'(a)`, 2 `a`, 3 `b`,
 * 4 `dout`, 5 `db = dout · silu(a)` (second output).
 *
 * @param n Elements.
 * @returns The kernel launch.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { swigluBackwardKernel } from "./norm.ts";
 * equal(swigluBackwardKernel(17).key, "swigluBackward");
 * ```
 */
export function swigluBackwardKernel(n: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("n")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // da
@group(0) @binding(2) var<storage, read> a: array<f32>; // gate pre-activation x W1
@group(0) @binding(3) var<storage, read> b: array<f32>; // up projection x W3
@group(0) @binding(4) var<storage, read> dout: array<f32>; // upstream gradient
@group(0) @binding(5) var<storage, read_write> db: array<f32>; // second output
${MATH_WGSL}
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let x = a[i];
  let s = sigmoidf(x);
  let g = dout[i];
  out[i] = (g * b[i]) * s * (1.0 + x * (1.0 - s)); // siluBackward(a, dout · b)
  db[i] = g * (x * s);
}`;
  return kernelInfo("swigluBackward", code, n, [n], "f32");
}
