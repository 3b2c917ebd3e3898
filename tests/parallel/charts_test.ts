import { ok, strictEqual } from "node:assert/strict";
import { bubbleBarsSpec, ganttSpec, trafficSpec } from "../../lib/parallel/charts.ts";
import { SCHEDULES, simulatePipeline, tableCosts } from "../../lib/parallel/pipeline.ts";
import { renderSvg } from "../../lib/report/render.ts";

Deno.test("ganttSpec() renders every operation of a DualPipe timeline as a bar", async () => {
  const r = simulatePipeline("dualpipe", {
    pp: 4,
    microbatches: 8,
    durations: { f: 1, b: 1, w: 0.5, fb: 2.2 },
  });
  const svg = await renderSvg(ganttSpec(r));
  ok(svg.startsWith("<svg"));
  strictEqual(svg.match(/aria-roledescription="bar"/g)?.length, r.timeline.length);
});

Deno.test("bubbleBarsSpec() and trafficSpec() render", async () => {
  const setting = { pp: 4, microbatches: 8, durations: { f: 1, b: 1, w: 1 } };
  const rows = SCHEDULES.map((s) => ({
    setting: "PP 4",
    schedule: s,
    simulated: simulatePipeline(s, setting).bubble,
    formula: tableCosts(s, setting).bubble,
  }));
  const bars = await renderSvg(bubbleBarsSpec(rows));
  strictEqual(bars.match(/aria-roledescription="bar"/g)?.length, 3);
  const traffic = await renderSvg(trafficSpec([
    { maxNodes: 1, ibBytesPerToken: 100, lostAffinity: 0.2, series: "layer 0" },
    { maxNodes: 2, ibBytesPerToken: 200, lostAffinity: 0, series: "layer 0" },
  ], { nodes: 2 }));
  ok(traffic.includes("IB bytes per token"));
});
