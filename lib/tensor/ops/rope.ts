/**
 * Rotary position embedding (RoPE, Su et al., arXiv:2104.09864 §3.2) as one autograd op over the
 * optional `Backend.rope` kernel: each adjacent pair `z_j = x[2j] + i x[2j+1]` of
 * `x: [B, T, H, d]` becomes `z_j (cos θ_tj + i sin θ_tj)` for host-computed tables
 * `cos, sin: [T, d/2]`. A rotation is orthogonal, so the backward is the inverse rotation of the
 * upstream gradient, `dx = rope(dy, −θ)`: one kernel each way instead of the composed ops'
 * reshape, slices, four products, a sum, a difference and a concat (and their backward rules).
 * The tables carry no gradient.
 *
 * Shapes: `B` batch, `T` positions, `H` heads, `d` rotary dims (even), `d/2` pairs.
 *
 * @module
 */

import type { Backend } from "../../backend/backend.ts";
import { record } from "../autograd.ts";
import { checkDType } from "../dtype.ts";
import { formatShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { checkSameBackend, wrap } from "./_util.ts";
import { add, mul, sub } from "./elementwise.ts";
import { concat, reshape, slice } from "./movement.ts";

/** The per-position rotation of {@linkcode ropeRotate}: `cos θ_tj` and `sin θ_tj`. */
export interface RopeTables {
  /** `cos θ_tj`: `f32 [T, d/2]`. */
  cos: Tensor;
  /** `sin θ_tj`: `f32 [T, d/2]`. */
  sin: Tensor;
}

/** Options for {@linkcode ropeRotate}. */
export interface RopeRotateOptions {
  /**
   * Use the backend's fused kernel ({@linkcode Backend.rope}) when it has one; `false` forces
   * the composed ops, the plain reference the fused path is tested against.
   * @default {true}
   */
  fused?: boolean;
}

/** A backend with the fused rotary kernel. */
type RopeBackend = Backend & Required<Pick<Backend, "rope">>;

function hasFusedRope(backend: Backend): backend is RopeBackend {
  return backend.rope !== undefined;
}

/**
 * Rotate the adjacent pairs of `x: [B, T, H, d]` by the angles of `tables` (`[T, d/2]`):
 * `out[.., 2j] = x_2j cos − x_2j+1 sin`, `out[.., 2j+1] = x_2j sin + x_2j+1 cos`. One fused
 * kernel forward and one backward (the inverse rotation) where the backend has it, else the
 * composed ops. `x` may be a strided view; the tables get no gradient.
 * Ref: arXiv:2104.09864 eq. (34).
 *
 * @param x Queries or keys `[B, T, H, d]` (f32).
 * @param tables `cos` and `sin`, each `[T, d/2]` (f32).
 * @param options `fused: false` forces the composed ops.
 * @returns `[B, T, H, d]`.
 *
 * @example A quarter turn of one pair; the fused and composed paths agree
 * ```ts
 * import { ropeRotate, tensor } from "../mod.ts";
 * import { assertAllClose } from "../assert.ts";
 * const x = tensor([1, 2], { shape: [1, 1, 1, 2] });
 * const tables = { cos: tensor([[0]]), sin: tensor([[1]]) };
 * assertAllClose(ropeRotate(x, tables), [[[[-2, 1]]]]);
 * assertAllClose(ropeRotate(x, tables, { fused: false }), [[[[-2, 1]]]]);
 * ```
 */
export function ropeRotate(x: Tensor, tables: RopeTables, options: RopeRotateOptions = {}): Tensor {
  const { cos, sin } = tables;
  checkSameBackend("apply RoPE to", [x, cos, sin]);
  checkDType(x.dtype, ["f32"], "apply RoPE to");
  checkDType(cos.dtype, ["f32"], "apply RoPE with a cos table of");
  checkDType(sin.dtype, ["f32"], "apply RoPE with a sin table of");
  const [b, t, h, d] = x.shape;
  const half = d / 2;
  const table = [t, half].join();
  if (
    x.rank !== 4 || d % 2 !== 0 || cos.shape.join() !== table || sin.shape.join() !== table
  ) {
    throw new Error(
      `Cannot apply RoPE with tables ${formatShape(cos.shape)} and ${formatShape(sin.shape)} ` +
        `to input ${formatShape(x.shape)}: expected [B, T, H, d] with d even and tables [T, d/2]`,
    );
  }
  const backend = x.backend;
  if (options.fused === false || !hasFusedRope(backend)) {
    const c = reshape(cos.detach(), [t, 1, half, 1]); // constants: [T, 1, d/2, 1]
    const s = reshape(sin.detach(), [t, 1, half, 1]); // [T, 1, d/2, 1]
    const pairs = reshape(x, [b, t, h, half, 2]); // z_j = (re, im): [B, T, H, d/2, 2]
    const re = slice(pairs, -1, 0, 1), im = slice(pairs, -1, 1, 2); // [B, T, H, d/2, 1]
    const outRe = sub(mul(re, c), mul(im, s)); // Re(z e^{iθ}): [B, T, H, d/2, 1]
    const outIm = add(mul(re, s), mul(im, c)); // Im(z e^{iθ}): [B, T, H, d/2, 1]
    return reshape(concat([outRe, outIm], -1), [b, t, h, d]); // [B, T, H, d]
  }
  // Fast path: one kernel each way; the backward rotates dy by −θ (Rᵀ = R⁻¹).
  const spec = { rows: b * t * h, heads: h, positions: t, half, inverse: false };
  const rotate = (v: Tensor, inverse: boolean): Tensor => {
    const vs = v.contiguousStorage(), cs = cos.contiguousStorage(), ss = sin.contiguousStorage();
    const out = backend.rope(vs.storage, cs.storage, ss.storage, { ...spec, inverse });
    for (const st of [vs, cs, ss]) if (st.owned) backend.release(st.storage);
    return wrap(x, out, x.shape);
  };
  return record(rotate(x, false), "rope", [x], (dy) => [rotate(dy, true)]);
}
