/**
 * Seeded random numbers: xoshiro128** (Blackman & Vigna, 2018), seeded through splitmix32.
 *
 * One generator per purpose (init, data order, sampling) keeps streams independent: derive them
 * with `rng.fork("data")`. The whole state is four 32-bit words, so it can be saved in a
 * checkpoint with `rng.state()` and restored with `Rng.fromState()`.
 *
 * Ref: https://prng.di.unimi.it/xoshiro128starstar.c
 *
 * @module
 */

/** State of an {@linkcode Rng}: four unsigned 32-bit words, not all zero. */
export type RngState = [number, number, number, number];

/** One step of splitmix32: used to expand a seed into the four state words. */
function splitmix32(x: number): [next: number, out: number] {
  const next = (x + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** Hash a string to 32 bits (FNV-1a), used to name forked streams. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * A seeded xoshiro128** generator.
 *
 * @example Same seed, same stream
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * import { Rng } from "./random.ts";
 * const a = new Rng(42), b = new Rng(42);
 * assertEquals(a.nextU32(), b.nextU32());
 * ```
 */
export class Rng {
  #s = new Uint32Array(4);
  #spare: number | null = null;

  /** Create a generator from an integer seed (any 32-bit value, negative values wrap). */
  constructor(seed = 0) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(x);
      x = next;
      this.#s[i] = out;
    }
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /** Restore a generator saved with {@linkcode Rng.state}. */
  static fromState(state: RngState): Rng {
    if (!Array.isArray(state) || state.length !== 4 || state.some((w) => !Number.isInteger(w))) {
      throw new Error(
        `Cannot restore Rng from state ${JSON.stringify(state)}: expected 4 integers`,
      );
    }
    const rng = new Rng(0);
    for (let i = 0; i < 4; i++) rng.#s[i] = state[i] >>> 0;
    if ((rng.#s[0] | rng.#s[1] | rng.#s[2] | rng.#s[3]) === 0) {
      throw new Error("Cannot restore Rng from an all-zero state");
    }
    return rng;
  }

  /** The four state words, for checkpoints. A pending Box-Muller spare is dropped. */
  state(): RngState {
    return [this.#s[0], this.#s[1], this.#s[2], this.#s[3]];
  }

  /** An independent generator derived from this one's current state and a stream name. */
  fork(name: string): Rng {
    const h = fnv1a(name);
    return new Rng((this.#s[0] ^ Math.imul(this.#s[1], 31) ^ this.#s[2] ^ h) >>> 0);
  }

  /** Next unsigned 32-bit integer. */
  nextU32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  float(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform float in [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.float();
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new Error(`Cannot draw an integer below ${n}: expected an integer in [1, 2^32]`);
    }
    const limit = 4294967296 - (4294967296 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** Standard normal sample (Box-Muller; the second value of each pair is kept for the next call). */
  normal(mean = 0, std = 1): number {
    if (this.#spare !== null) {
      const z = this.#spare;
      this.#spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Normal sample truncated to [a, b] (absolute bounds, as PyTorch's `trunc_normal_`), by rejection. */
  truncatedNormal(mean = 0, std = 1, a = -2, b = 2): number {
    if (!(a < b)) throw new Error(`Cannot sample a truncated normal on [${a}, ${b}]: need a < b`);
    for (let tries = 0; tries < 10_000; tries++) {
      const x = this.normal(mean, std);
      if (x >= a && x <= b) return x;
    }
    throw new Error(
      `Cannot sample a truncated normal: [${a}, ${b}] is too far from mean ${mean} with std ${std}`,
    );
  }

  /** Shuffle an array in place (Fisher-Yates) and return it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
