/**
 * The computation of one run — what its id covers (`identity.ts` hashes this module and its
 * imports): the plan derived from a DSL run, 1) data  2) model  3) training with checkpoints
 * 4) evaluation  5) the summary. Where results go, locks, checks and repairs are the store's
 * side, in `execute.ts`, so editing them does not invalidate finished runs.
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
import { type StepMetrics, train } from "../train/trainer.ts";
import type { RunIdentity } from "./identity.ts";
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

/** How the store side follows a run's computation (`execute.ts`). */
export interface ComputeHooks {
  /** The logged records of steps 1..k (intact) when resuming at the checkpoint of step k. */
  history: readonly Record<string, number>[];
  /** Where checkpoints go (and the one to resume from). */
  checkpointDir: string;
  /** One step's record (its metrics and expert loads), as it is logged. */
  onRecord?(record: Record<string, number>, metrics: StepMetrics): Promise<void>;
  /** Asked after every step: `true` checkpoints and stops the run (`StoppedError`). */
  shouldStop?(): Promise<boolean>;
  /** After training, before the final evaluation. */
  beforeEvaluate?(): Promise<void>;
}

/**
 * Compute a run: 1) data  2) model  3) train with checkpoints, resuming from `checkpointDir`
 * when it holds one  4) evaluate from the weights  5) the summary, from the complete log only
 * (`history` and this segment's records): the final train loss and throughput from its last
 * step, MaxVio from the logged expert loads, the wall time summed over resumes.
 *
 * @param plan The run.
 * @param backend Where it trains.
 * @param hooks The resume point's log and the store's callbacks.
 * @returns The summary.
 * @throws {DivergedError} when training diverges; {@linkcode StoppedError} on request.
 */
export async function computeRun(
  plan: RunPlan,
  backend: Backend,
  hooks: ComputeHooks,
): Promise<RunSummary> {
  // 1) data
  const tokens = await loadTokens(plan.data);
  const { batch, steps } = plan.train;
  const seqLen = plan.model.seqLen;
  // 2) model
  const rng = new Rng(plan.seed);
  const model = withBackend(backend, () => new Decoder(plan.model, rng.fork("init")));
  // 3) train
  const records = [...hooks.history];
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
      checkpointDir: hooks.checkpointDir,
      lossHistory: records.map((r) => r.loss),
      shouldStop: hooks.shouldStop,
      beforeStep: (step) => {
        model.mtpLambda = scheduledLambda(plan.train.mtpLambdaSchedule, step, steps);
      },
      onStep: async (m) => {
        const record = { ...m, ...expertLoads.next() };
        records.push(record);
        await hooks.onRecord?.(record, m);
      },
    },
  );
  // 4) evaluate
  await hooks.beforeEvaluate?.();
  const evalStarted = performance.now();
  if (records.length !== steps || records.some((r, i) => r.step !== i + 1)) {
    throw new Error(
      `Cannot write the summary of ${runLabel(plan)}: its log holds ${records.length} of ` +
        `${steps} steps (check the run with 'deno task experiments --check')`,
    );
  }
  const metrics = await evaluate(model, plan, tokens, backend);
  const vio = maxVioFromLog(records);
  if (vio !== null) metrics.maxVioGlobal = vio;
  metrics.trainTokensPerSec = records[steps - 1].tokensPerSec;
  // 5) the summary
  return {
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
