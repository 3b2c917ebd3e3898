/**
 * Executing one run: 1) check the store (skip a finished run; move aside the results of a
 * different config)  2) data  3) model  4) train with checkpoints (resuming if one exists)
 * 5) evaluate  6) write `summary.json`, which marks the run done.
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
import { Moe } from "../nn/moe.ts";
import { noGrad, Rng, tensor, tidy, TidyScope } from "../tensor/mod.ts";
import { train } from "../train/trainer.ts";
import { identityChanges, type RunIdentity } from "./identity.ts";
import type { Reporter, RunStatus } from "./progress.ts";
import { MetricsLog, readJson, runPaths, writeJsonAtomic, writeTextAtomic } from "./store.ts";
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
  // 1) the store
  const done = await readJson<RunSummary>(paths.summary);
  if (done !== null && done.id === plan.id) {
    reporter.runEnd({ label, status: "skipped", detail: "already done" });
    return outcome("skipped", "already done", done);
  }
  const stored = await readJson<StoredConfig>(paths.config);
  if (stored !== null && stored.id !== plan.id) {
    const changes = plan.identity === undefined
      ? [`id ${stored.id.slice(0, 12)} → ${plan.id.slice(0, 12)}`]
      : identityChanges(stored.identity, plan.identity);
    if (done !== null && options.onChanged === "stop") throw new RunChangedError(label, changes);
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
        done === null ? "partial " : ""
      }results moved to ${aside}`,
    );
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
  // 2) data
  const tokens = await loadTokens(plan.data);
  const { batch, steps } = plan.train;
  const seqLen = plan.model.seqLen;
  // 3) model
  const rng = new Rng(plan.seed);
  const model = withBackend(backend, () => new Decoder(plan.model, rng.fork("init")));
  // 4) train
  const log = new MetricsLog(paths.metrics);
  const saved = (await readJson<{ step: number }>(`${paths.checkpoint}/state.json`)) ??
    (await readJson<{ step: number }>(`${paths.checkpoint}.old/state.json`));
  const resumeStep = saved?.step ?? 0;
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
  const started = performance.now();
  const expertLoads = new ExpertLoadLog(model);
  const result = await train(
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
      },
    },
  );
  // 5) evaluate
  const metrics = await evaluate(model, plan, tokens, backend);
  const trainRecords = log.records.filter((r) => r.step > result.resumedFrom);
  if (trainRecords.length > 0) {
    metrics.trainTokensPerSec = trainRecords[trainRecords.length - 1].tokensPerSec;
  }
  const summary: RunSummary = {
    id: plan.id,
    experiment: plan.experiment,
    variant: plan.variant,
    seed: plan.seed,
    status: "done",
    steps: result.steps,
    tokens: result.tokens,
    finalTrainLoss: result.finalLoss,
    metrics,
    parameters: model.countParameters(),
    backend: backend.description,
    wallSeconds: (performance.now() - started) / 1000,
  };
  // 6) done
  await writeJsonAtomic(paths.summary, summary);
  const detail = `val loss ${metrics.valLoss?.toFixed(4) ?? "?"}`;
  reporter.runEnd({ label, status: "done", detail });
  return outcome("done", detail, summary);
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

/** Post-training evaluation of the metrics a plan asks for. */
export async function evaluate(
  model: Decoder,
  plan: RunPlan,
  tokens: Tokens,
  backend: Backend,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const seqLen = plan.model.seqLen;
  // MaxVio over training, read before the evaluation forwards add their own routing.
  const maxVio = model.maxVioGlobal();
  if (maxVio.length > 0) out.maxVioGlobal = maxVio.reduce((a, b) => a + b, 0) / maxVio.length;
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
