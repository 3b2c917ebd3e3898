/**
 * The DeepSeek-R1 pipeline at toy scale (arXiv:2501.12948 §2.2–2.4), declared with the typed
 * DSL and run as a suite study (`deno task experiments --only r1`):
 *
 * 0) base: pretrain a tiny decoder on the task corpus (mostly `question answer` lines, a few in
 *    the R1 format — a pretrained LLM has seen such text now and then);
 * (a) R1-Zero: GRPO straight from the base (§2.2);
 * (b) R1: cold-start SFT on a few hundred formatted chain-of-thought examples → GRPO →
 *     rejection sampling (keep only correct, well-formed samples) → SFT on them (§2.3);
 * (c) distillation: SFT of a smaller pretrained student on the R1 model's correct outputs (§2.4).
 *
 * Each branch is evaluated greedily on held-out questions along its training (accuracy inside
 * `<answer>` tags, exact-format rate, completion length); every seed repeats the whole pipeline.
 * Stages are resumable: each writes `<dir>/s<seed>/<stage>/` (model, logs, `done.json` last), and
 * a rerun skips finished stages.
 *
 * @module
 */

import { checkKeys, checkNumber, fail, isObj, type Obj, quoteAll } from "../dsl/_check.ts";
import { validateModelConfig } from "../dsl/model.ts";
import type { ModelConfig } from "../models/config.ts";
import { loadModel, loadWeights, saveModel } from "../models/checkpoint.ts";
import { Decoder } from "../models/decoder.ts";
import { withBackend } from "../backend/mod.ts";
import { meanCi } from "../report/stats.ts";
import type { VegaLiteSpec } from "../report/vega_lite.ts";
import { PALETTE, VEGA_LITE_SCHEMA } from "../report/vega_lite.ts";
import {
  exists,
  readMetrics,
  type Study,
  study,
  type StudyContext,
  writeJsonAtomic,
  writeTextAtomic,
} from "../runner/study.ts";
import { Rng } from "../tensor/mod.ts";
import { Grpo, type GrpoRoundLog } from "./grpo.ts";
import { evaluatePolicy, type Evaluation, sampleCompletions, supervisedTrain } from "./policy.ts";
import { type RewardOptions, scoreCompletion } from "./rewards.ts";
import {
  formatted,
  makeProblems,
  type Problem,
  TASK_NAMES,
  taskCorpus,
  type TaskName,
  type TaskOptions,
  TaskTokenizer,
} from "./tasks.ts";

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

function budgeted<T>(value: Budgeted<T>, budget: "small" | "full"): T {
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
 * Declare the R1 pipeline as a suite study, checking every field (unknown keys and bad values
 * are `ConfigError`s naming the field, the value and what is allowed).
 *
 * @param options The pipeline settings.
 * @returns A study for `EXPERIMENTS`.
 *
 * @example A typo names the field and the closest key
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { model } from "../dsl/mod.ts";
 * import { r1Pipeline } from "./pipeline.ts";
 * const policy = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 48 });
 * const spec = {
 *   name: "r1", tasks: ["addition" as const], policy, student: policy,
 *   pretrain: { lines: 100, steps: 10 }, coldStart: { examples: 10, steps: 5 },
 *   grpo: { rounds: 2 }, rejection: { questions: 4, samples: 2, steps: 2 },
 *   distill: { questions: 4, steps: 2 }, eval: { questions: 8, every: 1 }, seeds: [0],
 * };
 * r1Pipeline(spec);
 * throws(() => r1Pipeline({ ...spec, grpo: { rounds: 2, grup: 4 } as never }), /grpo\.grup.*"group"/s);
 * ```
 */
export function r1Pipeline(options: R1Options): Study {
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
  const spec = { ...options, policy, student } as R1Options;
  return study({
    name: spec.name,
    description: spec.description ?? "the R1 pipeline (R1-Zero vs R1 vs distillation)",
    variants: [...R1_BRANCHES],
    seeds: budgeted(spec.seeds, "full"),
    run: (ctx) => runPipeline(spec, ctx),
  });
}

/** One evaluation point of a branch. */
export interface CurvePoint extends Evaluation {
  branch: R1Branch | "base";
  seed: number;
  stage: string;
  /** Training updates of the branch so far (after pretraining). */
  step: number;
}

/** Everything a seed's stages share. */
interface SeedRun {
  spec: R1Options;
  ctx: StudyContext;
  seed: number;
  dir: string;
  tok: TaskTokenizer;
  evalSet: Problem[];
  n: (value: Budgeted<number>) => number;
}

/** Run `fn` as stage `name` unless its `done.json` exists; returns its curve points. */
async function stage(
  run: SeedRun,
  name: string,
  fn: (dir: string) => Promise<{ points: CurvePoint[]; extra?: Record<string, unknown> }>,
): Promise<CurvePoint[]> {
  const dir = `${run.dir}/${name}`;
  if (await exists(`${dir}/done.json`)) {
    run.ctx.reporter.log(`r1 seed ${run.seed}: ${name} already done`);
    return await readMetrics<CurvePoint>(`${dir}/curve.jsonl`);
  }
  const started = performance.now();
  run.ctx.reporter.log(`r1 seed ${run.seed}: ${name}…`);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const { points, extra } = await fn(dir);
  await writeTextAtomic(
    `${dir}/curve.jsonl`,
    points.map((p) => JSON.stringify(p)).join("\n") + "\n",
  );
  const seconds = (performance.now() - started) / 1000;
  await writeJsonAtomic(`${dir}/done.json`, {
    seconds,
    codeVersion: run.ctx.codeVersion,
    ...extra,
  });
  const last = points.at(-1);
  run.ctx.reporter.log(
    `r1 seed ${run.seed}: ${name} done in ${seconds.toFixed(1)} s` +
      (last ? ` (accuracy ${last.accuracy.toFixed(2)}, format ${last.formatRate.toFixed(2)})` : ""),
  );
  return points;
}

function taskConfig(config: ModelConfig, tok: TaskTokenizer): ModelConfig {
  return { ...config, vocab: tok.vocabSize };
}

async function load(run: SeedRun, name: string): Promise<Decoder> {
  return await withBackend(run.ctx.backend, () => loadModel(`${run.dir}/${name}/model`));
}

async function evalPoint(
  run: SeedRun,
  model: Decoder,
  at: { branch: CurvePoint["branch"]; stage: string; step: number },
): Promise<CurvePoint> {
  const e = await evaluatePolicy(model, run.evalSet, run.tok, {
    maxNewTokens: run.spec.grpo.maxNewTokens ?? 32,
  });
  return { ...at, seed: run.seed, ...e };
}

function pairsOf(tok: TaskTokenizer, items: { prompt: string; completion: string }[]) {
  return items.map((x) => ({
    prompt: Array.from(tok.encode(x.prompt)),
    completion: Array.from(tok.encode(x.completion)),
  }));
}

async function pretrain(run: SeedRun, config: ModelConfig, dir: string, seedOffset: number) {
  const { spec, tok } = run;
  const model = withBackend(
    run.ctx.backend,
    () => new Decoder(config, new Rng(run.seed * 1000 + seedOffset)),
  );
  const lines = taskCorpus(spec.tasks, run.n(spec.pretrain.lines), {
    ...budgeted(spec.taskOptions ?? {}, run.ctx.budget),
    formattedShare: spec.pretrain.formattedShare ?? 0.1,
    seed: run.seed * 1000 + 1,
  });
  const pairs = lines.map((l) => {
    const ids = Array.from(tok.encode(l));
    return { prompt: ids.slice(0, 1), completion: ids.slice(1) };
  });
  await withBackend(run.ctx.backend, () =>
    supervisedTrain(model, pairs, {
      steps: run.n(spec.pretrain.steps),
      lr: spec.pretrain.lr ?? 3e-3,
      trainOnPrompt: true,
      rng: new Rng(run.seed * 1000 + 2 + seedOffset),
    }));
  await saveModel(`${dir}/model`, model);
  return model;
}

async function grpoStage(
  run: SeedRun,
  policy: Decoder,
  dir: string,
  at: { branch: R1Branch; step: number; seedOffset: number },
): Promise<CurvePoint[]> {
  const { spec, tok } = run;
  const g = spec.grpo;
  const reference = await withBackend(run.ctx.backend, () => {
    const ref = new Decoder(policy.config, new Rng(0));
    loadWeights(ref, policy.parameters());
    return ref;
  });
  const grpo = withBackend(run.ctx.backend, () =>
    new Grpo(policy, reference, tok, {
      group: g.group,
      updates: g.updates,
      clipEps: g.clipEps,
      beta: g.beta,
      lr: g.lr ?? 2e-3,
      rewards: g.rewards,
      sampling: { temperature: g.temperature ?? 1, maxNewTokens: g.maxNewTokens ?? 32 },
    }));
  const rounds = run.n(g.rounds), every = run.n(spec.eval.every);
  const updates = g.updates ?? 2, questions = g.questions ?? 8;
  const rng = new Rng(run.seed * 1000 + 10 + at.seedOffset);
  const logs: (GrpoRoundLog & { round: number })[] = [];
  const points: CurvePoint[] = [];
  run.ctx.reporter.runStart({
    index: 0,
    count: 1,
    label: `r1 s${run.seed} ${at.branch} GRPO`,
    steps: rounds,
    fromStep: 0,
    experiment: "r1",
    variant: `${at.branch}-grpo`,
    seed: run.seed,
  });
  for (let r = 0; r < rounds; r++) {
    const problems = mixedProblems(
      spec,
      questions,
      run.seed * 100_000 + at.seedOffset * 10_000 + r,
      run.ctx.budget,
    );
    const log = await withBackend(run.ctx.backend, () => grpo.round(problems, rng));
    logs.push({ round: r, ...log });
    run.ctx.reporter.step({ step: r + 1, loss: log.loss, tokensPerSec: log.tokensPerSec });
    if ((r + 1) % every === 0 || r === rounds - 1) {
      points.push(
        await evalPoint(run, policy, {
          branch: at.branch,
          stage: "grpo",
          step: at.step + (r + 1) * updates,
        }),
      );
    }
  }
  await writeTextAtomic(
    `${dir}/rounds.jsonl`,
    logs.map((l) => JSON.stringify(l)).join("\n") + "\n",
  );
  await saveModel(`${dir}/model`, policy);
  return points;
}

/** `count` problems cycling through the spec's tasks, from `seed`. */
function mixedProblems(
  spec: R1Options,
  count: number,
  seed: number,
  budget: "small" | "full",
): Problem[] {
  const per = spec.tasks.map((t, i) =>
    makeProblems(t, Math.ceil(count / spec.tasks.length), {
      ...budgeted(spec.taskOptions ?? {}, budget),
      seed: seed * 7 + i,
    })
  );
  const out: Problem[] = [];
  for (let i = 0; out.length < count; i++) {
    out.push(per[i % per.length][Math.floor(i / per.length)]);
  }
  return out;
}

async function sftStage(
  run: SeedRun,
  model: Decoder,
  examples: { prompt: string; completion: string }[],
  dir: string,
  at: {
    branch: R1Branch;
    stage: string;
    step: number;
    steps: number;
    lr: number;
    seedOffset: number;
  },
): Promise<CurvePoint[]> {
  const points: CurvePoint[] = [];
  const every = Math.max(1, Math.round(at.steps / 4));
  const evalAt = new Set<number>();
  for (let s = every; s < at.steps; s += every) evalAt.add(s);
  const pairs = pairsOf(run.tok, examples);
  // evaluate at a few points along the way (done between chunks of training)
  let done = 0;
  for (const until of [...evalAt, at.steps]) {
    await withBackend(run.ctx.backend, () =>
      supervisedTrain(model, pairs, {
        steps: until - done,
        lr: at.lr,
        rng: new Rng(run.seed * 1000 + 20 + at.seedOffset + until),
      }));
    done = until;
    points.push(
      await evalPoint(run, model, { branch: at.branch, stage: at.stage, step: at.step + done }),
    );
  }
  await saveModel(`${dir}/model`, model);
  return points;
}

/** Sample `samples` completions per question and keep the correct, well-formed ones. */
async function correctSamples(
  run: SeedRun,
  model: Decoder,
  problems: Problem[],
  samples: number,
  temperature: number,
  seed: number,
): Promise<{ prompt: string; completion: string }[]> {
  const prompts = problems.flatMap((p) =>
    Array.from({ length: samples }, () => Array.from(run.tok.encode(p.prompt)))
  );
  const completions = await withBackend(
    run.ctx.backend,
    () =>
      sampleCompletions(model, prompts, new Rng(seed), {
        temperature,
        maxNewTokens: run.spec.grpo.maxNewTokens ?? 32,
        eos: run.tok.eos,
      }),
  );
  const kept: { prompt: string; completion: string }[] = [];
  completions.forEach((c, i) => {
    const p = problems[Math.floor(i / samples)];
    const text = run.tok.decode(c);
    const s = scoreCompletion(p.prompt, text);
    if (s.accuracy === 1 && s.format === 1 && text.endsWith("\n")) {
      kept.push({ prompt: p.prompt, completion: text });
    }
  });
  return kept;
}

async function runSeed(spec: R1Options, ctx: StudyContext, seed: number): Promise<CurvePoint[]> {
  const tok = new TaskTokenizer();
  const n = (v: Budgeted<number>) => budgeted(v, ctx.budget);
  const run: SeedRun = {
    spec,
    ctx,
    seed,
    dir: `${ctx.dir}/s${seed}`,
    tok,
    n,
    evalSet: mixedProblems(spec, n(spec.eval.questions), 9_000_000 + seed, ctx.budget),
  };
  const want = (b: R1Branch) =>
    ctx.variants === undefined || ctx.variants.includes(b) ||
    (b === "r1" && ctx.variants.includes("distill"));
  const policyConfig = taskConfig(spec.policy, tok);
  const points: CurvePoint[] = [];
  // 0) base
  points.push(
    ...await stage(run, "base", async (dir) => {
      const model = await pretrain(run, policyConfig, dir, 0);
      return { points: [await evalPoint(run, model, { branch: "base", stage: "base", step: 0 })] };
    }),
  );
  // (a) R1-Zero: GRPO from the base
  if (want("zero")) {
    points.push(
      ...await stage(run, "zero", async (dir) => ({
        points: await grpoStage(run, await load(run, "base"), dir, {
          branch: "zero",
          step: 0,
          seedOffset: 1,
        }),
      })),
    );
  }
  if (!want("r1")) return points;
  // (b) R1: cold start → GRPO → rejection sampling → SFT
  const coldSteps = n(spec.coldStart.steps);
  points.push(
    ...await stage(run, "cold-start", async (dir) => {
      const examples = mixedProblems(spec, n(spec.coldStart.examples), 5_000_000 + seed, ctx.budget)
        .map((p) => ({ prompt: p.prompt, completion: formatted(p) }));
      return {
        points: await sftStage(run, await load(run, "base"), examples, dir, {
          branch: "r1",
          stage: "cold-start",
          step: 0,
          steps: coldSteps,
          lr: spec.coldStart.lr ?? 2e-3,
          seedOffset: 2,
        }),
      };
    }),
  );
  const rlSteps = coldSteps + n(spec.grpo.rounds) * (spec.grpo.updates ?? 2);
  points.push(
    ...await stage(run, "r1-grpo", async (dir) => ({
      points: await grpoStage(run, await load(run, "cold-start"), dir, {
        branch: "r1",
        step: coldSteps,
        seedOffset: 3,
      }),
    })),
  );
  points.push(
    ...await stage(run, "r1-rejection-sft", async (dir) => {
      const model = await load(run, "r1-grpo");
      const problems = mixedProblems(
        spec,
        n(spec.rejection.questions),
        6_000_000 + seed,
        ctx.budget,
      );
      const kept = await correctSamples(
        run,
        model,
        problems,
        spec.rejection.samples,
        1,
        seed * 1000 + 30,
      );
      if (kept.length === 0) {
        // nothing correct to learn from: keep the RL model (said in the log and done.json)
        await saveModel(`${dir}/model`, model);
        return {
          points: [
            await evalPoint(run, model, { branch: "r1", stage: "rejection-sft", step: rlSteps }),
          ],
          extra: { kept: 0 },
        };
      }
      const pts = await sftStage(run, model, kept, dir, {
        branch: "r1",
        stage: "rejection-sft",
        step: rlSteps,
        steps: n(spec.rejection.steps),
        lr: spec.rejection.lr ?? 1e-3,
        seedOffset: 4,
      });
      return {
        points: pts,
        extra: { kept: kept.length, sampled: problems.length * spec.rejection.samples },
      };
    }),
  );
  // (c) distillation into a smaller student
  if (!want("distill")) return points;
  const studentConfig = taskConfig(spec.student, tok);
  points.push(
    ...await stage(run, "student-base", async (dir) => {
      const model = await pretrain(run, studentConfig, dir, 7);
      return {
        points: [
          await evalPoint(run, model, { branch: "distill", stage: "student-base", step: 0 }),
        ],
      };
    }),
  );
  points.push(
    ...await stage(run, "distill", async (dir) => {
      const teacher = await load(run, "r1-rejection-sft");
      const problems = mixedProblems(spec, n(spec.distill.questions), 7_000_000 + seed, ctx.budget);
      const kept = await correctSamples(run, teacher, problems, 1, 0, seed);
      const student = await load(run, "student-base");
      if (kept.length === 0) {
        await saveModel(`${dir}/model`, student);
        return {
          points: [await evalPoint(run, student, { branch: "distill", stage: "distill", step: 0 })],
          extra: { kept: 0 },
        };
      }
      const pts = await sftStage(run, student, kept, dir, {
        branch: "distill",
        stage: "distill",
        step: 0,
        steps: n(spec.distill.steps),
        lr: spec.distill.lr ?? 2e-3,
        seedOffset: 5,
      });
      return { points: pts, extra: { kept: kept.length, teacherQuestions: problems.length } };
    }),
  );
  return points;
}

/** Final metrics of one branch, over seeds. */
export interface BranchSummary {
  branch: R1Branch | "base";
  seeds: number;
  accuracy: { mean: number; halfWidth: number | null };
  formatRate: { mean: number; halfWidth: number | null };
  length: { mean: number; halfWidth: number | null };
}

/**
 * The last evaluation of each branch per seed, as mean ± 95% CI over seeds.
 *
 * @param points Every curve point of the study.
 * @returns One row per branch present (base first).
 */
export function summarizeBranches(points: readonly CurvePoint[]): BranchSummary[] {
  const out: BranchSummary[] = [];
  for (const branch of ["base", ...R1_BRANCHES] as const) {
    const finals = new Map<number, CurvePoint>();
    for (const p of points) {
      if (p.branch !== branch) continue;
      const prev = finals.get(p.seed);
      if (prev === undefined || p.step >= prev.step) finals.set(p.seed, p);
    }
    if (finals.size === 0) continue;
    const of = (k: "accuracy" | "formatRate" | "length") => {
      const m = meanCi([...finals.values()].map((p) => p[k]));
      return { mean: m.mean, halfWidth: m.halfWidth };
    };
    out.push({
      branch,
      seeds: finals.size,
      accuracy: of("accuracy"),
      formatRate: of("formatRate"),
      length: of("length"),
    });
  }
  return out;
}

function pm(x: { mean: number; halfWidth: number | null }, digits = 2): string {
  return x.halfWidth === null
    ? x.mean.toFixed(digits)
    : `${x.mean.toFixed(digits)} ± ${x.halfWidth.toFixed(digits)}`;
}

/**
 * The comparison as a Markdown table.
 *
 * @param rows From {@linkcode summarizeBranches}.
 * @returns Markdown.
 */
export function branchTable(rows: readonly BranchSummary[]): string {
  const label: Record<string, string> = {
    base: "base (pretrained)",
    zero: "(a) R1-Zero: GRPO from base",
    r1: "(b) R1: cold start → GRPO → rejection SFT",
    distill: "(c) distilled student",
  };
  return [
    "| branch | seeds | accuracy | format rate | length (tokens) |",
    "|---|---:|---:|---:|---:|",
    ...rows.map((r) =>
      `| ${label[r.branch]} | ${r.seeds} | ${pm(r.accuracy)} | ${pm(r.formatRate)} | ${
        pm(r.length, 1)
      } |`
    ),
  ].join("\n");
}

/** Metrics plotted over training. */
export type R1Metric = "accuracy" | "formatRate" | "length";

/**
 * A vega-lite chart of `metric` over training updates per branch: the mean over seeds as a line
 * and the min–max band.
 *
 * @param points Curve points.
 * @param metric Which metric.
 * @returns The spec.
 */
export function r1CurveSpec(points: readonly CurvePoint[], metric: R1Metric): VegaLiteSpec {
  const branches = R1_BRANCHES.filter((b) => points.some((p) => p.branch === b));
  const rows: { branch: string; step: number; mean: number; lo: number; hi: number }[] = [];
  for (const b of branches) {
    const steps = [...new Set(points.filter((p) => p.branch === b).map((p) => p.step))].sort((
      x,
      y,
    ) => x - y);
    // the branch starts from the base model (distill from the student's base)
    const start = b === "distill" ? null : points.filter((p) => p.branch === "base");
    if (start !== null && start.length > 0) {
      const v = start.map((p) => p[metric]);
      rows.push({ branch: b, step: 0, mean: avg(v), lo: Math.min(...v), hi: Math.max(...v) });
    }
    for (const s of steps) {
      const v = points.filter((p) => p.branch === b && p.step === s).map((p) => p[metric]);
      rows.push({ branch: b, step: s, mean: avg(v), lo: Math.min(...v), hi: Math.max(...v) });
    }
  }
  const title = {
    accuracy: "accuracy (greedy, held out)",
    formatRate: "format rate",
    length: "completion length (tokens)",
  }[metric];
  const color = {
    field: "branch",
    type: "nominal" as const,
    title: "branch",
    scale: { domain: [...branches], range: branches.map((_, i) => PALETTE[i % PALETTE.length]) },
  };
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: `R1 pipeline: ${title}`,
    width: 420,
    height: 220,
    data: { values: rows },
    encoding: {
      x: { field: "step", type: "quantitative", title: "training updates after pretraining" },
    },
    layer: [
      {
        mark: { type: "area", opacity: 0.2 },
        encoding: {
          y: { field: "lo", type: "quantitative", title },
          y2: { field: "hi" },
          color,
        },
      },
      {
        mark: { type: "line", point: true },
        encoding: { y: { field: "mean", type: "quantitative", title }, color },
      },
    ],
  } as VegaLiteSpec;
}

function avg(v: number[]): number {
  return v.reduce((a, b) => a + b, 0) / Math.max(v.length, 1);
}

/** One GRPO round as logged by the study (`rounds.jsonl`), with where it came from. */
export interface RoundRow extends GrpoRoundLog {
  round: number;
  seed: number;
  /** `zero` (R1-Zero) or `r1` (after the cold start). */
  branch: "zero" | "r1";
}

/**
 * Every GRPO round the study logged under `dir`.
 *
 * @param dir The study directory (`<store>/r1`).
 * @returns Rows of both GRPO stages, every seed.
 */
export async function readR1Rounds(dir: string): Promise<RoundRow[]> {
  const out: RoundRow[] = [];
  const seeds = await Array.fromAsync(Deno.readDir(dir)).catch(() => [] as Deno.DirEntry[]);
  for (const s of seeds.filter((e) => e.isDirectory && /^s\d+$/.test(e.name))) {
    const seed = Number(s.name.slice(1));
    for (const [stageName, branch] of [["zero", "zero"], ["r1-grpo", "r1"]] as const) {
      const rows = await readMetrics<GrpoRoundLog & { round: number }>(
        `${dir}/${s.name}/${stageName}/rounds.jsonl`,
      );
      out.push(...rows.map((r) => ({ ...r, seed, branch })));
    }
  }
  return out;
}

/**
 * GRPO training signals per round (mean over seeds): sampled reward, KL to the reference and
 * clip fraction, one panel each, R1-Zero against R1.
 *
 * @param rows From {@linkcode readR1Rounds}.
 * @returns The spec.
 */
export function grpoRoundsSpec(rows: readonly RoundRow[]): VegaLiteSpec {
  const values: { branch: string; round: number; signal: string; value: number }[] = [];
  const key = (r: RoundRow) => `${r.branch}|${r.round}`;
  const groups = new Map<string, RoundRow[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  for (const g of groups.values()) {
    for (const signal of ["reward", "kl", "clipFraction"] as const) {
      values.push({
        branch: g[0].branch,
        round: g[0].round,
        signal,
        value: avg(g.map((r) => r[signal])),
      });
    }
  }
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: "GRPO rounds (mean over seeds)",
    data: { values },
    facet: { column: { field: "signal", type: "nominal", title: null } },
    spec: {
      width: 220,
      height: 160,
      mark: { type: "line", point: false },
      encoding: {
        x: { field: "round", type: "quantitative", title: "round" },
        y: { field: "value", type: "quantitative", title: null },
        color: {
          field: "branch",
          type: "nominal",
          scale: { domain: ["zero", "r1"], range: [PALETTE[0], PALETTE[1]] },
        },
      },
    },
    resolve: { scale: { y: "independent" } },
  } as VegaLiteSpec;
}

/** Read every curve point the study wrote under `dir` (any seed, any stage). */
export async function readR1Points(dir: string): Promise<CurvePoint[]> {
  const points: CurvePoint[] = [];
  let seeds: string[] = [];
  try {
    seeds = (await Array.fromAsync(Deno.readDir(dir))).filter((e) =>
      e.isDirectory && /^s\d+$/.test(e.name)
    )
      .map((e) => e.name).sort();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const s of seeds) {
    for (const st of await Array.fromAsync(Deno.readDir(`${dir}/${s}`))) {
      if (!st.isDirectory || !(await exists(`${dir}/${s}/${st.name}/done.json`))) continue;
      points.push(...await readMetrics<CurvePoint>(`${dir}/${s}/${st.name}/curve.jsonl`));
    }
  }
  return points;
}

async function runPipeline(spec: R1Options, ctx: StudyContext): Promise<void> {
  const { renderSvg } = await import("../report/render.ts");
  await Deno.mkdir(ctx.dir, { recursive: true });
  const seeds = budgeted(spec.seeds, ctx.budget);
  for (const seed of seeds) await runSeed(spec, ctx, seed);
  // summary, table, charts and the report section, from what is on disk
  const points = await readR1Points(ctx.dir);
  const summary = summarizeBranches(points);
  await writeJsonAtomic(`${ctx.dir}/summary.json`, {
    budget: ctx.budget,
    seeds,
    branches: summary,
  });
  const table = branchTable(summary);
  await writeTextAtomic(`${ctx.dir}/table.md`, table + "\n");
  const charts: string[] = [];
  for (const metric of ["accuracy", "formatRate", "length"] as const) {
    const file = `${metric}.svg`;
    await writeTextAtomic(`${ctx.dir}/${file}`, await renderSvg(r1CurveSpec(points, metric)));
    charts.push(file);
  }
  await writeJsonAtomic(`${ctx.dir}/report.json`, {
    title: `${spec.name}: the R1 pipeline at toy scale`,
    markdown:
      `Greedy accuracy, exact-format rate and completion length on ${
        budgeted(spec.eval.questions, ctx.budget)
      } held-out questions (${
        spec.tasks.join(", ")
      }), last evaluation of each branch, mean ± 95% CI over ` +
      `${seeds.length} seed(s).\n\n${table}`,
    charts,
  });
  ctx.reporter.log(`r1: ${summary.length} branches → ${ctx.dir}/table.md`);
}
