/**
 * Multi-Token Prediction (MTP; DeepSeek-V3, arXiv:2412.19437 §2.2, eqs. (21)–(25)) in
 * DeepSeek-V3's checkpoint conventions (Hugging Face layer `num_hidden_layers + k − 1`: `enorm`,
 * `hnorm`, `eh_proj`, a transformer block, `shared_head.norm`). Module `k` (1 ≤ k ≤ D) shares the
 * embedding and the output head with the main model:
 * - `h'^k_i = M_k [RMSNorm(Emb(t_{i+k})); RMSNorm(h^{k-1}_i)]` — embedding first, the reverse of
 *   the paper's eq. (21), as the released checkpoints' `eh_proj` expects;
 * - `h^k_{1:T−k} = TRM_k(h'^k_{1:T−k})` (eq. (22)), causal over the shortened sequence;
 * - `P^k_{i+k+1} = OutHead(h^k_i)` (eq. (23)) with `OutHead = lm_head ∘ shared_head.norm`;
 * - `L^k = CE(P^k, t_{i+k+1})` (eq. (24)), `L_MTP = λ/D Σ_k L^k` (eq. (25)).
 *
 * `h^0` is the main model's final hidden state after `model.norm` (what vLLM and SGLang feed
 * V3's MTP layer); `h^k` for `k ≥ 1` is module `k`'s block output before `shared_head.norm`.
 * `L^k` is the mean over the `B (T − k)` positions that have a target (Megatron-LM's masked
 * mean; the paper's eq. (24) divides by `T` instead).
 *
 * The transformer block is passed in (it is the decoder's block, built in `lib/models/`), so this
 * file depends only on the block's `forward(x, { cache }) → { h }`.
 *
 * Shapes: `B` batch, `T` training sequence length, `S = T − k` positions of depth `k`, `d` model
 * width, `V` vocabulary.
 *
 * @module
 */

import {
  add,
  concat,
  crossEntropy,
  maximum,
  mul,
  type Rng,
  slice,
  type Tensor,
} from "../tensor/mod.ts";
import { type HostSteps, runSync } from "./steps.ts";
import type { AttentionForwardOptions } from "./attention.ts";
import { Linear, linear } from "./linear.ts";
import { type Module, parameterMap } from "./module.ts";
import { RmsNorm } from "./norm.ts";

/** Configuration of an {@linkcode Mtp} module. */
export interface MtpConfig {
  /** `d`, model width. */
  dModel: number;
  /**
   * RMSNorm eps of `enorm`, `hnorm` and `shared_head.norm`.
   * @default {1e-6}
   */
  normEps?: number;
  /**
   * Standard deviation of the normal init of `eh_proj`.
   * @default {0.02}
   */
  initStd?: number;
}

/**
 * Defaults of multi-token prediction: the depth and loss weight a run gets (the DSL's `mtp()`
 * resolves them; the decoder builds `depth` modules and weighs their loss by {@linkcode mtpLoss})
 * and the {@linkcode MtpConfig} of each module.
 */
export const MTP_DEFAULTS = {
  /** `D`, modules (V3 §4.2: 1). */
  depth: 1,
  /** `λ` in `L_MTP = λ/D Σ_k L^k` (V3 §4.2: 0.3 for the first 10T tokens, then 0.1). */
  lambda: 0.3,
  /** RMSNorm eps of `enorm`, `hnorm`, `shared_head.norm` (rms_norm_eps). */
  normEps: 1e-6,
  /** Init std of `eh_proj` (initializer_range). */
  initStd: 0.02,
} as const;

/** What a transformer block returns: at least the new hidden state `h`. */
export interface BlockOutput {
  /** `[B, S, d]`. */
  h: Tensor;
}

/** The transformer block `TRM_k` of an MTP module (the decoder's block). */
export interface MtpBlock<O extends BlockOutput = BlockOutput> extends Module {
  /**
   * Apply the block.
   *
   * @param x `[B, S, d]`.
   * @param options A KV cache layer for generation.
   * @returns At least `h: [B, S, d]`.
   */
  forward(x: Tensor, options?: AttentionForwardOptions): O;
  /** The same as {@linkcode HostSteps}, for blocks that read on the host (MoE routing). */
  forwardSteps?(x: Tensor, options?: AttentionForwardOptions): HostSteps<O>;
}

/** Token ids and labels of depth `k`, see {@linkcode mtpAlignment}. */
export interface MtpAlignment {
  /** `t_{i+k}` for `i = 0 .. T−k−1`: the tokens whose embeddings enter module `k`, `[B, T − k]`. */
  inputIds: Tensor;
  /** `t_{i+k+1}`: what module `k` predicts at position `i`, `[B, T − k]`. */
  labels: Tensor;
}

/**
 * Token alignment of MTP depth `k` for a batch of `inputs`/`targets` where
 * `targets[:, i] = inputs[:, i + 1]` (`t_{i+1}`, the next token). Position `i` of depth `k` embeds
 * `t_{i+k} = targets[:, i + k − 1]` and predicts `t_{i+k+1} = targets[:, i + k]`; the last `k`
 * positions have no target and are dropped. Negative targets (an ignore index) are embedded as
 * token 0 and stay ignored as labels.
 *
 * @param targets Next tokens `[B, T]`, `i32`.
 * @param depth `k ≥ 1`, below `T`.
 * @returns `inputIds` and `labels`, `[B, T − k]` each.
 *
 * @example Depth 1 on a sequence 0 1 2 3 (targets 1 2 3 4)
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "../tensor/mod.ts";
 * import { mtpAlignment } from "./mtp.ts";
 * const { inputIds, labels } = mtpAlignment(tensor([[1, 2, 3, 4]], { dtype: "i32" }), 1);
 * deepStrictEqual(Array.from(inputIds.dataSync()), [1, 2, 3]); // t_{i+1}
 * deepStrictEqual(Array.from(labels.dataSync()), [2, 3, 4]); // t_{i+2}
 * ```
 */
export function mtpAlignment(targets: Tensor, depth: number): MtpAlignment {
  const t = targets.shape[1];
  if (targets.rank !== 2 || !Number.isInteger(depth) || depth < 1 || depth >= t) {
    throw new Error(
      `Cannot align MTP depth ${depth} to targets [${targets.shape.join(", ")}]: expected ` +
        `[B, T] with 1 ≤ depth < T`,
    );
  }
  const ids = slice(targets, 1, depth - 1, t - 1); // t_{i+k}: [B, T − k]
  return {
    inputIds: maximum(ids, 0), // an ignored target embeds as token 0
    labels: slice(targets, 1, depth, t), // t_{i+k+1}: [B, T − k]
  };
}

/** Options for {@linkcode mtpLoss}. */
export interface MtpLossOptions {
  /**
   * `λ`, the MTP loss weight (V3: 0.3, then 0.1).
   * @default {0.3}
   */
  lambda?: number;
}

/**
 * `L_MTP = λ/D Σ_k L^k`, eq. (25).
 *
 * @param losses `L^k` for `k = 1 .. D` (scalars).
 * @param options `lambda`.
 * @returns The weighted MTP loss (scalar).
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tensor } from "../tensor/mod.ts";
 * import { mtpLoss } from "./mtp.ts";
 * assertAllClose(mtpLoss([tensor(2), tensor(4)], { lambda: 0.5 }), (0.5 / 2) * 6);
 * ```
 */
export function mtpLoss(losses: readonly Tensor[], options: MtpLossOptions = {}): Tensor {
  const { lambda = MTP_DEFAULTS.lambda } = options;
  if (losses.length === 0) throw new Error("Cannot compute the MTP loss of zero depths");
  const total = losses.reduce((acc, l) => add(acc, l)); // Σ_k L^k
  return mul(total, lambda / losses.length); // λ/D Σ_k L^k, eq. (25)
}

/**
 * One MTP module `k`. Parameters, in Hugging Face DeepSeek-V3 names: `enorm.weight: [d]`,
 * `hnorm.weight: [d]`, `eh_proj.weight: [d, 2d]` (input `[enorm(e); hnorm(h)]`), the block's
 * own names (`input_layernorm.weight`, `self_attn.*`, `post_attention_layernorm.weight`,
 * `mlp.*`), and `shared_head.norm.weight: [d]`. The embedding and `lm_head` are the main
 * model's and are not listed.
 *
 * Ref: arXiv:2412.19437 §2.2.
 *
 * @example One module on a toy block (a residual identity)
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { randn, Rng, type Tensor } from "../tensor/mod.ts";
 * import { Mtp } from "./mtp.ts";
 * const rng = new Rng(0);
 * const block = { forward: (x: Tensor) => ({ h: x }), parameters: () => new Map() };
 * const mtp = new Mtp({ dModel: 8 }, block, rng);
 * const h = mtp.forward(randn([2, 5, 8], { rng }), randn([2, 5, 8], { rng })).h;
 * deepStrictEqual(mtp.logits(h, randn([11, 8], { rng })).shape, [2, 5, 11]);
 * deepStrictEqual([...mtp.parameters().keys()], [
 *   "enorm.weight",
 *   "hnorm.weight",
 *   "eh_proj.weight",
 *   "shared_head.norm.weight",
 * ]);
 * ```
 */
export class Mtp<O extends BlockOutput = BlockOutput, B extends MtpBlock<O> = MtpBlock<O>>
  implements Module {
  /** The resolved configuration. */
  readonly config: Required<MtpConfig>;
  /** RMSNorm of the embedding `Emb(t_{i+k})`. */
  readonly enorm: RmsNorm;
  /** RMSNorm of the previous depth's hidden state `h^{k-1}_i`. */
  readonly hnorm: RmsNorm;
  /** `M_k: [d, 2d]`, applied to `[enorm(e); hnorm(h)]`. */
  readonly ehProj: Linear;
  /** `TRM_k`, this module's own transformer block. */
  readonly block: B;
  /** RMSNorm before the shared output head (`shared_head.norm`). */
  readonly sharedHeadNorm: RmsNorm;

  /**
   * Create the module; `eh_proj` is drawn from `rng` (the block is built by the caller).
   *
   * @param config Width and init, see {@linkcode MtpConfig}.
   * @param block The transformer block `TRM_k`.
   * @param rng Seeded generator for the init.
   */
  constructor(config: MtpConfig, block: B, rng: Rng) {
    this.config = {
      dModel: config.dModel,
      normEps: config.normEps ?? MTP_DEFAULTS.normEps,
      initStd: config.initStd ?? MTP_DEFAULTS.initStd,
    };
    const { dModel: d, normEps: eps, initStd } = this.config;
    if (!Number.isInteger(d) || d <= 0) {
      throw new Error(`Cannot build an MTP module with dModel ${d}: expected a positive integer`);
    }
    this.enorm = new RmsNorm({ dim: d, eps });
    this.hnorm = new RmsNorm({ dim: d, eps });
    this.ehProj = new Linear({ inFeatures: 2 * d, outFeatures: d, initStd }, rng);
    this.block = block;
    this.sharedHeadNorm = new RmsNorm({ dim: d, eps });
  }

  /**
   * `h^k = TRM_k(M_k [enorm(Emb(t_{i+k})); hnorm(h^{k-1}_i)])`, eqs. (21)–(22).
   *
   * @param hPrev `h^{k-1}`: `[B, S, d]`.
   * @param embNext `Emb(t_{i+k})` from the shared embedding: `[B, S, d]`.
   * @param options A KV cache layer for the block (speculative decoding).
   * @returns The block's output; `h` is `h^k: [B, S, d]`.
   */
  forward(hPrev: Tensor, embNext: Tensor, options: AttentionForwardOptions = {}): O {
    return runSync(this.forwardSteps(hPrev, embNext, options));
  }

  /**
   * {@linkcode Mtp.forward} as {@linkcode HostSteps} (the block may read MoE routing on the
   * host); run with `runSync` or `runAsync`.
   */
  *forwardSteps(
    hPrev: Tensor,
    embNext: Tensor,
    options: AttentionForwardOptions = {},
  ): HostSteps<O> {
    const d = this.config.dModel;
    if (hPrev.rank !== 3 || hPrev.shape[2] !== d || hPrev.shape.join() !== embNext.shape.join()) {
      throw new Error(
        `Cannot apply an MTP module to h [${hPrev.shape.join(", ")}] and embeddings [${
          embNext.shape.join(", ")
        }]: expected both [B, S, ${d}]`,
      );
    }
    const e = this.enorm.forward(embNext); // RMSNorm(Emb(t_{i+k})): [B, S, d]
    const h = this.hnorm.forward(hPrev); // RMSNorm(h^{k-1}_i): [B, S, d]
    const merged = this.ehProj.forward(concat([e, h], -1)); // h'^k = M_k [e; h], eq. (21): [B, S, d]
    // h^k = TRM_k(h'^k), eq. (22): [B, S, d]
    if (this.block.forwardSteps) return yield* this.block.forwardSteps(merged, options);
    return this.block.forward(merged, options);
  }

  /**
   * `OutHead(h^k) = lm_head(shared_head.norm(h^k))`, eq. (23).
   *
   * @param h `h^k`: `[B, S, d]`.
   * @param headWeight The main model's `lm_head.weight: [V, d]`.
   * @returns Logits `[B, S, V]` of `t_{i+k+1}`.
   */
  logits(h: Tensor, headWeight: Tensor): Tensor {
    return linear(this.sharedHeadNorm.forward(h), headWeight); // eq. (23): [B, S, V]
  }

  /**
   * `L^k = CE(OutHead(h^k), labels)`, eq. (24): the mean over the positions with a target.
   *
   * @param h `h^k`: `[B, S, d]`.
   * @param headWeight `lm_head.weight: [V, d]`.
   * @param labels `t_{i+k+1}`: `[B, S]` `i32` (from {@linkcode mtpAlignment}).
   * @returns `L^k` (scalar).
   */
  loss(h: Tensor, headWeight: Tensor, labels: Tensor): Tensor {
    return crossEntropy(this.logits(h, headWeight), labels); // eq. (24)
  }

  /** `enorm`, `hnorm`, `eh_proj`, the block's parameters, `shared_head.norm`. */
  parameters(): Map<string, Tensor> {
    const out = parameterMap({ enorm: this.enorm, hnorm: this.hnorm, eh_proj: this.ehProj });
    for (const [name, t] of this.block.parameters()) out.set(name, t);
    for (const [name, t] of parameterMap({ "shared_head.norm": this.sharedHeadNorm })) {
      out.set(name, t);
    }
    return out;
  }
}
