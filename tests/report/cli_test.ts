import { equal, match } from "node:assert/strict";
import { reportMain } from "../../lib/report/cli.ts";
import { writeSyntheticStore } from "./_store.ts";

async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await reportMain(args, { log: (l) => out.push(l), error: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("reportMain() --help prints the usage", async () => {
  const r = await runCli(["--help"]);
  equal(r.code, 0);
  match(r.out, /^Usage: deno task report/);
  match(r.out, /--out DIR/);
  match(r.out, /--to DIR/);
});

Deno.test("reportMain() rejects an unknown option with the usage (exit 2)", async () => {
  const r = await runCli(["--bogus"]);
  equal(r.code, 2);
  match(r.err, /Unknown option '--bogus'/);
  match(r.err, /Usage: deno task report/);
});

Deno.test("reportMain() without results names the directory and how to produce them", async () => {
  const r = await runCli(["--out", ".test-tmp/no-store", "--to", ".test-tmp/no-report"]);
  equal(r.code, 1);
  match(r.err, /No finished runs under '\.test-tmp\/no-store'/);
  match(r.err, /deno task experiments/);
  const only = await runCli(["--out", ".test-tmp/no-store", "--only", "attention"]);
  equal(only.code, 1);
  match(only.err, /No results for experiment 'attention'/);
});

Deno.test("reportMain() writes the report of a store", async () => {
  const root = await writeSyntheticStore();
  try {
    const r = await runCli(["--out", root, "--to", `${root}/report`]);
    equal(r.code, 0, r.err);
    match(r.out, /^Wrote .*\/report\/index\.html \(ablation; 7 charts/);
    equal((await Deno.stat(`${root}/report/index.html`)).isFile, true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
