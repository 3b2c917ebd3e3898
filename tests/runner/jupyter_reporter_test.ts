import { deepEqual, equal, match, ok } from "node:assert/strict";
import { JupyterReporter } from "../../lib/runner/jupyter_reporter.ts";
import type { PlannedRun } from "../../lib/runner/progress.ts";
import { syntheticRuns, writeSealedRun } from "../report/_store.ts";

const VL = "application/vnd.vegalite.v5+json";

interface Sent {
  id: string;
  update: boolean;
  bundle: Record<string, unknown>;
}

/** A reporter whose display is recorded and whose clock advances `tick` ms per reading. */
function recorded(tick: number, options: { interval?: number; maxRows?: number } = {}) {
  const sent: Sent[] = [];
  let t = 0;
  const reporter = new JupyterReporter({
    ...options,
    display: (bundle, o) => {
      sent.push({ id: o.display_id, update: o.update, bundle });
      return Promise.resolve();
    },
    now: () => (t += tick),
  });
  return { reporter, sent };
}

const runsOf = (experiment: string, variants: string[], seeds: number[], steps: number) =>
  variants.flatMap((variant) =>
    seeds.map((seed) => ({
      label: `${experiment}/${variant}/seed-${seed}`,
      experiment,
      variant,
      seed,
      steps,
    }))
  );

/** `runStart` of `run` as the runner calls it. */
function start(reporter: JupyterReporter, run: PlannedRun, fromStep = 0): void {
  reporter.runStart({ index: 1, count: 1, fromStep, ...run });
}

/** Let the display promises the reporter started settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("JupyterReporter shows one display and updates it in place, at most every interval", async () => {
  // the clock advances 10 ms per reading: 200 steps span several 500 ms intervals
  const { reporter, sent } = recorded(10);
  const runs = runsOf("quick", ["mha", "mla"], [0], 100);
  reporter.begin({ out: "", budget: "small", runs });
  for (const run of runs) {
    start(reporter, run);
    for (let step = 1; step <= 100; step++) {
      reporter.step({ step, loss: 5 / step, tokensPerSec: 2000 });
      await settle();
    }
    reporter.runEnd({ label: run.label, status: "done", detail: "val loss 2.0" });
    await settle();
  }
  await reporter.end({ out: "no-such-store", runs: [] });
  equal(sent[0].update, false, "the first message creates the display");
  ok(sent.slice(1).every((s) => s.update && s.id === sent[0].id), "then only updates of it");
  ok(sent.length >= 4, `updates during training (${sent.length})`);
  // ~4 clock readings per step → 200 steps ≈ 8 s of fake time → at most ~2 updates per second
  ok(sent.length <= 24, `throttled (${sent.length} messages)`);
  const last = sent[sent.length - 1].bundle;
  deepEqual(Object.keys(last).sort(), [VL, "image/svg+xml", "text/plain"].sort());
  match(last["image/svg+xml"] as string, /^<svg/);
  const text = last["text/plain"] as string;
  match(text, /^2 of 2 runs finished/);
  match(text, /1\/2 +mha +0 +100\/100 +0\.0500 +2,000 +done: val loss 2\.0/);
  match(text, /2\/2 +mla +0 +100\/100/);
});

Deno.test("JupyterReporter's spec: the progress table above the loss curves of the variants so far", async () => {
  const { reporter, sent } = recorded(1);
  const runs = runsOf("quick", ["mla-8", "mha"], [0, 1], 10);
  reporter.begin({ out: "", budget: "small", runs });
  reporter.log("backend: cpu (asked for)");
  start(reporter, runs[0]);
  for (let step = 1; step <= 4; step++) reporter.step({ step, loss: 3, tokensPerSec: 1 });
  const spec = reporter.spec() as unknown as {
    title: { text: string; subtitle: string[] };
    vconcat: [{ data: { values: Record<string, unknown>[] } }, {
      data: { values: { variant: string; x: number }[] };
      encoding: { color: { scale: { domain: string[] } } };
    }];
  };
  equal(spec.title.text, "quick (small budget)");
  deepEqual(spec.title.subtitle.slice(1), ["backend: cpu (asked for)"]);
  const [table, chart] = spec.vconcat;
  deepEqual(
    table.data.values.map((r) => [r.row, r.variant, r.state]),
    [
      [0, "variant", "header"],
      [1, "mla-8", "running"],
      [2, "mla-8", "pending"],
      [3, "mha", "pending"],
      [4, "mha", "pending"],
    ],
  );
  deepEqual(chart.data.values.map((p) => [p.variant, p.x]), [1, 2, 3, 4].map((x) => ["mla-8", x]));
  // the report's colour order (sorted variants), so the colours match `r.plot("loss")`
  deepEqual(chart.encoding.color.scale.domain, ["mha", "mla-8"]);
  await reporter.end({ out: "", runs: [] });
  ok(sent.length >= 2);
});

Deno.test("JupyterReporter keeps a window of rows around the running run", () => {
  const { reporter } = recorded(1, { maxRows: 4 });
  const runs = runsOf("e", ["a", "b", "c", "d", "e", "f", "g", "h"], [0], 5);
  reporter.begin({ out: "", budget: "small", runs });
  for (const run of runs.slice(0, 6)) {
    start(reporter, run);
    reporter.runEnd({ label: run.label, status: "done", detail: "" });
  }
  start(reporter, runs[6]);
  const rows = reporter.text().split("\n").slice(2).map((l) => l.trim().split(/ +/)[0]);
  deepEqual(rows, ["5/8", "6/8", "7/8", "8/8"]);
});

Deno.test("JupyterReporter draws skipped and resumed runs from the store, then the results and claims tables", async () => {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const root = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "jrep_" });
  try {
    // a finished store of `attention` (mha, mla × seeds 0, 1), as the runner leaves it
    for (const run of syntheticRuns("attention", ["mha", "mla"])) {
      await writeSealedRun(`${root}/attention/${run.variant}/seed-${run.seed}`, run);
    }
    const { reporter, sent } = recorded(1);
    const runs = runsOf("attention", ["mha", "mla"], [0, 1], 10);
    reporter.begin({ out: root, budget: "small", runs });
    for (const run of runs.slice(0, 3)) {
      reporter.runEnd({ label: run.label, status: "skipped", detail: "already done" });
    }
    // the last one resumes at step 6: its first 6 steps come from metrics.jsonl
    start(reporter, runs[3], 6);
    for (let step = 7; step <= 10; step++) reporter.step({ step, loss: 1, tokensPerSec: 9 });
    reporter.runEnd({ label: runs[3].label, status: "done", detail: "" });
    await reporter.end({
      out: root,
      runs: runs.map((r) => ({ ...r, status: "done", detail: "", summary: null, dir: "" })),
    });
    const chart = (reporter.spec() as unknown as {
      vconcat: [unknown, { data: { values: { variant: string; x: number; n: number }[] } }];
    }).vconcat[1].data.values;
    deepEqual(chart.filter((p) => p.variant === "mha").map((p) => p.n), Array(10).fill(2));
    deepEqual(chart.filter((p) => p.variant === "mla").map((p) => p.n), Array(10).fill(2));
    match(reporter.text(), /1\/4 +mha +0 +10\/10 .*skipped/);
    // the results table and the claims of `attention`, as a second output
    const results = sent[sent.length - 1];
    notEqualId(results.id, sent[0].id);
    const md = results.bundle["text/markdown"] as string;
    match(md, /^### attention\n\n\| variant \| seeds \|/);
    match(md, /\| mla +\| +2 \|/);
    match(md, /attention: MLA's KV cache is a small fraction of MHA's/);
    ok(!md.includes("FP8"), "only the claims of the experiments that ran");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function notEqualId(a: string, b: string): void {
  ok(a !== b, `a second display (${a})`);
}

Deno.test("JupyterReporter redraws the SVG fallback only now and then, and always at the end", async () => {
  const { reporter } = recorded(100);
  reporter.begin({ out: "", budget: "small", runs: runsOf("e", ["a"], [0], 50) });
  start(reporter, runsOf("e", ["a"], [0], 50)[0]);
  reporter.step({ step: 1, loss: 4, tokensPerSec: 1 });
  const first = (await reporter.bundle())["image/svg+xml"];
  reporter.step({ step: 2, loss: 3, tokensPerSec: 1 });
  // 100 ms later: the Vega-Lite spec has step 2, the SVG is the one drawn before
  const again = await reporter.bundle();
  equal(again["image/svg+xml"], first);
  match(JSON.stringify(again[VL]), /"x":2/);
  const final = await reporter.bundle(true);
  ok(final["image/svg+xml"] !== first, "the final bundle redraws the SVG");
  await reporter.end({ out: "", runs: [] });
});

Deno.test("JupyterReporter survives a failing display and shows the error as text", async () => {
  let calls = 0;
  const reporter = new JupyterReporter({
    display: () => {
      calls++;
      return Promise.reject(new Error("iopub closed"));
    },
  });
  reporter.begin({ out: "", budget: "small", runs: runsOf("e", ["a"], [0], 3) });
  start(reporter, runsOf("e", ["a"], [0], 3)[0]);
  reporter.step({ step: 1, loss: 4, tokensPerSec: 1 });
  await reporter.end({ out: "", runs: [] });
  ok(calls >= 1);
  match(reporter.text(), /\(display error: iopub closed\)/);
});

Deno.test("JupyterReporter.shouldStop() is false without an interrupt and yields to the event loop", async () => {
  const { reporter } = recorded(200);
  reporter.begin({ out: "", budget: "small", runs: runsOf("e", ["a"], [0], 3) });
  start(reporter, runsOf("e", ["a"], [0], 3)[0]);
  let timerRan = false;
  setTimeout(() => (timerRan = true), 0);
  equal(await reporter.shouldStop(), false);
  equal(timerRan, true, "a pending timer ran during shouldStop()");
  await reporter.end({ out: "", runs: [] });
});

Deno.test("JupyterReporter shows the last news once the interval has passed, with no further event", async () => {
  const sent: Record<string, unknown>[] = [];
  const reporter = new JupyterReporter({
    interval: 50,
    display: (bundle) => {
      sent.push(bundle);
      return Promise.resolve();
    },
    now: () => 0, // every event within the interval of the first display
  });
  const [run] = runsOf("e", ["a"], [0], 10);
  reporter.begin({ out: "", budget: "small", runs: [run] });
  start(reporter, run);
  for (let step = 1; step <= 3; step++) reporter.step({ step, loss: 4, tokensPerSec: 1 });
  // then the runner goes quiet (a long evaluation, say): a timer brings the display up to date
  for (let i = 0; i < 100 && !String(sent.at(-1)?.["text/plain"]).includes(" 3/10 "); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  match(String(sent.at(-1)?.["text/plain"]), / 3\/10 +4\.0000/);
  await reporter.end({ out: "", runs: [] });
});
