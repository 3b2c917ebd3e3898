/**
 * Tokenizers: {@linkcode ByteTokenizer} (UTF-8 bytes, vocab 256, ablate's default) and a trainable
 * byte-level {@linkcode BpeTokenizer} (Sennrich et al. 2016, arXiv:1508.07909; byte-level as in
 * GPT-2, Radford et al. 2019 §2.2).
 *
 * BPE: ids 0-255 are the bytes; merge `k` creates id `256 + k` from a pair of earlier ids. Text is
 * first cut into chunks (a letter run, a digit run or a punctuation run, each with at most one
 * leading space, or a whitespace run: {@linkcode BPE_PATTERN}) and merges never cross chunks.
 * Training repeatedly merges the most frequent adjacent pair; ties go to the pair with the smaller
 * first id, then the smaller second id, so the merges depend only on the text.
 *
 * Round trip: `decode(encode(s)) === s` for every well-formed string `s`. As with `TextEncoder`,
 * a lone surrogate (not valid Unicode) is encoded as U+FFFD.
 *
 * @module
 */

/** A text tokenizer: string to token ids and back. */
export interface Tokenizer {
  /** Number of distinct ids; every id is in `[0, vocabSize)`. */
  readonly vocabSize: number;
  /** Token ids of `text`. */
  encode(text: string): Int32Array;
  /** Text of `ids`; invalid UTF-8 (e.g. a cut multi-byte character) decodes to U+FFFD. */
  decode(ids: ArrayLike<number>): string;
}

/** Pre-tokenizer of {@linkcode BpeTokenizer}: GPT-2's pattern without the contraction rule. */
export const BPE_PATTERN: RegExp = / ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Largest vocabulary a {@linkcode BpeTokenizer} may have (pair keys stay exact doubles). */
export const MAX_BPE_VOCAB = 1 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder(); // not fatal: bad bytes become U+FFFD

/**
 * Bytes as tokens: `encode` gives the UTF-8 bytes of the text, vocabulary 256.
 *
 * @example Non-ASCII text takes several ids per character and round-trips
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { ByteTokenizer } from "./tokenizer.ts";
 * const tok = new ByteTokenizer();
 * deepStrictEqual(Array.from(tok.encode("é!")), [0xc3, 0xa9, 0x21]);
 * deepStrictEqual(tok.decode(tok.encode("naïve 🙂")), "naïve 🙂");
 * ```
 */
export class ByteTokenizer implements Tokenizer {
  /** Always 256. */
  readonly vocabSize = 256;

  /**
   * UTF-8 bytes of `text` as ids.
   *
   * @param text Any string.
   * @returns One id in `[0, 256)` per byte.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { ByteTokenizer } from "./tokenizer.ts";
   * deepStrictEqual(Array.from(new ByteTokenizer().encode("Hi")), [72, 105]);
   * ```
   */
  encode(text: string): Int32Array {
    return Int32Array.from(encoder.encode(text));
  }

  /**
   * Text of byte ids, decoded as UTF-8.
   *
   * @param ids Ids in `[0, 256)`.
   * @returns The text; invalid UTF-8 becomes U+FFFD.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { ByteTokenizer } from "./tokenizer.ts";
   * deepStrictEqual(new ByteTokenizer().decode([72, 105]), "Hi");
   * ```
   */
  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      bytes[i] = checkId(ids[i], 256);
    }
    return decoder.decode(bytes);
  }
}

/** Options for {@linkcode BpeTokenizer.train}. */
export interface BpeTrainOptions {
  /**
   * Train on the first `maxChars` UTF-16 code units of the text only (a sample, for speed).
   * Merges are then learnt from the sample but apply to any text.
   * @default {Infinity}
   */
  maxChars?: number;
  /**
   * Stop merging once the most frequent pair occurs fewer than `minCount` times, so the
   * vocabulary may end smaller than asked on a short text.
   * @default {2}
   */
  minCount?: number;
}

/** Serialized {@linkcode BpeTokenizer}, from `toJSON()`. */
export interface BpeJson {
  /** Always `"bpe"`. */
  type: "bpe";
  /** Format version, 1. */
  version: 1;
  /** Source of the pre-tokenizer pattern it was trained with ({@linkcode BPE_PATTERN}). */
  pattern: string;
  /** Merge `k` joins `merges[k] = [left, right]` into id `256 + k`. */
  merges: [number, number][];
}

/**
 * Byte-level BPE tokenizer: bytes plus learnt merges.
 *
 * @example Train, encode, decode, save and load
 * ```ts
 * import { deepStrictEqual, ok } from "node:assert/strict";
 * import { BpeTokenizer } from "./tokenizer.ts";
 * const text = "the cat sat on the mat; the cat ate the rat. ".repeat(20);
 * const bpe = BpeTokenizer.train(text, 264);
 * deepStrictEqual(bpe.vocabSize, 264);
 * ok(bpe.encode(text).length < text.length / 2); // 8 merges already halve it
 * deepStrictEqual(bpe.decode(bpe.encode("the théâtre ✓")), "the théâtre ✓");
 * const copy = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(bpe)));
 * deepStrictEqual(copy.encode(text), bpe.encode(text));
 * ```
 */
export class BpeTokenizer implements Tokenizer {
  /** `256 + merges.length`. */
  readonly vocabSize: number;
  /** Merge `k` joins `merges[k] = [left, right]` into id `256 + k`. */
  readonly merges: readonly (readonly [number, number])[];
  #ranks = new Map<number, number>(); // pair key -> merge index
  #bytes: Uint8Array[] = []; // id -> its bytes
  #cache = new Map<string, Int32Array>(); // chunk -> ids

  /**
   * A tokenizer from a merge list (as from `train` or `toJSON().merges`).
   *
   * @param merges Merge `k` joins `merges[k] = [left, right]`, two ids below `256 + k`.
   */
  constructor(merges: readonly (readonly [number, number])[]) {
    if (256 + merges.length > MAX_BPE_VOCAB) {
      throw new Error(`Cannot build a BPE of ${256 + merges.length} ids: at most ${MAX_BPE_VOCAB}`);
    }
    for (let b = 0; b < 256; b++) this.#bytes.push(Uint8Array.of(b));
    const list: [number, number][] = [];
    merges.forEach((pair, k) => {
      const id = 256 + k;
      const ok = Array.isArray(pair) && pair.length === 2 &&
        pair.every((x) => Number.isInteger(x) && x >= 0 && x < id);
      if (!ok) {
        throw new Error(
          `Cannot use BPE merge ${k} ${JSON.stringify(pair)}: expected two ids in [0, ${id})`,
        );
      }
      const [a, b] = pair;
      const key = pairKey(a, b);
      if (this.#ranks.has(key)) {
        throw new Error(`Cannot use BPE merge ${k} [${a}, ${b}]: the pair is merged twice`);
      }
      this.#ranks.set(key, k);
      const left = this.#bytes[a], right = this.#bytes[b];
      const joined = new Uint8Array(left.length + right.length);
      joined.set(left, 0);
      joined.set(right, left.length);
      this.#bytes.push(joined);
      list.push([a, b]);
    });
    this.merges = list;
    this.vocabSize = 256 + list.length;
  }

  /**
   * Learn merges from `text` until the vocabulary has `vocabSize` ids.
   *
   * Cost: one pass to count chunks, then per merge only the distinct chunks that contain the
   * merged pair are rewritten; the whole Brown training split (5.4 MB) to 1024 ids takes about
   * a second, so `maxChars` is rarely needed.
   *
   * @param text Training text.
   * @param vocabSize Target vocabulary, at least 256.
   * @param options `maxChars` (sample cap) and `minCount` (stop rule).
   * @returns The trained tokenizer.
   *
   * @example The most frequent pair is merged first
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { BpeTokenizer } from "./tokenizer.ts";
   * const bpe = BpeTokenizer.train("aaab aaab aaab", 257);
   * deepStrictEqual(bpe.merges, [[97, 97]]); // "a" + "a"
   * ```
   */
  static train(text: string, vocabSize: number, options: BpeTrainOptions = {}): BpeTokenizer {
    const { maxChars = Infinity, minCount = 2 } = options;
    if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize > MAX_BPE_VOCAB) {
      throw new Error(
        `Cannot train a BPE of vocabSize ${vocabSize}: expected an integer in [256, ${MAX_BPE_VOCAB}]`,
      );
    }
    if (!(maxChars >= 0)) {
      throw new Error(`Cannot train a BPE with maxChars ${maxChars}: expected a number >= 0`);
    }
    if (!(minCount >= 1)) {
      throw new Error(`Cannot train a BPE with minCount ${minCount}: expected a number >= 1`);
    }
    const sample = maxChars < text.length ? text.slice(0, maxChars) : text;

    // 1) Distinct chunks with their counts, as byte-id sequences.
    const chunkCounts = new Map<string, number>();
    for (const chunk of splitChunks(sample)) {
      chunkCounts.set(chunk, (chunkCounts.get(chunk) ?? 0) + 1);
    }
    const words: number[][] = [];
    const freqs: number[] = [];
    for (const [chunk, n] of chunkCounts) {
      words.push(Array.from(encoder.encode(chunk)));
      freqs.push(n);
    }

    // 2) Pair counts, the words each pair occurs in (may hold stale entries), and a max-heap.
    const counts = new Map<number, number>();
    const where = new Map<number, number[]>();
    const heap = new PairHeap();
    const changed = new Set<number>(); // pairs whose count moved during one merge
    const bump = (key: number, delta: number): void => {
      const n = (counts.get(key) ?? 0) + delta;
      if (n === 0) counts.delete(key);
      else counts.set(key, n);
      changed.add(key);
    };
    words.forEach((w, i) => {
      for (let j = 0; j + 1 < w.length; j++) {
        const key = pairKey(w[j], w[j + 1]);
        counts.set(key, (counts.get(key) ?? 0) + freqs[i]);
        const list = where.get(key);
        if (list === undefined) where.set(key, [i]);
        else if (list[list.length - 1] !== i) list.push(i);
      }
    });
    for (const [key, n] of counts) heap.push(n, key);

    // 3) Merge the best pair until the vocabulary is full or no pair is frequent enough.
    const merges: [number, number][] = [];
    const seen = new Int32Array(words.length).fill(-1);
    while (256 + merges.length < vocabSize) {
      let best = -1;
      while (heap.size > 0) {
        const [n, key] = heap.pop();
        if (counts.get(key) === n) {
          best = key;
          break;
        }
      }
      if (best < 0 || (counts.get(best) ?? 0) < minCount) break;
      const a = Math.floor(best / MAX_BPE_VOCAB), b = best % MAX_BPE_VOCAB;
      const id = 256 + merges.length;
      merges.push([a, b]);
      for (const i of where.get(best) ?? []) {
        if (seen[i] === id) continue;
        seen[i] = id;
        const w = words[i], f = freqs[i];
        if (!containsPair(w, a, b)) continue;
        for (let j = 0; j + 1 < w.length; j++) bump(pairKey(w[j], w[j + 1]), -f);
        const merged = mergePair(w, a, b, id);
        words[i] = merged;
        for (let j = 0; j + 1 < merged.length; j++) {
          const key = pairKey(merged[j], merged[j + 1]);
          bump(key, f);
          const list = where.get(key);
          if (list === undefined) where.set(key, [i]);
          else if (list[list.length - 1] !== i) list.push(i);
        }
      }
      where.delete(best);
      for (const key of changed) {
        const n = counts.get(key);
        if (n !== undefined) heap.push(n, key); // older entries of this pair are now stale
      }
      changed.clear();
    }
    return new BpeTokenizer(merges);
  }

  /**
   * Restore a tokenizer saved with `toJSON()` (or `JSON.stringify`).
   *
   * @param json A {@linkcode BpeJson} object.
   * @returns The tokenizer.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { BpeTokenizer } from "./tokenizer.ts";
   * const bpe = BpeTokenizer.fromJSON({ type: "bpe", version: 1, pattern: "", merges: [[104, 105]] });
   * deepStrictEqual(Array.from(bpe.encode("hi!")), [256, 33]);
   * ```
   */
  static fromJSON(json: unknown): BpeTokenizer {
    const j = json as Partial<BpeJson> | null;
    if (j === null || typeof j !== "object" || j.type !== "bpe" || j.version !== 1) {
      throw new Error(
        `Cannot load a BPE tokenizer from ${
          JSON.stringify(json)?.slice(0, 80)
        }: expected { type: "bpe", version: 1, merges }`,
      );
    }
    if (!Array.isArray(j.merges)) {
      throw new Error(`Cannot load a BPE tokenizer: expected merges to be an array of id pairs`);
    }
    return new BpeTokenizer(j.merges);
  }

  /**
   * The serializable form: merges plus the pre-tokenizer pattern.
   *
   * @returns A {@linkcode BpeJson} object.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { BpeTokenizer } from "./tokenizer.ts";
   * deepStrictEqual(new BpeTokenizer([[97, 98]]).toJSON().merges, [[97, 98]]);
   * ```
   */
  toJSON(): BpeJson {
    return {
      type: "bpe",
      version: 1,
      pattern: BPE_PATTERN.source,
      merges: this.merges.map(([a, b]) => [a, b]),
    };
  }

  /**
   * Token ids of `text`: chunks, then merges applied in training order.
   *
   * @param text Any string.
   * @returns The ids, each in `[0, vocabSize)`.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { BpeTokenizer } from "./tokenizer.ts";
   * const bpe = new BpeTokenizer([[97, 98], [256, 99]]); // "ab" = 256, "abc" = 257
   * deepStrictEqual(Array.from(bpe.encode("abcab")), [257, 256]);
   * ```
   */
  encode(text: string): Int32Array {
    const out: number[] = [];
    for (const chunk of splitChunks(text)) {
      let ids = this.#cache.get(chunk);
      if (ids === undefined) {
        ids = this.#encodeChunk(chunk);
        if (this.#cache.size >= 100_000) this.#cache.clear();
        this.#cache.set(chunk, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
    return Int32Array.from(out);
  }

  /**
   * Text of `ids`: their bytes concatenated and decoded as UTF-8.
   *
   * @param ids Ids in `[0, vocabSize)`.
   * @returns The text; invalid UTF-8 becomes U+FFFD.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { BpeTokenizer } from "./tokenizer.ts";
   * deepStrictEqual(new BpeTokenizer([[97, 98]]).decode([256, 33]), "ab!");
   * ```
   */
  decode(ids: ArrayLike<number>): string {
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      length += this.#bytes[checkId(ids[i], this.vocabSize)].length;
    }
    const bytes = new Uint8Array(length);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const piece = this.#bytes[ids[i]];
      bytes.set(piece, at);
      at += piece.length;
    }
    return decoder.decode(bytes);
  }

  /**
   * The bytes that token `id` stands for.
   *
   * @param id An id in `[0, vocabSize)`.
   * @returns A copy of its bytes.
   *
   * @example
   * ```ts
   * import { deepStrictEqual } from "node:assert/strict";
   * import { BpeTokenizer } from "./tokenizer.ts";
   * deepStrictEqual(new BpeTokenizer([[97, 98]]).tokenBytes(256), Uint8Array.of(97, 98));
   * ```
   */
  tokenBytes(id: number): Uint8Array {
    return this.#bytes[checkId(id, this.vocabSize)].slice();
  }

  #encodeChunk(chunk: string): Int32Array {
    let ids = Array.from(encoder.encode(chunk));
    while (ids.length > 1) {
      let bestRank = Infinity, a = -1, b = -1;
      for (let j = 0; j + 1 < ids.length; j++) {
        const rank = this.#ranks.get(pairKey(ids[j], ids[j + 1]));
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          a = ids[j];
          b = ids[j + 1];
        }
      }
      if (bestRank === Infinity) break;
      ids = mergePair(ids, a, b, 256 + bestRank);
    }
    return Int32Array.from(ids);
  }
}

/**
 * Cut `text` into the chunks that BPE merges stay inside ({@linkcode BPE_PATTERN}).
 *
 * @param text Any string.
 * @returns The chunks; joined, they give `text` back.
 *
 * @example Words keep their leading space
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { splitChunks } from "./tokenizer.ts";
 * deepStrictEqual(splitChunks("Hi there, 42!"), ["Hi", " there", ",", " 42", "!"]);
 * ```
 */
export function splitChunks(text: string): string[] {
  return text.match(BPE_PATTERN) ?? [];
}

function pairKey(a: number, b: number): number {
  return a * MAX_BPE_VOCAB + b;
}

function checkId(id: number, vocabSize: number): number {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new Error(`Cannot decode token ${id}: expected an integer id in [0, ${vocabSize})`);
  }
  return id;
}

function containsPair(w: readonly number[], a: number, b: number): boolean {
  for (let j = 0; j + 1 < w.length; j++) if (w[j] === a && w[j + 1] === b) return true;
  return false;
}

/** Replace each non-overlapping `a b` (left to right) by `id`. */
function mergePair(w: readonly number[], a: number, b: number, id: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < w.length; j++) {
    if (j + 1 < w.length && w[j] === a && w[j + 1] === b) {
      out.push(id);
      j++;
    } else {
      out.push(w[j]);
    }
  }
  return out;
}

/** Binary max-heap of (count, pair key): larger count first, then smaller key. */
class PairHeap {
  #counts: number[] = [];
  #keys: number[] = [];

  get size(): number {
    return this.#keys.length;
  }

  push(count: number, key: number): void {
    this.#counts.push(count);
    this.#keys.push(key);
    let i = this.#keys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  pop(): [count: number, key: number] {
    const top: [number, number] = [this.#counts[0], this.#keys[0]];
    const last = this.#keys.length - 1;
    this.#swap(0, last);
    this.#counts.pop();
    this.#keys.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.#before(l, m)) m = l;
      if (r < last && this.#before(r, m)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
    return top;
  }

  #before(i: number, j: number): boolean {
    const ci = this.#counts[i], cj = this.#counts[j];
    return ci > cj || (ci === cj && this.#keys[i] < this.#keys[j]);
  }

  #swap(i: number, j: number): void {
    const c = this.#counts[i], k = this.#keys[i];
    this.#counts[i] = this.#counts[j];
    this.#keys[i] = this.#keys[j];
    this.#counts[j] = c;
    this.#keys[j] = k;
  }
}
