/**
 * WGSL fused rotary position embedding (RoPE, arXiv:2104.09864 §3.2; DeepSeek-V3's adjacent
 * pairs): `x: [B, T, H, d]` with pairs `(x[2j], x[2j+1])` rotated by the host tables
 * `cos, sin: [T, d/2]`, forward or inverse (the backward). One dispatch replaces the ~8 strided
 * elementwise dispatches (plus zero fills and assigns of the concat) of the composed op, and its
 * ~9 in backward.
 *
 * Algorithm (the cpu twin is `lib/backend/cpu/rope.ts`): invocation `i` owns a contiguous chunk
 * of a row, finds its row `r = ⌊i / per-row⌋` and position `t = ⌊r / H⌋ mod T`, and computes
 * `out = (re · c − σ im · s, σ re · s + im · c)` with `σ = −1` when inverse.
 * - `rope` (any `d/2`): one pair per invocation, `x`/`out` bound as `array<vec2<f32>>`.
 * - `ropeVec4` (`d/2` even): two pairs per invocation, `x`/`out` as `array<vec4<f32>>` and the
 *   tables as `array<vec2<f32>>`: one 16-byte load and store per invocation (on Mesa's CPU
 *   drivers every storage load is a loop over SIMD lanes, so wide loads are much cheaper).
 * Per-thread work: O(1); no workgroup memory, no barriers.
 * Limits: `B · T · H · d` < 2³² elements; storages are contiguous from offset 0 and distinct.
 *
 * @module
 */

import { ENTRY_WGSL, paramsWgsl } from "../_wgsl.ts";
import { type KernelInfo, kernelInfo } from "../cache.ts";
import type { RopeSpec } from "../../backend.ts";

/**
 * Fused rotary embedding: binding 1 `out: [rows, d]`, 2 `x: [rows, d]`, 3 `cos: [T, d/2]`,
 * 4 `sin: [T, d/2]`; the vec4 variant where `half` is even, else one pair per invocation.
 *
 * @param spec Sizes and direction (see {@linkcode RopeSpec}); `inverse` travels in the params,
 *   so both directions share a pipeline.
 * @returns The kernel launch.
 *
 * @example Two pairs per invocation where d/2 is even
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ropeKernel } from "./rope.ts";
 * const spec = { rows: 6, heads: 3, positions: 2, half: 4, inverse: false };
 * equal(ropeKernel(spec).key, "ropeVec4");
 * equal(ropeKernel(spec).n, 12);
 * equal(ropeKernel({ ...spec, half: 3, inverse: true }).key, "rope");
 * ```
 */
export function ropeKernel(spec: RopeSpec): KernelInfo {
  const { rows, heads, positions, half, inverse } = spec;
  const vec4 = half % 2 === 0;
  const lanes = vec4 ? 2 : 1; // pairs per invocation
  const perRow = half / lanes, n = rows * perRow;
  const params = [n, perRow, heads, positions, inverse ? 1 : 0];
  const head = /* wgsl */ `
${paramsWgsl("n, chunks per row, H, T, inverse")}
@group(0) @binding(1) var<storage, read_write> out: array<vec${2 * lanes}<f32>>; // [rows, d]
@group(0) @binding(2) var<storage, read> x: array<vec${2 * lanes}<f32>>; // [rows, d]
@group(0) @binding(3) var<storage, read> cosT: array<${vec4 ? "vec2<f32>" : "f32"}>; // [T, d/2]
@group(0) @binding(4) var<storage, read> sinT: array<${vec4 ? "vec2<f32>" : "f32"}>; // [T, d/2]
${ENTRY_WGSL}
  if (i >= param(0)) { return; }
  let per = param(1);
  let row = i / per;
  let tab = ((row / param(2)) % param(3)) * per + i % per; // position t, pair chunk
  let sg = select(1.0, -1.0, param(4) != 0u); // inverse: rotate by −θ
  let v = x[i];`;
  const code = vec4
    ? /* wgsl */ `${head}
  let c = cosT[tab];
  let s = sinT[tab] * sg;
  // (re0, im0, re1, im1) · (c0, c0, c1, c1) + (im0, re0, im1, re1) · (−s0, s0, −s1, s1)
  out[i] = v * vec4<f32>(c.x, c.x, c.y, c.y) + v.yxwz * vec4<f32>(-s.x, s.x, -s.y, s.y);
}`
    : /* wgsl */ `${head}
  let c = cosT[tab];
  let s = sinT[tab] * sg;
  out[i] = vec2<f32>(v.x * c - v.y * s, v.x * s + v.y * c);
}`;
  return kernelInfo(vec4 ? "ropeVec4" : "rope", code, n, params, "f32");
}
