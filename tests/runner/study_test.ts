import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { main } from "../../lib/runner/cli.ts";
import { SILENT } from "../../lib/runner/progress.ts";
import { isStudy, study, type StudyContext, writeJsonAtomic } from "../../lib/runner/study.ts";

Deno.test("study(): names are checked like experiment names", () => {
  throws(
    () => study({ name: "1x", description: "", variants: [], seeds: [0], run: async () => {} }),
    /study name '1x' is invalid/,
  );
  throws(
    () =>
      study({ name: "s", description: "", variants: ["a", "a"], seeds: [0], run: async () => {} }),
    /variant names repeat/,
  );
  ok(isStudy(study({ name: "s", description: "", variants: [], seeds: [0], run: async () => {} })));
});

Deno.test("main() runs a selected study with its directory, budget and --only variants", async () => {
  const out = ".test-tmp/study-" + crypto.randomUUID().slice(0, 8);
  const seen: StudyContext[] = [];
  const s = study({
    name: "sim",
    description: "a simulator",
    variants: ["a", "b"],
    seeds: [0],
    run: async (ctx) => {
      seen.push(ctx);
      await writeJsonAtomic(`${ctx.dir}/result.json`, { budget: ctx.budget });
    },
  });
  const failing = study({
    name: "broken",
    description: "always fails",
    variants: [],
    seeds: [0],
    run: () => Promise.reject(new Error("boom")),
  });
  try {
    const lines: string[] = [];
    const reporter = { ...SILENT, log: (l: string) => lines.push(l) };
    strictEqual(
      await main(["--only", "sim/b", "--out", out, "--backend", "cpu"], [s, failing], { reporter }),
      0,
    );
    strictEqual(seen.length, 1);
    deepStrictEqual([seen[0].dir, seen[0].budget, seen[0].variants], [`${out}/sim`, "small", [
      "b",
    ]]);
    deepStrictEqual(JSON.parse(await Deno.readTextFile(`${out}/sim/result.json`)), {
      budget: "small",
    });
    ok(lines.some((l) => l.includes("0 runs + 1 studies")), lines.join("\n"));
    const ends: string[] = [];
    const r2 = {
      ...SILENT,
      runEnd: (i: { status: string; detail: string }) => ends.push(`${i.status}: ${i.detail}`),
    };
    strictEqual(
      await main(["--only", "broken", "--out", out, "--backend", "cpu"], [s, failing], {
        reporter: r2,
      }),
      1,
    );
    deepStrictEqual(ends, ["failed: boom"]);
    const listed: string[] = [];
    await main(["--list"], [s], { reporter: { ...SILENT, log: (l: string) => listed.push(l) } });
    deepStrictEqual(listed, ["sim: a, b × seeds 0 (study: a simulator)"]);
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});
