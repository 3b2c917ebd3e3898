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
import { FP8_DEFAULTS } from "../fp8/linear.ts";
import { SWIGLU_DEFAULTS, swigluHidden } from "../nn/ffn.ts";
import { LINEAR_DEFAULTS } from "../nn/linear.ts";
import { MLA_DEFAULTS, mlaRopeHeadDim } from "../nn/mla.ts";
import { MOE_DEFAULTS, moeDefaultAlpha, moeExpertHidden } from "../nn/moe.ts";
import { MTP_DEFAULTS } from "../nn/mtp.ts";
import { RMS_NORM_DEFAULTS } from "../nn/norm.ts";
import { ROPE_DEFAULTS } from "../nn/rope.ts";
import { asObj, checkNumber, deepCopy, deepFreeze, fail, Fields, renameKeys } from "./check.ts";

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
};

// ---------------------------------------------------------------------------------------------
// Defaults: each part's live beside its module (lib/nn, lib/fp8); the model's own are here.

export { MLA_DEFAULTS, MOE_DEFAULTS, MTP_DEFAULTS };
export { FP8_DEFAULTS };

/** Defaults of {@linkcode model}, from the modules that own each value. */
export const MODEL_DEFAULTS = {
  /** RoPE base `θ` (V3 rope_theta 10000). */
  ropeTheta: ROPE_DEFAULTS.theta,
  /** RMSNorm eps (V3 rms_norm_eps 1e-6). */
  normEps: RMS_NORM_DEFAULTS.eps,
  /** Init std: V3 uses 0.006 at d = 7168; small models train better with GPT-2's 0.02. */
  initStd: LINEAR_DEFAULTS.initStd,
  /** Dense SwiGLU hidden width `d_ff ≈ 8/3 · d` (LLaMA's ratio; 683 at d = 256, DESIGN.md §6). */
  denseHiddenRatio: SWIGLU_DEFAULTS.hiddenRatio,
} as const;

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

/** Options of {@linkcode fp8}. */
export interface Fp8Options {
  /** @default {"tile"} */
  granularity?: Fp8Spec["granularity"];
  /** `null` = never promote. @default {128} */
  promotion?: number | null;
  /** @default {14} */
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
// Resolution (shared by the builders and the validators)

/** What the part resolvers need from the model; `null` while a builder checks a lone part. */
interface Ctx {
  dModel: number;
  heads: number;
  layers: number;
}

const POSITIVE = { int: true, min: 1 } as const;
const COUNT = { int: true, min: 0 } as const;
const ATTENTION_KINDS = ["mha", "gqa", "mqa", "mla"] as const;
const FFN_KINDS = ["dense", "moe"] as const;
const MLA_KEYS = [
  "kind",
  "kvLatentRank",
  "queryLatentRank",
  "ropeHeadDim",
  "nopeHeadDim",
  "vHeadDim",
  "absorb",
];
const MOE_KEYS = [
  "kind",
  "routedExperts",
  "sharedExperts",
  "topK",
  "expertHidden",
  "score",
  "balance",
  "gamma",
  "alpha",
  "routeScale",
  "groups",
  "topkGroup",
  "firstDenseLayers",
  "denseHidden",
];
/** Deprecated keys, read so that `config.json` files saved before the renames still load. */
const MOE_RENAMED = { routed: "routedExperts", shared: "sharedExperts" } as const;
const GQA_RENAMED = { groups: "kvHeads" } as const;
const MODEL_KEYS = [
  "vocab",
  "tokenizer",
  "dModel",
  "layers",
  "heads",
  "seqLen",
  "attention",
  "ffn",
  "mtp",
  "fp8",
  "ropeTheta",
  "yarn",
  "normEps",
  "initStd",
];

function kindOf<T extends string>(obj: Record<string, unknown>, path: string, kinds: readonly T[]) {
  return new Fields(obj, path, true, Object.keys(obj)).oneOf("kind", kinds);
}

function resolveAttention(value: unknown, path: string, strict: boolean, ctx: Ctx | null) {
  const obj = asObj(value, path, "an attention part: mha(), gqa(), mqa() or mla()");
  const kind = kindOf(obj, path, ATTENTION_KINDS);
  switch (kind) {
    case "mha":
    case "mqa":
      new Fields(obj, path, strict, ["kind"]);
      return { kind };
    case "gqa": {
      const f = new Fields(renameKeys(obj, path, GQA_RENAMED), path, strict, ["kind", "kvHeads"]);
      const kvHeads = f.num("kvHeads", POSITIVE);
      if (ctx && ctx.heads % kvHeads !== 0) {
        fail(f.at("kvHeads"), kvHeads, `a divisor of heads ${ctx.heads}`);
      }
      return { kind, kvHeads };
    }
    case "mla":
      return resolveMla(new Fields(obj, path, strict, MLA_KEYS), ctx);
    default:
      return kind satisfies never;
  }
}

function resolveMla(f: Fields, ctx: Ctx | null): MlaSpec | null {
  const dh = ctx ? ctx.dModel / ctx.heads : NaN; // d_h
  const kvLatentRank = f.num("kvLatentRank", POSITIVE);
  const queryLatentRank = f.num("queryLatentRank", COUNT, () => MLA_DEFAULTS.queryLatentRank);
  const even = (): number => mlaRopeHeadDim(dh);
  const ropeHeadDim = f.has("ropeHeadDim") || ctx ? f.num("ropeHeadDim", POSITIVE, even) : 2;
  if (ropeHeadDim % 2 !== 0) fail(f.at("ropeHeadDim"), ropeHeadDim, "an even integer >= 2");
  const nope = f.has("nopeHeadDim") || ctx ? f.num("nopeHeadDim", POSITIVE, () => dh, true) : 0;
  const v = f.has("vHeadDim") || ctx ? f.num("vHeadDim", POSITIVE, () => dh, true) : 0;
  const absorb = f.bool("absorb", () => MLA_DEFAULTS.absorb, true);
  if (!ctx) return null;
  const kvWidth = ctx.heads * (nope + v), qWidth = ctx.heads * (nope + ropeHeadDim);
  if (kvLatentRank > kvWidth) {
    fail(
      f.at("kvLatentRank"),
      kvLatentRank,
      `at most heads · (nopeHeadDim + vHeadDim) = ${kvWidth}, the width it compresses`,
    );
  }
  if (queryLatentRank > qWidth) {
    fail(
      f.at("queryLatentRank"),
      queryLatentRank,
      `0 or at most heads · (nopeHeadDim + ropeHeadDim) = ${qWidth}, the width it compresses`,
    );
  }
  return {
    kind: "mla",
    kvLatentRank,
    queryLatentRank,
    ropeHeadDim,
    nopeHeadDim: nope,
    vHeadDim: v,
    absorb,
  };
}

function resolveFfn(value: unknown, path: string, strict: boolean, ctx: Ctx | null) {
  const obj = asObj(value, path, "an FFN part: dense() or moe()");
  const kind = kindOf(obj, path, FFN_KINDS);
  switch (kind) {
    case "dense": {
      const f = new Fields(obj, path, strict, ["kind", "hidden"]);
      if (!ctx && !f.has("hidden")) return null;
      return { kind, hidden: f.num("hidden", POSITIVE, () => swigluHidden(ctx?.dModel ?? 0)) };
    }
    case "moe":
      return resolveMoe(
        new Fields(renameKeys(obj, path, MOE_RENAMED), path, strict, MOE_KEYS),
        ctx,
      );
    default:
      return kind satisfies never;
  }
}

function resolveMoe(f: Fields, ctx: Ctx | null): MoeSpec | null {
  const D = MOE_DEFAULTS;
  const routedExperts = f.num("routedExperts", POSITIVE);
  const sharedExperts = f.num("sharedExperts", COUNT, () => D.sharedExperts);
  const topK = f.num("topK", POSITIVE);
  if (topK > routedExperts) {
    fail(f.at("topK"), topK, `an integer from 1 to routedExperts ${routedExperts}`);
  }
  const score = f.oneOf("score", ["sigmoid", "softmax"] as const, () => D.score);
  const balance = f.oneOf("balance", ["aux-free", "aux-loss", "none"] as const, () => D.balance);
  const gamma = f.num("gamma", { min: 0 }, () => D.gamma);
  const alpha = f.num("alpha", { min: 0 }, () => moeDefaultAlpha(balance));
  const routeScale = f.num("routeScale", { above: 0 }, () => D.routeScale);
  const groups = f.num("groups", POSITIVE, () => D.groups);
  if (routedExperts % groups !== 0) {
    fail(f.at("groups"), groups, `a divisor of routedExperts ${routedExperts}`);
  }
  const topkGroup = f.num("topkGroup", POSITIVE, () => groups);
  if (topkGroup > groups) {
    fail(f.at("topkGroup"), topkGroup, `an integer from 1 to groups ${groups}`);
  }
  const reachable = topkGroup * (routedExperts / groups);
  if (topK > reachable) {
    fail(
      f.at("topK"),
      topK,
      `at most topkGroup · routedExperts / groups = ${reachable} reachable experts`,
    );
  }
  const firstDenseLayers = f.num("firstDenseLayers", COUNT, () => D.firstDenseLayers);
  const d = ctx?.dModel ?? 0;
  const expertHidden = f.has("expertHidden") || ctx
    ? f.num("expertHidden", POSITIVE, () => moeExpertHidden(d, topK, sharedExperts))
    : 0;
  const dense = f.has("denseHidden") || ctx
    ? f.num("denseHidden", POSITIVE, () => swigluHidden(d))
    : 0;
  if (!ctx) return null;
  if (firstDenseLayers > ctx.layers) {
    fail(f.at("firstDenseLayers"), firstDenseLayers, `an integer from 0 to layers ${ctx.layers}`);
  }
  return {
    kind: "moe",
    routedExperts,
    sharedExperts,
    topK,
    expertHidden,
    score,
    balance,
    gamma,
    alpha,
    routeScale,
    groups,
    topkGroup,
    firstDenseLayers,
    denseHidden: dense,
  };
}

function resolveMtp(value: unknown, path: string, strict: boolean): MtpSpec | null {
  if (value === null) return null;
  const f = new Fields(asObj(value, path, "null or an MTP part: mtp()"), path, strict, [
    "depth",
    "lambda",
  ]);
  return {
    depth: f.num("depth", POSITIVE, () => MTP_DEFAULTS.depth),
    lambda: f.num("lambda", { min: 0 }, () => MTP_DEFAULTS.lambda),
  };
}

function resolveFp8(value: unknown, path: string, strict: boolean): Fp8Spec | null {
  if (value === null) return null;
  const obj = asObj(value, path, "null or an FP8 part: fp8()");
  const f = new Fields(obj, path, strict, ["granularity", "promotion", "accumulatorBits"]);
  const granularity = f.oneOf(
    "granularity",
    ["tensor", "tile", "block"] as const,
    () => FP8_DEFAULTS.granularity,
  );
  const allowed = "null (never promote) or an integer >= 1";
  const p = f.raw("promotion", () => FP8_DEFAULTS.promotion, allowed);
  if (p !== null && (typeof p !== "number" || !Number.isSafeInteger(p) || p < 1)) {
    fail(f.at("promotion"), p, allowed);
  }
  const accumulatorBits = f.num(
    "accumulatorBits",
    { int: true, min: 1, max: 23 },
    () => FP8_DEFAULTS.accumulatorBits,
  );
  return { granularity, promotion: p as number | null, accumulatorBits };
}

function resolveYarn(value: unknown, path: string, strict: boolean): YarnSpec | null {
  if (value === null) return null;
  const obj = asObj(value, path, "null or a YaRN spec");
  const keys = ["factor", "originalMaxPositionEmbeddings", "betaFast", "betaSlow", "mscale"];
  const f = new Fields(obj, path, strict, keys);
  const out: YarnSpec = {
    factor: f.num("factor", { min: 1 }),
    originalMaxPositionEmbeddings: f.num("originalMaxPositionEmbeddings", POSITIVE),
  };
  for (const key of ["betaFast", "betaSlow", "mscale"] as const) {
    if (f.has(key)) out[key] = f.num(key, { above: 0 });
  }
  return out;
}

/** Resolve a whole model; `strict` for JSON, lenient (defaults) for builders. */
function resolveModel(value: unknown, path: string, strict: boolean): ModelConfig {
  const f = new Fields(asObj(value, path, "a model config object"), path, strict, MODEL_KEYS);
  const vocabAllowed = '"bytes" or an integer vocabulary size';
  const rawVocab = f.raw("vocab", undefined, vocabAllowed);
  if (rawVocab !== "bytes" && typeof rawVocab !== "number") {
    fail(f.at("vocab"), rawVocab, vocabAllowed);
  }
  const tokenizer = f.oneOf(
    "tokenizer",
    ["bytes", "bpe"] as const,
    () => rawVocab === "bytes" ? "bytes" : "bpe",
  );
  let vocab: number;
  if (tokenizer === "bytes") {
    if (rawVocab !== "bytes" && rawVocab !== 256) {
      fail(f.at("vocab"), rawVocab, '256 (or "bytes") with tokenizer "bytes"');
    }
    vocab = 256;
  } else {
    if (rawVocab === "bytes") fail(f.at("tokenizer"), tokenizer, '"bytes" with vocab "bytes"');
    vocab = checkNumber(rawVocab, { int: true, min: 256, max: 1 << 20 }, f.at("vocab"));
  }
  const dModel = f.num("dModel", POSITIVE);
  const layers = f.num("layers", POSITIVE);
  const heads = f.num("heads", POSITIVE);
  if (dModel % heads !== 0) fail(f.at("heads"), heads, `a divisor of dModel ${dModel}`);
  const seqLen = f.num("seqLen", POSITIVE);
  const ctx: Ctx = { dModel, heads, layers };
  const attention = resolveAttention(
    f.raw("attention", () => mha(), "an attention part"),
    f.at("attention"),
    strict,
    ctx,
  ) as AttentionSpec;
  const ffn = resolveFfn(f.raw("ffn", () => dense(), "an FFN part"), f.at("ffn"), strict, ctx);
  const mtpSpec = resolveMtp(f.raw("mtp", () => null, "null or mtp()"), f.at("mtp"), strict);
  const fp8Spec = resolveFp8(f.raw("fp8", () => null, "null or fp8()"), f.at("fp8"), strict);
  const ropeTheta = f.num("ropeTheta", { above: 0 }, () => MODEL_DEFAULTS.ropeTheta);
  const yarn = resolveYarn(f.raw("yarn", () => null, "null or a YaRN spec"), f.at("yarn"), strict);
  const normEps = f.num("normEps", { above: 0 }, () => MODEL_DEFAULTS.normEps);
  const initStd = f.num("initStd", { above: 0 }, () => MODEL_DEFAULTS.initStd);
  return deepFreeze({
    vocab,
    tokenizer,
    dModel,
    layers,
    heads,
    seqLen,
    attention,
    ffn: ffn as FfnSpec,
    mtp: mtpSpec,
    fp8: fp8Spec,
    ropeTheta,
    yarn,
    normEps,
    initStd,
  });
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
 * FP8 mixed precision for the Linear GEMMs (V3 §3.3).
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
 * @example The DESIGN.md §6 benchmark model
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
