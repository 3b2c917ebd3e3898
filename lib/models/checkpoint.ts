/**
 * Model checkpoints in the Hugging Face layout of DeepSeek-V3 (DESIGN.md §3): a directory with
 * `model.safetensors` (every tensor of {@linkcode Decoder.parameters}, by DeepSeek-V3 name) and
 * a `config.json` with the Hugging Face `DeepseekV3Config` fields plus the full ablate
 * {@linkcode ModelConfig} under `"ablate"` (the part a load builds from).
 *
 * Only MLA models map one to one onto `DeepseekV3Config`; MHA / GQA / MQA models also write
 * `num_key_value_heads` and `head_dim` and leave the MLA ranks `null`. V3's own MTP layer also
 * stores copies of the shared `embed_tokens` and `shared_head.head`; ablate shares them and
 * neither writes nor reads those copies (a strict load reports them as unexpected).
 *
 * @module
 */

import {
  loadSafetensors,
  noGrad,
  Rng,
  saveSafetensors,
  type Tensor,
  tensor,
} from "../tensor/mod.ts";
import type { ModelConfig } from "./config.ts";
import { Decoder } from "./decoder.ts";

/** Options for {@linkcode loadWeights}. */
export interface LoadWeightsOptions {
  /**
   * Fail on tensors the model does not have (otherwise they are ignored). Missing tensors and
   * shape mismatches always fail.
   * @default {true}
   */
  strict?: boolean;
}

/**
 * Copy named tensors into a model's parameters in place (so an optimizer holding them keeps
 * working), after checking that every name is present with the right shape.
 *
 * @param model The model (anything with `parameters()`).
 * @param tensors Tensors by Hugging Face name.
 * @param options `strict`.
 *
 * @example Copy the weights of one model into another
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { Rng, tensor } from "../tensor/mod.ts";
 * import { loadWeights } from "./checkpoint.ts";
 * import { Decoder, tinyConfig } from "./decoder.ts";
 * const a = new Decoder(tinyConfig(), new Rng(0)), b = new Decoder(tinyConfig(), new Rng(1));
 * loadWeights(b, a.parameters());
 * const ids = tensor([[1, 2, 3]], { dtype: "i32" });
 * assertAllClose(b.forward(ids), a.forward(ids));
 * ```
 */
export function loadWeights(
  model: { parameters(): Map<string, Tensor> },
  tensors: Map<string, Tensor>,
  options: LoadWeightsOptions = {},
): void {
  const { strict = true } = options;
  const params = model.parameters();
  const missing = [...params.keys()].filter((n) => !tensors.has(n));
  if (missing.length > 0) {
    throw new Error(
      `Cannot load weights: ${missing.length} tensor(s) missing from the checkpoint: ` +
        missing.slice(0, 8).map((n) => `'${n}'`).join(", ") + (missing.length > 8 ? ", ..." : ""),
    );
  }
  const unexpected = [...tensors.keys()].filter((n) => !params.has(n));
  if (strict && unexpected.length > 0) {
    throw new Error(
      `Cannot load weights: ${unexpected.length} tensor(s) in the checkpoint are not in the ` +
        `model: ${unexpected.slice(0, 8).map((n) => `'${n}'`).join(", ")}` +
        (unexpected.length > 8 ? ", ..." : "") + " (pass strict: false to ignore them)",
    );
  }
  for (const [name, p] of params) {
    const t = tensors.get(name) as Tensor;
    if (t.shape.join() !== p.shape.join() || t.dtype !== p.dtype) {
      throw new Error(
        `Cannot load tensor '${name}': the checkpoint holds [${t.shape.join(", ")}] ${t.dtype}, ` +
          `the model expects [${p.shape.join(", ")}] ${p.dtype}`,
      );
    }
  }
  noGrad(() => {
    for (const [name, p] of params) {
      const t = tensors.get(name) as Tensor;
      if (t.backend === p.backend) {
        p.assign(t);
        continue;
      }
      const moved = tensor(t.dataSync(), { shape: t.shape, dtype: t.dtype, backend: p.backend });
      p.assign(moved);
      moved.dispose();
    }
  });
}

/** A Hugging Face `config.json` for `DeepseekV3ForCausalLM`, with the ablate config embedded. */
export type HfConfig = Record<string, unknown> & { ablate: ModelConfig };

/**
 * The Hugging Face `config.json` object of a model configuration.
 *
 * @param config The resolved ablate configuration.
 * @returns DeepSeek-V3 config fields plus `ablate: config`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { hfConfig } from "./checkpoint.ts";
 * import { tinyConfig } from "./decoder.ts";
 * const hf = hfConfig(tinyConfig({ mtp: { depth: 1, lambda: 0.3 } }));
 * strictEqual(hf.num_nextn_predict_layers, 1);
 * strictEqual(hf.hidden_size, 16);
 * ```
 */
export function hfConfig(config: ModelConfig): HfConfig {
  const { attention: a, ffn: f } = config;
  const headDim = config.dModel / config.heads;
  const mla = a.kind === "mla" ? a : null;
  const moe = f.kind === "moe" ? f : null;
  let kvHeads = config.heads;
  if (a.kind === "gqa") kvHeads = a.kvHeads;
  else if (a.kind === "mqa") kvHeads = 1;
  return {
    architectures: ["DeepseekV3ForCausalLM"],
    model_type: "deepseek_v3",
    vocab_size: config.vocab,
    hidden_size: config.dModel,
    intermediate_size: moe ? moe.denseHidden : (f as { hidden: number }).hidden,
    moe_intermediate_size: moe ? moe.expertHidden : null,
    num_hidden_layers: config.layers,
    num_nextn_predict_layers: config.mtp?.depth ?? 0,
    num_attention_heads: config.heads,
    num_key_value_heads: kvHeads,
    head_dim: mla ? null : headDim,
    attention_kind: a.kind,
    n_shared_experts: moe ? moe.sharedExperts : null,
    n_routed_experts: moe ? moe.routedExperts : null,
    routed_scaling_factor: moe ? moe.routeScale : 1,
    kv_lora_rank: mla ? mla.kvLatentRank : null,
    q_lora_rank: mla ? (mla.queryLatentRank > 0 ? mla.queryLatentRank : null) : null,
    qk_rope_head_dim: mla ? mla.ropeHeadDim : null,
    v_head_dim: mla ? (mla.vHeadDim ?? headDim) : headDim,
    qk_nope_head_dim: mla ? (mla.nopeHeadDim ?? headDim) : null,
    topk_method: moe ? (moe.balance === "aux-free" ? "noaux_tc" : "greedy") : null,
    n_group: moe ? moe.groups : null,
    topk_group: moe ? moe.topkGroup : null,
    num_experts_per_tok: moe ? moe.topK : null,
    moe_layer_freq: 1,
    first_k_dense_replace: moe ? moe.firstDenseLayers : config.layers,
    norm_topk_prob: true,
    scoring_func: moe ? moe.score : null,
    aux_loss_alpha: moe ? moe.alpha : 0,
    seq_aux: true,
    hidden_act: "silu",
    max_position_embeddings: config.yarn
      ? config.yarn.factor * config.yarn.originalMaxPositionEmbeddings
      : config.seqLen,
    initializer_range: config.initStd,
    rms_norm_eps: config.normEps,
    use_cache: true,
    tie_word_embeddings: false,
    rope_theta: config.ropeTheta,
    rope_scaling: config.yarn
      ? {
        type: "yarn",
        factor: config.yarn.factor,
        original_max_position_embeddings: config.yarn.originalMaxPositionEmbeddings,
        beta_fast: config.yarn.betaFast ?? 32,
        beta_slow: config.yarn.betaSlow ?? 1,
        mscale: config.yarn.mscale ?? 1,
        mscale_all_dim: config.yarn.mscale ?? 1,
      }
      : null,
    attention_bias: false,
    attention_dropout: 0,
    torch_dtype: "float32",
    ablate: config,
  };
}

/**
 * Write `model.safetensors` and `config.json` into `dir` (created if needed; each file is
 * written atomically). Needs `--allow-write`.
 *
 * @param dir The checkpoint directory.
 * @param model The model to save.
 * @returns A promise that resolves once both files are in place.
 *
 * @example
 * ```ts ignore
 * await saveModel("runs/x/checkpoint", model);
 * const again = await loadModel("runs/x/checkpoint");
 * ```
 */
export async function saveModel(dir: string, model: Decoder): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await saveSafetensors(`${dir}/model.safetensors`, model.parameters(), { format: "pt" });
  const json = JSON.stringify(hfConfig(model.config), null, 2) + "\n";
  const temporary = `${dir}/config.json.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(temporary, json);
  await Deno.rename(temporary, `${dir}/config.json`);
}

/**
 * Read the ablate configuration embedded in a checkpoint's `config.json`.
 *
 * @param dir The checkpoint directory.
 * @returns The {@linkcode ModelConfig}.
 */
export async function loadModelConfig(dir: string): Promise<ModelConfig> {
  const path = `${dir}/config.json`;
  const raw = JSON.parse(await Deno.readTextFile(path)) as Partial<HfConfig>;
  const config = raw.ablate;
  if (config === undefined || typeof config !== "object" || config === null) {
    throw new Error(
      `Cannot load '${path}': it has no "ablate" model configuration (not written by ablate?)`,
    );
  }
  return config;
}

/** Options for {@linkcode loadModel}. */
export interface LoadModelOptions extends LoadWeightsOptions {
  /** Seed of the throwaway init before the weights are copied in. @default {0} */
  seed?: number;
}

/**
 * Build a {@linkcode Decoder} from `dir/config.json` and load `dir/model.safetensors` into it,
 * checking every name and shape. Needs `--allow-read`.
 *
 * @param dir The checkpoint directory.
 * @param options `strict` name checking.
 * @returns The model on the current backend.
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<Decoder> {
  const config = await loadModelConfig(dir);
  const model = new Decoder(config, new Rng(options.seed ?? 0));
  const { tensors } = await loadSafetensors(`${dir}/model.safetensors`);
  try {
    loadWeights(model, tensors, options);
  } catch (e) {
    throw new Error(`Cannot load '${dir}/model.safetensors': ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return model;
}
