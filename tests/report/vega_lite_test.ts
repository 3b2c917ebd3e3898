import { deepEqual, equal, match, throws } from "node:assert/strict";
import { compileSpec, renderSvg } from "../../lib/report/render.ts";
import { curvePoints, expertLoadCells, fp8Gap } from "../../lib/report/analysis.ts";
import {
  experimentCharts,
  expertLoadSpec,
  fp8GapSpec,
  kvLossSpec,
  lossCurvesSpec,
  maxVioSpec,
  metricBarsSpec,
  PALETTE,
  throughputSpec,
  type VegaLiteSpec,
} from "../../lib/report/vega_lite.ts";
import { assertAllClose } from "../../lib/tensor/assert.ts";
import { countRoles, EXPERTS, STEPS, syntheticResults } from "./_store.ts";

const results = syntheticResults(); // variants base, fp8, moe × seeds 0, 1

function nonNull(spec: VegaLiteSpec | null): VegaLiteSpec {
  if (spec === null) throw new Error("Expected a spec, got null");
  return spec;
}

/** Compile, render, check the common parts (title, no data URLs) and count the drawn items. */
async function render(spec: VegaLiteSpec, title: string): Promise<Record<string, number>> {
  equal(JSON.stringify(spec).includes('"url"'), false, "data must be inline");
  compileSpec(spec);
  const svg = await renderSvg(spec);
  match(svg, /^<svg/);
  equal(svg.includes(title), true, `title '${title}' in the SVG`);
  return countRoles(svg);
}

Deno.test("lossCurvesSpec() draws one band and one line per variant", async () => {
  const roles = await render(lossCurvesSpec(results), "Training loss by variant");
  equal(roles["area mark"], 3);
  equal(roles["line mark"], 3);
  equal(roles.legend, 1);
  const points = curvePoints(results, "loss");
  equal(points.length, 3 * STEPS);
  // seeds 0, 1 differ by 0.02: min–max band around the mean
  assertAllClose([points[0].lo, points[0].mean, points[0].hi], [5, 5.01, 5.02], { atol: 1e-12 });
  const ci = curvePoints(results, "loss", { band: "ci", x: "tokens" })[0];
  equal(ci.x, 1024);
  assertAllClose(ci.hi - ci.mean, 12.706204736174698 * 0.01, { atol: 1e-9 });
});

Deno.test("metricBarsSpec() draws the mean per variant, CI whiskers and every seed", async () => {
  const dots = await render(metricBarsSpec(results, "valLoss"), "Validation loss");
  deepEqual([dots.point, dots["rule mark"], dots.circle], [3, 3, 6]);
  const bars = await render(throughputSpec(results), "Training speed");
  deepEqual([bars.bar, bars["rule mark"], bars.circle], [3, 3, 6]);
});

Deno.test("metricBarsSpec() leaves out the whisker of a variant with one seed", async () => {
  const one = syntheticResults();
  one.runs = one.runs.filter((r) => !(r.variant === "moe" && r.seed === 1));
  const roles = await render(metricBarsSpec(one, "valLoss", { style: "bar" }), "Validation loss");
  deepEqual([roles.bar, roles["rule mark"], roles.circle], [3, 2, 5]);
});

Deno.test("maxVioSpec() draws MaxVio for the variants that log it, null without MoE", async () => {
  const roles = await render(nonNull(maxVioSpec(results)), "MaxVio");
  equal(roles["line mark"], 1);
  equal(maxVioSpec(syntheticResults("e", ["a", "b"])), null);
});

Deno.test("expertLoadSpec() draws one cell per expert and step, relative to a balanced load", async () => {
  const roles = await render(nonNull(expertLoadSpec(results)), "Expert load during training");
  equal(roles["rect mark"], EXPERTS * STEPS);
  const cells = expertLoadCells(results);
  deepEqual(new Set(cells.map((c) => c.relativeLoad)), new Set([1.6, 0.8]));
  // at most 4 columns: 10 steps in bins of ⌈10 / 4⌉ = 3 steps → 4 columns
  const binned = expertLoadCells(results, { maxColumns: 4 });
  equal(binned.length, EXPERTS * 4);
  deepEqual(binned.slice(0, 4).map((c) => [c.step0, c.step1]), [[1, 4], [4, 7], [7, 10], [10, 11]]);
  equal(expertLoadSpec(syntheticResults("e", ["a"])), null);
});

Deno.test("kvLossSpec() draws one labelled point and whisker per variant", async () => {
  const roles = await render(nonNull(kvLossSpec(results)), "KV cache size vs validation loss");
  deepEqual([roles.point, roles["text mark"], roles["rule mark"]], [3, 3, 3]);
});

Deno.test("fp8GapSpec() draws the gap of each non-baseline variant and the ±0.25% rules", async () => {
  const spec = nonNull(fp8GapSpec(results, { baseline: "base" }));
  const roles = await render(spec, "Training-loss gap to");
  deepEqual([roles["line mark"], roles["area mark"], roles["rule mark"]], [2, 2, 2]);
  const gap = fp8Gap(results, { baseline: "base" });
  // fp8 = base + 0.01 per step: gap = 100 · 0.01 / L_base
  const first = gap[0];
  equal(first.variant, "fp8");
  assertAllClose(first.gapPct, (100 * 0.01 / 5 + 100 * 0.01 / 5.02) / 2, { atol: 1e-12 });
  const smooth = fp8Gap(results, { baseline: "base", window: 3 });
  assertAllClose(smooth[2].gapPct, (gap[0].gapPct + gap[1].gapPct + gap[2].gapPct) / 3, {
    atol: 1e-9,
  });
  throws(() => fp8Gap(results, { baseline: "bf16" }), /no baseline variant 'bf16'/);
});

Deno.test("every chart colours a variant the same", async () => {
  const colour = PALETTE[1]; // 'fp8', second variant
  for (const spec of [lossCurvesSpec(results), metricBarsSpec(results, "valLoss")]) {
    const svg = await renderSvg(spec);
    equal(svg.includes(colour), true);
  }
  const gap = await renderSvg(nonNull(fp8GapSpec(results, { baseline: "base" })));
  equal(gap.includes(`stroke="${PALETTE[1]}"`), true); // not shifted although 'base' is absent
  equal(gap.includes(`stroke="${PALETTE[2]}"`), true);
});

Deno.test("experimentCharts() picks the charts the data supports", () => {
  deepEqual(experimentCharts(results).map((c) => c.name), [
    "loss",
    "fp8-gap",
    "valLoss",
    "kv-loss",
    "maxVio",
    "expert-load",
    "throughput",
  ]);
  deepEqual(experimentCharts(syntheticResults("e", ["a"])).map((c) => c.name), [
    "loss",
    "valLoss",
    "throughput",
  ]);
});
