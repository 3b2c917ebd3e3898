/**
 * Reference fused rotary position embedding (RoPE, arXiv:2104.09864 §3.2, DeepSeek-V3's
 * adjacent-pair convention): each pair `z_j = x[2j] + i x[2j+1]` of a row of `x: [B, T, H, d]`
 * is multiplied by `cos[t, j] + i sin[t, j]` (or its conjugate when `inverse`, the backward), one
 * pass over `x` instead of the composed ops' slices, products, sums and concat. The wasm backend
 * inherits it.
 *
 * Each output is computed in a JS number and rounded once by the output array (the composed ops
 * round after every product, so the two agree to about one float32 ulp).
 *
 * @module
 */

import type { HostArray, RopeSpec } from "../backend.ts";

/**
 * Rotate the pairs of `x: [rows, 2 · half]` by the `[positions, half]` tables into `out`
 * (`inverse`: by the negated angle), see {@linkcode RopeSpec}.
 *
 * @param x Input rows (row `r` at position `⌊r / heads⌋ mod positions`).
 * @param cos `cos(angle)` per position and pair.
 * @param sin `sin(angle)` per position and pair.
 * @param out Output, shaped like `x`.
 * @param spec Sizes and direction.
 *
 * @example A quarter turn
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { rope } from "./rope.ts";
 * const out = new Float64Array(2);
 * const spec = { rows: 1, heads: 1, positions: 1, half: 1, inverse: false };
 * rope(Float64Array.of(1, 2), Float64Array.of(0), Float64Array.of(1), out, spec);
 * deepStrictEqual(Array.from(out), [-2, 1]);
 * ```
 */
export function rope(
  x: HostArray,
  cos: HostArray,
  sin: HostArray,
  out: HostArray,
  spec: RopeSpec,
): void {
  const { rows, heads, positions, half } = spec;
  const sign = spec.inverse ? -1 : 1; // e^{-iθ} = cos θ − i sin θ
  for (let r = 0; r < rows; r++) {
    const table = (Math.floor(r / heads) % positions) * half, base = 2 * r * half;
    for (let j = 0; j < half; j++) {
      const c = cos[table + j], s = sign * sin[table + j];
      const re = x[base + 2 * j], im = x[base + 2 * j + 1];
      out[base + 2 * j] = re * c - im * s; // Re(z e^{±iθ})
      out[base + 2 * j + 1] = re * s + im * c; // Im(z e^{±iθ})
    }
  }
}
