/**
 * The programmatic runner: `runExperiments(entries, options)` expands the chosen experiments into
 * runs (variants × seeds), skips finished ones, resumes interrupted ones, trains the rest (in
 * this process, in `jobs` worker processes, or on Slurm) and returns how each run ended. The
 * command line (`deno task experiments`, `main()` in `cli.ts`) and notebooks call the same
 * function.
 *
 * ```ts ignore
 * import { runExperiments } from "../../mod.ts";
 * import { EXPERIMENTS } from "../../experiments/mod.ts";
 * const result = await runExperiments(EXPERIMENTS, { only: ["attention"], budget: "small" });
 * console.log(result.runs.map((r) => `${r.label}: ${r.status}`));
 * ```
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import {
  BACKEND_CHOICES,
  type BackendChoiceName,
  type BackendName,
  chooseBackend,
} from "../backend/mod.ts";
import { closestName } from "../dsl/errors.ts";
import type { RunSpec } from "../dsl/experiment.ts";
import type { Budget } from "../dsl/train.ts";
import { type ExecutorOptions, EXECUTORS } from "./executor.ts";
import { backendNumerics, type CodeIdentity, codeIdentity, packageCommit } from "./identity.ts";
import {
  backendCapacity,
  estimateMemory,
  formatBytes,
  type MemoryEstimate,
  memoryProblem,
} from "./memory.ts";
import { JupyterReporter } from "./jupyter_reporter.ts";
import { inJupyter, type Reporter, TerminalReporter } from "./progress.ts";

export { inJupyter } from "./progress.ts";
import type { RunOutcome } from "./execute.ts";
import { loadTokens, planOf, runLabel, type RunPlan } from "./run.ts";
import type { SlurmOptions } from "./slurm.ts";
import { isStudy, type Study, type SuiteEntry } from "./study.ts";
import { UsageError } from "./usage.ts";

export type { RunOutcome } from "./execute.ts";

/** Options of {@linkcode runExperiments}. */
export interface RunExperimentsOptions {
  /** Training budget. @default {"small"} */
  budget?: Budget;
  /** Experiment or `experiment/variant` names. @default {every entry} */
  only?: readonly string[];
  /** @default {"auto"} */
  backend?: BackendChoiceName;
  /** Runs in parallel worker processes (needs `scriptUrl`). @default {1} */
  jobs?: number;
  /**
   * The results store. @default {env `ABLATE_RUNS`, else `runs/` in the nearest directory with a
   * `deno.json`, walking up from the working directory}
   */
  out?: string;
  /** @default {"local"} */
  executor?: "local" | "slurm";
  /** Scheduler options for `executor: "slurm"`. */
  slurm?: SlurmOptions;
  /** @default {a notebook display inside the Deno Jupyter kernel, else {@linkcode TerminalReporter}} */
  reporter?: Reporter;
  /**
   * A finished run whose id changed: `"supersede"` moves it to `.superseded/` and trains it
   * again; `"stop"` leaves it, trains nothing for it and throws {@linkcode RunsChangedError}
   * naming the runs and what changed (after the other runs). Unfinished runs with a changed id are
   * always moved aside. @default {"stop" inside the Deno Jupyter kernel, else "supersede"}
   */
  onChanged?: "supersede" | "stop";
  /** The suite's entry script, which `jobs` workers and Slurm tasks run with `--run-id`. */
  scriptUrl?: string;
}

/** What {@linkcode runExperiments} returns. */
export interface RunExperimentsResult {
  /** The results store. */
  out: string;
  budget: Budget;
  /** Every selected run (studies included, as `<name>/study/seed-0`), in plan order. */
  runs: RunOutcome[];
  /** Runs that failed or diverged. */
  failed: number;
}

/** Thrown by {@linkcode runExperiments} with `onChanged: "stop"` when finished runs changed id. */
export class RunsChangedError extends Error {
  override name = "RunsChangedError";
  /** The whole result (the changed runs have status `"changed"`). */
  readonly result: RunExperimentsResult;
  constructor(result: RunExperimentsResult) {
    const changed = result.runs.filter((r) => r.status === "changed");
    super(
      `${changed.length} finished run${changed.length === 1 ? "" : "s"} changed id and ` +
        `${changed.length === 1 ? "was" : "were"} left as ${
          changed.length === 1 ? "it is" : "they are"
        } (not retrained):\n${
          changed.map((r) => `  ${r.label}: ${r.detail}`).join("\n")
        }\nTo retrain them, pass onChanged: "supersede" (the previous results move to ` +
        `${result.out}/.superseded/)`,
    );
    this.result = result;
  }
}

/**
 * The reporter a sweep uses when none is given: inside the Deno Jupyter kernel, the live
 * {@linkcode JupyterReporter} (one display updated in place), else {@linkcode TerminalReporter}.
 *
 * @returns A reporter.
 */
export function defaultReporter(): Reporter {
  return inJupyter() ? new JupyterReporter() : new TerminalReporter();
}

function envStore(): string | undefined {
  try {
    return Deno.env.get("ABLATE_RUNS") || undefined;
  } catch {
    return undefined; // no --allow-env for it
  }
}

/**
 * The default results store: `ABLATE_RUNS` when set, else `runs/` beside the nearest `deno.json`
 * found walking up from the working directory (so a notebook in `notebooks/` uses the
 * repository's `runs/`), else `runs`.
 *
 * @returns A path.
 */
export async function defaultStore(): Promise<string> {
  const env = envStore();
  if (env !== undefined) return env;
  try {
    let dir = Deno.cwd();
    while (true) {
      const found = await Deno.stat(`${dir}/deno.json`).then(() => true, () => false);
      if (found) return `${dir}/runs`;
      const up = dir.slice(0, dir.lastIndexOf("/"));
      if (up === dir || up === "") break;
      dir = up;
    }
  } catch { /* no read access */ }
  return "runs";
}

/** Make sure `dir` exists and is writable, with a message naming it if not. */
export async function checkWritable(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const probe = `${dir}/.write-test-${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (e) {
    throw new UsageError(`Cannot write to --out '${dir}': ${(e as Error).message}`);
  }
}

/** Check suite entries: names must be unique, since a name is the store directory. */
export function checkEntries(entries: readonly SuiteEntry[]): void {
  const seen = new Map<string, number>();
  entries.forEach((e, i) => {
    const first = seen.get(e.name);
    if (first !== undefined) {
      throw new UsageError(
        `Two suite entries are named '${e.name}' (entries ${first + 1} and ${i + 1}): names must ` +
          `be unique, since each names its store directory <out>/${e.name}/; rename one`,
      );
    }
    seen.set(e.name, i);
  });
}

/** Pick experiments and variants from `--only` names (`experiment` or `experiment/variant`). */
export function selectRuns<E extends { name: string; variants: readonly string[] }>(
  experiments: readonly E[],
  only: readonly string[],
): { experiment: E; variants: string[] | undefined }[] {
  if (only.length === 0) {
    return experiments.map((experiment) => ({ experiment, variants: undefined }));
  }
  const names = experiments.map((e) => e.name);
  const picked = new Map<string, Set<string> | null>();
  for (const item of only) {
    const parts = item.split("/");
    if (item.trim() === "" || parts.length > 2 || parts.some((p) => p === "")) {
      throw new UsageError(
        `Invalid name '${item}' in --only: expected an experiment or experiment/variant name, ` +
          `e.g. 'attention' or 'attention/mla'`,
      );
    }
    const [exp, variant] = parts;
    const e = experiments.find((x) => x.name === exp);
    if (e === undefined) {
      const near = closestName(exp, names);
      throw new UsageError(
        `Unknown experiment '${exp}' in --only: expected one of ${
          names.map((n) => `'${n}'`).join(", ")
        }` +
          (near ? ` (did you mean '${near}'?)` : ""),
      );
    }
    if (variant === undefined) {
      picked.set(exp, null);
      continue;
    }
    if (!e.variants.includes(variant)) {
      const near = closestName(variant, e.variants);
      throw new UsageError(
        `Unknown variant '${variant}' of experiment '${exp}' in --only: expected one of ` +
          `${e.variants.map((n) => `'${n}'`).join(", ")}${
            near ? ` (did you mean '${near}'?)` : ""
          }`,
      );
    }
    const set = picked.get(exp);
    if (set !== null) picked.set(exp, new Set([...(set ?? []), variant]));
  }
  return experiments
    .filter((e) => picked.has(e.name))
    .map((e) => {
      const set = picked.get(e.name);
      return { experiment: e, variants: set ? e.variants.filter((v) => set.has(v)) : undefined };
    });
}

/** A planned sweep: the backend, the runs and the studies of a selection. */
export interface SuitePlan {
  backend: Backend;
  backendReason: string;
  /** The run code's identity on this backend. */
  code: CodeIdentity;
  /** The checkout's commit, when known (provenance only). */
  commit: string | null;
  plans: RunPlan[];
  studies: { study: Study; variants: string[] | undefined }[];
}

/** Options of {@linkcode planSuite}. */
export interface PlanSuiteOptions {
  /** @default {"small"} */
  budget?: Budget;
  /** @default {[]} (everything) */
  only?: readonly string[];
  /** A backend choice, or a backend already made. @default {"auto"} */
  backend?: BackendChoiceName | { backend: Backend; reason: string };
}

/**
 * Choose the backend and expand the selected experiments into plans with their ids: each id
 * covers the resolved config, the data's content hash, the backend's numerics and the hash of
 * the source files that compute the run (`identity.ts`).
 *
 * @param entries The suite.
 * @param options Budget, selection and backend.
 * @returns The plans and the studies of the selection.
 */
export async function planSuite(
  entries: readonly SuiteEntry[],
  options: PlanSuiteOptions = {},
): Promise<SuitePlan> {
  checkEntries(entries);
  const selected = selectRuns(entries, options.only ?? []);
  const choice = options.backend ?? "auto";
  const { backend, reason } = typeof choice === "string" ? await chooseBackend(choice) : choice;
  const kind = backend.name as BackendName;
  if (!(BACKEND_CHOICES as readonly string[]).includes(kind) || kind === ("auto" as string)) {
    throw new Error(`Cannot identify runs on backend '${backend.name}': unknown backend kind`);
  }
  const code = await codeIdentity(kind);
  const numerics = backendNumerics(backend);
  const plans: RunPlan[] = [];
  const studies: SuitePlan["studies"] = [];
  for (const { experiment, variants } of selected) {
    if (isStudy(experiment)) {
      studies.push({ study: experiment, variants });
      continue;
    }
    const d = experiment.data;
    const dataHash = d.kind === "brown"
      ? (await loadTokens({ corpus: "brown", tokenizer: d.tokenizer, valEvery: d.valEvery })).hash
      : undefined;
    const specs: RunSpec[] = experiment.expand({
      budget: options.budget ?? "small",
      only: variants,
      codeVersion: code.hash,
      backend: numerics,
      dataHash,
    });
    for (const spec of specs) {
      plans.push(planOf(spec, {
        model: spec.model,
        data: spec.data,
        dataHash: spec.dataHash,
        train: spec.train,
        seed: spec.seed,
        backend: numerics,
        code,
      }));
    }
  }
  return { backend, backendReason: reason, code, commit: await packageCommit(), plans, studies };
}

/**
 * Show the largest run's memory estimate and refuse, before anything trains, runs that do not
 * fit the backend (`memory.ts`).
 *
 * @param plans The planned runs.
 * @param backend The backend they will train on.
 * @param reporter Where the estimate goes.
 * @throws {UsageError} naming each run that does not fit, its sizes and the limit.
 */
export function checkMemory(plans: readonly RunPlan[], backend: Backend, reporter: Reporter): void {
  if (plans.length === 0) return;
  const capacity = backendCapacity(backend);
  let largest: { plan: RunPlan; estimate: MemoryEstimate } | null = null;
  const tooBig: string[] = [];
  for (const plan of plans) {
    const estimate = estimateMemory(plan.model, plan.train);
    if (largest === null || estimate.total > largest.estimate.total) largest = { plan, estimate };
    const problem = memoryProblem(estimate, capacity);
    if (problem !== null) tooBig.push(`${runLabel(plan)}: ${problem}`);
  }
  if (largest !== null) {
    const limit = capacity.totalBytes ?? capacity.tensorBytes;
    reporter.log(
      `memory: ≈ ${formatBytes(largest.estimate.total)} for the largest run ` +
        `(${runLabel(largest.plan)}, ${largest.estimate.parameters.toLocaleString("en-US")} ` +
        `parameters)${limit === undefined ? "" : `; ${capacity.what}: ${formatBytes(limit)}`}`,
    );
  }
  if (tooBig.length > 0) {
    throw new UsageError(
      `Cannot train ${tooBig.length} run${tooBig.length === 1 ? "" : "s"} on ` +
        `${backend.description}:\n${tooBig.map((t) => `  ${t}`).join("\n")}\n` +
        "Make the model smaller (dModel, layers, vocab, experts) or the batch smaller, or use a " +
        "backend with more memory (--backend)",
    );
  }
}

function checkOptions(options: RunExperimentsOptions): void {
  const known = [
    "budget",
    "only",
    "backend",
    "jobs",
    "out",
    "executor",
    "slurm",
    "reporter",
    "onChanged",
    "scriptUrl",
  ];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      const near = closestName(key, known);
      throw new UsageError(
        `Unknown runExperiments option '${key}'${near ? `: did you mean '${near}'?` : ""}`,
      );
    }
  }
  const oneOf = (field: string, value: unknown, allowed: readonly string[]) => {
    if (value !== undefined && !allowed.includes(value as string)) {
      throw new UsageError(
        `Invalid ${field} '${value}': expected ${allowed.map((a) => `'${a}'`).join(" or ")}`,
      );
    }
  };
  oneOf("budget", options.budget, ["small", "full"]);
  oneOf("backend", options.backend, BACKEND_CHOICES);
  oneOf("executor", options.executor, ["local", "slurm"]);
  oneOf("onChanged", options.onChanged, ["supersede", "stop"]);
  const jobs = options.jobs;
  if (jobs !== undefined && (!Number.isInteger(jobs) || jobs < 1 || jobs > 64)) {
    throw new UsageError(`Invalid jobs '${jobs}': expected an integer from 1 to 64`);
  }
  if (jobs !== undefined && jobs > 1 && options.scriptUrl === undefined) {
    throw new UsageError(
      `Cannot run with jobs ${jobs}: worker processes run the suite's entry script; pass ` +
        `scriptUrl (import.meta.url of a script that calls main() from lib/runner/cli.ts)`,
    );
  }
  if (options.only !== undefined) {
    if (!Array.isArray(options.only)) {
      throw new UsageError(
        `Invalid only ${JSON.stringify(options.only)}: expected a list of names`,
      );
    }
    for (const name of options.only) {
      if (typeof name !== "string" || name.trim() === "") {
        throw new UsageError(
          `Invalid only entry ${
            JSON.stringify(name)
          }: expected an experiment or experiment/variant name`,
        );
      }
    }
  }
  if (options.out !== undefined && options.out.trim() === "") {
    throw new UsageError("Invalid out '': expected a directory path");
  }
}

/**
 * Run experiments: plan, skip what is done, resume what was interrupted, train the rest, and
 * report through `options.reporter` (its optional `begin`/`end` hooks frame the sweep).
 *
 * @param entries The suite (DSL experiments and studies).
 * @param options Budget, selection, backend, parallelism, store, executor, reporter.
 * @returns Every selected run's outcome (a failed run is an outcome, not an exception).
 * @throws {UsageError} on a bad option or selection; {@linkcode RunsChangedError} with
 *   `onChanged: "stop"` when finished runs changed id (after the others ran).
 *
 * @example A tiny experiment, trained then skipped
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { brown, experiment, model } from "../dsl/mod.ts";
 * import { SILENT } from "./progress.ts";
 * import { runExperiments } from "./experiments.ts";
 * const tiny = experiment({
 *   name: "doc-tiny", base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
 *   vary: { base: {} }, data: brown(), train: { tokens: 1024, batch: 4, lr: 3e-3, budgets: { small: { tokens: 256 } } },
 * });
 * await Deno.mkdir(".test-tmp", { recursive: true });
 * const out = await Deno.makeTempDir({ dir: ".test-tmp" });
 * const options = { backend: "cpu", out, reporter: SILENT } as const;
 * strictEqual((await runExperiments([tiny], options)).runs[0].status, "done");
 * strictEqual((await runExperiments([tiny], options)).runs[0].status, "skipped");
 * await Deno.remove(out, { recursive: true });
 * ```
 */
export async function runExperiments(
  entries: readonly SuiteEntry[],
  options: RunExperimentsOptions = {},
): Promise<RunExperimentsResult> {
  checkOptions(options);
  checkEntries(entries);
  const budget = options.budget ?? "small";
  const out = options.out ?? await defaultStore();
  const reporter = options.reporter ?? defaultReporter();
  const onChanged = options.onChanged ?? (inJupyter() ? "stop" : "supersede");
  const executorName = options.executor ?? "local";
  selectRuns(entries, options.only ?? []); // a bad name fails before the backend starts
  await checkWritable(out);
  const suite = await planSuite(entries, {
    budget,
    only: options.only,
    backend: options.backend ?? "auto",
  });
  const { backend, backendReason, plans, studies } = suite;
  try {
    reporter.log(`backend: ${backend.description} (${backendReason})`);
    checkMemory(plans, backend, reporter);
    reporter.log(
      `${plans.length} runs${
        studies.length > 0 ? ` + ${studies.length} studies` : ""
      } (${budget} budget) → ${out}/`,
    );
    reporter.begin?.({
      out,
      budget,
      runs: plans.map((p) => ({
        label: runLabel(p),
        experiment: p.experiment,
        variant: p.variant,
        seed: p.seed,
        steps: p.train.steps,
      })),
    });
    const executor = EXECUTORS[executorName];
    const context: ExecutorOptions = {
      root: out,
      budget,
      backendChoice: options.backend ?? "auto",
      jobs: options.jobs ?? 1,
      slurm: options.slurm ?? {},
      backend,
      backendReason,
      reporter,
      onChanged,
      commit: suite.commit,
      scriptUrl: options.scriptUrl,
    };
    const runs = await executor.execute(plans, context);
    if (studies.length > 0 && !executor.completesRuns) {
      reporter.log(
        `studies run on this machine, not through ${executor.name}: ${
          studies.map((s) => s.study.name).join(", ")
        } (run them with --executor local)`,
      );
    } else {
      for (const { study, variants } of studies) {
        const label = `${study.name} (study)`;
        const dir = `${out}/${study.name}`;
        const base = { label, experiment: study.name, variant: "study", seed: 0, dir };
        try {
          await study.run({
            budget,
            dir,
            variants,
            backend,
            backendReason,
            reporter,
            codeVersion: suite.code.hash,
          });
          reporter.runEnd({ label, status: "done", detail: `${dir}/` });
          runs.push({ ...base, status: "done", detail: `${dir}/`, summary: null });
        } catch (e) {
          const detail = (e as Error).message;
          reporter.runEnd({ label, status: "failed", detail });
          runs.push({ ...base, status: "failed", detail, summary: null });
        }
      }
    }
    const failed = runs.filter((r) => r.status === "failed" || r.status === "diverged").length;
    const result: RunExperimentsResult = { out, budget, runs, failed };
    const changed = runs.filter((r) => r.status === "changed").length;
    if (executor.completesRuns) {
      const bad = runs.filter((r) => r.status !== "done" && r.status !== "skipped");
      reporter.log(
        bad.length === 0
          ? "all runs done"
          : `${bad.length} of ${runs.length} runs did not finish:\n${
            bad.map((r) => `  ${r.status}: ${r.label} — ${r.detail}`).join("\n")
          }`,
      );
    }
    await reporter.end?.(result);
    if (changed > 0) throw new RunsChangedError(result);
    return result;
  } finally {
    (backend as { close?: () => void }).close?.();
  }
}
