import { notStrictEqual, strictEqual } from "node:assert/strict";
import { codeText } from "../../lib/runner/code_text.ts";

Deno.test("codeText() keeps `//` and `/*` inside strings, templates and regex literals", () => {
  strictEqual(codeText('const u = "http://x"; // note'), 'const u="http://x";');
  strictEqual(codeText("const r = /a\\/\\/b[/]*/g; // note"), "const r= /a\\/\\/b[/]*/g;");
  strictEqual(codeText("const t = `a // b /* c */`;"), "const t=`a // b /* c */`;");
  strictEqual(
    codeText("const t = `x ${f(\n  1, // one\n  `y ${z /* in */}`,\n)} w`;"),
    "const t=`x ${f(1,`y ${z}`)} w`;",
  );
});

Deno.test("codeText() tells a division from a regex by the token before it", () => {
  strictEqual(codeText("a = b / c / d;"), "a=b/c/d;");
  strictEqual(codeText("a = (b) / 2 // half"), "a=(b)/2");
  strictEqual(codeText("return /x\\/y/.test(s);"), "return/x\\/y/.test(s);");
  strictEqual(codeText("if (ok) x = [/a/, /b/];"), "if(ok)x=[/a/,/b/];");
});

Deno.test("codeText() drops layout but keeps the spaces tokens need", () => {
  const a = "export function f(\n  a: number,\n  b: number,\n): number {\n  return a + +b;\n}\n";
  const b =
    "/** Doc. */\nexport function f(a: number, b: number): number {\n  return a + +b; // sum\n}";
  strictEqual(codeText(a), codeText(b));
  strictEqual(codeText(a), "export function f(a:number,b:number):number{return a+ +b;}");
  strictEqual(codeText("const x = typeof y;"), "const x=typeof y;");
});

Deno.test("codeText() changes with every token: a number, a name, an operator, a string", () => {
  const base = codeText('const betas = options.betas ?? [0.9, 0.95]; const s = "a";');
  for (
    const edit of [
      'const betas = options.betas ?? [0.9, 0.99]; const s = "a";',
      'const betas = options.beta ?? [0.9, 0.95]; const s = "a";',
      'const betas = options.betas || [0.9, 0.95]; const s = "a";',
      'const betas = options.betas ?? [0.9, 0.95]; const s = "a ";',
    ]
  ) notStrictEqual(codeText(edit), base, edit);
});
