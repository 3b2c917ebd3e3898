/**
 * `deno task experiments`: the command line over the runner. Expands the chosen experiments
 * into runs (variants × seeds), skips finished ones, resumes interrupted ones, shows progress,
 * and runs several at once in worker processes with `--jobs`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Backend } from "../backend/backend.ts";
import { BACKEND_CHOICES, type BackendChoiceName, chooseBackend } from "../backend/mod.ts";
import { closestName } from "../dsl/errors.ts";
import type { RunSpec } from "../dsl/experiment.ts";
import { type Reporter, TerminalReporter } from "./progress.ts";
import { executeRun, loadTokens, type RunPlan } from "./run.ts";
import { isStudy, type Study, type SuiteEntry } from "./study.ts";
import { UsageError } from "./usage.ts";
import { cancel, checkTime, queuedJobs, runStates, type SlurmOptions } from "./slurm.ts";
import { type ExecutorContext, EXECUTORS } from "./executor.ts";
import { StoppedError } from "../train/trainer.ts";
import { verdictLines } from "../report/claims.ts";
import { listExperiments, loadResults } from "../report/results.ts";

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
}

export { UsageError };

/** Parse and check `args` (every bad value names the flag, the value and what is allowed). */
export function parseCli(args: string[]): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
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
      ];
      const near = closestName(m[1], known);
      throw new UsageError(`Unknown option '${m[1]}'${near ? `: did you mean '${near}'?` : ""}`);
    }
    throw new UsageError((e as Error).message);
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
  return {
    only: values.only ? values.only.split(",").map((s) => s.trim()).filter((s) => s !== "") : [],
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
  };
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
    const [exp, variant] = item.split("/");
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

/** The checked-out commit, read from `.git` (no subprocess), or `"unknown"`. */
export async function codeVersion(): Promise<string> {
  try {
    const head = (await Deno.readTextFile(".git/HEAD")).trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    try {
      return (await Deno.readTextFile(`.git/${ref}`)).trim();
    } catch {
      const packed = await Deno.readTextFile(".git/packed-refs");
      return packed.split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0] ?? "unknown";
    }
  } catch {
    return "unknown";
  }
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

/** The runner's plan for a DSL run. */
export function planOf(spec: RunSpec): RunPlan {
  if (spec.data.kind !== "brown") {
    throw new UsageError(
      `Cannot run ${spec.experiment}/${spec.variant}: the runner trains on the Brown corpus; ` +
        `synthetic '${spec.data.kind}' data is for the RL tasks (#11)`,
    );
  }
  const steps = Math.max(1, spec.train.steps);
  return {
    id: spec.id,
    experiment: spec.experiment,
    variant: spec.variant,
    seed: spec.seed,
    model: spec.model,
    data: { corpus: "brown", tokenizer: spec.data.tokenizer, valEvery: spec.data.valEvery },
    train: {
      steps,
      batch: spec.train.batch,
      lr: spec.train.lr,
      minLr: spec.train.minLr,
      warmup: Math.min(spec.train.warmup, Math.max(0, steps - 1)),
      weightDecay: spec.train.weightDecay,
      gradClip: spec.train.gradClip,
      accumulate: spec.train.accumulate,
      checkpointEvery: spec.train.checkpointEvery > 0
        ? spec.train.checkpointEvery
        : Math.max(1, Math.ceil(steps / 10)),
      evalBatches: 8,
      mtpLambdaSchedule: spec.train.mtpLambdaSchedule,
    },
    eval: spec.eval,
  };
}

/** Run the CLI; returns the exit code. */
export async function main(
  args: string[],
  experiments: readonly SuiteEntry[],
  options: {
    reporter?: Reporter;
    scriptUrl?: string;
    /** Called once after every selected run finished here (not for --list, --run-id). */
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
    await checkWritable(cli.out);
    const { backend, reason } = await chooseBackend(cli.backend);
    if (cli.runId === null) reporter.log(`backend: ${backend.description} (${reason})`);
    const version = await codeVersion();
    const specs: RunSpec[] = [];
    const studies: { study: Study; variants: string[] | undefined }[] = [];
    for (const { experiment, variants } of selected) {
      if (isStudy(experiment)) {
        studies.push({ study: experiment, variants });
        continue;
      }
      const d = experiment.data;
      const dataHash = d.kind === "brown"
        ? (await loadTokens({ corpus: "brown", tokenizer: d.tokenizer, valEvery: d.valEvery })).hash
        : undefined;
      const backendName = backend.description;
      specs.push(
        ...experiment.expand({
          budget: cli.budget,
          only: variants,
          codeVersion: version,
          backend: backendName,
          dataHash,
        }),
      );
    }
    const plans = specs.map(planOf);
    if (cli.runId !== null) {
      const plan = plans.find((p) => p.id === cli.runId);
      if (plan === undefined) throw new UsageError(`Unknown run id '${cli.runId}'`);
      // A scheduler's SIGTERM (scancel, preemption, time limit): checkpoint, then exit.
      let stop = false;
      const onTerm = () => (stop = true);
      Deno.addSignalListener("SIGTERM", onTerm);
      try {
        await executeRun(plan, {
          root: cli.out,
          backend,
          backendReason: reason,
          reporter,
          codeVersion: version,
          index: 1,
          count: 1,
          shouldStop: () => stop,
        });
      } catch (e) {
        if (e instanceof StoppedError) {
          reporter.log(`${plan.experiment}/${plan.variant}/seed-${plan.seed}: ${e.message}`);
          return 3;
        }
        throw e;
      } finally {
        Deno.removeSignalListener("SIGTERM", onTerm);
      }
      return 0;
    }
    const root = cli.out.startsWith("/") ? cli.out : `${Deno.cwd()}/${cli.out}`;
    if (cli.status) {
      let queue: Map<string, string> | undefined;
      try {
        queue = await queuedJobs();
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        queue = new Map(); // no Slurm here: the store alone
      }
      for (const s of await runStates(cli.out, plans, undefined, queue)) {
        reporter.log(`${s.state.padEnd(13)} ${s.label}${s.detail ? `  ${s.detail}` : ""}`);
      }
      // the claims' verdicts from what the store holds so far
      const stored = await listExperiments(cli.out);
      const results = await Promise.all(stored.map((name) => loadResults(cli.out, name)));
      for (const line of verdictLines(results)) reporter.log(`claim         ${line}`);
      return 0;
    }
    if (cli.cancel) {
      const ids = await cancel(cli.out, plans);
      reporter.log(ids.length === 0 ? "no queued jobs to cancel" : `cancelled ${ids.join(", ")}`);
      return 0;
    }
    const executor = EXECUTORS[cli.executor];
    const context: ExecutorContext = {
      cli,
      root,
      backend,
      backendReason: reason,
      reporter,
      codeVersion: version,
      scriptUrl: options.scriptUrl,
    };
    if (!executor.completesRuns) {
      const failedHere = await executor.execute(plans, context);
      if (studies.length > 0) {
        reporter.log(
          `studies run on this machine, not through ${executor.name}: ${
            studies.map((s) => s.study.name).join(", ")
          } (run them with --executor local)`,
        );
      }
      return failedHere === 0 ? 0 : 1;
    }
    reporter.log(
      `${plans.length} runs${
        studies.length > 0 ? ` + ${studies.length} studies` : ""
      } (${cli.budget} budget) → ${cli.out}/`,
    );
    let failed = await executor.execute(plans, context);
    for (const { study, variants } of studies) {
      const label = `${study.name} (study)`;
      try {
        await study.run({
          budget: cli.budget,
          dir: `${cli.out}/${study.name}`,
          variants,
          backend,
          backendReason: reason,
          reporter,
          codeVersion: version,
        });
        reporter.runEnd({ label, status: "done", detail: `${cli.out}/${study.name}/` });
      } catch (e) {
        failed++;
        reporter.runEnd({ label, status: "failed", detail: (e as Error).message });
      }
    }
    closeBackend(backend);
    const total = specs.length + studies.length;
    reporter.log(
      failed === 0 ? "all runs done" : `${failed} of ${total} runs failed (rerun to retry)`,
    );
    if (failed === 0 && options.afterRuns) await options.afterRuns(cli, reporter);
    return failed === 0 ? 0 : 1;
  } catch (e) {
    console.error((e as Error).message);
    return e instanceof UsageError ? 2 : 1;
  }
}

function closeBackend(backend: Backend): void {
  (backend as { close?: () => void }).close?.();
}
