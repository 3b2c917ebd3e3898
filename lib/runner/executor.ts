/**
 * Executors: how the runs of a sweep get executed once the CLI has expanded and planned them.
 * `local` runs them on this machine (in this process, or in `--jobs N` worker processes of the
 * suite's entry script); `slurm` submits them to the cluster's scheduler as one job array
 * (lib/runner/slurm.ts) and returns — the results store is the contract either way.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { CliOptions } from "./cli.ts";
import type { Reporter } from "./progress.ts";
import { executeRun, type RunPlan } from "./run.ts";
import { submit } from "./slurm.ts";
import { UsageError } from "./usage.ts";

/** What an executor is given besides the plans. */
export interface ExecutorContext {
  cli: CliOptions;
  /** Absolute path of the results store. */
  root: string;
  backend: Backend;
  backendReason: string;
  reporter: Reporter;
  codeVersion: string;
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
  /** Execute or submit `plans`; returns how many failed here. */
  execute(plans: RunPlan[], context: ExecutorContext): Promise<number>;
}

/** This machine: in process, or in `--jobs` worker processes. */
export const localExecutor: Executor = {
  name: "local",
  completesRuns: true,
  async execute(plans, ctx) {
    const { cli, reporter } = ctx;
    if (cli.jobs > 1 && ctx.scriptUrl && plans.length > 0) {
      return await runParallel(plans, cli, ctx.scriptUrl, reporter);
    }
    let failed = 0;
    for (const [i, plan] of plans.entries()) {
      try {
        await executeRun(plan, {
          root: cli.out,
          backend: ctx.backend,
          backendReason: ctx.backendReason,
          reporter,
          codeVersion: ctx.codeVersion,
          index: i + 1,
          count: plans.length,
        });
      } catch (e) {
        failed++;
        reporter.runEnd({
          label: `${plan.experiment}/${plan.variant}/seed-${plan.seed}`,
          status: "failed",
          detail: (e as Error).message,
        });
      }
    }
    return failed;
  },
};

/** The cluster's Slurm: one job array of the pending runs (see lib/runner/slurm.ts). */
export const slurmExecutor: Executor = {
  name: "slurm",
  completesRuns: false,
  async execute(plans, ctx) {
    const { cli, root, reporter } = ctx;
    if (!ctx.scriptUrl) {
      throw new UsageError("--executor slurm needs the suite's entry script (experiments/main.ts)");
    }
    const result = await submit(plans, {
      ...cli.slurm,
      root,
      script: new URL(ctx.scriptUrl).pathname,
      args: ["--out", root, "--budget", cli.budget, "--backend", cli.backend],
      permissions: [
        "--allow-read=.",
        `--allow-write=${root}`,
        "--allow-env=NO_COLOR,XDG_RUNTIME_DIR",
      ],
    });
    reporter.log(
      result.arrayJobId === null
        ? `nothing to submit: ${result.skippedDone.length} done, ${result.skippedQueued.length} queued`
        : `submitted ${result.submitted.length} runs as Slurm job array ${result.arrayJobId} ` +
          `(${result.skippedDone.length} done, ${result.skippedQueued.length} already queued); ` +
          `follow with --status, logs in each run's slurm.log`,
    );
    return 0;
  },
};

/** The executors by `--executor` name. */
export const EXECUTORS: Readonly<Record<"local" | "slurm", Executor>> = {
  local: localExecutor,
  slurm: slurmExecutor,
};

/** Run plans in `cli.jobs` worker processes of this script (`--run-id`), reporting as they end. */
async function runParallel(
  plans: RunPlan[],
  cli: CliOptions,
  scriptUrl: string,
  reporter: Reporter,
): Promise<number> {
  let next = 0, failed = 0, finished = 0; // returns the number of failed runs
  const worker = async () => {
    while (next < plans.length) {
      const plan = plans[next++];
      const label = `${plan.experiment}/${plan.variant}/seed-${plan.seed}`;
      const args = [
        "run",
        "--quiet",
        "--allow-read=.",
        `--allow-write=${cli.out}`,
        "--allow-env=NO_COLOR,XDG_RUNTIME_DIR",
        new URL(scriptUrl).pathname,
        "--run-id",
        plan.id,
        "--out",
        cli.out,
        "--budget",
        cli.budget,
        "--backend",
        cli.backend,
      ];
      const out = await new Deno.Command("deno", {
        args,
        stdout: "piped",
        stderr: "piped",
      }).output();
      finished++;
      if (out.code === 0) {
        reporter.runEnd({ label, status: "done", detail: `${finished}/${plans.length}` });
      } else {
        failed++;
        const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
        reporter.runEnd({ label, status: "failed", detail: tail });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cli.jobs, plans.length) }, worker));
  return failed;
}
