/**
 * Autoregressive decoding with the KV cache: greedy, temperature and top-p (nucleus; Holtzman et
 * al., arXiv:1904.09751) sampling from a seeded {@linkcode Rng}, and speculative decoding with
 * MTP module 1 as the draft model (DeepSeek-V3 §5.4.3 reports 85–90% acceptance of the second
 * token and ~1.8× tokens/s).
 *
 * Speculative step (one draft token, Leviathan et al., arXiv:2211.17192 §2.3): with `x` the
 * next token already chosen by the main model and `h^0` the main model's hidden state at the
 * position before it, MTP module 1 drafts `d ~ q = OutHead(TRM_1(M_1 [Emb(x); h^0]))`; one main
 * forward over `[x, d]` gives `p` (the distribution after `x`) and `p'` (after `d`). The draft
 * is accepted with probability `min(1, p(d) / q(d))` — for greedy decoding, iff
 * `d = argmax p` — and then `p'` yields one more token for free; otherwise the next token is
 * drawn from `norm(max(0, p − q))` (greedy: `argmax p`) and `d` is removed from the cache. The
 * output distribution is the main model's, so greedy speculative output equals greedy output.
 *
 * Precision: a model with `config.fp8` decodes with its Linear GEMMs in FP8, as its `forward`
 * runs (`lib/fp8/linear.ts`), so greedy decoding follows the argmax of `forward`'s logits.
 *
 * Batch size 1; token ids are plain numbers; logits are read to the host each step. Each
 * decoder is written once as `HostSteps` (lib/nn/steps.ts): `generate`/`speculativeGenerate` read
 * synchronously (cpu, wasm), `generateAsync`/`speculativeGenerateAsync` await (WebGPU).
 *
 * @module
 */

import { withFp8 } from "../fp8/linear.ts";
import { KvCache } from "../nn/attention.ts";
import { type HostSteps, runAsync, runSync, tidySteps, wrapSteps } from "../nn/steps.ts";
import { noGrad, Rng, slice, type Tensor, tensor, tidy } from "../tensor/mod.ts";
import type { Decoder } from "./decoder.ts";

/** How the next token is chosen. */
export interface SampleOptions {
  /**
   * Softmax temperature; 0 means greedy (argmax).
   * @default {0}
   */
  temperature?: number;
  /**
   * Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches
   * `topP` (1 keeps all).
   * @default {1}
   */
  topP?: number;
}

/**
 * The distribution tokens are drawn from: one-hot at the argmax for temperature 0, else
 * `softmax(logits / temperature)` restricted to the top-p nucleus and renormalised.
 *
 * @param logits Logits of one position, length `V`.
 * @param options `temperature`, `topP`.
 * @returns Probabilities, length `V`, summing to 1.
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { samplingDistribution } from "./generate.ts";
 * assertAllClose(samplingDistribution([1, 3, 2]), [0, 1, 0]); // greedy
 * const e = [Math.exp(1), Math.exp(3), Math.exp(2)], z = e[1] + e[2];
 * assertAllClose(samplingDistribution([1, 3, 2], { temperature: 1, topP: 0.8 }), [0, e[1] / z, e[2] / z]);
 * ```
 */
export function samplingDistribution(
  logits: ArrayLike<number>,
  options: SampleOptions = {},
): Float64Array {
  const { temperature = 0, topP = 1 } = options;
  if (!(temperature >= 0) || !(topP > 0 && topP <= 1)) {
    throw new Error(
      `Cannot sample with temperature ${temperature} and topP ${topP}: expected ` +
        `temperature ≥ 0 and 0 < topP ≤ 1`,
    );
  }
  const v = logits.length;
  const probs = new Float64Array(v);
  if (temperature === 0) {
    probs[argmax(logits)] = 1;
    return probs;
  }
  let most = -Infinity;
  for (let i = 0; i < v; i++) most = Math.max(most, logits[i]);
  let z = 0;
  for (let i = 0; i < v; i++) z += probs[i] = Math.exp((logits[i] - most) / temperature);
  for (let i = 0; i < v; i++) probs[i] /= z; // softmax(logits / T)
  if (topP >= 1) return probs;
  const order = Array.from({ length: v }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  let mass = 0, kept = 0;
  while (kept < v && mass < topP) mass += probs[order[kept++]]; // the nucleus
  const out = new Float64Array(v);
  for (let j = 0; j < kept; j++) out[order[j]] = probs[order[j]] / mass;
  return out;
}

/** Index of the largest value (the first one at ties). */
function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/**
 * Draw an index from `probs` by inverse CDF with one uniform from `rng`.
 *
 * @param probs Probabilities (zeros are never drawn), e.g. from {@linkcode samplingDistribution}.
 * @param rng The random stream (advanced by one uniform).
 * @returns The drawn index.
 *
 * @example A one-hot distribution always gives its index
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { draw } from "./generate.ts";
 * strictEqual(draw(Float64Array.from([0, 0, 1]), new Rng(3)), 2);
 * ```
 */
export function draw(probs: Float64Array, rng: Rng): number {
  const u = rng.float();
  let acc = 0, last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    acc += probs[i];
    last = i;
    if (u < acc) return i;
  }
  return last; // rounding: u ≥ Σ p
}

/** Options for {@linkcode generate} and {@linkcode speculativeGenerate}. */
export interface GenerateOptions extends SampleOptions {
  /**
   * Tokens to generate after the prompt.
   * @default {32}
   */
  maxNewTokens?: number;
  /** The random stream for sampling. @default {new Rng(seed)} */
  rng?: Rng;
  /**
   * Seed of the sampling stream when no `rng` is given.
   * @default {0}
   */
  seed?: number;
}

/** What {@linkcode generate} returns. */
export interface GenerateResult {
  /** The generated tokens (prompt excluded). */
  tokens: number[];
  /** Wall-clock seconds, prefill included. */
  seconds: number;
  /** `tokens.length / seconds`. */
  tokensPerSec: number;
}

/** What {@linkcode speculativeGenerate} returns. */
export interface SpeculativeResult extends GenerateResult {
  /** Draft tokens proposed by MTP module 1. */
  drafted: number;
  /** Of those, accepted by the main model. */
  accepted: number;
  /** `accepted / drafted` (0 when nothing was drafted). */
  acceptanceRate: number;
  /** Main-model forward passes after the prefill. */
  mainSteps: number;
}

function checkPrompt(model: Decoder, prompt: readonly number[], maxNewTokens: number): void {
  if (prompt.length === 0) throw new Error("Cannot generate from an empty prompt");
  const v = model.config.vocab;
  const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= v);
  if (bad !== undefined) {
    throw new Error(`Cannot generate from prompt token ${bad}: expected an integer in [0, ${v})`);
  }
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new Error(`Cannot generate ${maxNewTokens} tokens: expected an integer ≥ 0`);
  }
}

/** One main-model step through the cache: host logits of every new position, hidden kept. */
function* mainStep(
  model: Decoder,
  ids: readonly number[],
  cache: KvCache,
): HostSteps<{ logits: Float32Array[]; h: Tensor }> {
  return yield* tidySteps(wrapSteps(
    noGrad,
    (function* () {
      const backend = model.embedTokens.backend;
      const x = tensor(ids, { dtype: "i32", shape: [1, ids.length], backend });
      const { h } = yield* model.trunkSteps(model.embed(x), { cache }); // [1, n, d]
      const host = Float32Array.from(yield model.head(h)); // [1, n, V]
      const v = model.config.vocab;
      const logits = ids.map((_, i) => host.subarray(i * v, (i + 1) * v));
      return { logits, h };
    })(),
  ));
}

/**
 * Generate with the KV cache: a prefill over the prompt, then one token per step.
 *
 * @param model The decoder.
 * @param prompt Prompt token ids (batch 1).
 * @param options Sampling (greedy by default), `maxNewTokens`, seed.
 * @returns The new tokens and the throughput.
 *
 * @example Greedy decoding is deterministic
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { Decoder, tinyConfig } from "./decoder.ts";
 * import { generate } from "./generate.ts";
 * const model = new Decoder(tinyConfig(), new Rng(0));
 * const a = generate(model, [1, 2, 3], { maxNewTokens: 5 });
 * strictEqual(a.tokens.length, 5);
 * deepStrictEqual(generate(model, [1, 2, 3], { maxNewTokens: 5 }).tokens, a.tokens);
 * ```
 */
export function generate(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions = {},
): GenerateResult {
  return runSync(generateSteps(model, prompt, options));
}

/**
 * {@linkcode generate} on any backend, WebGPU included (logits and MoE routing read
 * asynchronously); the same tokens as `generate` for the same model, prompt and options.
 *
 * @param model The decoder.
 * @param prompt Prompt token ids (batch 1).
 * @param options Sampling (greedy by default), `maxNewTokens`, seed.
 * @returns The new tokens and the throughput.
 */
export function generateAsync(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  return runAsync(generateSteps(model, prompt, options));
}

/**
 * `steps` with every segment in the model's precision: its Linear GEMMs in FP8 when
 * `config.fp8` is set, as in `Decoder.forward`.
 */
function inModelPrecision<R>(model: Decoder, steps: HostSteps<R>): HostSteps<R> {
  return wrapSteps((fn) => withFp8(model.config.fp8, fn), steps);
}

function generateSteps(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions,
): HostSteps<GenerateResult> {
  return inModelPrecision(model, plainSteps(model, prompt, options));
}

function* plainSteps(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions,
): HostSteps<GenerateResult> {
  const { maxNewTokens = 32, seed = 0 } = options;
  checkPrompt(model, prompt, maxNewTokens);
  const rng = options.rng ?? new Rng(seed);
  const started = performance.now();
  const cache = model.newCache();
  const tokens: number[] = [];
  try {
    let next = prompt;
    while (tokens.length < maxNewTokens) {
      const { logits, h } = yield* mainStep(model, next, cache);
      h.dispose();
      const token = draw(samplingDistribution(logits[logits.length - 1], options), rng);
      tokens.push(token);
      next = [token];
    }
  } finally {
    cache.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  return { tokens, seconds, tokensPerSec: tokens.length / Math.max(seconds, 1e-9) };
}

/** A copy of `cache` keeping the first `length` positions; `cache` is disposed. */
function truncateCache(cache: KvCache, length: number): KvCache {
  const out = new KvCache(cache.layers.length);
  tidy(() =>
    noGrad(() => {
      cache.layers.forEach((layer, i) => {
        const kept: Record<string, Tensor> = {};
        for (const [name, t] of layer.entries) kept[name] = slice(t, 1, 0, length);
        out.layer(i).append(kept);
      });
    })
  );
  cache.dispose();
  return out;
}

/**
 * Speculative decoding with MTP module 1 as the draft (one draft token per step, verified by
 * one main-model forward over two tokens). The output follows the main model's distribution;
 * greedy output equals {@linkcode generate}'s.
 *
 * @param model A decoder with at least one MTP module.
 * @param prompt Prompt token ids (batch 1).
 * @param options Sampling (greedy by default), `maxNewTokens`, seed.
 * @returns The new tokens, the acceptance rate and the throughput.
 *
 * @example Greedy speculative decoding equals greedy decoding
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { Decoder, tinyConfig } from "./decoder.ts";
 * import { generate, speculativeGenerate } from "./generate.ts";
 * const model = new Decoder(tinyConfig({ mtp: { depth: 1, lambda: 0.3 } }), new Rng(0));
 * const spec = speculativeGenerate(model, [1, 2, 3], { maxNewTokens: 6 });
 * deepStrictEqual(spec.tokens, generate(model, [1, 2, 3], { maxNewTokens: 6 }).tokens);
 * strictEqual(spec.acceptanceRate, spec.accepted / spec.drafted);
 * strictEqual(spec.mainSteps, spec.drafted); // one main forward verifies each draft
 * ```
 */
export function speculativeGenerate(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions = {},
): SpeculativeResult {
  return runSync(speculativeSteps(model, prompt, options));
}

/**
 * {@linkcode speculativeGenerate} on any backend, WebGPU included (host reads awaited).
 *
 * @param model A decoder with at least one MTP module.
 * @param prompt Prompt token ids (batch 1).
 * @param options Sampling (greedy by default), `maxNewTokens`, seed.
 * @returns The new tokens, the acceptance rate and the throughput.
 */
export function speculativeGenerateAsync(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions = {},
): Promise<SpeculativeResult> {
  return runAsync(speculativeSteps(model, prompt, options));
}

function speculativeSteps(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions,
): HostSteps<SpeculativeResult> {
  return inModelPrecision(model, draftAndVerifySteps(model, prompt, options));
}

function* draftAndVerifySteps(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions,
): HostSteps<SpeculativeResult> {
  const { maxNewTokens = 32, seed = 0, temperature = 0 } = options;
  checkPrompt(model, prompt, maxNewTokens);
  const mtp = model.mtp[0];
  if (mtp === undefined) {
    throw new Error("Cannot decode speculatively without an MTP module: set config.mtp.depth ≥ 1");
  }
  const rng = options.rng ?? new Rng(seed);
  const started = performance.now();
  let cache = model.newCache();
  const mtpCache = new KvCache(1);
  const backend = model.embedTokens.backend;
  const tokens: number[] = [];
  let drafted = 0, accepted = 0, mainSteps = 0;
  // Hidden states h^0 not yet given to MTP module 1, and the token after each of them.
  let queue: { h: Tensor; next: number[] } | null = null;
  try {
    // 1) prefill: the first new token comes from the main model alone
    const first = yield* mainStep(model, prompt, cache);
    let pending = draw(samplingDistribution(first.logits[prompt.length - 1], options), rng);
    tokens.push(pending);
    queue = { h: first.h, next: [...prompt.slice(1), pending] };
    while (tokens.length < maxNewTokens) {
      // 2) draft d ~ q from MTP module 1 on [Emb(next token); h^0] of the queued positions
      const { h: hq, next: nq } = queue as { h: Tensor; next: number[] };
      const q = yield* tidySteps(wrapSteps(
        noGrad,
        (function* () {
          const ids = tensor(nq, { dtype: "i32", shape: [1, nq.length], backend });
          const hk =
            (yield* mtp.forwardSteps(hq, model.embed(ids), { cache: mtpCache.layer(0) })).h;
          const last = slice(hk, 1, nq.length - 1, nq.length); // [1, 1, d]
          return samplingDistribution(yield mtp.logits(last, model.lmHead.weight), options);
        })(),
      ));
      queue.h.dispose();
      queue = null;
      const draft = draw(q, rng);
      drafted++;
      // 3) verify [pending, d] with one main forward: p after pending, p' after d
      const length = cache.length;
      const step = yield* mainStep(model, [pending, draft], cache);
      mainSteps++;
      const p = samplingDistribution(step.logits[0], options);
      const accept = temperature === 0
        ? p[draft] === 1
        : rng.float() < Math.min(1, p[draft] / q[draft]);
      if (accept) {
        // 4a) keep d, and take one more token from p'
        accepted++;
        const bonus = draw(samplingDistribution(step.logits[1], options), rng);
        tokens.push(draft, bonus);
        queue = { h: step.h, next: [draft, bonus] };
        pending = bonus;
      } else {
        // 4b) resample from norm(max(0, p − q)) (greedy: argmax p) and drop d from the cache
        const residual = p.map((pi, i) => Math.max(0, pi - q[i]));
        const mass = residual.reduce((a, b) => a + b, 0);
        const token = temperature === 0 || mass <= 0 ? draw(p, rng) : draw(
          residual.map((r) => r / mass),
          rng,
        );
        tokens.push(token);
        cache = truncateCache(cache, length + 1);
        queue = { h: slice(step.h, 1, 0, 1), next: [token] }; // h^0 after pending: [1, 1, d]
        step.h.dispose(); // the view keeps its storage alive
        pending = token;
      }
    }
  } finally {
    queue?.h.dispose();
    cache.dispose();
    mtpCache.dispose();
  }
  tokens.length = Math.min(tokens.length, maxNewTokens);
  const seconds = (performance.now() - started) / 1000;
  return {
    tokens,
    seconds,
    tokensPerSec: tokens.length / Math.max(seconds, 1e-9),
    drafted,
    accepted,
    acceptanceRate: drafted === 0 ? 0 : accepted / drafted,
    mainSteps,
  };
}

/** What {@linkcode compareDecoding} returns. */
export interface DecodingComparison {
  /** Plain decoding with the KV cache. */
  plain: GenerateResult;
  /** Speculative decoding with MTP module 1 as the draft. */
  speculative: SpeculativeResult;
  /** `speculative.tokensPerSec / plain.tokensPerSec`. */
  speedup: number;
}

/**
 * Run plain and speculative decoding on the same prompt and options and compare their
 * throughput (for reports; wall-clock numbers vary from run to run).
 *
 * @param model A decoder with at least one MTP module.
 * @param prompt Prompt token ids.
 * @param options Sampling, `maxNewTokens`, seed (both runs get the same seed).
 * @returns Both results and the speedup.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { Decoder, tinyConfig } from "./decoder.ts";
 * import { compareDecoding } from "./generate.ts";
 * const model = new Decoder(tinyConfig({ mtp: { depth: 1, lambda: 0.3 } }), new Rng(0));
 * const { speedup } = compareDecoding(model, [1, 2], { maxNewTokens: 4 });
 * ok(speedup > 0);
 * ```
 */
export function compareDecoding(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions = {},
): DecodingComparison {
  const { rng: _ignored, ...rest } = options;
  const plain = generate(model, prompt, rest);
  const speculative = speculativeGenerate(model, prompt, rest);
  return { plain, speculative, speedup: speculative.tokensPerSec / plain.tokensPerSec };
}

/**
 * {@linkcode compareDecoding} on any backend, WebGPU included.
 *
 * @param model A decoder with at least one MTP module.
 * @param prompt Prompt token ids.
 * @param options Sampling, `maxNewTokens`, seed (both runs get the same seed).
 * @returns Both results and the speedup.
 */
export async function compareDecodingAsync(
  model: Decoder,
  prompt: readonly number[],
  options: GenerateOptions = {},
): Promise<DecodingComparison> {
  const { rng: _ignored, ...rest } = options;
  const plain = await generateAsync(model, prompt, rest);
  const speculative = await speculativeGenerateAsync(model, prompt, rest);
  return { plain, speculative, speedup: speculative.tokensPerSec / plain.tokensPerSec };
}
