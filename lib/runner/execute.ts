/**
 * Executing one run in the store: 0) take the run's lock  1) move aside the results of another
 * id (or leave a finished one alone with `onChanged: "stop"`)  2) check and repair the run
 * (`check.ts`): skip it when done, resume from its newest valid checkpoint  3) compute it
 * (`run.ts`), logging every step  4) write `summary.json`, then `manifest.json`, which seals the
 * run as done. A run that diverges keeps its last healthy checkpoint and records why in
 * `failure.json`. This is bookkeeping: no number depends on it, so it is not part of run ids.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { checkpointCandidates } from "../train/checkpoint.ts";
import { DivergedError, StoppedError } from "../train/trainer.ts";
import { checkRun, type FailureRecord, moveAside, sealRun } from "./check.ts";
import { identityChanges, type RunIdentity } from "./identity.ts";
import { lockPath, RunLock } from "./lock.ts";
import { inJupyter, type Reporter, type RunStatus } from "./progress.ts";
import { computeRun, runLabel, type RunPlan, type RunSummary } from "./run.ts";
import {
  exists,
  MetricsLog,
  readJson,
  runPaths,
  writeJsonAtomic,
  writeTextAtomic,
} from "./store.ts";

/** How one run of a sweep ended (what `runExperiments` returns per run). */
export interface RunOutcome {
  /** `experiment/variant/seed-n`. */
  label: string;
  experiment: string;
  variant: string;
  seed: number;
  status: RunStatus;
  /** Why (for `failed`, `diverged`, `changed`) or a short result (`val loss 1.2345`). */
  detail: string;
  /** The run's summary when it is done (trained now or before). */
  summary: RunSummary | null;
  /** The run's directory in the store. */
  dir: string;
}

/**
 * Thrown with `onChanged: "stop"` when a finished run's id changed: the run is left as it is
 * and not trained; the message names what changed.
 */
export class RunChangedError extends Error {
  override name = "RunChangedError";
  /** The config fields or code files that changed. */
  readonly changes: string[];
  constructor(label: string, changes: string[]) {
    super(
      `${label} is finished but its id changed (${changes.join("; ")}): left as it is and not ` +
        `retrained; pass onChanged: "supersede" (--on-changed supersede) to move it to ` +
        `.superseded/ and train it again`,
    );
    this.changes = changes;
  }
}

/** Options for {@linkcode executeRun}. */
export interface ExecuteOptions {
  /** Store root (`runs`). */
  root: string;
  backend: Backend;
  /** Why the backend was chosen (stored with the config). */
  backendReason: string;
  reporter: Reporter;
  /** The checkout's commit, stored in `config.json` for provenance (never in the id). */
  commit?: string | null;
  /**
   * A finished run whose id changed: move it to `.superseded/` and train again, or leave it and
   * throw {@linkcode RunChangedError}. Unfinished runs are always moved aside. @default {"supersede"}
   */
  onChanged?: "supersede" | "stop";
  /** Position of this run in the experiment, for progress. */
  index: number;
  count: number;
  /** Checked after every step: `true` checkpoints and stops the run (`StoppedError`). */
  shouldStop?: () => boolean | Promise<boolean>;
}

/** What `config.json` holds. */
export interface StoredConfig {
  id: string;
  /** The id's components (absent in stores written before they were recorded). */
  identity?: RunIdentity;
  /** The hash of the run's source files (`identity.code.hash`). */
  codeVersion?: string;
  /** The checkout's commit when known (provenance only). */
  commit?: string | null;
  backend: string;
  backendReason: string;
  plan: Omit<RunPlan, "identity">;
}

/** Execute (or skip, or resume) one run; returns how it ended (done or skipped). */
export async function executeRun(plan: RunPlan, options: ExecuteOptions): Promise<RunOutcome> {
  const label = runLabel(plan);
  // 0) the run's lock: a second runner never trains the same run
  const lock = await RunLock.acquire(lockPath(options.root, plan), label, {
    reclaimOwn: inJupyter(), // a cell interrupted mid-run left it: the rerun takes it back
  });
  try {
    return await executeLocked(plan, options, lock);
  } finally {
    await lock.release();
  }
}

async function executeLocked(
  plan: RunPlan,
  options: ExecuteOptions,
  lock: RunLock,
): Promise<RunOutcome> {
  const { reporter, backend } = options;
  const paths = runPaths(options.root, plan.experiment, plan.variant, plan.seed);
  const label = runLabel(plan);
  const outcome = (status: RunStatus, detail: string, summary: RunSummary | null) => ({
    label,
    experiment: plan.experiment,
    variant: plan.variant,
    seed: plan.seed,
    status,
    detail,
    summary,
    dir: paths.dir,
  });
  // 1) the store: a run of another id is moved aside (or, finished with "stop", left alone)
  let stored: StoredConfig | null = null;
  try {
    stored = await readJson<StoredConfig>(paths.config);
  } catch (e) {
    const names = (await Array.fromAsync(Deno.readDir(paths.dir))).map((d) => d.name);
    const to = await moveAside(options.root, plan, names, "damaged", (e as Error).message);
    reporter.log(`${label}: ${(e as Error).message}; the run's files went to ${to}`);
  }
  if (stored !== null && stored.id !== plan.id) {
    const changes = plan.identity === undefined
      ? [`id ${stored.id.slice(0, 12)} → ${plan.id.slice(0, 12)}`]
      : identityChanges(stored.identity, plan.identity);
    const finished = await exists(paths.manifest) || await exists(paths.summary);
    if (finished && options.onChanged === "stop") throw new RunChangedError(label, changes);
    // The code, config, data or backend changed: the old results are kept, moved aside with
    // the reason, and this run starts fresh (their checkpoint would not be a valid start).
    const aside =
      `${options.root}/.superseded/${plan.experiment}/${plan.variant}/seed-${plan.seed}-${
        stored.id.slice(0, 12)
      }`;
    await Deno.mkdir(aside.slice(0, aside.lastIndexOf("/")), { recursive: true });
    await Deno.remove(aside, { recursive: true }).catch(() => {});
    await Deno.rename(paths.dir, aside);
    await writeTextAtomic(
      `${aside}/REASON.txt`,
      `Moved aside on ${new Date().toISOString()}: the run's id changed from ${stored.id} to ` +
        `${plan.id}:\n${changes.map((c) => `- ${c}`).join("\n")}\n`,
    );
    reporter.log(
      `${label}: id changed (${changes.join("; ")}); previous ${
        finished ? "" : "partial "
      }results moved to ${aside}`,
    );
  }
  // 2) check what is there, repair what can be repaired
  const check = await checkRun(options.root, plan);
  for (const action of check.actions) reporter.log(`${label}: ${action}`);
  if (check.state === "done" && check.summary !== null) {
    reporter.runEnd({ label, status: "skipped", detail: "already done" });
    return outcome("skipped", "already done", check.summary);
  }
  if (check.state === "diverged" && check.failure !== null) {
    // Training is deterministic: the same id diverges the same way again.
    const error = new DivergedError(check.failure.step ?? 0, "loss", NaN);
    error.message = `${check.failure.reason} [recorded ${check.failure.at}; not retrained: ` +
      `change the configuration, or delete ${paths.failure} to try again]`;
    throw error;
  }
  await Deno.mkdir(paths.dir, { recursive: true });
  const { identity, ...bare } = plan;
  const config: StoredConfig = {
    id: plan.id,
    identity,
    codeVersion: identity?.code.hash,
    commit: options.commit ?? null,
    backend: backend.description,
    backendReason: options.backendReason,
    plan: bare,
  };
  await writeJsonAtomic(paths.config, config);
  try {
    return await trainAndEvaluate(plan, options, lock, check.step, outcome);
  } catch (e) {
    if (e instanceof StoppedError) throw e; // resumable, not a failure
    if (e instanceof DivergedError) throw await recordDivergence(plan, options, e);
    const failure: FailureRecord = {
      id: plan.id,
      status: "failed",
      reason: (e as Error).message,
      at: new Date().toISOString(),
    };
    await writeJsonAtomic(paths.failure, failure).catch(() => {});
    throw e;
  }
}

/**
 * After a divergence at step `t`: the newest checkpoint is dropped when it holds the weights
 * of step `t − 1` (they produced the bad loss), so the one kept is the last whose next step was
 * healthy; `failure.json` records why, and the returned error says what to change.
 */
async function recordDivergence(
  plan: RunPlan,
  options: ExecuteOptions,
  e: DivergedError,
): Promise<DivergedError> {
  const paths = runPaths(options.root, plan.experiment, plan.variant, plan.seed);
  const { valid } = await checkpointCandidates(paths.checkpoint);
  let kept = valid[0];
  if (kept !== undefined && kept.step >= e.step - 1) {
    const rel = kept.dir.slice(paths.dir.length + 1);
    await moveAside(
      options.root,
      plan,
      [rel],
      "diverged",
      `${rel} holds the weights of step ${kept.step}, whose next step diverged: ${e.message}`,
    );
    kept = valid[1];
    if (kept !== undefined && kept.dir !== paths.checkpoint) {
      await Deno.rename(kept.dir, paths.checkpoint);
    }
  }
  const keptText = kept === undefined
    ? "no checkpoint before it was healthy, none is kept"
    : `the last healthy checkpoint (step ${kept.step}) is kept`;
  const error = new DivergedError(e.step, e.what, e.value, e.why, `${e.advice}; ${keptText}`);
  const failure: FailureRecord = {
    id: plan.id,
    status: "diverged",
    step: e.step,
    reason: error.message,
    at: new Date().toISOString(),
  };
  await writeJsonAtomic(paths.failure, failure);
  return error;
}

async function trainAndEvaluate(
  plan: RunPlan,
  options: ExecuteOptions,
  lock: RunLock,
  resumeStep: number,
  outcome: (status: RunStatus, detail: string, summary: RunSummary | null) => RunOutcome,
): Promise<RunOutcome> {
  const { reporter, backend } = options;
  const paths = runPaths(options.root, plan.experiment, plan.variant, plan.seed);
  const label = runLabel(plan);
  const { steps, checkpointEvery: every } = plan.train;
  // the log keeps its lines up to the checkpoint's step, unchanged
  const log = new MetricsLog(paths.metrics);
  await log.resumeAt(resumeStep);
  reporter.runStart({
    index: options.index,
    count: options.count,
    label,
    steps,
    fromStep: resumeStep,
    experiment: plan.experiment,
    variant: plan.variant,
    seed: plan.seed,
  });
  let summary: RunSummary;
  try {
    summary = await computeRun(plan, backend, {
      history: log.records,
      checkpointDir: paths.checkpoint,
      onRecord: async (record, m) => {
        log.add(record);
        reporter.step(m);
        // flushed where a checkpoint follows, so the log always reaches the checkpoint's step
        if ((every > 0 && m.step % every === 0) || m.step === steps) await log.flush();
        await lock.beat();
      },
      shouldStop: async () => {
        if (!(await options.shouldStop?.())) return false;
        await log.flush(); // the log must reach the checkpoint's step
        return true;
      },
      beforeEvaluate: async () => {
        await log.flush(); // exactly steps 1..n on disk, whatever the file held before
        await lock.beat(true);
      },
    });
  } catch (e) {
    if (e instanceof DivergedError) await log.flush(); // the losses up to it, for diagnosis
    throw e;
  }
  // done: the summary, then the manifest that seals the run
  await writeJsonAtomic(paths.summary, summary);
  await sealRun(options.root, plan);
  const detail = `val loss ${summary.metrics.valLoss?.toFixed(4) ?? "?"}`;
  reporter.runEnd({ label, status: "done", detail });
  return outcome("done", detail, summary);
}
