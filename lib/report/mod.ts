/**
 * Reports over the results store: tables with mean ± 95% CI over seeds, Vega-Lite charts
 * rendered to SVG headlessly, a self-contained HTML report (`deno task report`), and display
 * objects for Deno Jupyter notebooks.
 *
 * ```ts ignore
 * import { loadResults, lossCurvesSpec, renderSvg, resultsTable, writeReport } from "./mod.ts";
 * const results = await loadResults("runs", "attention");
 * console.log(resultsTable(results));                  // GFM Markdown, mean ± 95% CI
 * const svg = await renderSvg(lossCurvesSpec(results)); // loss curves, band over seeds
 * await writeReport("runs", "report");                  // report/index.html + SVG files
 * ```
 *
 * @module
 */

export * from "./stats.ts";
export * from "./results.ts";
export * from "./analysis.ts";
export * from "./vega_lite.ts";
export * from "./render.ts";
export * from "./html.ts";
export * from "./jupyter.ts";
export { REPORT_HELP, reportMain, type ReportMainOptions } from "./cli.ts";
export * from "./claims.ts";
