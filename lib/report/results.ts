/**
 * Reading an experiment's results from the store (`runs/<experiment>/<variant>/seed-<n>/`),
 * grouping them by variant, and the results table: per variant the number of seeds and, per
 * metric, `mean ± 95% CI` over seeds (Student t, see `stats.ts`).
 *
 * Only finished runs count: sealed by `manifest.json` with the metrics and summary it recorded
 * (lib/runner/check.ts). The others are listed in `incomplete`, and in `problems` with their
 * status and reason (failed, diverged, unfinished or damaged), so a report says what it left out.
 *
 * @module
 */

import { type FailureRecord, sealProblem } from "../runner/check.ts";
import { lockPath, RunLock } from "../runner/lock.ts";
import type { RunSummary } from "../runner/run.ts";
import { readJson, readMetrics } from "../runner/store.ts";
import { type MeanCi, meanCi } from "./stats.ts";

/** One logged training step (`metrics.jsonl` line): `step`, `tokens`, `loss`, `lr`, ... */
export type StepRecord = Record<string, number>;

/** One finished run. */
export interface RunResult {
  experiment: string;
  variant: string;
  seed: number;
  /** The run's directory. */
  dir: string;
  summary: RunSummary;
  /** `config.json` (the resolved plan and code version), or `null` when absent. */
  config: Record<string, unknown> | null;
  /** The training log, in step order. */
  steps: StepRecord[];
}

/** A run of the store that a report leaves out, and why. */
export interface RunProblem {
  variant: string;
  seed: number;
  /** Failed or diverged (`failure.json`), unfinished (no summary yet), or damaged. */
  status: "failed" | "diverged" | "unfinished" | "damaged";
  reason: string;
}

/** All finished runs of one experiment. */
export interface ExperimentResults {
  experiment: string;
  /** The experiment's directory in the store. */
  dir: string;
  /** Variant names, sorted (the colour order of every chart). */
  variants: string[];
  /** Finished runs, by variant then seed. */
  runs: RunResult[];
  /** `variant/seed-n` of the runs left out (not finished, failed, diverged or damaged). */
  incomplete: string[];
  /** The runs left out, with why (absent in results built by hand). */
  problems?: RunProblem[];
}

/** How a metric is labelled and formatted. */
export interface MetricInfo {
  label: string;
  /** Unit shown in table headers and axis titles (empty for a plain ratio). */
  unit: string;
  /** Decimal places in tables. */
  digits: number;
  /** Which direction is better, for readers. */
  better: "lower" | "higher";
}

/** Labels and units of the metrics the runner writes (`summary.json` `metrics` + `finalTrainLoss`). */
export const METRICS: Readonly<Record<string, MetricInfo>> = {
  valLoss: { label: "Validation loss", unit: "nats/token", digits: 4, better: "lower" },
  bitsPerByte: { label: "Validation bits per byte", unit: "", digits: 4, better: "lower" },
  finalTrainLoss: { label: "Final train loss", unit: "nats/token", digits: 4, better: "lower" },
  kvBytesPerToken: { label: "KV cache", unit: "bytes/token", digits: 0, better: "lower" },
  maxVioGlobal: { label: "MaxVio (global)", unit: "", digits: 3, better: "lower" },
  mtpAcceptance: { label: "MTP draft acceptance", unit: "fraction", digits: 3, better: "higher" },
  speculativeSpeedup: { label: "Speculative speed-up", unit: "×", digits: 2, better: "higher" },
  decodeTokensPerSec: { label: "Decode speed", unit: "tokens/s", digits: 0, better: "higher" },
  trainTokensPerSec: { label: "Training speed", unit: "tokens/s", digits: 0, better: "higher" },
};

/** The label of `metric` with its unit: `Validation loss (nats/token)`. */
export function metricTitle(metric: string): string {
  const info = METRICS[metric];
  if (info === undefined) return metric;
  return info.unit === "" ? info.label : `${info.label} (${info.unit})`;
}

function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

async function listDirs(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(path)) {
    if (e.isDirectory && !e.name.startsWith(".")) out.push(e.name);
  }
  return out.sort();
}

/**
 * Load every finished run of `experiment` from the store at `root`.
 *
 * @param root The store root (`runs`).
 * @param experiment The experiment name (a directory under `root`).
 * @returns Runs grouped by variant (sorted) and seed; an experiment with no finished run has
 *   `runs: []`.
 * @throws When `<root>/<experiment>` does not exist (the message says how to produce it).
 *
 * @example A missing experiment is an error naming the directory
 * ```ts
 * import { rejects } from "node:assert/strict";
 * import { loadResults } from "./results.ts";
 * await rejects(loadResults("runs", "no-such-experiment"), /No results for experiment/);
 * ```
 */
export async function loadResults(root: string, experiment: string): Promise<ExperimentResults> {
  const dir = `${root}/${experiment}`;
  let variants: string[];
  try {
    variants = await listDirs(dir);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new Error(
      `No results for experiment '${experiment}': '${dir}' does not exist; produce them with ` +
        `'deno task experiments --only ${experiment} --out ${root}'`,
    );
  }
  const runs: RunResult[] = [];
  const incomplete: string[] = [];
  const problems: RunProblem[] = [];
  const found = new Set<string>();
  for (const variant of variants) {
    const seeds = (await listDirs(`${dir}/${variant}`))
      .map((name) => /^seed-(\d+)$/.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const seed of seeds) {
      const runDir = `${dir}/${variant}/seed-${seed}`;
      const leave = (status: RunProblem["status"], reason: string) => {
        incomplete.push(`${variant}/seed-${seed}`);
        problems.push({ variant, seed, status, reason });
      };
      const failure = await readJson<FailureRecord>(`${runDir}/failure.json`).catch(() => null);
      if (failure !== null && (failure.status === "failed" || failure.status === "diverged")) {
        leave(failure.status, failure.reason);
        continue;
      }
      const run = { experiment, variant, seed };
      const problem = await sealProblem(root, run);
      if (problem !== null) {
        const owner = await RunLock.owner(lockPath(root, run));
        const hasSummary = await Deno.stat(`${runDir}/summary.json`).then(() => true, () => false);
        if (owner !== null) {
          leave("unfinished", `being trained (pid ${owner.pid} on ${owner.host})`);
        } else if (!hasSummary && problem.startsWith("not sealed")) {
          leave("unfinished", "not finished (interrupted, or not run yet)");
        } else {
          leave(
            "damaged",
            `${problem}; check and repair it with 'deno task experiments --check --only ` +
              `${experiment}/${variant}'`,
          );
        }
        continue;
      }
      const summary = await readJson<RunSummary>(`${runDir}/summary.json`) as RunSummary;
      const config = await readJson<Record<string, unknown>>(`${runDir}/config.json`);
      const steps = (await readMetrics(`${runDir}/metrics.jsonl`))
        .filter((r) => typeof r.step === "number")
        .sort((a, b) => a.step - b.step);
      runs.push({ experiment, variant, seed, dir: runDir, summary, config, steps });
      found.add(variant);
    }
  }
  return {
    experiment,
    dir,
    variants: variants.filter((v) => found.has(v)),
    runs,
    incomplete,
    problems,
  };
}

/**
 * The experiments under `root` that hold at least one `<variant>/seed-<n>/` directory (hidden
 * directories such as `.superseded` are skipped).
 *
 * @param root The store root.
 * @returns Experiment names, sorted; `[]` when `root` does not exist.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { listExperiments } from "./results.ts";
 * assertEquals(await listExperiments("no-such-store"), []);
 * ```
 */
export async function listExperiments(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await listDirs(root);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  const out: string[] = [];
  for (const name of names) {
    let hasRun = false;
    for (const variant of await listDirs(`${root}/${name}`)) {
      if ((await listDirs(`${root}/${name}/${variant}`)).some((d) => /^seed-\d+$/.test(d))) {
        hasRun = true;
        break;
      }
    }
    if (hasRun) out.push(name);
  }
  return out;
}

/**
 * A summary metric of a run: `summary.metrics[metric]`, or `finalTrainLoss`; `undefined` when
 * the run does not report it (or reports `null`).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { runMetric } from "./results.ts";
 * const run = { summary: { finalTrainLoss: null, metrics: {} } } as never;
 * strictEqual(runMetric(run, "finalTrainLoss"), undefined);
 * ```
 */
export function runMetric(run: RunResult, metric: string): number | undefined {
  const v = metric === "finalTrainLoss"
    ? run.summary.finalTrainLoss
    : run.summary.metrics?.[metric];
  // a missing value stays missing (never 0)
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** One variant's runs and the per-metric statistics over its seeds. */
export interface VariantStats {
  variant: string;
  /** Seeds with a finished run. */
  seeds: number[];
  /** `mean ± CI` per metric, over the seeds that report it. */
  metrics: Record<string, MeanCi>;
}

/**
 * Group runs by variant and take mean and 95% CI of every summary metric over seeds.
 *
 * @param results An experiment's results.
 * @returns One entry per variant, in `results.variants` order.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { summarize } from "./results.ts";
 * assertEquals(summarize({ experiment: "e", dir: "", variants: [], runs: [], incomplete: [] }), []);
 * ```
 */
export function summarize(results: ExperimentResults): VariantStats[] {
  return results.variants.map((variant) => {
    const runs = results.runs.filter((r) => r.variant === variant);
    const names = new Set<string>(["finalTrainLoss"]);
    for (const r of runs) for (const k of Object.keys(r.summary.metrics ?? {})) names.add(k);
    const metrics: Record<string, MeanCi> = {};
    for (const name of names) {
      const values = runs.map((r) => runMetric(r, name)).filter((v): v is number =>
        v !== undefined
      );
      if (values.length > 0) metrics[name] = meanCi(values);
    }
    return { variant, seeds: runs.map((r) => r.seed), metrics };
  });
}

/** Format `x` with `digits` decimals and thousands separators. */
export function formatNumber(x: number, digits: number): string {
  return x.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** `mean ± half-width` (the mean alone for one seed or equal values), in the metric's precision. */
export function formatMeanCi(ci: MeanCi, metric: string): string {
  const info = METRICS[metric];
  // Unknown metrics get 4 significant decimals; a CI gets at least 1 significant digit.
  let digits = info?.digits ?? 4;
  if (ci.halfWidth !== null && ci.halfWidth > 0) {
    digits = Math.max(digits, Math.min(6, Math.ceil(-Math.log10(ci.halfWidth))));
  }
  const mean = formatNumber(ci.mean, digits);
  // No interval with one seed; none worth printing when every seed gave the same value.
  if (ci.halfWidth === null || ci.halfWidth === 0) return mean;
  return `${mean} ± ${formatNumber(ci.halfWidth, digits)}`;
}

/**
 * Escape text for a GFM table cell: HTML-significant characters become entities (so a renderer
 * that passes raw HTML through shows them as text) and Markdown punctuation is backslashed.
 *
 * @param text Any string (a variant name, a config value).
 * @returns Text that renders literally in one table cell.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { escapeMarkdown } from "./results.ts";
 * assertEquals(escapeMarkdown("a|<b>*"), "a\\|&lt;b&gt;\\*");
 * ```
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/[\r\n]+/g, " ")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/[\\`*_[\]|~]/g, (c) => `\\${c}`);
}

/** Options for {@linkcode resultsTable}. */
export interface ResultsTableOptions {
  /**
   * Metrics (columns), in order. @default {every metric some variant reports, in the order of
   * `METRICS`, then the others sorted}
   */
  metrics?: string[];
}

/** The metric columns of a table: the known ones in `METRICS` order, then the rest sorted. */
export function tableMetrics(stats: readonly VariantStats[]): string[] {
  const present = new Set(stats.flatMap((s) => Object.keys(s.metrics)));
  const known = Object.keys(METRICS).filter((m) => present.has(m));
  const other = [...present].filter((m) => !(m in METRICS)).sort();
  return [...known, ...other];
}

/**
 * The results table as GitHub-flavoured Markdown: one row per variant, the number of seeds and
 * `mean ± 95% CI` per metric (the header gives the unit; one seed shows the mean alone).
 *
 * @param results An experiment's results.
 * @param options Which metrics to show.
 * @returns The table, ending in a newline (`""` without finished runs).
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { type ExperimentResults, resultsTable } from "./results.ts";
 * const run = (seed: number, valLoss: number) => ({
 *   experiment: "e", variant: "mla", seed, dir: "", config: null, steps: [],
 *   summary: { metrics: { valLoss }, finalTrainLoss: valLoss } as never,
 * });
 * const results: ExperimentResults = {
 *   experiment: "e", dir: "", variants: ["mla"], runs: [run(0, 2), run(1, 3)], incomplete: [],
 * };
 * assertEquals(
 *   resultsTable(results, { metrics: ["valLoss"] }),
 *   "| variant | seeds | Validation loss (nats/token) |\n" +
 *     "| :------ | ----: | ---------------------------: |\n" +
 *     "| mla     |     2 |              2.5000 ± 6.3531 |\n",
 * );
 * ```
 */
export function resultsTable(
  results: ExperimentResults,
  options: ResultsTableOptions = {},
): string {
  const stats = summarize(results);
  if (stats.length === 0) return "";
  const metrics = options.metrics ?? tableMetrics(stats);
  const header = ["variant", "seeds", ...metrics.map(metricTitle)].map(escapeMarkdown);
  const rows = stats.map((s) => [
    escapeMarkdown(s.variant),
    String(s.seeds.length),
    ...metrics.map((m) => (s.metrics[m] === undefined ? "–" : formatMeanCi(s.metrics[m], m))),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")
    } |`;
  const rule = `| ${
    widths.map((w, i) => (i === 0 ? `:${"-".repeat(w - 1)}` : `${"-".repeat(w - 1)}:`)).join(" | ")
  } |`;
  return [line(header), rule, ...rows.map(line)].join("\n") + "\n";
}
