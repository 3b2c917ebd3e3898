/** Task generators, their chains of thought and the tokenizer (lib/rl/tasks.ts). */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { Rng } from "../../lib/tensor/mod.ts";
import {
  formatted,
  makeProblem,
  solve,
  TASK_NAMES,
  taskCorpus,
  TaskTokenizer,
} from "../../lib/rl/tasks.ts";
import { scoreCompletion } from "../../lib/rl/rewards.ts";

Deno.test("makeProblem(): every task's answer equals the rule, and its formatted CoT scores full", () => {
  const rng = new Rng(3);
  const tok = new TaskTokenizer();
  for (const task of TASK_NAMES) {
    for (let i = 0; i < 50; i++) {
      const p = makeProblem(task, rng, { digits: 3, modulus: 97, maxItems: 6 });
      strictEqual(solve(p.prompt), p.answer);
      const s = scoreCompletion(p.prompt, formatted(p));
      deepStrictEqual([s.accuracy, s.format, s.language], [1, 1, 1]);
      strictEqual(tok.decode(tok.encode(p.prompt + formatted(p))), p.prompt + formatted(p));
    }
  }
});

Deno.test("addition thought: column sums with carries, right to left", () => {
  const p = { ...makeProblem("addition", new Rng(0), { digits: 2 }) };
  const cols = p.thought.split(",");
  let carry = 0, digits = "";
  for (const c of cols) {
    const [lhs, s] = c.split("=");
    const [x, y, cin] = lhs.split("+").map(Number);
    strictEqual(cin, carry);
    strictEqual(Number(s), x + y + cin);
    digits = String(Number(s) % 10) + digits;
    carry = Number(s) >= 10 ? 1 : 0;
  }
  strictEqual(Number((carry ? "1" : "") + digits), Number(p.answer));
});

Deno.test("solve() and the tokenizer reject what they do not know", () => {
  throws(() => solve("1*2="), /Cannot solve prompt "1\*2="/);
  throws(() => new TaskTokenizer().encode("é"), /Cannot encode character "é"/);
  throws(() => makeProblem("addition", new Rng(0), { digits: 0 }), /0 digits/);
});

Deno.test("taskCorpus(): the formatted share is respected", () => {
  const lines = taskCorpus(["addition", "modular", "sort"], 3000, { formattedShare: 0.2, seed: 1 });
  const share = lines.filter((l) => l.includes("<think>")).length / lines.length;
  strictEqual(Math.abs(share - 0.2) < 0.03, true, `share ${share}`);
  deepStrictEqual(taskCorpus(["sort"], 5, { seed: 4 }), taskCorpus(["sort"], 5, { seed: 4 }));
});
