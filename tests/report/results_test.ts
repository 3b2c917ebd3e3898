import { deepEqual, equal, match, rejects } from "node:assert/strict";
import {
  escapeMarkdown,
  formatMeanCi,
  listExperiments,
  loadResults,
  resultsTable,
  summarize,
} from "../../lib/report/results.ts";
import { meanCi } from "../../lib/report/stats.ts";
import { assertAllClose } from "../../lib/tensor/assert.ts";
import { STEPS, syntheticResults, writeSyntheticStore } from "./_store.ts";

Deno.test("loadResults() reads finished runs by variant and seed, steps in order", async () => {
  const root = await writeSyntheticStore();
  try {
    const r = await loadResults(root, "ablation");
    deepEqual(r.variants, ["base", "fp8", "moe"]);
    deepEqual(r.runs.map((x) => `${x.variant}/${x.seed}`), [
      "base/0",
      "base/1",
      "fp8/0",
      "fp8/1",
      "moe/0",
      "moe/1",
    ]);
    deepEqual(r.incomplete, ["base/seed-2"]);
    deepEqual(r.problems, [{
      variant: "base",
      seed: 2,
      status: "unfinished",
      reason: "not finished (interrupted, or not run yet)",
    }]);
    deepEqual(r.runs[0].steps.map((s) => s.step), Array.from({ length: STEPS }, (_, i) => i + 1));
    equal(r.runs[0].summary.metrics.valLoss, 2);
    equal((r.runs[0].config?.plan as { model: { dModel: number } }).model.dModel, 64);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadResults() on a missing experiment names the directory and the command", async () => {
  await rejects(
    loadResults(".test-tmp/no-store", "attention"),
    (e: Error) => {
      match(e.message, /'\.test-tmp\/no-store\/attention' does not exist/);
      match(e.message, /deno task experiments --only attention --out \.test-tmp\/no-store/);
      return true;
    },
  );
});

Deno.test("listExperiments() skips hidden directories and directories without runs", async () => {
  const root = await writeSyntheticStore();
  try {
    deepEqual(await listExperiments(root), ["ablation"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("summarize() takes mean and 95% CI of every metric over seeds", () => {
  const [base] = summarize(syntheticResults());
  deepEqual(base.seeds, [0, 1]);
  const ci = meanCi([2, 2.05]);
  assertAllClose(base.metrics.valLoss.mean, 2.025);
  assertAllClose(base.metrics.valLoss.halfWidth ?? NaN, ci.halfWidth ?? NaN);
  equal(base.metrics.kvBytesPerToken.halfWidth, 0);
  assertAllClose(base.metrics.finalTrainLoss.mean, 5 / Math.sqrt(STEPS) + 0.01);
});

Deno.test("resultsTable() writes variant, seeds and mean ± CI with units", () => {
  const results = syntheticResults();
  results.runs = results.runs.filter((r) => !(r.variant === "moe" && r.seed === 1));
  const table = resultsTable(results, {
    metrics: ["valLoss", "kvBytesPerToken", "trainTokensPerSec"],
  });
  // valLoss: mean 2.025, half-width 12.7062 · 0.035355 / √2 = 0.317655 → 4 decimals
  const expected = [
    "| variant | seeds | Validation loss (nats/token) | KV cache (bytes/token) | Training speed (tokens/s) |",
    "| :------ | ----: | ---------------------------: | ---------------------: | ------------------------: |",
    "| base    |     2 |              2.0250 ± 0.3177 |                  1,024 |                  1,005 ± 64 |",
    "| fp8     |     2 |              2.1250 ± 0.3177 |                    512 |                  1,105 ± 64 |",
    "| moe     |     1 |                       2.2000 |                    341 |                       1,200 |",
  ];
  // The padding of the last column follows its widest cell.
  const lines = table.trimEnd().split("\n");
  equal(lines.length, 5);
  deepEqual(
    lines.map((l) => l.split("|").map((c) => c.trim())),
    expected.map((l) => l.split("|").map((c) => c.trim())),
  );
  // every row has the same width (aligned columns)
  equal(new Set(lines.map((l) => l.length)).size, 1);
});

Deno.test("resultsTable() escapes Markdown and HTML in variant names", () => {
  const results = syntheticResults("e", ["a|b", "<img src=x onerror=alert(1)>", "c"]);
  const table = resultsTable(results, { metrics: ["valLoss"] });
  match(table, /\| a\\\|b +\|/);
  match(table, /&lt;img src=x onerror=alert\(1\)&gt;/);
  equal(table.includes("<img"), false);
  equal(escapeMarkdown("x\ny*_`~[]"), "x y\\*\\_\\`\\~\\[\\]");
});

Deno.test("formatMeanCi() shows one seed without an interval and widens decimals to the CI", () => {
  equal(formatMeanCi(meanCi([2.5]), "valLoss"), "2.5000");
  equal(formatMeanCi(meanCi([1000, 1010]), "trainTokensPerSec"), "1,005 ± 64");
  equal(formatMeanCi(meanCi([2, 2.000001]), "valLoss"), "2.000001 ± 0.000006");
});
