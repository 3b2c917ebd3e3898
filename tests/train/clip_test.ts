/**
 * Gradient clipping by global norm (lib/train/clip.ts) against hand-computed values: gradients
 * `[3, 4]` and `[12]` have the global norm `√(9 + 16 + 144) = 13`.
 */
import { strictEqual } from "node:assert/strict";
import { type Tensor, tensor } from "../../lib/tensor/mod.ts";
import { clipGradNorm, gradNorm } from "../../lib/train/clip.ts";
import { assertAllClose, gradOf } from "../_utils.ts";

function withGrads(): [Tensor, Tensor, Tensor] {
  const a = tensor([1, 1], { requiresGrad: true }), b = tensor([1], { requiresGrad: true });
  const none = tensor([1, 2, 3], { requiresGrad: true }); // no gradient: left out
  a.grad = tensor([3, 4]);
  b.grad = tensor([12]);
  return [a, b, none];
}

Deno.test("gradNorm() is the square root of the sum of squares over all gradients: 13", () => {
  assertAllClose(gradNorm(withGrads()), 13, { atol: 0, rtol: 1e-7 });
});

Deno.test("clipGradNorm() scales every gradient by maxNorm / ‖g‖ and returns ‖g‖ before clipping", async () => {
  const [a, b, none] = withGrads();
  strictEqual(await clipGradNorm([a, b, none], 6.5), 13);
  // 6.5 / 13 = 1/2 (the library divides by ‖g‖ + 1e-6): [1.5, 2] and [6]
  assertAllClose(gradOf(a), [1.5, 2], { atol: 0, rtol: 1e-6 });
  assertAllClose(gradOf(b), [6], { atol: 0, rtol: 1e-6 });
  strictEqual(none.grad, null);
  assertAllClose(gradNorm([a, b]), 6.5, { atol: 0, rtol: 1e-6 });
});

Deno.test("clipGradNorm() leaves gradients within maxNorm, and all of them with maxNorm 0", async () => {
  for (const maxNorm of [13.5, 0, Infinity]) {
    const [a, b] = withGrads();
    strictEqual(await clipGradNorm([a, b], maxNorm), 13);
    assertAllClose(gradOf(a), [3, 4], { atol: 0, rtol: 0 });
    assertAllClose(gradOf(b), [12], { atol: 0, rtol: 0 });
  }
});
