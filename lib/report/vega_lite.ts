/**
 * Vega-Lite specs for the ablation views. Every spec carries its data inline (no URLs, so it
 * renders headlessly, in a notebook and from `file://`), a title, axis titles with units, and
 * the same colour per variant in every chart of an experiment (`variantColors`).
 *
 * Aggregation over seeds happens in TypeScript, not in Vega transforms (`analysis.ts` computes
 * the curves, expert-load cells and FP8 gaps): a curve is the mean over seeds at each step with a
 * band (min–max or 95% CI), a bar or dot is the mean with a 95% Student-t interval (`stats.ts`)
 * and the individual seeds drawn on top.
 *
 * The builders and what they need from the store:
 * - `lossCurvesSpec`: `metrics.jsonl` `loss` (or any per-step field) over steps.
 * - `metricBarsSpec` / `throughputSpec`: a `summary.json` metric per run.
 * - `maxVioSpec`: per-step `maxVio` (MoE runs).
 * - `expertLoadSpec`: per-step expert loads `expertLoad.<layer>.<expert>` (or
 *   `expertLoad.<expert>`), each the fraction of that layer's routed assignments, when logged.
 * - `kvLossSpec`: `kvBytesPerToken` and `valLoss`.
 * - `fp8GapSpec`: per-step `loss` of each variant against a baseline, paired by seed.
 *
 * @module
 */

import type { TopLevelSpec } from "vega-lite";
import {
  type Band,
  type CurveOptions,
  curvePoints,
  expertLoadCells,
  type ExpertLoadOptions,
  fp8Baseline,
  fp8Gap,
  type Fp8GapOptions,
} from "./analysis.ts";
import type { ExperimentResults, RunResult } from "./results.ts";
import { METRICS, metricTitle, runMetric } from "./results.ts";
import { meanCi } from "./stats.ts";

/** A Vega-Lite specification (top level). */
export type VegaLiteSpec = TopLevelSpec;

/** The schema the specs declare (Jupyter's `application/vnd.vegalite.v5+json` renders it). */
export const VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json";

/** Variant colours, in order (Tableau 10, Vega's default categorical scheme). */
export const PALETTE: readonly string[] = [
  "#4c78a8",
  "#f58518",
  "#e45756",
  "#72b7b2",
  "#54a24b",
  "#eeca3b",
  "#b279a2",
  "#ff9da6",
  "#9d755d",
  "#bab0ac",
];

const WIDTH = 520;
/** Legend swatches drawn opaque (the bands under the lines are faint). */
const LINE_LEGEND = { legend: { symbolOpacity: 1 } };
const HEIGHT = 300;

/** The colour scale shared by every chart of an experiment: variant `i` gets `PALETTE[i % 10]`. */
export function variantColors(variants: readonly string[]): { domain: string[]; range: string[] } {
  return {
    domain: [...variants],
    range: variants.map((_, i) => PALETTE[i % PALETTE.length]),
  };
}

function colorEncoding(results: ExperimentResults, title = "variant") {
  return {
    field: "variant",
    type: "nominal" as const,
    title,
    scale: variantColors(results.variants),
    sort: results.variants,
  };
}

function bandLabel(band: Band): string {
  return band === "minmax" ? "band: min–max over seeds" : "band: 95% CI over seeds";
}

const STEP_FIELDS: Record<string, { label: string; unit: string }> = {
  loss: { label: "Training loss", unit: "nats/token" },
  mainLoss: { label: "Main-head training loss", unit: "nats/token" },
  auxLoss: { label: "Auxiliary balance loss", unit: "" },
  maxVio: { label: "MaxVio (batch)", unit: "" },
  gradNorm: { label: "Gradient norm", unit: "" },
  lr: { label: "Learning rate", unit: "" },
  tokensPerSec: { label: "Training speed", unit: "tokens/s" },
};

function stepFieldTitle(field: string): string {
  const mtp = /^mtpLoss(\d+)$/.exec(field);
  if (mtp) return `MTP depth-${mtp[1]} loss (nats/token)`;
  const info = STEP_FIELDS[field];
  if (info === undefined) return field;
  return info.unit === "" ? info.label : `${info.label} (${info.unit})`;
}

function xTitle(x: "step" | "tokens"): string {
  return x === "step" ? "Training step" : "Training tokens";
}

/** Options for {@linkcode lossCurvesSpec}. */
export interface LossCurvesOptions extends CurveOptions {
  /** The per-step field. @default {"loss"} */
  field?: string;
  /** Chart title. @default {"<field title> by variant"} */
  title?: string;
}

/**
 * Per-step curves (training loss by default): the mean over seeds per variant as a line with a
 * band over seeds (min–max by default, or the 95% CI).
 *
 * @param results An experiment's results.
 * @param options The field, horizontal axis, band and title.
 * @returns A layered spec: one area (band) and one line per variant.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { lossCurvesSpec } from "./vega_lite.ts";
 * const spec = lossCurvesSpec({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] });
 * assertEquals((spec as { layer: unknown[] }).layer.length, 2);
 * ```
 */
export function lossCurvesSpec(
  results: ExperimentResults,
  options: LossCurvesOptions = {},
): VegaLiteSpec {
  const field = options.field ?? "loss";
  const x = options.x ?? "step";
  const band = options.band ?? "minmax";
  const yTitle = stepFieldTitle(field);
  const color = colorEncoding(results);
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: options.title ?? `${yTitle.replace(/ \(.*\)$/, "")} by variant`,
      subtitle: `${results.experiment}: mean over seeds; ${bandLabel(band)}`,
    },
    width: WIDTH,
    height: HEIGHT,
    config: LINE_LEGEND,
    data: { values: curvePoints(results, field, { x, band }) },
    encoding: {
      x: { field: "x", type: "quantitative", title: xTitle(x) },
      color,
    },
    layer: [
      {
        mark: { type: "area", opacity: 0.2 },
        encoding: {
          y: { field: "lo", type: "quantitative", title: yTitle, scale: { zero: false } },
          y2: { field: "hi" },
        },
      },
      {
        mark: { type: "line", strokeWidth: 2 },
        encoding: {
          y: { field: "mean", type: "quantitative", title: yTitle, scale: { zero: false } },
          tooltip: [
            { field: "variant", type: "nominal" },
            { field: "x", type: "quantitative", title: xTitle(x) },
            { field: "mean", type: "quantitative", title: "mean", format: ".4f" },
            { field: "n", type: "quantitative", title: "seeds" },
          ],
        },
      },
    ],
  };
}

/**
 * MaxVio over training (per-step `maxVio`, averaged over MoE layers by the model), mean over
 * seeds with a min–max band; `null` when no run logged it.
 *
 * Ref: MaxVio = `max_i load_i / mean load − 1`, Wang et al. 2024, arXiv:2408.15664 §4.
 *
 * @param results An experiment's results.
 * @param options Horizontal axis and band.
 * @returns A layered spec like {@linkcode lossCurvesSpec}, or `null`.
 *
 * @example No MoE, no chart
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { maxVioSpec } from "./vega_lite.ts";
 * assertEquals(maxVioSpec({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] }), null);
 * ```
 */
export function maxVioSpec(
  results: ExperimentResults,
  options: CurveOptions = {},
): VegaLiteSpec | null {
  if (!results.runs.some((r) => r.steps.some((s) => typeof s.maxVio === "number"))) return null;
  return lossCurvesSpec(results, {
    ...options,
    field: "maxVio",
    title: "Expert load imbalance (MaxVio) during training",
  });
}

/** One bar of {@linkcode metricBarsSpec}: the mean over seeds with its 95% CI. */
export interface BarDatum {
  variant: string;
  mean: number;
  /** Interval ends; equal to `mean` with one seed. */
  lo: number;
  hi: number;
  n: number;
  /** `"mean ± half-width"` for tooltips. */
  label: string;
}

const LOSS_LIKE = new Set(["valLoss", "bitsPerByte", "finalTrainLoss"]);

/** Options for {@linkcode metricBarsSpec}. */
export interface MetricBarsOptions {
  /**
   * `bar` (from zero) or `dot` (a point with whiskers, axis not from zero). @default {`dot` for
   * losses and bits per byte, where differences are small against the value; `bar` otherwise}
   */
  style?: "bar" | "dot";
  /** Chart title. @default {the metric's label} */
  title?: string;
}

/**
 * A final metric per variant: the mean over seeds (bar or dot), a 95% Student-t error bar when
 * there are at least 2 seeds, and each seed as a small black circle.
 *
 * @param results An experiment's results.
 * @param metric A `summary.json` metric (`valLoss`, `trainTokensPerSec`, ...) or
 *   `finalTrainLoss`.
 * @param options Style and title.
 * @returns A layered spec: bars (or points), error rules and seed circles.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { metricBarsSpec } from "./vega_lite.ts";
 * const spec = metricBarsSpec({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] }, "valLoss");
 * assertEquals((spec as { layer: unknown[] }).layer.length, 3);
 * ```
 */
export function metricBarsSpec(
  results: ExperimentResults,
  metric: string,
  options: MetricBarsOptions = {},
): VegaLiteSpec {
  const style = options.style ?? (LOSS_LIKE.has(metric) ? "dot" : "bar");
  const bars: BarDatum[] = [];
  const seeds: { variant: string; seed: number; value: number }[] = [];
  for (const variant of results.variants) {
    const runs = results.runs.filter((r) => r.variant === variant);
    const values: number[] = [];
    for (const run of runs) {
      const v = runMetric(run, metric);
      if (v === undefined) continue;
      values.push(v);
      seeds.push({ variant, seed: run.seed, value: v });
    }
    if (values.length === 0) continue;
    const ci = meanCi(values);
    const digits = METRICS[metric]?.digits ?? 4;
    const label = ci.halfWidth === null
      ? ci.mean.toFixed(digits)
      : `${ci.mean.toFixed(digits)} ± ${ci.halfWidth.toFixed(digits)}`;
    bars.push({ variant, mean: ci.mean, lo: ci.lo, hi: ci.hi, n: ci.n, label });
  }
  const yTitle = metricTitle(metric);
  const y = { type: "quantitative" as const, title: yTitle, scale: { zero: style === "bar" } };
  const x = {
    field: "variant",
    type: "nominal" as const,
    title: "variant",
    sort: results.variants,
    axis: { labelAngle: 0 },
  };
  const color = colorEncoding(results);
  const better = METRICS[metric]?.better;
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: options.title ?? (METRICS[metric]?.label ?? metric),
      subtitle: `${results.experiment}: mean over seeds, error bar 95% CI (Student t), dots: ` +
        `seeds${better === undefined ? "" : `; ${better} is better`}`,
    },
    width: Math.max(160, 90 * results.variants.length),
    height: HEIGHT,
    layer: [
      {
        data: { values: bars },
        mark: style === "bar"
          ? { type: "bar", width: { band: 0.6 } }
          : { type: "point", filled: true, size: 120, opacity: 1 },
        encoding: {
          x,
          y: { ...y, field: "mean" },
          color: { ...color, legend: null },
          tooltip: [
            { field: "variant", type: "nominal" },
            { field: "label", type: "nominal", title: yTitle },
            { field: "n", type: "quantitative", title: "seeds" },
          ],
        },
      },
      {
        data: { values: bars.filter((b) => b.n >= 2) },
        mark: { type: "rule", strokeWidth: 2, color: "#333" },
        encoding: { x, y: { ...y, field: "lo" }, y2: { field: "hi" } },
      },
      {
        data: { values: seeds },
        mark: { type: "circle", size: 30, color: "#111", opacity: 0.7 },
        encoding: {
          x,
          y: { ...y, field: "value" },
          tooltip: [
            { field: "variant", type: "nominal" },
            { field: "seed", type: "quantitative" },
            { field: "value", type: "quantitative", title: yTitle },
          ],
        },
      },
    ],
  };
}

/**
 * Throughput bars: training (or decode) tokens per second, mean ± 95% CI over seeds.
 *
 * @param results An experiment's results.
 * @param metric `trainTokensPerSec` or `decodeTokensPerSec`.
 * @returns A {@linkcode metricBarsSpec} with bars from zero.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { throughputSpec } from "./vega_lite.ts";
 * const spec = throughputSpec({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] });
 * assertEquals((spec as { layer: { mark: { type: string } }[] }).layer[0].mark.type, "bar");
 * ```
 */
export function throughputSpec(
  results: ExperimentResults,
  metric: "trainTokensPerSec" | "decodeTokensPerSec" = "trainTokensPerSec",
): VegaLiteSpec {
  return metricBarsSpec(results, metric, { style: "bar" });
}

/**
 * Expert-load heatmap (expert × step, one row of panels per variant), coloured by load relative
 * to a balanced router (1 = balanced, diverging around it); `null` without per-step loads.
 *
 * @param results An experiment's results.
 * @param options Number of step columns.
 * @returns A faceted rect spec, or `null`.
 *
 * @example No expert loads, no chart
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { expertLoadSpec } from "./vega_lite.ts";
 * assertEquals(expertLoadSpec({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] }), null);
 * ```
 */
export function expertLoadSpec(
  results: ExperimentResults,
  options: ExpertLoadOptions = {},
): VegaLiteSpec | null {
  const cells = expertLoadCells(results, options);
  if (cells.length === 0) return null;
  const experts = Math.max(...cells.map((c) => c.expert)) + 1;
  const maxLoad = Math.max(2, ...cells.map((c) => c.relativeLoad));
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: "Expert load during training",
      subtitle: `${results.experiment}: load / mean load per routed expert (1 = balanced), ` +
        "averaged over MoE layers and seeds",
    },
    data: { values: cells },
    facet: {
      row: {
        field: "variant",
        type: "nominal",
        title: "variant",
        sort: results.variants.filter((v) => cells.some((c) => c.variant === v)),
      },
    },
    spec: {
      width: WIDTH,
      height: Math.max(60, 14 * experts),
      mark: { type: "rect" },
      encoding: {
        x: { field: "step0", type: "quantitative", title: "Training step" },
        x2: { field: "step1" },
        y: { field: "expert", type: "ordinal", title: "expert" },
        color: {
          field: "relativeLoad",
          type: "quantitative",
          title: "load / mean",
          scale: { scheme: "blueorange", domainMid: 1, domain: [0, maxLoad] },
        },
        tooltip: [
          { field: "expert", type: "ordinal" },
          { field: "step0", type: "quantitative", title: "from step" },
          { field: "relativeLoad", type: "quantitative", title: "load / mean", format: ".2f" },
        ],
      },
    },
  };
}

/**
 * KV-cache bytes per token against validation loss: one point per variant (mean over seeds)
 * with a 95% CI whisker on the loss, labelled with the variant name; `null` when no run reports
 * both metrics. The trade-off MLA is about: down and to the left is better.
 *
 * @param results An experiment's results.
 * @returns A layered spec: whiskers, points and labels; or `null`.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { kvLossSpec } from "./vega_lite.ts";
 * assertEquals(kvLossSpec({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] }), null);
 * ```
 */
export function kvLossSpec(results: ExperimentResults): VegaLiteSpec | null {
  const points: { variant: string; kv: number; loss: number; lo: number; hi: number; n: number }[] =
    [];
  for (const variant of results.variants) {
    const runs = results.runs.filter((r) => r.variant === variant);
    const kv = runs.map((r) => runMetric(r, "kvBytesPerToken")).filter((v) => v !== undefined);
    const loss = runs.map((r) => runMetric(r, "valLoss")).filter((v) => v !== undefined);
    if (kv.length === 0 || loss.length === 0) continue;
    const ci = meanCi(loss);
    points.push({ variant, kv: meanCi(kv).mean, loss: ci.mean, lo: ci.lo, hi: ci.hi, n: ci.n });
  }
  if (points.length === 0) return null;
  const x = {
    field: "kv",
    type: "quantitative" as const,
    title: metricTitle("kvBytesPerToken"),
    scale: { zero: true },
  };
  const yTitle = metricTitle("valLoss");
  const color = colorEncoding(results);
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: "KV cache size vs validation loss",
      subtitle: `${results.experiment}: mean over seeds, whisker 95% CI; lower left is better`,
    },
    width: WIDTH,
    height: HEIGHT,
    data: { values: points },
    layer: [
      {
        transform: [{ filter: "datum.n >= 2" }],
        mark: { type: "rule", strokeWidth: 2 },
        encoding: {
          x,
          y: { field: "lo", type: "quantitative", title: yTitle, scale: { zero: false } },
          y2: { field: "hi" },
          color: { ...color, legend: null },
        },
      },
      {
        mark: { type: "point", filled: true, size: 120, opacity: 1 },
        encoding: {
          x,
          y: { field: "loss", type: "quantitative", title: yTitle, scale: { zero: false } },
          color,
          tooltip: [
            { field: "variant", type: "nominal" },
            { field: "kv", type: "quantitative", title: metricTitle("kvBytesPerToken") },
            { field: "loss", type: "quantitative", title: yTitle, format: ".4f" },
          ],
        },
      },
      {
        mark: { type: "text", align: "left", dx: 9, dy: -6, fontSize: 12 },
        encoding: {
          x,
          y: { field: "loss", type: "quantitative" },
          text: { field: "variant", type: "nominal" },
          color: { ...color, legend: null },
        },
      },
    ],
  };
}

/**
 * FP8 relative training-loss gap to the high-precision baseline over steps, per variant (mean
 * over paired seeds, min–max band), with the 0.25% line DeepSeek-V3 reports FP8 stays under.
 *
 * Ref: arXiv:2412.19437 §3.3 (relative loss error below 0.25%).
 *
 * @param results An experiment with a baseline variant and FP8 variants.
 * @param options Baseline, field, smoothing and reference line.
 * @returns A layered spec: bands, lines and the ± threshold rules; `null` with one variant.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { fp8GapSpec } from "./vega_lite.ts";
 * assertEquals(fp8GapSpec({ experiment: "e", dir: "", variants: ["fp32"], runs: [], incomplete: [] }), null);
 * ```
 */
export function fp8GapSpec(
  results: ExperimentResults,
  options: Fp8GapOptions = {},
): VegaLiteSpec | null {
  if (results.variants.length < 2) return null;
  const baseline = fp8Baseline(results, options.baseline);
  const threshold = options.threshold ?? 0.25;
  const window = options.window ?? 1;
  const yTitle = "Relative loss gap to baseline (%)";
  const color = colorEncoding(results);
  const y = { type: "quantitative" as const, title: yTitle };
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: `Training-loss gap to '${baseline}'`,
      subtitle: `${results.experiment}: 100·(L − L_${baseline}) / L_${baseline}, paired by seed, ` +
        `mean and min–max band${window > 1 ? `, ${window}-step moving average` : ""}; ` +
        `dashed: ±${threshold}% (DeepSeek-V3)`,
    },
    width: WIDTH,
    height: HEIGHT,
    config: LINE_LEGEND,
    layer: [
      {
        data: { values: fp8Gap(results, options) },
        encoding: { x: { field: "step", type: "quantitative", title: "Training step" }, color },
        layer: [
          {
            mark: { type: "area", opacity: 0.2 },
            encoding: { y: { ...y, field: "lo" }, y2: { field: "hi" } },
          },
          {
            mark: { type: "line", strokeWidth: 2 },
            encoding: {
              y: { ...y, field: "gapPct" },
              tooltip: [
                { field: "variant", type: "nominal" },
                { field: "step", type: "quantitative" },
                { field: "gapPct", type: "quantitative", title: "gap (%)", format: ".3f" },
              ],
            },
          },
        ],
      },
      {
        data: { values: [{ y: threshold }, { y: -threshold }] },
        mark: { type: "rule", strokeDash: [6, 4], color: "#666" },
        encoding: { y: { ...y, field: "y" } },
      },
    ],
  };
}

/** A named chart of a report. */
export interface NamedChart {
  /** File-name stem: `loss`, `valLoss`, `kv-loss`, ... */
  name: string;
  spec: VegaLiteSpec;
}

function hasMetric(results: ExperimentResults, metric: string): boolean {
  return results.runs.some((r) => runMetric(r, metric) !== undefined);
}

function usesFp8(run: RunResult): boolean {
  const plan = run.config?.plan as { model?: { fp8?: unknown } } | undefined;
  return plan?.model?.fp8 !== undefined && plan.model.fp8 !== null;
}

/**
 * The charts that apply to an experiment's data: loss curves, the validation-loss dots, the
 * KV-vs-loss scatter (when KV bytes differ), MaxVio and expert load (MoE runs), MTP acceptance,
 * the FP8 gap (when some variants train in FP8 and one does not) and training throughput.
 *
 * @param results An experiment's results.
 * @returns Charts in reading order (`[]` without finished runs).
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { experimentCharts } from "./vega_lite.ts";
 * assertEquals(experimentCharts({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] }), []);
 * ```
 */
export function experimentCharts(results: ExperimentResults): NamedChart[] {
  if (results.runs.length === 0) return [];
  const charts: NamedChart[] = [];
  const push = (name: string, spec: VegaLiteSpec | null) => {
    if (spec !== null) charts.push({ name, spec });
  };
  push("loss", lossCurvesSpec(results));
  const fp8 = results.runs.filter(usesFp8);
  if (fp8.length > 0 && fp8.length < results.runs.length) {
    const base = results.runs.find((r) => !usesFp8(r));
    push("fp8-gap", fp8GapSpec(results, { baseline: base?.variant, window: 5 }));
  }
  if (hasMetric(results, "valLoss")) push("valLoss", metricBarsSpec(results, "valLoss"));
  const kv = new Set(results.runs.map((r) => runMetric(r, "kvBytesPerToken")));
  if (kv.size > 1) push("kv-loss", kvLossSpec(results));
  push("maxVio", maxVioSpec(results));
  push("expert-load", expertLoadSpec(results));
  if (hasMetric(results, "maxVioGlobal")) {
    push("maxVioGlobal", metricBarsSpec(results, "maxVioGlobal"));
  }
  if (hasMetric(results, "mtpAcceptance")) {
    push("mtpAcceptance", metricBarsSpec(results, "mtpAcceptance"));
  }
  if (hasMetric(results, "trainTokensPerSec")) push("throughput", throughputSpec(results));
  return charts;
}
