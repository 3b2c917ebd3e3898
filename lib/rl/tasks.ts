/**
 * Verifiable tasks for R1-style reinforcement learning (DeepSeek-R1, arXiv:2501.12948 §2.2.2:
 * "rule-based rewards" on problems with a deterministic answer): multi-digit addition, modular
 * arithmetic and sorting short lists. Every question carries its answer and a worked
 * chain of thought, so the same generator feeds pretraining text, cold-start SFT examples
 * (`<think>…</think><answer>…</answer>`) and the rule that scores a completion.
 *
 * Text uses a small task vocabulary ({@linkcode TaskTokenizer}): the four R1 tags are one token
 * each, `"\n"` ends a completion (EOS), and the rest are single characters.
 *
 * Prompts (`=` ends each):
 * - addition: `47+85=` → `132`; thought `7+5+0=12,4+8+1=13` (column sums, right to left, with
 *   the carry in)
 * - modular: `(17+45)%23=` → `16`; thought `17+45=62,62%23=16`
 * - sort: `sort(3,1,2)=` → `1,2,3`; thought `1;1,2;1,2,3` (selection sort: the sorted prefix
 *   after each pick)
 *
 * @module
 */

import { Rng } from "../tensor/random.ts";

/** The R1 tags, each a single token. */
export const TAGS = ["<think>", "</think>", "<answer>", "</answer>"] as const;

/** End of a completion (and of a line of pretraining text). */
export const EOS = "\n";

/** Characters of the task vocabulary besides the tags and EOS. */
export const TASK_ALPHABET = "0123456789+-*%=(),;: abcdefghijklmnopqrstuvwxyz";

/**
 * The task vocabulary: id 0 is EOS (`"\n"`), ids 1–4 the tags, then one id per character of
 * {@linkcode TASK_ALPHABET}.
 *
 * @example Tags are one token each and text round-trips
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { TaskTokenizer } from "./tasks.ts";
 * const tok = new TaskTokenizer();
 * const ids = tok.encode("<answer>12</answer>\n");
 * strictEqual(ids.length, 5);
 * deepStrictEqual(tok.decode(ids), "<answer>12</answer>\n");
 * ```
 */
export class TaskTokenizer {
  /** Number of ids. */
  readonly vocabSize: number = 1 + TAGS.length + TASK_ALPHABET.length;
  /** The id of EOS (`"\n"`). */
  readonly eos = 0;
  #pieces: string[] = [EOS, ...TAGS, ...TASK_ALPHABET];
  #ids = new Map(this.#pieces.map((p, i) => [p, i]));

  /**
   * Ids of `text`; tags are matched before characters.
   *
   * @param text Text over the task vocabulary.
   * @returns One id per tag or character.
   */
  encode(text: string): Int32Array {
    const out: number[] = [];
    let i = 0;
    outer: while (i < text.length) {
      if (text[i] === "<") {
        for (const [k, tag] of TAGS.entries()) {
          if (text.startsWith(tag, i)) {
            out.push(1 + k);
            i += tag.length;
            continue outer;
          }
        }
      }
      const id = this.#ids.get(text[i]);
      if (id === undefined) {
        throw new Error(
          `Cannot encode character ${JSON.stringify(text[i])} at ${i} of ${
            JSON.stringify(text.slice(0, 40))
          }: expected a tag, "\\n" or one of ${JSON.stringify(TASK_ALPHABET)}`,
        );
      }
      out.push(id);
      i++;
    }
    return Int32Array.from(out);
  }

  /**
   * Text of `ids` (ids outside the vocabulary decode to `"?"`).
   *
   * @param ids Token ids.
   * @returns The text.
   */
  decode(ids: ArrayLike<number>): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) s += this.#pieces[ids[i]] ?? "?";
    return s;
  }
}

/** Name of a task. */
export type TaskName = "addition" | "modular" | "sort";

/** Every task name. */
export const TASK_NAMES: readonly TaskName[] = ["addition", "modular", "sort"];

/** One question with its answer and a worked chain of thought. */
export interface Problem {
  task: TaskName;
  /** The text the model reads, ending in `=`. */
  prompt: string;
  /** The one correct answer. */
  answer: string;
  /** A correct reasoning trace (what goes inside `<think>`). */
  thought: string;
}

/** Options of {@linkcode makeProblem}. */
export interface TaskOptions {
  /**
   * Addition: digits per operand (operands in `[0, 10^digits)`).
   * @default {2}
   */
  digits?: number;
  /**
   * Modular: the modulus (operands in `[0, modulus)`).
   * @default {23}
   */
  modulus?: number;
  /**
   * Sort: list lengths in `[2, maxItems]`, items single digits.
   * @default {4}
   */
  maxItems?: number;
}

function addition(rng: Rng, digits: number): Problem {
  const top = 10 ** digits;
  const a = Math.floor(rng.float() * top), b = Math.floor(rng.float() * top);
  const da = String(a).split("").reverse(), db = String(b).split("").reverse();
  const steps: string[] = [];
  let carry = 0;
  for (let i = 0; i < Math.max(da.length, db.length); i++) {
    const x = Number(da[i] ?? 0), y = Number(db[i] ?? 0), s = x + y + carry;
    steps.push(`${x}+${y}+${carry}=${s}`);
    carry = s >= 10 ? 1 : 0;
  }
  return {
    task: "addition",
    prompt: `${a}+${b}=`,
    answer: String(a + b),
    thought: steps.join(","),
  };
}

function modular(rng: Rng, m: number): Problem {
  const a = Math.floor(rng.float() * m), b = Math.floor(rng.float() * m);
  const s = a + b, r = s % m;
  return {
    task: "modular",
    prompt: `(${a}+${b})%${m}=`,
    answer: String(r),
    thought: `${a}+${b}=${s},${s}%${m}=${r}`,
  };
}

function sortList(rng: Rng, maxItems: number): Problem {
  const n = 2 + Math.floor(rng.float() * (maxItems - 1));
  const items = Array.from({ length: n }, () => Math.floor(rng.float() * 10));
  const sorted = [...items].sort((x, y) => x - y);
  return {
    task: "sort",
    prompt: `sort(${items.join(",")})=`,
    answer: sorted.join(","),
    thought: sorted.map((_, i) => sorted.slice(0, i + 1).join(",")).join(";"),
  };
}

/**
 * A random problem of `task` drawn from `rng`.
 *
 * @param task Which task.
 * @param rng The random stream (advanced).
 * @param options Sizes of the problems.
 * @returns The problem.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { makeProblem, solve } from "./tasks.ts";
 * const p = makeProblem("addition", new Rng(1), { digits: 2 });
 * strictEqual(solve(p.prompt), p.answer);
 * ```
 */
export function makeProblem(task: TaskName, rng: Rng, options: TaskOptions = {}): Problem {
  const { digits = 2, modulus = 23, maxItems = 4 } = options;
  switch (task) {
    case "addition":
      if (!Number.isInteger(digits) || digits < 1 || digits > 6) {
        throw new Error(`Cannot make addition problems of ${digits} digits: expected 1 to 6`);
      }
      return addition(rng, digits);
    case "modular":
      if (!Number.isInteger(modulus) || modulus < 2 || modulus > 1000) {
        throw new Error(`Cannot make modular problems with modulus ${modulus}: expected 2 to 1000`);
      }
      return modular(rng, modulus);
    case "sort":
      if (!Number.isInteger(maxItems) || maxItems < 2 || maxItems > 9) {
        throw new Error(`Cannot make sort problems of up to ${maxItems} items: expected 2 to 9`);
      }
      return sortList(rng, maxItems);
    default:
      task satisfies never;
      throw new Error(
        `Cannot make a problem of task '${task}': expected one of ${TASK_NAMES.join(", ")}`,
      );
  }
}

/**
 * `count` problems of `task` from a seeded stream (the same seed gives the same problems).
 *
 * @param task Which task.
 * @param count How many.
 * @param options Sizes and `seed`.
 * @returns The problems.
 */
export function makeProblems(
  task: TaskName,
  count: number,
  options: TaskOptions & { seed?: number } = {},
): Problem[] {
  const rng = new Rng(options.seed ?? 0);
  return Array.from({ length: count }, () => makeProblem(task, rng, options));
}

/**
 * The correct answer of a prompt of any task (the rule the accuracy reward applies).
 *
 * @param prompt A prompt from {@linkcode makeProblem}.
 * @returns The answer text.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { solve } from "./tasks.ts";
 * strictEqual(solve("47+85="), "132");
 * strictEqual(solve("(17+45)%23="), "16");
 * strictEqual(solve("sort(3,1,2)="), "1,2,3");
 * ```
 */
export function solve(prompt: string): string {
  const add = /^(\d+)\+(\d+)=$/.exec(prompt);
  if (add !== null) return String(BigInt(add[1]) + BigInt(add[2]));
  const mod = /^\((\d+)\+(\d+)\)%(\d+)=$/.exec(prompt);
  if (mod !== null && BigInt(mod[3]) > 0n) {
    return String((BigInt(mod[1]) + BigInt(mod[2])) % BigInt(mod[3]));
  }
  const sort = /^sort\((\d(?:,\d)*)\)=$/.exec(prompt);
  if (sort !== null) return sort[1].split(",").map(Number).sort((a, b) => a - b).join(",");
  throw new Error(
    `Cannot solve prompt ${JSON.stringify(prompt)}: expected "a+b=", "(a+b)%m=" (m > 0) ` +
      `or "sort(d,d,...)=" with single digits`,
  );
}

/**
 * The R1 completion of a problem: `<think>thought</think><answer>answer</answer>` + EOS.
 *
 * @param problem The problem.
 * @returns The completion text (after the prompt).
 */
export function formatted(problem: Problem): string {
  return `<think>${problem.thought}</think><answer>${problem.answer}</answer>${EOS}`;
}

/** Options of {@linkcode taskCorpus}. */
export interface CorpusOptions extends TaskOptions {
  /**
   * Fraction of lines written in the R1 format (the rest are `prompt answer`): the base model
   * has seen the tags now and then, as a pretrained LLM has seen similar text.
   * @default {0.1}
   */
  formattedShare?: number;
  /**
   * Seed of the problems.
   * @default {0}
   */
  seed?: number;
}

/**
 * Pretraining text for `tasks`: one problem per line, mostly `prompt + answer`, a share in the
 * R1 format.
 *
 * @param tasks Tasks to mix (round-robin).
 * @param lines Number of lines.
 * @param options Sizes, the formatted share and the seed.
 * @returns The lines, each ending in EOS.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { taskCorpus } from "./tasks.ts";
 * const lines = taskCorpus(["addition"], 20, { formattedShare: 0.5 });
 * strictEqual(lines.length, 20);
 * strictEqual(lines.every((l) => l.endsWith("\n")), true);
 * ```
 */
export function taskCorpus(
  tasks: readonly TaskName[],
  lines: number,
  options: CorpusOptions = {},
): string[] {
  const { formattedShare = 0.1, seed = 0 } = options;
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const p = makeProblem(tasks[i % tasks.length], rng, options);
    out.push(p.prompt + (rng.float() < formattedShare ? formatted(p) : p.answer + EOS));
  }
  return out;
}
