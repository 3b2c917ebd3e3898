/**
 * Resolution of model configs, shared by the DSL's builders and validators (`model.ts`): every
 * field read with the readers of `check.ts` — lenient for builders (a missing field takes its
 * default), strict for JSON (a missing field is an error) — checked against the others
 * (`kvHeads` divides `heads`, `topK` experts are reachable, …) and filled with the defaults of
 * the modules that own them (`lib/nn`, `lib/fp8`). Private to `lib/dsl`: the public surface is
 * `model()` and `validateModelConfig()`.
 *
 * @module
 */

import type {
  AttentionSpec,
  FfnSpec,
  Fp8Spec,
  MlaSpec,
  ModelConfig,
  MoeSpec,
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
import { asObj, checkNumber, deepFreeze, fail, Fields, renameKeys } from "./check.ts";

/** Defaults of the DSL's `model()`, from the modules that own each value. */
export const MODEL_DEFAULTS = {
  /** RoPE base `θ` (V3 rope_theta 10000). */
  ropeTheta: ROPE_DEFAULTS.theta,
  /** RMSNorm eps (V3 rms_norm_eps 1e-6). */
  normEps: RMS_NORM_DEFAULTS.eps,
  /** Init std: V3 uses 0.006 at d = 7168; small models train better with GPT-2's 0.02. */
  initStd: LINEAR_DEFAULTS.initStd,
  /** Dense SwiGLU hidden width `d_ff ≈ 8/3 · d` (LLaMA's ratio; 683 at d = 256, docs/design.md §6). */
  denseHiddenRatio: SWIGLU_DEFAULTS.hiddenRatio,
} as const;

// ---------------------------------------------------------------------------------------------
// Resolution (shared by the builders and the validators)

/** What the part resolvers need from the model; `null` while a builder checks a lone part. */
export interface Ctx {
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
  "normTopK",
  "groupScore",
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

/**
 * Resolve an attention part at `path`; with `ctx` null a lone part is only checked (builders:
 * an MLA part then resolves to `null`, its defaults need the model).
 */
export function resolveAttention(
  value: unknown,
  path: string,
  strict: boolean,
  ctx: Ctx | null,
): AttentionSpec | null {
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

/**
 * Resolve an FFN part at `path`; with `ctx` null a lone part is only checked (builders: the
 * part then resolves to `null` where its defaults need the model).
 */
export function resolveFfn(
  value: unknown,
  path: string,
  strict: boolean,
  ctx: Ctx | null,
): FfnSpec | null {
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
  // Optional, written only when given, so the resolved config (and its hash) is unchanged
  // for models that do not set them.
  const normTopK = f.has("normTopK") ? f.bool("normTopK") : undefined;
  const groupScore = f.has("groupScore")
    ? f.oneOf("groupScore", ["top2-sum", "max"] as const)
    : undefined;
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
    ...(normTopK === undefined ? {} : { normTopK }),
    ...(groupScore === undefined ? {} : { groupScore }),
  };
}

/** Resolve the MTP part (`null`: none). */
export function resolveMtp(value: unknown, path: string, strict: boolean): MtpSpec | null {
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

/** Resolve the FP8 part (`null`: full precision). */
export function resolveFp8(value: unknown, path: string, strict: boolean): Fp8Spec | null {
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
  // Fine-grained scales change every 128 elements of K and are applied at promotion
  // (lib/fp8/gemm.ts): the interval must divide 128, and never promoting needs one scale.
  if (granularity !== "tensor" && (p === null || 128 % p !== 0)) {
    fail(
      f.at("promotion"),
      p,
      `an interval that divides 128 with granularity "${granularity}" (its scales change every ` +
        `128 elements of K and are applied at promotion); null (never promote) needs ` +
        `granularity "tensor"`,
    );
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
  const keys = [
    "factor",
    "originalMaxPositionEmbeddings",
    "betaFast",
    "betaSlow",
    "mscale",
    "mscaleAllDim",
  ];
  const f = new Fields(obj, path, strict, keys);
  const out: YarnSpec = {
    factor: f.num("factor", { min: 1 }),
    originalMaxPositionEmbeddings: f.num("originalMaxPositionEmbeddings", POSITIVE),
  };
  for (const key of ["betaFast", "betaSlow", "mscale"] as const) {
    if (f.has(key)) out[key] = f.num(key, { above: 0 });
  }
  if (f.has("mscaleAllDim")) out.mscaleAllDim = f.num("mscaleAllDim", { min: 0 });
  return out;
}

/** Resolve a whole model; `strict` for JSON, lenient (defaults) for builders. */
export function resolveModel(value: unknown, path: string, strict: boolean): ModelConfig {
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
    f.raw("attention", () => ({ kind: "mha" }), "an attention part"),
    f.at("attention"),
    strict,
    ctx,
  ) as AttentionSpec;
  const ffn = resolveFfn(
    f.raw("ffn", () => ({ kind: "dense" }), "an FFN part"),
    f.at("ffn"),
    strict,
    ctx,
  );
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
