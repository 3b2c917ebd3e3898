/**
 * Batches of next-token windows from one token stream (nanoGPT's `get_batch`, made resumable).
 *
 * A window is `seqLen + 1` consecutive tokens starting at `s`: `inputs = tokens[s, s + T)` and
 * `targets = tokens[s + 1, s + T + 1)`, so `targets[t]` is the token after `inputs[t]`.
 * Shapes: `B` batch rows, `T = seqLen`; `inputs` and `targets` are row-major `[B, T]`.
 *
 * - Training, {@linkcode RandomBatches}: each row starts at a uniform random offset drawn from a
 *   seeded {@linkcode Rng}. Its `state()` (generator words + step) restores the exact stream, so a
 *   resumed run sees the same batches as an uninterrupted one.
 * - Validation, {@linkcode sequentialBatches}: non-overlapping windows at `0, T, 2T, …` in order,
 *   the same every time.
 *
 * @module
 */

import { Rng, type RngState } from "../tensor/random.ts";

export type { RngState } from "../tensor/random.ts";

/** Size of a batch. */
export interface BatchConfig {
  /** `B`, rows per batch. */
  batch: number;
  /** `T`, tokens per row (each row reads `T + 1` tokens). */
  seqLen: number;
}

/** One batch of next-token windows. */
export interface Batch {
  /** `[B, T]` row-major: `inputs[b T + t] = tokens[starts[b] + t]`. */
  inputs: Int32Array;
  /** `[B, T]` row-major: `targets[b T + t] = tokens[starts[b] + t + 1]`. */
  targets: Int32Array;
  /** `[B, T]`; `B` may be smaller than asked for the last sequential batch. */
  shape: [number, number];
  /** Offset of each row in the token stream. */
  starts: number[];
}

/** Configuration of {@linkcode RandomBatches}. */
export interface RandomBatchesConfig extends BatchConfig {
  /**
   * Seed of the data-order generator.
   * @default {0}
   */
  seed?: number;
}

/** Everything needed to resume a {@linkcode RandomBatches} stream exactly (JSON-safe). */
export interface BatchState {
  /** Generator words after the last batch drawn. */
  rng: RngState;
  /** Batches drawn so far. */
  step: number;
  /** `B`. */
  batch: number;
  /** `T`. */
  seqLen: number;
  /** Length of the token stream, checked on restore. */
  tokens: number;
}

/**
 * Seeded random windows for training, with a saveable position.
 *
 * @example Same seed, same batches; a saved state resumes the stream
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { RandomBatches } from "./batches.ts";
 * const tokens = Int32Array.from({ length: 100 }, (_, i) => i);
 * const a = new RandomBatches(tokens, { batch: 2, seqLen: 4, seed: 7 });
 * const first = a.next();
 * deepStrictEqual(first.shape, [2, 4]);
 * deepStrictEqual(first.targets[0], first.inputs[0] + 1);
 * const saved = a.state();
 * const resumed = RandomBatches.fromState(tokens, saved);
 * deepStrictEqual(resumed.next(), a.next());
 * ```
 */
export class RandomBatches {
  /** `B`. */
  readonly batch: number;
  /** `T`. */
  readonly seqLen: number;
  #tokens: Int32Array;
  #rng: Rng;
  #step = 0;

  /**
   * A stream of random batches over `tokens`.
   *
   * @param tokens The token stream; needs at least `seqLen + 1` tokens.
   * @param config `batch`, `seqLen` and `seed`.
   */
  constructor(tokens: Int32Array, config: RandomBatchesConfig) {
    checkConfig(tokens, config);
    this.batch = config.batch;
    this.seqLen = config.seqLen;
    this.#tokens = tokens;
    this.#rng = new Rng(config.seed ?? 0);
  }

  /**
   * Resume a stream saved with {@linkcode RandomBatches.state}.
   *
   * @param tokens The same token stream as before (its length is checked).
   * @param state The saved state.
   * @returns A stream whose next batch is the one the saved stream would have drawn next.
   *
   * @example Resume after a JSON round trip
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { RandomBatches } from "./batches.ts";
   * const tokens = new Int32Array(50).map((_, i) => i % 7);
   * const a = new RandomBatches(tokens, { batch: 3, seqLen: 5, seed: 1 });
   * a.next();
   * const b = RandomBatches.fromState(tokens, JSON.parse(JSON.stringify(a.state())));
   * deepStrictEqual(b.step, 1);
   * deepStrictEqual(b.next().starts, a.next().starts);
   * ```
   */
  static fromState(tokens: Int32Array, state: BatchState): RandomBatches {
    if (state.tokens !== tokens.length) {
      throw new Error(
        `Cannot restore batches drawn from ${state.tokens} tokens onto ${tokens.length} tokens: ` +
          `expected the same token stream`,
      );
    }
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new Error(`Cannot restore batches at step ${state.step}: expected an integer >= 0`);
    }
    const out = new RandomBatches(tokens, { batch: state.batch, seqLen: state.seqLen });
    out.#rng = Rng.fromState(state.rng);
    out.#step = state.step;
    return out;
  }

  /** Batches drawn so far. */
  get step(): number {
    return this.#step;
  }

  /**
   * Draw the next batch: `B` windows at uniform random offsets in `[0, N - T)`.
   *
   * @returns The batch.
   *
   * @example Rows are windows of the stream
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { RandomBatches } from "./batches.ts";
   * const tokens = Int32Array.from({ length: 20 }, (_, i) => 100 + i);
   * const { inputs, starts } = new RandomBatches(tokens, { batch: 1, seqLen: 3 }).next();
   * deepStrictEqual(Array.from(inputs), [100, 101, 102].map((x) => x + starts[0]));
   * ```
   */
  next(): Batch {
    const starts: number[] = [];
    const offsets = this.#tokens.length - this.seqLen; // valid starts: 0 .. N - T - 1
    for (let b = 0; b < this.batch; b++) starts.push(this.#rng.int(offsets));
    this.#step++;
    return gather(this.#tokens, starts, this.seqLen);
  }

  /**
   * The position of the stream, for a checkpoint.
   *
   * @returns A JSON-safe {@linkcode BatchState}.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { RandomBatches } from "./batches.ts";
   * const s = new RandomBatches(new Int32Array(10), { batch: 2, seqLen: 3 }).state();
   * deepStrictEqual([s.step, s.batch, s.seqLen, s.tokens], [0, 2, 3, 10]);
   * ```
   */
  state(): BatchState {
    return {
      rng: this.#rng.state(),
      step: this.#step,
      batch: this.batch,
      seqLen: this.seqLen,
      tokens: this.#tokens.length,
    };
  }
}

/** Configuration of {@linkcode sequentialBatches}. */
export interface SequentialBatchesConfig extends BatchConfig {
  /**
   * Stop after this many batches (to cap validation cost).
   * @default {Infinity}
   */
  maxBatches?: number;
}

/**
 * Number of non-overlapping windows of `seqLen + 1` tokens (sharing their boundary token) in a
 * stream of `length` tokens: `floor((length - 1) / seqLen)`.
 *
 * @param length Tokens in the stream.
 * @param seqLen `T`.
 * @returns The window count that {@linkcode sequentialBatches} covers.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { windowCount } from "./batches.ts";
 * deepStrictEqual(windowCount(11, 5), 2); // starts 0 and 5
 * ```
 */
export function windowCount(length: number, seqLen: number): number {
  return Math.max(0, Math.floor((length - 1) / seqLen));
}

/**
 * Deterministic validation pass: windows at `0, T, 2T, …` in order, `B` per batch (the last batch
 * may be smaller). Each token but the first is a target exactly once, up to the last full window.
 *
 * @param tokens The token stream; needs at least `seqLen + 1` tokens.
 * @param config `batch`, `seqLen` and `maxBatches`.
 * @returns A generator of batches.
 *
 * @example 11 tokens, T = 5: two windows in one batch
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { sequentialBatches } from "./batches.ts";
 * const tokens = Int32Array.from({ length: 11 }, (_, i) => i);
 * const batches = [...sequentialBatches(tokens, { batch: 4, seqLen: 5 })];
 * deepStrictEqual(batches.map((b) => b.starts), [[0, 5]]);
 * deepStrictEqual(Array.from(batches[0].targets), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
 * ```
 */
export function* sequentialBatches(
  tokens: Int32Array,
  config: SequentialBatchesConfig,
): Generator<Batch, void, undefined> {
  checkConfig(tokens, config);
  const { batch, seqLen, maxBatches = Infinity } = config;
  const windows = windowCount(tokens.length, seqLen);
  for (let w = 0, k = 0; w < windows && k < maxBatches; w += batch, k++) {
    const starts: number[] = [];
    for (let i = w; i < Math.min(w + batch, windows); i++) starts.push(i * seqLen);
    yield gather(tokens, starts, seqLen);
  }
}

function gather(tokens: Int32Array, starts: number[], seqLen: number): Batch {
  const inputs = new Int32Array(starts.length * seqLen);
  const targets = new Int32Array(starts.length * seqLen);
  starts.forEach((s, b) => {
    inputs.set(tokens.subarray(s, s + seqLen), b * seqLen);
    targets.set(tokens.subarray(s + 1, s + seqLen + 1), b * seqLen);
  });
  return { inputs, targets, shape: [starts.length, seqLen], starts };
}

function checkConfig(tokens: Int32Array, config: BatchConfig): void {
  const { batch, seqLen } = config;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new Error(`Cannot make batches of batch ${batch}: expected an integer >= 1`);
  }
  if (!Number.isInteger(seqLen) || seqLen < 1) {
    throw new Error(`Cannot make batches of seqLen ${seqLen}: expected an integer >= 1`);
  }
  if (tokens.length < seqLen + 1) {
    throw new Error(
      `Cannot make windows of seqLen ${seqLen} from ${tokens.length} tokens: ` +
        `expected at least ${seqLen + 1} tokens`,
    );
  }
}
