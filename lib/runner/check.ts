/**
 * Store integrity: when a run is done, and what to do with one that was interrupted or damaged.
 *
 * A run is done only when it is consistent: `manifest.json`, written last and atomically, holds
 * the run's id, the number of metric lines and their hash, the final checkpoint's file digests
 * and the summary's hash, and every one of them still matches the files. {@linkcode checkRun}
 * (before a run is skipped or resumed, and for every selected run with `--check`) validates a
 * run and repairs what it can, with one message per repair:
 *
 * - a torn last line of `metrics.jsonl` (from a kill, or damage) is cut;
 * - a damaged checkpoint (a file whose size or SHA-256 differs from what its `state.json`
 *   recorded) falls back to the previous valid one (the last two are kept);
 * - the run resumes from the newest valid checkpoint whose step the metrics history reaches, so
 *   the history before it is never rewritten and the steps after it are trained again (bit for
 *   bit the same: resuming is exact);
 * - otherwise the run restarts, and the damaged files move to `<store>/.superseded/` with a
 *   `REASON.txt`.
 *
 * A summary without a valid manifest is not a result: the run is evaluated again from its final
 * checkpoint. A run that diverged keeps `failure.json` and is not retrained with the same id
 * (it would diverge the same way).
 *
 * @module
 */

import { checkpointCandidates, sha256Bytes, type ValidCheckpoint } from "../train/checkpoint.ts";
import { identityChanges, type RunIdentity } from "./identity.ts";
import { lockPath, RunLock, RunLockedError } from "./lock.ts";
import type { RunSummary } from "./run.ts";
import { exists, parseMetrics, runPaths, writeJsonAtomic, writeTextAtomic } from "./store.ts";

/** What `manifest.json` holds. */
export interface Manifest {
  id: string;
  steps: number;
  metrics: { lines: number; sha256: string };
  checkpoint: { step: number; files: Record<string, string> };
  summary: { sha256: string };
  /** ISO time the run was sealed. */
  sealed: string;
}

/** What `failure.json` holds. */
export interface FailureRecord {
  id: string;
  status: "failed" | "diverged";
  /** The step that diverged, for `diverged`. */
  step?: number;
  reason: string;
  /** ISO time. */
  at: string;
}

/** The run fields {@linkcode checkRun} needs. */
export interface CheckedRun {
  id: string;
  experiment: string;
  variant: string;
  seed: number;
  train: { steps: number };
}

/** What {@linkcode checkRun} found (after its repairs). */
export interface RunCheck {
  /**
   * `done`: sealed and consistent; `resumable`: continue at `step` (the final step: evaluate
   * only); `empty`: nothing to keep, start from step 0; `diverged`: stopped by divergence.
   */
  state: "done" | "resumable" | "empty" | "diverged";
  /** The checkpoint step to resume at (0 when empty). */
  step: number;
  /** The summary, when done. */
  summary: RunSummary | null;
  /** The failure record, when diverged. */
  failure: FailureRecord | null;
  /** One line per repair made. */
  actions: string[];
}

const text = async (path: string): Promise<string | null> =>
  await Deno.readTextFile(path).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  });

const sha = (s: string) => sha256Bytes(new TextEncoder().encode(s));

function parseJson<T>(s: string | null): T | null | undefined {
  if (s === null) return null;
  try {
    return JSON.parse(s) as T;
  } catch {
    return undefined; // unreadable
  }
}

/**
 * Move `names` (files or directories of the run) to
 * `<root>/.superseded/<experiment>/<variant>/seed-<n>-<tag>-<time>/` with a `REASON.txt`.
 *
 * @param root The store.
 * @param run The run's names.
 * @param names Entries of the run's directory to move (missing ones are skipped).
 * @param tag A word for the directory name (`damaged`, `diverged`).
 * @param reason Why, written to `REASON.txt`.
 * @returns The directory they went to.
 */
export async function moveAside(
  root: string,
  run: { experiment: string; variant: string; seed: number },
  names: readonly string[],
  tag: string,
  reason: string,
): Promise<string> {
  const { dir } = runPaths(root, run.experiment, run.variant, run.seed);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const aside =
    `${root}/.superseded/${run.experiment}/${run.variant}/seed-${run.seed}-${tag}-${stamp}`;
  await Deno.mkdir(aside, { recursive: true });
  for (const name of names) {
    await Deno.rename(`${dir}/${name}`, `${aside}/${name}`).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  await writeTextAtomic(`${aside}/REASON.txt`, `${new Date().toISOString()}: ${reason}\n`);
  return aside;
}

/**
 * Seal a finished run: write `manifest.json` (last, atomically) from the files on disk.
 *
 * @param root The store.
 * @param run The run.
 * @returns The manifest.
 * @throws When the metrics, summary or final checkpoint are not complete.
 */
export async function sealRun(root: string, run: CheckedRun): Promise<Manifest> {
  const paths = runPaths(root, run.experiment, run.variant, run.seed);
  const label = `${run.experiment}/${run.variant}/seed-${run.seed}`;
  const metrics = (await text(paths.metrics)) ?? "";
  const parsed = parseMetrics(metrics);
  const steps = run.train.steps;
  if (parsed.problem !== null || parsed.records.length !== steps) {
    throw new Error(
      `Cannot seal ${label}: metrics.jsonl holds ${parsed.records.length} intact steps of ${steps}`,
    );
  }
  const summary = await text(paths.summary);
  if (summary === null) throw new Error(`Cannot seal ${label}: summary.json is missing`);
  const { valid } = await checkpointCandidates(paths.checkpoint);
  const final = valid.find((c) => c.dir === paths.checkpoint && c.step === steps);
  if (final === undefined) {
    throw new Error(`Cannot seal ${label}: the checkpoint of step ${steps} is missing or damaged`);
  }
  const manifest: Manifest = {
    id: run.id,
    steps,
    metrics: { lines: steps, sha256: await sha(metrics) },
    checkpoint: { step: steps, files: digests(final) },
    summary: { sha256: await sha(summary) },
    sealed: new Date().toISOString(),
  };
  await writeJsonAtomic(paths.manifest, manifest);
  return manifest;
}

function digests(c: ValidCheckpoint): Record<string, string> {
  return Object.fromEntries(Object.entries(c.files).map(([k, v]) => [k, v.sha256]));
}

/**
 * Whether the manifest, metrics and summary of a run agree (what the report checks before it
 * shows a run; the checkpoint is left to {@linkcode checkRun}).
 *
 * @param root The store.
 * @param run The run's names (and, optionally, its expected id).
 * @returns `null` when sealed and consistent, else why not.
 */
export async function sealProblem(
  root: string,
  run: { experiment: string; variant: string; seed: number; id?: string },
): Promise<string | null> {
  const paths = runPaths(root, run.experiment, run.variant, run.seed);
  const manifest = parseJson<Manifest>(await text(paths.manifest));
  if (manifest === null) return "not sealed (no manifest.json: unfinished, or killed before)";
  if (manifest === undefined) return "manifest.json is unreadable";
  if (run.id !== undefined && manifest.id !== run.id) return "manifest.json is of another id";
  const metrics = await text(paths.metrics);
  if (metrics === null) return "metrics.jsonl is missing";
  if (await sha(metrics) !== manifest.metrics.sha256) {
    const { records, problem } = parseMetrics(metrics);
    return `metrics.jsonl differs from the manifest (${
      problem ? `line ${problem.line} ${problem.what}` : `${records.length} lines`
    }, sealed with ${manifest.metrics.lines})`;
  }
  const summary = await text(paths.summary);
  if (summary === null) return "summary.json is missing";
  if (await sha(summary) !== manifest.summary.sha256) {
    return "summary.json differs from the manifest";
  }
  return null;
}

/** Options of {@linkcode checkRun}. */
export interface CheckOptions {
  /** Make the repairs (else only report what is wrong). @default {true} */
  repair?: boolean;
}

/**
 * Validate a run of the store and repair what can be repaired (see the module doc). The caller
 * holds the run's lock and has checked that `config.json` is of this run's id.
 *
 * @param root The store.
 * @param run The run (its id and step count).
 * @param options Whether to repair.
 * @returns The run's state after the repairs, and one line per repair.
 */
export async function checkRun(
  root: string,
  run: CheckedRun,
  options: CheckOptions = {},
): Promise<RunCheck> {
  const repair = options.repair ?? true;
  const paths = runPaths(root, run.experiment, run.variant, run.seed);
  const actions: string[] = [];
  const result = (
    state: RunCheck["state"],
    step: number,
    summary: RunSummary | null = null,
    failure: FailureRecord | null = null,
  ): RunCheck => ({ state, step, summary, failure, actions });
  if (!(await exists(paths.dir))) return result("empty", 0);
  // 1) an earlier failure
  const failure = parseJson<FailureRecord>(await text(paths.failure));
  if (failure?.status === "diverged" && failure.id === run.id) {
    return result("diverged", failure.step ?? 0, null, failure);
  }
  if (failure !== null) {
    actions.push(
      failure === undefined
        ? "removed an unreadable failure.json"
        : `retrying after an earlier failure (${failure.reason})`,
    );
    if (repair) await Deno.remove(paths.failure);
  }
  // 2) the metrics history
  const metricsText = (await text(paths.metrics)) ?? "";
  const parsed = parseMetrics(metricsText);
  const history = parsed.records.length; // steps 1..history are intact
  const problem = parsed.problem;
  if (problem?.last) {
    actions.push(`cut a torn last line (line ${problem.line} ${problem.what}) from metrics.jsonl`);
    if (repair) {
      await writeTextAtomic(
        paths.metrics,
        parsed.records.map((r) => JSON.stringify(r)).join("\n") + (history > 0 ? "\n" : ""),
      );
    }
  }
  // 3) done?
  const summaryText = await text(paths.summary);
  const manifestText = await text(paths.manifest);
  const manifest = parseJson<Manifest>(manifestText);
  const { valid, damaged } = await checkpointCandidates(paths.checkpoint);
  const notDone: string[] = [];
  if (manifest !== null) {
    if (manifest === undefined) notDone.push("manifest.json is unreadable");
    else if (manifest.id !== run.id) notDone.push("manifest.json is of another id");
    else {
      if (problem !== null || history !== manifest.metrics.lines) {
        notDone.push(
          `metrics.jsonl holds ${history} intact steps${
            problem ? ` (line ${problem.line} ${problem.what})` : ""
          }, sealed with ${manifest.metrics.lines}`,
        );
      } else if (await sha(metricsText) !== manifest.metrics.sha256) {
        notDone.push("metrics.jsonl differs from the sealed one");
      }
      if (summaryText === null) notDone.push("summary.json is missing");
      else if (await sha(summaryText) !== manifest.summary.sha256) {
        notDone.push("summary.json differs from the sealed one");
      }
      const final = valid.find((c) => c.dir === paths.checkpoint);
      const want = manifest.checkpoint;
      if (
        final === undefined || final.step !== want.step ||
        Object.entries(want.files).some(([k, v]) => digests(final)[k] !== v)
      ) {
        const bad = damaged.find((d) => d.dir === paths.checkpoint);
        notDone.push(`the final checkpoint ${bad ? `is damaged (${bad.reason})` : "differs"}`);
      }
      if (notDone.length === 0 && summaryText !== null) {
        return result("done", manifest.steps, JSON.parse(summaryText) as RunSummary);
      }
    }
  }
  // 4) not done: the newest valid checkpoint the history reaches
  const usable = valid.filter((c) => c.step <= history);
  const ahead = valid.filter((c) => c.step > history);
  const aside: string[] = [], reasons: string[] = [...notDone];
  for (const d of damaged) {
    if (d.dir === `${paths.checkpoint}.next`) {
      // a save that a kill interrupted: not data, nothing to keep
      actions.push(`removed an unfinished checkpoint save (checkpoint.next: ${d.reason})`);
      if (repair) await Deno.remove(d.dir, { recursive: true });
      continue;
    }
    aside.push(d.dir.slice(paths.dir.length + 1));
    reasons.push(`${d.dir.slice(paths.dir.length + 1)}: ${d.reason}`);
  }
  for (const c of ahead) {
    aside.push(c.dir.slice(paths.dir.length + 1));
    reasons.push(
      `${c.dir.slice(paths.dir.length + 1)} (step ${c.step}) is ahead of the metrics history, ` +
        `which is intact to step ${history}${
          problem && !problem.last ? ` (line ${problem.line} ${problem.what})` : ""
        }`,
    );
  }
  const sealed = manifest !== null;
  if (summaryText !== null || sealed) {
    if (sealed) {
      aside.push("summary.json", "manifest.json");
    } else {
      actions.push("removed summary.json written without a manifest (killed before sealing)");
      if (repair) await Deno.remove(paths.summary).catch(() => {});
    }
  }
  const best = usable[0];
  if (best === undefined && aside.length === 0) {
    // killed before its first checkpoint: the log is regenerated from step 0
    if (history > 0 || problem !== null) {
      actions.push("restarted from step 0 (killed before its first checkpoint)");
      if (repair) await Deno.remove(paths.metrics).catch(() => {});
    }
    return result("empty", 0);
  }
  if (best === undefined) {
    const why = reasons.length > 0
      ? reasons.join("; ")
      : `no valid checkpoint the metrics history (${history} steps) reaches`;
    const names = [
      "metrics.jsonl",
      "summary.json",
      "manifest.json",
      ...["", ".next", ".prev", ".old"].map((s) => `checkpoint${s}`),
    ];
    if (repair) {
      const to = await moveAside(root, run, names, "damaged", `restarted: ${why}`);
      actions.push(`restarted from step 0 (${why}); the damaged files went to ${to}`);
    } else {
      actions.push(`must restart from step 0 (${why})`);
    }
    return result("empty", 0);
  }
  if (repair && aside.length > 0) {
    const to = await moveAside(root, run, aside, "damaged", reasons.join("; "));
    actions.push(`moved ${aside.join(", ")} to ${to} (${reasons.join("; ")})`);
  } else if (aside.length > 0) {
    actions.push(`would move ${aside.join(", ")} aside (${reasons.join("; ")})`);
  }
  // Normalise: the resume point at checkpoint/, the next usable one at checkpoint.prev/.
  if (repair) {
    const prev = usable[1];
    const rel = (d: string) => d.slice(paths.dir.length + 1);
    if (best.dir !== paths.checkpoint) {
      const tmp = `${paths.checkpoint}.resume-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.rename(best.dir, tmp);
      if (prev !== undefined && prev.dir !== `${paths.checkpoint}.prev`) {
        await Deno.remove(`${paths.checkpoint}.prev`, { recursive: true }).catch(() => {});
        await Deno.rename(prev.dir, `${paths.checkpoint}.prev`);
      }
      await Deno.remove(paths.checkpoint, { recursive: true }).catch(() => {});
      await Deno.rename(tmp, paths.checkpoint);
      actions.push(`resuming from ${rel(best.dir)} (step ${best.step})`);
    }
    for (const s of [".next", ".old"]) {
      await Deno.remove(`${paths.checkpoint}${s}`, { recursive: true }).catch(() => {});
    }
  }
  if (problem !== null && !problem.last) {
    actions.push(
      `metrics.jsonl line ${problem.line} ${problem.what}: the steps after the checkpoint ` +
        `(${best.step}) are trained again`,
    );
  }
  return result("resumable", best.step);
}

/** One line of `--check`. */
export interface CheckLine {
  label: string;
  /** `ok` (nothing to repair), `repaired`, `changed` (another id; left alone), `locked`, `diverged`. */
  verdict: "ok" | "repaired" | "changed" | "locked" | "diverged";
  /** The run's state and what was done. */
  detail: string;
}

/**
 * `deno task experiments --check`: validate and repair every run of `plans` under its lock,
 * training nothing.
 *
 * @param root The store.
 * @param plans The selected runs (with their identities).
 * @returns One line per run.
 */
export async function checkStore(
  root: string,
  plans: readonly (CheckedRun & { identity?: RunIdentity })[],
): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  for (const plan of plans) {
    const label = `${plan.experiment}/${plan.variant}/seed-${plan.seed}`;
    let lock: RunLock;
    try {
      lock = await RunLock.acquire(lockPath(root, plan), label);
    } catch (e) {
      if (!(e instanceof RunLockedError)) throw e;
      lines.push({ label, verdict: "locked", detail: e.message });
      continue;
    }
    try {
      const paths = runPaths(root, plan.experiment, plan.variant, plan.seed);
      const config = parseJson<{ id: string; identity?: RunIdentity }>(await text(paths.config));
      if (config === undefined) {
        lines.push({
          label,
          verdict: "changed",
          detail: "config.json is unreadable: the next run moves the run's files aside and " +
            "starts it again",
        });
        continue;
      }
      if (config !== null && config.id !== plan.id) {
        const changes = plan.identity === undefined
          ? [`id ${config.id.slice(0, 12)} → ${plan.id.slice(0, 12)}`]
          : identityChanges(config.identity, plan.identity);
        lines.push({
          label,
          verdict: "changed",
          detail: `stored under another id (${changes.join("; ")}); left as it is`,
        });
        continue;
      }
      const check = await checkRun(root, plan);
      const state = check.state === "done"
        ? `done (${check.step} steps)`
        : check.state === "resumable"
        ? `resumable at step ${check.step} of ${plan.train.steps}`
        : check.state === "diverged"
        ? `diverged: ${check.failure?.reason}`
        : "not started";
      lines.push({
        label,
        verdict: check.state === "diverged"
          ? "diverged"
          : check.actions.length > 0
          ? "repaired"
          : "ok",
        detail: [...check.actions, state].join("; "),
      });
    } finally {
      await lock.release();
    }
  }
  return lines;
}
