/**
 * Rule-based rewards (DeepSeek-R1, arXiv:2501.12948 §2.2.2 and §2.3.2): no reward model, only
 * rules a completion cannot argue with.
 *
 * - accuracy: exactly one `<answer>…</answer>` pair, nothing nested in it, and its trimmed
 *   content equals the task's answer → 1, else 0;
 * - format: the whole completion is `<think>X</think><answer>Y</answer>` (optional whitespace
 *   between the two parts and at the end), each tag exactly once and in this order, X and Y
 *   free of `<` and `>` → 1, else 0;
 * - language consistency (§2.3.2, "the proportion of target language words in the CoT"): the
 *   fraction of the characters inside `<think>` (the whole completion without tags when there
 *   is no well-formed think block) that belong to the allowed alphabet; an empty text scores 0.
 *
 * Every rule returns a number for every string: a completion longer than `maxChars` scores 0 on
 * all three (reward hacking by flooding is not paid, and the regular expressions never see
 * megabytes); no input throws.
 *
 * @module
 */

import { solve } from "./tasks.ts";

/** Characters the language-consistency reward counts as "on language": the arithmetic script. */
export const DEFAULT_ALLOWED = "0123456789+-*%=(),;: \n";

/** Options of {@linkcode scoreCompletion}. */
export interface RewardOptions {
  /**
   * Weight of the accuracy reward.
   * @default {1}
   */
  accuracy?: number;
  /**
   * Weight of the format reward.
   * @default {0.5}
   */
  format?: number;
  /**
   * Weight of the language-consistency reward (0 = off).
   * @default {0}
   */
  language?: number;
  /**
   * Characters counted as on-language.
   * @default {DEFAULT_ALLOWED}
   */
  allowed?: string;
  /**
   * Completions longer than this score 0 on every rule.
   * @default {4096}
   */
  maxChars?: number;
}

/** The rule scores of one completion and their weighted sum. */
export interface Reward {
  /** Weighted sum: what GRPO maximises. */
  total: number;
  /** 1 when the answer is right, else 0. */
  accuracy: number;
  /** 1 when the R1 format is well formed, else 0. */
  format: number;
  /** Fraction in [0, 1] of the reasoning in the allowed alphabet. */
  language: number;
}

const FORMAT = /^<think>([^<>]*)<\/think>\s*<answer>([^<>]*)<\/answer>\s*$/;
const ANSWER_OPEN = "<answer>", ANSWER_CLOSE = "</answer>";

function count(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * The answer inside the single `<answer>…</answer>` pair, trimmed, or `null` when there is no
 * such pair, more than one, an unclosed or nested one, or a tag inside the answer.
 *
 * @param completion Model output after the prompt.
 * @returns The answer text or `null`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { extractTaggedAnswer } from "./rewards.ts";
 * strictEqual(extractTaggedAnswer("<think>x</think><answer> 12 </answer>"), "12");
 * strictEqual(extractTaggedAnswer("<answer>1</answer><answer>2</answer>"), null);
 * ```
 */
export function extractTaggedAnswer(completion: string): string | null {
  if (typeof completion !== "string") return null;
  if (count(completion, ANSWER_OPEN) !== 1 || count(completion, ANSWER_CLOSE) !== 1) return null;
  const open = completion.indexOf(ANSWER_OPEN), close = completion.indexOf(ANSWER_CLOSE);
  if (close < open) return null;
  const inner = completion.slice(open + ANSWER_OPEN.length, close);
  if (inner.includes("<") || inner.includes(">")) return null;
  return inner.trim();
}

/**
 * Accuracy reward: 1 when the tagged answer equals the truth.
 *
 * @param completion Model output.
 * @param truth The correct answer.
 * @param options `maxChars`.
 * @returns 0 or 1.
 */
export function accuracyReward(
  completion: string,
  truth: string,
  options: Pick<RewardOptions, "maxChars"> = {},
): number {
  if (typeof completion !== "string" || completion.length > (options.maxChars ?? 4096)) return 0;
  const answer = extractTaggedAnswer(completion);
  return answer !== null && answer === truth ? 1 : 0;
}

/**
 * Format reward: 1 for exactly `<think>…</think><answer>…</answer>`.
 *
 * @param completion Model output.
 * @param options `maxChars`.
 * @returns 0 or 1.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatReward } from "./rewards.ts";
 * strictEqual(formatReward("<think>2+2=4</think><answer>4</answer>\n"), 1);
 * strictEqual(formatReward("<answer>4</answer><think>2+2=4</think>"), 0);
 * ```
 */
export function formatReward(
  completion: string,
  options: Pick<RewardOptions, "maxChars"> = {},
): number {
  if (typeof completion !== "string" || completion.length > (options.maxChars ?? 4096)) return 0;
  return FORMAT.test(completion) ? 1 : 0;
}

/**
 * Language-consistency reward: the share of the reasoning's characters in `allowed`.
 *
 * @param completion Model output.
 * @param options `allowed`, `maxChars`.
 * @returns A fraction in [0, 1] (0 for empty reasoning).
 */
export function languageReward(
  completion: string,
  options: Pick<RewardOptions, "allowed" | "maxChars"> = {},
): number {
  if (typeof completion !== "string" || completion.length > (options.maxChars ?? 4096)) return 0;
  const allowed = new Set(options.allowed ?? DEFAULT_ALLOWED);
  const think = FORMAT.exec(completion);
  const text = think !== null ? think[1] : completion.replace(/<\/?(?:think|answer)>/g, "");
  const chars = [...text];
  if (chars.length === 0) return 0;
  return chars.filter((c) => allowed.has(c)).length / chars.length;
}

/**
 * Every rule on one completion and the weighted total.
 *
 * @param prompt The task prompt (its answer is computed by rule).
 * @param completion Model output after the prompt.
 * @param options Weights and limits.
 * @returns The scores.
 *
 * @example A right answer in the right format
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { scoreCompletion } from "./rewards.ts";
 * deepStrictEqual(
 *   scoreCompletion("2+3=", "<think>2+3+0=5</think><answer>5</answer>\n"),
 *   { total: 1.5, accuracy: 1, format: 1, language: 1 },
 * );
 * ```
 */
export function scoreCompletion(
  prompt: string,
  completion: string,
  options: RewardOptions = {},
): Reward {
  const { accuracy: wa = 1, format: wf = 0.5, language: wl = 0 } = options;
  const accuracy = accuracyReward(completion, solve(prompt), options);
  const format = formatReward(completion, options);
  const language = languageReward(completion, options);
  return { total: wa * accuracy + wf * format + wl * language, accuracy, format, language };
}
