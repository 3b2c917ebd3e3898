/**
 * `deno task experiments`: the command line over the runner. Expands the chosen experiments
 * into runs (variants × seeds), skips finished ones, resumes interrupted ones, shows progress,
 * and runs several at once in worker processes with `--jobs`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BACKEND_CHOICES, type BackendChoiceName } from "../backend/mod.ts";
import { closestName } from "../dsl/errors.ts";
import { StoppedError } from "../train/trainer.ts";
import { verdictLines } from "../report/claims.ts";
import { listExperiments, loadResults } from "../report/results.ts";
import { OUTCOME_PREFIX, outcomeOfError } from "./executor.ts";
import {
  checkEntries,
  planSuite,
  runExperiments,
  RunsChangedError,
  selectRuns,
} from "./experiments.ts";
import { type Reporter, TerminalReporter } from "./progress.ts";
import { executeRun } from "./execute.ts";
import { checkStore } from "./check.ts";
import { cancel, checkTime, queuedJobs, runStates, type SlurmOptions } from "./slurm.ts";
import { isStudy, type SuiteEntry } from "./study.ts";
import { UsageError } from "./usage.ts";

export { checkWritable, selectRuns } from "./experiments.ts";
export { planOf } from "./run.ts";

/** Usage text of `deno task experiments`. */
export const HELP = `Usage: deno task experiments [options]

Runs the ablation experiments in experiments/ (variants x seeds), storing each run under
<out>/<experiment>/<variant>/seed-<n>/. Finished runs are skipped; interrupted runs resume
from their last checkpoint. Rerun the same command to continue.

Options:
  --only NAMES     comma-separated experiment or experiment/variant names (default: all)
  --budget B       small (quick look, the default) or full (the documented setting)
  --backend B      auto (default), cpu, wasm or webgpu
  --out DIR        results store (default: runs)
  --jobs N         runs in parallel worker processes (default: 1)
  --on-changed M   a finished run whose id changed (its code, config, data or backend):
                   supersede (the default: move it to <out>/.superseded/ and train again) or
                   stop (leave it, train nothing for it, and say what changed)
  --check          validate every selected run (metrics lines parse and are contiguous,
                   checkpoints match their digests, the summary matches the manifest) and
                   repair what can be repaired, one line per run, then exit
  --list           list experiments and variants, then exit
  --help           show this help

On a Slurm cluster (the store must be on a filesystem every node mounts):
  --executor E     local (default: this machine) or slurm (submit the pending runs as one
                   sbatch job array; studies still run with --executor local)
  --partition P    Slurm partition (default: the cluster's default)
  --time T         per-run time limit, HH:MM:SS (runs checkpoint on SIGTERM and resume)
  --cpus-per-task N, --gpus-per-task N   resources per run
  --status         show each run's state (done, running with step/ETA, pending, failed with
                   its log tail) from the store and squeue, then exit
  --cancel         cancel this selection's queued Slurm jobs (only those), then exit`;

/** Parsed command-line options. */
export interface CliOptions {
  only: string[];
  budget: "small" | "full";
  backend: BackendChoiceName;
  out: string;
  jobs: number;
  list: boolean;
  help: boolean;
  /** Internal: execute one run (by id) and exit; used by --jobs workers and Slurm tasks. */
  runId: string | null;
  executor: "local" | "slurm";
  slurm: SlurmOptions;
  status: boolean;
  cancel: boolean;
  /** `--check`: validate (and repair) every selected run, then exit. */
  check: boolean;
  /**
   * `--on-changed`: what to do with a finished run whose id changed (`undefined`: the default of
   * `runExperiments`, "stop" inside the Deno Jupyter kernel, else "supersede").
   */
  onChanged: "supersede" | "stop" | undefined;
}

export { UsageError };

/** Parse and check `args` (every bad value names the flag, the value and what is allowed). */
export function parseCli(args: string[]): CliOptions {
  let values, tokens;
  try {
    ({ values, tokens } = parseArgs({
      args,
      strict: true,
      tokens: true,
      options: {
        only: { type: "string" },
        budget: { type: "string" },
        backend: { type: "string" },
        out: { type: "string" },
        jobs: { type: "string" },
        list: { type: "boolean" },
        help: { type: "boolean" },
        "run-id": { type: "string" },
        executor: { type: "string" },
        partition: { type: "string" },
        time: { type: "string" },
        "cpus-per-task": { type: "string" },
        "gpus-per-task": { type: "string" },
        status: { type: "boolean" },
        cancel: { type: "boolean" },
        "on-changed": { type: "string" },
        check: { type: "boolean" },
      },
    }));
  } catch (e) {
    const m = /Unknown option '(--[^']+)'/.exec((e as Error).message);
    if (m) {
      const known = [
        "--only",
        "--budget",
        "--backend",
        "--out",
        "--jobs",
        "--list",
        "--help",
        "--executor",
        "--partition",
        "--time",
        "--cpus-per-task",
        "--gpus-per-task",
        "--status",
        "--cancel",
        "--on-changed",
        "--check",
      ];
      const near = closestName(m[1], known);
      throw new UsageError(`Unknown option '${m[1]}'${near ? `: did you mean '${near}'?` : ""}`);
    }
    throw new UsageError((e as Error).message);
  }
  // A repeated option would silently keep its last value.
  const given = new Map<string, string[]>();
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    given.set(t.name, [...(given.get(t.name) ?? []), t.value ?? ""]);
  }
  for (const [name, list] of given) {
    if (list.length > 1) {
      const shown = list.map((v) => `'${v}'`).join(", ");
      throw new UsageError(
        `--${name} is given ${list.length} times (${shown}): give it once` +
          (name === "only" ? `, with a comma-separated list (--only ${list.join(",")})` : ""),
      );
    }
  }
  const budget = values.budget ?? "small";
  if (budget !== "small" && budget !== "full") {
    throw new UsageError(`Invalid --budget '${budget}': expected 'small' or 'full'`);
  }
  const backend = values.backend ?? "auto";
  if (!(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new UsageError(
      `Invalid --backend '${backend}': expected one of ${
        BACKEND_CHOICES.map((b) => `'${b}'`).join(", ")
      }`,
    );
  }
  const jobs = Number(values.jobs ?? "1");
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
    throw new UsageError(`Invalid --jobs '${values.jobs}': expected an integer from 1 to 64`);
  }
  const out = values.out ?? "runs";
  if (out.trim() === "") throw new UsageError("Invalid --out '': expected a directory path");
  const executor = values.executor ?? "local";
  if (executor !== "local" && executor !== "slurm") {
    throw new UsageError(`Invalid --executor '${executor}': expected 'local' or 'slurm'`);
  }
  const count = (flag: "cpus-per-task" | "gpus-per-task") => {
    const v = values[flag];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 1024) {
      throw new UsageError(`Invalid --${flag} '${v}': expected an integer from 1 to 1024`);
    }
    return n;
  };
  const slurm: SlurmOptions = {
    partition: values.partition,
    time: values.time === undefined ? undefined : checkTime(values.time),
    cpusPerTask: count("cpus-per-task"),
    gpusPerTask: count("gpus-per-task"),
  };
  const slurmOnly = ["partition", "time", "cpus-per-task", "gpus-per-task"] as const;
  const stray = slurmOnly.find((f) => values[f] !== undefined);
  if (executor !== "slurm" && stray) {
    throw new UsageError(`--${stray} applies to --executor slurm only`);
  }
  const onChanged = values["on-changed"];
  if (onChanged !== undefined && onChanged !== "supersede" && onChanged !== "stop") {
    throw new UsageError(`Invalid --on-changed '${onChanged}': expected 'supersede' or 'stop'`);
  }
  let only: string[] = [];
  if (values.only !== undefined) {
    only = values.only.split(",").map((s) => s.trim());
    if (only.some((s) => s === "")) {
      throw new UsageError(
        `Invalid --only '${values.only}': expected comma-separated experiment or ` +
          `experiment/variant names without empty entries (e.g. --only attention,mtp/depth-1); ` +
          `leave --only out to run everything`,
      );
    }
  }
  const modes = (["list", "status", "cancel", "check"] as const).filter((m) => values[m]);
  if (modes.length > 1) {
    throw new UsageError(
      `--${modes[0]} and --${modes[1]} cannot be combined: pick one`,
    );
  }
  return {
    only,
    budget,
    backend: backend as BackendChoiceName,
    out,
    jobs,
    list: values.list ?? false,
    help: values.help ?? false,
    runId: values["run-id"] ?? null,
    executor,
    slurm,
    status: values.status ?? false,
    cancel: values.cancel ?? false,
    check: values.check ?? false,
    onChanged,
  };
}

/**
 * Check `--out` before anything is written: not inside `report/` (which the report overwrites),
 * and writable by this process. `deno task experiments` may write only under `runs/` and
 * `report/`, so a store elsewhere is refused with that explanation instead of a permission error.
 *
 * @param out The `--out` value.
 * @throws {UsageError} naming the value and what is allowed.
 */
export async function checkOut(out: string): Promise<void> {
  const cwd = Deno.cwd();
  const abs = out.startsWith("/") ? out : `${cwd}/${out}`.replace(/\/(\.\/)+/g, "/");
  const normal = abs.replace(/\/+$/, "");
  if (normal === `${cwd}/report` || normal.startsWith(`${cwd}/report/`)) {
    throw new UsageError(
      `Invalid --out '${out}': it lies inside report/, where the report is written; keep ` +
        `results stores under runs/ (e.g. --out runs/mine, whose report goes to report/mine/)`,
    );
  }
  const status = await Deno.permissions.query({ name: "write", path: out });
  if (status.state !== "granted") {
    throw new UsageError(
      `Invalid --out '${out}': this process may not write there (deno task experiments may ` +
        `write only under runs/ and report/); --out must lie under runs/, e.g. --out runs/mine`,
    );
  }
}

/**
 * Run the CLI; returns the exit code. A thin wrapper over {@linkcode runExperiments}: it parses
 * `args`, then runs, lists, shows the status of, or cancels the selection.
 *
 * @param args Command-line arguments (`--only attention --budget full`).
 * @param experiments The suite.
 * @param options The reporter, the suite's entry script (for `--jobs` and Slurm) and what to do
 *   after the runs (the report).
 * @returns 0 when everything asked for is done, 1 when a run failed, 2 for a usage error.
 */
export async function main(
  args: string[],
  experiments: readonly SuiteEntry[],
  options: {
    reporter?: Reporter;
    scriptUrl?: string;
    /** Called once after the local executor finished the selection (not for --list, --run-id). */
    afterRuns?: (cli: CliOptions, reporter: Reporter) => Promise<void>;
  } = {},
): Promise<number> {
  let cli: CliOptions;
  try {
    cli = parseCli(args);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (cli.help) {
    console.log(HELP);
    return 0;
  }
  const reporter = options.reporter ?? new TerminalReporter();
  try {
    checkEntries(experiments);
    const selected = selectRuns(experiments, cli.only);
    if (cli.list) {
      for (const { experiment, variants } of selected) {
        const what = isStudy(experiment) ? ` (study: ${experiment.description})` : "";
        reporter.log(
          `${experiment.name}: ${(variants ?? experiment.variants).join(", ")} × seeds ${
            experiment.seeds.join(", ")
          }${what}`,
        );
      }
      return 0;
    }
    if (cli.runId !== null) return await runWorker(cli, experiments, reporter);
    await checkOut(cli.out);
    if (cli.check) {
      const { plans, backend } = await planSuite(experiments, {
        budget: cli.budget,
        only: cli.only,
        backend: cli.backend,
      });
      (backend as { close?: () => void }).close?.();
      const lines = await checkStore(cli.out, plans);
      for (const l of lines) reporter.log(`${l.verdict.padEnd(9)} ${l.label}  ${l.detail}`);
      const count = (v: string) => lines.filter((l) => l.verdict === v).length;
      reporter.log(
        `checked ${lines.length} runs: ${count("ok")} ok, ${count("repaired")} repaired, ` +
          `${count("diverged")} diverged, ${count("changed")} of another id, ` +
          `${count("locked")} being trained elsewhere`,
      );
      return 0;
    }
    if (cli.status || cli.cancel) {
      const { plans, backend } = await planSuite(experiments, {
        budget: cli.budget,
        only: cli.only,
        backend: cli.backend,
      });
      (backend as { close?: () => void }).close?.();
      if (cli.status) {
        let queue: Map<string, string> | undefined;
        try {
          queue = await queuedJobs();
        } catch (e) {
          const noSlurm = e instanceof UsageError || e instanceof Deno.errors.NotCapable ||
            e instanceof Deno.errors.PermissionDenied;
          if (!noSlurm) throw e;
          queue = new Map(); // no Slurm here (or not allowed to ask): the store alone
        }
        for (const s of await runStates(cli.out, plans, undefined, queue)) {
          reporter.log(`${s.state.padEnd(13)} ${s.label}${s.detail ? `  ${s.detail}` : ""}`);
        }
        // the claims' verdicts from what the store holds so far
        const stored = await listExperiments(cli.out);
        const results = await Promise.all(stored.map((name) => loadResults(cli.out, name)));
        for (const line of verdictLines(results)) reporter.log(`claim         ${line}`);
      } else {
        const ids = await cancel(cli.out, plans);
        reporter.log(ids.length === 0 ? "no queued jobs to cancel" : `cancelled ${ids.join(", ")}`);
      }
      return 0;
    }
    let failed: number;
    try {
      const result = await runExperiments(experiments, {
        budget: cli.budget,
        only: cli.only,
        backend: cli.backend,
        jobs: cli.jobs,
        out: cli.out,
        executor: cli.executor,
        slurm: cli.slurm,
        reporter,
        onChanged: cli.onChanged,
        scriptUrl: options.scriptUrl,
      });
      failed = result.failed;
    } catch (e) {
      if (!(e instanceof RunsChangedError)) throw e;
      reporter.log(e.message);
      failed = e.result.failed + 1;
    }
    if (cli.executor === "local" && options.afterRuns) {
      try {
        await options.afterRuns(cli, reporter);
      } catch (e) {
        reporter.log(`report not written: ${(e as Error).message}`);
        failed++;
      }
    }
    return failed === 0 ? 0 : 1;
  } catch (e) {
    console.error((e as Error).message);
    return e instanceof UsageError ? 2 : 1;
  }
}

/**
 * `--run-id`: execute one run of the plan in this process (a `--jobs` worker or a Slurm task),
 * print its outcome as the last line, and exit 0 (done, skipped), 3 (stopped by SIGTERM,
 * checkpoint saved) or 1 (failed, diverged, changed).
 */
async function runWorker(
  cli: CliOptions,
  experiments: readonly SuiteEntry[],
  reporter: Reporter,
): Promise<number> {
  const suite = await planSuite(experiments, {
    budget: cli.budget,
    only: cli.only,
    backend: cli.backend,
  });
  const plan = suite.plans.find((p) => p.id === cli.runId);
  if (plan === undefined) {
    (suite.backend as { close?: () => void }).close?.();
    throw new UsageError(
      `Unknown run id '${cli.runId}': no run of this selection has it (the code, config, data ` +
        `or backend differ from where it was planned)`,
    );
  }
  // A scheduler's SIGTERM (scancel, preemption, time limit): checkpoint, then exit.
  let stop = false;
  const onTerm = () => (stop = true);
  Deno.addSignalListener("SIGTERM", onTerm);
  try {
    const outcome = await executeRun(plan, {
      root: cli.out,
      backend: suite.backend,
      backendReason: suite.backendReason,
      reporter,
      commit: suite.commit,
      onChanged: cli.onChanged ?? "supersede",
      index: 1,
      count: 1,
      shouldStop: () => stop,
    });
    console.log(OUTCOME_PREFIX + JSON.stringify(outcome));
    return 0;
  } catch (e) {
    if (e instanceof StoppedError) {
      reporter.log(`${plan.experiment}/${plan.variant}/seed-${plan.seed}: ${e.message}`);
      return 3;
    }
    const outcome = outcomeOfError(plan, cli.out, e);
    reporter.runEnd({ label: outcome.label, status: outcome.status, detail: outcome.detail });
    console.log(OUTCOME_PREFIX + JSON.stringify(outcome));
    return 1;
  } finally {
    Deno.removeSignalListener("SIGTERM", onTerm);
    (suite.backend as { close?: () => void }).close?.();
  }
}
