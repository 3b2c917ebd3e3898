/**
 * Notebook display objects for the Deno Jupyter kernel. A value with a
 * `[Symbol.for("Jupyter.display")]()` method is shown through the MIME bundle it returns:
 * charts as `application/vnd.vegalite.v5+json` (interactive where the front end renders
 * Vega-Lite) with an `image/svg+xml` fallback (what nbconvert's HTML shows) and `text/plain`;
 * tables as `text/markdown`. Outside Jupyter the same objects print as text (`toString`,
 * `console.log`).
 *
 * ```ts ignore
 * const r = await openResults("../runs", "attention");
 * r.table();               // Markdown table, mean ± 95% CI over seeds
 * await r.plot("valLoss"); // chart (last expression of a cell)
 * ```
 *
 * @module
 */

import { renderSvg } from "./render.ts";
import {
  type ExperimentResults,
  loadResults,
  METRICS,
  resultsTable,
  type ResultsTableOptions,
} from "./results.ts";
import {
  experimentCharts,
  expertLoadSpec,
  fp8GapSpec,
  kvLossSpec,
  lossCurvesSpec,
  maxVioSpec,
  metricBarsSpec,
  type VegaLiteSpec,
} from "./vega_lite.ts";

/** The symbol the Deno kernel looks up to display a value. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;
const INSPECT = Symbol.for("Deno.customInspect");

/** A MIME bundle: MIME type → content. */
export type MimeBundle = Record<string, unknown>;

function specTitle(spec: VegaLiteSpec): string {
  const t = (spec as { title?: string | { text?: string | string[] } }).title;
  if (typeof t === "string") return t;
  const text = t?.text;
  return Array.isArray(text) ? text.join(" ") : text ?? "chart";
}

/** A rendered chart: displays as Vega-Lite + SVG in Jupyter, as its title elsewhere. */
export class Chart {
  /** The Vega-Lite spec (data inline). */
  readonly spec: VegaLiteSpec;
  /** The chart rendered to SVG. */
  readonly svg: string;
  /** The chart title. */
  readonly title: string;

  constructor(spec: VegaLiteSpec, svg: string) {
    this.spec = spec;
    this.svg = svg;
    this.title = specTitle(spec);
  }

  /**
   * The MIME bundle for the Deno kernel.
   *
   * @returns Vega-Lite, SVG and plain-text renderings.
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    return {
      "application/vnd.vegalite.v5+json": this.spec,
      "image/svg+xml": this.svg,
      "text/plain": this.toString(),
    };
  }

  /** `Chart: <title>` (what a terminal shows). */
  toString(): string {
    return `Chart: ${this.title} (Vega-Lite; svg ${this.svg.length} bytes)`;
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/**
 * Render a Vega-Lite spec into a displayable {@linkcode Chart}.
 *
 * @param spec The Vega-Lite spec (data inline).
 * @returns The chart, SVG rendered.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { chart, JUPYTER_DISPLAY } from "./jupyter.ts";
 * const c = await chart({ title: "t", data: { values: [{ a: 1 }] }, mark: "point",
 *   encoding: { x: { field: "a", type: "quantitative" } } });
 * assertEquals(Object.keys(c[JUPYTER_DISPLAY]()), [
 *   "application/vnd.vegalite.v5+json", "image/svg+xml", "text/plain",
 * ]);
 * ```
 */
export async function chart(spec: VegaLiteSpec): Promise<Chart> {
  return new Chart(spec, await renderSvg(spec));
}

/** A Markdown table: displays as `text/markdown` in Jupyter, as its Markdown elsewhere. */
export class MarkdownTable {
  /** The table in GFM Markdown. */
  readonly markdown: string;

  constructor(markdown: string) {
    this.markdown = markdown;
  }

  /**
   * The MIME bundle for the Deno kernel.
   *
   * @returns Markdown and plain-text renderings.
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    return { "text/markdown": this.markdown, "text/plain": this.markdown };
  }

  /** The Markdown source. */
  toString(): string {
    return this.markdown;
  }

  [INSPECT](): string {
    return this.markdown;
  }
}

/** The views {@linkcode ResultsView.plot} knows besides summary metrics. */
export type PlotView = "loss" | "mainLoss" | "maxVio" | "expertLoad" | "kvLoss" | "fp8Gap";

/**
 * An experiment's results in a notebook: `table()` and `plot(view)` return displayable objects.
 */
export class ResultsView {
  /** The loaded results. */
  readonly results: ExperimentResults;

  constructor(results: ExperimentResults) {
    this.results = results;
  }

  /**
   * The results table (mean ± 95% CI over seeds).
   *
   * @param options Which metrics to show.
   * @returns A displayable Markdown table.
   */
  table(options: ResultsTableOptions = {}): MarkdownTable {
    return new MarkdownTable(resultsTable(this.results, options));
  }

  /**
   * One chart: a per-step view (`loss`, `mainLoss`, `maxVio`, `expertLoad`, `fp8Gap`), the
   * `kvLoss` scatter, or the bars of a summary metric (`valLoss`, `trainTokensPerSec`, ...).
   *
   * @param view What to plot.
   * @returns The rendered chart.
   * @throws When the experiment has no data for the view.
   */
  async plot(view: PlotView | string): Promise<Chart> {
    const r = this.results;
    let spec: VegaLiteSpec | null;
    switch (view) {
      case "loss":
      case "mainLoss":
        spec = lossCurvesSpec(r, { field: view });
        break;
      case "maxVio":
        spec = maxVioSpec(r);
        break;
      case "expertLoad":
        spec = expertLoadSpec(r);
        break;
      case "kvLoss":
        spec = kvLossSpec(r);
        break;
      case "fp8Gap":
        spec = fp8GapSpec(r);
        break;
      default:
        spec = r.runs.some((run) => view in (run.summary.metrics ?? {})) ||
            view === "finalTrainLoss"
          ? metricBarsSpec(r, view)
          : null;
    }
    if (spec === null) {
      const metrics = [...new Set(r.runs.flatMap((run) => Object.keys(run.summary.metrics)))];
      throw new Error(
        `Cannot plot '${view}' for experiment '${r.experiment}': no data; views: loss, ` +
          `mainLoss, maxVio, expertLoad, kvLoss, fp8Gap, or a metric (${
            (metrics.length > 0 ? metrics : Object.keys(METRICS)).join(", ")
          })`,
      );
    }
    return await chart(spec);
  }

  /**
   * Every chart that applies to the data (as in the HTML report).
   *
   * @returns The rendered charts.
   */
  async charts(): Promise<Chart[]> {
    const out: Chart[] = [];
    for (const c of experimentCharts(this.results)) out.push(await chart(c.spec));
    return out;
  }

  /** `Results: <experiment> (<variants>, <n> runs)`. */
  toString(): string {
    return `Results: ${this.results.experiment} (${this.results.variants.join(", ")}; ` +
      `${this.results.runs.length} finished runs)`;
  }

  /**
   * Shown in Jupyter as its table.
   *
   * @returns Markdown and plain-text renderings.
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    const table = resultsTable(this.results);
    return { "text/markdown": table, "text/plain": `${this.toString()}\n${table}` };
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/**
 * Load an experiment's results for a notebook.
 *
 * @param root The store root (from a notebook in `notebooks/`: `"../runs"`).
 * @param experiment The experiment name.
 * @returns A {@linkcode ResultsView}.
 *
 * @example
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { openResults } from "./jupyter.ts";
 * await rejects(openResults("no-such-store", "attention"), /No results for experiment 'attention'/);
 * ```
 */
export async function openResults(root: string, experiment: string): Promise<ResultsView> {
  return new ResultsView(await loadResults(root, experiment));
}
