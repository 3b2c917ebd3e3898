/**
 * Hugging Face DeepSeek configurations (`config.json` of `DeepseekV3ForCausalLM` and
 * `DeepseekV2ForCausalLM`) to and from ablate's {@linkcode ModelConfig}.
 *
 * {@linkcode fromHfConfig} reads every field that changes the numbers: the MLA ranks
 * (`q_lora_rank: null` = no query latent), head dims, the MoE layout (`n_routed_experts`,
 * `n_shared_experts`, `moe_intermediate_size`, `first_k_dense_replace`, `moe_layer_freq`), the
 * router (`topk_method` greedy / group_limited_greedy / noaux_tc, `scoring_func`,
 * `norm_topk_prob`, `routed_scaling_factor`, `n_group` / `topk_group`), RoPE (`rope_theta`,
 * `rope_scaling` YaRN with `mscale` and `mscale_all_dim`), `rms_norm_eps`,
 * `tie_word_embeddings` and `num_nextn_predict_layers`. An absent field takes the default of
 * Hugging Face's config class for that model type (as `from_pretrained` does), except the sizes,
 * which must be given. A value ablate cannot run is an error naming the field, the value and
 * what is supported. Fields that only matter to other runtimes (`ep_size`, token ids,
 * `use_cache`, `torch_dtype`, ...) are ignored.
 *
 * Semantics followed (Hugging Face `modeling_deepseek.py` of each model type):
 * - V3 multiplies the gates by `routed_scaling_factor` always; V2 only when it does not
 *   renormalise (`norm_topk_prob: false` or one expert per token);
 * - `norm_topk_prob` renormalises only when `num_experts_per_tok > 1`;
 * - `group_limited_greedy` ranks groups by their largest score, `noaux_tc` by the sum of the top-2
 *   biased scores (with `gate.e_score_correction_bias`), `greedy` ignores groups;
 * - a layer is MoE when `n_routed_experts` is set and `l ≥ first_k_dense_replace`; ablate
 *   supports `moe_layer_freq: 1` only.
 *
 * {@linkcode toHfConfig} writes the reverse: only Hugging Face keys, `deepseek_v2` for a
 * softmax-gated model without MTP that V2's code runs unchanged, `deepseek_v3` otherwise.
 *
 * @module
 */

import type { FfnSpec, MlaSpec, ModelConfig, MoeSpec, YarnSpec } from "./config.ts";

/** The model types {@linkcode fromHfConfig} reads. */
export type HfModelType = "deepseek_v3" | "deepseek_v2";

/** A parsed `config.json`. */
export type HfConfigJson = Record<string, unknown>;

/** Router algorithms (`topk_method`) ablate runs. */
export const HF_TOPK_METHODS = ["greedy", "group_limited_greedy", "noaux_tc"] as const;

/** `topk_method` of a Hugging Face DeepSeek config. */
export type HfTopkMethod = typeof HF_TOPK_METHODS[number];

/**
 * Defaults of the behavioural fields of each Hugging Face config class
 * (`configuration_deepseek.py` of DeepSeek-V3 and DeepSeek-V2): what an absent key means.
 */
export const HF_CONFIG_DEFAULTS: Readonly<Record<HfModelType, Readonly<HfConfigJson>>> = {
  deepseek_v3: {
    q_lora_rank: 1536,
    n_shared_experts: 1,
    n_routed_experts: 256,
    routed_scaling_factor: 2.5,
    topk_method: "noaux_tc",
    n_group: 8,
    topk_group: 4,
    num_experts_per_tok: 8,
    moe_layer_freq: 1,
    first_k_dense_replace: 3,
    norm_topk_prob: true,
    scoring_func: "sigmoid",
    aux_loss_alpha: 0.001,
    seq_aux: true,
    hidden_act: "silu",
    max_position_embeddings: 4096,
    initializer_range: 0.02,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    num_nextn_predict_layers: 1,
  },
  deepseek_v2: {
    q_lora_rank: 1536,
    n_shared_experts: null,
    n_routed_experts: null,
    routed_scaling_factor: 1,
    topk_method: "gready", // sic: the class default, which its own gate does not accept
    n_group: null,
    topk_group: null,
    num_experts_per_tok: null,
    moe_layer_freq: 1,
    first_k_dense_replace: 0,
    norm_topk_prob: false,
    scoring_func: "softmax",
    aux_loss_alpha: 0.001,
    seq_aux: true,
    hidden_act: "silu",
    max_position_embeddings: 2048,
    initializer_range: 0.02,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    num_nextn_predict_layers: 0, // V2 has no MTP
  },
};

/** Options for {@linkcode fromHfConfig}. */
export interface FromHfConfigOptions {
  /**
   * Where the JSON came from, for error messages.
   * @default {"config.json"}
   */
  source?: string;
  /**
   * `λ`, the MTP loss weight given to `num_nextn_predict_layers` (training only; V3 §4.2).
   * @default {0.3}
   */
  mtpLambda?: number;
  /**
   * `γ`, the aux-loss-free bias update speed given to `noaux_tc` routers (training only).
   * @default {0.001}
   */
  gamma?: number;
}

/** Reads fields of one config, with Hugging Face defaults and errors that name the field. */
class HfFields {
  readonly #json: HfConfigJson;
  readonly #defaults: Readonly<HfConfigJson>;
  readonly #source: string;

  constructor(json: HfConfigJson, defaults: Readonly<HfConfigJson>, source: string) {
    this.#json = json;
    this.#defaults = defaults;
    this.#source = source;
  }

  fail(field: string, value: unknown, expected: string): never {
    const shown = value === undefined ? "missing" : `${JSON.stringify(value)}`;
    throw new Error(
      `Cannot read the Hugging Face config '${this.#source}': '${field}' is ${shown}, ` +
        `supported: ${expected}`,
    );
  }

  /** The raw value, or the class default when absent. */
  raw(field: string): unknown {
    const v = this.#json[field];
    return v === undefined ? this.#defaults[field] : v;
  }

  /** A positive integer that must be given (a size). */
  size(field: string): number {
    const v = this.#json[field];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      this.fail(field, v, "a positive integer");
    }
    return v;
  }

  /** A positive integer or `null`/0 (e.g. `q_lora_rank`); 0 stands for `null`. */
  sizeOrNull(field: string): number {
    const v = this.raw(field);
    if (v === null || v === 0) return 0;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      this.fail(field, v, "null or a positive integer");
    }
    return v;
  }

  /** An integer ≥ `min` (defaults apply). */
  int(field: string, min: number): number {
    const v = this.raw(field);
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      this.fail(field, v, `an integer ≥ ${min}`);
    }
    return v;
  }

  /** A finite number `> 0` (or `≥ 0` with `zero`). */
  num(field: string, zero = false): number {
    const v = this.raw(field);
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (!zero && v === 0)) {
      this.fail(field, v, zero ? "a finite number ≥ 0" : "a finite number > 0");
    }
    return v;
  }

  bool(field: string): boolean {
    const v = this.raw(field);
    if (typeof v !== "boolean") this.fail(field, v, "true or false");
    return v;
  }

  /** One of `options`. */
  oneOf<T extends string>(field: string, options: readonly T[]): T {
    const v = this.raw(field);
    if (typeof v !== "string" || !(options as readonly string[]).includes(v)) {
      this.fail(field, v, options.map((o) => `'${o}'`).join(", "));
    }
    return v as T;
  }

  /** Exactly `value` (a field ablate supports in one setting only). */
  only(field: string, value: unknown, why: string): void {
    const v = this.raw(field);
    if (v !== undefined && v !== null && v !== value) {
      this.fail(field, v, `${JSON.stringify(value)} (${why})`);
    }
  }
}

function modelTypeOf(json: HfConfigJson, source: string): HfModelType {
  const type = json.model_type;
  if (type === "deepseek_v3" || type === "deepseek_v2") return type;
  throw new Error(
    `Cannot read the Hugging Face config '${source}': 'model_type' is ${
      type === undefined ? "missing" : JSON.stringify(type)
    }, supported: 'deepseek_v3', 'deepseek_v2'`,
  );
}

function readYarn(f: HfFields): YarnSpec | null {
  const raw = f.raw("rope_scaling");
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    f.fail("rope_scaling", raw, "null or a YaRN object");
  }
  const rs = raw as Record<string, unknown>;
  const type = rs.type ?? rs.rope_type;
  if (type !== "yarn") f.fail("rope_scaling.type", type, "'yarn'");
  const num = (key: string, def: number | undefined, zero = false) => {
    const v = rs[key] ?? def;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (!zero && v === 0)) {
      f.fail(`rope_scaling.${key}`, v, zero ? "a finite number ≥ 0" : "a finite number > 0");
    }
    return v;
  };
  const factor = num("factor", undefined);
  if (factor < 1) f.fail("rope_scaling.factor", factor, "a number ≥ 1");
  const original = num("original_max_position_embeddings", undefined);
  if (!Number.isInteger(original)) {
    f.fail("rope_scaling.original_max_position_embeddings", original, "a positive integer");
  }
  const mscale = num("mscale", 1);
  const mscaleAllDim = num("mscale_all_dim", 0, true); // Hugging Face's default: 0
  const yarn: YarnSpec = {
    factor,
    originalMaxPositionEmbeddings: original,
    betaFast: num("beta_fast", 32),
    betaSlow: num("beta_slow", 1),
    mscale,
  };
  if (mscaleAllDim !== mscale) yarn.mscaleAllDim = mscaleAllDim;
  return yarn;
}

function readMla(f: HfFields): MlaSpec {
  const ropeHeadDim = f.size("qk_rope_head_dim");
  if (ropeHeadDim % 2 !== 0) {
    f.fail("qk_rope_head_dim", ropeHeadDim, "an even number (RoPE rotates pairs)");
  }
  return {
    kind: "mla",
    kvLatentRank: f.size("kv_lora_rank"),
    queryLatentRank: f.sizeOrNull("q_lora_rank"),
    ropeHeadDim,
    nopeHeadDim: f.size("qk_nope_head_dim"),
    vHeadDim: f.size("v_head_dim"),
    absorb: false, // the plain path, as the DSL resolves it (the absorbed one gives the same numbers)
  };
}

function readFfn(f: HfFields, type: HfModelType, layers: number): FfnSpec {
  const denseHidden = f.size("intermediate_size");
  const routed = f.raw("n_routed_experts");
  if (routed === null || routed === undefined || routed === 0) {
    return { kind: "dense", hidden: denseHidden };
  }
  f.only("moe_layer_freq", 1, "every layer from first_k_dense_replace on is MoE");
  const nRouted = f.int("n_routed_experts", 1);
  const topK = f.int("num_experts_per_tok", 1);
  if (topK > nRouted) f.fail("num_experts_per_tok", topK, `1 to n_routed_experts ${nRouted}`);
  const shared = f.raw("n_shared_experts") === null ? 0 : f.int("n_shared_experts", 0);
  const score = f.oneOf("scoring_func", ["sigmoid", "softmax"] as const);
  const method = f.oneOf("topk_method", HF_TOPK_METHODS);
  const norm = f.bool("norm_topk_prob");
  const normTopK = norm && topK > 1; // modeling_deepseek.py: `if top_k > 1 and norm_topk_prob`
  const scale = f.num("routed_scaling_factor");
  // V2 scales only the gates it does not renormalise; V3 scales always.
  const routeScale = type === "deepseek_v2" && normTopK ? 1 : scale;
  let groups = 1, topkGroup = 1;
  if (method !== "greedy") {
    groups = f.int("n_group", 1);
    topkGroup = f.int("topk_group", 1);
    if (nRouted % groups !== 0) {
      f.fail("n_group", groups, `a divisor of n_routed_experts ${nRouted}`);
    }
    if (topkGroup > groups) f.fail("topk_group", topkGroup, `1 to n_group ${groups}`);
    const reachable = topkGroup * (nRouted / groups);
    if (topK > reachable) {
      f.fail(
        "num_experts_per_tok",
        topK,
        `at most topk_group · n_routed_experts / n_group = ${reachable}`,
      );
    }
  }
  const alpha = f.num("aux_loss_alpha", true);
  if (!f.bool("seq_aux")) f.fail("seq_aux", false, "true (the sequence-wise balance loss)");
  const firstDense = f.int("first_k_dense_replace", 0);
  const moe: MoeSpec = {
    kind: "moe",
    routedExperts: nRouted,
    sharedExperts: shared,
    topK,
    expertHidden: f.size("moe_intermediate_size"),
    score,
    balance: method === "noaux_tc" ? "aux-free" : alpha > 0 ? "aux-loss" : "none",
    gamma: 0.001, // V3 §4.2; replaced by FromHfConfigOptions.gamma
    alpha,
    routeScale,
    groups,
    topkGroup,
    firstDenseLayers: Math.min(firstDense, layers),
    denseHidden,
  };
  if (!normTopK) moe.normTopK = false;
  if (method === "group_limited_greedy") moe.groupScore = "max";
  return moe;
}

/**
 * The ablate {@linkcode ModelConfig} of a Hugging Face DeepSeek-V3 or DeepSeek-V2 (and V2-Lite)
 * `config.json`; see the module doc for the fields and their meaning.
 *
 * @param json The parsed `config.json`.
 * @param options Source name for errors; training-only values (MTP `λ`, bias `γ`).
 * @returns The resolved configuration (`fp8: null`: FP8 weights are a property of the stored
 *   tensors, see `loadModel`'s `fp8` option).
 *
 * @example DeepSeek-V2-Lite: no query latent, softmax gate without renormalisation
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { fromHfConfig } from "./hf.ts";
 * const config = fromHfConfig({
 *   model_type: "deepseek_v2", vocab_size: 102400, hidden_size: 2048, num_hidden_layers: 27,
 *   num_attention_heads: 16, intermediate_size: 10944, moe_intermediate_size: 1408,
 *   n_routed_experts: 64, n_shared_experts: 2, num_experts_per_tok: 6, first_k_dense_replace: 1,
 *   kv_lora_rank: 512, q_lora_rank: null, qk_nope_head_dim: 128, qk_rope_head_dim: 64,
 *   v_head_dim: 128, topk_method: "greedy", norm_topk_prob: false, scoring_func: "softmax",
 * });
 * strictEqual(config.attention.kind === "mla" && config.attention.queryLatentRank, 0);
 * deepStrictEqual(config.ffn.kind === "moe" && [config.ffn.score, config.ffn.normTopK], [
 *   "softmax",
 *   false,
 * ]);
 * ```
 */
export function fromHfConfig(json: HfConfigJson, options: FromHfConfigOptions = {}): ModelConfig {
  const { source = "config.json", mtpLambda = 0.3, gamma } = options;
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(`Cannot read the Hugging Face config '${source}': expected a JSON object`);
  }
  const type = modelTypeOf(json, source);
  const f = new HfFields(json, HF_CONFIG_DEFAULTS[type], source);
  f.only("hidden_act", "silu", "SwiGLU experts and FFNs");
  f.only("attention_bias", false, "bias-free projections");
  f.only("pretraining_tp", 1, "no tensor-parallel slicing of the projections");
  f.only("rope_interleave", true, "RoPE on adjacent pairs, DeepSeek's layout");
  const quant = f.raw("quantization_config");
  if (quant !== undefined && quant !== null) readQuantization(f, quant);
  const layers = f.size("num_hidden_layers");
  const dModel = f.size("hidden_size"), heads = f.size("num_attention_heads");
  const attention = readMla(f);
  const ffn = readFfn(f, type, layers);
  if (ffn.kind === "moe" && gamma !== undefined) ffn.gamma = gamma;
  const depth = f.int("num_nextn_predict_layers", 0);
  const firstDense = f.raw("first_k_dense_replace");
  if (ffn.kind === "moe" && depth > 0 && typeof firstDense === "number" && firstDense > layers) {
    // ablate's MTP blocks follow the FFN of the layers after the main ones (MoE)
    f.fail("first_k_dense_replace", firstDense, `at most num_hidden_layers ${layers} with MTP`);
  }
  f.bool("tie_word_embeddings"); // tied checkpoints load with lm_head copied from the embedding
  return {
    vocab: f.size("vocab_size"),
    tokenizer: "bpe",
    dModel,
    layers,
    heads,
    seqLen: f.int("max_position_embeddings", 1),
    attention,
    ffn,
    mtp: depth > 0 ? { depth, lambda: mtpLambda } : null,
    fp8: null,
    ropeTheta: f.num("rope_theta"),
    yarn: readYarn(f),
    normEps: f.num("rms_norm_eps"),
    initStd: f.num("initializer_range"),
  };
}

function readQuantization(f: HfFields, quant: unknown): void {
  if (typeof quant !== "object" || quant === null || Array.isArray(quant)) {
    f.fail("quantization_config", quant, "an object");
  }
  const q = quant as Record<string, unknown>;
  const expect = (key: string, ok: boolean, allowed: string) => {
    if (!ok) f.fail(`quantization_config.${key}`, q[key], allowed);
  };
  expect("quant_method", q.quant_method === "fp8", "'fp8'");
  expect("fmt", q.fmt === undefined || q.fmt === "e4m3", "'e4m3'");
  const block = q.weight_block_size;
  expect(
    "weight_block_size",
    Array.isArray(block) && block.length === 2 && block[0] === 128 && block[1] === 128,
    "[128, 128]",
  );
  expect(
    "activation_scheme",
    q.activation_scheme === undefined || q.activation_scheme === "dynamic",
    "'dynamic'",
  );
}

/** The FP8 `quantization_config` DeepSeek-V3 ships (E4M3 weights, 128×128 block scales). */
export const HF_FP8_QUANTIZATION: Readonly<HfConfigJson> = {
  activation_scheme: "dynamic",
  fmt: "e4m3",
  quant_method: "fp8",
  weight_block_size: [128, 128],
};

/** Options for {@linkcode toHfConfig}. */
export interface ToHfConfigOptions {
  /**
   * Add DeepSeek-V3's FP8 `quantization_config` (the checkpoint stores FP8 weights).
   * @default {false}
   */
  fp8Weights?: boolean;
  /** `torch_dtype` to declare. @default {"float32"} */
  torchDtype?: string;
}

/**
 * The router of a MoE config as a Hugging Face `topk_method`: `noaux_tc` for a biased
 * (aux-free) or top-2-sum group-limited router, `group_limited_greedy` for groups ranked by
 * their max, else `greedy`. ({@linkcode toHfConfig} rejects the one mix no method expresses:
 * groups ranked by max with a bias.)
 *
 * @param moe The MoE part.
 * @returns The method.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { hfTopkMethod } from "./hf.ts";
 * const moe = {
 *   kind: "moe", routedExperts: 8, sharedExperts: 1, topK: 2, expertHidden: 4, score: "softmax",
 *   balance: "aux-loss", gamma: 0, alpha: 0.01, routeScale: 1, groups: 1, topkGroup: 1,
 *   firstDenseLayers: 0, denseHidden: 8,
 * } as const;
 * strictEqual(hfTopkMethod(moe), "greedy");
 * strictEqual(hfTopkMethod({ ...moe, balance: "aux-free" }), "noaux_tc");
 * ```
 */
export function hfTopkMethod(moe: MoeSpec): HfTopkMethod {
  if ((moe.groupScore ?? "top2-sum") === "max" && moe.balance !== "aux-free") {
    return moe.groups > 1 ? "group_limited_greedy" : "greedy";
  }
  return moe.balance === "aux-free" || moe.groups > 1 ? "noaux_tc" : "greedy";
}

/**
 * The Hugging Face `config.json` of an MLA model: only `DeepseekV3Config` (or, for a softmax
 * router without bias or MTP that V2's code runs unchanged, `DeepseekV2Config`) keys.
 *
 * @param config The resolved configuration (MLA attention).
 * @param options FP8 `quantization_config`, `torch_dtype`.
 * @returns The JSON object; {@linkcode fromHfConfig} maps it back to `config` (up to training
 *   settings: `seqLen`, `tokenizer`, `gamma`, MTP `λ`, `absorb`, `fp8`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { tinyConfig } from "./decoder.ts";
 * import { toHfConfig } from "./hf.ts";
 * const config = tinyConfig({
 *   attention: { kind: "mla", kvLatentRank: 8, queryLatentRank: 0, ropeHeadDim: 4 },
 * });
 * const hf = toHfConfig(config);
 * strictEqual(hf.q_lora_rank, null);
 * strictEqual("ablate" in hf || "attention_kind" in hf || "head_dim" in hf, false);
 * ```
 */
export function toHfConfig(config: ModelConfig, options: ToHfConfigOptions = {}): HfConfigJson {
  const a = config.attention;
  if (a.kind !== "mla") {
    throw new Error(
      `Cannot write a Hugging Face DeepSeek config for attention '${a.kind}': ` +
        `DeepseekV3Config describes MLA only (save with format 'ablate')`,
    );
  }
  const moe = config.ffn.kind === "moe" ? config.ffn : null;
  if (moe !== null && (moe.groupScore ?? "top2-sum") === "max" && moe.balance === "aux-free") {
    throw new Error(
      `Cannot write a Hugging Face config for MoE groupScore 'max' with balance 'aux-free': ` +
        `group_limited_greedy has no bias (use groupScore 'top2-sum', topk_method noaux_tc)`,
    );
  }
  if (moe !== null && moe.topK === 1 && (moe.normTopK ?? true)) {
    throw new Error(
      `Cannot write a Hugging Face config for MoE topK 1 with normTopK: Hugging Face's gate ` +
        `does not renormalise a single expert's score (set normTopK: false)`,
    );
  }
  return deepseekConfigFields(config, options);
}

/**
 * The `DeepseekV3Config` / `DeepseekV2Config` fields of any config: {@linkcode toHfConfig} for
 * MLA; for MHA / GQA / MQA the MLA ranks are `null` (ablate's own format adds the attention
 * kind, see `hfConfig` in `checkpoint.ts`).
 *
 * @param config The resolved configuration.
 * @param options FP8 `quantization_config`, `torch_dtype`.
 * @returns The JSON object.
 */
export function deepseekConfigFields(
  config: ModelConfig,
  options: ToHfConfigOptions = {},
): HfConfigJson {
  const { fp8Weights = false, torchDtype = "float32" } = options;
  const a = config.attention;
  const mla = a.kind === "mla" ? a : null;
  const f = config.ffn;
  const moe = f.kind === "moe" ? f : null;
  const headDim = config.dModel / config.heads;
  const method = moe ? hfTopkMethod(moe) : null;
  const normTopK = moe ? (moe.normTopK ?? true) && moe.topK > 1 : true;
  const depth = config.mtp?.depth ?? 0;
  const v2 = moe !== null && moe.score === "softmax" && method !== "noaux_tc" && depth === 0 &&
    (!normTopK || moe.routeScale === 1);
  const type: HfModelType = v2 ? "deepseek_v2" : "deepseek_v3";
  const yarn = config.yarn;
  const out: HfConfigJson = {
    architectures: [v2 ? "DeepseekV2ForCausalLM" : "DeepseekV3ForCausalLM"],
    model_type: type,
    vocab_size: config.vocab,
    hidden_size: config.dModel,
    intermediate_size: moe ? moe.denseHidden : (f as { hidden: number }).hidden,
    moe_intermediate_size: moe ? moe.expertHidden : null,
    num_hidden_layers: config.layers,
    num_attention_heads: config.heads,
    num_key_value_heads: config.heads,
    n_shared_experts: moe ? moe.sharedExperts : null,
    n_routed_experts: moe ? moe.routedExperts : null,
    routed_scaling_factor: moe ? moe.routeScale : 1,
    kv_lora_rank: mla ? mla.kvLatentRank : null,
    q_lora_rank: mla && mla.queryLatentRank > 0 ? mla.queryLatentRank : null,
    qk_rope_head_dim: mla ? mla.ropeHeadDim : null,
    v_head_dim: mla ? (mla.vHeadDim ?? headDim) : headDim,
    qk_nope_head_dim: mla ? (mla.nopeHeadDim ?? headDim) : null,
    topk_method: method ?? "greedy",
    n_group: moe ? moe.groups : 1,
    topk_group: moe ? moe.topkGroup : 1,
    num_experts_per_tok: moe ? moe.topK : null,
    moe_layer_freq: 1,
    first_k_dense_replace: moe ? moe.firstDenseLayers : config.layers,
    norm_topk_prob: moe ? (moe.normTopK ?? true) : true,
    scoring_func: moe ? moe.score : "sigmoid",
    aux_loss_alpha: moe ? moe.alpha : 0,
    seq_aux: true,
    hidden_act: "silu",
    max_position_embeddings: yarn
      ? yarn.factor * yarn.originalMaxPositionEmbeddings
      : config.seqLen,
    initializer_range: config.initStd,
    rms_norm_eps: config.normEps,
    use_cache: true,
    tie_word_embeddings: false,
    rope_theta: config.ropeTheta,
    rope_scaling: yarn
      ? {
        type: "yarn",
        factor: yarn.factor,
        original_max_position_embeddings: yarn.originalMaxPositionEmbeddings,
        beta_fast: yarn.betaFast ?? 32,
        beta_slow: yarn.betaSlow ?? 1,
        mscale: yarn.mscale ?? 1,
        mscale_all_dim: yarn.mscaleAllDim ?? yarn.mscale ?? 1,
      }
      : null,
    attention_bias: false,
    attention_dropout: 0,
    torch_dtype: torchDtype,
  };
  if (!v2) out.num_nextn_predict_layers = depth;
  if (fp8Weights) out.quantization_config = { ...HF_FP8_QUANTIZATION };
  return out;
}
