/**
 * WGSL optimizer kernels: the fused AdamW update (issue #4), replacing the ~10 elementwise
 * dispatches per parameter of the composed path in `lib/train/optim.ts` by one.
 *
 * Algorithm: one invocation per element `i` of the contiguous `f32` storages `p`, `m`, `v`; it
 * reads `p[i]`, `m[i]`, `v[i]` and the gradient element `i` (contiguous, or through its strides:
 * linear layers' weight gradients are transposed views, broadcast gradients have stride 0) and
 * writes `p[i]`, `m[i]`, `v[i]` in place with the composed path's arithmetic in the same order,
 * every constant rounded to f32 on the host as the composed path's scalar tensors are:
 * `m = m·β1 + g·(1−β1)`, `v = v·β2 + (g·g)·(1−β2)`, `u = (m / c1) / (sqrt(v / c2) + ε)`,
 * `p = p·(1 − lr·λ) − u·lr` (with `λ = 0` the factor is exactly 1, as the composed path's skip).
 * Per-thread work: 4 loads, 3 stores, ~12 flops (plus the `stridedOffset` loop over the rank for
 * a strided gradient). No workgroup memory.
 * Limits: `n` < 2³² elements (the 2-D grid of `grid()` covers up to 65535² workgroups); a strided
 * gradient has rank ≤ MAX_RANK; the storages must be distinct buffers (a buffer cannot be bound
 * writable and read in one dispatch).
 * Params layout (u32 words, floats as their f32 bits): `[n, rank, shape × MAX_RANK,
 * gradient strides × MAX_RANK, gradient offset, β1, 1−β1, β2, 1−β2, c1, c2, ε, lr, 1−lr·λ]`
 * (shape, strides and offset unused for a contiguous gradient).
 *
 * @module
 */

import type { AdamWHyperparams, View } from "../../backend.ts";
import { ENTRY_WGSL, MAX_RANK, paramsWgsl, stridedWgsl } from "../_wgsl.ts";
import { type KernelInfo, kernelInfo } from "../cache.ts";
import { stridedParams } from "./elementwise.ts";

/** Params index of the gradient's strides (the elementwise kernels' input-0 layout). */
const GRAD_AT = 2 + MAX_RANK;
/** Params index of the first hyperparameter, after the gradient's strides and offset. */
const HP_AT = GRAD_AT + MAX_RANK + 1;

function adamwWgsl(strided: boolean): string {
  const read = strided ? `g[stridedOffset(i, ${GRAD_AT}u)]` : "g[i]";
  return /* wgsl */ `
${paramsWgsl("[n, rank, shape, grad strides, grad offset, f32 bits of the hyperparameters]")}
@group(0) @binding(1) var<storage, read_write> p: array<f32>; // parameter, updated in place
@group(0) @binding(2) var<storage, read> g: array<f32>; // gradient (strided view or contiguous)
@group(0) @binding(3) var<storage, read_write> m: array<f32>; // first moment, updated in place
@group(0) @binding(4) var<storage, read_write> v: array<f32>; // second moment, updated in place
${strided ? stridedWgsl(2, 1) : ""}
fn hp(k: u32) -> f32 { return bitcast<f32>(param(${HP_AT}u + k)); }
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let gi = ${read};
  let mi = m[i] * hp(0u) + gi * hp(1u);
  let vi = v[i] * hp(2u) + (gi * gi) * hp(3u);
  m[i] = mi;
  v[i] = vi;
  let update = (mi / hp(4u)) / (sqrt(vi / hp(5u)) + hp(6u));
  p[i] = p[i] * hp(8u) - update * hp(7u);
}`;
}

/** Whether `x` is row-major and dense from offset 0 (so element `i` is at `i`). */
function isFlat(x: View): boolean {
  let expected = 1;
  for (let d = x.shape.length - 1; d >= 0; d--) {
    if (x.shape[d] !== 1 && x.strides[d] !== expected) return false;
    expected *= x.shape[d];
  }
  return x.offset === 0;
}

/**
 * The fused AdamW update of the `n` elements of `grad`'s shape: bind the parameter as the
 * output (binding 1), the gradient's storage at binding 2 and the first and second moments at
 * bindings 3 and 4 (parameter and moments contiguous).
 *
 * @param grad The gradient, any strides (a contiguous one skips the index arithmetic).
 * @param h Hyperparameters and this step's bias corrections `c1 = 1 − β1ᵗ`, `c2 = 1 − β2ᵗ`.
 * @returns The kernel launch.
 *
 * @example A transposed [3, 5] gradient takes the strided variant
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { adamwKernel } from "./optim.ts";
 * const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, c1: 0.1, c2: 1e-3 };
 * const storage = { size: 15, dtype: "f32" as const };
 * const k = adamwKernel({ storage, shape: [3, 5], strides: [1, 3], offset: 0 }, h);
 * equal(k.key, "adamw:f32:strided");
 * equal(k.params[0], 15);
 * ```
 */
export function adamwKernel(grad: View, h: AdamWHyperparams): KernelInfo {
  const strided = !isFlat(grad);
  const floats = new Float32Array([
    h.beta1,
    1 - h.beta1,
    h.beta2,
    1 - h.beta2,
    h.c1,
    h.c2,
    h.eps,
    h.lr,
    1 - h.lr * h.weightDecay,
  ]);
  const params = new Uint32Array(HP_AT + floats.length);
  if (strided) params.set(stridedParams(grad.shape, [grad]));
  const n = grad.shape.reduce((a, b) => a * b, 1);
  params[0] = n;
  params.set(new Uint32Array(floats.buffer), HP_AT);
  const key = `adamw:f32:${strided ? "strided" : "flat"}`;
  return kernelInfo(key, adamwWgsl(strided), n, params, "f32");
}
