/**
 * Synthetic tasks for fast checks: each example is a prompt and one correct answer, as text, so
 * it works with any tokenizer and the answer of any output can be checked by rule (the reward of
 * GRPO, DeepSeek-R1 arXiv:2501.12948 §2.2.2).
 *
 * Prompt formats (parsed back by {@linkcode solveSynthetic}):
 * - copy: `copy(qxbz)=` → `qxbz`
 * - modular arithmetic: `(17+45)%97=` → `62` (result in `[0, m)`, also for `-`)
 * - multi-digit arithmetic: `123+4567=` → `4690` (exact, any number of digits; `-` may go negative)
 *
 * @module
 */

import { Rng } from "../tensor/random.ts";

/** Name of a synthetic task. */
export type SyntheticTask = "copy" | "modular" | "arithmetic";

/** An arithmetic operator of the synthetic tasks. */
export type SyntheticOp = "+" | "-" | "*";

/** One example: the model reads `prompt` and should write `answer`. */
export interface SyntheticExample {
  /** Task that produced it. */
  task: SyntheticTask;
  /** Text given to the model, ending in `=`. */
  prompt: string;
  /** The correct completion. */
  answer: string;
}

/** Options for {@linkcode copyTask}. */
export interface CopyTaskOptions {
  /**
   * Seed of the example generator.
   * @default {0}
   */
  seed?: number;
  /**
   * Shortest string to copy.
   * @default {4}
   */
  minLength?: number;
  /**
   * Longest string to copy.
   * @default {8}
   */
  maxLength?: number;
  /**
   * Characters to draw from (no whitespace, `(`, `)` or `=`).
   * @default {"abcdefghijklmnopqrstuvwxyz"}
   */
  alphabet?: string;
}

/**
 * Copy task: `copy(s)=` → `s` for random strings `s`.
 *
 * @param count Number of examples.
 * @param options `seed`, `minLength`, `maxLength`, `alphabet`.
 * @returns The examples; the same options give the same examples.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { copyTask } from "./synthetic.ts";
 * const [ex] = copyTask(1, { seed: 3, minLength: 5, maxLength: 5, alphabet: "ab" });
 * deepStrictEqual(ex.prompt, `copy(${ex.answer})=`);
 * deepStrictEqual(ex.answer.length, 5);
 * ```
 */
export function copyTask(count: number, options: CopyTaskOptions = {}): SyntheticExample[] {
  const { seed = 0, minLength = 4, maxLength = 8, alphabet = "abcdefghijklmnopqrstuvwxyz" } =
    options;
  checkCount(count);
  if (!Number.isInteger(minLength) || minLength < 1 || !Number.isInteger(maxLength)) {
    throw new Error(`Cannot make copy strings of length ${minLength}: expected an integer >= 1`);
  }
  if (maxLength < minLength) {
    throw new Error(
      `Cannot make copy strings of length [${minLength}, ${maxLength}]: expected minLength <= maxLength`,
    );
  }
  const chars = Array.from(alphabet);
  if (chars.length === 0 || chars.some((c) => /[\s()=]/u.test(c))) {
    throw new Error(
      `Cannot copy from alphabet ${JSON.stringify(alphabet)}: expected a non-empty string ` +
        `without whitespace, "(", ")" or "="`,
    );
  }
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const n = minLength + rng.int(maxLength - minLength + 1);
    const s = Array.from({ length: n }, () => chars[rng.int(chars.length)]).join("");
    return { task: "copy", prompt: `copy(${s})=`, answer: s };
  });
}

/** Options for {@linkcode modularTask}. */
export interface ModularTaskOptions {
  /**
   * Seed of the example generator.
   * @default {0}
   */
  seed?: number;
  /**
   * `m`: operands are uniform in `[0, m)` and answers are taken mod `m`.
   * @default {97}
   */
  modulus?: number;
  /**
   * Operators to draw from, uniformly.
   * @default {["+", "-", "*"]}
   */
  ops?: SyntheticOp[];
}

/**
 * Modular arithmetic (as in grokking, Power et al. 2022, arXiv:2201.02177): `(a op b)%m=`.
 *
 * @param count Number of examples.
 * @param options `seed`, `modulus`, `ops`.
 * @returns The examples; the same options give the same examples.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { modularTask, solveSynthetic } from "./synthetic.ts";
 * const examples = modularTask(3, { modulus: 7, ops: ["-"] });
 * for (const ex of examples) deepStrictEqual(solveSynthetic(ex.prompt), ex.answer);
 * deepStrictEqual(solveSynthetic("(2-5)%7="), "4");
 * ```
 */
export function modularTask(count: number, options: ModularTaskOptions = {}): SyntheticExample[] {
  const { seed = 0, modulus = 97, ops = ["+", "-", "*"] } = options;
  checkCount(count);
  if (!Number.isSafeInteger(modulus) || modulus < 2) {
    throw new Error(`Cannot use modulus ${modulus}: expected a safe integer >= 2`);
  }
  checkOps(ops);
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const a = rng.int(modulus), b = rng.int(modulus), op = ops[rng.int(ops.length)];
    const prompt = `(${a}${op}${b})%${modulus}=`;
    return { task: "modular", prompt, answer: solveSynthetic(prompt) };
  });
}

/** Options for {@linkcode arithmeticTask}. */
export interface ArithmeticTaskOptions {
  /**
   * Seed of the example generator.
   * @default {0}
   */
  seed?: number;
  /**
   * Operands are uniform in `[0, 10^digits)` (written without leading zeros).
   * @default {3}
   */
  digits?: number;
  /**
   * Operators to draw from, uniformly.
   * @default {["+"]}
   */
  ops?: SyntheticOp[];
}

/**
 * Multi-digit arithmetic: `a op b=` with exact (BigInt) answers.
 *
 * @param count Number of examples.
 * @param options `seed`, `digits`, `ops`.
 * @returns The examples; the same options give the same examples.
 *
 * @example
 * ```ts
 * import { deepStrictEqual, ok } from "node:assert/strict";
 * import { arithmeticTask } from "./synthetic.ts";
 * const [ex] = arithmeticTask(1, { seed: 1, digits: 20, ops: ["*"] });
 * ok(/^\d+\*\d+=$/.test(ex.prompt));
 * const [a, b] = ex.prompt.slice(0, -1).split("*").map(BigInt);
 * deepStrictEqual(ex.answer, String(a * b));
 * ```
 */
export function arithmeticTask(
  count: number,
  options: ArithmeticTaskOptions = {},
): SyntheticExample[] {
  const { seed = 0, digits = 3, ops = ["+"] } = options;
  checkCount(count);
  if (!Number.isInteger(digits) || digits < 1) {
    throw new Error(`Cannot make operands of ${digits} digits: expected an integer >= 1`);
  }
  checkOps(ops);
  const rng = new Rng(seed);
  const operand = (): string => {
    const s = Array.from({ length: digits }, () => String(rng.int(10))).join("");
    return s.replace(/^0+(?=\d)/, "");
  };
  return Array.from({ length: count }, () => {
    const a = operand(), b = operand(), op = ops[rng.int(ops.length)];
    const prompt = `${a}${op}${b}=`;
    return { task: "arithmetic", prompt, answer: solveSynthetic(prompt) };
  });
}

/**
 * The correct answer to a synthetic prompt, computed from the prompt alone.
 *
 * @param prompt A prompt in one of the task formats (`copy(s)=`, `(a op b)%m=`, `a op b=`).
 * @returns The answer text.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { solveSynthetic } from "./synthetic.ts";
 * deepStrictEqual(solveSynthetic("copy(abc)="), "abc");
 * deepStrictEqual(solveSynthetic("(50*3)%97="), "53");
 * deepStrictEqual(solveSynthetic("12-345="), "-333");
 * ```
 */
export function solveSynthetic(prompt: string): string {
  const copy = /^copy\(([^\s()=]+)\)=$/u.exec(prompt);
  if (copy !== null) return copy[1];
  const mod = /^\((\d+)([-+*])(\d+)\)%(\d+)=$/.exec(prompt);
  if (mod !== null) {
    const m = BigInt(mod[4]);
    if (m === 0n) throw new Error(`Cannot solve synthetic prompt "${prompt}": modulus is 0`);
    const r = apply(BigInt(mod[1]), mod[2], BigInt(mod[3])) % m;
    return String(r < 0n ? r + m : r);
  }
  const arith = /^(\d+)([-+*])(\d+)=$/.exec(prompt);
  if (arith !== null) return String(apply(BigInt(arith[1]), arith[2], BigInt(arith[3])));
  throw new Error(
    `Cannot solve synthetic prompt ${JSON.stringify(prompt)}: ` +
      `expected "copy(s)=", "(a op b)%m=" or "a op b=" with op one of + - *`,
  );
}

/**
 * The answer a model gave: the text inside `<answer>…</answer>` if present (the R1 format),
 * else the first line of the output, trimmed.
 *
 * @param output Model output after the prompt.
 * @returns The answer text to compare.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { extractAnswer } from "./synthetic.ts";
 * deepStrictEqual(extractAnswer(" 42\n7+1=8"), "42");
 * deepStrictEqual(extractAnswer("<think>4+5</think><answer> 9 </answer>"), "9");
 * ```
 */
export function extractAnswer(output: string): string {
  const tagged = /<answer>([\s\S]*?)<\/answer>/.exec(output);
  if (tagged !== null) return tagged[1].trim();
  return output.trimStart().split("\n", 1)[0].trim();
}

/**
 * Whether `output` answers `prompt` correctly (exact text match of {@linkcode extractAnswer}
 * with {@linkcode solveSynthetic}; `062` or `+62` do not count as `62`).
 *
 * @param prompt A synthetic prompt.
 * @param output Model output after the prompt.
 * @returns `true` when the answer is right.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { checkAnswer } from "./synthetic.ts";
 * deepStrictEqual(checkAnswer("19+23=", "42\n"), true);
 * deepStrictEqual(checkAnswer("19+23=", "41"), false);
 * ```
 */
export function checkAnswer(prompt: string, output: string): boolean {
  return extractAnswer(output) === solveSynthetic(prompt);
}

/**
 * Training text from examples: one `prompt + answer` per line.
 *
 * @param examples The examples.
 * @returns The lines joined by `"\n"`, with a final `"\n"` (empty for no examples).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { syntheticText } from "./synthetic.ts";
 * const text = syntheticText([{ task: "arithmetic", prompt: "1+1=", answer: "2" }]);
 * deepStrictEqual(text, "1+1=2\n");
 * ```
 */
export function syntheticText(examples: readonly SyntheticExample[]): string {
  return examples.map((e) => `${e.prompt}${e.answer}\n`).join("");
}

function apply(a: bigint, op: string, b: bigint): bigint {
  const o = op as SyntheticOp;
  switch (o) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    default:
      return o satisfies never;
  }
}

function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 0) {
    throw new Error(`Cannot make ${count} examples: expected an integer >= 0`);
  }
}

function checkOps(ops: readonly string[]): void {
  if (ops.length === 0 || ops.some((op) => op !== "+" && op !== "-" && op !== "*")) {
    throw new Error(`Cannot use ops ${JSON.stringify(ops)}: expected a non-empty list of + - *`);
  }
}
