/**
 * WGSL fused causal attention, forward and backward (FlashAttention-2, Dao, arXiv:2307.08691
 * §3.1, Algorithms 1 and 2): the `[t, s]` score matrix is never stored, only the per-row
 * log-sum-exp `lse` (forward) and `D_i = Σ dO_i ⊙ O_i` (backward). Layouts and sizes: see
 * `AttentionSpec` in `backend.ts`; problem `b` reads keys and values `⌊b / group⌋` (GQA/MQA).
 *
 * Algorithm (CPU-driver-shaped: one invocation per row, inner loops over the head dims, no
 * workgroup memory and no barriers — on lavapipe/llvmpipe the SIMD lanes are invocations and
 * barriers are expensive, see shared/notes/webgpu.md):
 * - forward, one invocation per query row `i`: keeps `q_i` and the output accumulator in
 *   private arrays and walks the visible keys `j ≤ s − t + i` in steps of `KT` keys: scores of
 *   the step, new running max `m`, one rescale of `ℓ` and the accumulator by `e^{m_old − m}`,
 *   then `Σ e^{s_ij − m} v_j`; writes `o_i = acc / ℓ` and `lse_i = m + log ℓ`.
 * - backward 1, one invocation per query row: `D_i`, saved, then
 *   `dq_i = scale Σ_j p_ij (dO_i · v_j − D_i) k_j` with `p_ij = exp(s_ij − lse_i)` recomputed.
 * - backward 2, one invocation per key row `j`: over the `group` query problems sharing it and
 *   the rows `i ≥ j − (s − t)` that see it, `dv_j = Σ p_ij dO_i`, `dk_j = scale Σ ds_ij q_i`.
 *   Every output row has one writer, so there are no atomics.
 * Grid: 64 rows per workgroup, one problem per workgroup row, so key/value (forward, dq) and
 * query (dk/dv) addresses are uniform across the SIMD lanes. Per-thread work: `O(s · (d + dv))`
 * flops (forward, dq) or `O(group · t · (d + dv))` (dk/dv); private memory `d + dv` floats.
 * Rows of width divisible by 4 are read as `vec4<f32>`. On CPU drivers the backend packs the
 * streamed operands (the rows every invocation of a workgroup reads: k and v for the forward and
 * dq, q and dO for dk/dv) into `rgba32float` storage textures first
 * ({@linkcode AttentionKernelOptions.textures}), as the texture matmul does: on lavapipe here
 * (B 16, H 4, T 128, d 64) that took the forward from 20 to 14 ms and the backward from 57 to
 * 30 ms, and a tiny-GPT training step with fused attention from 7% slower than the composed
 * path (batched matmuls, mask, softmax) to 6% faster.
 * Limits: `d` and `dv` are compiled in (one pipeline per pair; large widths spill private
 * arrays); problems (batch × heads) ≤ 65535 (the grid's y); infinities are avoided (the running
 * max starts at `−3e38`), since WGSL implementations may assume none. There is no GPU-shaped
 * variant (query tiles in workgroup memory) yet: on a real GPU these per-row loops are correct
 * but not the fast shape.
 *
 * @module
 */

import type { AttentionSpec } from "../../backend.ts";
import type { KernelInfo } from "../cache.ts";
import { paramsWgsl } from "../_wgsl.ts";

/** Keys per online-softmax step of the forward kernel (one rescale of the accumulator each). */
const KT = 4;
/** Rows per workgroup. */
const WG = 64;

/** Row storage of a width: `vec4<f32>` chunks when it divides by 4, else scalars. */
interface RowType {
  /** WGSL element type of the binding. */
  ty: string;
  /** Elements of `ty` per row. */
  n: number;
  /** WGSL expression summing the components of `x`. */
  sum: (x: string) => string;
}

function rowType(width: number): RowType {
  return width % 4 === 0
    ? { ty: "vec4<f32>", n: width / 4, sum: (x) => `dot(${x}, vec4<f32>(1.0))` }
    : { ty: "f32", n: width, sum: (x) => x };
}

/**
 * A launch over the grid `[⌈rowsPer / WG⌉, problems]` with the parameter words shared by the
 * three kernels, `[t, s, group, scale bits]`.
 */
function launch(
  key: string,
  code: string,
  spec: AttentionSpec,
  problems: number,
  rowsPer: number,
): KernelInfo {
  if (problems > 65535) {
    throw new Error(
      `Cannot launch fused attention over ${problems} problems: at most 65535 (batch × heads)`,
    );
  }
  const scale = new Uint32Array(new Float32Array([spec.scale]).buffer)[0];
  return {
    key,
    code,
    workgroupSize: WG,
    dispatch: [Math.max(Math.ceil(rowsPer / WG), 1), Math.max(problems, 1)],
    params: Uint32Array.from([spec.t, spec.s, spec.group, scale]),
    outDType: "f32",
    n: problems * rowsPer,
  };
}

/**
 * Declaration and row accessor `${name}At(row, c)` of a streamed operand (rows read by every
 * invocation of a workgroup): a storage buffer, or — `tex`, rows of vec4 only — a read-only
 * `rgba32float` storage texture with one row per texture row (packed by the backend), whose
 * loads cost a fraction of storage-buffer loads on CPU drivers (see ./matmul_texture.ts).
 */
function streamedWgsl(binding: number, name: string, row: RowType, tex: boolean, note: string) {
  return tex
    ? `@group(0) @binding(${binding}) var ${name}: texture_storage_2d<rgba32float, read>; // ${note}
fn ${name}At(r: u32, c: u32) -> vec4<f32> { return textureLoad(${name}, vec2<u32>(c, r)); }`
    : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${row.ty}>; // ${note}
fn ${name}At(r: u32, c: u32) -> ${row.ty} { return ${name}[r * ${row.n}u + c]; }`;
}

/** Constants of the three kernels. */
function headerWgsl(qk: RowType, v: RowType): string {
  return /* wgsl */ `
const DQ = ${qk.n}u; // ${qk.ty} per q/k row
const DV = ${v.n}u; // ${v.ty} per v/o row
const KT = ${KT}u; // keys per online-softmax step
const LOW = -3.0e38; // start of the running max (finite: WGSL may assume no infinities)
const WG = ${WG}u; // invocations (rows) per workgroup`;
}

/**
 * Entry point over the 2-D grid `[⌈rows / WG⌉, problems]`: the problem `b = workgroup_id.y`
 * (and so every key/value address of the forward and dq kernels, and every query address of
 * the dk/dv kernel) is uniform across a workgroup, so SIMD lanes share those loads. `row` is
 * the query row (forward, dq) or key row (dk/dv) within the problem.
 */
const ENTRY_2D_WGSL = /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = param(0);
  let s = param(1);
  let group = param(2);
  let scale = bitcast<f32>(param(3));
  let b = wid.y;
  let row0 = wid.x * WG; // first row of this workgroup
  let row = row0 + lid.x;`;

function forwardWgsl(qk: RowType, v: RowType, tex: boolean): string {
  return /* wgsl */ `
${paramsWgsl("[t, s, group, scale bits]")}
@group(0) @binding(1) var<storage, read_write> out: array<${v.ty}>; // o [batch, t, dv]
@group(0) @binding(2) var<storage, read> q: array<${qk.ty}>; // [batch, t, d]
${streamedWgsl(3, "k", qk, tex, "[batch / group, s, d]")}
${streamedWgsl(4, "v", v, tex, "[batch / group, s, dv]")}
@group(0) @binding(5) var<storage, read_write> lse: array<f32>; // [batch, t], written
${headerWgsl(qk, v)}
${ENTRY_2D_WGSL}
  if (row >= t) { return; }
  let i = b * t + row; // query row in q, out, lse
  let kvRow = (b / group) * s; // first key row of this problem's key/value head
  let last = s - t + row; // query row sees keys 0..last
  let lastWg = s - t + min(t - 1u, row0 + WG - 1u); // the workgroup's last key (uniform bound)
  var qi: array<${qk.ty}, DQ>;
  for (var c = 0u; c < DQ; c++) { qi[c] = q[i * DQ + c]; }
  var acc: array<${v.ty}, DV>;
  var m = LOW;
  var l = 0.0;
  for (var j0 = 0u; j0 <= lastWg; j0 += KT) {
    var sc: array<f32, KT>;
    var mNew = m;
    for (var u = 0u; u < KT; u++) {
      let j = j0 + u;
      var x = LOW;
      if (j <= last) {
        var a = ${qk.ty}(0.0);
        for (var c = 0u; c < DQ; c++) { a += qi[c] * kAt(kvRow + j, c); }
        x = ${qk.sum("a")} * scale;
      }
      sc[u] = x;
      mNew = max(mNew, x);
    }
    let corr = exp(m - mNew); // rescale what was summed under the old max
    l *= corr;
    for (var c = 0u; c < DV; c++) { acc[c] *= corr; }
    for (var u = 0u; u < KT; u++) {
      let j = j0 + u;
      if (j <= last) {
        let p = exp(sc[u] - mNew);
        l += p;
        for (var c = 0u; c < DV; c++) { acc[c] += p * vAt(kvRow + j, c); }
      }
    }
    m = mNew;
  }
  let inv = 1.0 / l;
  for (var c = 0u; c < DV; c++) { out[i * DV + c] = acc[c] * inv; }
  lse[i] = m + log(l);
}`;
}

function backwardQWgsl(qk: RowType, v: RowType, tex: boolean): string {
  return /* wgsl */ `
${paramsWgsl("[t, s, group, scale bits]")}
@group(0) @binding(1) var<storage, read_write> dq: array<${qk.ty}>; // [batch, t, d]
@group(0) @binding(2) var<storage, read> q: array<${qk.ty}>; // [batch, t, d]
${streamedWgsl(3, "k", qk, tex, "[batch / group, s, d]")}
${streamedWgsl(4, "v", v, tex, "[batch / group, s, dv]")}
@group(0) @binding(5) var<storage, read> o: array<${v.ty}>; // forward output [batch, t, dv]
@group(0) @binding(6) var<storage, read> lse: array<f32>; // forward log-sum-exp [batch, t]
@group(0) @binding(7) var<storage, read> dO: array<${v.ty}>; // output gradient [batch, t, dv]
@group(0) @binding(8) var<storage, read_write> rowD: array<f32>; // D = Σ dO ⊙ o [batch, t], written
${headerWgsl(qk, v)}
${ENTRY_2D_WGSL}
  if (row >= t) { return; }
  let i = b * t + row;
  let kvRow = (b / group) * s;
  let last = s - t + row;
  let lastWg = s - t + min(t - 1u, row0 + WG - 1u);
  var qi: array<${qk.ty}, DQ>;
  for (var c = 0u; c < DQ; c++) { qi[c] = q[i * DQ + c]; }
  var gi: array<${v.ty}, DV>;
  var dsum = ${v.ty}(0.0);
  for (var c = 0u; c < DV; c++) {
    gi[c] = dO[i * DV + c];
    dsum += gi[c] * o[i * DV + c];
  }
  let di = ${v.sum("dsum")};
  rowD[i] = di;
  let li = lse[i];
  var acc: array<${qk.ty}, DQ>;
  for (var j = 0u; j <= lastWg; j++) {
    if (j > last) { break; }
    var kj: array<${qk.ty}, DQ>; // loaded once, used twice (loads dominate on CPU drivers)
    var a = ${qk.ty}(0.0);
    for (var c = 0u; c < DQ; c++) { kj[c] = kAt(kvRow + j, c); a += qi[c] * kj[c]; }
    let p = exp(${qk.sum("a")} * scale - li);
    var b = ${v.ty}(0.0);
    for (var c = 0u; c < DV; c++) { b += gi[c] * vAt(kvRow + j, c); }
    let ds = p * (${v.sum("b")} - di);
    for (var c = 0u; c < DQ; c++) { acc[c] += ds * kj[c]; }
  }
  for (var c = 0u; c < DQ; c++) { dq[i * DQ + c] = acc[c] * scale; }
}`;
}

function backwardKvWgsl(qk: RowType, v: RowType, tex: boolean): string {
  return /* wgsl */ `
${paramsWgsl("[t, s, group, scale bits]")}
@group(0) @binding(1) var<storage, read_write> dk: array<${qk.ty}>; // [batch / group, s, d]
${streamedWgsl(2, "q", qk, tex, "[batch, t, d]")}
@group(0) @binding(3) var<storage, read> k: array<${qk.ty}>; // [batch / group, s, d]
@group(0) @binding(4) var<storage, read> v: array<${v.ty}>; // [batch / group, s, dv]
@group(0) @binding(5) var<storage, read> lse: array<f32>; // forward log-sum-exp [batch, t]
${streamedWgsl(6, "dO", v, tex, "output gradient [batch, t, dv]")}
@group(0) @binding(7) var<storage, read> rowD: array<f32>; // D = Σ dO ⊙ o [batch, t]
@group(0) @binding(8) var<storage, read_write> dv: array<${v.ty}>; // [batch / group, s, dv], written
${headerWgsl(qk, v)}
${ENTRY_2D_WGSL}
  if (row >= s) { return; }
  let i = b * s + row; // key row in k, v, dk, dv
  let j = row;
  let b0 = b * group; // first query problem reading this key
  let first = select(0u, j - (s - t), j > s - t); // first query row that sees key j
  let firstWg = select(0u, row0 - (s - t), row0 > s - t); // the workgroup's (uniform) start
  var kj: array<${qk.ty}, DQ>;
  for (var c = 0u; c < DQ; c++) { kj[c] = k[i * DQ + c]; }
  var vj: array<${v.ty}, DV>;
  for (var c = 0u; c < DV; c++) { vj[c] = v[i * DV + c]; }
  var accK: array<${qk.ty}, DQ>;
  var accV: array<${v.ty}, DV>;
  for (var bq = b0; bq < b0 + group; bq++) {
    for (var qr = firstWg; qr < t; qr++) {
      if (qr < first) { continue; }
      let r = bq * t + qr;
      var qv: array<${qk.ty}, DQ>; // rows loaded once, used twice
      var gv: array<${v.ty}, DV>;
      var a = ${qk.ty}(0.0);
      for (var c = 0u; c < DQ; c++) { qv[c] = qAt(r, c); a += qv[c] * kj[c]; }
      let p = exp(${qk.sum("a")} * scale - lse[r]);
      var e = ${v.ty}(0.0);
      for (var c = 0u; c < DV; c++) { gv[c] = dOAt(r, c); e += gv[c] * vj[c]; }
      let ds = p * (${v.sum("e")} - rowD[r]);
      for (var c = 0u; c < DV; c++) { accV[c] += p * gv[c]; }
      for (var c = 0u; c < DQ; c++) { accK[c] += ds * qv[c]; }
    }
  }
  for (var c = 0u; c < DQ; c++) { dk[i * DQ + c] = accK[c] * scale; }
  for (var c = 0u; c < DV; c++) { dv[i * DV + c] = accV[c]; }
}`;
}

function widthsKey(spec: AttentionSpec, textures: boolean): string {
  return `d=${spec.d}:dv=${spec.dv}${textures ? ":tex" : ""}`;
}

/** Options of the attention launchers. */
export interface AttentionKernelOptions {
  /**
   * Read the streamed operands (forward and dq: k and v; dk/dv: q and dO) from `rgba32float`
   * storage textures the caller packed, one row per texture row (see
   * {@linkcode attentionTexturesApply}) — the fast path on CPU drivers.
   * @default {false}
   */
  textures?: boolean;
}

/**
 * Whether the streamed operands can be read as textures: rows of vec4 (`d` and `dv` multiples
 * of 4) and every operand's rows (`batch·t` and `batch/group·s`) within `maxDimension`.
 *
 * @param spec Sizes.
 * @param maxDimension The device's `maxTextureDimension2D`.
 * @returns Whether {@linkcode AttentionKernelOptions.textures} may be set.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { attentionTexturesApply } from "./attention.ts";
 * const spec = { batch: 64, group: 1, t: 128, s: 128, d: 64, dv: 64, scale: 0.125 };
 * equal(attentionTexturesApply(spec, 16384), true);
 * equal(attentionTexturesApply({ ...spec, d: 6 }, 16384), false);
 * equal(attentionTexturesApply(spec, 4096), false);
 * ```
 */
export function attentionTexturesApply(spec: AttentionSpec, maxDimension: number): boolean {
  return spec.d % 4 === 0 && spec.dv % 4 === 0 && spec.d > 0 && spec.dv > 0 &&
    Math.max(spec.batch * spec.t, (spec.batch / spec.group) * spec.s) <= maxDimension;
}

/**
 * The fused attention forward: one invocation per query row. Bind `out` (`[batch, t, dv]`) at
 * 1, then `q`, `k`, `v` at 2–4 and `lse` (`[batch, t]`, written) at 5.
 *
 * @param spec Sizes and scale.
 * @returns The kernel launch.
 *
 * @example One pipeline per (d, dv) pair
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { attentionKernel } from "./attention.ts";
 * const k = attentionKernel({ batch: 8, group: 2, t: 5, s: 7, d: 16, dv: 3, scale: 0.25 });
 * equal(k.key, "attention:fwd:d=16:dv=3");
 * equal(k.n, 40);
 * ```
 */
export function attentionKernel(
  spec: AttentionSpec,
  options: AttentionKernelOptions = {},
): KernelInfo {
  const tex = options.textures ?? false;
  const code = forwardWgsl(rowType(spec.d), rowType(spec.dv), tex);
  return launch(`attention:fwd:${widthsKey(spec, tex)}`, code, spec, spec.batch, spec.t);
}

/**
 * The fused attention backward for `dq` (and `D_i`): one invocation per query row. Bind `dq`
 * (`[batch, t, d]`) at 1, then `q`, `k`, `v`, `o`, `lse`, `dO` at 2–7 and `D` (`[batch, t]`,
 * written) at 8.
 *
 * @param spec Sizes and scale.
 * @returns The kernel launch.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { attentionBackwardQKernel } from "./attention.ts";
 * const k = attentionBackwardQKernel({ batch: 2, group: 1, t: 3, s: 3, d: 4, dv: 4, scale: 1 });
 * equal(k.key, "attention:bwdQ:d=4:dv=4");
 * ```
 */
export function attentionBackwardQKernel(
  spec: AttentionSpec,
  options: AttentionKernelOptions = {},
): KernelInfo {
  const tex = options.textures ?? false;
  const code = backwardQWgsl(rowType(spec.d), rowType(spec.dv), tex);
  return launch(`attention:bwdQ:${widthsKey(spec, tex)}`, code, spec, spec.batch, spec.t);
}

/**
 * The fused attention backward for `dk` and `dv`: one invocation per key row, which must run
 * after {@linkcode attentionBackwardQKernel} (it reads `D`). Bind `dk` (`[batch / group, s, d]`)
 * at 1, then `q`, `k`, `v`, `lse`, `dO`, `D` at 2–7 and `dv` (`[batch / group, s, dv]`,
 * written) at 8.
 *
 * @param spec Sizes and scale.
 * @returns The kernel launch.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { attentionBackwardKvKernel } from "./attention.ts";
 * const k = attentionBackwardKvKernel({ batch: 4, group: 2, t: 3, s: 5, d: 4, dv: 4, scale: 1 });
 * equal(k.n, 10); // (4 / 2) · 5 key rows
 * ```
 */
export function attentionBackwardKvKernel(
  spec: AttentionSpec,
  options: AttentionKernelOptions = {},
): KernelInfo {
  const tex = options.textures ?? false;
  const code = backwardKvWgsl(rowType(spec.d), rowType(spec.dv), tex);
  const key = `attention:bwdKV:${widthsKey(spec, tex)}`;
  return launch(key, code, spec, spec.batch / spec.group, spec.s);
}
