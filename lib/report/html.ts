/**
 * The HTML report: one self-contained page (no scripts, no external files, inline CSS and SVG)
 * with, per experiment, its setup, the results table (mean ± 95% CI over seeds) and the charts
 * that apply to its data. Each chart is also written as its own SVG file beside `index.html`.
 *
 * Every string that comes from the store (experiment, variant and config values, backend names)
 * is escaped: HTML text through `escapeHtml`, Markdown table cells through `escapeMarkdown`, and
 * raw HTML in Markdown is shown as text rather than passed through `marked`.
 *
 * @module
 */

import { reproductionCards } from "./cards.ts";
import { claimsTable } from "./claims.ts";
import { Marked } from "marked";
import { writeTextAtomic } from "../runner/store.ts";
import { renderSvg } from "./render.ts";
import {
  escapeMarkdown,
  type ExperimentResults,
  listExperiments,
  loadResults,
  resultsTable,
} from "./results.ts";
import { studentTQuantile } from "./stats.ts";
import { experimentCharts, type VegaLiteSpec } from "./vega_lite.ts";

/**
 * Escape text for HTML element content and double- or single-quoted attribute values.
 *
 * @param text Any string.
 * @returns The text with `& < > " '` as character references.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { escapeHtml } from "./html.ts";
 * assertEquals(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
 * ```
 */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** Markdown → HTML with raw HTML blocks and inline tags shown as text, not passed through. */
const markdown = new Marked({
  gfm: true,
  renderer: {
    html(token) {
      return escapeHtml(token.text);
    },
  },
});

/**
 * Render Markdown to HTML (GFM tables; raw HTML in the source is escaped, not interpreted).
 *
 * @param source Markdown text.
 * @returns HTML.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { markdownToHtml } from "./html.ts";
 * assertEquals(markdownToHtml("a <b>x</b>"), "<p>a &lt;b&gt;x&lt;/b&gt;</p>\n");
 * ```
 */
export function markdownToHtml(source: string): string {
  return markdown.parse(source, { async: false });
}

/** A file-name stem from any string: `[A-Za-z0-9._-]` kept, the rest `_`. */
function slug(text: string): string {
  const s = text.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_");
  return s === "" ? "_" : s;
}

/** A rendered chart of a report. */
export interface RenderedChart {
  name: string;
  spec: VegaLiteSpec;
  svg: string;
  /** File name beside `index.html`. */
  file: string;
}

/** One experiment's part of a report. */
export interface ExperimentReport {
  results: ExperimentResults;
  /** The results table (GFM Markdown). */
  table: string;
  charts: RenderedChart[];
}

function flatten(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, JSON.stringify(value) ?? "undefined");
  }
}

/**
 * What differs between the variants of an experiment: the resolved `model` and `train` settings
 * (from `config.json`) whose values are not the same for every variant, as a Markdown table.
 *
 * @param results An experiment's results.
 * @returns A GFM table (variant × differing setting), or `""` when nothing differs.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { configTable } from "./html.ts";
 * const run = (variant: string, heads: number) => ({
 *   experiment: "e", variant, seed: 0, dir: "", steps: [], summary: {} as never,
 *   config: { plan: { model: { heads, layers: 2 } } },
 * });
 * const results = { experiment: "e", dir: "", variants: ["a", "b"], runs: [run("a", 4), run("b", 1)], incomplete: [] };
 * assertEquals(configTable(results), "| variant | model.heads |\n| --- | --- |\n| a | 4 |\n| b | 1 |\n");
 * ```
 */
export function configTable(results: ExperimentResults): string {
  const byVariant = new Map<string, Map<string, string>>();
  for (const variant of results.variants) {
    const run = results.runs.find((r) => r.variant === variant);
    const plan = run?.config?.plan as Record<string, unknown> | undefined;
    const flat = new Map<string, string>();
    flatten({ model: plan?.model, train: plan?.train }, "", flat);
    byVariant.set(variant, flat);
  }
  const keys = new Set([...byVariant.values()].flatMap((m) => [...m.keys()]));
  const differing = [...keys].filter((k) =>
    new Set([...byVariant.values()].map((m) => m.get(k) ?? "–")).size > 1
  );
  if (differing.length === 0) return "";
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    row(["variant", ...differing.map(escapeMarkdown)]),
    row(["variant", ...differing].map(() => "---")),
    ...[...byVariant].map(([v, m]) =>
      row([escapeMarkdown(v), ...differing.map((k) => escapeMarkdown(m.get(k) ?? "–"))])
    ),
  ].join("\n") + "\n";
}

/**
 * Render an experiment's table and charts (SVG) for a report.
 *
 * @param results An experiment's results.
 * @returns The table and the rendered charts, with their file names.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { buildExperimentReport } from "./html.ts";
 * const r = await buildExperimentReport({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] });
 * assertEquals(r.charts, []);
 * ```
 */
export async function buildExperimentReport(
  results: ExperimentResults,
): Promise<ExperimentReport> {
  const charts: RenderedChart[] = [];
  for (const { name, spec } of experimentCharts(results)) {
    charts.push({
      name,
      spec,
      svg: await renderSvg(spec),
      file: `${slug(results.experiment)}-${name}.svg`,
    });
  }
  return { results, table: resultsTable(results), charts };
}

function experimentMarkdown(report: ExperimentReport): string {
  const { results } = report;
  const first = results.runs[0];
  const config = first?.config ?? {};
  const plan = (config.plan ?? {}) as { train?: Record<string, unknown> };
  const lines: string[] = [];
  const seeds = [...new Set(results.runs.map((r) => r.seed))].sort((a, b) => a - b);
  lines.push(
    `${results.variants.length} variants × seeds ${seeds.join(", ")} ` +
      `(${results.runs.length} finished runs)` +
      (first
        ? `; ${first.summary.steps} steps, ${first.summary.tokens.toLocaleString("en-US")} ` +
          `training tokens per run`
        : "") +
      ".",
  );
  if (typeof config.backend === "string") {
    lines.push(`Backend: ${escapeMarkdown(config.backend)}.`);
  }
  if (typeof config.codeVersion === "string") {
    lines.push(`Code version: ${escapeMarkdown(config.codeVersion.slice(0, 12))}.`);
  }
  if (plan.train !== undefined && typeof plan.train.batch === "number") {
    lines.push(`Batch ${plan.train.batch}, peak learning rate ${plan.train.lr}.`);
  }
  const problems = results.problems ?? [];
  if (problems.length === 0 && results.incomplete.length > 0) {
    lines.push(
      `Not finished (left out): ${results.incomplete.map(escapeMarkdown).join(", ")}.`,
    );
  }
  const parts = [lines.join(" ")];
  if (problems.length > 0) {
    parts.push(
      "#### Runs left out\n\n" +
        problems.map((p) =>
          `- ${escapeMarkdown(`${p.variant}/seed-${p.seed}`)}: **${p.status}** — ${
            escapeMarkdown(p.reason)
          }`
        ).join("\n"),
    );
  }
  const diff = configTable(results);
  if (diff !== "") parts.push("#### What differs between variants\n\n" + diff);
  if (results.runs.length === 0) {
    parts.push("No run of this experiment finished.");
    return parts.join("\n\n");
  }
  parts.push(
    "#### Results\n\n" + report.table + "\n" +
      "Mean ± 95% confidence interval over seeds: `mean ± t(0.975, n−1) · s / √n` (Student t, " +
      "`s` the sample standard deviation); a single seed, or seeds that agree exactly, show the " +
      `mean alone. ${seedsNote(seeds.length)}`,
  );
  return parts.join("\n\n");
}

/** What `n` seeds mean for the intervals: `With 3 seeds t = 4.30, ...`. */
function seedsNote(n: number): string {
  if (n <= 1) return "With one seed there is no interval.";
  const t = studentTQuantile(0.975, n - 1);
  return `With ${n} seeds \`t = ${t.toFixed(2)}\`${t > 3 ? ", so intervals are wide" : ""}.`;
}

/**
 * The scale the store's experiments ran at, from the data: `3 seeds, at most 400 steps per run`.
 *
 * @param results The experiments' results.
 * @returns The phrase (empty without runs).
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { suiteScale } from "./html.ts";
 * const run = (seed: number, steps: number) => ({ seed, summary: { steps } }) as never;
 * const e = (runs: never[]) => ({ experiment: "e", dir: "", variants: [], runs, incomplete: [] });
 * assertEquals(suiteScale([e([run(0, 40), run(1, 40)]), e([run(0, 5)])]), "1–2 seeds, at most 40 steps per run");
 * ```
 */
export function suiteScale(results: readonly ExperimentResults[]): string {
  const seeds = results.map((r) => new Set(r.runs.map((run) => run.seed)).size).filter((n) =>
    n > 0
  );
  if (seeds.length === 0) return "";
  const lo = Math.min(...seeds), hi = Math.max(...seeds);
  const steps = Math.max(...results.flatMap((r) => r.runs.map((run) => run.summary.steps ?? 0)));
  return `${lo === hi ? lo : `${lo}–${hi}`} seed${hi === 1 ? "" : "s"}, at most ` +
    `${steps.toLocaleString("en-US")} steps per run`;
}

/** Options for {@linkcode reportHtml}. */
export interface ReportHtmlOptions {
  /** Page title. @default {"ablate report"} */
  title?: string;
  /** Where the results came from, shown under the title. */
  source?: string;
  /** Markdown shown before the experiments (the claims table). */
  preamble?: string;
  /** Sections written by studies (after the experiments). */
  studies?: readonly StudySection[];
}

/**
 * What a study shows in the report: it writes `<store>/<name>/report.json` holding
 * `{ title, markdown, charts }` (`charts`: SVG paths relative to its directory).
 */
export interface StudySection {
  /** The study's directory name (the `--only` name). */
  name: string;
  title: string;
  markdown: string;
  /** Figures: the file name used in the report directory and the SVG text. */
  charts: { file: string; svg: string }[];
}

/**
 * The report sections of the studies under `root`: every `<root>/<name>/report.json`.
 * A malformed file is an error naming it.
 *
 * @param root The results store.
 * @returns The sections, by name.
 */
export async function loadStudySections(root: string): Promise<StudySection[]> {
  const out: StudySection[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(root));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  for (const name of entries.filter((e) => e.isDirectory).map((e) => e.name).sort()) {
    const path = `${root}/${name}/report.json`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    let json: { title?: unknown; markdown?: unknown; charts?: unknown };
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`Cannot read study report '${path}': ${(e as Error).message}`);
    }
    const charts = Array.isArray(json.charts) ? json.charts : null;
    if (
      typeof json.title !== "string" || typeof json.markdown !== "string" || charts === null ||
      charts.some((c) => typeof c !== "string" || c.includes(".."))
    ) {
      throw new Error(
        `Cannot read study report '${path}': expected { title: string, markdown: string, ` +
          `charts: string[] } with chart paths inside the study directory`,
      );
    }
    const figures = [];
    for (const c of charts as string[]) {
      figures.push({
        file: `${name}_${c.replaceAll("/", "_")}`,
        svg: await Deno.readTextFile(`${root}/${name}/${c}`),
      });
    }
    out.push({ name, title: json.title, markdown: json.markdown, charts: figures });
  }
  return out;
}

const CSS = `
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-variant-numeric: tabular-nums;
  display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f6f6f6; }
figure { margin: 1.5em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .85em; color: #666; }
code { background: #f3f3f3; padding: 0 .2em; }
nav a { margin-right: 1em; }`;

/**
 * The report page: a self-contained HTML document (inline CSS and SVG, no scripts).
 *
 * @param reports One entry per experiment.
 * @param options Title and source line.
 * @returns The HTML document.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { reportHtml } from "./html.ts";
 * assertEquals(reportHtml([], { title: "<x>" }).includes("<title>&lt;x&gt;</title>"), true);
 * ```
 */
export function reportHtml(
  reports: readonly ExperimentReport[],
  options: ReportHtmlOptions = {},
): string {
  const title = options.title ?? "ablate report";
  const body: string[] = [];
  body.push(`<h1>${escapeHtml(title)}</h1>`);
  if (options.source !== undefined) {
    body.push(`<p>Results from <code>${escapeHtml(options.source)}</code>.</p>`);
  }
  if (options.preamble !== undefined) body.push(markdownToHtml(options.preamble));
  const studies = options.studies ?? [];
  body.push(
    `<nav>${
      [
        ...reports.map((r) => r.results.experiment),
        ...studies.map((s) => s.name),
      ].map((name) => `<a href="#${escapeHtml(`exp-${slug(name)}`)}">${escapeHtml(name)}</a>`)
        .join("")
    }</nav>`,
  );
  for (const r of reports) {
    body.push(
      `<section id="${escapeHtml(`exp-${slug(r.results.experiment)}`)}">`,
      `<h2>${escapeHtml(r.results.experiment)}</h2>`,
      markdownToHtml(experimentMarkdown(r)),
    );
    for (const c of r.charts) {
      body.push(
        `<figure>${c.svg}<figcaption>${escapeHtml(c.file)}</figcaption></figure>`,
      );
    }
    body.push("</section>");
  }
  for (const st of studies) {
    body.push(
      `<section id="${escapeHtml(`exp-${slug(st.name)}`)}">`,
      `<h2>${escapeHtml(st.title)}</h2>`,
      markdownToHtml(st.markdown),
    );
    for (const c of st.charts) {
      body.push(`<figure>${c.svg}<figcaption>${escapeHtml(c.file)}</figcaption></figure>`);
    }
    body.push("</section>");
  }
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}
</style>
</head>
<body>
${body.join("\n")}
</body>
</html>
`;
}

/** Options for {@linkcode writeReport}. */
export interface WriteReportOptions {
  /** Experiments to include. @default {every experiment under `root` with finished runs} */
  experiments?: string[];
  /** Page title. @default {"ablate report"} */
  title?: string;
  /**
   * Other stores holding the same experiments at other budgets: their runs enter the claims'
   * verdicts, the noise-with-budget trend and the reproduction cards (not the per-experiment
   * sections). @default {[]}
   */
  budgetStores?: readonly string[];
}

/** What {@linkcode writeReport} wrote. */
export interface WrittenReport {
  /** Path of `index.html`. */
  index: string;
  /** Paths of the SVG files. */
  svgs: string[];
  /** Experiments in the report. */
  experiments: string[];
  /** Runs left out (`experiment/variant/seed-n: status — reason`). */
  leftOut: string[];
}

/**
 * Write the report of the store at `root` to `outDir`: one SVG per chart, then `index.html`
 * (each file atomically: temp file, then rename).
 *
 * @param root The results store (`runs`).
 * @param outDir The report directory (created if missing).
 * @param options Which experiments, and the title.
 * @returns The files written.
 * @throws When there are no finished runs (the message names `root` and how to produce results).
 *
 * @example No results is an error that says what to run
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { writeReport } from "./html.ts";
 * await rejects(writeReport("no-such-store", ".test-tmp/report"), /deno task experiments/);
 * ```
 */
export async function writeReport(
  root: string,
  outDir: string,
  options: WriteReportOptions = {},
): Promise<WrittenReport> {
  const names = options.experiments ?? await listExperiments(root);
  const reports: ExperimentReport[] = [];
  const leftOut: string[] = [];
  for (const name of names) {
    const results = await loadResults(root, name);
    for (const p of results.problems ?? []) {
      leftOut.push(`${name}/${p.variant}/seed-${p.seed}: ${p.status} — ${p.reason}`);
    }
    // an experiment whose runs all failed is shown too, with the reasons
    if (
      results.runs.length > 0 || (results.problems ?? []).some((p) => p.status !== "unfinished")
    ) {
      reports.push(await buildExperimentReport(results));
    }
  }
  const studies = options.experiments ? [] : await loadStudySections(root);
  if (reports.length === 0 && studies.length === 0) {
    throw new Error(
      `No finished runs under '${root}'` +
        (options.experiments ? ` for ${names.map((n) => `'${n}'`).join(", ")}` : "") +
        `: produce results with 'deno task experiments --out ${root}' (it writes ` +
        `${root}/<experiment>/<variant>/seed-<n>/summary.json)`,
    );
  }
  await Deno.mkdir(outDir, { recursive: true });
  const svgs: string[] = [];
  for (const r of reports) {
    for (const c of r.charts) {
      const path = `${outDir}/${c.file}`;
      await writeTextAtomic(path, c.svg);
      svgs.push(path);
    }
  }
  for (const st of studies) {
    for (const c of st.charts) {
      const path = `${outDir}/${c.file}`;
      await writeTextAtomic(path, c.svg);
      svgs.push(path);
    }
  }
  const index = `${outDir}/index.html`;
  const claimResults = reports.filter((r) => r.results.runs.length > 0).map((r) => r.results);
  for (const store of options.budgetStores ?? []) {
    for (const name of await listExperiments(store)) {
      claimResults.push(await loadResults(store, name));
    }
  }
  const preamble = reports.length === 0 ? undefined : "## Claims\n\n" +
    claimsTable(claimResults) +
    "\n\nPaired by seed: mean ± 95% CI (Student t) of the per-seed difference. The suite runs at a " +
    `tiny scale (${suiteScale(claimResults)}), so a claim can only be checked in direction.` +
    "\n\n## Reproduction cards\n\n" + reproductionCards(claimResults);
  await writeTextAtomic(
    index,
    reportHtml(reports, { title: options.title, source: root, preamble, studies }),
  );
  return {
    index,
    svgs,
    experiments: [...reports.map((r) => r.results.experiment), ...studies.map((s) => s.name)],
    leftOut,
  };
}
