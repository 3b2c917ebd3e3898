/**
 * `experiment({...})`: a base model, named variants, data, training, metrics and seeds, expanded
 * into content-addressed runs (docs/design.md §3 and §7).
 *
 * How a run is made, for each variant and seed:
 * 1) model: the variant's overrides deep-merge into what was written for the base
 *    (`modelInputs(base)`); a part whose `kind` differs replaces the base's part wholesale,
 *    `null` removes a part (`mtp: null`), arrays replace; then `model()` fills the defaults, so
 *    defaults derived from `dModel` follow a variant that changes the width.
 * 2) train: the experiment's `train` ← the budget's overrides ← the variant's `train`
 *    (see `train.ts`).
 * 3) id: SHA-256 of the canonical JSON of everything that changes the numbers: resolved model,
 *    data spec (and corpus hash when given), resolved train, seed, code version and backend.
 *    Names (experiment, variant) and the eval list are left out, so the same run shared by two
 *    experiments has one id and one result.
 *
 * @module
 */

import {
  asObj,
  closestNameOf,
  deepCopy,
  deepFreeze,
  fail,
  Fields,
  isObj,
  type Obj,
  quoteAll,
} from "./check.ts";
import { brown, type DataSpec, dataVocab, validateDataSpec } from "./data.ts";
import { canonicalJson, sha256Hex } from "./hash.ts";
import {
  type AttentionInput,
  dense,
  type DenseOptions,
  type FfnInput,
  type Fp8Options,
  mha,
  type MlaOptions,
  type ModelConfig,
  modelInputs,
  type ModelOptions,
  type MoeOptions,
  type MtpOptions,
  validateModelConfig,
  type YarnSpec,
} from "./model.ts";
import {
  type Budget,
  checkEval,
  checkTrainOverride,
  checkTrainSpec,
  type EvalMetric,
  resolveTrain,
  type TrainConfig,
  type TrainSettings,
  type TrainSpec,
} from "./train.ts";

/** Model fields a variant may change; parts without `kind` merge into the base's part. */
export interface ModelOverride {
  vocab?: "bytes" | number;
  tokenizer?: "bytes" | "bpe";
  dModel?: number;
  layers?: number;
  heads?: number;
  seqLen?: number;
  /** A new part (`mla({...})`), or fields to merge into the base's part. */
  attention?: AttentionInput | Partial<MlaOptions> | { kvHeads?: number };
  /** A new part (`moe({...})`), or fields to merge into the base's part. */
  ffn?: FfnInput | Partial<MoeOptions> | DenseOptions;
  /** `null` turns MTP off. */
  mtp?: MtpOptions | null;
  /** `null` turns FP8 off. */
  fp8?: Fp8Options | null;
  ropeTheta?: number;
  yarn?: Partial<YarnSpec> | null;
  normEps?: number;
  initStd?: number;
}

/** One variant: model overrides plus optional training overrides. */
export interface VariantSpec extends ModelOverride {
  /** Overrides of the experiment's `train` for this variant. */
  train?: Partial<TrainSettings>;
}

/** Options of {@linkcode experiment}. */
export interface ExperimentOptions {
  /** Names the folder `runs/<name>/`: letters, digits, `.`, `_`, `-`. */
  name: string;
  /** The base model, from `model()` (or a resolved config). */
  base: ModelConfig;
  /** Variant name → overrides; `{}` is the base itself. Declaration order is run order. */
  vary: Record<string, VariantSpec>;
  /** @default {brown()} */
  data?: DataSpec;
  train: TrainSpec;
  /** @default {["valLoss"]} */
  eval?: readonly EvalMetric[];
  /** @default {[0]} */
  seeds?: readonly number[];
}

/** Options of {@linkcode Experiment.expand}. */
export interface ExpandOptions {
  /** Which training budget. */
  budget: Budget;
  /** Only these variants (still in declaration order). @default {every variant} */
  only?: readonly string[];
  /** Version of the code that will run (e.g. a git commit); enters the id. */
  codeVersion: string;
  /** Backend and adapter description (e.g. `"webgpu: llvmpipe"`); enters the id. */
  backend: string;
  /** Content hash of the loaded corpus (`Corpus.hash`), when known; enters the id. */
  dataHash?: string;
}

/** One run: everything needed to train and evaluate it, and its content id. */
export interface RunSpec {
  experiment: string;
  variant: string;
  seed: number;
  budget: Budget;
  model: ModelConfig;
  data: DataSpec;
  train: TrainConfig;
  eval: readonly EvalMetric[];
  codeVersion: string;
  backend: string;
  /** Corpus content hash, or `null` when the runner did not give one. */
  dataHash: string | null;
  /** 64 hex digits, see {@linkcode runId}. */
  id: string;
}

/** An experiment as JSON (`JSON.stringify(exp)`), accepted back by {@linkcode validateExperiment}. */
export interface ExperimentJson {
  name: string;
  /** What was written for the base (see `modelInputs()`). */
  base: ModelOptions;
  vary: Record<string, VariantSpec>;
  data: DataSpec;
  train: TrainSpec;
  eval: readonly EvalMetric[];
  seeds: readonly number[];
}

/** A declared, checked experiment (frozen). */
export interface Experiment {
  readonly name: string;
  /** The base model, resolved. */
  readonly base: ModelConfig;
  /** The variants as written. */
  readonly vary: Readonly<Record<string, VariantSpec>>;
  readonly data: DataSpec;
  readonly train: TrainSpec;
  readonly eval: readonly EvalMetric[];
  readonly seeds: readonly number[];
  /** Variant names in declaration order. */
  readonly variants: readonly string[];
  /** Each variant's resolved model. */
  readonly models: Readonly<Record<string, ModelConfig>>;
  /** The runs: `only` variants (declaration order) × seeds, variant-major. */
  expand(options: ExpandOptions): RunSpec[];
  /** The experiment as written, for `JSON.stringify`. */
  toJSON(): ExperimentJson;
}

const NAME = /^[A-Za-z][A-Za-z0-9._-]*$/;
const NAME_RULE = "a name of letters, digits, ., _ and - that starts with a letter";
const EXPERIMENT_KEYS = ["name", "base", "vary", "data", "train", "eval", "seeds"];
/** Bump when the hashed payload changes shape, so old and new ids never collide. */
const RUN_ID_FORMAT = 1;

/**
 * Merge a variant's model overrides into a base as written: plain objects merge key by key,
 * except a part whose `kind` differs, which replaces the base's part; other values (numbers,
 * strings, arrays, `null`) replace; `undefined` leaves the base.
 *
 * @param base What was written for the base model.
 * @param override The variant's model fields.
 * @returns A new, unresolved model input.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { mergeModel } from "./experiment.ts";
 * import { dense, moe } from "./model.ts";
 * const base = { vocab: "bytes" as const, dModel: 64, layers: 2, heads: 2, seqLen: 32,
 *   ffn: moe({ routedExperts: 8, topK: 2, sharedExperts: 1 }) };
 * deepStrictEqual(mergeModel(base, { ffn: { topK: 4 } }).ffn, { kind: "moe", routedExperts: 8, topK: 4, sharedExperts: 1 });
 * deepStrictEqual(mergeModel(base, { ffn: dense() }).ffn, { kind: "dense" });
 * ```
 */
export function mergeModel(base: ModelOptions, override: ModelOverride): ModelOptions {
  return merge(base, override) as ModelOptions;
}

function merge(base: unknown, over: unknown): unknown {
  if (over === undefined) return deepCopy(base);
  if (!isObj(over) || !isObj(base)) return deepCopy(over);
  if (over.kind !== undefined && over.kind !== base.kind) return deepCopy(over);
  const out: Obj = deepCopy(base);
  for (const [k, v] of Object.entries(over)) if (v !== undefined) out[k] = merge(base[k], v);
  return out;
}

/**
 * The content id of a run: SHA-256 (pure TypeScript, synchronous) of the canonical JSON (sorted
 * keys) of its resolved model, data spec, corpus hash, resolved train, seed, code version and
 * backend.
 *
 * @param run The fields of a {@linkcode RunSpec} that enter the id.
 * @returns 64 hex digits.
 *
 * @example Seeds give different ids; the id is recomputable from the run
 * ```ts
 * import { deepStrictEqual, notDeepStrictEqual } from "node:assert/strict";
 * import { experiment, model, runId } from "./mod.ts";
 * const base = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 16 });
 * const train = { tokens: 4096, batch: 4, lr: 1e-3 };
 * const exp = experiment({ name: "x", base, vary: { a: {} }, train, seeds: [0, 1] });
 * const [a, b] = exp.expand({ budget: "full", codeVersion: "abc", backend: "cpu" });
 * deepStrictEqual(runId(a), a.id);
 * notDeepStrictEqual(a.id, b.id);
 * ```
 */
export function runId(
  run: Pick<RunSpec, "model" | "data" | "train" | "seed" | "codeVersion" | "backend" | "dataHash">,
): string {
  const { model, data, train, seed, codeVersion, backend, dataHash } = run;
  const payload = {
    format: RUN_ID_FORMAT,
    model,
    data,
    dataHash,
    train,
    seed,
    codeVersion,
    backend,
  };
  return sha256Hex(canonicalJson(payload));
}

function checkSeeds(value: unknown): readonly number[] {
  if (!Array.isArray(value) || value.length === 0) {
    fail("seeds", value, "a non-empty list of integer seeds >= 0");
  }
  value.forEach((s, i) => {
    if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 0) {
      fail(`seeds[${i}]`, s, "an integer >= 0");
    }
    const first = value.indexOf(s);
    if (first !== i) fail(`seeds[${i}]`, s, `a seed not already listed (seeds[${first}] is ${s})`);
  });
  return deepFreeze([...value]);
}

/** Everything `experiment()` resolves up front, so a bad variant fails at declaration. */
function build(value: unknown): Experiment {
  const spec = asObj(value, "experiment", "an experiment object");
  const f = new Fields(spec, "", false, EXPERIMENT_KEYS);
  const name = f.str("name", NAME, NAME_RULE);
  // 1) base, data, train, eval, seeds
  const rawBase = f.raw("base", undefined, "a model config (from model())");
  const base = validateModelConfig(rawBase, { path: "base", defaults: true });
  const written = deepFreeze(deepCopy(modelInputs(rawBase as ModelConfig)));
  const data = validateDataSpec(f.raw("data", () => brown(), "a data spec"), {
    path: "data",
    defaults: true,
  });
  const train = deepFreeze(deepCopy(checkTrainSpec(f.raw("train", undefined, "a train spec"))));
  const evals = checkEval(f.raw("eval", () => ["valLoss"], "a list of metrics"));
  const seeds = checkSeeds(f.raw("seeds", () => [0], "a list of seeds"));
  // 2) variants: merge, resolve, check against the data, resolve train at both budgets
  const vary = asObj(
    f.raw("vary", undefined, "an object of variants"),
    "vary",
    "an object of variants",
  );
  const variants = Object.keys(vary).filter((k) => vary[k] !== undefined);
  if (variants.length === 0) fail("vary", vary, "at least one variant, e.g. { base: {} }");
  const modelKeys = Object.keys(base);
  // a variant's part fields merge into the default part when the base left it out
  const withParts: ModelOptions = { attention: mha(), ffn: dense(), ...written };
  const models: Record<string, ModelConfig> = {};
  const trains: Record<string, Record<Budget, TrainConfig>> = {};
  const { tokenizer, vocab } = dataVocab(data);
  for (const v of variants) {
    if (!NAME.test(v)) fail("vary", v, `variant names: ${NAME_RULE}`);
    const path = `vary.${v}`;
    const variant = asObj(vary[v], path, "an object of overrides ({} = the base)");
    new Fields(variant, path, true, [...modelKeys, "train"]);
    const { train: trainOverride, ...override } = variant;
    const m = validateModelConfig(mergeModel(withParts, override as ModelOverride), {
      path,
      defaults: true,
    });
    if (m.tokenizer !== tokenizer || m.vocab !== vocab) {
      const set = override.vocab !== undefined || override.tokenizer !== undefined;
      const at = set ? `${path}.vocab` : "base.vocab";
      const what = tokenizer === "bytes" ? '"bytes"' : `${vocab} with tokenizer "bpe"`;
      fail(at, m.vocab, `${what}, to match the data's tokenizer`);
    }
    models[v] = m;
    const override_ = trainOverride === undefined
      ? {}
      : checkTrainOverride(trainOverride, `${path}.train`);
    const at = (budget: Budget): TrainConfig =>
      resolveTrain(train, {
        seqLen: m.seqLen,
        budget,
        override: override_,
        overridePath: `${path}.train`,
        mtp: m.mtp !== null,
        context: `variant "${v}" at budget "${budget}"`,
      });
    const full = at("full"); // first, so a problem of the spec itself is reported as such
    trains[v] = { full, small: at("small") };
  }
  const varyCopy = deepFreeze(deepCopy(vary)) as Record<string, VariantSpec>;
  deepFreeze(models);

  function expand(options: ExpandOptions): RunSpec[] {
    const o = new Fields(asObj(options, "expand", "expand options"), "expand", true, [
      "budget",
      "only",
      "codeVersion",
      "backend",
      "dataHash",
    ]);
    const budget = o.oneOf("budget", ["small", "full"] as const);
    const codeVersion = o.str("codeVersion", /\S/, "a non-empty code version string");
    const backend = o.str("backend", /\S/, "a non-empty backend description");
    const dataHash = o.has("dataHash") ? o.str("dataHash", /\S/, "a non-empty hash") : null;
    let chosen = variants;
    if (o.has("only")) {
      const only = o.obj.only;
      if (!Array.isArray(only) || only.length === 0) {
        fail("expand.only", only, "a non-empty list of variant names");
      }
      only.forEach((v, i) => {
        if (!variants.includes(v)) {
          fail(`expand.only[${i}]`, v, `one of ${quoteAll(variants)}`, closestNameOf(v, variants));
        }
      });
      chosen = variants.filter((v) => only.includes(v));
    }
    const runs: RunSpec[] = [];
    for (const variant of chosen) {
      for (const seed of seeds) {
        const body = {
          experiment: name,
          variant,
          seed,
          budget,
          model: models[variant],
          data,
          train: trains[variant][budget],
          eval: evals,
          codeVersion,
          backend,
          dataHash,
        };
        runs.push(deepFreeze({ ...body, id: runId(body) }));
      }
    }
    return runs;
  }

  return Object.freeze({
    name,
    base,
    vary: varyCopy,
    data,
    train,
    eval: evals,
    seeds,
    variants: Object.freeze([...variants]),
    models,
    expand,
    toJSON: (): ExperimentJson => ({
      name,
      base: written,
      vary: varyCopy,
      data,
      train,
      eval: evals,
      seeds,
    }),
  });
}

/**
 * Declare an experiment: check everything and resolve every variant now, so a typo fails at
 * declaration, not hours into a sweep.
 *
 * @param options `name`, `base`, `vary`, `data`, `train`, `eval`, `seeds`.
 * @returns The frozen {@linkcode Experiment}.
 * @throws {ConfigError} naming the path (`vary.mla.attention.kvLatentRank`), value and rule.
 *
 * @example Three attention variants × two seeds
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { experiment, gqa, mla, model } from "./mod.ts";
 * const base = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 4, seqLen: 32 });
 * const exp = experiment({
 *   name: "attention", base,
 *   vary: { mha: {}, gqa: { attention: gqa({ kvHeads: 2 }) }, mla: { attention: mla({ kvLatentRank: 16 }) } },
 *   train: { tokens: 100_000, batch: 8, lr: 3e-3, warmup: 10 }, seeds: [0, 1],
 * });
 * const runs = exp.expand({ budget: "small", codeVersion: "dev", backend: "cpu" });
 * deepStrictEqual(runs.map((r) => `${r.variant}/${r.seed}`), ["mha/0", "mha/1", "gqa/0", "gqa/1", "mla/0", "mla/1"]);
 * deepStrictEqual(runs[0].train.steps, 39);
 * ```
 */
export function experiment(options: ExperimentOptions): Experiment {
  return build(options);
}

/**
 * Check an experiment read from JSON (e.g. `JSON.stringify(exp)` or a CLI file) and declare it.
 * `base` may omit fields that have defaults, as with `model()`.
 *
 * @param value Parsed JSON.
 * @returns The frozen {@linkcode Experiment}.
 * @throws {ConfigError} naming the path, value and what is allowed.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { validateExperiment } from "./experiment.ts";
 * const base = { vocab: "bytes", dModel: 64, layers: 2, heads: 4, seqLen: 32 };
 * throws(() => validateExperiment({ name: "x", base, vary: {}, train: { tokens: 1e5, batch: 8, lr: 1e-3 } }), {
 *   message: "Cannot set vary to {}: expected at least one variant, e.g. { base: {} }",
 * });
 * ```
 */
export function validateExperiment(value: unknown): Experiment {
  return build(value);
}

/**
 * Check a run read back from `config.json`: every part valid, the train config consistent with
 * the model, and the id equal to the hash of the content.
 *
 * @param value Parsed JSON.
 * @returns The frozen {@linkcode RunSpec}.
 * @throws {ConfigError} on the first problem.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, throws } from "node:assert/strict";
 * import { experiment, model, validateRunSpec } from "./mod.ts";
 * const base = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 16 });
 * const exp = experiment({ name: "x", base, vary: { a: {} }, train: { tokens: 4096, batch: 4, lr: 1e-3 } });
 * const [run] = exp.expand({ budget: "full", codeVersion: "abc", backend: "cpu" });
 * deepStrictEqual(validateRunSpec(JSON.parse(JSON.stringify(run))), run);
 * throws(() => validateRunSpec({ ...run, seed: 5 }), /Cannot set run.id to "/);
 * ```
 */
export function validateRunSpec(value: unknown): RunSpec {
  const keys = [
    "experiment",
    "variant",
    "seed",
    "budget",
    "model",
    "data",
    "train",
    "eval",
    "codeVersion",
    "backend",
    "dataHash",
    "id",
  ];
  const f = new Fields(asObj(value, "run", "a run object"), "run", true, keys);
  const experimentName = f.str("experiment", NAME, NAME_RULE);
  const variant = f.str("variant", NAME, NAME_RULE);
  const seed = f.num("seed", { int: true, min: 0 });
  const budget = f.oneOf("budget", ["small", "full"] as const);
  const model = validateModelConfig(f.raw("model", undefined, "a model config"), {
    path: "run.model",
  });
  const data = validateDataSpec(f.raw("data", undefined, "a data spec"), { path: "run.data" });
  const rawTrain = asObj(f.raw("train", undefined, "a train config"), "run.train");
  const { tokensPerStep: _t, steps: _s, ...settings } = rawTrain;
  const train = resolveTrain(settings as unknown as TrainSpec, {
    seqLen: model.seqLen,
    mtp: model.mtp !== null,
    overridePath: "run.train",
  });
  if (canonicalJson(train) !== canonicalJson(rawTrain)) {
    fail("run.train", rawTrain, `the resolved train config ${canonicalJson(train)}`);
  }
  const evals = checkEval(f.raw("eval", undefined, "a list of metrics"), "run.eval");
  const codeVersion = f.str("codeVersion", /\S/, "a non-empty code version string");
  const backend = f.str("backend", /\S/, "a non-empty backend description");
  const rawHash = f.raw("dataHash", undefined, "null or a hash string");
  if (rawHash !== null && (typeof rawHash !== "string" || rawHash.trim() === "")) {
    fail("run.dataHash", rawHash, "null or a non-empty hash string");
  }
  const dataHash = rawHash as string | null;
  const body = {
    experiment: experimentName,
    variant,
    seed,
    budget,
    model,
    data,
    train,
    eval: evals,
    codeVersion,
    backend,
    dataHash,
  };
  const id = runId(body);
  const given = f.raw("id", undefined, "the run's content hash");
  if (given !== id) fail("run.id", given, `${JSON.stringify(id)}, the hash of the run's content`);
  return deepFreeze({ ...body, id });
}
