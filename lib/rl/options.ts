/**
 * The settings of the R1 pipeline (`pipeline.ts`) and their checking: every count may differ
 * between the `small` and `full` budgets, and every field is validated with the DSL's readers
 * (`lib/dsl/check.ts`), so a typo or a bad value is a `ConfigError` naming the field, the value
 * and what is allowed.
 *
 * @module
 */

import { checkKeys, checkNumber, fail, isObj, type Obj, quoteAll } from "../dsl/check.ts";
import { validateModelConfig } from "../dsl/model.ts";
import type { ModelConfig } from "../models/config.ts";
import type { RewardOptions } from "./rewards.ts";
import { TASK_NAMES, type TaskName, type TaskOptions } from "./tasks.ts";

/** A setting that may differ between the `small` and `full` budgets. */
export type Budgeted<T> = T | { small: T; full: T };

/** Settings of the R1 pipeline; every count may be `{ small, full }`. */
export interface R1Options {
  /** Suite name (`--only NAME`). */
  name: string;
  /** One line for `--list`. @default {"the R1 pipeline (R1-Zero vs R1 vs distillation)"} */
  description?: string;
  /** Tasks mixed round-robin. */
  tasks: readonly TaskName[];
  /** Problem sizes (digits, modulus, list length), or `{ small, full }` of them. @default {{}} */
  taskOptions?: Budgeted<TaskOptions>;
  /** The policy, from `model({...})`; its vocabulary is replaced by the task tokenizer's. */
  policy: ModelConfig;
  /** The distillation student (smaller), from `model({...})`. */
  student: ModelConfig;
  pretrain: {
    /** Lines of task text. */
    lines: Budgeted<number>;
    steps: Budgeted<number>;
    /** @default {3e-3} */
    lr?: number;
    /** Share of R1-formatted lines in the corpus. @default {0.1} */
    formattedShare?: number;
  };
  coldStart: {
    /** Formatted chain-of-thought examples (R1: "thousands"; here a few hundred). */
    examples: Budgeted<number>;
    steps: Budgeted<number>;
    /** @default {2e-3} */
    lr?: number;
  };
  grpo: {
    rounds: Budgeted<number>;
    /** Questions per round. @default {8} */
    questions?: number;
    /** `G`. @default {8} */
    group?: number;
    /** `μ`. @default {2} */
    updates?: number;
    /** @default {0.2} */
    clipEps?: number;
    /** @default {0.04} */
    beta?: number;
    /** @default {2e-3} */
    lr?: number;
    /** @default {1} */
    temperature?: number;
    /** @default {32} */
    maxNewTokens?: number;
    /** Reward weights. @default {{ accuracy: 1, format: 0.5 }} */
    rewards?: RewardOptions;
  };
  rejection: {
    /** Questions sampled. */
    questions: Budgeted<number>;
    /** Samples per question (temperature 1); correct and well-formed ones are kept. */
    samples: number;
    /** SFT steps on the kept samples. */
    steps: Budgeted<number>;
    /** @default {1e-3} */
    lr?: number;
  };
  distill: {
    /** Questions the teacher answers (its correct outputs are kept). */
    questions: Budgeted<number>;
    steps: Budgeted<number>;
    /** @default {2e-3} */
    lr?: number;
  };
  eval: {
    /** Held-out questions (greedy decoding). */
    questions: Budgeted<number>;
    /** Evaluate every this many GRPO rounds / SFT steps. */
    every: Budgeted<number>;
  };
  seeds: Budgeted<readonly number[]>;
}

/** The branches compared, also the names `--only r1/<branch>` accepts. */
export const R1_BRANCHES = ["zero", "r1", "distill"] as const;

/** A branch of the pipeline. */
export type R1Branch = typeof R1_BRANCHES[number];

const TOP_KEYS = [
  "name",
  "description",
  "tasks",
  "taskOptions",
  "policy",
  "student",
  "pretrain",
  "coldStart",
  "grpo",
  "rejection",
  "distill",
  "eval",
  "seeds",
];
const SECTIONS: Record<string, { keys: string[]; budgeted: string[] }> = {
  pretrain: { keys: ["lines", "steps", "lr", "formattedShare"], budgeted: ["lines", "steps"] },
  coldStart: { keys: ["examples", "steps", "lr"], budgeted: ["examples", "steps"] },
  grpo: {
    keys: [
      "rounds",
      "questions",
      "group",
      "updates",
      "clipEps",
      "beta",
      "lr",
      "temperature",
      "maxNewTokens",
      "rewards",
    ],
    budgeted: ["rounds"],
  },
  rejection: { keys: ["questions", "samples", "steps", "lr"], budgeted: ["questions", "steps"] },
  distill: { keys: ["questions", "steps", "lr"], budgeted: ["questions", "steps"] },
  eval: { keys: ["questions", "every"], budgeted: ["questions", "every"] },
};

/**
 * The value of a {@linkcode Budgeted} setting for `budget`.
 *
 * @param value A value, or `{ small, full }` of them.
 * @param budget Which budget runs.
 * @returns The value for that budget.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { budgeted } from "./options.ts";
 * strictEqual(budgeted({ small: 2, full: 20 }, "small"), 2);
 * strictEqual(budgeted(5, "full"), 5);
 * ```
 */
export function budgeted<T>(value: Budgeted<T>, budget: "small" | "full"): T {
  return isObj(value) && "small" in value && "full" in value
    ? (value as { small: T; full: T })[budget]
    : value as T;
}

function checkBudgetedCount(value: unknown, path: string, min = 1): void {
  if (isObj(value)) {
    checkKeys(value, ["small", "full"], path);
    for (const b of ["small", "full"]) {
      checkNumber(value[b], { int: true, min }, `${path}.${b}`);
    }
    return;
  }
  if (typeof value !== "number") {
    fail(path, value, `an integer >= ${min} or { small, full } integers`);
  }
  checkNumber(value, { int: true, min }, path);
}

/**
 * Check every field of the R1 pipeline's settings (unknown keys and bad values are
 * `ConfigError`s naming the field, the value and what is allowed).
 *
 * @param options The settings, from code or JSON.
 * @returns The settings with the policy and student configs resolved and frozen.
 *
 * @example A typo names the field and the closest key
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { model } from "../dsl/mod.ts";
 * import { checkR1Options } from "./options.ts";
 * const policy = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 48 });
 * const spec = {
 *   name: "r1", tasks: ["addition" as const], policy, student: policy,
 *   pretrain: { lines: 100, steps: 10 }, coldStart: { examples: 10, steps: 5 },
 *   grpo: { rounds: 2 }, rejection: { questions: 4, samples: 2, steps: 2 },
 *   distill: { questions: 4, steps: 2 }, eval: { questions: 8, every: 1 }, seeds: [0],
 * };
 * checkR1Options(spec);
 * throws(() => checkR1Options({ ...spec, grpo: { rounds: 2, grup: 4 } as never }), /grpo\.grup.*"group"/s);
 * ```
 */
export function checkR1Options(options: R1Options): R1Options {
  const o = options as unknown as Obj;
  if (!isObj(o)) fail("r1", options, "an object");
  checkKeys(o, TOP_KEYS, "");
  if (typeof o.name !== "string") fail("name", o.name, "a string");
  if (!Array.isArray(o.tasks) || o.tasks.length === 0) {
    fail("tasks", o.tasks, `a non-empty array of ${quoteAll(TASK_NAMES)}`);
  }
  (o.tasks as unknown[]).forEach((t, i) => {
    if (!(TASK_NAMES as readonly unknown[]).includes(t)) {
      fail(`tasks[${i}]`, t, `one of ${quoteAll(TASK_NAMES)}`);
    }
  });
  if (o.taskOptions !== undefined) {
    const t = o.taskOptions as Obj;
    const perBudget = isObj(t) && "small" in t && "full" in t;
    if (perBudget) checkKeys(t, ["small", "full"], "taskOptions");
    for (
      const [path, value] of perBudget
        ? [["taskOptions.small", t.small], ["taskOptions.full", t.full]]
        : [["taskOptions", t]]
    ) {
      if (!isObj(value)) fail(path as string, value, "an object");
      checkKeys(value, ["digits", "modulus", "maxItems"], path as string);
    }
  }
  const policy = validateModelConfig(o.policy, { path: "policy" });
  const student = validateModelConfig(o.student, { path: "student" });
  for (const [section, rule] of Object.entries(SECTIONS)) {
    const value = o[section];
    if (!isObj(value)) fail(section, value, "an object");
    checkKeys(value, rule.keys, section);
    for (const key of rule.budgeted) checkBudgetedCount(value[key], `${section}.${key}`);
  }
  const g = o.grpo as Obj;
  if (g.group !== undefined) checkNumber(g.group, { int: true, min: 2 }, "grpo.group");
  if (g.updates !== undefined) checkNumber(g.updates, { int: true, min: 1 }, "grpo.updates");
  if (g.clipEps !== undefined) checkNumber(g.clipEps, { above: 0, max: 0.99 }, "grpo.clipEps");
  if (g.beta !== undefined) checkNumber(g.beta, { min: 0 }, "grpo.beta");
  if (g.questions !== undefined) checkNumber(g.questions, { int: true, min: 1 }, "grpo.questions");
  if (g.maxNewTokens !== undefined) {
    checkNumber(g.maxNewTokens, { int: true, min: 1 }, "grpo.maxNewTokens");
  }
  if (g.rewards !== undefined) {
    checkKeys(
      g.rewards as Obj,
      ["accuracy", "format", "language", "allowed", "maxChars"],
      "grpo.rewards",
    );
  }
  checkNumber((o.rejection as Obj).samples, { int: true, min: 1 }, "rejection.samples");
  const seeds = o.seeds;
  const seedLists = isObj(seeds) ? [seeds.small, seeds.full] : [seeds];
  for (const s of seedLists) {
    if (!Array.isArray(s) || s.length === 0 || s.some((x) => !Number.isSafeInteger(x) || x < 0)) {
      fail("seeds", seeds, "a non-empty array of integers >= 0 (or { small, full } arrays)");
    }
  }
  return { ...options, policy, student } as R1Options;
}
