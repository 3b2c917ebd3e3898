/**
 * The policy side of RL on a {@linkcode Decoder}: batched KV-cached sampling of completions,
 * per-token log-probabilities of given completions, greedy evaluation on a problem set, and
 * supervised training (pretraining on text, SFT on prompt → completion pairs with the loss on
 * the completion only).
 *
 * Everything runs through `HostSteps` with the async driver, so the same code serves cpu, wasm
 * and WebGPU; intermediates live in a `TidyScope` per call.
 *
 * Shapes: `N` sequences, `T` positions, `V` vocabulary, `P` prompt length.
 *
 * @module
 */

import { withBackend } from "../backend/mod.ts";
import { withFp8 } from "../fp8/linear.ts";
import type { Decoder } from "../models/decoder.ts";
import { draw, samplingDistribution } from "../models/generate.ts";
import { type HostSteps, runAsync, wrapSteps } from "../nn/steps.ts";
import {
  gather,
  logSoftmax,
  noGrad,
  Rng,
  slice,
  squeeze,
  type Tensor,
  tensor,
  TidyScope,
  unsqueeze,
} from "../tensor/mod.ts";
import { clipGradNorm } from "../train/clip.ts";
import { AdamW, decayGroups } from "../train/optim.ts";
import { scoreCompletion } from "./rewards.ts";
import type { Problem, TaskTokenizer } from "./tasks.ts";

/** Options of {@linkcode sampleCompletions}. */
export interface SampleCompletionsOptions {
  /**
   * Softmax temperature; 0 is greedy.
   * @default {1}
   */
  temperature?: number;
  /**
   * Nucleus mass.
   * @default {1}
   */
  topP?: number;
  /**
   * Most tokens per completion (EOS included).
   * @default {48}
   */
  maxNewTokens?: number;
  /** Id that ends a completion. @default {0} */
  eos?: number;
}

/**
 * Run `steps` on `model`'s backend and FP8 mode, intermediates in `scope` (the async driver, so
 * every backend, WebGPU included).
 *
 * @param model Whose backend and FP8 mode apply.
 * @param steps The computation.
 * @param scope Collects the tensors it creates (the caller ends it).
 * @returns The steps' result.
 */
export function runOnModel<R>(model: Decoder, steps: HostSteps<R>, scope: TidyScope): Promise<R> {
  const backend = model.embedTokens.backend;
  return withBackend(backend, () => withFp8(model.config.fp8, () => runAsync(steps, { scope })));
}

function* decodeBucket(
  model: Decoder,
  prompts: readonly (readonly number[])[],
  rng: Rng,
  options: Required<SampleCompletionsOptions>,
): HostSteps<number[][]> {
  const b = prompts.length, v = model.config.vocab;
  const backend = model.embedTokens.backend;
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(b).fill(false);
  const cache = model.newCache();
  try {
    let ids: number[] = prompts.flat(), n = prompts[0].length;
    for (let step = 0; step < options.maxNewTokens && done.some((d) => !d); step++) {
      const x = tensor(ids, { dtype: "i32", shape: [b, n], backend });
      const { h } = yield* model.trunkSteps(model.embed(x), { cache }); // [b, n, d]
      const logits = yield model.head(slice(h, 1, n - 1, n)); // [b, 1, V]
      ids = [];
      for (let r = 0; r < b; r++) {
        let token = options.eos;
        if (!done[r]) {
          const row = Array.prototype.slice.call(logits, r * v, (r + 1) * v) as number[];
          token = draw(samplingDistribution(row, options), rng);
          out[r].push(token);
          if (token === options.eos) done[r] = true;
        }
        ids.push(token);
      }
      n = 1;
    }
  } finally {
    cache.dispose();
  }
  return out;
}

/**
 * Sample one completion per prompt with the KV cache. Prompts of equal length are decoded
 * together as one batch; a completion stops at EOS (kept) or after `maxNewTokens`.
 *
 * @param model The policy.
 * @param prompts Prompt token ids.
 * @param rng The sampling stream (advanced in prompt order).
 * @param options Temperature, top-p, length limit, EOS id.
 * @returns Completion token ids, in prompt order.
 *
 * @example Greedy completions are deterministic
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { Decoder, tinyConfig } from "../models/decoder.ts";
 * import { Rng } from "../tensor/mod.ts";
 * import { sampleCompletions } from "./policy.ts";
 * const model = new Decoder(tinyConfig(), new Rng(0));
 * const opts = { temperature: 0, maxNewTokens: 4, eos: -1 }; // no EOS: full length
 * const a = await sampleCompletions(model, [[1, 2], [3, 4], [5]], new Rng(1), opts);
 * deepStrictEqual(a.map((c) => c.length), [4, 4, 4]);
 * deepStrictEqual(await sampleCompletions(model, [[1, 2], [3, 4], [5]], new Rng(2), opts), a);
 * ```
 */
export async function sampleCompletions(
  model: Decoder,
  prompts: readonly (readonly number[])[],
  rng: Rng,
  options: SampleCompletionsOptions = {},
): Promise<number[][]> {
  const resolved: Required<SampleCompletionsOptions> = {
    temperature: options.temperature ?? 1,
    topP: options.topP ?? 1,
    maxNewTokens: options.maxNewTokens ?? 48,
    eos: options.eos ?? 0,
  };
  const limit = model.config.seqLen;
  const buckets = new Map<number, number[]>();
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`Cannot sample from prompt ${i}: it is empty`);
    if (p.length + resolved.maxNewTokens > limit && model.config.yarn === null) {
      // RoPE extrapolates, but the model never trained there: say so rather than degrade.
      throw new Error(
        `Cannot sample ${resolved.maxNewTokens} tokens after a prompt of ${p.length}: ` +
          `the model's seqLen is ${limit}; lower maxNewTokens or raise seqLen`,
      );
    }
    buckets.set(p.length, [...(buckets.get(p.length) ?? []), i]);
  });
  const out: number[][] = new Array(prompts.length);
  for (const rows of buckets.values()) {
    const scope = new TidyScope();
    try {
      const got = await runOnModel(
        model,
        (function* () {
          return yield* wrapSteps(
            noGrad,
            decodeBucket(model, rows.map((i) => prompts[i]), rng, resolved),
          );
        })(),
        scope,
      );
      rows.forEach((i, k) => (out[i] = got[k]));
    } finally {
      scope.end(null);
    }
  }
  return out;
}

/** Prompt + completion rows on the host, right-padded, with the completion mask. */
export interface HostSequenceBatch {
  /** Rows `N`. */
  n: number;
  /** Positions `T`. */
  t: number;
  /** `[N, T]`: tokens `0 .. T-1` of each padded sequence. */
  inputs: Int32Array;
  /** `[N, T]`: tokens `1 .. T` (what each position predicts). */
  targets: Int32Array;
  /** `[N, T]`: 1 where the target is a completion token, else 0. */
  mask: Float32Array;
  /** Completion lengths `|o_i|`. */
  lengths: number[];
}

/**
 * Pack prompt + completion pairs on the host: row `r` holds `prompt ++ completion`, shifted by
 * one for the targets, right-padded with EOS; the mask marks targets inside the completion.
 *
 * @param pairs Prompt and completion ids per row (both non-empty).
 * @param eos The padding id.
 * @returns Host arrays `[n, t]`, row-major.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { packHost } from "./policy.ts";
 * const b = packHost([{ prompt: [5, 6], completion: [7, 0] }, { prompt: [5], completion: [0] }], 0);
 * deepStrictEqual([b.n, b.t], [2, 3]);
 * deepStrictEqual(Array.from(b.targets), [6, 7, 0, 0, 0, 0]);
 * deepStrictEqual(Array.from(b.mask), [0, 1, 1, 1, 0, 0]);
 * ```
 */
export function packHost(
  pairs: readonly { prompt: readonly number[]; completion: readonly number[] }[],
  eos = 0,
): HostSequenceBatch {
  if (pairs.length === 0) throw new Error("Cannot pack an empty list of sequences");
  const t = Math.max(...pairs.map((p) => p.prompt.length + p.completion.length)) - 1;
  const n = pairs.length;
  const inputs = new Int32Array(n * t).fill(eos), targets = new Int32Array(n * t).fill(eos);
  const mask = new Float32Array(n * t);
  pairs.forEach(({ prompt, completion }, r) => {
    if (prompt.length === 0 || completion.length === 0) {
      throw new Error(
        `Cannot pack row ${r}: prompt (${prompt.length}) and completion ` +
          `(${completion.length}) must both be non-empty`,
      );
    }
    const seq = [...prompt, ...completion];
    for (let i = 0; i + 1 < seq.length; i++) {
      inputs[r * t + i] = seq[i];
      targets[r * t + i] = seq[i + 1];
      if (i + 1 >= prompt.length) mask[r * t + i] = 1;
    }
  });
  return { n, t, inputs, targets, mask, lengths: pairs.map((p) => p.completion.length) };
}

/**
 * `log π(target_t | tokens < t)` at every position, as HostSteps (MoE routing reads).
 *
 * @param model The policy.
 * @param inputs `[N, T]` i32.
 * @param targets `[N, T]` i32.
 * @returns `[N, T]` log-probabilities (with gradient when enabled).
 */
export function* tokenLogProbSteps(
  model: Decoder,
  inputs: Tensor,
  targets: Tensor,
): HostSteps<Tensor> {
  const { h } = yield* model.trunkSteps(model.embed(inputs)); // [N, T, d]
  const logp = logSoftmax(model.head(h)); // [N, T, V]
  return squeeze(gather(logp, 2, unsqueeze(targets, -1)), -1); // [N, T]
}

/**
 * {@linkcode tokenLogProbSteps} without gradient on a packed batch, read to the host.
 *
 * @param model The model.
 * @param batch Sequences from {@linkcode packHost}.
 * @returns `[N * T]` log-probabilities, row-major.
 */
export async function tokenLogProbs(
  model: Decoder,
  batch: HostSequenceBatch,
): Promise<Float32Array> {
  const backend = model.embedTokens.backend;
  const shape = [batch.n, batch.t];
  const scope = new TidyScope();
  try {
    const { inputs, targets } = scope.run(() => ({
      inputs: tensor(batch.inputs, { dtype: "i32", shape, backend }),
      targets: tensor(batch.targets, { dtype: "i32", shape, backend }),
    }));
    return await runOnModel(
      model,
      wrapSteps(
        noGrad,
        (function* () {
          const lp = yield* tokenLogProbSteps(model, inputs, targets);
          return Float32Array.from(yield lp);
        })(),
      ),
      scope,
    );
  } finally {
    scope.end(null);
  }
}

/** Greedy evaluation of a model on a problem set. */
export interface Evaluation {
  /** Share of problems answered right inside `<answer>` tags. */
  accuracy: number;
  /** Share of completions in the exact R1 format. */
  formatRate: number;
  /** Mean completion length in tokens (EOS included). */
  length: number;
}

/**
 * Greedy-decode every problem and score it by rule.
 *
 * @param model The model.
 * @param problems Held-out problems.
 * @param tokenizer The task tokenizer.
 * @param options `maxNewTokens`.
 * @returns Accuracy, format rate and mean length.
 */
export async function evaluatePolicy(
  model: Decoder,
  problems: readonly Problem[],
  tokenizer: TaskTokenizer,
  options: { maxNewTokens?: number } = {},
): Promise<Evaluation> {
  const prompts = problems.map((p) => Array.from(tokenizer.encode(p.prompt)));
  const completions = await sampleCompletions(model, prompts, new Rng(0), {
    temperature: 0,
    maxNewTokens: options.maxNewTokens,
    eos: tokenizer.eos,
  });
  let accuracy = 0, format = 0, length = 0;
  completions.forEach((c, i) => {
    const s = scoreCompletion(problems[i].prompt, tokenizer.decode(c));
    accuracy += s.accuracy;
    format += s.format;
    length += c.length;
  });
  const n = Math.max(problems.length, 1);
  return { accuracy: accuracy / n, formatRate: format / n, length: length / n };
}

/** Options of {@linkcode supervisedTrain}. */
export interface SupervisedOptions {
  /** Optimizer steps. */
  steps: number;
  /**
   * Sequences per step.
   * @default {16}
   */
  batch?: number;
  /**
   * Peak learning rate (linear warmup over the first 10% of steps, then constant).
   * @default {3e-3}
   */
  lr?: number;
  /**
   * Put the loss on the prompt tokens too (pretraining on text) instead of the completion only.
   * @default {false}
   */
  trainOnPrompt?: boolean;
  /**
   * Gradient-norm clip.
   * @default {1}
   */
  gradClip?: number;
  /** Draws the batches. */
  rng: Rng;
  /** Called after each step with its loss (progress, logging). */
  onStep?: (step: number, loss: number) => void | Promise<void>;
}

/**
 * Supervised training with AdamW: each step draws `batch` pairs at random and minimises the
 * next-token cross-entropy on the completion tokens (all tokens with `trainOnPrompt`).
 * Pretraining passes text lines as pairs with a one-token prompt.
 *
 * @param model The model (trained in place).
 * @param pairs Token ids of prompt and completion.
 * @param options Steps, batch, learning rate, RNG.
 * @returns The mean loss of the last 10% of steps.
 */
export async function supervisedTrain(
  model: Decoder,
  pairs: readonly { prompt: readonly number[]; completion: readonly number[] }[],
  options: SupervisedOptions,
): Promise<number> {
  const { steps, batch = 16, lr = 3e-3, trainOnPrompt = false, gradClip = 1, rng } = options;
  if (pairs.length === 0) throw new Error("Cannot train on an empty set of examples");
  const backend = model.embedTokens.backend;
  const optimizer = new AdamW(decayGroups(model.parameters(), 0.01), {
    lr,
    betas: [0.9, 0.95],
    weightDecay: 0.01,
  });
  const warm = Math.max(1, Math.round(steps * 0.1));
  const tail: number[] = [];
  for (let step = 0; step < steps; step++) {
    optimizer.lr = lr * Math.min(1, (step + 1) / warm);
    const rows = Array.from({ length: batch }, () => pairs[rng.int(pairs.length)]);
    const scope = new TidyScope();
    let loss: number;
    try {
      const packed = scope.run(() => {
        const b = packHost(rows);
        // ignore (target −100) the padding, and the prompt unless `trainOnPrompt`
        const targets = b.targets.map((id, i) => {
          const r = Math.floor(i / b.t), c = i % b.t;
          const inside = c + 1 < rows[r].prompt.length + rows[r].completion.length;
          return (trainOnPrompt ? inside : b.mask[i] > 0) ? id : -100;
        });
        return {
          inputs: tensor(b.inputs, { dtype: "i32", shape: [b.n, b.t], backend }),
          targets: tensor(targets, { dtype: "i32", shape: [b.n, b.t], backend }),
        };
      });
      const out = await scope.run(() =>
        withBackend(backend, () => model.lossAsync(packed.inputs, packed.targets, { scope }))
      );
      scope.run(() => out.loss.backward());
      loss = await out.loss.item();
      await clipGradNorm(optimizer.params, gradClip);
      optimizer.step();
      optimizer.zeroGrad();
    } finally {
      scope.end(null);
    }
    if (!Number.isFinite(loss)) {
      throw new Error(`Cannot continue supervised training: the loss is ${loss} at step ${step}`);
    }
    if (step >= steps - Math.max(1, Math.round(steps * 0.1))) tail.push(loss);
    await options.onStep?.(step, loss);
  }
  return tail.reduce((a, b) => a + b, 0) / Math.max(tail.length, 1);
}
