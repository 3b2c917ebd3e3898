/**
 * Fused causal attention (FlashAttention, Dao et al., arXiv:2205.14135; backward as in
 * FlashAttention-2, arXiv:2307.08691 §3.1) as one autograd op over the optional
 * `Backend.attention` / `Backend.attentionBackward` kernels: the `[T, S]` scores and
 * probabilities are never materialised, only the output and one log-sum-exp per query row.
 *
 * Forward: `o_i = Σ_{j ≤ S−T+i} softmax_j(q_i · k_j · scale) v_j`, `lse_i = log Σ_j e^{s_ij}`.
 * Backward: `D_i = Σ dO_i ⊙ o_i`, `p_ij = e^{s_ij − lse_i}`, `ds_ij = p_ij (dO_i · v_j − D_i)`,
 * `dq_i = scale Σ_j ds_ij k_j`, `dk_j = scale Σ_i ds_ij q_i`, `dv_j = Σ_i p_ij dO_i`.
 *
 * Shapes: `T` queries, `S ≥ T` keys, `d` query/key width, `d_v` value width; leading axes
 * broadcast (NumPy rules). Key/value heads shared by the trailing leading axes (GQA's
 * `[B, G, 1, S, d_h]` against queries `[B, G, R, T, d_h]`, MLA's latent `[B, 1, S, d_c]`) are
 * passed to the kernel once with a `group` count, not expanded.
 *
 * @module
 */

import type { AttentionSpec, Backend } from "../../backend/backend.ts";
import { record } from "../autograd.ts";
import { checkDType } from "../dtype.ts";
import { broadcastShapes, formatShape, shapeSize } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { checkSameBackend, wrap } from "./_util.ts";
import { expand, reshape } from "./movement.ts";

/** Options for {@linkcode fusedCausalAttention}. */
export interface FusedCausalAttentionOptions {
  /**
   * Multiplier of `q kᵀ` before the softmax.
   * @default {1 / √d} (d the last dim of q)
   */
  scale?: number;
}

/**
 * Whether `backend` has the fused attention kernels ({@linkcode fusedCausalAttention} runs).
 *
 * @param backend A backend.
 * @returns `true` when it implements `attention` and `attentionBackward`.
 *
 * @example The cpu reference backend has them
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { CpuBackend } from "../../backend/cpu.ts";
 * import { hasFusedAttention } from "./attention.ts";
 * strictEqual(hasFusedAttention(new CpuBackend()), true);
 * ```
 */
export function hasFusedAttention(backend: Backend): boolean {
  return backend.attention !== undefined && backend.attentionBackward !== undefined;
}

/** `a` with leading 1s up to `rank` axes. */
function padLead(a: readonly number[], rank: number): number[] {
  return [...new Array<number>(rank - a.length).fill(1), ...a];
}

/**
 * Causal scaled dot-product attention `softmax(q kᵀ · scale + M) v` in one fused kernel
 * (forward) and two (backward); query `i` sees keys `j ≤ S − T + i`. Equal, to float rounding,
 * to the composed `causalAttention` of `lib/nn/attention.ts`, which calls this when the backend
 * has the kernels ({@linkcode hasFusedAttention}); call it directly to time the kernel.
 *
 * Ref: arXiv:2205.14135 Algorithm 1 (online softmax); arXiv:2307.08691 Algorithm 2 (backward).
 *
 * @param q Queries `[..., T, d]` (f32).
 * @param k Keys `[..., S, d]`, `S ≥ T`; leading axes broadcast against `q`'s.
 * @param v Values `[..., S, d_v]`.
 * @param options `scale`.
 * @returns `[..., T, d_v]` (the broadcast leading axes).
 *
 * @example One key/value head shared by two query heads (MQA); the first query sees one key
 * ```ts
 * import { assertAllClose } from "../assert.ts";
 * import { tensor } from "../mod.ts";
 * import { fusedCausalAttention } from "./attention.ts";
 * const q = tensor([[[1], [1]], [[0], [0]]]); // [2 heads, T 2, d 1]
 * const k = tensor([[[0], [0]]]), v = tensor([[[2], [4]]]); // [1 head, S 2, 1]
 * assertAllClose(fusedCausalAttention(q, k, v), [[[2], [3]], [[2], [3]]]);
 * ```
 */
export function fusedCausalAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: FusedCausalAttentionOptions = {},
): Tensor {
  checkSameBackend("attend with", [q, k, v]);
  for (const x of [q, k, v]) checkDType(x.dtype, ["f32"], "attend with");
  const t = q.shape.at(-2) ?? 0, s = k.shape.at(-2) ?? 0;
  const d = q.shape.at(-1) ?? 0, dv = v.shape.at(-1) ?? 0;
  if (q.rank < 2 || k.rank < 2 || v.rank < 2 || k.shape.at(-1) !== d || v.shape.at(-2) !== s) {
    throw new Error(
      `Cannot attend with q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${
        formatShape(v.shape)
      }: expected q [..., T, d], k [..., S, d], v [..., S, d_v]`,
    );
  }
  if (s < t) {
    throw new Error(`Cannot attend ${t} queries to ${s} keys: expected at least as many keys`);
  }
  const backend = q.backend;
  const forward = backend.attention?.bind(backend);
  const backward = backend.attentionBackward?.bind(backend);
  if (forward === undefined || backward === undefined) {
    throw new Error(
      `Cannot run fused attention on the '${backend.name}' backend: it has no attention kernel`,
    );
  }
  // Leading axes: q's are expanded to the broadcast shape; k/v keep one copy per value of the
  // axes before the last one along which they vary (`p`), shared by `group` query problems.
  const lead = broadcastShapes(
    broadcastShapes(q.shape.slice(0, -2), k.shape.slice(0, -2), "attend with"),
    v.shape.slice(0, -2),
    "attend with",
  );
  const kLead = padLead(k.shape.slice(0, -2), lead.length);
  const vLead = padLead(v.shape.slice(0, -2), lead.length);
  let p = 0;
  lead.forEach((_, a) => (p = kLead[a] !== 1 || vLead[a] !== 1 ? a + 1 : p));
  const batch = shapeSize(lead), kvBatch = shapeSize(lead.slice(0, p));
  const group = batch / Math.max(kvBatch, 1);
  const kvLead = lead.map((n, a) => (a < p ? n : 1));
  const flat = (x: Tensor, shape: number[], rows: number, width: number) => {
    const same = x.rank === shape.length && x.shape.every((n, a) => n === shape[a]);
    return reshape(same ? x : expand(x, shape), [rows, x.shape.at(-2) ?? 0, width]);
  };
  const q3 = flat(q, [...lead, t, d], batch, d); // [batch, T, d]
  const k3 = flat(k, [...kvLead, s, d], kvBatch, d); // [batch / group, S, d]
  const v3 = flat(v, [...kvLead, s, dv], kvBatch, dv); // [batch / group, S, d_v]
  const spec: AttentionSpec = {
    batch,
    group,
    t,
    s,
    d,
    dv,
    scale: options.scale ?? 1 / Math.sqrt(d),
  };
  const inputs = [q3, k3, v3].map((x) => x.contiguousStorage());
  const res = forward(inputs[0].storage, inputs[1].storage, inputs[2].storage, spec);
  for (const x of inputs) if (x.owned) backend.release(x.storage);
  const lse = wrap(q3, res.lse, [batch, t]);
  const o = wrap(q3, res.out, [batch, t, dv]);
  const y = record(o, "causalAttention", [q3, k3, v3], (dy) => {
    const held = [q3, k3, v3, dy].map((x) => x.contiguousStorage());
    const [qs, ks, vs, gs] = held.map((x) => x.storage);
    const g = backward(qs, ks, vs, o.storage, lse.storage, gs, spec);
    for (const x of held) if (x.owned) backend.release(x.storage);
    return [wrap(q3, g.dq, q3.shape), wrap(k3, g.dk, k3.shape), wrap(v3, g.dv, v3.shape)];
  });
  if (y.node === null) lse.dispose(); // no graph (inference, noGrad): nothing will need it
  return reshape(y, [...lead, t, dv]);
}
