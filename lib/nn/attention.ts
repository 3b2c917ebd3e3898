/**
 * Causal multi-head attention with rotary positions, in its three key/value-sharing forms, and
 * the KV cache used for token-by-token generation:
 * - MHA (Vaswani et al., arXiv:1706.03762 §3.2.2): every query head has its own key/value head;
 * - GQA (Ainslie et al., arXiv:2305.13245 §2.2): `n_g` key/value heads, each shared by a group
 *   of `n_h / n_g` consecutive query heads (head `i` reads key/value head `⌊i / (n_h / n_g)⌋`,
 *   Hugging Face's `repeat_kv` order);
 * - MQA (Shazeer, arXiv:1910.02150): one key/value head shared by all query heads.
 * One config covers all three: `kvHeads` = `heads` (MHA), `n_g` (GQA) or 1 (MQA).
 *
 * Per layer, `o_i = softmax(q_i K_gᵀ / √d_h + M) V_g` with `M` the causal mask, RoPE
 * ({@linkcode Rope}, adjacent pairs) on `q` and `k`, and `u = W^O [o_1; …; o_nh]`. Hugging Face
 * names: `q_proj`, `k_proj`, `v_proj`, `o_proj`, bias-free, `[out, in]`.
 *
 * KV cache elements per token per layer (docs/design.md §2): MHA `2 n_h d_h`, GQA `2 n_g d_h`,
 * MQA `2 d_h`; {@linkcode KvCache.bytesPerToken} measures this from the stored tensors.
 *
 * Shapes: `B` batch, `T` new tokens, `S` cached + new tokens (keys), `H` = `n_h` query heads,
 * `G` = `n_g` key/value heads, `R = H / G` query heads per key/value head, `d` model width,
 * `d_h` head dim.
 *
 * @module
 */

import {
  add,
  causalMask,
  concat,
  type DType,
  fusedCausalAttention,
  hasFusedAttention,
  matmul,
  mul,
  permute,
  reshape,
  type Rng,
  softmax,
  type Tensor,
  transpose,
  unsqueeze,
} from "../tensor/mod.ts";
import { Linear } from "./linear.ts";
import { type Module, parameterMap } from "./module.ts";
import { Rope, type RopeConfig } from "./rope.ts";

/** Bytes per element of each dtype as declared (the float64 test backend counts f32 as 4). */
const DTYPE_BYTES: Record<DType, number> = { f32: 4, i32: 4, u8: 1 };

// ---------------------------------------------------------------------------------------------
// KV cache

/**
 * One layer's cache: named tensors `[B, S, ...]` that grow along the sequence axis. Attention
 * stores `k`, `v` (`[B, S, G, d_h]`); MLA stores `kv` (`c^KV`, `[B, S, d_c]`) and `pe`
 * (`k^R`, `[B, S, d_h^R]`).
 *
 * The stored tensors are detached copies (generation is inference): gradients flow into the
 * keys and values of the current call but not into those cached by earlier calls. They are
 * kept out of {@linkcode tidy} scopes; {@linkcode KvCacheLayer.dispose} frees them.
 *
 * @example Appending grows the sequence axis
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { zeros } from "../tensor/mod.ts";
 * import { KvCacheLayer } from "./attention.ts";
 * const layer = new KvCacheLayer();
 * layer.append({ k: zeros([1, 3, 2, 4]), v: zeros([1, 3, 2, 4]) });
 * const { k } = layer.append({ k: zeros([1, 1, 2, 4]), v: zeros([1, 1, 2, 4]) });
 * strictEqual(k.shape[1], 4);
 * strictEqual(layer.length, 4);
 * strictEqual(layer.bytes(), 2 * 4 * 2 * 4 * 4); // k and v: 4 tokens × 2 heads × 4 dims × 4 B
 * ```
 */
export class KvCacheLayer {
  #entries = new Map<string, Tensor>();

  /** `S`, the number of positions cached (0 when empty). */
  get length(): number {
    const first = this.#entries.values().next().value;
    return first === undefined ? 0 : first.shape[1];
  }

  /** `B`, the batch size of the cached tensors (0 when empty). */
  get batch(): number {
    const first = this.#entries.values().next().value;
    return first === undefined ? 0 : first.shape[0];
  }

  /** The stored tensors by name (read only; `[B, S, ...]` each). */
  get entries(): ReadonlyMap<string, Tensor> {
    return this.#entries;
  }

  /**
   * Append new positions and return the full tensors (cached ++ new) for this call.
   *
   * @param fresh New entries by name, `[B, T, ...]` each, with the same `B` and `T`.
   * @returns The same names, `[B, S + T, ...]` each (gradients flow into `fresh`).
   */
  append(fresh: Record<string, Tensor>): Record<string, Tensor> {
    const names = Object.keys(fresh);
    const held = [...this.#entries.keys()];
    if (held.length > 0 && (held.length !== names.length || held.some((n) => !(n in fresh)))) {
      throw new Error(
        `Cannot append entries [${names.join(", ")}] to a cache layer holding [${
          held.join(", ")
        }]: is one cache layer shared by two different attention modules?`,
      );
    }
    const first = fresh[names[0]];
    const out: Record<string, Tensor> = {};
    for (const name of names) {
      const t = fresh[name];
      if (t.rank < 2 || t.shape[0] !== first.shape[0] || t.shape[1] !== first.shape[1]) {
        throw new Error(
          `Cannot append '${name}' of shape [${t.shape.join(", ")}] to a KV cache: expected ` +
            `[${first.shape[0]}, ${first.shape[1]}, ...] like the other entries`,
        );
      }
      const old = this.#entries.get(name);
      if (old !== undefined && (old.shape[0] !== t.shape[0] || old.rank !== t.rank)) {
        throw new Error(
          `Cannot append '${name}' of shape [${t.shape.join(", ")}] to a KV cache holding [${
            old.shape.join(", ")
          }]: batch and rank must match`,
        );
      }
      // A view into a larger storage (e.g. a split) is copied, so bytes() counts only the cache.
      const own = t.isContiguous && t.storage.size === t.size;
      const full = old === undefined ? (own ? t : concat([t], 1)) : concat([old, t], 1);
      this.#entries.set(name, full.detach().keep());
      old?.dispose();
      out[name] = full;
    }
    return out;
  }

  /** Bytes held by the stored tensors: `Σ elements × dtype width`, read from their storages. */
  bytes(): number {
    let n = 0;
    for (const t of this.#entries.values()) n += t.storage.size * DTYPE_BYTES[t.dtype];
    return n;
  }

  /** Free the stored tensors and empty the layer. */
  dispose(): void {
    for (const t of this.#entries.values()) t.dispose();
    this.#entries.clear();
  }
}

/**
 * A model's KV cache: one {@linkcode KvCacheLayer} per attention layer. Pass
 * `cache.layer(i)` to layer `i`'s `forward(x, { cache })`.
 *
 * @example Bytes per token of a 2-layer GQA cache: `2 n_g d_h · layers · 4`
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { Attention, KvCache } from "./attention.ts";
 * const rng = new Rng(0);
 * const config = { dModel: 16, heads: 4, kvHeads: 2, headDim: 4 };
 * const layers = [new Attention(config, rng), new Attention(config, rng)];
 * const cache = new KvCache(2);
 * let x = randn([1, 3, 16], { rng });
 * layers.forEach((attn, i) => (x = attn.forward(x, { cache: cache.layer(i) })));
 * strictEqual(cache.length, 3);
 * strictEqual(cache.bytesPerToken(), 2 * 2 * 4 * 2 * 4);
 * ```
 */
export class KvCache {
  /** The per-layer caches. */
  readonly layers: readonly KvCacheLayer[];

  /**
   * Create an empty cache.
   *
   * @param layers Number of attention layers.
   */
  constructor(layers: number) {
    if (!Number.isInteger(layers) || layers <= 0) {
      throw new Error(`Cannot create a KV cache of ${layers} layers: expected a positive integer`);
    }
    this.layers = Array.from({ length: layers }, () => new KvCacheLayer());
  }

  /**
   * The cache of layer `i`.
   *
   * @param i Layer index, `0 ≤ i < layers`.
   * @returns That layer's {@linkcode KvCacheLayer}.
   */
  layer(i: number): KvCacheLayer {
    const l = this.layers[i];
    if (l === undefined) {
      throw new Error(`Cannot get layer ${i} of a KV cache of ${this.layers.length} layers`);
    }
    return l;
  }

  /** `S`, positions cached (layer 0's; every layer holds the same after a full model step). */
  get length(): number {
    return this.layers[0].length;
  }

  /**
   * Bytes the cache holds per token (per sequence position of one batch row), summed over
   * layers and measured from the stored tensors: `bytes / (B · S)`.
   *
   * @returns Bytes per token over all layers.
   */
  bytesPerToken(): number {
    const { length, batch } = this.layers[0];
    if (length === 0) throw new Error("Cannot measure bytes per token of an empty KV cache");
    let total = 0;
    for (const [i, l] of this.layers.entries()) {
      if (l.length !== length || l.batch !== batch) {
        throw new Error(
          `Cannot measure bytes per token: layer ${i} caches ${l.batch}×${l.length} positions ` +
            `but layer 0 caches ${batch}×${length}`,
        );
      }
      total += l.bytes();
    }
    return total / (batch * length);
  }

  /** Free every layer's tensors. */
  dispose(): void {
    for (const l of this.layers) l.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Attention core

/** Options for {@linkcode causalAttention}. */
export interface CausalAttentionOptions {
  /**
   * Multiplier of `q kᵀ` before the softmax.
   * @default {1 / √d} (d the last dim of q)
   */
  scale?: number;
  /**
   * Use the backend's fused kernel ({@linkcode fusedCausalAttention}: online softmax, no
   * `[T, S]` scores stored) when it has one; `false` forces the composed path (matmul, mask,
   * softmax, matmul), the plain version the fused one is tested against.
   * @default {true}
   */
  fused?: boolean;
}

/**
 * Causal scaled dot-product attention `softmax(q kᵀ · scale + M) v` over the last two axes,
 * with NumPy broadcasting of the leading axes (so one key head can serve a group of query
 * heads). The `T` queries are the last `T` of the `S` positions: query `i` sees keys
 * `j ≤ S − T + i` (eq. (1), arXiv:1706.03762, plus the decoder's causal mask).
 *
 * @param q Queries `[..., T, d]`.
 * @param k Keys `[..., S, d]` with `S ≥ T`.
 * @param v Values `[..., S, d_v]`.
 * @param options `scale`, `fused`.
 * @returns `[..., T, d_v]`.
 *
 * @example The first query sees only the first key
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tensor } from "../tensor/mod.ts";
 * import { causalAttention } from "./attention.ts";
 * const q = tensor([[1], [1]]), k = tensor([[0], [0]]), v = tensor([[2], [4]]);
 * assertAllClose(causalAttention(q, k, v), [[2], [3]]);
 * ```
 */
export function causalAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: CausalAttentionOptions = {},
): Tensor {
  const t = q.shape.at(-2) ?? 0, s = k.shape.at(-2) ?? 0, d = q.shape.at(-1) ?? 0;
  if (q.rank < 2 || k.rank < 2 || v.rank < 2 || k.shape.at(-1) !== d || v.shape.at(-2) !== s) {
    throw new Error(
      `Cannot attend with q [${q.shape.join(", ")}], k [${k.shape.join(", ")}], v [${
        v.shape.join(", ")
      }]: expected q [..., T, d], k [..., S, d], v [..., S, d_v]`,
    );
  }
  if (s < t) {
    throw new Error(`Cannot attend ${t} queries to ${s} keys: expected at least as many keys`);
  }
  const { scale = 1 / Math.sqrt(d), fused = true } = options;
  const dv = v.shape.at(-1) ?? 0;
  if (fused && hasFusedAttention(q.backend) && d > 0 && dv > 0) {
    return fusedCausalAttention(q, k, v, { scale }); // the same, in one kernel: [..., T, d_v]
  }
  // The plain path (and fallback for backends without the kernel):
  const scores = mul(matmul(q, transpose(k)), scale); // q kᵀ · scale: [..., T, S]
  const mask = causalMask(t, { keys: s, like: q }); // 0 if j ≤ S − T + i else −∞: [T, S]
  const p = softmax(add(scores, mask), -1); // [..., T, S]
  return matmul(p, v); // Σ_j p_ij v_j: [..., T, d_v]
}

// ---------------------------------------------------------------------------------------------
// Multi-head attention (MHA / GQA / MQA)

/** RoPE settings of an attention layer (the rotary dims follow from the head dims). */
export type AttentionRopeConfig = Omit<RopeConfig, "dim">;

/** Configuration of an {@linkcode Attention} layer. */
export interface AttentionConfig {
  /** `d`, model width (input and output features). */
  dModel: number;
  /** `n_h`, query heads. */
  heads: number;
  /**
   * Key/value heads: `n_h` for MHA, `n_g` groups for GQA, 1 for MQA; must divide `heads`.
   * @default {heads}
   */
  kvHeads?: number;
  /**
   * `d_h`, dims per head (even: RoPE rotates all of them).
   * @default {dModel / heads}
   */
  headDim?: number;
  /**
   * RoPE base and optional YaRN; under YaRN the softmax scale is multiplied by `mscale²` as
   * in DeepSeek-V3's code ({@linkcode Rope.attentionFactor}).
   * @default {{}} (θ = 10000, no YaRN)
   */
  rope?: AttentionRopeConfig;
  /**
   * Standard deviation of the normal init of the four projections.
   * @default {0.02}
   */
  initStd?: number;
}

/** Defaults of {@linkcode AttentionConfig} (`kvHeads` and `headDim` derive from `heads`). */
export const ATTENTION_DEFAULTS: Required<Pick<AttentionConfig, "rope" | "initStd">> = {
  rope: {}, // θ = 10000 (ROPE_DEFAULTS), no YaRN
  initStd: 0.02, // DeepSeek-V3 config.json initializer_range
};

/** Options for {@linkcode Attention.forward} and {@linkcode Mla.forward}. */
export interface AttentionForwardOptions {
  /**
   * This layer's cache: new keys/values are appended, and the `T` new tokens sit at positions
   * `cache.length ..` and attend to every cached position. Without a cache the input is a whole
   * sequence from position 0.
   */
  cache?: KvCacheLayer;
}

function checkPositiveInt(what: string, value: number, layer: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`Cannot build ${layer} with ${what} ${value}: expected a positive integer`);
  }
}

/** Resolve `kvHeads`/`headDim` defaults and check the sizes (shared by the module and tests). */
function resolveAttentionConfig(config: AttentionConfig): Required<AttentionConfig> {
  const { dModel, heads } = config;
  checkPositiveInt("dModel", dModel, "attention");
  checkPositiveInt("heads", heads, "attention");
  const kvHeads = config.kvHeads ?? heads;
  checkPositiveInt("kvHeads", kvHeads, "attention");
  if (heads % kvHeads !== 0) {
    throw new Error(
      `Cannot build attention with heads ${heads} and kvHeads ${kvHeads}: heads must be ` +
        `divisible by kvHeads (each key/value head serves heads / kvHeads query heads)`,
    );
  }
  if (config.headDim === undefined && dModel % heads !== 0) {
    throw new Error(
      `Cannot derive headDim from dModel ${dModel} and heads ${heads}: dModel is not divisible ` +
        `by heads; set headDim`,
    );
  }
  const headDim = config.headDim ?? dModel / heads;
  checkPositiveInt("headDim", headDim, "attention");
  if (headDim % 2 !== 0) {
    throw new Error(`Cannot build attention with headDim ${headDim}: RoPE needs an even headDim`);
  }
  return { ...ATTENTION_DEFAULTS, ...config, kvHeads, headDim };
}

/**
 * Causal multi-head attention with RoPE: MHA, GQA or MQA by `kvHeads`. Parameters
 * `q_proj.weight: [n_h d_h, d]`, `k_proj.weight`, `v_proj.weight: [n_g d_h, d]`,
 * `o_proj.weight: [d, n_h d_h]`.
 *
 * Ref: arXiv:1706.03762 §3.2; arXiv:2305.13245 §2; arXiv:1910.02150.
 *
 * @example Grouped-query attention, then one more token through the cache
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { Attention, KvCache } from "./attention.ts";
 * const rng = new Rng(0);
 * const attn = new Attention({ dModel: 16, heads: 4, kvHeads: 2 }, rng); // d_h = 4
 * deepStrictEqual(attn.forward(randn([2, 5, 16], { rng })).shape, [2, 5, 16]);
 * const cache = new KvCache(1);
 * attn.forward(randn([1, 5, 16], { rng }), { cache: cache.layer(0) });
 * const next = attn.forward(randn([1, 1, 16], { rng }), { cache: cache.layer(0) });
 * deepStrictEqual(next.shape, [1, 1, 16]);
 * strictEqual(cache.length, 6);
 * deepStrictEqual([...attn.parameters().keys()], [
 *   "q_proj.weight",
 *   "k_proj.weight",
 *   "v_proj.weight",
 *   "o_proj.weight",
 * ]);
 * ```
 */
export class Attention implements Module {
  /** The resolved configuration. */
  readonly config: Required<AttentionConfig>;
  /** `W^Q: [n_h d_h, d]`. */
  readonly qProj: Linear;
  /** `W^K: [n_g d_h, d]`. */
  readonly kProj: Linear;
  /** `W^V: [n_g d_h, d]`. */
  readonly vProj: Linear;
  /** `W^O: [d, n_h d_h]`. */
  readonly oProj: Linear;
  /** RoPE on all `d_h` dims of `q` and `k`. */
  readonly rope: Rope;
  /** `1/√d_h`, times `mscale²` under YaRN. */
  readonly softmaxScale: number;

  /**
   * Create the layer; weights are drawn from `rng` in the order `W^Q`, `W^K`, `W^V`, `W^O`.
   *
   * @param config Sizes, see {@linkcode AttentionConfig}.
   * @param rng Seeded generator for the init.
   */
  constructor(config: AttentionConfig, rng: Rng) {
    this.config = resolveAttentionConfig(config);
    const { dModel: d, heads, kvHeads, headDim, initStd, rope } = this.config;
    const proj = (inFeatures: number, outFeatures: number) =>
      new Linear({ inFeatures, outFeatures, initStd }, rng);
    this.qProj = proj(d, heads * headDim);
    this.kProj = proj(d, kvHeads * headDim);
    this.vProj = proj(d, kvHeads * headDim);
    this.oProj = proj(heads * headDim, d);
    this.rope = new Rope({ ...rope, dim: headDim });
    this.softmaxScale = this.rope.attentionFactor / Math.sqrt(headDim);
  }

  /**
   * Attend causally over the sequence (and the cache, if given).
   *
   * @param x Hidden states `[B, T, d]`.
   * @param options `cache` for generation.
   * @returns `[B, T, d]`.
   */
  forward(x: Tensor, options: AttentionForwardOptions = {}): Tensor {
    const { dModel, heads: h, kvHeads: g, headDim: dh } = this.config;
    if (x.rank !== 3 || x.shape[2] !== dModel) {
      throw new Error(
        `Cannot apply attention to input [${x.shape.join(", ")}]: expected [B, T, ${dModel}]`,
      );
    }
    const [b, t] = x.shape;
    const { cache } = options;
    const offset = cache?.length ?? 0; // positions already cached
    const q0 = reshape(this.qProj.forward(x), [b, t, h, dh]); // q = W^Q h: [B, T, H, d_h]
    const k0 = reshape(this.kProj.forward(x), [b, t, g, dh]); // k = W^K h: [B, T, G, d_h]
    const v0 = reshape(this.vProj.forward(x), [b, t, g, dh]); // v = W^V h: [B, T, G, d_h]
    const q = this.rope.forward(q0, { offset }); // RoPE(q): [B, T, H, d_h]
    const k1 = this.rope.forward(k0, { offset }); // RoPE(k): [B, T, G, d_h]
    const { k, v } = cache ? cache.append({ k: k1, v: v0 }) : { k: k1, v: v0 }; // [B, S, G, d_h]
    const r = h / g;
    const qg = permute(reshape(q, [b, t, g, r, dh]), [0, 2, 3, 1, 4]); // [B, G, R, T, d_h]
    const kg = unsqueeze(permute(k, [0, 2, 1, 3]), 2); // [B, G, 1, S, d_h]
    const vg = unsqueeze(permute(v, [0, 2, 1, 3]), 2); // [B, G, 1, S, d_h]
    const o = causalAttention(qg, kg, vg, { scale: this.softmaxScale }); // [B, G, R, T, d_h]
    const heads = reshape(permute(o, [0, 3, 1, 2, 4]), [b, t, h * dh]); // [B, T, H d_h]
    return this.oProj.forward(heads); // u = W^O [o_1; …; o_nh]: [B, T, d]
  }

  /** `q_proj.weight`, `k_proj.weight`, `v_proj.weight`, `o_proj.weight`. */
  parameters(): Map<string, Tensor> {
    return parameterMap({
      q_proj: this.qProj,
      k_proj: this.kProj,
      v_proj: this.vProj,
      o_proj: this.oProj,
    });
  }
}
