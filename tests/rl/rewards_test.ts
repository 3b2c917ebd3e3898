/**
 * The rule rewards on edge cases: adversarial, malformed and huge completions get a defined
 * score and never throw (lib/rl/rewards.ts).
 */
import { strictEqual } from "node:assert/strict";
import {
  accuracyReward,
  extractTaggedAnswer,
  formatReward,
  languageReward,
  scoreCompletion,
} from "../../lib/rl/rewards.ts";

// [completion, accuracy vs truth "12", format]
const CASES: [string, string, number, number][] = [
  ["well formed, right", "<think>5+7+0=12</think><answer>12</answer>\n", 1, 1],
  ["well formed, wrong", "<think>5+7+0=13</think><answer>13</answer>\n", 0, 1],
  ["spaces inside the answer", "<think>x</think><answer> 12 </answer>", 1, 1],
  ["whitespace between the blocks", "<think>x</think>\n<answer>12</answer>\n", 1, 1],
  ["answer only", "<answer>12</answer>", 1, 0],
  ["think only", "<think>5+7=12</think>", 0, 0],
  ["plain answer, no tags", "12\n", 0, 0],
  ["empty", "", 0, 0],
  ["reversed order", "<answer>12</answer><think>x</think>", 1, 0],
  ["two answers (hedging)", "<think>x</think><answer>12</answer><answer>13</answer>", 0, 0],
  ["two identical answers", "<think>x</think><answer>12</answer><answer>12</answer>", 0, 0],
  ["nested answers", "<think>x</think><answer><answer>12</answer></answer>", 0, 0],
  ["unclosed answer", "<think>x</think><answer>12", 0, 0],
  ["close before open", "<think>x</think></answer>12<answer>", 0, 0],
  ["unclosed think", "<think>x<answer>12</answer>", 1, 0],
  ["repeated think", "<think>a</think><think>b</think><answer>12</answer>", 1, 0],
  ["tag inside think", "<think>a<answer>1</answer></think><answer>12</answer>", 0, 0],
  ["text before think", "so <think>x</think><answer>12</answer>", 1, 0],
  ["text after answer", "<think>x</think><answer>12</answer> and 13", 1, 0],
  ["leading zero", "<think>x</think><answer>012</answer>", 0, 1],
  ["plus sign", "<think>x</think><answer>+12</answer>", 0, 1],
  ["stray angle bracket in answer", "<think>x</think><answer>1<2</answer>", 0, 0],
  ["misspelt tag", "<think>x</think><anser>12</anser>", 0, 0],
  ["upper-case tags", "<THINK>x</THINK><ANSWER>12</ANSWER>", 0, 0],
  ["huge output", "<think>" + "1".repeat(100_000) + "</think><answer>12</answer>", 0, 0],
];

for (const [name, completion, accuracy, format] of CASES) {
  Deno.test(`rewards: ${name} → accuracy ${accuracy}, format ${format}`, () => {
    strictEqual(accuracyReward(completion, "12"), accuracy);
    strictEqual(formatReward(completion), format);
    const s = scoreCompletion("5+7=", completion);
    strictEqual(s.total, accuracy + 0.5 * format);
    strictEqual(s.language >= 0 && s.language <= 1, true);
  });
}

Deno.test("rewards: at least 20 edge cases are covered", () => {
  strictEqual(CASES.length >= 20, true);
});

Deno.test("languageReward() is the on-alphabet share of the reasoning, 0 when empty", () => {
  strictEqual(languageReward("<think>1+1=2</think><answer>2</answer>"), 1);
  strictEqual(languageReward("<think>ab12</think><answer>2</answer>"), 0.5);
  strictEqual(languageReward("<think></think><answer>2</answer>"), 0);
  strictEqual(languageReward("xy"), 0); // no think block: the whole text, tags removed
  strictEqual(languageReward("<think>ab</think><answer>2</answer>", { allowed: "ab" }), 1);
});

Deno.test("rewards: non-string input scores 0 and never throws", () => {
  const bad = [undefined, null, 42, {}] as unknown as string[];
  for (const b of bad) {
    strictEqual(accuracyReward(b, "1"), 0);
    strictEqual(formatReward(b), 0);
    strictEqual(languageReward(b), 0);
    strictEqual(extractTaggedAnswer(b), null);
  }
});

Deno.test("scoreCompletion() uses the weights; the truth comes from the prompt's rule", () => {
  const c = "<think>1,2</think><answer>1,2,3</answer>";
  const s = scoreCompletion("sort(3,1,2)=", c, { accuracy: 2, format: 1, language: 1 });
  strictEqual(s.accuracy, 1);
  strictEqual(s.total, 2 + 1 + 1);
});
