/**
 * Model builders: `mha() gqa() mqa() mla()` for attention, `dense() moe()` for the FFN, `mtp()`,
 * `fp8()`, and `model({...})`, which fills every default and returns the frozen, fully resolved
 * {@linkcode ModelConfig} of `lib/models/config.ts`. `validateModelConfig()` checks the same
 * things for configs read from JSON or the CLI, with the same {@linkcode ConfigError}s.
 *
 * Part builders return only the fields you wrote (plus `kind`), so a variant that passes
 * `mla({ kvLatentRank: 64 })` over an MLA base changes only that rank; `model()` resolves the
 * defaults that depend on the model (`dModel / heads`, `8/3 · dModel`) once the model is known.
 *
 * Shape letters: `d` dModel, `n_h` heads, `d_h = d / n_h`, `d_c` KV latent rank, `d_h^R` RoPE dims.
 * Ref: DeepSeek-V3 arXiv:2412.19437 §2 (MLA, DeepSeekMoE, MTP) and §3.3 (FP8).
 *
 * @module
 */

import type {
  BalanceKind,
  Fp8Spec,
  GqaSpec,
  MhaSpec,
  ModelConfig,
  MqaSpec,
  YarnSpec,
} from "../models/config.ts";
import { deepCopy, deepFreeze } from "./check.ts";
import {
  MODEL_DEFAULTS,
  resolveAttention,
  resolveFfn,
  resolveFp8,
  resolveModel,
  resolveMtp,
} from "./_resolve.ts";

export type {
  AttentionSpec,
  BalanceKind,
  DenseSpec,
  FfnSpec,
  Fp8Spec,
  GqaSpec,
  MhaSpec,
  MlaSpec,
  ModelConfig,
  MoeSpec,
  MqaSpec,
  MtpSpec,
  YarnSpec,
} from "../models/config.ts";

// ---------------------------------------------------------------------------------------------
// Defaults: each part's live beside its module (lib/nn, lib/fp8), the model's in _resolve.ts.

export { MLA_DEFAULTS } from "../nn/mla.ts";
export { MOE_DEFAULTS } from "../nn/moe.ts";
export { MTP_DEFAULTS } from "../nn/mtp.ts";
export { FP8_DEFAULTS } from "../fp8/linear.ts";
export { MODEL_DEFAULTS };

// ---------------------------------------------------------------------------------------------
// What a researcher writes

/** Options of {@linkcode gqa}. */
export interface GqaOptions {
  /** Key/value heads, each shared by `heads / kvHeads` query heads; must divide `heads`. */
  kvHeads: number;
}

/** Options of {@linkcode mla}. */
export interface MlaOptions {
  /** `d_c`, the KV latent rank (V3 512). */
  kvLatentRank: number;
  /** `d_c'`, the query latent rank; 0 = no query compression. @default {0} */
  queryLatentRank?: number;
  /** `d_h^R`, decoupled RoPE dims per head, even. @default {d_h / 2, rounded to even} */
  ropeHeadDim?: number;
  /** No-RoPE query/key dims per head. @default {dModel / heads} */
  nopeHeadDim?: number;
  /** Value dims per head. @default {dModel / heads} */
  vHeadDim?: number;
  /** Run the absorbed path. @default {false} */
  absorb?: boolean;
}

/** An MLA part as written: {@linkcode MlaOptions} plus `kind`; `model()` resolves the rest. */
export interface MlaInput extends MlaOptions {
  kind: "mla";
}

/** Options of {@linkcode dense}. */
export interface DenseOptions {
  /** `d_ff`. @default {round(8/3 · dModel)} */
  hidden?: number;
}

/** A dense FFN part as written. */
export interface DenseInput extends DenseOptions {
  kind: "dense";
}

/** Options of {@linkcode moe}; see {@linkcode MoeSpec} for the meaning of each field. */
export interface MoeOptions {
  /** `N_r`, routed experts. */
  routedExperts: number;
  /** `K_r`, experts per token. */
  topK: number;
  /** `N_s`, shared experts. @default {1} */
  sharedExperts?: number;
  /** Width of one expert. @default {round(8/3 · dModel / (topK + sharedExperts))} */
  expertHidden?: number;
  /** @default {"sigmoid"} */
  score?: "sigmoid" | "softmax";
  /** @default {"aux-free"} */
  balance?: BalanceKind;
  /** `γ`. @default {0.001} */
  gamma?: number;
  /** `α`. @default {0.0001 with "aux-free", 0.01 with "aux-loss", 0 with "none"} */
  alpha?: number;
  /** @default {1} */
  routeScale?: number;
  /** Expert groups (must divide `routedExperts`). @default {1} */
  groups?: number;
  /** Groups a token may use. @default {groups} */
  topkGroup?: number;
  /** @default {0} */
  firstDenseLayers?: number;
  /** Width of the first dense layers. @default {round(8/3 · dModel)} */
  denseHidden?: number;
  /** Renormalise the chosen experts' scores (`false`: V2's `norm_topk_prob: false`). @default {true} */
  normTopK?: boolean;
  /** Group ranking: `"top2-sum"` (V3) or `"max"` (V2 group_limited_greedy). @default {"top2-sum"} */
  groupScore?: "top2-sum" | "max";
}

/** A MoE part as written. */
export interface MoeInput extends MoeOptions {
  kind: "moe";
}

/** Options of {@linkcode mtp}. */
export interface MtpOptions {
  /** @default {1} */
  depth?: number;
  /** @default {0.3} */
  lambda?: number;
}

/** Options of {@linkcode fp8} (the simulation: `lib/fp8/linear.ts`, `lib/fp8/gemm.ts`). */
export interface Fp8Options {
  /**
   * Scales: `"tile"` (V3: activations 1×128, weights 128×128), `"block"` (128×128 both) or
   * `"tensor"` (one per operand).
   * @default {"tile"}
   */
  granularity?: Fp8Spec["granularity"];
  /**
   * `N_C`: elements of K per promotion of the limited accumulator to FP32; it must divide 128
   * unless `granularity` is `"tensor"`. `null` never promotes (only with `"tensor"`).
   * @default {128}
   */
  promotion?: number | null;
  /** Mantissa bits of the limited accumulator of every FP8 GEMM, 1–23. @default {14} */
  accumulatorBits?: number;
}

/** Attention as written. */
export type AttentionInput = MhaSpec | GqaSpec | MqaSpec | MlaInput;

/** FFN as written. */
export type FfnInput = DenseInput | MoeInput;

/** Options of {@linkcode model}. A resolved {@linkcode ModelConfig} is also valid input. */
export interface ModelOptions {
  /** `"bytes"` (256, byte tokenizer) or a BPE vocabulary size. */
  vocab: "bytes" | number;
  /** @default {"bytes" for vocab "bytes", else "bpe"} */
  tokenizer?: "bytes" | "bpe";
  /** `d`. */
  dModel: number;
  layers: number;
  /** `n_h`; must divide `dModel`. */
  heads: number;
  seqLen: number;
  /** @default {mha()} */
  attention?: AttentionInput;
  /** @default {dense()} */
  ffn?: FfnInput;
  /** `null` or absent = no MTP. @default {null} */
  mtp?: MtpOptions | null;
  /** `null` or absent = full precision. @default {null} */
  fp8?: Fp8Options | null;
  /** @default {10000} */
  ropeTheta?: number;
  /** @default {null} */
  yarn?: YarnSpec | null;
  /** @default {1e-6} */
  normEps?: number;
  /** @default {0.02} */
  initStd?: number;
}

// ---------------------------------------------------------------------------------------------
// Builders

/**
 * Multi-head attention: every head has its own keys and values.
 *
 * @returns The attention part.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { mha } from "./model.ts";
 * deepStrictEqual(mha(), { kind: "mha" });
 * ```
 */
export function mha(): MhaSpec {
  return Object.freeze({ kind: "mha" });
}

/**
 * Multi-query attention: one key/value head shared by all query heads.
 *
 * @returns The attention part.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { mqa } from "./model.ts";
 * deepStrictEqual(mqa(), { kind: "mqa" });
 * ```
 */
export function mqa(): MqaSpec {
  return Object.freeze({ kind: "mqa" });
}

/**
 * Grouped-query attention: `kvHeads` key/value heads.
 *
 * @param options `kvHeads`, which must divide the model's `heads` (checked by `model()`).
 * @returns The attention part.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { gqa } from "./model.ts";
 * deepStrictEqual(gqa({ kvHeads: 2 }), { kind: "gqa", kvHeads: 2 });
 * ```
 */
export function gqa(options: GqaOptions): GqaSpec {
  return checkPart({ ...options, kind: "gqa" }, "attention") as GqaSpec;
}

/**
 * Multi-head latent attention (DeepSeek-V2 §2.1): keys and values through a `d_c`-dim latent.
 * Defaults that depend on the model (`d_h`) are filled by `model()`.
 *
 * @param options `kvLatentRank` and optionally the other {@linkcode MlaOptions}.
 * @returns The attention part with the fields given.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { mla, model } from "./model.ts";
 * const attention = mla({ kvLatentRank: 32, queryLatentRank: 48 });
 * const m = model({ vocab: "bytes", dModel: 128, layers: 2, heads: 4, seqLen: 64, attention });
 * deepStrictEqual(m.attention, {
 *   kind: "mla", kvLatentRank: 32, queryLatentRank: 48, ropeHeadDim: 16, nopeHeadDim: 32,
 *   vHeadDim: 32, absorb: false,
 * });
 * ```
 */
export function mla(options: MlaOptions): MlaInput {
  return checkPart({ ...options, kind: "mla" }, "attention") as MlaInput;
}

/**
 * A dense SwiGLU FFN.
 *
 * @param options `hidden` (default `round(8/3 · dModel)`, filled by `model()`).
 * @returns The FFN part.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { dense, model } from "./model.ts";
 * const m = model({ vocab: "bytes", dModel: 256, layers: 4, heads: 4, seqLen: 128, ffn: dense() });
 * deepStrictEqual(m.ffn, { kind: "dense", hidden: 683 });
 * ```
 */
export function dense(options: DenseOptions = {}): DenseInput {
  return checkPart({ ...options, kind: "dense" }, "ffn") as DenseInput;
}

/**
 * DeepSeekMoE: shared experts plus `topK` of `routedExperts` fine-grained experts per token.
 *
 * @param options `routedExperts`, `topK` and optionally the other {@linkcode MoeOptions}.
 * @returns The FFN part with the fields given.
 *
 * @example V3's router; experts as wide as the dense FFN over `topK + sharedExperts`
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { model, moe } from "./model.ts";
 * const ffn = moe({ routedExperts: 8, topK: 2 });
 * const m = model({ vocab: "bytes", dModel: 96, layers: 2, heads: 4, seqLen: 64, ffn });
 * deepStrictEqual(m.ffn, {
 *   kind: "moe", routedExperts: 8, sharedExperts: 1, topK: 2, expertHidden: 85, score: "sigmoid",
 *   balance: "aux-free", gamma: 0.001, alpha: 0.0001, routeScale: 1, groups: 1, topkGroup: 1,
 *   firstDenseLayers: 0, denseHidden: 256,
 * });
 * ```
 */
export function moe(options: MoeOptions): MoeInput {
  return checkPart({ ...options, kind: "moe" }, "ffn") as MoeInput;
}

/**
 * Multi-token prediction (V3 §2.2).
 *
 * @param options `depth` (default 1) and `lambda` (default 0.3).
 * @returns The MTP part with the fields given.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { model, mtp } from "./model.ts";
 * const m = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 2, seqLen: 32, mtp: mtp() });
 * deepStrictEqual(m.mtp, { depth: 1, lambda: 0.3 });
 * ```
 */
export function mtp(options: MtpOptions = {}): MtpOptions {
  const part = deepCopy(options);
  resolveMtp(part, "model.mtp", false);
  return deepFreeze(part);
}

/**
 * FP8 mixed precision (V3 §3.3): the GEMMs of every Linear except the output head and the MoE
 * gate — attention projections, dense FFN, shared and routed experts — forward and both
 * gradients, as simulated FP8 GEMMs with a limited accumulator promoted to FP32.
 *
 * @param options `granularity` ("tile"), `promotion` (128), `accumulatorBits` (14).
 * @returns The FP8 part with the fields given.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { fp8, model } from "./model.ts";
 * const m = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 2, seqLen: 32, fp8: fp8() });
 * deepStrictEqual(m.fp8, { granularity: "tile", promotion: 128, accumulatorBits: 14 });
 * ```
 */
export function fp8(options: Fp8Options = {}): Fp8Options {
  const part = deepCopy(options);
  resolveFp8(part, "model.fp8", false);
  return deepFreeze(part);
}

function checkPart(part: Record<string, unknown>, where: "attention" | "ffn"): unknown {
  const copy = deepCopy(part);
  const path = `model.${where}`;
  if (where === "attention") resolveAttention(copy, path, false, null);
  else resolveFfn(copy, path, false, null);
  return deepFreeze(copy);
}

/** What `model()` was given for each config it made, so variants re-derive defaults. */
const WRITTEN = new WeakMap<ModelConfig, ModelOptions>();

/**
 * A model: every default filled, every field checked, frozen.
 *
 * @param options The {@linkcode ModelOptions}; a resolved {@linkcode ModelConfig} also works.
 * @returns The fully resolved config.
 * @throws {ConfigError} naming the path, value and what is allowed.
 *
 * @example The docs/design.md §6 benchmark model
 * ```ts
 * import { deepStrictEqual, throws } from "node:assert/strict";
 * import { model } from "./model.ts";
 * const m = model({ vocab: "bytes", dModel: 256, layers: 4, heads: 4, seqLen: 128 });
 * deepStrictEqual([m.vocab, m.attention.kind, m.ffn, m.mtp, m.fp8], [256, "mha", { kind: "dense", hidden: 683 }, null, null]);
 * deepStrictEqual(Object.isFrozen(m.ffn), true);
 * throws(() => model({ vocab: "bytes", dModel: 256, layers: 4, heads: 3, seqLen: 128 }), {
 *   message: "Cannot set model.heads to 3: expected a divisor of dModel 256",
 * });
 * ```
 */
export function model(options: ModelOptions): ModelConfig {
  const written = deepFreeze(deepCopy(options));
  const config = resolveModel(written, "model", false);
  WRITTEN.set(config, written);
  return config;
}

/** Options of {@linkcode validateModelConfig}. */
export interface ValidateModelOptions {
  /**
   * Path prefix of error messages.
   * @default {"model"}
   */
  path?: string;
  /**
   * Fill missing fields with `model()`'s defaults instead of rejecting them.
   * @default {false}
   */
  defaults?: boolean;
}

/**
 * Check a model config that comes from JSON or the CLI and return it resolved and frozen.
 *
 * @param value Parsed JSON.
 * @param options `path` prefix of errors, `defaults` to fill missing fields.
 * @returns The config.
 * @throws {ConfigError} on the first problem: unknown keys (with a suggestion), wrong types,
 * bad numbers and inconsistent fields.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, throws } from "node:assert/strict";
 * import { model, validateModelConfig } from "./model.ts";
 * const m = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 2, seqLen: 32 });
 * deepStrictEqual(validateModelConfig(JSON.parse(JSON.stringify(m))), m);
 * throws(() => validateModelConfig({ ...m, dModle: 64 }), {
 *   message: 'Cannot set unknown key model.dModle to 64 (did you mean "dModel"?): expected a ' +
 *     'key among "vocab", "tokenizer", "dModel", "layers", "heads", "seqLen", "attention", "ffn", ' +
 *     '"mtp", "fp8", "ropeTheta", "yarn", "normEps", "initStd"',
 * });
 * ```
 */
export function validateModelConfig(
  value: unknown,
  options: ValidateModelOptions = {},
): ModelConfig {
  const { path = "model", defaults = false } = options;
  return resolveModel(value, path, !defaults);
}

/**
 * What was written to make `config`: `model()`'s input for configs it made, else the config
 * itself. A variant merges into this, so defaults derived from `dModel` follow a changed width.
 *
 * @param config A model config.
 * @returns The written options (frozen).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { model, modelInputs } from "./model.ts";
 * const m = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 2, seqLen: 32 });
 * deepStrictEqual(modelInputs(m), { vocab: "bytes", dModel: 64, layers: 2, heads: 2, seqLen: 32 });
 * ```
 */
export function modelInputs(config: ModelConfig): ModelOptions {
  return WRITTEN.get(config) ?? config;
}
