/**
 * Vega-Lite charts of the parallelism study, in the style of `lib/report/vega_lite.ts` (data
 * inline, titles, axis titles with units, {@linkcode PALETTE} colours): a Gantt chart of a
 * pipeline timeline, bars of simulated against formula bubbles, and the expert-parallel traffic
 * against the node limit. Render them with `renderSvg` (`lib/report/render.ts`) or `chart`
 * (`lib/report/jupyter.ts`).
 *
 * @module
 */

import { PALETTE, VEGA_LITE_SCHEMA, type VegaLiteSpec } from "../report/vega_lite.ts";
import type { PipelineResult } from "./pipeline.ts";

/** Operation labels and their colours in every Gantt chart. */
const OPS = ["F", "B", "B+W", "W", "F&B"];
const OP_COLORS = {
  domain: OPS,
  range: [PALETTE[0], PALETTE[4], PALETTE[3], PALETTE[1], PALETTE[6]],
};

/** Schedule names as the report writes them. */
export const SCHEDULE_LABELS: Record<string, string> = {
  "1f1b": "1F1B",
  "zb1p": "ZB1P",
  "dualpipe": "DualPipe",
};

/** Options for {@linkcode ganttSpec}. */
export interface GanttOptions {
  /** Chart title. @default {"<schedule>: PP <pp>, <m> micro-batches"} */
  title?: string;
  /** Width in pixels. @default {640} */
  width?: number;
}

/**
 * A Gantt chart of a simulated pipeline: one row per rank, one bar per operation coloured by
 * kind (`B+W` a full backward, `F&B` an overlapped pair), labelled with its micro-batch
 * (`↔` marks DualPipe's reverse direction: `12'` is micro-batch 12 fed at the last rank).
 *
 * @param result A simulated pipeline.
 * @param options Title and width.
 * @returns A layered bar + text spec.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { ganttSpec } from "./charts.ts";
 * import { simulatePipeline } from "./pipeline.ts";
 * const r = simulatePipeline("1f1b", { pp: 2, microbatches: 2, durations: { f: 1, b: 1, w: 1 } });
 * const spec = ganttSpec(r) as { layer: { data: { values: unknown[] } }[] };
 * assertEquals(spec.layer[0].data.values.length, 8); // 2 ranks × (2 F + 2 B)
 * ```
 */
export function ganttSpec(result: PipelineResult, options: GanttOptions = {}): VegaLiteSpec {
  const name = SCHEDULE_LABELS[result.schedule] ?? result.schedule;
  const label = (mb: number, dir: number) => `${mb}${dir === 1 ? "'" : ""}`;
  const bars = result.timeline.map((e) => ({
    rank: `rank ${e.rank}`,
    op: e.kind === "FB" ? "F&B" : e.kind === "B" && e.withW ? "B+W" : e.kind,
    start: e.start,
    end: e.end,
    label: e.kind === "FB" && e.backward
      ? `${label(e.microbatch, e.direction)}|${label(e.backward.microbatch, e.backward.direction)}`
      : label(e.microbatch, e.direction),
    stage: e.stage,
    direction: e.direction === 0 ? "from rank 0" : `from rank ${result.pp - 1}`,
  }));
  const ranks = Array.from({ length: result.pp }, (_, r) => `rank ${r}`);
  const directions = ["from rank 0", `from rank ${result.pp - 1}`];
  const x = { field: "start", type: "quantitative" as const, title: "Time (chunk-duration units)" };
  const y = { field: "rank", type: "ordinal" as const, title: null, sort: ranks };
  const d = result.durations;
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: options.title ?? `${name}: PP ${result.pp}, ${result.microbatches} micro-batches`,
      subtitle: `F ${d.f}, B ${d.b}, W ${d.w}, F&B ${d.fb}, comm ${d.comm}; bubble ` +
        `${round(result.bubble)}, makespan ${round(result.makespan)}, peak activations ` +
        `${result.peakActivations}, parameters ×${result.parameterCopies}`,
    },
    width: options.width ?? 640,
    height: Math.max(80, 26 * result.pp),
    layer: [
      {
        data: { values: bars },
        mark: { type: "bar", stroke: "white", strokeWidth: 0.5 },
        encoding: {
          x,
          x2: { field: "end" },
          y,
          color: { field: "op", type: "nominal", title: "operation", scale: OP_COLORS },
          opacity: {
            field: "direction",
            type: "nominal",
            title: "direction",
            sort: directions,
            scale: { domain: directions, range: [1, 0.6] },
          },
          tooltip: [
            { field: "rank", type: "nominal" },
            { field: "op", type: "nominal" },
            { field: "label", type: "nominal", title: "micro-batch" },
            { field: "stage", type: "quantitative" },
            { field: "start", type: "quantitative" },
            { field: "end", type: "quantitative" },
          ],
        },
      },
      {
        data: { values: bars },
        transform: [{ calculate: "(datum.start + datum.end) / 2", as: "mid" }],
        mark: { type: "text", fontSize: 8, color: "white" },
        encoding: {
          x: { field: "mid", type: "quantitative" },
          y,
          text: { field: "label", type: "nominal" },
        },
      },
    ],
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** One bar pair of {@linkcode bubbleBarsSpec}. */
export interface BubbleRow {
  /** The setting, e.g. `PP 8, m 20, F=B=1, W=0.5`. */
  setting: string;
  /** `1f1b`, `zb1p` or `dualpipe`. */
  schedule: string;
  /** Bubble measured on the timeline. */
  simulated: number;
  /** Table 2's formula. */
  formula: number;
}

/**
 * Simulated bubbles (bars) against V3 Table 2's formulas (black ticks), per setting and
 * schedule.
 *
 * @param rows One row per (setting, schedule).
 * @returns A faceted-by-colour bar chart with formula ticks.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { bubbleBarsSpec } from "./charts.ts";
 * const spec = bubbleBarsSpec([{ setting: "PP 4", schedule: "1f1b", simulated: 9, formula: 9 }]);
 * assertEquals((spec as { layer: unknown[] }).layer.length, 2);
 * ```
 */
export function bubbleBarsSpec(rows: readonly BubbleRow[]): VegaLiteSpec {
  const schedules = ["1f1b", "zb1p", "dualpipe"].filter((s) => rows.some((r) => r.schedule === s));
  const values = rows.map((r) => ({ ...r, name: SCHEDULE_LABELS[r.schedule] ?? r.schedule }));
  const names = schedules.map((s) => SCHEDULE_LABELS[s]);
  const settings = [...new Set(rows.map((r) => r.setting))];
  const x = {
    field: "setting",
    type: "nominal" as const,
    title: null,
    sort: settings,
    axis: { labelAngle: -25, labelLimit: 400 },
  };
  const xOffset = { field: "name", type: "nominal" as const, sort: names };
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: "Pipeline bubble: simulated vs DeepSeek-V3 Table 2",
      subtitle:
        "bars: idle time of the busiest-idle rank on the simulated timeline; ticks: formula",
    },
    width: Math.max(300, 110 * settings.length),
    height: 300,
    data: { values },
    layer: [
      {
        mark: { type: "bar" },
        encoding: {
          x,
          xOffset,
          y: { field: "simulated", type: "quantitative", title: "Bubble (chunk-duration units)" },
          color: {
            field: "name",
            type: "nominal",
            title: "schedule",
            sort: names,
            scale: { domain: names, range: names.map((_, i) => PALETTE[i]) },
          },
          tooltip: [
            { field: "setting", type: "nominal" },
            { field: "name", type: "nominal", title: "schedule" },
            { field: "simulated", type: "quantitative" },
            { field: "formula", type: "quantitative" },
          ],
        },
      },
      {
        mark: { type: "tick", color: "#111", thickness: 2 },
        encoding: { x, xOffset, y: { field: "formula", type: "quantitative" } },
      },
    ],
  };
}

/** One point of {@linkcode trafficSpec}. */
export interface TrafficRow {
  /** `M`, nodes a token may use. */
  maxNodes: number;
  /** IB bytes (dispatch + combine) per token. */
  ibBytesPerToken: number;
  /** Affinity mass given up against plain top-`K`, in `[0, 1]`. */
  lostAffinity: number;
  /** The trace the row comes from (a layer, a model). */
  series: string;
}

/**
 * Expert-parallel traffic and routing quality against the node limit `M`: IB bytes per token
 * (left) and the affinity mass node-limiting gives up (right), one line per series.
 *
 * @param rows One row per (series, `M`).
 * @param options `nodes` (for the title).
 * @returns A horizontally concatenated pair of line charts.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { trafficSpec } from "./charts.ts";
 * const spec = trafficSpec([{ maxNodes: 1, ibBytesPerToken: 10, lostAffinity: 0.1, series: "layer 0" }]);
 * assertEquals((spec as { hconcat: unknown[] }).hconcat.length, 2);
 * ```
 */
export function trafficSpec(
  rows: readonly TrafficRow[],
  options: { nodes?: number } = {},
): VegaLiteSpec {
  const series = [...new Set(rows.map((r) => r.series))];
  const color = {
    field: "series",
    type: "nominal" as const,
    title: "trace",
    sort: series,
    scale: { domain: series, range: series.map((_, i) => PALETTE[i % PALETTE.length]) },
  };
  const x = {
    field: "maxNodes",
    type: "ordinal" as const,
    title: "M, nodes a token may use",
    axis: { labelAngle: 0 },
  };
  const panel = (field: string, title: string, format: string) => ({
    width: 260,
    height: 220,
    mark: { type: "line" as const, point: true },
    encoding: {
      x,
      y: { field, type: "quantitative" as const, title, axis: { format } },
      color,
      tooltip: [
        { field: "series", type: "nominal" as const },
        { field: "maxNodes", type: "ordinal" as const, title: "M" },
        { field, type: "quantitative" as const, title, format },
      ],
    },
  });
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: "Node-limited routing: cross-node traffic vs routing quality",
      subtitle: `recorded routing re-routed with at most M of ${options.nodes ?? "N"} nodes ` +
        "per token (V3 §2.1.2); IB bytes are dispatch + combine",
    },
    data: { values: rows.map((r) => ({ ...r })) },
    hconcat: [
      panel("ibBytesPerToken", "IB bytes per token", "~s"),
      panel("lostAffinity", "Affinity mass lost vs top-K", ".1%"),
    ],
  };
}
