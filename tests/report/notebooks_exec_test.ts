/**
 * Every notebook executed by real Jupyter with the Deno kernel (`lib/report/notebooks.ts`), as a
 * user would after `deno task experiments`:
 *
 * 1) the store holds every run of the suite at the small budget, finished as the runner leaves
 *    a run (config, metrics, summary, final checkpoint, sealed by `sealRun`), with the ids the
 *    command line gives them from the repository root (`_suite_plans.ts`, run with the
 *    experiments task's permissions) and closed-form numbers for every metric a notebook plots,
 *    plus the two studies' files;
 * 2) the quick start trains its own experiment live: one display with the progress table and the
 *    loss chart (Vega-Lite + SVG), the results table, and its plot cells as Vega-Lite + SVG;
 * 3) then every notebook runs with training allowed (`runMissing`) and must train nothing: the
 *    store is unchanged file for file (but for the summaries a study re-renders), nothing is moved
 *    to `.superseded/`, every run of the live displays is "skipped", no cell raises and every
 *    plot cell shows Vega-Lite + SVG.
 *
 * Skips with a message where Debian's Jupyter (jupyter-nbconvert, python3-nbclient) is absent;
 * CI installs it.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { EXPERIMENTS } from "../../experiments/mod.ts";
import {
  executeNotebooks,
  isPlotCell,
  jupyterAvailable,
  type NotebookJson,
  type NotebookOutput,
  VEGA_LITE_MIME,
} from "../../lib/report/notebooks.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder } from "../../lib/models/decoder.ts";
import { sealRun } from "../../lib/runner/check.ts";
import { runPaths, writeJsonAtomic, writeTextAtomic } from "../../lib/runner/store.ts";
import { Rng } from "../../lib/tensor/mod.ts";
import { saveCheckpoint } from "../../lib/train/checkpoint.ts";
import { AdamW, decayGroups } from "../../lib/train/optim.ts";

const jupyter = await jupyterAvailable();
if (!jupyter.ok) console.log(`Notebook execution tests skipped: ${jupyter.reason}`);

/** A run as `deno task experiments` plans it (`_suite_plans.ts`). */
interface PlannedRun {
  experiment: string;
  variant: string;
  seed: number;
  id: string;
  model: { mtp: unknown };
  train: { steps: number; batch: number };
}

/** The suite's runs at the small budget, planned by the CLI's code from the repository root. */
async function suitePlans(): Promise<PlannedRun[]> {
  const out = await new Deno.Command("deno", {
    args: [
      "run",
      "--quiet",
      "--allow-read=.",
      "--allow-env=NO_COLOR,XDG_RUNTIME_DIR",
      "--allow-sys=hostname,systemMemoryInfo",
      "tests/report/_suite_plans.ts",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  strictEqual(out.code, 0, `_suite_plans.ts failed: ${err}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Every run of the suite, finished, with closed-form numbers for every metric a notebook plots. */
async function writeSuiteStore(root: string, plans: PlannedRun[]): Promise<void> {
  for (const p of plans) {
    const v = plans.filter((q) => q.experiment === p.experiment && q.seed === 0)
      .findIndex((q) => q.variant === p.variant);
    const steps = Array.from({ length: p.train.steps }, (_, i) => {
      const step = i + 1;
      const loss = 5 / Math.sqrt(step) + 0.01 * v + 0.02 * p.seed;
      const rec: Record<string, number> = {
        step,
        tokens: step * 1024,
        loss,
        mainLoss: loss - 0.01,
        lr: 0.003,
        gradNorm: 1,
        tokensPerSec: 1000 + 100 * v,
        maxVio: 1 / step + 0.1 * p.seed,
      };
      for (let e = 0; e < 4; e++) rec[`expertLoad.1.${e}`] = e === 0 ? 0.4 : 0.2;
      return rec;
    });
    const valLoss = 2 + 0.1 * v + 0.05 * p.seed;
    const summary = {
      id: p.id,
      experiment: p.experiment,
      variant: p.variant,
      seed: p.seed,
      status: "done",
      steps: p.train.steps,
      tokens: p.train.steps * 1024,
      finalTrainLoss: steps[steps.length - 1].loss,
      metrics: {
        valLoss,
        bitsPerByte: valLoss / Math.LN2,
        kvBytesPerToken: 1024 / (v + 1),
        trainTokensPerSec: 1000 + 100 * v + 10 * p.seed,
        decodeTokensPerSec: 200 + p.seed,
        mtpAcceptance: p.model.mtp === null ? 0 : 0.5 + 0.1 * p.seed,
        maxVioGlobal: 0.3 + 0.1 * p.seed,
      },
      parameters: { total: 1000, activated: 1000, mtp: 0 },
      backend: "synthetic",
      wallSeconds: 1,
    };
    // config, metrics, summary and a final checkpoint (of the untrained model: the notebooks
    // never read its weights), sealed by the runner's own manifest, as it leaves a done run
    const paths = runPaths(root, p.experiment, p.variant, p.seed);
    await Deno.mkdir(paths.dir, { recursive: true });
    await writeJsonAtomic(paths.config, {
      id: p.id,
      backend: "synthetic",
      backendReason: "test",
      plan: p,
    });
    await writeTextAtomic(paths.metrics, steps.map((r) => JSON.stringify(r)).join("\n") + "\n");
    await writeJsonAtomic(paths.summary, summary);
    const model = new Decoder(p.model as ModelConfig, new Rng(p.seed));
    const params = model.parameters();
    await saveCheckpoint(paths.checkpoint, {
      params,
      optimizer: new AdamW(decayGroups(params, 0.1), { lr: 0.003 }),
      state: { step: p.train.steps, tokens: p.train.steps * 1024, extra: {} },
    });
    await sealRun(root, p);
  }
  // the parallelism study's parts are done (its notebook simulates what it does not find)
  for (const part of ["schedules", "routing"]) {
    await Deno.mkdir(`${root}/parallelism/${part}`, { recursive: true });
    await Deno.writeTextFile(`${root}/parallelism/${part}/done.json`, "{}");
  }
  await writeR1Store(`${root}/r1`);
}

/** The files the R1 study leaves: every stage of both small-budget seeds done. */
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

/** Every file under `root` with its size and modification time. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else {
        const s = await Deno.stat(path);
        files.set(path.slice(root.length + 1), `${s.size} ${s.mtime?.getTime()}`);
      }
    }
  };
  await walk(root);
  return files;
}

const text = (s: unknown) => (Array.isArray(s) ? s.join("") : String(s ?? ""));

/** The live display's last text (the progress table), or `null` when the notebook has none. */
function liveText(nb: NotebookJson): string | null {
  for (const cell of nb.cells) {
    for (const o of cell.outputs ?? []) {
      const spec = o.data?.[VEGA_LITE_MIME] as { vconcat?: unknown } | undefined;
      if (spec?.vconcat !== undefined) return text(o.data?.["text/plain"]);
    }
  }
  return null;
}

const hasChart = (o: NotebookOutput) =>
  o.data !== undefined && VEGA_LITE_MIME in o.data &&
  text(o.data["image/svg+xml"]).includes("<svg");

Deno.test({
  name:
    "notebooks/: after `deno task experiments`, every notebook trains 0 runs; the quick start trains live",
  ignore: !jupyter.ok,
  sanitizeResources: false,
  fn: async () => {
    await Deno.mkdir(".test-tmp", { recursive: true });
    const root = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "nbexec_" });
    const runs = `${root}/runs`;
    try {
      // 1) the store the command line leaves
      const plans = await suitePlans();
      ok(plans.length >= 30, `the suite's runs (${plans.length})`);
      await writeSuiteStore(runs, plans);

      // 2) the quick start trains its experiment live
      const [quick] = await executeNotebooks({
        notebooks: ["notebooks/quickstart.ipynb"],
        outDir: `${root}/quick`,
        runs,
        runMissing: true,
        html: true,
      });
      strictEqual(quick.error, null, String(quick.error));
      deepStrictEqual(quick.problems, []);
      const qnb = JSON.parse(await Deno.readTextFile(quick.out)) as NotebookJson;
      const first = qnb.cells.find((c) => c.cell_type === "code");
      const outputs = first?.outputs ?? [];
      ok(outputs.filter(hasChart).length === 1, "the run cell shows one live chart");
      ok(
        outputs.every((o) => o.output_type !== "stream"),
        `no stream lines in the run cell: ${JSON.stringify(outputs.map((o) => o.text ?? ""))}`,
      );
      const live = liveText(qnb) ?? "";
      ok(/^8 of 8 runs finished/.test(live), live);
      strictEqual((live.match(/ done: val loss \d/g) ?? []).length, 8, live);
      ok(
        outputs.some((o) =>
          /^### mla-rank\n\n\| variant \| seeds \|/.test(text(o.data?.["text/markdown"]))
        ),
        "the results table follows the live display",
      );
      const plots = qnb.cells.filter((c) => c.cell_type === "code" && isPlotCell(text(c.source)));
      ok(plots.length >= 2 && plots.every((c) => (c.outputs ?? []).some(hasChart)), "plot cells");
      const html = await Deno.readTextFile(quick.out.replace(/\.ipynb$/, ".html"));
      ok(
        (html.match(/aria-roledescription="line mark"/g) ?? []).length >= 8,
        "the HTML keeps the SVG charts' marks",
      );

      // 3) every notebook, training allowed, trains nothing
      const before = await snapshot(runs);
      const names = [
        ...EXPERIMENTS.map((e) => `notebooks/${e.name.replaceAll("-", "_")}.ipynb`),
        "notebooks/quickstart.ipynb",
        "notebooks/overview.ipynb",
      ];
      const results = await executeNotebooks({
        notebooks: names,
        outDir: `${root}/out`,
        runs,
        runMissing: true,
      });
      strictEqual(results.length, names.length);
      for (const r of results) {
        strictEqual(r.error, null, `${r.notebook}: ${r.error}`);
        strictEqual(r.problems.length, 0, `${r.notebook}:\n${r.problems.join("\n")}`);
        const nb = JSON.parse(await Deno.readTextFile(r.out)) as NotebookJson;
        const all = JSON.stringify(nb);
        ok(!all.includes(".superseded"), `${r.notebook}: nothing moved aside`);
        ok(all.includes("text/markdown"), `${r.notebook}: shows a Markdown table`);
        const table = liveText(nb);
        if (table !== null) {
          // the runs of experiments (a study's own line says "done" when it found its parts)
          const rows = table.split("\n").slice(2).filter((line) => !line.includes("(study)"));
          ok(
            rows.every((line) => /\bskipped$/.test(line)),
            `${r.notebook}: every run skipped:\n${table}`,
          );
        }
        if (r.notebook.endsWith("overview.ipynb")) {
          ok(all.includes("## Claims"), "the overview shows the claims table");
        }
      }
      const after = await snapshot(runs);
      // a study re-renders its summary files (r1/table.md, r1/accuracy.svg, ...) each time it
      // runs; its stages and every run live deeper, and none of those may be written
      const studySummary = (path: string) => /^(r1|parallelism)\/[^/]+$/.test(path);
      const changed = [...after].filter(([path, stat]) => before.get(path) !== stat)
        .map(([path]) => path).filter((path) => !studySummary(path));
      deepStrictEqual(changed, [], "no file of the store was written");
      deepStrictEqual([...before.keys()].filter((p) => !after.has(p)), [], "none was removed");
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
