/**
 * The resolved model configuration: what the DSL's `model({...})` produces, what the decoder
 * (`decoder.ts`) builds from, and what a run stores in `config.json`. Plain JSON data, so it
 * hashes, serialises and validates the same way everywhere.
 *
 * Parts are tagged unions (`kind`) so a variant in an experiment swaps one whole part:
 * `{ attention: { kind: "mla", ... } }`.
 *
 * @module
 */

/** Multi-head attention: `n_h` key/value heads. */
export interface MhaSpec {
  kind: "mha";
}

/**
 * Grouped-query attention: `kvHeads` key/value heads shared by `heads / kvHeads` query heads each
 * (read as `groups` from configs saved before the rename).
 */
export interface GqaSpec {
  kind: "gqa";
  kvHeads: number;
}

/** Multi-query attention: one key/value head. */
export interface MqaSpec {
  kind: "mqa";
}

/** Multi-head latent attention (DeepSeek-V2/V3), see `lib/nn/mla.ts`. */
export interface MlaSpec {
  kind: "mla";
  /** `d_c`, the KV latent rank (V3 kv_lora_rank 512). */
  kvLatentRank: number;
  /** `d_c'`, the query latent rank; 0 = no query compression (V3 q_lora_rank 1536). */
  queryLatentRank: number;
  /** `d_h^R`, decoupled RoPE dims per head (V3 64). */
  ropeHeadDim: number;
  /** No-RoPE query/key dims per head (V3 128); default `dModel / heads`. */
  nopeHeadDim?: number;
  /** Value dims per head (V3 128); default `dModel / heads`. */
  vHeadDim?: number;
  /** Run the absorbed path (W^UK into the query, W^UV after attention). */
  absorb?: boolean;
}

/** Which attention a layer uses. */
export type AttentionSpec = MhaSpec | GqaSpec | MqaSpec | MlaSpec;

/** A dense SwiGLU FFN. */
export interface DenseSpec {
  kind: "dense";
  /** `d_ff`, the hidden width. */
  hidden: number;
}

/** How MoE load is balanced. */
export type BalanceKind = "aux-free" | "aux-loss" | "none";

/** DeepSeekMoE, see `lib/nn/moe.ts` and docs/design.md §2. */
export interface MoeSpec {
  kind: "moe";
  /** `N_r`, routed experts (read as `routed` from configs saved before the rename). */
  routedExperts: number;
  /**
   * `N_s`, shared experts, merged into one FFN of width `sharedExperts · expertHidden` (read as
   * `shared` from configs saved before the rename).
   */
  sharedExperts: number;
  /** `K_r`, experts per token. */
  topK: number;
  /** Hidden width of one expert. */
  expertHidden: number;
  /** Affinity: sigmoid (V3) or softmax (V2 and the classic baseline). */
  score: "sigmoid" | "softmax";
  /** Balancing: aux-loss-free bias (V3), auxiliary loss, or none. */
  balance: BalanceKind;
  /** Bias update speed `γ` for aux-free balancing (V3 0.001). */
  gamma: number;
  /** Sequence-wise auxiliary loss coefficient `α` (V3 0.0001; with `aux-loss` a larger one). */
  alpha: number;
  /** Multiplier of the normalised gates (V3 routed_scaling_factor 2.5). */
  routeScale: number;
  /** Expert groups for group-limited routing (1 = off). */
  groups: number;
  /** Groups a token may use (V3 4 of 8). */
  topkGroup: number;
  /** The first layers keep a dense FFN (V3 first_k_dense_replace 3). */
  firstDenseLayers: number;
  /** Hidden width of those dense layers. */
  denseHidden: number;
  /**
   * Divide the chosen experts' scores by their sum before `routeScale` (absent = `true`, V3);
   * `false` is DeepSeek-V2's softmax gate without renormalisation (`norm_topk_prob: false`).
   */
  normTopK?: boolean;
  /**
   * How group-limited routing ranks groups (absent = `"top2-sum"`, V3 `noaux_tc`): `"max"` is
   * V2's `group_limited_greedy` (each group's largest score).
   */
  groupScore?: "top2-sum" | "max";
}

/** Which FFN the layers use. */
export type FfnSpec = DenseSpec | MoeSpec;

/** Multi-token prediction (V3 §2.2): `depth` sequential modules, loss weight `lambda`. */
export interface MtpSpec {
  depth: number;
  /** `λ` in `L_MTP = λ/D Σ_k L^k` (V3 0.3, then 0.1). */
  lambda: number;
}

/**
 * FP8 mixed precision (V3 §3.3) for the GEMMs of every Linear but the output head and the MoE
 * gate (attention projections, FFNs and experts), see `lib/fp8/linear.ts`.
 */
export interface Fp8Spec {
  /** Scaling granularity of activations and weights. */
  granularity: "tensor" | "tile" | "block";
  /** `N_C`, promotion interval along K (`null` = never promote). */
  promotion: number | null;
  /** Mantissa bits of the limited accumulator. */
  accumulatorBits: number;
}

/** YaRN context extension (see `lib/nn/rope.ts`). */
export interface YarnSpec {
  factor: number;
  originalMaxPositionEmbeddings: number;
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  /**
   * Hugging Face `rope_scaling.mscale_all_dim` when it differs from `mscale` (absent = `mscale`):
   * the softmax scale uses it, and cos/sin are scaled by `mscale(s, mscale) / mscale(s, this)`.
   */
  mscaleAllDim?: number;
}

/** A fully resolved decoder configuration. */
export interface ModelConfig {
  /** Token vocabulary: 256 for bytes, or a trained BPE's size. */
  vocab: number;
  /** Tokenizer the vocabulary belongs to. */
  tokenizer: "bytes" | "bpe";
  /** `d`, model width. */
  dModel: number;
  /** Transformer blocks. */
  layers: number;
  /** `n_h`, attention heads. */
  heads: number;
  /** Context length used in training. */
  seqLen: number;
  attention: AttentionSpec;
  ffn: FfnSpec;
  /** `null` = no MTP. */
  mtp: MtpSpec | null;
  /** `null` = full precision. */
  fp8: Fp8Spec | null;
  /** RoPE base `θ`. */
  ropeTheta: number;
  /** YaRN, or `null`. */
  yarn: YarnSpec | null;
  /** RMSNorm eps (V3 1e-6). */
  normEps: number;
  /** Std of the normal weight init (V3 initializer_range 0.006; small models use 0.02). */
  initStd: number;
}
