/**
 * The Slurm executor: hand the pending runs of a sweep to the cluster's scheduler as one job
 * array (`sbatch --array`), each task running one run through the suite's own entry point
 * (`--run-id`), with the results store on a shared filesystem as the contract between nodes:
 *
 * - finished runs (sealed by `manifest.json` with the run's id) and diverged ones are skipped;
 *   runs whose recorded job is still queued or running are not submitted twice; failed,
 *   cancelled or preempted ones are resubmitted and resume from their last checkpoint (each
 *   task takes the run's lock, so a run is never trained twice at once);
 * - each run's job is recorded in `<run dir>/slurm.json` and its output appended to
 *   `<run dir>/slurm.log` (`--open-mode=append`, so a requeued task keeps earlier output);
 * - on SIGTERM (scancel, preemption, the time limit) a run checkpoints at the next step and
 *   exits; `--requeue` lets Slurm restart it, and it resumes from that checkpoint.
 *
 * State comes from the store and `squeue` (no `sacct`: it needs slurmdbd, which small clusters
 * and CI lack).
 *
 * @module
 */

import { type FailureRecord, sealProblem } from "./check.ts";
import { lockPath, RunLock } from "./lock.ts";
import { readJson, runPaths, writeJsonAtomic } from "./store.ts";
import type { RunPlan } from "./run.ts";
import { UsageError } from "./usage.ts";

/** Scheduler options from the command line. */
export interface SlurmOptions {
  partition?: string;
  /** `HH:MM:SS`, `MM:SS`, `D-HH:MM:SS` or minutes. */
  time?: string;
  cpusPerTask?: number;
  gpusPerTask?: number;
}

/** What is recorded in `<run dir>/slurm.json`. */
export interface SlurmRecord {
  /** `<array job id>_<task index>`, as squeue shows it. */
  jobId: string;
  arrayJobId: string;
  task: number;
  submitted: string;
  runId: string;
}

/** Commands the executor runs (injectable for the error-path tests). */
export interface SlurmCommands {
  sbatch: string;
  squeue: string;
  scancel: string;
  sinfo: string;
}

/** The commands from PATH. */
export const SLURM_COMMANDS: SlurmCommands = {
  sbatch: "sbatch",
  squeue: "squeue",
  scancel: "scancel",
  sinfo: "sinfo",
};

const TIME = /^(\d+-)?\d{1,2}(:\d{2}){0,2}$|^\d+$/;

/** Check `--time` (Slurm's formats) with a message naming the value and what is allowed. */
export function checkTime(time: string): string {
  if (!TIME.test(time)) {
    throw new UsageError(
      `Invalid --time '${time}': expected HH:MM:SS, MM:SS, D-HH:MM:SS or minutes (e.g. 01:30:00)`,
    );
  }
  return time;
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ ok: boolean; out: string; err: string }> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `'${cmd}' not found: the Slurm executor needs Slurm's client commands on PATH ` +
          `(install slurm-wlm, or run with --executor local)`,
      );
    }
    if (e instanceof Deno.errors.NotCapable) {
      // deno.json's tasks allow Slurm's commands by path (a name missing from PATH would make
      // Deno print "Failed to resolve" at every start on machines without Slurm)
      throw new UsageError(
        `Cannot run '${cmd}': the tasks allow Slurm's commands in /usr/bin and /usr/local/bin ` +
          `only; add its path ('command -v ${cmd}') to --allow-run in deno.json`,
      );
    }
    throw e;
  }
  const dec = new TextDecoder();
  return { ok: output.success, out: dec.decode(output.stdout), err: dec.decode(output.stderr) };
}

/** Partitions `sinfo` knows (the default one without its `*`). */
export async function partitions(commands = SLURM_COMMANDS): Promise<string[]> {
  const r = await run(commands.sinfo, ["-h", "-o", "%P"]);
  if (!r.ok) throw new Error(`sinfo failed: ${r.err.trim()}`);
  return [...new Set(r.out.split("\n").map((l) => l.trim().replace(/\*$/, "")).filter(Boolean))];
}

/** Job ids (`<array>_<task>` for array tasks) in the queue, with their state (`R`, `PD`, ...). */
export async function queuedJobs(commands = SLURM_COMMANDS): Promise<Map<string, string>> {
  const r = await run(commands.squeue, ["-h", "-r", "-o", "%i %t"]);
  if (!r.ok) throw new Error(`squeue failed: ${r.err.trim()}`);
  const jobs = new Map<string, string>();
  for (const line of r.out.split("\n")) {
    const [id, state] = line.trim().split(/\s+/);
    if (id) jobs.set(id, state ?? "");
  }
  return jobs;
}

/** Nodes in the cluster (or in `partition`), from `sinfo`. */
export async function nodeCount(partition?: string, commands = SLURM_COMMANDS): Promise<number> {
  const r = await run(commands.sinfo, ["-h", "-o", "%D", ...(partition ? ["-p", partition] : [])]);
  if (!r.ok) throw new Error(`sinfo failed: ${r.err.trim()}`);
  return r.out.split("\n").map(Number).filter((n) => n > 0).reduce((a, b) => a + b, 0);
}

/**
 * The rule for "a path the nodes can see": on a cluster of more than one node, the store must
 * not be in a node-local temporary filesystem (`/tmp`, `/var/tmp`, `/dev/shm`, `/run`), which
 * each node has its own copy of. (A single-node cluster sees every path.)
 */
export function checkSharedPath(absolute: string, nodes: number): void {
  if (nodes <= 1) return;
  const local = ["/tmp", "/var/tmp", "/dev/shm", "/run"].find((p) =>
    absolute === p || absolute.startsWith(`${p}/`)
  );
  if (local) {
    throw new UsageError(
      `The results store '${absolute}' is under ${local}, which is local to each of the ${nodes} ` +
        `nodes: put ` +
        `--out on a filesystem every node mounts (e.g. the project directory or a shared home)`,
    );
  }
}

/** Where a run's Slurm record and log live. */
export function slurmPaths(root: string, plan: RunPlan): { record: string; log: string } {
  const { dir } = runPaths(root, plan.experiment, plan.variant, plan.seed);
  return { record: `${dir}/slurm.json`, log: `${dir}/slurm.log` };
}

/** A run's state for `--status`. */
export interface RunState {
  label: string;
  state: "done" | "running" | "pending" | "failed" | "diverged" | "not submitted";
  detail: string;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join(" | ");
}

/** Each plan's state from the store and the queue. */
export async function runStates(
  root: string,
  plans: RunPlan[],
  commands = SLURM_COMMANDS,
  queue?: Map<string, string>,
): Promise<RunState[]> {
  const jobs = queue ?? await queuedJobs(commands);
  const out: RunState[] = [];
  for (const plan of plans) {
    const paths = runPaths(root, plan.experiment, plan.variant, plan.seed);
    const label = `${plan.experiment}/${plan.variant}/seed-${plan.seed}`;
    if ((await sealProblem(root, plan)) === null) {
      const summary = await readJson<{ metrics: Record<string, number> }>(paths.summary);
      const v = summary?.metrics.valLoss;
      out.push({ label, state: "done", detail: v === undefined ? "" : `val loss ${v.toFixed(4)}` });
      continue;
    }
    const record = await readJson<SlurmRecord>(slurmPaths(root, plan).record).catch(() => null);
    const queued = record !== null && record.runId === plan.id && jobs.has(record.jobId);
    const failure = await readJson<FailureRecord>(paths.failure).catch(() => null);
    if (!queued && failure !== null && failure.id === plan.id) {
      out.push({ label, state: failure.status, detail: failure.reason });
      continue;
    }
    const owner = await RunLock.owner(lockPath(root, plan));
    if (!queued && owner !== null) {
      const age = Math.round((Date.now() - Date.parse(owner.heartbeat)) / 1000);
      out.push({
        label,
        state: "running",
        detail: `pid ${owner.pid} on ${owner.host}, heartbeat ${age} s ago`,
      });
      continue;
    }
    if (record === null || record.runId !== plan.id) {
      out.push({ label, state: "not submitted", detail: "" });
      continue;
    }
    const q = jobs.get(record.jobId);
    if (q !== undefined) {
      const lastLine = await Deno.readTextFile(paths.metrics).then(
        (t) => t.trimEnd().split("\n").pop() ?? "",
        () => "",
      );
      let detail = `job ${record.jobId}`;
      try {
        const m = JSON.parse(lastLine) as { step: number; tokensPerSec: number; tokens: number };
        const steps = plan.train.steps;
        const perStep = m.tokens / Math.max(m.step, 1);
        const eta = ((steps - m.step) * perStep) / Math.max(m.tokensPerSec, 1e-9);
        detail += `, step ${m.step}/${steps}, ETA ${Math.round(eta)} s`;
      } catch { /* no step yet */ }
      out.push({ label, state: q === "PD" ? "pending" : "running", detail });
      continue;
    }
    const log = await Deno.readTextFile(slurmPaths(root, plan).log).catch(() => "");
    out.push({
      label,
      state: "failed",
      detail: `job ${record.jobId} ended without a summary${log ? `: ${tail(log, 3)}` : ""}`,
    });
  }
  return out;
}

/** What {@linkcode submit} did. */
export interface Submitted {
  /** The array job id, or `null` when nothing needed submitting. */
  arrayJobId: string | null;
  submitted: RunPlan[];
  skippedDone: RunPlan[];
  skippedQueued: RunPlan[];
  /** Diverged with this id: a rerun would diverge the same way, so they are not submitted. */
  skippedDiverged: RunPlan[];
}

/** Options of {@linkcode submit}. */
export interface SubmitOptions extends SlurmOptions {
  /** Absolute path of the store. */
  root: string;
  /** The entry script each task runs with `--run-id` (the suite's main.ts). */
  script: string;
  /** Arguments every task passes on (`--budget`, `--backend`, `--out`). */
  args: string[];
  /** Deno permission flags for the task (the same as the experiments task's). */
  permissions: string[];
  /** Job name. @default {"ablate"} */
  jobName?: string;
  commands?: SlurmCommands;
}

/** Submit the plans that are neither finished nor queued as one job array. */
export async function submit(plans: RunPlan[], options: SubmitOptions): Promise<Submitted> {
  const commands = options.commands ?? SLURM_COMMANDS;
  const known = await partitions(commands);
  if (options.partition !== undefined && !known.includes(options.partition)) {
    throw new UsageError(
      `Unknown --partition '${options.partition}': this cluster has ${
        known.map((p) => `'${p}'`).join(", ")
      }`,
    );
  }
  checkSharedPath(options.root, await nodeCount(options.partition, commands));
  if (options.time !== undefined) checkTime(options.time);
  const states = await runStates(options.root, plans, commands);
  const result: Submitted = {
    arrayJobId: null,
    submitted: [],
    skippedDone: [],
    skippedQueued: [],
    skippedDiverged: [],
  };
  plans.forEach((plan, i) => {
    const s = states[i].state;
    if (s === "done") result.skippedDone.push(plan);
    else if (s === "diverged") result.skippedDiverged.push(plan);
    else if (s === "running" || s === "pending") result.skippedQueued.push(plan);
    else result.submitted.push(plan);
  });
  if (result.submitted.length === 0) return result;
  const dir = `${options.root}/.slurm`;
  await Deno.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  // Task i runs manifest line i+1: "<run id> <log path>".
  const manifest = `${dir}/manifest-${stamp}.txt`;
  const lines = [];
  for (const plan of result.submitted) {
    const { log } = slurmPaths(options.root, plan);
    await Deno.mkdir(log.slice(0, log.lastIndexOf("/")), { recursive: true });
    lines.push(`${plan.id} ${log}`);
  }
  await Deno.writeTextFile(`${manifest}.tmp`, lines.join("\n") + "\n");
  await Deno.rename(`${manifest}.tmp`, manifest);
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const directives = [
    `#SBATCH --job-name=${options.jobName ?? "ablate"}`,
    `#SBATCH --array=0-${result.submitted.length - 1}`,
    `#SBATCH --output=${dir}/array-%A_%a.out`,
    "#SBATCH --open-mode=append",
    "#SBATCH --requeue",
    ...(options.partition ? [`#SBATCH --partition=${options.partition}`] : []),
    ...(options.time ? [`#SBATCH --time=${options.time}`] : []),
    ...(options.cpusPerTask ? [`#SBATCH --cpus-per-task=${options.cpusPerTask}`] : []),
    ...(options.gpusPerTask ? [`#SBATCH --gpus-per-task=${options.gpusPerTask}`] : []),
  ];
  const script = `#!/bin/bash
${directives.join("\n")}
# ablate: one run of the sweep per array task (written by lib/runner/slurm.ts)
set -u
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" ${quote(manifest)})
run_id=\${line%% *}
log=\${line#* }
cd ${quote(Deno.cwd())}
echo "== $(date -u +%FT%TZ) job \${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID} on $(hostname): run $run_id" >> "$log"
exec deno run --quiet ${options.permissions.map(quote).join(" ")} ${quote(options.script)} \\
  --run-id "$run_id" ${options.args.map(quote).join(" ")} >> "$log" 2>&1
`;
  const path = `${dir}/job-${stamp}.sh`;
  await Deno.writeTextFile(`${path}.tmp`, script);
  await Deno.rename(`${path}.tmp`, path);
  const r = await run(commands.sbatch, ["--parsable", path]);
  if (!r.ok) throw new Error(`sbatch failed: ${r.err.trim() || r.out.trim()}`);
  const arrayJobId = r.out.trim().split(";")[0];
  result.arrayJobId = arrayJobId;
  const submitted = new Date().toISOString();
  for (const [task, plan] of result.submitted.entries()) {
    const record: SlurmRecord = {
      jobId: `${arrayJobId}_${task}`,
      arrayJobId,
      task,
      submitted,
      runId: plan.id,
    };
    await writeJsonAtomic(slurmPaths(options.root, plan).record, record);
  }
  return result;
}

/** Cancel the queued jobs recorded for these plans (and only those); returns the job ids. */
export async function cancel(
  root: string,
  plans: RunPlan[],
  commands = SLURM_COMMANDS,
): Promise<string[]> {
  const queue = await queuedJobs(commands);
  const ids: string[] = [];
  for (const plan of plans) {
    const record = await readJson<SlurmRecord>(slurmPaths(root, plan).record);
    if (record && record.runId === plan.id && queue.has(record.jobId)) ids.push(record.jobId);
  }
  if (ids.length > 0) {
    const r = await run(commands.scancel, ids);
    if (!r.ok) throw new Error(`scancel failed: ${r.err.trim()}`);
  }
  return ids;
}

/** Wait until none of these plans' recorded jobs is queued (polling squeue). */
export async function waitForJobs(
  root: string,
  plans: RunPlan[],
  options: { timeoutMs?: number; pollMs?: number; commands?: SlurmCommands } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  while (true) {
    const states = await runStates(root, plans, options.commands);
    if (!states.some((s) => s.state === "running" || s.state === "pending")) return;
    if (Date.now() > deadline) throw new Error("timed out waiting for the Slurm jobs");
    await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
  }
}
