/**
 * Reference fused kernels for the normalisation and gating ops of a transformer block: RMSNorm
 * forward/backward along the rows of `[rows, cols]` and the SwiGLU gate `silu(a) ⊙ b`
 * forward/backward. The wasm backend inherits the RMSNorm kernels and runs the gate as SIMD
 * passes (here it is bound by `Math.exp`).
 *
 * They follow the composed ops step by step (`lib/tensor/ops/nn.ts`, fallback path), so they
 * agree with them to float32 rounding: each row's `Σ x²` is accumulated in a JS number like the
 * `sum` reduction, and every stored value is rounded once by the output array.
 *
 * - RMSNorm: `rstd = 1 / sqrt(Σ x² / cols + eps)`, `y = (x · rstd) · w`.
 *   Backward with `g = dy ⊙ w`: `dx = rstd · (g − x · rstd² · Σ(g ⊙ x) / cols)`,
 *   `dw = Σ_rows dy ⊙ x · rstd`.
 * - SwiGLU gate: `out = silu(a) · b`, `da = (dout · b) · σ(a) (1 + a (1 − σ(a)))`,
 *   `db = dout · silu(a)`.
 *
 * @module
 */

import type { HostArray, RmsNormSpec } from "../backend.ts";

/** RMSNorm of each row of `x: [rows, cols]` with gain `w: [cols]` into `y` and `rstd: [rows]`. */
export function rmsNorm(
  x: HostArray,
  w: HostArray,
  y: HostArray,
  rstd: HostArray,
  spec: RmsNormSpec,
): void {
  const { rows, cols, eps } = spec;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[base + c] * x[base + c];
    rstd[r] = 1 / Math.sqrt(ss / cols + eps);
    const inv = rstd[r]; // read back: the stored (rounded) value is the one backward sees
    for (let c = 0; c < cols; c++) y[base + c] = x[base + c] * inv * w[c];
  }
}

/** RMSNorm backward: `dx: [rows, cols]` and `dw: [cols]` from `dy` and the saved `rstd`. */
export function rmsNormBackward(
  x: HostArray,
  w: HostArray,
  rstd: HostArray,
  dy: HostArray,
  dx: HostArray,
  dw: HostArray,
  spec: RmsNormSpec,
): void {
  const { rows, cols } = spec;
  const acc = new Float64Array(cols); // Σ_rows of dw, rounded once
  for (let r = 0; r < rows; r++) {
    const base = r * cols, inv = rstd[r];
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += dy[base + c] * w[c] * x[base + c];
    const k = inv * inv * dot / cols;
    for (let c = 0; c < cols; c++) {
      const xc = x[base + c], dyc = dy[base + c];
      dx[base + c] = inv * (dyc * w[c] - xc * k);
      acc[c] += dyc * xc * inv;
    }
  }
  for (let c = 0; c < cols; c++) dw[c] = acc[c];
}

/**
 * `σ(x)` exactly as the cpu `sigmoid` (`1 / (1 + e⁻ˣ)`, or `eˣ / (1 + eˣ)` for `x < 0`), with one
 * `exp`; inlined by the JIT in the loops below, where a call per element through the op tables
 * would cost more than the math.
 */
function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** SwiGLU gate `out[i] = silu(a[i]) · b[i]` for `i < n`. */
export function swiglu(a: HostArray, b: HostArray, out: HostArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = a[i];
    out[i] = x * sigmoid(x) * b[i];
  }
}

/** SwiGLU gate backward: `da = dout · b · silu'(a)`, `db = dout · silu(a)` for `i < n`. */
export function swigluBackward(
  a: HostArray,
  b: HostArray,
  dout: HostArray,
  da: HostArray,
  db: HostArray,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const x = a[i], g = dout[i], s = sigmoid(x);
    da[i] = g * b[i] * s * (1 + x * (1 - s)); // siluBackward(a, dout · b)
    db[i] = g * (x * s);
  }
}
