import { deepEqual, equal, match, rejects } from "node:assert/strict";
import {
  Chart,
  chart,
  JUPYTER_DISPLAY,
  MarkdownTable,
  openResults,
  ResultsView,
} from "../../lib/report/jupyter.ts";
import { lossCurvesSpec } from "../../lib/report/vega_lite.ts";
import { syntheticResults, writeSyntheticStore } from "./_store.ts";

Deno.test("chart() displays as Vega-Lite, SVG and text in Jupyter and as text elsewhere", async () => {
  const spec = lossCurvesSpec(syntheticResults());
  const c = await chart(spec);
  equal(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
  const bundle = c[JUPYTER_DISPLAY]();
  deepEqual(Object.keys(bundle), [
    "application/vnd.vegalite.v5+json",
    "image/svg+xml",
    "text/plain",
  ]);
  equal(bundle["application/vnd.vegalite.v5+json"], spec);
  match(bundle["image/svg+xml"] as string, /^<svg/);
  match(String(c), /^Chart: Training loss by variant/);
  equal(Deno.inspect(c), String(c));
});

Deno.test("ResultsView.table() displays as Markdown", () => {
  const view = new ResultsView(syntheticResults());
  const t = view.table({ metrics: ["valLoss"] });
  equal(t instanceof MarkdownTable, true);
  const bundle = t[JUPYTER_DISPLAY]();
  match(
    bundle["text/markdown"] as string,
    /^\| variant \| seeds \| Validation loss \(nats\/token\) \|/,
  );
  equal(String(t), bundle["text/markdown"]);
  match(String(view), /^Results: ablation \(base, fp8, moe; 6 finished runs\)/);
});

Deno.test("ResultsView.plot() draws views and metrics; an unknown one lists the choices", async () => {
  const root = await writeSyntheticStore();
  try {
    const view = await openResults(root, "ablation");
    for (const v of ["loss", "valLoss", "maxVio", "expertLoad", "kvLoss", "fp8Gap"]) {
      equal((await view.plot(v)) instanceof Chart, true, v);
    }
    await rejects(view.plot("mtpAcceptance"), /Cannot plot 'mtpAcceptance' .*views: loss/);
    equal((await view.charts()).length, 7);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
