/**
 * Reference fused causal attention, forward and backward (FlashAttention-2, Dao,
 * arXiv:2307.08691 §3.1, Algorithms 1 and 2, with one query or key row per "block"): the
 * `[t, s]` score matrix is never stored.
 *
 * Forward, per query row `i` of problem `b` (keys and values of problem `⌊b / group⌋`): an
 * online softmax over the keys `j ≤ s − t + i`, `m ← max(m, s_ij)`, `ℓ ← ℓ·e^{m_old − m} +
 * e^{s_ij − m}`, `o ← o·e^{m_old − m} + e^{s_ij − m} v_j`, then `o / ℓ` and `lse_i = m + log ℓ`.
 *
 * Backward, with `p_ij = exp(s_ij − lse_i)` recomputed and `D_i = Σ_c dO_ic O_ic`:
 * `dv_j = Σ_i p_ij dO_i`, `ds_ij = p_ij (dO_i · v_j − D_i)`, `dq_i = scale Σ_j ds_ij k_j`,
 * `dk_j = scale Σ_i ds_ij q_i` — `dq` by query rows, `dk`/`dv` by key rows (summed over the
 * `group` query problems sharing the key), so no row is written twice. This is the twin of the
 * WGSL kernels in `webgpu/kernels/attention.ts`, and the plain, slow truth they are tested against.
 *
 * @module
 */

import type { AttentionSpec, HostArray } from "../backend.ts";

/** `Σ_c a[ai + c] · b[bi + c]` over `n` elements. */
function dot(a: HostArray, ai: number, b: HostArray, bi: number, n: number): number {
  let acc = 0;
  for (let c = 0; c < n; c++) acc += a[ai + c] * b[bi + c];
  return acc;
}

/**
 * Fused causal attention forward into `out: [batch, t, dv]` and `lse: [batch, t]` (see
 * {@linkcode AttentionSpec} for the layouts).
 *
 * @param q Queries `[batch, t, d]`.
 * @param k Keys `[batch / group, s, d]`.
 * @param v Values `[batch / group, s, dv]`.
 * @param out Written: `[batch, t, dv]`.
 * @param lse Written: `[batch, t]`, the log-sum-exp of each query row's scaled scores.
 * @param spec Sizes and scale.
 */
export function attention(
  q: HostArray,
  k: HostArray,
  v: HostArray,
  out: HostArray,
  lse: HostArray,
  spec: AttentionSpec,
): void {
  const { batch, group, t, s, d, dv, scale } = spec;
  const acc = new Float64Array(dv);
  for (let b = 0; b < batch; b++) {
    const kv = Math.floor(b / group);
    for (let i = 0; i < t; i++) {
      const qi = (b * t + i) * d, last = s - t + i; // keys 0..last are visible
      let m = -Infinity, l = 0;
      acc.fill(0);
      for (let j = 0; j <= last; j++) {
        const kj = (kv * s + j) * d, vj = (kv * s + j) * dv;
        const sij = dot(q, qi, k, kj, d) * scale;
        const mNew = Math.max(m, sij);
        const corr = Math.exp(m - mNew), p = Math.exp(sij - mNew); // e^{-∞} = 0 at j = 0
        l = l * corr + p;
        for (let c = 0; c < dv; c++) acc[c] = acc[c] * corr + p * v[vj + c];
        m = mNew;
      }
      const oi = (b * t + i) * dv;
      for (let c = 0; c < dv; c++) out[oi + c] = acc[c] / l;
      lse[b * t + i] = m + Math.log(l);
    }
  }
}

/**
 * Fused causal attention backward: `dq: [batch, t, d]`, `dk: [batch / group, s, d]` and
 * `dv: [batch / group, s, dv]` from the forward's `out` and `lse` and the output gradient.
 *
 * @param q Queries `[batch, t, d]`.
 * @param k Keys `[batch / group, s, d]`.
 * @param v Values `[batch / group, s, dv]`.
 * @param o The forward output `[batch, t, dv]`.
 * @param lse The forward's log-sum-exp `[batch, t]`.
 * @param dO The gradient of the output `[batch, t, dv]`.
 * @param grads Written: `dq`, `dk`, `dv`.
 * @param spec Sizes and scale.
 */
export function attentionBackward(
  q: HostArray,
  k: HostArray,
  v: HostArray,
  o: HostArray,
  lse: HostArray,
  dO: HostArray,
  grads: { dq: HostArray; dk: HostArray; dv: HostArray },
  spec: AttentionSpec,
): void {
  const { batch, group, t, s, d, dv, scale } = spec;
  const { dq, dk, dv: dV } = grads;
  const rowD = new Float64Array(batch * t); // D_i = Σ_c dO_ic O_ic
  for (let r = 0; r < batch * t; r++) rowD[r] = dot(dO, r * dv, o, r * dv, dv);
  // dq, per query row i: scale Σ_j ds_ij k_j
  const accQ = new Float64Array(d);
  for (let b = 0; b < batch; b++) {
    const kv = Math.floor(b / group);
    for (let i = 0; i < t; i++) {
      const r = b * t + i, qi = r * d, oi = r * dv;
      accQ.fill(0);
      for (let j = 0; j <= s - t + i; j++) {
        const kj = (kv * s + j) * d, vj = (kv * s + j) * dv;
        const p = Math.exp(dot(q, qi, k, kj, d) * scale - lse[r]);
        const ds = p * (dot(dO, oi, v, vj, dv) - rowD[r]);
        for (let c = 0; c < d; c++) accQ[c] += ds * k[kj + c];
      }
      for (let c = 0; c < d; c++) dq[qi + c] = accQ[c] * scale;
    }
  }
  // dk, dv, per key row j: over the group's query problems and the rows i ≥ j − (s − t)
  const accK = new Float64Array(d), accV = new Float64Array(dv);
  for (let kv = 0; kv < batch / group; kv++) {
    for (let j = 0; j < s; j++) {
      const kj = (kv * s + j) * d, vj = (kv * s + j) * dv;
      accK.fill(0);
      accV.fill(0);
      for (let b = kv * group; b < (kv + 1) * group; b++) {
        for (let i = Math.max(0, j - (s - t)); i < t; i++) {
          const r = b * t + i, qi = r * d, oi = r * dv;
          const p = Math.exp(dot(q, qi, k, kj, d) * scale - lse[r]);
          const ds = p * (dot(dO, oi, v, vj, dv) - rowD[r]);
          for (let c = 0; c < dv; c++) accV[c] += p * dO[oi + c];
          for (let c = 0; c < d; c++) accK[c] += ds * q[qi + c];
        }
      }
      for (let c = 0; c < d; c++) dk[kj + c] = accK[c] * scale;
      for (let c = 0; c < dv; c++) dV[vj + c] = accV[c];
    }
  }
}
