/**
 * The configurable DeepSeek-V3-style decoder (arXiv:2412.19437 §2; Hugging Face
 * `DeepseekV3ForCausalLM`), assembled from `lib/nn` parts by a resolved {@linkcode ModelConfig}:
 * - `h^0 = Emb(t)` (`model.embed_tokens`);
 * - per block `l`: `u = h + Attn(RMSNorm(h))`, `h' = u + FFN(RMSNorm(u))`, with attention
 *   MHA / GQA / MQA ({@linkcode Attention}) or MLA ({@linkcode Mla}), and FFN a dense SwiGLU or,
 *   from layer `firstDenseLayers` on, DeepSeekMoE ({@linkcode Moe});
 * - `logits = lm_head(RMSNorm(h^L))` (`model.norm`, untied `lm_head`);
 * - `D` MTP modules ({@linkcode Mtp}) sharing the embedding and `lm_head`.
 * The training loss is `L = L_main + λ/D Σ_k L^k_MTP + Σ_l L_Bal,l` (eq. (25) and eq. (17)).
 *
 * Parameter names are DeepSeek-V3's checkpoint names (docs/design.md §3): `model.embed_tokens.weight`,
 * `model.layers.{l}.{input_layernorm, self_attn.*, post_attention_layernorm, mlp.*}`,
 * `model.norm.weight`, `lm_head.weight`; MTP module `k` is layer `layers + k − 1`.
 *
 * Shapes: `B` batch, `T` tokens, `d` model width, `V` vocabulary, `L` layers, `D` MTP depth.
 *
 * @module
 */

import { withFp8 } from "../fp8/linear.ts";
import {
  add,
  crossEntropy,
  embedding,
  noGrad,
  type Rng,
  slice,
  type Tensor,
  tidy,
  zeros,
} from "../tensor/mod.ts";
import {
  Attention,
  type AttentionForwardOptions,
  type AttentionRopeConfig,
  KvCache,
} from "../nn/attention.ts";
import { SwiGlu } from "../nn/ffn.ts";
import { Linear } from "../nn/linear.ts";
import { Mla } from "../nn/mla.ts";
import { type Module, normalParameter, parameterMap } from "../nn/module.ts";
import { maxVio, Moe, type MoeOutput } from "../nn/moe.ts";
import { type HostSteps, runAsync, type RunAsyncOptions, runSync } from "../nn/steps.ts";
import { Mtp, mtpAlignment, mtpLoss } from "../nn/mtp.ts";
import { RmsNorm } from "../nn/norm.ts";
import type { ModelConfig } from "./config.ts";

/** What one {@linkcode DecoderBlock} returns. */
export interface DecoderBlockOutput {
  /** The block's output hidden state `[B, T, d]`. */
  h: Tensor;
  /** The MoE layer's output (loss, routing, load), or `null` for a dense FFN. */
  moe: MoeOutput | null;
}

function ropeOf(config: ModelConfig): AttentionRopeConfig {
  return { theta: config.ropeTheta, yarn: config.yarn };
}

function buildAttention(config: ModelConfig, rng: Rng): Attention | Mla {
  const { dModel, heads, initStd } = config;
  const spec = config.attention;
  const rope = ropeOf(config);
  switch (spec.kind) {
    case "mha":
      return new Attention({ dModel, heads, kvHeads: heads, rope, initStd }, rng);
    case "gqa":
      return new Attention({ dModel, heads, kvHeads: spec.kvHeads, rope, initStd }, rng);
    case "mqa":
      return new Attention({ dModel, heads, kvHeads: 1, rope, initStd }, rng);
    case "mla":
      return new Mla({
        dModel,
        heads,
        kvLatentRank: spec.kvLatentRank,
        queryLatentRank: spec.queryLatentRank,
        ropeHeadDim: spec.ropeHeadDim,
        nopeHeadDim: spec.nopeHeadDim ?? dModel / heads,
        vHeadDim: spec.vHeadDim ?? dModel / heads,
        rope,
        normEps: config.normEps,
        initStd,
        absorb: spec.absorb ?? false,
      }, rng);
    default:
      throw new Error(
        `Unknown attention kind '${(spec satisfies never as { kind: string }).kind}'`,
      );
  }
}

function buildFfn(config: ModelConfig, index: number, rng: Rng): SwiGlu | Moe {
  const { dModel, initStd } = config;
  const spec = config.ffn;
  switch (spec.kind) {
    case "dense":
      return new SwiGlu({ dModel, hidden: spec.hidden, initStd }, rng);
    case "moe":
      if (index < spec.firstDenseLayers) {
        return new SwiGlu({ dModel, hidden: spec.denseHidden, initStd }, rng);
      }
      return new Moe({
        dModel,
        routedExperts: spec.routedExperts,
        sharedExperts: spec.sharedExperts,
        topK: spec.topK,
        expertHidden: spec.expertHidden,
        score: spec.score,
        routeScale: spec.routeScale,
        groups: spec.groups,
        topkGroup: spec.topkGroup,
        balance: spec.balance,
        gamma: spec.gamma,
        alpha: spec.alpha,
        initStd,
        ...(spec.normTopK === undefined ? {} : { normTopK: spec.normTopK }),
        ...(spec.groupScore === undefined ? {} : { groupScore: spec.groupScore }),
      }, rng);
    default:
      throw new Error(`Unknown FFN kind '${(spec satisfies never as { kind: string }).kind}'`);
  }
}

/**
 * One pre-norm transformer block: `u = h + Attn(RMSNorm(h))`, `h' = u + FFN(RMSNorm(u))`.
 * Parameters: `input_layernorm.weight`, `self_attn.*`, `post_attention_layernorm.weight`,
 * `mlp.*` (with an MoE FFN also the buffer `mlp.gate.e_score_correction_bias`, listed without
 * `requiresGrad`).
 *
 * @example A dense MHA block
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { DecoderBlock, tinyConfig } from "./decoder.ts";
 * const rng = new Rng(0);
 * const block = new DecoderBlock(tinyConfig(), 0, rng);
 * deepStrictEqual(block.forward(randn([1, 3, 16], { rng })).h.shape, [1, 3, 16]);
 * ```
 */
export class DecoderBlock implements Module {
  /** The layer index (MTP module `k` has index `layers + k − 1`). */
  readonly index: number;
  /** RMSNorm before attention. */
  readonly inputLayernorm: RmsNorm;
  /** MHA / GQA / MQA or MLA. */
  readonly selfAttn: Attention | Mla;
  /** RMSNorm before the FFN. */
  readonly postAttentionLayernorm: RmsNorm;
  /** Dense SwiGLU or DeepSeekMoE. */
  readonly mlp: SwiGlu | Moe;

  /**
   * Build layer `index` of `config`; weights are drawn from `rng`, attention first.
   *
   * @param config The resolved model configuration.
   * @param index Layer index (decides dense vs MoE).
   * @param rng Seeded generator for the init.
   */
  constructor(config: ModelConfig, index: number, rng: Rng) {
    this.index = index;
    const eps = config.normEps;
    this.inputLayernorm = new RmsNorm({ dim: config.dModel, eps });
    this.selfAttn = buildAttention(config, rng);
    this.postAttentionLayernorm = new RmsNorm({ dim: config.dModel, eps });
    this.mlp = buildFfn(config, index, rng);
  }

  /**
   * Apply the block.
   *
   * @param x `h`: `[B, T, d]`.
   * @param options This layer's KV cache for generation.
   * @returns `h'` and the MoE output (or `null`).
   */
  forward(x: Tensor, options: AttentionForwardOptions = {}): DecoderBlockOutput {
    return runSync(this.forwardSteps(x, options));
  }

  /** {@linkcode DecoderBlock.forward} as {@linkcode HostSteps} (MoE routing is read on the host). */
  *forwardSteps(x: Tensor, options: AttentionForwardOptions = {}): HostSteps<DecoderBlockOutput> {
    const a = this.selfAttn.forward(this.inputLayernorm.forward(x), options); // Attn(RMSNorm(h))
    const u = add(x, a); // u = h + Attn(RMSNorm(h)): [B, T, d]
    const n = this.postAttentionLayernorm.forward(u); // RMSNorm(u): [B, T, d]
    if (this.mlp instanceof Moe) {
      const moe = yield* this.mlp.forwardSteps(n); // Σ FFN^s + Σ g FFN^r, eq. (12): [B, T, d]
      return { h: add(u, moe.y), moe }; // h' = u + MoE(RMSNorm(u)): [B, T, d]
    }
    return { h: add(u, this.mlp.forward(n)), moe: null }; // h' = u + FFN(RMSNorm(u)): [B, T, d]
  }

  /** Parameters (and the MoE bias buffer) in Hugging Face names. */
  parameters(): Map<string, Tensor> {
    const out = parameterMap({
      input_layernorm: this.inputLayernorm,
      self_attn: this.selfAttn,
      post_attention_layernorm: this.postAttentionLayernorm,
    });
    const mlp = this.mlp;
    for (const [name, t] of mlp.parameters()) {
      out.set(`mlp.${name}`, t);
      if (mlp instanceof Moe && name === "gate.weight") {
        for (const [b, buffer] of mlp.buffers()) out.set(`mlp.${b}`, buffer);
      }
    }
    return out;
  }
}

/** Options for {@linkcode Decoder.forward} and {@linkcode Decoder.trunk}. */
export interface DecoderForwardOptions {
  /** The main model's KV cache ({@linkcode Decoder.newCache}); new tokens are appended. */
  cache?: KvCache;
}

/** What {@linkcode Decoder.trunk} returns. */
export interface TrunkOutput {
  /** `RMSNorm(h^L)`, the final hidden state after `model.norm` (MTP's `h^0`): `[B, T, d]`. */
  h: Tensor;
  /** Each block's MoE output (`null` for dense blocks), by layer. */
  moe: (MoeOutput | null)[];
}

/** Load metrics of one MoE layer in one forward. */
export interface MoeLayerMetrics {
  /** Layer index (MTP modules: `layers + k − 1`). */
  layer: number;
  /** Tokens routed to each expert. */
  load: number[];
  /** `max_i load_i / mean load − 1`. */
  maxVio: number;
}

/** What {@linkcode Decoder.loss} returns. */
export interface DecoderLoss {
  /** The total to backpropagate: `L_main + L_MTP + Σ L_Bal` (scalar). */
  loss: Tensor;
  /** Next-token cross-entropy of the main head (scalar). */
  mainLoss: Tensor;
  /** `L^k` of MTP module `k = 1 .. D`, unweighted (scalars). */
  mtpLosses: Tensor[];
  /** `λ/D Σ_k L^k`, or `null` without MTP. */
  mtpLoss: Tensor | null;
  /** `Σ_l L_Bal,l` over MoE layers (MTP blocks included), or `null` when none computes one. */
  auxLoss: Tensor | null;
  /** Per MoE layer load and MaxVio of this batch. */
  moe: MoeLayerMetrics[];
  /** Scalars for the trainer's metrics (`mainLoss`, `mtpLoss1`.., `auxLoss`, `maxVio`). */
  logs: Record<string, Tensor | number>;
}

/** Parameter counts of {@linkcode Decoder.countParameters} (buffers excluded). */
export interface ParameterCount {
  /** Main model (embedding, blocks, norm, `lm_head`); MTP modules excluded, as V3 counts. */
  total: number;
  /** Of `total`, those a token uses: every routed expert beyond `topK` per MoE layer left out. */
  activated: number;
  /** MTP modules (the shared embedding and head not counted again). */
  mtp: number;
}

/**
 * A small config for examples and tests: vocab 32, `d` 16, 2 layers, 2 heads, MHA, dense FFN,
 * no MTP. Override any field.
 *
 * @param overrides Fields to replace.
 * @returns A resolved {@linkcode ModelConfig}.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { tinyConfig } from "./decoder.ts";
 * strictEqual(tinyConfig({ layers: 3 }).layers, 3);
 * ```
 */
export function tinyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    vocab: 32,
    tokenizer: "bytes",
    dModel: 16,
    layers: 2,
    heads: 2,
    seqLen: 16,
    attention: { kind: "mha" },
    ffn: { kind: "dense", hidden: 32 },
    mtp: null,
    fp8: null,
    ropeTheta: 10000,
    yarn: null,
    normEps: 1e-6,
    initStd: 0.02,
    ...overrides,
  };
}

/**
 * The decoder. `forward(ids)` gives logits; `loss(inputs, targets)` the training loss with MTP
 * and MoE balance terms; `parameters()` every named tensor (parameters and the MoE bias
 * buffers, which have no `requiresGrad`) in DeepSeek-V3 Hugging Face names. It satisfies the
 * trainer's `TrainableModel` (`afterOptimizerStep` runs the aux-loss-free bias update).
 * With `config.fp8`, the GEMMs of every Linear but `lm_head` and the MoE gate — attention
 * projections, FFNs, experts — run as simulated FP8 GEMMs (`lib/fp8/linear.ts`), in training and
 * in decoding.
 *
 * Ref: arXiv:2412.19437 §2.
 *
 * @example Logits and the loss of a tiny model with MTP
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { Rng, tensor } from "../tensor/mod.ts";
 * import { Decoder, tinyConfig } from "./decoder.ts";
 * const model = new Decoder(tinyConfig({ mtp: { depth: 1, lambda: 0.3 } }), new Rng(0));
 * const ids = tensor([[1, 2, 3, 4]], { dtype: "i32" });
 * deepStrictEqual(model.forward(ids).shape, [1, 4, 32]);
 * const out = model.loss(ids, tensor([[2, 3, 4, 5]], { dtype: "i32" }));
 * strictEqual(out.mtpLosses.length, 1);
 * strictEqual(model.parameters().has("model.layers.2.eh_proj.weight"), true);
 * ```
 */
export class Decoder implements Module {
  /** `λ` of the MTP loss when set (a schedule over training), else `config.mtp.lambda`. */
  mtpLambda: number | null = null;
  /** The resolved configuration. */
  readonly config: ModelConfig;
  /** `Emb: [V, d]` (`model.embed_tokens.weight`), shared with the MTP modules. */
  readonly embedTokens: Tensor;
  /** The `L` transformer blocks. */
  readonly layers: DecoderBlock[];
  /** Final RMSNorm (`model.norm`). */
  readonly norm: RmsNorm;
  /** Untied output head `[V, d]` (`lm_head`), shared with the MTP modules. */
  readonly lmHead: Linear;
  /** MTP modules `k = 1 .. D`. */
  readonly mtp: Mtp<DecoderBlockOutput, DecoderBlock>[];

  /**
   * Build the model; weights are drawn from `rng` in the order embedding, blocks, `lm_head`,
   * MTP modules.
   *
   * @param config The resolved model configuration.
   * @param rng Seeded generator for the init.
   */
  constructor(config: ModelConfig, rng: Rng) {
    this.config = config;
    const { vocab, dModel: d, layers, initStd, normEps: eps } = config;
    for (const [what, n] of [["vocab", vocab], ["dModel", d], ["layers", layers]] as const) {
      if (!Number.isInteger(n) || n <= 0) {
        throw new Error(`Cannot build a decoder with ${what} ${n}: expected a positive integer`);
      }
    }
    const depth = config.mtp?.depth ?? 0;
    if (!Number.isInteger(depth) || depth < 0) {
      throw new Error(`Cannot build a decoder with MTP depth ${depth}: expected an integer ≥ 0`);
    }
    this.embedTokens = normalParameter([vocab, d], { rng, std: initStd });
    this.layers = Array.from({ length: layers }, (_, i) => new DecoderBlock(config, i, rng));
    this.norm = new RmsNorm({ dim: d, eps });
    this.lmHead = new Linear({ inFeatures: d, outFeatures: vocab, initStd }, rng);
    this.lmHead.fp8Exempt = true; // V3 §3.3: the output head stays in high precision
    this.mtp = Array.from({ length: depth }, (_, k) => {
      const block = new DecoderBlock(config, layers + k, rng);
      return new Mtp({ dModel: d, normEps: eps, initStd }, block, rng);
    });
  }

  /**
   * `Emb(ids)`.
   *
   * @param ids Token ids `[B, T]` `i32`.
   * @returns `[B, T, d]`.
   */
  embed(ids: Tensor): Tensor {
    if (ids.rank !== 2 || ids.dtype !== "i32") {
      throw new Error(
        `Cannot embed token ids [${ids.shape.join(", ")}] of dtype '${ids.dtype}': ` +
          `expected [B, T] i32`,
      );
    }
    return embedding(this.embedTokens, ids); // [B, T, d]
  }

  /**
   * The blocks and `model.norm` on embeddings `x` (positions continue the cache, if given).
   *
   * @param x `Emb(t)`: `[B, T, d]`.
   * @param options The KV cache.
   * @returns `RMSNorm(h^L)` and each block's MoE output.
   */
  trunk(x: Tensor, options: DecoderForwardOptions = {}): TrunkOutput {
    return runSync(this.trunkSteps(x, options));
  }

  /** {@linkcode Decoder.trunk} as {@linkcode HostSteps}; run with `runSync` or `runAsync`. */
  *trunkSteps(x: Tensor, options: DecoderForwardOptions = {}): HostSteps<TrunkOutput> {
    const { cache } = options;
    if (cache !== undefined && cache.layers.length !== this.layers.length) {
      throw new Error(
        `Cannot run ${this.layers.length} layers with a KV cache of ${cache.layers.length}: ` +
          `create it with decoder.newCache()`,
      );
    }
    let h = x;
    const moe: (MoeOutput | null)[] = [];
    for (const [i, block] of this.layers.entries()) {
      const out = yield* block.forwardSteps(h, { cache: cache?.layer(i) }); // h^l: [B, T, d]
      h = out.h;
      moe.push(out.moe);
    }
    return { h: this.norm.forward(h), moe }; // RMSNorm(h^L): [B, T, d]
  }

  /**
   * `lm_head(h)` on the normalised final hidden state.
   *
   * @param h `[B, T, d]` from {@linkcode Decoder.trunk}.
   * @returns Logits `[B, T, V]`.
   */
  head(h: Tensor): Tensor {
    return this.lmHead.forward(h); // [B, T, V]
  }

  /**
   * Next-token logits.
   *
   * @param ids Token ids `[B, T]` `i32`.
   * @param options The KV cache (for generation).
   * @returns Logits `[B, T, V]`.
   */
  forward(ids: Tensor, options: DecoderForwardOptions = {}): Tensor {
    return withFp8(this.config.fp8, () => runSync(this.#forwardSteps(ids, options)));
  }

  /**
   * {@linkcode Decoder.forward} on any backend, WebGPU included (host reads awaited).
   *
   * @param ids Token ids `[B, T]` `i32`.
   * @param options The KV cache.
   * @returns Logits `[B, T, V]`.
   */
  forwardAsync(ids: Tensor, options: DecoderForwardOptions = {}): Promise<Tensor> {
    return withFp8(this.config.fp8, () => runAsync(this.#forwardSteps(ids, options)));
  }

  *#forwardSteps(ids: Tensor, options: DecoderForwardOptions): HostSteps<Tensor> {
    return this.head((yield* this.trunkSteps(this.embed(ids), options)).h);
  }

  /**
   * The training loss: next-token cross-entropy, the MTP losses and the MoE balance losses.
   *
   * @param inputs Token ids `[B, T]` `i32`.
   * @param targets Next tokens `[B, T]` `i32` (`targets[:, i] = inputs[:, i + 1]`; negative
   *   values are ignored).
   * @returns The total loss, its parts and MoE metrics (see {@linkcode DecoderLoss}).
   */
  loss(inputs: Tensor, targets: Tensor): DecoderLoss {
    // V3 §3.3: the Linear GEMMs in FP8 when configured (head and gate stay FP32).
    return withFp8(this.config.fp8, () => runSync(this.#lossSteps(inputs, targets)));
  }

  /**
   * {@linkcode Decoder.loss} on any backend, WebGPU included: the MoE routing reads are awaited.
   * The graph is the same as `loss`'s; call `backward()` on the result as usual.
   *
   * @param inputs Token ids `[B, T]` `i32`.
   * @param targets Next tokens `[B, T]` `i32`.
   * @param options A tidy scope for the intermediates (see `runAsync`).
   * @returns As {@linkcode Decoder.loss}.
   */
  lossAsync(inputs: Tensor, targets: Tensor, options: RunAsyncOptions = {}): Promise<DecoderLoss> {
    return withFp8(this.config.fp8, () => runAsync(this.#lossSteps(inputs, targets), options));
  }

  *#lossSteps(inputs: Tensor, targets: Tensor): HostSteps<DecoderLoss> {
    if (inputs.shape.join() !== targets.shape.join()) {
      throw new Error(
        `Cannot compute the loss of inputs [${inputs.shape.join(", ")}] against targets [${
          targets.shape.join(", ")
        }]: the shapes must match`,
      );
    }
    const t = inputs.shape[1];
    const depth = this.mtp.length;
    if (depth >= t) {
      throw new Error(
        `Cannot train MTP depth ${depth} on sequences of ${t} tokens: expected more than ${depth}`,
      );
    }
    const trunk = yield* this.trunkSteps(this.embed(inputs)); // h^0: [B, T, d]
    const mainLoss = crossEntropy(this.head(trunk.h), targets); // L_main
    const moe: MoeLayerMetrics[] = [];
    const auxLosses: Tensor[] = [];
    const collect = (layer: number, out: MoeOutput | null) => {
      if (out === null) return;
      moe.push({ layer, load: out.load, maxVio: out.maxVio });
      if (out.auxLoss !== null) auxLosses.push(out.auxLoss);
    };
    trunk.moe.forEach((out, i) => collect(i, out));
    const mtpLosses: Tensor[] = [];
    let hPrev = trunk.h;
    for (const [i, module] of this.mtp.entries()) {
      const k = i + 1;
      const { inputIds, labels } = mtpAlignment(targets, k); // t_{i+k}, t_{i+k+1}: [B, T − k]
      const hIn = slice(hPrev, 1, 0, t - k); // h^{k-1}_{0:T−k}: [B, T − k, d]
      const out = yield* module.forwardSteps(hIn, this.embed(inputIds)); // h^k, eqs. (21)–(22)
      mtpLosses.push(module.loss(out.h, this.lmHead.weight, labels)); // L^k, eq. (24)
      collect(this.layers.length + i, out.moe);
      hPrev = out.h;
    }
    const lambda = this.mtpLambda ?? this.config.mtp?.lambda ?? 0;
    const weighted = depth > 0 ? mtpLoss(mtpLosses, { lambda }) : null; // eq. (25)
    const auxLoss = auxLosses.length > 0 ? auxLosses.reduce((a, b) => add(a, b)) : null;
    let loss = mainLoss;
    if (weighted !== null) loss = add(loss, weighted);
    if (auxLoss !== null) loss = add(loss, auxLoss);
    const logs: Record<string, Tensor | number> = { mainLoss };
    mtpLosses.forEach((l, i) => (logs[`mtpLoss${i + 1}`] = l));
    if (auxLoss !== null) logs.auxLoss = auxLoss;
    const mainMoe = moe.filter((m) => m.layer < this.layers.length);
    if (mainMoe.length > 0) {
      logs.maxVio = mainMoe.reduce((s, m) => s + m.maxVio, 0) / mainMoe.length;
    }
    return { loss, mainLoss, mtpLosses, mtpLoss: weighted, auxLoss, moe, logs };
  }

  /** The MoE layers (main blocks, then MTP blocks). */
  moeLayers(): Moe[] {
    const blocks = [...this.layers, ...this.mtp.map((m) => m.block)];
    return blocks.flatMap((b) => (b.mlp instanceof Moe ? [b.mlp] : []));
  }

  /** The aux-loss-free bias update of every MoE layer; call after each optimizer step. */
  afterOptimizerStep(): void {
    for (const moe of this.moeLayers()) moe.updateBias();
  }

  /**
   * `MaxVio_global` of each main-model MoE layer (from the loads accumulated since their last
   * `resetLoad`).
   *
   * @returns One value per MoE layer, in layer order.
   */
  maxVioGlobal(): number[] {
    return this.layers.flatMap((b) => (b.mlp instanceof Moe ? [maxVio(b.mlp.loadTotal)] : []));
  }

  /**
   * An empty KV cache for the main model's `L` layers.
   *
   * @returns A {@linkcode KvCache}.
   */
  newCache(): KvCache {
    return new KvCache(this.layers.length);
  }

  /**
   * KV-cache bytes per token of the main model, measured from the cache buffers after one
   * token has gone through every attention layer (MLA: `(d_c + d_h^R) · 4 · L`; MHA:
   * `2 n_h d_h · 4 · L`).
   *
   * @returns Bytes per token, summed over layers.
   */
  kvBytesPerToken(): number {
    const cache = this.newCache();
    try {
      noGrad(() =>
        tidy(() => {
          const x = zeros([1, 1, this.config.dModel], { backend: this.embedTokens.backend });
          this.layers.forEach((b, i) => b.selfAttn.forward(x, { cache: cache.layer(i) }));
        })
      );
      return cache.bytesPerToken();
    } finally {
      cache.dispose();
    }
  }

  /**
   * Scalar parameter counts: the main model's total and activated, and the MTP modules'.
   *
   * @returns See {@linkcode ParameterCount}.
   */
  countParameters(): ParameterCount {
    const size = (m: Module) => {
      let n = 0;
      for (const t of m.parameters().values()) if (t.requiresGrad) n += t.size;
      return n;
    };
    let total = this.embedTokens.size + size(this.norm) + size(this.lmHead);
    let inactive = 0;
    for (const block of this.layers) {
      total += size(block);
      const mlp = block.mlp;
      if (mlp instanceof Moe) {
        const { routedExperts, topK } = mlp.config;
        inactive += (routedExperts - topK) * size(mlp.experts[0]);
      }
    }
    const mtp = this.mtp.reduce((n, m) => n + size(m), 0);
    return { total, activated: total - inactive, mtp };
  }

  /**
   * Every named tensor in Hugging Face names: trainable parameters and the MoE bias buffers
   * (`mlp.gate.e_score_correction_bias`, without `requiresGrad`).
   *
   * @returns `model.embed_tokens.weight`, `model.layers.*` (MTP modules as layers `L ..`),
   *   `model.norm.weight`, `lm_head.weight`.
   */
  parameters(): Map<string, Tensor> {
    const out = parameterMap({ "model.embed_tokens.weight": this.embedTokens });
    const add = (prefix: string, m: Module) => {
      for (const [name, t] of m.parameters()) out.set(`${prefix}.${name}`, t);
    };
    this.layers.forEach((b, i) => add(`model.layers.${i}`, b));
    this.mtp.forEach((m, k) => add(`model.layers.${this.layers.length + k}`, m));
    add("model.norm", this.norm);
    add("lm_head", this.lmHead);
    return out;
  }
}
