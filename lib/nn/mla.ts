/**
 * Multi-head Latent Attention (MLA; DeepSeek-V2, arXiv:2405.04434 §2.1; DeepSeek-V3,
 * arXiv:2412.19437 §2.1.1, eqs. (1)–(11)), in DeepSeek-V3's checkpoint conventions
 * (inference/model.py `MLA`; Hugging Face `DeepseekV3Attention`):
 * - queries: `c^Q = RMSNorm(W^DQ h)` (`q_a_proj`, `q_a_layernorm`), `[q^C; q^R] = W^UQ c^Q`
 *   (`q_b_proj`, split per head as [nope, rope]); or `q_proj` straight from `h` when
 *   `queryLatentRank` is 0 (no query compression); `q^R` gets RoPE;
 * - keys/values: `kv_a_proj_with_mqa` gives `[c^KV; k^R]`; `c^KV` is normalised by
 *   `kv_a_layernorm`; `k^R` gets RoPE and is shared by all heads; `kv_b_proj` expands `c^KV`
 *   to per-head rows `[k^C_i; v_i]`;
 * - scores `q_i · k_i · (d_nope + d_h^R)^-1/2` (times `mscale²` under YaRN), causal softmax,
 *   `o_i = Σ_j p_ij v_j,i`, `u = W^O [o_1; …; o_nh]` (`o_proj`).
 * The cache holds only `c^KV` (normalised) and `k^R`: `d_c + d_h^R` elements per token per
 * layer.
 *
 * Two paths give the same numbers: naive (expand `c^KV` to per-head keys and values, as the
 * equations read) and absorbed (V3's `attn_impl = "absorb"`: `W^UK` is folded into the query,
 * `q̃_i = W^UKᵢᵀ q^C_i`, so scores are `q̃_i · c^KV_j + q^R_i · k^R_j`; attention averages the
 * latents, and `W^UV` is applied after: `o_i = W^UV_i Σ_j p_ij c^KV_j`).
 *
 * Shapes: `B` batch, `T` new tokens, `S` cached + new tokens, `H` = `n_h` heads, `d` model
 * width, `d_c` KV latent rank, `d_c'` query latent rank, `d_n` no-RoPE dims per head
 * (`qk_nope_head_dim`), `d_r` = `d_h^R` RoPE dims (`qk_rope_head_dim`), `d_v` value dims.
 *
 * @module
 */

import {
  concat,
  expand,
  matmul,
  permute,
  reshape,
  type Rng,
  slice,
  split,
  type Tensor,
  transpose,
  unsqueeze,
} from "../tensor/mod.ts";
import { dequantizeFp8Weight } from "../fp8/weights.ts";
import {
  type AttentionForwardOptions,
  type AttentionRopeConfig,
  causalAttention,
} from "./attention.ts";
import { Linear } from "./linear.ts";
import { type Module, parameterMap } from "./module.ts";
import { RmsNorm } from "./norm.ts";
import { Rope } from "./rope.ts";

/** Configuration of an {@linkcode Mla} layer; see {@linkcode MLA_DEFAULTS}. */
export interface MlaConfig {
  /** `d`, model width (V3: 7168). */
  dModel: number;
  /** `n_h`, attention heads (V3: 128). */
  heads: number;
  /** `d_c`, rank of the compressed key/value latent `c^KV` (V3 `kv_lora_rank` 512). */
  kvLatentRank: number;
  /** `d_c'`, rank of the query latent `c^Q`; 0 means no query compression (`q_proj`). */
  queryLatentRank?: number;
  /**
   * `d_h^R`, dims per head of the decoupled RoPE query/key (V3 `qk_rope_head_dim`).
   * @default {d_h / 2 rounded to even, d_h = dModel / heads}: see {@linkcode mlaRopeHeadDim}
   */
  ropeHeadDim?: number;
  /** `d_h`, no-RoPE query/key dims per head (V3 `qk_nope_head_dim`). @default {dModel / heads} */
  nopeHeadDim?: number;
  /** Value dims per head (V3 `v_head_dim`). @default {dModel / heads} */
  vHeadDim?: number;
  /** RoPE base and optional YaRN (its `mscale²` multiplies the softmax scale). */
  rope?: AttentionRopeConfig;
  /** RMSNorm eps of `q_a_layernorm` and `kv_a_layernorm`. */
  normEps?: number;
  /** Standard deviation of the normal init of every projection. */
  initStd?: number;
  /** Default path of {@linkcode Mla.forward}: absorbed (`true`) or naive (`false`). */
  absorb?: boolean;
}

/**
 * Defaults of {@linkcode MlaConfig}, sized for small models: what a run gets (the DSL's `mla()`
 * resolves them). The head widths follow the model (`d_h = dModel / heads`); DeepSeek-V3's own
 * sizes are {@linkcode MLA_V3}. `kvLatentRank` has no default.
 */
export const MLA_DEFAULTS = {
  /** `d_c'` = 0: no query compression (V3's q_lora_rank 1536 pays off only at large `d`). */
  queryLatentRank: 0,
  /** `d_h^R = d_h · ratio`, rounded to even (V3: 64 of head dim 128); RoPE rotates pairs. */
  ropeHeadDimRatio: 1 / 2,
  /** θ = 10000, no YaRN (V3 uses YaRN s = 40 after long-context extension). */
  rope: {} as AttentionRopeConfig,
  /** rms_norm_eps (V3 config.json). */
  normEps: 1e-6,
  /** initializer_range (V3 config.json). */
  initStd: 0.02,
  /** The plain, equation-shaped path: the reference the absorbed one is tested against. */
  absorb: false,
} as const;

/**
 * DeepSeek-V3's MLA sizes (arXiv:2412.19437 §4.2; the released 671B config.json): a 512-dim KV
 * latent, a 1536-dim query latent, 64 RoPE and 128 no-RoPE dims per head, 128 value dims.
 * (The `ModelArgs` of V3's inference code default `q_lora_rank` to 0.)
 *
 * @example V3 caches `d_c + d_h^R` = 576 numbers per token per layer
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { MLA_V3 } from "./mla.ts";
 * strictEqual(MLA_V3.kvLatentRank + MLA_V3.ropeHeadDim, 576);
 * ```
 */
export const MLA_V3 = {
  kvLatentRank: 512, // d_c, kv_lora_rank (§4.2)
  queryLatentRank: 1536, // d_c', q_lora_rank (§4.2)
  ropeHeadDim: 64, // d_h^R, qk_rope_head_dim (§4.2)
  nopeHeadDim: 128, // d_h, qk_nope_head_dim (§4.2)
  vHeadDim: 128, // v_head_dim (§4.2)
} as const;

/**
 * The default decoupled RoPE width per head: `d_h · ropeHeadDimRatio` rounded to an even number
 * (at least 2), `d_h` the head width `dModel / heads`.
 *
 * @param headDim `d_h`.
 * @returns `d_h^R`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { mlaRopeHeadDim } from "./mla.ts";
 * strictEqual(mlaRopeHeadDim(128), 64);
 * strictEqual(mlaRopeHeadDim(6), 4); // 3 rounds to the even 4
 * ```
 */
export function mlaRopeHeadDim(headDim: number): number {
  return 2 * Math.max(1, Math.round((headDim * MLA_DEFAULTS.ropeHeadDimRatio) / 2));
}

/** Every field of `config`, missing ones from {@linkcode MLA_DEFAULTS} and the head width. */
function resolveMlaConfig(config: MlaConfig): Required<MlaConfig> {
  const dh = config.dModel / config.heads; // d_h
  return {
    dModel: config.dModel,
    heads: config.heads,
    kvLatentRank: config.kvLatentRank,
    queryLatentRank: config.queryLatentRank ?? MLA_DEFAULTS.queryLatentRank,
    ropeHeadDim: config.ropeHeadDim ?? mlaRopeHeadDim(dh),
    nopeHeadDim: config.nopeHeadDim ?? dh,
    vHeadDim: config.vHeadDim ?? dh,
    rope: config.rope ?? MLA_DEFAULTS.rope,
    normEps: config.normEps ?? MLA_DEFAULTS.normEps,
    initStd: config.initStd ?? MLA_DEFAULTS.initStd,
    absorb: config.absorb ?? MLA_DEFAULTS.absorb,
  };
}

/** Options for {@linkcode Mla.forward}. */
export interface MlaForwardOptions extends AttentionForwardOptions {
  /**
   * Use the absorbed path (attention on the latent cache) instead of the naive one.
   * @default {config.absorb}
   */
  absorb?: boolean;
}

function checkSizes(config: Required<MlaConfig>): void {
  const sizes: [string, number][] = [
    ["dModel", config.dModel],
    ["heads", config.heads],
    ["kvLatentRank", config.kvLatentRank],
    ["ropeHeadDim", config.ropeHeadDim],
    ["nopeHeadDim", config.nopeHeadDim],
    ["vHeadDim", config.vHeadDim],
  ];
  for (const [what, n] of sizes) {
    if (!Number.isInteger(n) || n <= 0) {
      throw new Error(`Cannot build MLA with ${what} ${n}: expected a positive integer`);
    }
  }
  const dq = config.queryLatentRank;
  if (!Number.isInteger(dq) || dq < 0) {
    throw new Error(
      `Cannot build MLA with queryLatentRank ${dq}: expected 0 (no query compression) ` +
        `or a positive integer`,
    );
  }
  if (config.ropeHeadDim % 2 !== 0) {
    throw new Error(
      `Cannot build MLA with ropeHeadDim ${config.ropeHeadDim}: RoPE needs an even number of dims`,
    );
  }
}

/**
 * Multi-head Latent Attention. Parameters, in Hugging Face DeepSeek-V3 names and `[out, in]`:
 * `q_a_proj.weight: [d_c', d]`, `q_a_layernorm.weight: [d_c']`,
 * `q_b_proj.weight: [H (d_n + d_r), d_c']` (or `q_proj.weight: [H (d_n + d_r), d]`),
 * `kv_a_proj_with_mqa.weight: [d_c + d_r, d]`, `kv_a_layernorm.weight: [d_c]`,
 * `kv_b_proj.weight: [H (d_n + d_v), d_c]`, `o_proj.weight: [d, H d_v]`.
 *
 * Ref: arXiv:2412.19437 §2.1.1; arXiv:2405.04434 §2.1.
 *
 * @example Naive and absorbed paths agree; the cache holds `d_c + d_r` floats per token
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { KvCache } from "./attention.ts";
 * import { Mla } from "./mla.ts";
 * const rng = new Rng(0);
 * const mla = new Mla({
 *   dModel: 16, heads: 2, kvLatentRank: 8, queryLatentRank: 12,
 *   ropeHeadDim: 4, nopeHeadDim: 6, vHeadDim: 5,
 * }, rng);
 * const x = randn([1, 4, 16], { rng });
 * assertAllClose(mla.forward(x, { absorb: true }), mla.forward(x), { atol: 1e-5 });
 * const cache = new KvCache(1);
 * mla.forward(x, { cache: cache.layer(0), absorb: true });
 * strictEqual(cache.bytesPerToken(), (8 + 4) * 4);
 * ```
 */
export class Mla implements Module {
  /** The resolved configuration. */
  readonly config: Required<MlaConfig>;
  /** `W^DQ: [d_c', d]`, or `null` without query compression. */
  readonly qAProj: Linear | null;
  /** RMSNorm of `c^Q`, or `null` without query compression. */
  readonly qALayernorm: RmsNorm | null;
  /** `[W^UQ; W^QR]: [H (d_n + d_r), d_c']`, or `null` without query compression. */
  readonly qBProj: Linear | null;
  /** `[W^Q; W^QR]: [H (d_n + d_r), d]` when `queryLatentRank` is 0, else `null`. */
  readonly qProj: Linear | null;
  /** `[W^DKV; W^KR]: [d_c + d_r, d]`. */
  readonly kvAProjWithMqa: Linear;
  /** RMSNorm of `c^KV`. */
  readonly kvALayernorm: RmsNorm;
  /** `[W^UK; W^UV]` interleaved per head: `[H (d_n + d_v), d_c]`. */
  readonly kvBProj: Linear;
  /** `W^O: [d, H d_v]`. */
  readonly oProj: Linear;
  /** RoPE on the `d_r` decoupled dims. */
  readonly rope: Rope;
  /** `(d_n + d_r)^-1/2`, times `mscale²` under YaRN. */
  readonly softmaxScale: number;

  /**
   * Create the layer; weights are drawn from `rng` in parameter order.
   *
   * @param config Sizes, see {@linkcode MlaConfig}.
   * @param rng Seeded generator for the init.
   */
  constructor(config: MlaConfig, rng: Rng) {
    this.config = resolveMlaConfig(config);
    checkSizes(this.config);
    const { dModel: d, heads: h, initStd, normEps: eps } = this.config;
    const { kvLatentRank: dc, queryLatentRank: dq, ropeHeadDim: dr } = this.config;
    const { nopeHeadDim: dn, vHeadDim: dv } = this.config;
    const proj = (inFeatures: number, outFeatures: number) =>
      new Linear({ inFeatures, outFeatures, initStd }, rng);
    this.qAProj = dq > 0 ? proj(d, dq) : null;
    this.qALayernorm = dq > 0 ? new RmsNorm({ dim: dq, eps }) : null;
    this.qBProj = dq > 0 ? proj(dq, h * (dn + dr)) : null;
    this.qProj = dq > 0 ? null : proj(d, h * (dn + dr));
    this.kvAProjWithMqa = proj(d, dc + dr);
    this.kvALayernorm = new RmsNorm({ dim: dc, eps });
    this.kvBProj = proj(dc, h * (dn + dv));
    this.oProj = proj(h * dv, d);
    this.rope = new Rope({ ...this.config.rope, dim: dr });
    this.softmaxScale = this.rope.attentionFactor / Math.sqrt(dn + dr);
  }

  /**
   * Attend causally over the sequence (and the cache, if given).
   *
   * @param x Hidden states `[B, T, d]`.
   * @param options `cache` for generation; `absorb` to pick the path.
   * @returns `[B, T, d]`.
   */
  forward(x: Tensor, options: MlaForwardOptions = {}): Tensor {
    const { dModel, heads: h, kvLatentRank: dc, ropeHeadDim: dr, nopeHeadDim: dn } = this.config;
    if (x.rank !== 3 || x.shape[2] !== dModel) {
      throw new Error(
        `Cannot apply MLA to input [${x.shape.join(", ")}]: expected [B, T, ${dModel}]`,
      );
    }
    const [b, t] = x.shape;
    const { cache, absorb = this.config.absorb } = options;
    const offset = cache?.length ?? 0; // positions already cached
    const q = reshape(this.#queries(x), [b, t, h, dn + dr]); // [q^C_i; q^R_i]: [B, T, H, d_n + d_r]
    const [qNope, qRope] = split(q, [dn, dr], -1); // q^C: [B, T, H, d_n]; pre-RoPE q^R
    const qPe = this.rope.forward(qRope, { offset }); // q^R, eq. (8): [B, T, H, d_r]
    const kvA = this.kvAProjWithMqa.forward(x); // [W^DKV h; W^KR h]: [B, T, d_c + d_r]
    const [cRaw, kRope] = split(kvA, [dc, dr], -1); // [B, T, d_c], [B, T, d_r]
    const cKv = this.kvALayernorm.forward(cRaw); // c^KV (+ V3's RMSNorm), eq. (1): [B, T, d_c]
    const kPe4 = this.rope.forward(reshape(kRope, [b, t, 1, dr]), { offset }); // [B, T, 1, d_r]
    const kPe = reshape(kPe4, [b, t, dr]); // k^R, eq. (3): [B, T, d_r]
    const cached = cache ? cache.append({ kv: cKv, pe: kPe }) : { kv: cKv, pe: kPe };
    const { kv, pe } = cached; // all positions: [B, S, d_c], [B, S, d_r]
    const o = absorb
      ? this.#absorbed(qNope, qPe, kv, pe) // on the latents: [B, H, T, d_v]
      : this.#naive(qNope, qPe, kv, pe); // o_i, eq. (10): [B, H, T, d_v]
    const heads = reshape(permute(o, [0, 2, 1, 3]), [b, t, -1]); // [o_1; …; o_nh]: [B, T, H d_v]
    return this.oProj.forward(heads); // u = W^O [o_1; …; o_nh], eq. (11): [B, T, d]
  }

  /** `[q^C; q^R]` before RoPE, `[B, T, H (d_n + d_r)]`: `W^UQ RMSNorm(W^DQ h)` or `W^Q h`. */
  #queries(x: Tensor): Tensor {
    if (this.qAProj === null || this.qALayernorm === null || this.qBProj === null) {
      if (this.qProj === null) throw new Error("Cannot compute MLA queries: no query projection");
      return this.qProj.forward(x); // W^Q h: [B, T, H (d_n + d_r)]
    }
    const cQ = this.qALayernorm.forward(this.qAProj.forward(x)); // c^Q, eq. (6): [B, T, d_c']
    return this.qBProj.forward(cQ); // W^UQ c^Q, eq. (7) (+ W^QR c^Q): [B, T, H (d_n + d_r)]
  }

  /** The plain path: expand `c^KV` to per-head keys and values (eqs. (2), (4), (5), (9), (10)). */
  #naive(qNope: Tensor, qPe: Tensor, cKv: Tensor, kPe: Tensor): Tensor {
    const { heads: h, nopeHeadDim: dn, vHeadDim: dv, ropeHeadDim: dr } = this.config;
    const [b, s] = cKv.shape;
    const kv = reshape(this.kvBProj.forward(cKv), [b, s, h, dn + dv]); // [B, S, H, d_n + d_v]
    const [kNope, v] = split(kv, [dn, dv], -1); // k^C eq. (2): [B, S, H, d_n]; v^C eq. (5)
    const kR = expand(reshape(kPe, [b, s, 1, dr]), [b, s, h, dr]); // k^R, all heads: [B, S, H, d_r]
    const k = concat([kNope, kR], -1); // k_i = [k^C_i; k^R], eq. (4): [B, S, H, d_n + d_r]
    const q = concat([qNope, qPe], -1); // q_i = [q^C_i; q^R_i], eq. (9): [B, T, H, d_n + d_r]
    const perHead = (u: Tensor) => permute(u, [0, 2, 1, 3]); // [B, *, H, e] → [B, H, *, e]
    const scale = this.softmaxScale;
    return causalAttention(perHead(q), perHead(k), perHead(v), { scale }); // eq. (10): [B,H,T,d_v]
  }

  /**
   * The absorbed path: `W^UK` folded into the query and `W^UV` applied after attention, so the
   * scores and the weighted sum run on the latent cache (V3 inference/model.py, "absorb"). It
   * is multi-query attention in latent space: one key head `[c^KV_j; k^R_j]`, one value head
   * `c^KV_j`, queries `[q̃_i; q^R_i]`.
   */
  #absorbed(qNope: Tensor, qPe: Tensor, cKv: Tensor, kPe: Tensor): Tensor {
    const { heads: h, nopeHeadDim: dn, vHeadDim: dv, kvLatentRank: dc } = this.config;
    const { weight, weightScaleInv } = this.kvBProj; // an FP8-held weight is dequantised first
    const w = weightScaleInv === null ? weight : dequantizeFp8Weight(weight, weightScaleInv);
    const wkvB = reshape(w, [h, dn + dv, dc]); // [W^UK_i; W^UV_i] per head
    const wUK = slice(wkvB, 1, 0, dn); // W^UK_i: [H, d_n, d_c]
    const wUV = slice(wkvB, 1, dn, dn + dv); // W^UV_i: [H, d_v, d_c]
    const qLat = matmul(permute(qNope, [0, 2, 1, 3]), wUK); // q̃_i = W^UK_iᵀ q^C_i: [B, H, T, d_c]
    const q = concat([qLat, permute(qPe, [0, 2, 1, 3])], -1); // [q̃_i; q^R_i]: [B, H, T, d_c + d_r]
    const k = unsqueeze(concat([cKv, kPe], -1), 1); // [c^KV_j; k^R_j]: [B, 1, S, d_c + d_r]
    const v = unsqueeze(cKv, 1); // c^KV_j: [B, 1, S, d_c]
    // q̃_i · c^KV_j + q^R_i · k^R_j = q^C_i · k^C_j,i + q^R_i · k^R_j: the logits of eq. (10)
    const oLat = causalAttention(q, k, v, { scale: this.softmaxScale }); // Σ_j p_ij c^KV_j
    return matmul(oLat, transpose(wUV)); // o_i = W^UV_i Σ_j p_ij c^KV_j: [B, H, T, d_v]
  }

  /** Parameters in Hugging Face order: `q_a_proj`, `q_a_layernorm`, `q_b_proj` or `q_proj`, …. */
  parameters(): Map<string, Tensor> {
    return parameterMap({
      q_a_proj: this.qAProj,
      q_a_layernorm: this.qALayernorm,
      q_b_proj: this.qBProj,
      q_proj: this.qProj,
      kv_a_proj_with_mqa: this.kvAProjWithMqa,
      kv_a_layernorm: this.kvALayernorm,
      kv_b_proj: this.kvBProj,
      o_proj: this.oProj,
    });
  }
}
