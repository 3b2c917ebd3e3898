import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { brown, experiment, model } from "../../lib/dsl/mod.ts";
import {
  checkMemory,
  defaultStore,
  inJupyter,
  runExperiments,
  type RunExperimentsResult,
} from "../../lib/runner/experiments.ts";
import type { PlannedRun, Reporter, RunStartInfo } from "../../lib/runner/progress.ts";
import { SILENT } from "../../lib/runner/progress.ts";
import { study } from "../../lib/runner/study.ts";
import { UsageError } from "../../lib/runner/usage.ts";
import type { Backend } from "../../lib/backend/backend.ts";
import { planOf } from "../../lib/runner/run.ts";
import * as root from "../../mod.ts";

const small = experiment({
  name: "small",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { a: {}, b: { layers: 2 } },
  data: brown(),
  train: { tokens: 1024, batch: 4, lr: 3e-3, budgets: { small: { tokens: 256 } } },
  seeds: [0],
});

async function tempStore(): Promise<string> {
  await Deno.mkdir(".test-tmp", { recursive: true });
  return await Deno.makeTempDir({ dir: ".test-tmp", prefix: "api_" });
}

Deno.test("runExperiments() calls the reporter's begin/runStart/end hooks and returns every run's outcome", async () => {
  const out = await tempStore();
  try {
    const begun: { out: string; budget: string; runs: PlannedRun[] }[] = [];
    const starts: RunStartInfo[] = [];
    const ended: RunExperimentsResult[] = [];
    const reporter: Reporter = {
      ...SILENT,
      begin: (info) => void begun.push(info),
      runStart: (info) => void starts.push(info),
      end: (result) => void ended.push(result),
    };
    const result = await runExperiments([small], { backend: "cpu", out, reporter });
    deepStrictEqual(begun, [{
      out,
      budget: "small",
      runs: [
        { label: "small/a/seed-0", experiment: "small", variant: "a", seed: 0, steps: 4 },
        { label: "small/b/seed-0", experiment: "small", variant: "b", seed: 0, steps: 4 },
      ],
    }]);
    deepStrictEqual(
      starts.map((s) => [s.index, s.count, s.experiment, s.variant, s.seed, s.fromStep]),
      [[1, 2, "small", "a", 0, 0], [2, 2, "small", "b", 0, 0]],
    );
    deepStrictEqual(ended, [result]);
    strictEqual(result.failed, 0);
    deepStrictEqual(result.runs.map((r) => [r.label, r.status]), [
      ["small/a/seed-0", "done"],
      ["small/b/seed-0", "done"],
    ]);
    strictEqual(result.runs[0].dir, `${out}/small/a/seed-0`);
    strictEqual(result.runs[0].summary?.steps, 4);
    const again = await runExperiments([small], {
      backend: "cpu",
      out,
      reporter: SILENT,
      only: ["small/b"],
    });
    deepStrictEqual(again.runs.map((r) => [r.label, r.status, r.detail]), [
      ["small/b/seed-0", "skipped", "already done"],
    ]);
    deepStrictEqual(again.runs[0].summary, result.runs[1].summary);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("runExperiments() rejects bad options and duplicate entry names with a message naming them", async () => {
  const reporter = SILENT;
  await rejects(
    runExperiments([small], { budjet: "small" } as never),
    /Unknown runExperiments option 'budjet': did you mean 'budget'\?/,
  );
  await rejects(
    runExperiments([small], { budget: "huge" as never, reporter }),
    /Invalid budget 'huge': expected 'small' or 'full'/,
  );
  await rejects(
    runExperiments([small], { onChanged: "keep" as never, reporter }),
    /Invalid onChanged 'keep': expected 'supersede' or 'stop'/,
  );
  await rejects(runExperiments([small], { only: [""], reporter }), /Invalid only entry ""/);
  await rejects(
    runExperiments([small], { jobs: 2, reporter }),
    /Cannot run with jobs 2: .* pass scriptUrl/,
  );
  await rejects(runExperiments([small], { only: ["small/a/b"], reporter }), UsageError);
  const twin = study({
    name: "small",
    description: "",
    variants: [],
    seeds: [0],
    run: () => Promise.resolve(),
  });
  await rejects(
    runExperiments([small, twin], { reporter }),
    /Two suite entries are named 'small' \(entries 1 and 2\): names must be unique/,
  );
});

Deno.test("defaultStore() is runs/ beside the nearest deno.json; inJupyter() is false outside the kernel", async () => {
  strictEqual(await defaultStore(), `${Deno.cwd()}/runs`);
  strictEqual(inJupyter(), false);
});

Deno.test("mod.ts exports what a notebook needs in one import", () => {
  for (
    const name of ["runExperiments", "openResults", "experiment", "model", "mla", "brown", "chart"]
  ) {
    ok(typeof (root as Record<string, unknown>)[name] === "function", name);
  }
});

Deno.test("checkMemory() shows the estimate and refuses a model the backend cannot hold, before training", () => {
  const huge = experiment({
    name: "huge",
    base: model({ vocab: "bytes", dModel: 2 ** 31, layers: 1, heads: 2, seqLen: 16 }),
    vary: { a: {} },
    data: brown(),
    train: { tokens: 1024, batch: 4, lr: 3e-3 },
  });
  const plans = [
    ...small.expand({ budget: "small", codeVersion: "v", backend: "b" }),
    ...huge.expand({ budget: "small", codeVersion: "v", backend: "b" }),
  ].map((s) => planOf(s));
  const wasm = { name: "wasm", description: "wasm (test)", heap: { maxPages: 65536 } };
  const lines: string[] = [];
  const reporter = { ...SILENT, log: (l: string) => void lines.push(l) };
  throws(
    () => checkMemory(plans, wasm as unknown as Backend, reporter),
    (e: Error) => {
      ok(e instanceof UsageError);
      ok(e.message.startsWith("Cannot train 1 run on wasm (test):\n  huge/a/seed-0: it needs ≈ "));
      ok(e.message.includes("more than the wasm backend's heap (4.00 GiB)"), e.message);
      ok(e.message.includes("Make the model smaller"), e.message);
      return true;
    },
  );
  ok(lines[0].startsWith("memory: ≈ ") && lines[0].includes("huge/a/seed-0"), lines[0]);
  checkMemory(plans.slice(0, 2), wasm as unknown as Backend, reporter); // the small ones fit
});
