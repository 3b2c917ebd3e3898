/**
 * Executing one run: 0) take the run's lock  1) the store: move aside the results of another id
 * (or leave a finished one alone with `onChanged: "stop"`)  2) check and repair the run
 * (`check.ts`): skip it when done, resume from its newest valid checkpoint  3) data  4) model
 * 5) train with checkpoints  6) evaluate from the weights and the complete log  7) write
 * `summary.json`, then `manifest.json`, which seals the run as done. A run that diverges keeps
 * its last healthy checkpoint and records why in `failure.json`.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { withBackend } from "../backend/mod.ts";
import type { RunSpec } from "../dsl/experiment.ts";
import { RandomBatches, sequentialBatches } from "../data/batches.ts";
import { brown } from "../data/brown.ts";
import { BpeTokenizer, ByteTokenizer } from "../data/tokenizer.ts";
import type { ModelConfig } from "../models/config.ts";
import { Decoder } from "../models/decoder.ts";
import {
  compareDecoding,
  compareDecodingAsync,
  generate,
  generateAsync,
} from "../models/generate.ts";
import { maxVio, Moe } from "../nn/moe.ts";
import { noGrad, Rng, tensor, tidy, TidyScope } from "../tensor/mod.ts";
import { checkpointCandidates } from "../train/checkpoint.ts";
import { DivergedError, StoppedError, train } from "../train/trainer.ts";
import { checkRun, type FailureRecord, moveAside, sealRun } from "./check.ts";
import { identityChanges, type RunIdentity } from "./identity.ts";
import { inJupyter, type Reporter, type RunStatus } from "./progress.ts";
import { lockPath, RunLock } from "./lock.ts";
import {
  exists,
  MetricsLog,
  readJson,
  runPaths,
  writeJsonAtomic,
  writeTextAtomic,
} from "./store.ts";
import { UsageError } from "./usage.ts";

/** Data a run trains on. */
export interface DataPlan {
  /** The embedded Brown corpus with its fixed held-out split. */
  corpus: "brown";
  /** Byte tokens (vocab 256) or a BPE of this many ids trained on the training split. */
  tokenizer: "bytes" | { bpe: number };
  /** Every `valEvery`-th document is held out. @default {10} */
  valEvery?: number;
}

/** Training settings of a run (steps already derived from the token budget). */
export interface TrainPlan {
  steps: number;
  batch: number;
  lr: number;
  minLr?: number;
  warmup: number;
  weightDecay: number;
  gradClip: number;
  accumulate: number;
  checkpointEvery: number;
  /** Validation batches for `valLoss` (of `batch` windows each). */
  evalBatches: number;
  /** MTP `λ` from a fraction of the steps on (V3: 0.3, then 0.1); `null` = constant. */
  mtpLambdaSchedule?: { from: number; lambda: number }[] | null;
}

/** The MTP `λ` a schedule gives at `step` of `steps`, or `null` without a schedule. */
export function scheduledLambda(
  schedule: TrainPlan["mtpLambdaSchedule"],
  step: number,
  steps: number,
): number | null {
  if (!schedule || schedule.length === 0) return null;
  let lambda = schedule[0].lambda;
  for (const s of schedule) if (step / steps >= s.from) lambda = s.lambda;
  return lambda;
}

/** Everything needed to execute one run; `id` is its content hash. */
export interface RunPlan {
  id: string;
  experiment: string;
  variant: string;
  seed: number;
  model: ModelConfig;
  data: DataPlan;
  train: TrainPlan;
  eval: readonly string[];
  /** What the id covers (stored in `config.json` to explain a changed id). */
  identity?: RunIdentity;
}

/**
 * The runner's plan for a DSL run (the derived settings here — evaluation batches, checkpoint
 * interval, warmup clamp — are part of the hashed run code, so they are covered by the id).
 *
 * @param spec A run from `experiment.expand()`.
 * @param identity What the id covers, stored with the run.
 * @returns The plan {@linkcode executeRun} takes.
 */
export function planOf(spec: RunSpec, identity?: RunIdentity): RunPlan {
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
    ...(identity === undefined ? {} : { identity }),
  };
}

/** `experiment/variant/seed-n`, how progress and errors name a run. */
export function runLabel(run: { experiment: string; variant: string; seed: number }): string {
  return `${run.experiment}/${run.variant}/seed-${run.seed}`;
}

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

/** What `summary.json` holds. */
export interface RunSummary {
  id: string;
  experiment: string;
  variant: string;
  seed: number;
  status: "done";
  steps: number;
  tokens: number;
  finalTrainLoss: number;
  metrics: Record<string, number>;
  parameters: { total: number; activated: number; mtp: number };
  backend: string;
  wallSeconds: number;
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
  shouldStop?: () => boolean;
}

interface Tokens {
  train: Int32Array;
  val: Int32Array;
  /** Corpus content hash (and the tokenizer, for BPE). */
  hash: string;
  /** Tokens per byte of the validation split (1 for bytes), for bits per byte. */
  tokensPerByte: number;
}

const tokenCache = new Map<string, Promise<Tokens>>();

/** Load and tokenize a run's data once per process (a BPE is trained on the training split). */
export function loadTokens(plan: DataPlan): Promise<Tokens> {
  const key = JSON.stringify(plan);
  let cached = tokenCache.get(key);
  if (cached === undefined) {
    cached = brown({ valEvery: plan.valEvery }).then((c) => {
      const tokenizer = plan.tokenizer === "bytes"
        ? new ByteTokenizer()
        : BpeTokenizer.train(c.train, plan.tokenizer.bpe);
      const val = tokenizer.encode(c.val);
      return {
        train: tokenizer.encode(c.train),
        val,
        hash: plan.tokenizer === "bytes" ? c.hash : `${c.hash}:bpe${plan.tokenizer.bpe}`,
        tokensPerByte: val.length / new TextEncoder().encode(c.val).length,
      };
    });
    tokenCache.set(key, cached);
  }
  return cached;
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
  // 2) data
  const tokens = await loadTokens(plan.data);
  const { batch, steps } = plan.train;
  const seqLen = plan.model.seqLen;
  // 3) model
  const rng = new Rng(plan.seed);
  const model = withBackend(backend, () => new Decoder(plan.model, rng.fork("init")));
  // 4) train (the log keeps its lines up to the checkpoint's step, unchanged)
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
  const expertLoads = new ExpertLoadLog(model);
  let result;
  try {
    result = await train(
      model,
      (saved) => {
        return saved === null
          ? new RandomBatches(tokens.train, { batch, seqLen, seed: rng.fork("data").nextU32() })
          : RandomBatches.fromState(tokens.train, saved);
      },
      backend,
      {
        steps,
        lr: plan.train.lr,
        minLr: plan.train.minLr,
        warmup: plan.train.warmup,
        weightDecay: plan.train.weightDecay,
        gradClip: plan.train.gradClip,
        accumulate: plan.train.accumulate,
        checkpointEvery: plan.train.checkpointEvery,
        checkpointDir: paths.checkpoint,
        lossHistory: log.records.map((r) => r.loss),
        shouldStop: async () => {
          if (!options.shouldStop?.()) return false;
          await log.flush(); // the log must reach the checkpoint's step
          return true;
        },
        beforeStep: (step) => {
          model.mtpLambda = scheduledLambda(plan.train.mtpLambdaSchedule, step, steps);
        },
        onStep: async (m) => {
          log.add({ ...m, ...expertLoads.next() });
          reporter.step(m);
          const every = plan.train.checkpointEvery;
          if ((every > 0 && m.step % every === 0) || m.step === steps) await log.flush();
          await lock.beat();
        },
      },
    );
  } catch (e) {
    if (e instanceof DivergedError) await log.flush(); // the losses up to it, for diagnosis
    throw e;
  }
  // 5) evaluate, from the weights and the complete log (never from this process's state alone)
  await log.flush(); // exactly steps 1..n on disk, whatever the file held before
  await lock.beat(true);
  const evalStarted = performance.now();
  const records = log.records;
  if (records.length !== steps || records.some((r, i) => r.step !== i + 1)) {
    throw new Error(
      `Cannot write the summary of ${label}: metrics.jsonl holds ${records.length} of ${steps} ` +
        `steps (check the run with 'deno task experiments --check')`,
    );
  }
  const metrics = await evaluate(model, plan, tokens, backend);
  const maxVio = maxVioFromLog(records);
  if (maxVio !== null) metrics.maxVioGlobal = maxVio;
  metrics.trainTokensPerSec = records[steps - 1].tokensPerSec;
  const summary: RunSummary = {
    id: plan.id,
    experiment: plan.experiment,
    variant: plan.variant,
    seed: plan.seed,
    status: "done",
    steps: result.steps,
    tokens: result.tokens,
    finalTrainLoss: records[steps - 1].loss,
    metrics,
    parameters: model.countParameters(),
    backend: backend.description,
    wallSeconds: result.seconds + (performance.now() - evalStarted) / 1000,
  };
  // 6) done: the summary, then the manifest that seals the run
  await writeJsonAtomic(paths.summary, summary);
  await sealRun(options.root, plan);
  const detail = `val loss ${metrics.valLoss?.toFixed(4) ?? "?"}`;
  reporter.runEnd({ label, status: "done", detail });
  return outcome("done", detail, summary);
}

/**
 * `MaxVio_global` over training from the logged per-step expert loads (`expertLoad.<l>.<e>`,
 * fractions of a step's assignments, which every step has the same number of): per MoE layer,
 * `max_e Σ_t f_e,t / mean_e Σ_t f_e,t − 1`, averaged over layers; `null` for a dense model.
 * From the log, so a resumed run gives what an uninterrupted one gives.
 *
 * @param records The training log, steps 1..n.
 * @returns The mean over MoE layers, or `null`.
 *
 * @example Two steps of a 2-expert layer: loads 3:1 then 1:1 → totals 1.25 : 0.75
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { maxVioFromLog } from "./run.ts";
 * const log = [{ step: 1, "expertLoad.1.0": 0.75, "expertLoad.1.1": 0.25 }, { step: 2, "expertLoad.1.0": 0.5, "expertLoad.1.1": 0.5 }];
 * strictEqual(maxVioFromLog(log), 0.25);
 * strictEqual(maxVioFromLog([{ step: 1, loss: 2 }]), null);
 * ```
 */
export function maxVioFromLog(records: readonly Record<string, number>[]): number | null {
  const totals = new Map<string, number[]>();
  for (const r of records) {
    for (const [key, value] of Object.entries(r)) {
      const m = /^expertLoad\.(\d+)\.(\d+)$/.exec(key);
      if (m === null) continue;
      const layer = totals.get(m[1]) ?? [];
      layer[Number(m[2])] = (layer[Number(m[2])] ?? 0) + value;
      totals.set(m[1], layer);
    }
  }
  if (totals.size === 0) return null;
  const vios = [...totals.values()].map((t) => maxVio(Array.from(t, (v) => v ?? 0)));
  return vios.reduce((a, b) => a + b, 0) / vios.length;
}

/**
 * Per-step expert load for the heatmap: `expertLoad.<layer>.<expert>`, each expert's share of
 * its layer's routed assignments during the step (the difference of the MoE layers' running
 * totals since the previous call).
 */
export class ExpertLoadLog {
  /** `[layer index, its MoE]` for the main blocks (MTP blocks are left out). */
  #layers: [number, Moe][];
  #previous: number[][];
  constructor(model: Decoder) {
    this.#layers = model.layers.flatMap((b, i) => (b.mlp instanceof Moe ? [[i, b.mlp]] : []));
    this.#previous = this.#layers.map(([, moe]) => moe.loadTotal);
  }
  /** The loads routed since the last call, as fractions per layer (empty for dense models). */
  next(): Record<string, number> {
    const out: Record<string, number> = {};
    this.#layers.forEach(([layer, moe], k) => {
      const total = moe.loadTotal;
      const step = total.map((t, e) => Math.max(0, t - (this.#previous[k][e] ?? 0)));
      const sum = step.reduce((a, b) => a + b, 0);
      if (sum > 0) step.forEach((v, e) => (out[`expertLoad.${layer}.${e}`] = v / sum));
      this.#previous[k] = total;
    });
    return out;
  }
}

/**
 * Post-training evaluation of the metrics a plan asks for (`maxVioGlobal`, a training
 * statistic, comes from the log: {@linkcode maxVioFromLog}).
 */
export async function evaluate(
  model: Decoder,
  plan: RunPlan,
  tokens: Tokens,
  backend: Backend,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const seqLen = plan.model.seqLen;
  // Validation loss over a fixed prefix of the held-out split (same windows for every run).
  let sum = 0, count = 0;
  for (
    const b of sequentialBatches(tokens.val, {
      batch: plan.train.batch,
      seqLen,
      maxBatches: plan.train.evalBatches,
    })
  ) {
    let value: number;
    if (backend.canReadSync) {
      const l = withBackend(backend, () =>
        noGrad(() =>
          tidy(() => {
            const inputs = tensor(b.inputs, { dtype: "i32", shape: b.shape });
            const targets = tensor(b.targets, { dtype: "i32", shape: b.shape });
            return model.loss(inputs, targets).mainLoss;
          })
        ));
      value = await l.item();
      l.dispose();
    } else {
      // WebGPU: MoE routing is read on the host asynchronously
      const scope = new TidyScope();
      const out = await withBackend(backend, () =>
        noGrad(() =>
          scope.run(() => {
            const inputs = tensor(b.inputs, { dtype: "i32", shape: b.shape });
            const targets = tensor(b.targets, { dtype: "i32", shape: b.shape });
            return model.lossAsync(inputs, targets, { scope });
          })
        ));
      value = await out.mainLoss.item();
      scope.end(null);
    }
    sum += value * b.inputs.length;
    count += b.inputs.length;
  }
  out.valLoss = sum / Math.max(count, 1);
  out.bitsPerByte = (out.valLoss / Math.LN2) * tokens.tokensPerByte; // nats/token → bits/byte
  out.kvBytesPerToken = model.kvBytesPerToken();
  const prompt = Array.from(tokens.val.subarray(0, 16));
  if (plan.eval.includes("decodeTokensPerSec")) {
    const g = await withBackend(
      backend,
      () =>
        backend.canReadSync
          ? generate(model, prompt, { maxNewTokens: 32, temperature: 0 })
          : generateAsync(model, prompt, { maxNewTokens: 32, temperature: 0 }),
    );
    out.decodeTokensPerSec = g.tokensPerSec;
  }
  if (plan.eval.includes("mtpAcceptance") && plan.model.mtp !== null) {
    const c = await withBackend(
      backend,
      () =>
        backend.canReadSync
          ? compareDecoding(model, prompt, { maxNewTokens: 32, temperature: 0 })
          : compareDecodingAsync(model, prompt, { maxNewTokens: 32, temperature: 0 }),
    );
    out.mtpAcceptance = c.speculative.drafted > 0
      ? c.speculative.accepted / c.speculative.drafted
      : 0;
    out.speculativeSpeedup = c.speedup;
  }
  return out;
}
