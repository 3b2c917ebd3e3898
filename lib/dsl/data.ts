/**
 * Data specs: what a run trains on, as plain JSON that enters the run id. The runner turns a
 * spec into batches with `lib/data` (`brown()`, `BpeTokenizer.train`, `copyTask()` …); here the
 * spec is only declared and checked.
 *
 * @module
 */

import { asObj, deepFreeze, fail, Fields, quoteAll } from "./check.ts";

/** The tokenizer of a corpus: bytes (vocab 256) or a BPE trained on the training split. */
export type TokenizerSpec = "bytes" | { bpe: number };

/** The embedded Brown corpus with its fixed held-out split (`lib/data/brown.ts`). */
export interface BrownDataSpec {
  kind: "brown";
  tokenizer: TokenizerSpec;
  /** Every `valEvery`-th document is held out. */
  valEvery: number;
}

/** An operator of the arithmetic tasks. */
export type SyntheticOp = "+" | "-" | "*";

/** Fields every synthetic task has. */
interface SyntheticBase {
  kind: "synthetic";
  /** Training examples. */
  train: number;
  /** Held-out examples (generated with `seed + 1`). */
  val: number;
  /** Seed of the example generator (the run seed drives data order, not the examples). */
  seed: number;
}

/** `copy(s)=` → `s` (`lib/data/synthetic.ts` `copyTask`). */
export interface CopyDataSpec extends SyntheticBase {
  task: "copy";
  minLength: number;
  maxLength: number;
  alphabet: string;
}

/** `(a op b)%m=` (`modularTask`). */
export interface ModularDataSpec extends SyntheticBase {
  task: "modular";
  modulus: number;
  ops: SyntheticOp[];
}

/** `a op b=` with exact answers (`arithmeticTask`). */
export interface ArithmeticDataSpec extends SyntheticBase {
  task: "arithmetic";
  digits: number;
  ops: SyntheticOp[];
}

/** A synthetic task, byte-tokenized. */
export type SyntheticDataSpec = CopyDataSpec | ModularDataSpec | ArithmeticDataSpec;

/** What a run trains on. */
export type DataSpec = BrownDataSpec | SyntheticDataSpec;

/** Options of {@linkcode brown}. */
export interface BrownSpecOptions {
  /** @default {"bytes"} */
  tokenizer?: TokenizerSpec;
  /** @default {10} */
  valEvery?: number;
}

/** Options of {@linkcode synthetic}: the task and its fields, all but `task` optional. */
export type SyntheticOptions =
  | ({ task: "copy" } & Partial<Omit<CopyDataSpec, "kind" | "task">>)
  | ({ task: "modular" } & Partial<Omit<ModularDataSpec, "kind" | "task">>)
  | ({ task: "arithmetic" } & Partial<Omit<ArithmeticDataSpec, "kind" | "task">>);

/** Defaults of the data specs (those of `lib/data` for the task fields). */
export const DATA_DEFAULTS = {
  tokenizer: "bytes",
  /** 50 of 500 Brown documents held out. */
  valEvery: 10,
  /** Synthetic training examples. */
  train: 10_000,
  /** Synthetic held-out examples. */
  val: 1_000,
  seed: 0,
  minLength: 4,
  maxLength: 8,
  alphabet: "abcdefghijklmnopqrstuvwxyz",
  modulus: 97,
  modularOps: ["+", "-", "*"] as SyntheticOp[],
  digits: 3,
  arithmeticOps: ["+"] as SyntheticOp[],
} as const;

const MAX_BPE_VOCAB = 1 << 20; // as lib/data/tokenizer.ts
const OPS: readonly SyntheticOp[] = ["+", "-", "*"];

function resolveTokenizer(value: unknown, path: string): TokenizerSpec {
  const allowed = `"bytes" or { bpe: <vocab size from 256 to ${MAX_BPE_VOCAB}> }`;
  if (value === "bytes") return value;
  const obj = asObj(value, path, allowed);
  const f = new Fields(obj, path, true, ["bpe"]);
  return { bpe: f.num("bpe", { int: true, min: 256, max: MAX_BPE_VOCAB }) };
}

function resolveOps(f: Fields, def: SyntheticOp[]): SyntheticOp[] {
  const allowed = `a non-empty list of ${quoteAll(OPS)}`;
  const ops = f.raw("ops", () => [...def], allowed);
  if (!Array.isArray(ops) || ops.length === 0) fail(f.at("ops"), ops, allowed);
  ops.forEach((op, i) => {
    if (!OPS.includes(op)) fail(`${f.at("ops")}[${i}]`, op, `one of ${quoteAll(OPS)}`);
  });
  return [...ops];
}

/**
 * Resolve a data spec: fill defaults (or, `strict`, require every field) and check it.
 * Internal to the DSL; the public entry is {@linkcode validateDataSpec}.
 */
function resolveData(value: unknown, path: string, strict: boolean): DataSpec {
  const obj = asObj(value, path, "a data spec: brown() or synthetic()");
  const kind = new Fields(obj, path, true, Object.keys(obj)).oneOf("kind", ["brown", "synthetic"]);
  if (kind === "brown") {
    const f = new Fields(obj, path, strict, ["kind", "tokenizer", "valEvery"]);
    const tok = f.raw("tokenizer", () => DATA_DEFAULTS.tokenizer, '"bytes" or { bpe: n }');
    return {
      kind,
      tokenizer: resolveTokenizer(tok, f.at("tokenizer")),
      valEvery: f.num("valEvery", { int: true, min: 2 }, () => DATA_DEFAULTS.valEvery),
    };
  }
  const common = ["kind", "task", "train", "val", "seed"];
  const task = new Fields(obj, path, true, Object.keys(obj))
    .oneOf("task", ["copy", "modular", "arithmetic"] as const);
  const D = DATA_DEFAULTS;
  const base = (f: Fields): SyntheticBase => ({
    kind: "synthetic",
    train: f.num("train", { int: true, min: 1 }, () => D.train),
    val: f.num("val", { int: true, min: 1 }, () => D.val),
    seed: f.num("seed", { int: true, min: 0 }, () => D.seed),
  });
  switch (task) {
    case "copy": {
      const f = new Fields(obj, path, strict, [...common, "minLength", "maxLength", "alphabet"]);
      const minLength = f.num("minLength", { int: true, min: 1 }, () => D.minLength);
      const maxLength = f.num("maxLength", { int: true, min: 1 }, () => D.maxLength);
      if (maxLength < minLength) {
        fail(f.at("maxLength"), maxLength, `an integer >= minLength ${minLength}`);
      }
      const alphabet = f.str(
        "alphabet",
        /^[^\s()=]+$/u,
        "a non-empty string without whitespace, parentheses or =",
        () => D.alphabet,
      );
      return { ...base(f), task, minLength, maxLength, alphabet };
    }
    case "modular": {
      const f = new Fields(obj, path, strict, [...common, "modulus", "ops"]);
      const modulus = f.num("modulus", { int: true, min: 2 }, () => D.modulus);
      return { ...base(f), task, modulus, ops: resolveOps(f, D.modularOps) };
    }
    case "arithmetic": {
      const f = new Fields(obj, path, strict, [...common, "digits", "ops"]);
      const digits = f.num("digits", { int: true, min: 1 }, () => D.digits);
      return { ...base(f), task, digits, ops: resolveOps(f, D.arithmeticOps) };
    }
    default:
      return task satisfies never;
  }
}

/**
 * The Brown corpus (the embedded default), byte- or BPE-tokenized.
 *
 * @param options `tokenizer` ("bytes" or `{ bpe: vocabSize }`) and `valEvery` (10).
 * @returns The frozen data spec.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { brown } from "./data.ts";
 * deepStrictEqual(brown(), { kind: "brown", tokenizer: "bytes", valEvery: 10 });
 * deepStrictEqual(brown({ tokenizer: { bpe: 4096 } }).tokenizer, { bpe: 4096 });
 * ```
 */
export function brown(options: BrownSpecOptions = {}): BrownDataSpec {
  return deepFreeze(resolveData({ ...options, kind: "brown" }, "data", false) as BrownDataSpec);
}

/**
 * A synthetic task with checkable answers (byte-tokenized).
 *
 * @param options `task` and its fields; see {@linkcode DATA_DEFAULTS}.
 * @returns The frozen data spec.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { synthetic } from "./data.ts";
 * deepStrictEqual(synthetic({ task: "modular", modulus: 13 }), {
 *   kind: "synthetic", task: "modular", train: 10000, val: 1000, seed: 0, modulus: 13,
 *   ops: ["+", "-", "*"],
 * });
 * ```
 */
export function synthetic(options: SyntheticOptions): SyntheticDataSpec {
  const spec = resolveData({ ...options, kind: "synthetic" }, "data", false);
  return deepFreeze(spec as SyntheticDataSpec);
}

/** Options of {@linkcode validateDataSpec}. */
export interface ValidateDataOptions {
  /** Path prefix of errors. @default {"data"} */
  path?: string;
  /** Fill missing fields with defaults instead of rejecting them. @default {false} */
  defaults?: boolean;
}

/**
 * Check a data spec from JSON or the CLI.
 *
 * @param value Parsed JSON.
 * @param options `path` prefix and `defaults`.
 * @returns The frozen spec.
 * @throws {ConfigError} naming the path, the value and what is allowed.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, throws } from "node:assert/strict";
 * import { validateDataSpec } from "./data.ts";
 * deepStrictEqual(validateDataSpec({ kind: "brown", tokenizer: "bytes", valEvery: 10 }).kind, "brown");
 * throws(() => validateDataSpec({ kind: "brown", tokenizer: { bpe: 100 }, valEvery: 10 }), {
 *   message: "Cannot set data.tokenizer.bpe to 100: expected an integer >= 256 and <= 1048576",
 * });
 * ```
 */
export function validateDataSpec(value: unknown, options: ValidateDataOptions = {}): DataSpec {
  const { path = "data", defaults = false } = options;
  return deepFreeze(resolveData(value, path, !defaults));
}

/**
 * The tokenizer a data spec implies, as the model sees it.
 *
 * @param data A data spec.
 * @returns `{ tokenizer, vocab }`: bytes → 256, BPE → its size; synthetic tasks are bytes.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { brown, dataVocab } from "./data.ts";
 * deepStrictEqual(dataVocab(brown({ tokenizer: { bpe: 512 } })), { tokenizer: "bpe", vocab: 512 });
 * ```
 */
export function dataVocab(data: DataSpec): { tokenizer: "bytes" | "bpe"; vocab: number } {
  if (data.kind === "brown" && data.tokenizer !== "bytes") {
    return { tokenizer: "bpe", vocab: data.tokenizer.bpe };
  }
  return { tokenizer: "bytes", vocab: 256 };
}
