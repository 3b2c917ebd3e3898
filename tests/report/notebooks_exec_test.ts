/**
 * Every notebook executed by real Jupyter with the Deno kernel (`lib/report/notebooks.ts`): no
 * cell raises, and every plot cell shows both the vega-lite bundle and its SVG fallback. The
 * notebooks read a synthetic store carrying every metric they plot (`ABLATE_RUNS`, read-only), so
 * the test checks the notebooks' code, not the training (tests/runner covers that). Skips with a
 * message where Debian's Jupyter (jupyter-nbconvert, python3-nbclient) is absent; CI installs it.
 */
import { ok, strictEqual } from "node:assert/strict";
import { EXPERIMENTS } from "../../experiments/mod.ts";
import { executeNotebooks, isPlotCell, jupyterAvailable } from "../../lib/report/notebooks.ts";
import { isStudy } from "../../lib/runner/study.ts";
import { syntheticRuns, writeSealedRun } from "./_store.ts";

const jupyter = await jupyterAvailable();
if (!jupyter.ok) console.log(`Notebook execution tests skipped: ${jupyter.reason}`);

/** A store with each suite experiment's real variants and every metric a notebook plots. */
async function writeSuiteStore(root: string): Promise<void> {
  await writeR1Store(`${root}/r1`);
  for (const e of EXPERIMENTS) {
    if (isStudy(e)) continue;
    for (const run of syntheticRuns(e.name, [...e.variants])) {
      const model = e.models[run.variant];
      const plan = run.config?.plan as Record<string, unknown>;
      plan.model = { ...model };
      run.summary.metrics = {
        ...run.summary.metrics,
        decodeTokensPerSec: 200 + run.seed,
        mtpAcceptance: model.mtp === null ? 0 : 0.5 + 0.1 * run.seed,
        maxVioGlobal: 0.3 + 0.1 * run.seed,
      };
      for (const r of run.steps) {
        r.mainLoss = r.loss - 0.01;
        if (r.maxVio === undefined) r.maxVio = 1 / r.step;
        for (let ex = 0; ex < 4; ex++) r[`expertLoad.1.${ex}`] = ex === 0 ? 0.4 : 0.2;
      }
      await writeSealedRun(`${root}/${e.name}/${run.variant}/seed-${run.seed}`, run);
    }
  }
}

/** The files the R1 study leaves (the parallelism notebook simulates when its store is empty). */
async function writeR1Store(dir: string): Promise<void> {
  const stages: [string, string, number[]][] = [
    ["base", "base", [0]],
    ["zero", "zero", [10, 20]],
    ["cold-start", "r1", [5, 10]],
    ["r1-grpo", "r1", [20, 30]],
    ["r1-rejection-sft", "r1", [35, 40]],
    ["student-base", "distill", [0]],
    ["distill", "distill", [10, 20]],
  ];
  for (const seed of [0, 1]) {
    for (const [stage, branch, steps] of stages) {
      const d = `${dir}/s${seed}/${stage}`;
      await Deno.mkdir(d, { recursive: true });
      const rows = steps.map((step) => ({
        branch,
        seed,
        stage,
        step,
        accuracy: Math.min(1, step / 50 + 0.1 * seed),
        formatRate: step > 0 ? 0.9 : 0.05,
        length: 3 + step / 5,
      }));
      await Deno.writeTextFile(`${d}/curve.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n"));
      if (stage === "zero" || stage === "r1-grpo") {
        const rounds = [0, 1, 2].map((round) => ({
          round,
          reward: 0.2 * round,
          accuracy: 0.1 * round,
          formatRate: 0.3 * round,
          length: 10,
          kl: 0.01 * round,
          clipFraction: 0.02,
          loss: 0.01,
          flatGroups: 0.1,
          tokensPerSec: 100,
        }));
        await Deno.writeTextFile(
          `${d}/rounds.jsonl`,
          rounds.map((r) => JSON.stringify(r)).join("\n"),
        );
      }
      await Deno.writeTextFile(`${d}/done.json`, "{}");
    }
  }
}

Deno.test({
  name:
    "notebooks/: executed by Jupyter with the Deno kernel, no errors, every plot as vega-lite + SVG",
  ignore: !jupyter.ok,
  sanitizeResources: false,
  fn: async () => {
    await Deno.mkdir(".test-tmp", { recursive: true });
    const root = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "nbexec_" });
    try {
      await writeSuiteStore(`${root}/runs`);
      const names = EXPERIMENTS.map((e) => `notebooks/${e.name.replaceAll("-", "_")}.ipynb`);
      const results = await executeNotebooks({
        notebooks: [...names, "notebooks/overview.ipynb"],
        outDir: `${root}/out`,
        runs: `${root}/runs`,
        runMissing: false,
      });
      strictEqual(results.length, names.length + 1);
      for (const r of results) {
        strictEqual(r.error, null, `${r.notebook}: ${r.error}`);
        strictEqual(r.problems.length, 0, `${r.notebook}:\n${r.problems.join("\n")}`);
        const nb = JSON.parse(await Deno.readTextFile(r.out));
        const code = nb.cells.filter((c: { cell_type: string }) => c.cell_type === "code");
        if (r.notebook.endsWith("overview.ipynb")) {
          ok(JSON.stringify(nb).includes("## Claims"), "the overview shows the claims table");
        } else {
          ok(
            code.filter((c: { source: string[] }) => isPlotCell(c.source.join(""))).length >= 3,
            `${r.notebook}: has plot cells`,
          );
        }
        // the results table came out as Markdown
        ok(
          JSON.stringify(nb).includes("text/markdown"),
          `${r.notebook}: shows a Markdown results table`,
        );
      }
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
