/**
 * The typed experiment DSL: build a model from DeepSeek-V3 parts, declare variants, data,
 * training and metrics, and expand them into content-addressed runs (docs/design.md §3, §7).
 * Every builder checks its input and throws a {@linkcode ConfigError} naming the path.
 *
 * ```ts
 * import { experiment, gqa, mla, model, moe } from "./mod.ts";
 * const base = model({ vocab: "bytes", dModel: 128, layers: 4, heads: 4, seqLen: 128, ffn: moe({ routedExperts: 8, topK: 2 }) });
 * const vary = { mha: {}, gqa: { attention: gqa({ kvHeads: 2 }) }, mla: { attention: mla({ kvLatentRank: 32 }) } };
 * const exp = experiment({ name: "attention", base, vary, train: { tokens: 2e6, batch: 16, lr: 3e-3 }, seeds: [0, 1] });
 * const runs = exp.expand({ budget: "small", codeVersion: "dev", backend: "cpu" }); // 6 runs, content ids
 * ```
 *
 * @module
 */

export {
  closestName,
  ConfigError,
  type ConfigErrorInit,
  editDistance,
  formatValue,
} from "./errors.ts";
export { canonicalJson, sha256Hex } from "./hash.ts";
export {
  type AttentionInput,
  type AttentionSpec,
  type BalanceKind,
  dense,
  type DenseInput,
  type DenseOptions,
  type DenseSpec,
  type FfnInput,
  type FfnSpec,
  fp8,
  FP8_DEFAULTS,
  type Fp8Options,
  type Fp8Spec,
  gqa,
  type GqaOptions,
  type GqaSpec,
  mha,
  type MhaSpec,
  mla,
  MLA_DEFAULTS,
  type MlaInput,
  type MlaOptions,
  type MlaSpec,
  model,
  MODEL_DEFAULTS,
  type ModelConfig,
  modelInputs,
  type ModelOptions,
  moe,
  MOE_DEFAULTS,
  type MoeInput,
  type MoeOptions,
  type MoeSpec,
  mqa,
  type MqaSpec,
  mtp,
  MTP_DEFAULTS,
  type MtpOptions,
  type MtpSpec,
  validateModelConfig,
  type ValidateModelOptions,
  type YarnSpec,
} from "./model.ts";
export * from "./data.ts";
export * from "./train.ts";
export * from "./experiment.ts";
export { experimentFromJson, parseJson } from "./json.ts";
