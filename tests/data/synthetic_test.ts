import { deepStrictEqual, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import {
  arithmeticTask,
  checkAnswer,
  copyTask,
  extractAnswer,
  modularTask,
  solveSynthetic,
  syntheticText,
} from "../../lib/data/synthetic.ts";

Deno.test("copyTask() is seeded and its answers check", () => {
  const examples = copyTask(200, { seed: 1, minLength: 2, maxLength: 6, alphabet: "xyz" });
  deepStrictEqual(
    examples,
    copyTask(200, { seed: 1, minLength: 2, maxLength: 6, alphabet: "xyz" }),
  );
  notDeepStrictEqual(
    examples,
    copyTask(200, { seed: 2, minLength: 2, maxLength: 6, alphabet: "xyz" }),
  );
  const lengths = new Set(examples.map((e) => e.answer.length));
  deepStrictEqual([...lengths].sort(), [2, 3, 4, 5, 6]);
  for (const { task, prompt, answer } of examples) {
    deepStrictEqual(task, "copy");
    ok(/^[xyz]+$/.test(answer));
    deepStrictEqual(prompt, `copy(${answer})=`);
    ok(checkAnswer(prompt, answer));
    ok(!checkAnswer(prompt, answer + "x"));
    ok(!checkAnswer(prompt, answer.slice(1)));
  }
  deepStrictEqual(copyTask(2, { alphabet: "ü" }).map((e) => e.prompt.length > 0), [true, true]);
  throws(() => copyTask(1, { alphabet: "a b" }), /Cannot copy from alphabet "a b"/);
  throws(() => copyTask(1, { minLength: 5, maxLength: 4 }), /expected minLength <= maxLength/);
});

Deno.test("modularTask() answers are (a op b) mod m in [0, m), and wrong answers fail", () => {
  const m = 13;
  const examples = modularTask(300, { seed: 5, modulus: m });
  deepStrictEqual(examples, modularTask(300, { seed: 5, modulus: m }));
  notDeepStrictEqual(examples, modularTask(300, { seed: 6, modulus: m }));
  const ops = new Set<string>();
  for (const { prompt, answer } of examples) {
    const [, a, op, b] = /^\((\d+)([-+*])(\d+)\)%13=$/.exec(prompt) ?? [];
    ops.add(op);
    const x = Number(a), y = Number(b);
    ok(x < m && y < m);
    const exact = op === "+" ? x + y : op === "-" ? x - y : x * y;
    deepStrictEqual(Number(answer), ((exact % m) + m) % m);
    ok(checkAnswer(prompt, answer));
    ok(!checkAnswer(prompt, String((Number(answer) + 1) % m)));
  }
  deepStrictEqual([...ops].sort(), ["*", "+", "-"]);
  throws(
    () => modularTask(1, { modulus: 1 }),
    /Cannot use modulus 1: expected a safe integer >= 2/,
  );
  throws(() => modularTask(1, { ops: [] }), /Cannot use ops \[\]/);
});

Deno.test("arithmeticTask() gives exact multi-digit answers", () => {
  const examples = arithmeticTask(100, { seed: 7, digits: 25, ops: ["+", "-", "*"] });
  deepStrictEqual(examples, arithmeticTask(100, { seed: 7, digits: 25, ops: ["+", "-", "*"] }));
  for (const { prompt, answer } of examples) {
    const [, a, op, b] = /^(\d+)([-+*])(\d+)=$/.exec(prompt) ?? [];
    ok(a.length <= 25 && !/^0\d/.test(a));
    const x = BigInt(a), y = BigInt(b);
    deepStrictEqual(answer, String(op === "+" ? x + y : op === "-" ? x - y : x * y));
    ok(checkAnswer(prompt, `${answer}\nnext line`));
    ok(!checkAnswer(prompt, String(BigInt(answer) + 1n)));
  }
  ok(examples.some((e) => e.answer.startsWith("-")));
  // Default: 3-digit addition.
  for (const e of arithmeticTask(50)) ok(/^\d{1,3}\+\d{1,3}=$/.test(e.prompt), e.prompt);
  throws(() => arithmeticTask(1, { digits: 0 }), /Cannot make operands of 0 digits/);
});

Deno.test("checkAnswer() reads the R1 answer tag or the first line, exactly", () => {
  deepStrictEqual(checkAnswer("(5+9)%7=", "0"), true);
  deepStrictEqual(checkAnswer("(5+9)%7=", "<think>14 mod 7</think><answer>0</answer>"), true);
  deepStrictEqual(checkAnswer("(5+9)%7=", "<answer>7</answer> 0"), false);
  deepStrictEqual(checkAnswer("2+2=", "04"), false);
  deepStrictEqual(checkAnswer("2+2=", ""), false);
  deepStrictEqual(extractAnswer("  abc  \ndef"), "abc");
  deepStrictEqual(solveSynthetic("0-0="), "0");
  throws(() => solveSynthetic("2/2="), /Cannot solve synthetic prompt "2\/2=": expected/);
  throws(
    () => solveSynthetic("(1+1)%0="),
    /Cannot solve synthetic prompt "\(1\+1\)%0=": modulus is 0/,
  );
});

Deno.test("syntheticText() writes one prompt+answer per line", () => {
  const text = syntheticText(arithmeticTask(3, { seed: 2 }));
  const lines = text.split("\n");
  deepStrictEqual(lines.length, 4);
  deepStrictEqual(lines[3], "");
  for (const line of lines.slice(0, 3)) {
    const [prompt, answer] = [
      line.slice(0, line.indexOf("=") + 1),
      line.slice(line.indexOf("=") + 1),
    ];
    ok(checkAnswer(prompt, answer));
  }
  deepStrictEqual(syntheticText([]), "");
});
