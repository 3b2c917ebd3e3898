/**
 * Reports over the results store: tables with mean ± 95% CI over seeds, Vega-Lite charts
 * rendered to SVG headlessly, a self-contained HTML report (`deno task report`), display
 * objects for Deno Jupyter notebooks, and the claims' verdicts with their power statements and
 * reproduction cards.
 *
 * ```ts ignore
 * import { loadResults, lossCurvesSpec, renderSvg, resultsTable, verdictLines, writeReport } from "./mod.ts";
 * const results = await loadResults("runs", "attention");
 * console.log(resultsTable(results));                  // GFM Markdown, mean ± 95% CI
 * const svg = await renderSvg(lossCurvesSpec(results)); // loss curves, band over seeds
 * await writeReport("runs", "report");                  // report/index.html + SVG files
 * console.log(verdictLines([results]).join("\n"));      // holds / contradicted / inconclusive
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
export * from "./power.ts";
export * from "./verdicts.ts";
export * from "./cards.ts";
export * from "./eval_noise.ts";
