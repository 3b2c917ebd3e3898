/**
 * Gradient clipping by global norm: `g ← g · min(1, maxNorm / ‖g‖₂)` over all parameters.
 *
 * @module
 */

import { add, mul, noGrad, sqrt, sum, type Tensor, tidy } from "../tensor/mod.ts";

/**
 * Global L2 norm of the gradients of `params` as a scalar tensor (no host read).
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor/mod.ts";
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { gradNorm } from "./clip.ts";
 * const w = tensor([0, 0], { requiresGrad: true });
 * w.grad = tensor([3, 4]);
 * assertAllClose(gradNorm([w]), 5);
 * ```
 */
export function gradNorm(params: Iterable<Tensor>): Tensor {
  const list = [...params].filter((p) => p.grad !== null);
  return noGrad(() =>
    tidy(() => {
      let total: Tensor | null = null;
      for (const p of list) {
        const g = p.grad as Tensor;
        const sq = sum(mul(g, g));
        total = total === null ? sq : add(total, sq);
      }
      if (total === null) {
        throw new Error("Cannot compute a gradient norm: no parameter has a gradient");
      }
      return sqrt(total);
    })
  );
}

/**
 * Scale all gradients so their global norm is at most `maxNorm`; returns the norm before
 * clipping (one host read, for logging). `maxNorm` of 0 or Infinity only measures. Gradients
 * are replaced, not written in place (a leaf's gradient may share storage with another's).
 */
export async function clipGradNorm(params: Tensor[], maxNorm: number): Promise<number> {
  const normT = gradNorm(params);
  const norm = await normT.item();
  normT.dispose();
  if (maxNorm > 0 && Number.isFinite(maxNorm) && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    noGrad(() => {
      for (const p of params) {
        const g = p.grad;
        if (g === null) continue;
        p.grad = mul(g, scale).keep();
        g.dispose();
      }
    });
  }
  return norm;
}
