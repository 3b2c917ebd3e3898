/**
 * Training and evaluation specs. A researcher writes a {@linkcode TrainSpec} (tokens, batch, lr
 * and optional budgets); each run gets a resolved {@linkcode TrainConfig}:
 * 1) the experiment's `train`  2) the budget's overrides  3) the variant's `train` overrides
 * 4) defaults  5) derived `steps = ⌊tokens / (batch · accumulate · seqLen)⌋`.
 *
 * The variant comes last so the difference an ablation is about survives every budget.
 *
 * @module
 */

import {
  asObj,
  checkNumber,
  closestNameOf,
  deepFreeze,
  fail,
  Fields,
  join,
  type Obj,
} from "./check.ts";

/** What an experiment measures (the runner computes them; docs/design.md §5). */
export type EvalMetric =
  | "valLoss"
  | "bitsPerByte"
  | "kvBytesPerToken"
  | "decodeTokensPerSec"
  | "trainTokensPerSec"
  | "maxVio"
  | "mtpAcceptance";

/** Every {@linkcode EvalMetric}. */
export const EVAL_METRICS: readonly EvalMetric[] = [
  "valLoss",
  "bitsPerByte",
  "kvBytesPerToken",
  "decodeTokensPerSec",
  "trainTokensPerSec",
  "maxVio",
  "mtpAcceptance",
];

/** One step of the MTP weight schedule: `lambda` from fraction `from` of training on. */
export interface MtpLambdaStep {
  /** Fraction of the optimizer steps, in `[0, 1)`; the first step starts at 0. */
  from: number;
  /** `λ` from then on. */
  lambda: number;
}

/** Which budget a run uses. */
export type Budget = "small" | "full";

/** Training hyper-parameters as written (all but `tokens`, `batch`, `lr` have defaults). */
export interface TrainSettings {
  /** Training tokens (rounded down to whole optimizer steps). */
  tokens: number;
  /** Sequences per micro-batch. */
  batch: number;
  /** Peak learning rate. */
  lr: number;
  /** Final learning rate. @default {lr / 10} */
  minLr?: number;
  /** Linear warmup steps. @default {0} */
  warmup?: number;
  /** AdamW decoupled weight decay (V3 0.1). @default {0.1} */
  weightDecay?: number;
  /** Max global gradient norm, 0 = off (V3 1.0). @default {1} */
  gradClip?: number;
  /** Micro-batches per optimizer step. @default {1} */
  accumulate?: number;
  /** Evaluate every this many steps (and at the end). @default {⌈steps / 10⌉} */
  evalEvery?: number;
  /** Checkpoint every this many steps (and at the end); 0 = only at the end. @default {0} */
  checkpointEvery?: number;
  /**
   * `λ` over training, overriding `model.mtp.lambda` (V3: 0.3, then 0.1 for the last ~32%).
   * Ignored (resolved to `null`) for a model without MTP.
   * @default {null}
   */
  mtpLambdaSchedule?: MtpLambdaStep[] | null;
}

/** Per-budget overrides. */
export interface TrainBudgets {
  /** @default {tokens, warmup, evalEvery and checkpointEvery times 0.1} */
  small?: Partial<TrainSettings>;
  /** @default {{}} */
  full?: Partial<TrainSettings>;
}

/** What a researcher writes as an experiment's `train`. */
export interface TrainSpec extends TrainSettings {
  /** Overrides for the `small` (quick look) and `full` budgets. */
  budgets?: TrainBudgets;
}

/** A run's resolved training config. */
export interface TrainConfig {
  tokens: number;
  batch: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  gradClip: number;
  accumulate: number;
  evalEvery: number;
  checkpointEvery: number;
  mtpLambdaSchedule: MtpLambdaStep[] | null;
  /** Tokens per optimizer step: `batch · accumulate · seqLen`. */
  tokensPerStep: number;
  /** Optimizer steps: `⌊tokens / tokensPerStep⌋`. */
  steps: number;
}

/** Defaults of {@linkcode TrainSettings}. */
export const TRAIN_DEFAULTS = {
  warmup: 0,
  weightDecay: 0.1, // V3 §4.2
  gradClip: 1, // V3 §4.2
  accumulate: 1,
  checkpointEvery: 0,
  /** `minLr = lr / minLrDivisor`. */
  minLrDivisor: 10,
  /** Evaluations per run when `evalEvery` is not given. */
  evals: 10,
  /** The default `small` budget scales the step counts by this. */
  smallFraction: 0.1,
} as const;

const SETTINGS_KEYS = [
  "tokens",
  "batch",
  "lr",
  "minLr",
  "warmup",
  "weightDecay",
  "gradClip",
  "accumulate",
  "evalEvery",
  "checkpointEvery",
  "mtpLambdaSchedule",
];
const RULES: Record<string, { int?: boolean; min?: number; above?: number }> = {
  tokens: { int: true, min: 1 },
  batch: { int: true, min: 1 },
  lr: { above: 0 },
  minLr: { min: 0 },
  warmup: { int: true, min: 0 },
  weightDecay: { min: 0 },
  gradClip: { min: 0 },
  accumulate: { int: true, min: 1 },
  evalEvery: { int: true, min: 1 },
  checkpointEvery: { int: true, min: 0 },
};

/** Check the type of every field present in `obj` (a spec or a partial override). */
function checkSettings(obj: Obj, path: string, required: readonly string[], keys = SETTINGS_KEYS) {
  const f = new Fields(obj, path, true, keys);
  for (const key of required) if (!f.has(key)) fail(f.at(key), undefined, describeKey(key));
  for (const [key, rule] of Object.entries(RULES)) {
    if (f.has(key)) checkNumber(obj[key], rule, f.at(key));
  }
  if (f.has("mtpLambdaSchedule")) checkSchedule(obj.mtpLambdaSchedule, f.at("mtpLambdaSchedule"));
}

function describeKey(key: string): string {
  const rule = RULES[key];
  return rule.int ? `an integer >= ${rule.min}` : `a finite number > ${rule.above ?? rule.min}`;
}

function checkSchedule(value: unknown, path: string): void {
  if (value === null) return;
  const allowed = "null or a list of { from, lambda } starting at from 0, from increasing below 1";
  if (!Array.isArray(value) || value.length === 0) fail(path, value, allowed);
  let last = -1;
  value.forEach((item, i) => {
    const at = `${path}[${i}]`;
    const f = new Fields(asObj(item, at, "{ from, lambda }"), at, true, ["from", "lambda"]);
    const from = f.num("from", { min: 0 });
    if (from >= 1 || from <= last || (i === 0 && from !== 0)) {
      const want = i === 0 ? "0 (the first step starts training)" : `a number in (${last}, 1)`;
      fail(f.at("from"), from, want);
    }
    f.num("lambda", { min: 0 });
    last = from;
  });
}

/**
 * Check a {@linkcode TrainSpec} read from JSON (types, unknown keys, budgets) without resolving it.
 *
 * @param value Parsed JSON.
 * @param path Path prefix of errors.
 * @returns The spec, typed.
 * @throws {ConfigError} on the first problem.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkTrainSpec } from "./train.ts";
 * throws(() => checkTrainSpec({ tokens: 1000, batch: 4, lr: 0 }), {
 *   message: "Cannot set train.lr to 0: expected a finite number > 0",
 * });
 * ```
 */
export function checkTrainSpec(value: unknown, path = "train"): TrainSpec {
  const obj = asObj(value, path, "a train spec object");
  checkSettings(obj, path, ["tokens", "batch", "lr"], [...SETTINGS_KEYS, "budgets"]);
  if (obj.budgets !== undefined) {
    const at = join(path, "budgets");
    const budgets = new Fields(asObj(obj.budgets, at), at, true, ["small", "full"]);
    for (const b of ["small", "full"]) {
      if (budgets.has(b)) checkSettings(asObj(budgets.obj[b], budgets.at(b)), budgets.at(b), []);
    }
  }
  return obj as unknown as TrainSpec;
}

/**
 * Check a variant's (partial) train override.
 *
 * @param value Parsed JSON.
 * @param path Path prefix of errors.
 * @returns The override, typed.
 * @throws {ConfigError} on the first problem.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkTrainOverride } from "./train.ts";
 * throws(() => checkTrainOverride({ Lr: 1 }, "vary.a.train"), {
 *   message: 'Cannot set unknown key vary.a.train.Lr to 1 (did you mean "lr"?): expected a key ' +
 *     'among "tokens", "batch", "lr", "minLr", "warmup", "weightDecay", "gradClip", ' +
 *     '"accumulate", "evalEvery", "checkpointEvery", "mtpLambdaSchedule"',
 * });
 * ```
 */
export function checkTrainOverride(value: unknown, path: string): Partial<TrainSettings> {
  const obj = asObj(value, path, "a partial train spec object");
  checkSettings(obj, path, []);
  return obj as Partial<TrainSettings>;
}

/** Options of {@linkcode resolveTrain}. */
export interface ResolveTrainOptions {
  /** The model's context length (tokens per sequence). */
  seqLen: number;
  /** @default {"full"} */
  budget?: Budget;
  /** A variant's overrides. @default {{}} */
  override?: Partial<TrainSettings>;
  /** Path of `override` in errors. @default {"vary.<variant>.train"} */
  overridePath?: string;
  /** Whether the model has MTP (else the λ schedule resolves to `null`). @default {false} */
  mtp?: boolean;
  /** Words naming the run in cross-field errors, e.g. `variant "mla" at budget "small"`. */
  context?: string;
}

/**
 * The resolved training config of one run.
 *
 * @param spec The experiment's train spec (checked with {@linkcode checkTrainSpec}).
 * @param options `seqLen`, `budget`, the variant `override`, `mtp`.
 * @returns The frozen {@linkcode TrainConfig}.
 * @throws {ConfigError} e.g. when warmup exceeds the optimizer steps.
 *
 * @example 2M tokens of 16 × 128: 976 steps; the default small budget is a tenth
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { resolveTrain } from "./train.ts";
 * const spec = { tokens: 2_000_000, batch: 16, lr: 3e-3, warmup: 200 };
 * const full = resolveTrain(spec, { seqLen: 128 });
 * deepStrictEqual([full.steps, full.minLr, full.evalEvery, full.weightDecay], [976, 3e-3 / 10, 98, 0.1]);
 * const small = resolveTrain(spec, { seqLen: 128, budget: "small" });
 * deepStrictEqual([small.tokens, small.steps, small.warmup], [200_000, 97, 20]);
 * ```
 */
export function resolveTrain(spec: TrainSpec, options: ResolveTrainOptions): TrainConfig {
  const { seqLen, budget = "full", override = {}, mtp = false } = options;
  const overridePath = options.overridePath ?? "vary.<variant>.train";
  checkTrainSpec(spec);
  checkTrainOverride(override, overridePath);
  const budgetValues = budgetOverrides(spec, budget);
  const { budgets: _, ...base } = spec;
  const merged: Obj = { ...base, ...budgetValues, ...override };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
  const where = (key: string): string =>
    override[key as keyof TrainSettings] !== undefined
      ? join(overridePath, key)
      : budgetValues[key as keyof TrainSettings] !== undefined
      ? `train.budgets.${budget}.${key}`
      : `train.${key}`;
  const ctx = options.context === undefined ? "" : ` of ${options.context}`;
  const D = TRAIN_DEFAULTS;
  const num = (key: string, def: number): number => (merged[key] as number | undefined) ?? def;
  // 1) the required three, then the batch geometry
  const tokens = merged.tokens as number, batch = merged.batch as number, lr = merged.lr as number;
  const accumulate = num("accumulate", D.accumulate);
  const tokensPerStep = batch * accumulate * seqLen;
  const steps = Math.floor(tokens / tokensPerStep);
  if (steps < 1) {
    fail(where("tokens"), tokens, `at least batch · accumulate · seqLen = ${tokensPerStep}${ctx}`);
  }
  // 2) the schedule
  const minLr = num("minLr", lr / D.minLrDivisor);
  if (minLr > lr) fail(where("minLr"), minLr, `a number from 0 to lr ${lr}`);
  const warmup = num("warmup", D.warmup);
  if (warmup > steps) {
    fail(
      where("warmup"),
      warmup,
      `at most the ${steps} optimizer steps${ctx} (tokens / (batch · accumulate · seqLen))`,
    );
  }
  // 3) the rest
  const schedule = (merged.mtpLambdaSchedule as MtpLambdaStep[] | null | undefined) ?? null;
  return deepFreeze({
    tokens,
    batch,
    lr,
    minLr,
    warmup,
    weightDecay: num("weightDecay", D.weightDecay),
    gradClip: num("gradClip", D.gradClip),
    accumulate,
    evalEvery: num("evalEvery", Math.max(1, Math.ceil(steps / D.evals))),
    checkpointEvery: num("checkpointEvery", D.checkpointEvery),
    mtpLambdaSchedule: mtp && schedule
      ? schedule.map((s) => ({ from: s.from, lambda: s.lambda }))
      : null,
    tokensPerStep,
    steps,
  });
}

/** The overrides of `budget`: as written, or for `small` by default a tenth of the step counts. */
function budgetOverrides(spec: TrainSpec, budget: Budget): Partial<TrainSettings> {
  const given = spec.budgets?.[budget];
  if (given !== undefined) return given;
  if (budget === "full") return {};
  const f = TRAIN_DEFAULTS.smallFraction;
  const out: Partial<TrainSettings> = { tokens: Math.max(1, Math.round(spec.tokens * f)) };
  if (spec.warmup !== undefined) out.warmup = Math.floor(spec.warmup * f);
  if (spec.evalEvery !== undefined) out.evalEvery = Math.max(1, Math.round(spec.evalEvery * f));
  if (spec.checkpointEvery !== undefined) {
    out.checkpointEvery = Math.round(spec.checkpointEvery * f);
  }
  return out;
}

/**
 * Check an eval list: known metrics, no duplicates, at least one.
 *
 * @param value Parsed JSON or a typed list.
 * @param path Path prefix of errors.
 * @returns The frozen list.
 * @throws {ConfigError} naming the entry.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkEval } from "./train.ts";
 * throws(() => checkEval(["valLoss", "maxvio"]), {
 *   message: 'Cannot set eval[1] to "maxvio" (did you mean "maxVio"?): expected one of "valLoss", ' +
 *     '"bitsPerByte", "kvBytesPerToken", "decodeTokensPerSec", "trainTokensPerSec", "maxVio", ' +
 *     '"mtpAcceptance"',
 * });
 * ```
 */
export function checkEval(value: unknown, path = "eval"): readonly EvalMetric[] {
  if (!Array.isArray(value) || value.length === 0) fail(path, value, "a non-empty list of metrics");
  value.forEach((m, i) => {
    const at = `${path}[${i}]`;
    if (!EVAL_METRICS.includes(m)) {
      const allowed = `one of ${EVAL_METRICS.map((e) => JSON.stringify(e)).join(", ")}`;
      fail(at, m, allowed, closestNameOf(m, EVAL_METRICS));
    }
    if (value.indexOf(m) !== i) {
      fail(at, m, `a metric not already listed at ${path}[${value.indexOf(m)}]`);
    }
  });
  return deepFreeze([...value]);
}
