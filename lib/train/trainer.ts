/**
 * The training loop: 1) batches  2) forward + backward (with gradient accumulation)
 * 3) clip  4) schedule + AdamW  5) model hooks (MoE bias update)  6) metrics  7) checkpoints.
 *
 * A non-finite loss or gradient norm, or an exploding loss (above `explodeFactor` × the smaller
 * of the first step's loss and the running median), stops the run with {@linkcode DivergedError}
 * before the update is applied. The checkpoints on disk hold the weights of earlier steps; the
 * newest one may already hold the weights that produced the bad loss (when it was saved just
 * before), which the caller can tell from `DivergedError.step`. Given the same seed, backend and
 * checkpoint, a resumed run reproduces an uninterrupted one bit for bit: the data position and
 * every RNG state are part of the checkpoint.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { withBackend } from "../backend/mod.ts";
import type { BatchState, RandomBatches } from "../data/batches.ts";
import { div, type Tensor, tensor, tidy, TidyScope } from "../tensor/mod.ts";
import { loadCheckpoint, saveCheckpoint, type TrainState } from "./checkpoint.ts";
import { clipGradNorm } from "./clip.ts";
import { AdamW, decayGroups } from "./optim.ts";
import { cosineSchedule } from "./schedule.ts";

/** What the trainer needs from a model. */
export interface TrainableModel {
  /** Every named tensor (trainable parameters have `requiresGrad`; others are buffers). */
  parameters(): Map<string, Tensor>;
  /**
   * The loss to backpropagate for one batch, and scalar logs (tensors are read after the step).
   * `inputs`, `targets`: `i32 [B, T]`.
   */
  loss(inputs: Tensor, targets: Tensor): { loss: Tensor; logs: Record<string, Tensor | number> };
  /**
   * The same loss for backends that cannot read on the host synchronously (WebGPU), when the
   * model reads mid-forward (MoE routing); used when `backend.canReadSync` is false.
   */
  lossAsync?(
    inputs: Tensor,
    targets: Tensor,
    options?: { scope?: TidyScope },
  ): Promise<{ loss: Tensor; logs: Record<string, Tensor | number> }>;
  /** Called after every optimizer step (e.g. the aux-loss-free bias update). */
  afterOptimizerStep?(): void;
}

/** Training hyper-parameters. */
export interface TrainerOptions {
  /** Optimizer steps to reach. */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** @default {lr / 10} */
  minLr?: number;
  /** @default {0} */
  warmup?: number;
  /** @default {0.1} */
  weightDecay?: number;
  /** Max global gradient norm; 0 = no clipping. @default {1} */
  gradClip?: number;
  /** Micro-batches per optimizer step. @default {1} */
  accumulate?: number;
  /** AdamW betas. @default {[0.9, 0.95]} */
  betas?: [number, number];
  /** Write a checkpoint every this many steps (and at the end). 0 = never. @default {0} */
  checkpointEvery?: number;
  /** Checkpoint directory; resume from it when it holds a checkpoint. */
  checkpointDir?: string;
  /** Called before each optimizer step (0-based), e.g. to follow a loss-weight schedule. */
  beforeStep?: (step: number) => void;
  /** Receives every step's metrics. */
  onStep?: (metrics: StepMetrics) => void | Promise<void>;
  /**
   * Asked after every step: `true` saves a checkpoint (when `checkpointDir` is set) and throws
   * {@linkcode StoppedError} — for a scheduler's SIGTERM before preemption or the time limit.
   */
  shouldStop?: () => boolean | Promise<boolean>;
  /**
   * A finite loss above this multiple of the reference (the smaller of the first step's loss and
   * the median of the last 50) counts as diverged; 0 turns the check off. @default {10}
   */
  explodeFactor?: number;
  /** Losses of the steps before a resume, in step order (the reference of `explodeFactor`). */
  lossHistory?: readonly number[];
}

/** Metrics of one optimizer step. */
export interface StepMetrics {
  step: number;
  tokens: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  [log: string]: number;
}

/** One forward/backward through `lossAsync`, freeing its intermediates like `tidy`. */
async function asyncStep<R>(
  backend: Backend,
  batch: ReturnType<RandomBatches["next"]>,
  lossAsync: NonNullable<TrainableModel["lossAsync"]>,
  backwardOf: (out: { loss: Tensor; logs: Record<string, Tensor | number> }) => R,
): Promise<R> {
  const scope = new TidyScope();
  const { inputs, targets } = scope.run(() =>
    withBackend(backend, () => ({
      inputs: tensor(batch.inputs, { dtype: "i32", shape: batch.shape }),
      targets: tensor(batch.targets, { dtype: "i32", shape: batch.shape }),
    }))
  );
  const pending = scope.run(() =>
    withBackend(backend, () => lossAsync(inputs, targets, { scope }))
  );
  const out = await pending;
  const result = scope.run(() => withBackend(backend, () => backwardOf(out)));
  scope.end(result);
  return result;
}

/** Thrown when the loss or gradient norm is not finite, or the loss explodes. */
export class DivergedError extends Error {
  /**
   * @param step The step whose loss or gradient was bad (1-based); its update was not applied.
   * @param what `"loss"` or `"gradient norm"`.
   * @param value The bad value.
   * @param why Why it counts as diverged (after the value), e.g. the explosion threshold.
   * @param advice What to change, ending the message.
   */
  constructor(
    readonly step: number,
    readonly what: string,
    readonly value: number,
    readonly why = "",
    readonly advice = "lower the learning rate or enable gradient clipping",
  ) {
    super(
      `Training diverged at step ${step}: the ${what} is ${value}${why}; the update was not ` +
        `applied (${advice})`,
    );
    this.name = "DivergedError";
  }
}

/** The median of `xs` (non-empty). */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Thrown when `shouldStop` asked the run to stop; the checkpoint at `step` is on disk. */
export class StoppedError extends Error {
  override name = "StoppedError";
  /** The step the checkpoint holds. */
  readonly step: number;
  constructor(step: number) {
    super(`stopped at step ${step} on request (checkpoint saved; rerun to resume)`);
    this.step = step;
  }
}

/** Result of {@linkcode train}. */
export interface TrainResult {
  /** Steps completed, including those before a resume. */
  steps: number;
  tokens: number;
  /** Step the run resumed from (0 for a fresh run). */
  resumedFrom: number;
  /** Loss of the last step (`NaN` when no step ran here). */
  finalLoss: number;
  /** Wall-clock seconds spent training, summed over every segment (resumes included). */
  seconds: number;
}

async function readLogs(logs: Record<string, Tensor | number>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(logs)) out[k] = typeof v === "number" ? v : await v.item();
  return out;
}

/**
 * Train `model` on `backend`, resuming from `options.checkpointDir` if it holds a checkpoint.
 * `makeData` opens the batch stream, at the saved position when resuming (`saved` non-null).
 */
export async function train(
  model: TrainableModel,
  makeData: (saved: BatchState | null) => RandomBatches,
  backend: Backend,
  options: TrainerOptions,
): Promise<TrainResult> {
  const accumulate = options.accumulate ?? 1;
  const params = model.parameters();
  const optimizer = new AdamW(decayGroups(params, options.weightDecay ?? 0.1), {
    lr: options.lr,
    betas: options.betas ?? [0.9, 0.95],
    weightDecay: options.weightDecay ?? 0.1,
  });
  const trainable = optimizer.params;
  let step = 0, tokens = 0, secondsBefore = 0;
  let saved: BatchState | null = null;
  if (options.checkpointDir !== undefined) {
    const state = await loadCheckpoint(options.checkpointDir, { params, optimizer });
    if (state !== null) {
      step = state.step;
      tokens = state.tokens;
      saved = state.extra.data as BatchState;
      secondsBefore = typeof state.extra.seconds === "number" ? state.extra.seconds : 0;
    }
  }
  const data = makeData(saved);
  const resumedFrom = step;
  const started = performance.now();
  const elapsed = () => secondsBefore + (performance.now() - started) / 1000;
  const save = async () => {
    if (options.checkpointDir === undefined) return;
    const state: TrainState = { step, tokens, extra: { data: data.state(), seconds: elapsed() } };
    await saveCheckpoint(options.checkpointDir, { params, optimizer, state });
  };
  const losses = [...(options.lossHistory ?? [])];
  const explode = options.explodeFactor ?? 10;
  const advice = () =>
    `lower the learning rate (lr ${options.lr})` +
    ((options.gradClip ?? 1) === 0 ? " or enable gradient clipping (gradClip is 0)" : "") +
    ": this configuration diverges the same way on every rerun";
  let finalLoss = NaN;
  while (step < options.steps) {
    options.beforeStep?.(step);
    // 1) + 2) forward and backward over `accumulate` micro-batches
    let lossSum = 0;
    let logs: Record<string, number> = {};
    let batchTokens = 0;
    for (let micro = 0; micro < accumulate; micro++) {
      const batch = data.next();
      batchTokens += batch.inputs.length;
      const backwardOf = (out: { loss: Tensor; logs: Record<string, Tensor | number> }) => {
        (accumulate === 1 ? out.loss : div(out.loss, accumulate)).backward();
        return { loss: out.loss, values: out.logs };
      };
      const { loss, values } = !backend.canReadSync && model.lossAsync
        ? await asyncStep(backend, batch, model.lossAsync.bind(model), backwardOf)
        : withBackend(backend, () =>
          tidy(() => {
            const inputs = tensor(batch.inputs, { dtype: "i32", shape: batch.shape });
            const targets = tensor(batch.targets, { dtype: "i32", shape: batch.shape });
            return backwardOf(model.loss(inputs, targets));
          }));
      const l = await loss.item();
      lossSum += l / accumulate;
      const read = await readLogs(values);
      for (const [k, v] of Object.entries(read)) logs[k] = (logs[k] ?? 0) + v / accumulate;
      loss.dispose();
      for (const v of Object.values(values)) if (typeof v !== "number") v.dispose();
    }
    // 3) clip (and the divergence guard)
    const gradNorm = await clipGradNorm(trainable, options.gradClip ?? 1);
    if (!Number.isFinite(lossSum)) {
      throw new DivergedError(step + 1, "loss", lossSum, "", advice());
    }
    if (!Number.isFinite(gradNorm)) {
      throw new DivergedError(step + 1, "gradient norm", gradNorm, "", advice());
    }
    if (explode > 0 && losses.length > 0) {
      const reference = Math.min(losses[0], median(losses.slice(-50)));
      if (lossSum > explode * reference) {
        throw new DivergedError(
          step + 1,
          "loss",
          lossSum,
          `, more than ${explode} × the reference loss ${reference.toPrecision(4)} (the smaller ` +
            "of the first step's loss and the median of the last 50)",
          advice(),
        );
      }
    }
    losses.push(lossSum);
    // 4) schedule + AdamW
    const lr = cosineSchedule(step, {
      lr: options.lr,
      minLr: options.minLr,
      warmup: options.warmup,
      totalSteps: options.steps,
    });
    optimizer.lr = lr;
    withBackend(backend, () => optimizer.step());
    optimizer.zeroGrad();
    // 5) model hooks
    withBackend(backend, () => model.afterOptimizerStep?.());
    step++;
    tokens += batchTokens;
    finalLoss = lossSum;
    // 6) metrics
    const seconds = (performance.now() - started) / 1000; // this segment
    const metrics: StepMetrics = {
      ...logs,
      step,
      tokens,
      loss: lossSum,
      lr,
      gradNorm,
      tokensPerSec: ((step - resumedFrom) * batchTokens) / Math.max(seconds, 1e-9),
    };
    await options.onStep?.(metrics);
    // 7) checkpoints
    const every = options.checkpointEvery ?? 0;
    const saved = (every > 0 && step % every === 0) || step === options.steps;
    if (saved) await save();
    logs = {};
    if (step < options.steps && (await options.shouldStop?.())) {
      if (!saved && options.checkpointDir) await save();
      throw new StoppedError(step);
    }
  }
  return { steps: step, tokens, resumedFrom, finalLoss, seconds: elapsed() };
}
