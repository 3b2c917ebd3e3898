/**
 * Executors: how the runs of a sweep get executed once `runExperiments` has planned them.
 * `local` runs them on this machine (in this process, or in `jobs` worker processes of the
 * suite's entry script); `slurm` submits them to the cluster's scheduler as one job array
 * (lib/runner/slurm.ts) and returns — the results store is the contract either way.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { BackendChoiceName } from "../backend/mod.ts";
import type { Budget } from "../dsl/train.ts";
import type { Reporter } from "./progress.ts";
import { executeRun, RunChangedError, type RunOutcome } from "./execute.ts";
import { runLabel, type RunPlan, type RunSummary } from "./run.ts";
import { DivergedError, StoppedError } from "../train/trainer.ts";
import { RunLockedError } from "./lock.ts";
import { type SlurmOptions, submit } from "./slurm.ts";
import { readJson, runPaths } from "./store.ts";
import { UsageError } from "./usage.ts";

/** What an executor is given besides the plans. */
export interface ExecutorOptions {
  /** The results store (as given: workers and Slurm tasks receive it as `--out`). */
  root: string;
  budget: Budget;
  /** The backend choice workers and tasks make again (`--backend`). */
  backendChoice: BackendChoiceName;
  /** Worker processes for the local executor. */
  jobs: number;
  /** Scheduler options for the Slurm executor. */
  slurm: SlurmOptions;
  /** The backend runs in this process use. */
  backend: Backend;
  backendReason: string;
  reporter: Reporter;
  /** See `RunExperimentsOptions.onChanged`. */
  onChanged: "supersede" | "stop";
  /** The checkout's commit (provenance, stored in `config.json`). */
  commit: string | null;
  /** The suite's entry script (for worker processes and scheduler tasks). */
  scriptUrl?: string;
}

/** One way to execute runs. */
export interface Executor {
  readonly name: "local" | "slurm";
  /**
   * Whether the runs are finished when {@linkcode Executor.execute} returns (local) or only
   * handed over (slurm): studies, the report and the notebooks follow only in the first case.
   */
  readonly completesRuns: boolean;
  /** Execute or submit `plans`; returns one outcome per plan, in order. */
  execute(plans: RunPlan[], options: ExecutorOptions): Promise<RunOutcome[]>;
}

function baseOutcome(plan: RunPlan, root: string) {
  return {
    label: runLabel(plan),
    experiment: plan.experiment,
    variant: plan.variant,
    seed: plan.seed,
    dir: runPaths(root, plan.experiment, plan.variant, plan.seed).dir,
  };
}

/**
 * The outcome of a run that threw: diverged, changed (left alone), locked by another runner
 * (skipped), or failed.
 *
 * @param plan The run.
 * @param root The store.
 * @param error What `executeRun` threw.
 * @returns The outcome (its `detail` is the error's message).
 */
export function outcomeOfError(plan: RunPlan, root: string, error: unknown): RunOutcome {
  const detail = error instanceof Error ? error.message : String(error);
  const status = error instanceof DivergedError
    ? "diverged"
    : error instanceof RunChangedError
    ? "changed"
    : error instanceof RunLockedError
    ? "skipped"
    : "failed";
  return { ...baseOutcome(plan, root), status, detail, summary: null };
}

/** This machine: in process, or in `jobs` worker processes. */
export const localExecutor: Executor = {
  name: "local",
  completesRuns: true,
  async execute(plans, options) {
    const { reporter } = options;
    if (options.jobs > 1 && plans.length > 0) {
      if (!options.scriptUrl) {
        throw new UsageError(
          `Cannot run with jobs ${options.jobs}: worker processes need the suite's entry script`,
        );
      }
      return await runParallel(plans, options, options.scriptUrl);
    }
    const outcomes: RunOutcome[] = [];
    for (const [i, plan] of plans.entries()) {
      try {
        outcomes.push(
          await executeRun(plan, {
            root: options.root,
            backend: options.backend,
            backendReason: options.backendReason,
            reporter,
            commit: options.commit,
            onChanged: options.onChanged,
            index: i + 1,
            count: plans.length,
            shouldStop: reporter.shouldStop?.bind(reporter),
          }),
        );
      } catch (e) {
        // a requested stop (a notebook's interrupt) ends the sweep; the checkpoint is saved
        if (e instanceof StoppedError) throw e;
        const outcome = outcomeOfError(plan, options.root, e);
        reporter.runEnd({ label: outcome.label, status: outcome.status, detail: outcome.detail });
        outcomes.push(outcome);
      }
    }
    return outcomes;
  },
};

/** The cluster's Slurm: one job array of the pending runs (see lib/runner/slurm.ts). */
export const slurmExecutor: Executor = {
  name: "slurm",
  completesRuns: false,
  async execute(plans, options) {
    const { root, reporter } = options;
    if (!options.scriptUrl) {
      throw new UsageError("--executor slurm needs the suite's entry script (experiments/main.ts)");
    }
    const absolute = root.startsWith("/") ? root : `${Deno.cwd()}/${root}`;
    const result = await submit(plans, {
      ...options.slurm,
      root: absolute,
      script: new URL(options.scriptUrl).pathname,
      args: [
        "--out",
        absolute,
        "--budget",
        options.budget,
        "--backend",
        options.backendChoice,
        "--on-changed",
        options.onChanged,
      ],
      permissions: [
        "--allow-read=.",
        `--allow-write=${absolute}`,
        "--allow-env=NO_COLOR,XDG_RUNTIME_DIR",
        "--allow-sys=hostname,systemMemoryInfo",
      ],
    });
    reporter.log(
      result.arrayJobId === null
        ? `nothing to submit: ${result.skippedDone.length} done, ${result.skippedQueued.length} queued`
        : `submitted ${result.submitted.length} runs as Slurm job array ${result.arrayJobId} ` +
          `(${result.skippedDone.length} done, ${result.skippedQueued.length} already queued); ` +
          `follow with --status, logs in each run's slurm.log`,
    );
    const status = (plan: RunPlan) =>
      result.skippedDone.includes(plan)
        ? "already done"
        : result.skippedDiverged.includes(plan)
        ? "diverged earlier with this configuration (see --status); not submitted"
        : result.skippedQueued.includes(plan)
        ? "already queued on Slurm"
        : `submitted as Slurm job ${result.arrayJobId}_${result.submitted.indexOf(plan)}`;
    return plans.map((plan) => ({
      ...baseOutcome(plan, absolute),
      status: "skipped" as const,
      detail: status(plan),
      summary: null,
    }));
  },
};

/** The executors by `--executor` name. */
export const EXECUTORS: Readonly<Record<"local" | "slurm", Executor>> = {
  local: localExecutor,
  slurm: slurmExecutor,
};

/** The line a `--run-id` worker prints last: its outcome as JSON. */
export const OUTCOME_PREFIX = "ABLATE_OUTCOME ";

/** Run plans in `jobs` worker processes of the entry script (`--run-id`), reporting as they end. */
async function runParallel(
  plans: RunPlan[],
  options: ExecutorOptions,
  scriptUrl: string,
): Promise<RunOutcome[]> {
  const { reporter } = options;
  const outcomes: RunOutcome[] = new Array(plans.length);
  let next = 0, finished = 0;
  const worker = async () => {
    while (next < plans.length) {
      const index = next++;
      const plan = plans[index];
      const label = runLabel(plan);
      const args = [
        "run",
        "--quiet",
        "--allow-read=.",
        `--allow-write=${options.root}`,
        "--allow-env=NO_COLOR,XDG_RUNTIME_DIR",
        "--allow-sys=hostname,systemMemoryInfo",
        new URL(scriptUrl).pathname,
        "--run-id",
        plan.id,
        "--out",
        options.root,
        "--budget",
        options.budget,
        "--backend",
        options.backendChoice,
        "--on-changed",
        options.onChanged,
      ];
      const out = await new Deno.Command("deno", {
        args,
        stdout: "piped",
        stderr: "piped",
      }).output();
      finished++;
      const stdout = new TextDecoder().decode(out.stdout).split("\n");
      const line = stdout.findLast((l) => l.startsWith(OUTCOME_PREFIX));
      let outcome: RunOutcome;
      if (line !== undefined) {
        outcome = JSON.parse(line.slice(OUTCOME_PREFIX.length)) as RunOutcome;
      } else {
        const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
        outcome = {
          ...baseOutcome(plan, options.root),
          status: "failed",
          detail: `worker exited with code ${out.code}${tail ? `: ${tail}` : ""}`,
          summary: null,
        };
      }
      if (outcome.summary === null && outcome.status === "done") {
        const paths = runPaths(options.root, plan.experiment, plan.variant, plan.seed);
        outcome.summary = await readJson<RunSummary>(paths.summary);
      }
      outcomes[index] = outcome;
      reporter.runEnd({
        label,
        status: outcome.status,
        detail: outcome.status === "done" ? `${finished}/${plans.length}` : outcome.detail,
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs, plans.length) }, worker));
  return outcomes;
}
