/**
 * Live progress of a sweep in a Jupyter notebook (the Deno kernel): ONE output that updates in
 * place (`display_data` with a display id, then `update_display_data`) instead of a line per
 * step. It shows a progress table (run i/n, variant, seed, step, loss, tokens/s, ETA) above a
 * Vega-Lite chart of the training loss of the variants so far, at most every `interval` ms; when
 * the sweep ends, the results table (mean ± 95% CI over seeds) and the rows of the paper's claims
 * for those experiments follow it.
 *
 * The display carries Vega-Lite (JupyterLab and VS Code draw it), an SVG fallback (what
 * nbconvert's HTML and GitHub show) and a plain-text table. Rendering the SVG costs about 0.1 s,
 * so it is redrawn only as often as keeps it under `svgShare` of the wall time, and always at the
 * end; the Vega-Lite spec is sent with every update.
 *
 * A kernel interrupt (Jupyter sends SIGINT; Deno's default would end the kernel) during a run
 * asks the runner to stop through {@linkcode Reporter.shouldStop}: the trainer saves a
 * checkpoint, the cell ends with `StoppedError`, and running the cell again resumes from that
 * step. The listener is installed only while a run polls `shouldStop` (between its first step
 * and its end), so an interrupt anywhere else behaves as Deno's default.
 *
 * ```ts ignore
 * // in a notebook cell (runExperiments picks this reporter inside the kernel by itself)
 * await runExperiments([quick], { budget: "small", reporter: new JupyterReporter() });
 * ```
 *
 * @module
 */

import { claimsTable } from "../report/claims.ts";
import { renderSvg } from "../report/render.ts";
import {
  type ExperimentResults,
  loadResults,
  resultsTable,
  type RunResult,
  type StepRecord,
} from "../report/results.ts";
import { lossCurvesSpec, VEGA_LITE_SCHEMA, type VegaLiteSpec } from "../report/vega_lite.ts";
import type { RunExperimentsResult } from "./experiments.ts";
import {
  formatEta,
  type PlannedRun,
  type Reporter,
  type RunEndInfo,
  type RunStartInfo,
  type RunStatus,
} from "./progress.ts";
import { readMetrics, runPaths } from "./store.ts";

/** MIME type of the Vega-Lite bundle (what JupyterLab renders). */
const VEGA_LITE_MIME = "application/vnd.vegalite.v5+json";

/** Sends a MIME bundle to the front end: a new display, or an update of `display_id`. */
export type DisplayFn = (
  bundle: Record<string, unknown>,
  options: { display_id: string; update: boolean },
) => Promise<void>;

/** Options for {@linkcode JupyterReporter}. */
export interface JupyterReporterOptions {
  /** Least time between two display updates, in ms (2 updates/s). @default {500} */
  interval?: number;
  /** Largest share of the wall time spent rendering the SVG fallback. @default {0.05} */
  svgShare?: number;
  /** Largest number of rows of the progress table (a window around the running run). @default {16} */
  maxRows?: number;
  /** Where bundles go. @default {Deno.jupyter.display with `raw: true`} */
  display?: DisplayFn;
  /** Catch SIGINT during a run and ask the runner to checkpoint and stop. @default {true with the kernel's display} */
  interrupt?: boolean;
  /** Clock in ms (tests). @default {performance.now} */
  now?: () => number;
}

type RowStatus = "pending" | "running" | "stopped" | RunStatus;

interface Row extends PlannedRun {
  /** Position in the sweep, 1-based. */
  index: number;
  status: RowStatus;
  step: number;
  fromStep: number;
  loss: number | null;
  tokensPerSec: number | null;
  /** When the run started here (ms), for its ETA. */
  started: number;
  detail: string;
  /** Training loss per step (from the store for skipped and resumed runs). */
  points: StepRecord[];
}

const COLUMNS = [
  { key: "run", title: "run", align: "right" },
  { key: "variant", title: "variant", align: "left" },
  { key: "seed", title: "seed", align: "right" },
  { key: "step", title: "step", align: "right" },
  { key: "loss", title: "loss", align: "right" },
  { key: "speed", title: "tokens/s", align: "right" },
  { key: "eta", title: "ETA", align: "right" },
  { key: "status", title: "status", align: "left" },
] as const;

type Cells = Record<(typeof COLUMNS)[number]["key"], string>;

/** Colours of a row's text by status (running stands out, pending fades). */
const STATUS_COLORS: Record<RowStatus, string> = {
  running: "#1f1f1f",
  done: "#4c4c4c",
  skipped: "#4c4c4c",
  pending: "#a0a0a0",
  failed: "#c0392b",
  diverged: "#c0392b",
  changed: "#b26b00",
  stopped: "#b26b00",
};

/** Most points per run in the live chart (a long run is thinned to every k-th step). */
const MAX_POINTS = 240;
/** At most one yield to the event loop (for the SIGINT listener) per this many ms. */
const YIELD_EVERY_MS = 100;

/** `text` cut to `max` characters with an ellipsis. */
function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function parseLabel(label: string): { experiment: string; variant: string; seed: number } {
  const m = /^(.*)\/(.*)\/seed-(\d+)$/.exec(label);
  return m
    ? { experiment: m[1], variant: m[2], seed: Number(m[3]) }
    : { experiment: label, variant: label, seed: 0 };
}

/**
 * The live display of a sweep in a Deno Jupyter notebook: progress table + loss chart in one
 * output updated in place, then the results and claims tables. Implements the runner's
 * {@linkcode Reporter}, with the optional `begin`, `end` and `shouldStop` hooks.
 *
 * @example A sweep of one run, shown through an injected display
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { JupyterReporter } from "./jupyter_reporter.ts";
 * const sent: { update: boolean; bundle: Record<string, unknown> }[] = [];
 * let t = 0;
 * const r = new JupyterReporter({
 *   display: async (bundle, o) => void sent.push({ update: o.update, bundle }),
 *   now: () => (t += 300),
 * });
 * r.begin({ out: "no-store", budget: "small", runs: [
 *   { label: "e/a/seed-0", experiment: "e", variant: "a", seed: 0, steps: 4 },
 * ] });
 * r.runStart({ index: 1, count: 1, label: "e/a/seed-0", steps: 4, fromStep: 0, experiment: "e", variant: "a", seed: 0 });
 * for (let step = 1; step <= 4; step++) r.step({ step, loss: 5 / step, tokensPerSec: 1000 });
 * r.runEnd({ label: "e/a/seed-0", status: "done", detail: "val loss 1.2" });
 * await r.end({ out: "no-store", runs: [] });
 * assertEquals(sent[0].update, false);
 * assertEquals(sent.slice(1).every((s) => s.update), true);
 * assertEquals(String(sent.at(-1)?.bundle["text/plain"]).includes("done"), true);
 * ```
 */
export class JupyterReporter implements Reporter {
  #interval: number;
  #svgShare: number;
  #maxRows: number;
  #display: DisplayFn;
  #interrupt: boolean;
  #now: () => number;

  #id = "";
  #out: string | null = null;
  #budget = "";
  #rows: Row[] = [];
  #current: Row | null = null;
  #logs: string[] = [];
  #began = 0;
  #trainedSteps = 0;
  #trainedMs = 0;

  #shown = false;
  #lastPublish = -Infinity;
  /** News not yet shown, and the timer that will show it. */
  #pending = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #publishing: Promise<void> | null = null;
  #loading: Promise<void>[] = [];
  #svg = "";
  #svgAt = -Infinity;
  #svgCost = 0;
  #error: string | null = null;

  #stopRequested = false;
  #listening = false;
  #lastYield = 0;
  #onSigint = () => {
    this.#stopRequested = true;
  };

  constructor(options: JupyterReporterOptions = {}) {
    this.#interval = options.interval ?? 500;
    this.#svgShare = options.svgShare ?? 0.05;
    this.#maxRows = options.maxRows ?? 16;
    this.#display = options.display ??
      ((bundle, o) => Deno.jupyter.display(bundle, { raw: true, ...o }));
    this.#interrupt = options.interrupt ?? options.display === undefined;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * The sweep starts: lists every planned run and shows the display.
   *
   * @param info The store, the budget and the runs.
   */
  begin(info: { out: string; budget: string; runs: readonly PlannedRun[] }): void {
    this.#id = `ablate-${crypto.randomUUID()}`;
    this.#shown = false;
    this.#out = info.out;
    this.#budget = info.budget;
    this.#rows = info.runs.map((r, i) => this.#newRow(r, i + 1));
    this.#current = null;
    this.#began = this.#now();
    this.#trainedSteps = 0;
    this.#trainedMs = 0;
    this.#stopRequested = false;
    this.#loading = [];
    this.#request(true);
  }

  /**
   * A run starts (or resumes at `fromStep`).
   *
   * @param info Its position, label and steps.
   */
  runStart(info: RunStartInfo): void {
    if (this.#id === "") this.begin({ out: "", budget: "", runs: [] }); // a runner without begin
    this.#finishCurrent(); // a study's stage may start the next without ending the last
    const row = this.#row(info.label, info.steps, info);
    row.status = "running";
    row.steps = info.steps;
    row.step = info.fromStep;
    row.fromStep = info.fromStep;
    row.started = this.#now();
    row.points = [];
    row.detail = info.fromStep > 0 ? `resumed at step ${info.fromStep}` : "";
    if (info.fromStep > 0) this.#loadCurve(row, info.fromStep);
    this.#current = row;
    this.#request(true);
  }

  /**
   * One optimizer step finished.
   *
   * @param m The step's metrics.
   */
  step(m: { step: number; loss: number; tokensPerSec: number }): void {
    const row = this.#current;
    if (row === null) return;
    row.step = m.step;
    row.loss = m.loss;
    row.tokensPerSec = m.tokensPerSec;
    row.points.push({ step: m.step, loss: m.loss });
    this.#request(false);
  }

  /**
   * A run finished, was skipped or failed.
   *
   * @param info Its label, status and a detail (final validation loss, error).
   */
  runEnd(info: RunEndInfo): void {
    const row = this.#row(info.label, 0);
    if (row === this.#current) this.#finishCurrent();
    row.status = info.status;
    row.detail = info.detail;
    if (info.status === "skipped") this.#loadCurve(row, Infinity);
    this.#stopListening();
    this.#request(false);
  }

  /**
   * A free-form line (backend choice, store): the last two show under the title.
   *
   * @param line The line.
   */
  log(line: string): void {
    this.#logs.push(line);
    this.#request(false);
  }

  /**
   * Asked by the runner after every step: `true` after a kernel interrupt (the trainer then
   * saves a checkpoint and stops). Yields to the event loop now and then, so the SIGINT
   * listener runs even while a CPU backend keeps the loop busy.
   *
   * @returns Whether to stop.
   */
  async shouldStop(): Promise<boolean> {
    if (this.#interrupt && !this.#listening && this.#current !== null) {
      Deno.addSignalListener("SIGINT", this.#onSigint);
      this.#listening = true;
    }
    const now = this.#now();
    if (now - this.#lastYield >= YIELD_EVERY_MS) {
      this.#lastYield = now;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    if (!this.#stopRequested) return false;
    this.#stopListening();
    const row = this.#current;
    if (row !== null) {
      row.status = "stopped";
      row.detail =
        `interrupted at step ${row.step}: checkpoint saved; run the cell again to resume`;
    }
    this.#request(true);
    await this.#publishing;
    return true;
  }

  /**
   * The sweep ended: the last update (with the SVG), then the results and claims tables of the
   * experiments that ran.
   *
   * @param result The runner's result (its store and runs).
   */
  async end(result: Pick<RunExperimentsResult, "out" | "runs">): Promise<void> {
    this.#stopListening();
    this.#finishCurrent();
    await Promise.all(this.#loading);
    await this.#publishing;
    this.#disarm();
    await this.#publish(true);
    const experiments = [...new Set(result.runs.map((r) => r.experiment))];
    const sections: string[] = [];
    const loaded: ExperimentResults[] = [];
    for (const name of experiments) {
      try {
        const results = await loadResults(result.out, name);
        if (results.runs.length === 0) continue;
        loaded.push(results);
        sections.push(`### ${name}\n\n${resultsTable(results)}`);
      } catch (e) {
        sections.push(`### ${name}\n\nNo results: ${(e as Error).message}`);
      }
    }
    if (sections.length === 0) return;
    const claims = claimsTable(loaded, { experiments });
    const hasClaims = claims.split("\n").length > 2;
    const markdown = sections.join("\n") +
      (hasClaims ? `\n**The papers' claims** (paired by seed)\n\n${claims}\n` : "");
    await this.#display({ "text/markdown": markdown, "text/plain": markdown }, {
      display_id: `${this.#id}-results`,
      update: false,
    });
  }

  #newRow(r: PlannedRun, index: number): Row {
    return {
      ...r,
      index,
      status: "pending",
      step: 0,
      fromStep: 0,
      loss: null,
      tokensPerSec: null,
      started: 0,
      detail: "",
      points: [],
    };
  }

  #row(
    label: string,
    steps: number,
    info: { experiment?: string; variant?: string; seed?: number } = {},
  ): Row {
    let row = this.#rows.find((r) => r.label === label);
    if (row === undefined) {
      const parsed = parseLabel(label);
      row = this.#newRow({
        label,
        experiment: info.experiment ?? parsed.experiment,
        variant: info.variant ?? parsed.variant,
        seed: info.seed ?? parsed.seed,
        steps,
      }, this.#rows.length + 1);
      this.#rows.push(row);
    }
    return row;
  }

  /** Read a run's logged losses up to `upTo` from the store (skipped and resumed runs). */
  #loadCurve(row: Row, upTo: number): void {
    if (!this.#out) return;
    const path = runPaths(this.#out, row.experiment, row.variant, row.seed).metrics;
    const p = readMetrics(path).then(
      (records) => {
        const old = records
          .filter((r) => r.step <= upTo && typeof r.loss === "number")
          .map((r) => ({ step: r.step, loss: r.loss }));
        row.points = [...old, ...row.points.filter((p) => p.step > upTo)];
        const last = old.at(-1);
        if (row.status === "skipped" && last !== undefined) {
          row.step = last.step;
          row.loss = last.loss;
        }
      },
      () => {}, // no log: the chart simply lacks this run
    );
    this.#loading.push(p);
  }

  /** The current run ends (as done unless told otherwise): count its steps for the ETA. */
  #finishCurrent(): void {
    const row = this.#current;
    if (row === null) return;
    if (row.status === "running") {
      this.#trainedSteps += row.step - row.fromStep;
      this.#trainedMs += this.#now() - row.started;
      row.status = "done";
    }
    this.#current = null;
  }

  #stopListening(): void {
    if (!this.#listening) return;
    Deno.removeSignalListener("SIGINT", this.#onSigint);
    this.#listening = false;
  }

  /**
   * Publish now if `force` or the interval passed; otherwise (or while a publish is under way)
   * remember the news and publish it once the interval has passed, so the display never stays
   * behind (during a run's evaluation, say).
   */
  #request(force: boolean): void {
    if (this.#id === "") return;
    const wait = this.#interval - (this.#now() - this.#lastPublish);
    if (this.#publishing !== null || (!force && wait > 0)) {
      this.#pending = true;
      if (this.#publishing === null) this.#arm(wait);
      return;
    }
    this.#disarm();
    this.#publishing = this.#publish(false).finally(() => {
      this.#publishing = null;
      if (this.#pending) this.#arm(this.#interval - (this.#now() - this.#lastPublish));
    });
  }

  #arm(wait: number): void {
    if (this.#timer !== undefined) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#pending) this.#request(true);
    }, Math.max(0, wait));
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = false;
  }

  async #publish(final: boolean): Promise<void> {
    this.#lastPublish = this.#now();
    try {
      const bundle = await this.bundle(final);
      await this.#display(bundle, { display_id: this.#id, update: this.#shown });
      this.#shown = true;
    } catch (e) {
      // A display must never break a run: keep the first error and show it as text.
      this.#error ??= (e as Error).message;
    }
  }

  /**
   * The display's current MIME bundle: Vega-Lite (table + chart), the SVG fallback and text.
   *
   * @param final Render the SVG now (the sweep's last state).
   * @returns The bundle.
   */
  async bundle(final = false): Promise<Record<string, unknown>> {
    const spec = this.spec(), text = this.text(); // one moment's state, before rendering

    const now = this.#now();
    const due = now - this.#svgAt >= Math.max(2000, this.#svgCost / this.#svgShare);
    if (final || this.#svg === "" || due) {
      const t = performance.now();
      this.#svg = await renderSvg(spec);
      this.#svgCost = performance.now() - t;
      this.#svgAt = this.#now();
    }
    return {
      [VEGA_LITE_MIME]: spec,
      "image/svg+xml": this.#svg,
      "text/plain": text,
    };
  }

  /**
   * The progress table as plain text (what a text front end shows).
   *
   * @returns One line per run, with a header and a summary.
   */
  text(): string {
    const cells = this.#visibleRows().map((r) => this.#cells(r));
    const header = Object.fromEntries(COLUMNS.map((c) => [c.key, c.title])) as Cells;
    const all = [header, ...cells];
    const widths = COLUMNS.map((c) => Math.max(...all.map((r) => r[c.key].length)));
    const lines = all.map((r) =>
      COLUMNS.map((c, i) =>
        c.align === "left" ? r[c.key].padEnd(widths[i]) : r[c.key].padStart(widths[i])
      )
        .join("  ").trimEnd()
    );
    const error = this.#error === null ? [] : [`(display error: ${this.#error})`];
    return [this.#summary(), ...lines, ...error].join("\n");
  }

  /**
   * The Vega-Lite spec: the progress table (text marks) above the loss chart of the experiment
   * running now (or last).
   *
   * @returns A `vconcat` spec with its data inline.
   */
  spec(): VegaLiteSpec {
    const experiments = [...new Set(this.#rows.map((r) => r.experiment))];
    const focus = this.#current?.experiment ??
      [...this.#rows].reverse().find((r) => r.points.length > 0)?.experiment ??
      experiments[0] ?? "";
    const chart = lossCurvesSpec(this.#liveResults(focus)) as unknown as Record<string, unknown>;
    const { $schema: _schema, config, ...chartBody } = chart;
    return {
      $schema: VEGA_LITE_SCHEMA,
      title: {
        text: `${experiments.join(", ") || "runs"}${
          this.#budget ? ` (${this.#budget} budget)` : ""
        }`,
        subtitle: [this.#summary(), ...this.#logs.slice(-2).map((l) => clip(l, 96))],
        anchor: "start",
      },
      config: config as Record<string, unknown>,
      vconcat: [this.#tableSpec(), chartBody],
      resolve: { scale: { color: "independent" } },
    } as unknown as VegaLiteSpec;
  }

  #summary(): string {
    const finished = this.#rows.filter((r) => r.status !== "pending" && r.status !== "running");
    const elapsed = (this.#now() - this.#began) / 1000;
    return `${finished.length} of ${this.#rows.length} runs finished · elapsed ${
      formatEta(elapsed)
    } · ETA ${formatEta(this.#sweepEta())}`;
  }

  /** Seconds left for the sweep: steps left × the mean time per step trained so far. */
  #sweepEta(): number {
    const cur = this.#current;
    let steps = this.#trainedSteps, ms = this.#trainedMs;
    if (cur !== null && cur.step > cur.fromStep) {
      steps += cur.step - cur.fromStep;
      ms += this.#now() - cur.started;
    }
    if (steps === 0) return this.#rows.every((r) => r.status !== "pending") ? 0 : Infinity;
    const left = this.#rows.reduce(
      (sum, r) =>
        sum + (r.status === "pending" ? r.steps : r.status === "running" ? r.steps - r.step : 0),
      0,
    );
    return (left * ms) / steps / 1000;
  }

  #cells(r: Row): Cells {
    const several = new Set(this.#rows.map((x) => x.experiment)).size > 1;
    let eta = "";
    if (r.status === "running") {
      const done = r.step - r.fromStep;
      const seconds = (this.#now() - r.started) / 1000;
      eta = formatEta(done > 0 ? (seconds / done) * (r.steps - r.step) : Infinity);
    }
    const status = r.status === "pending" || r.status === "skipped" || r.detail === ""
      ? r.status
      : `${r.status}: ${r.detail}`;
    return {
      run: `${r.index}/${this.#rows.length}`,
      variant: several ? `${r.experiment}/${r.variant}` : r.variant,
      seed: String(r.seed),
      step: r.status === "pending" ? `–/${r.steps}` : `${r.step}/${r.steps}`,
      loss: r.loss === null ? "–" : r.loss.toFixed(4),
      speed: r.tokensPerSec === null || r.status === "skipped"
        ? "–"
        : Math.round(r.tokensPerSec).toLocaleString("en-US"),
      eta,
      status: clip(status, 60),
    };
  }

  /** At most `maxRows` rows: a window that keeps the running run in view. */
  #visibleRows(): Row[] {
    const rows = this.#rows;
    if (rows.length <= this.#maxRows) return rows;
    const at = this.#current === null
      ? rows.findIndex((r) => r.status === "pending")
      : rows.indexOf(this.#current);
    const centre = at < 0 ? rows.length - 1 : at;
    const before = Math.min(4, Math.floor((this.#maxRows - 1) / 2)); // finished rows kept above
    const start = Math.max(0, Math.min(centre - before, rows.length - this.#maxRows));
    return rows.slice(start, start + this.#maxRows);
  }

  #tableSpec(): Record<string, unknown> {
    const rows = this.#visibleRows();
    const cells = rows.map((r) => this.#cells(r));
    const header = Object.fromEntries(COLUMNS.map((c) => [c.key, c.title])) as Cells;
    const charWidth = 6.6, gap = 14;
    const widths = COLUMNS.map((c) =>
      Math.ceil(charWidth * Math.max(c.title.length, ...cells.map((x) => x[c.key].length))) + gap
    );
    const lefts = widths.map((_, i) => widths.slice(0, i).reduce((a, b) => a + b, 0));
    const values = [
      { row: 0, state: "header", ...header },
      ...cells.map((c, i) => ({ row: i + 1, state: rows[i].status, ...c })),
    ];
    const states = Object.keys(STATUS_COLORS) as RowStatus[];
    return {
      width: lefts[lefts.length - 1] + widths[widths.length - 1],
      view: { stroke: null },
      height: { step: 17 },
      data: { values },
      encoding: { y: { field: "row", type: "ordinal", axis: null } },
      layer: COLUMNS.flatMap((c, i) => {
        const x = c.align === "left" ? lefts[i] : lefts[i] + widths[i] - gap;
        const mark = { type: "text", align: c.align, x, font: "monospace", fontSize: 11 };
        return [
          {
            transform: [{ filter: "datum.row === 0" }],
            mark: { ...mark, fontWeight: "bold" },
            encoding: { text: { field: c.key } },
          },
          {
            transform: [{ filter: "datum.row > 0" }],
            mark,
            encoding: {
              text: { field: c.key },
              color: {
                field: "state",
                type: "nominal",
                scale: { domain: states, range: states.map((s) => STATUS_COLORS[s]) },
                legend: null,
              },
            },
          },
        ];
      }),
    };
  }

  /** The runs of `experiment` so far as results (each thinned to at most `MAX_POINTS` steps). */
  #liveResults(experiment: string): ExperimentResults {
    const rows = this.#rows.filter((r) => r.experiment === experiment);
    const variants = [...new Set(rows.map((r) => r.variant))].sort();
    const runs: RunResult[] = rows.filter((r) => r.points.length > 0).map((r) => {
      const stride = Math.max(1, Math.ceil(r.steps / MAX_POINTS));
      const last = r.points[r.points.length - 1].step;
      return {
        experiment,
        variant: r.variant,
        seed: r.seed,
        dir: "",
        config: null,
        summary: {} as RunResult["summary"],
        steps: r.points.filter((p) => p.step % stride === 0 || p.step === last),
      };
    });
    return { experiment, dir: "", variants, runs, incomplete: [] };
  }
}
