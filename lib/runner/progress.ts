/**
 * Progress reporting: the one place library code sends what a person should see. The CLI picks
 * {@linkcode TerminalReporter} (a live bar on a TTY, plain lines otherwise); notebooks and tests
 * pass their own {@linkcode Reporter}.
 *
 * @module
 */

import type { RunExperimentsResult } from "./experiments.ts";

/** How a run ended: trained now, already done, failed, stopped by divergence, or left alone
 * because its id changed (`onChanged: "stop"`). */
export type RunStatus = "done" | "skipped" | "failed" | "diverged" | "changed";

/** One planned run, as {@linkcode Reporter.begin} lists it. */
export interface PlannedRun {
  /** `experiment/variant/seed-n`. */
  label: string;
  experiment: string;
  variant: string;
  seed: number;
  steps: number;
}

/** What {@linkcode Reporter.runStart} receives. */
export interface RunStartInfo {
  /** Position of the run among those executed here (1-based) and their count. */
  index: number;
  count: number;
  label: string;
  steps: number;
  /** The step it resumes at (0 for a fresh run). */
  fromStep: number;
  experiment: string;
  variant: string;
  seed: number;
}

/** What {@linkcode Reporter.runEnd} receives. */
export interface RunEndInfo {
  label: string;
  status: RunStatus;
  detail: string;
}

/** Receives run progress. */
export interface Reporter {
  /** A sweep starts: where results go and every planned run (optional). */
  begin?(info: { out: string; budget: string; runs: PlannedRun[] }): void;
  /** A run starts (or resumes at `fromStep`). */
  runStart(info: RunStartInfo): void;
  /** One optimizer step finished. */
  step(metrics: { step: number; loss: number; tokensPerSec: number }): void;
  /** A run finished, was skipped, failed, diverged, or was left alone (its id changed). */
  runEnd(info: RunEndInfo): void;
  /** A free-form line (backend choice, paths, repairs). */
  log(line: string): void;
  /** The sweep ended (optional): every run's outcome, as `runExperiments` returns it. */
  end?(result: RunExperimentsResult): void | Promise<void>;
  /**
   * Asked after every step: `true` makes the runner save a checkpoint and stop the sweep
   * (`StoppedError`), e.g. after a notebook's kernel interrupt. May yield to the event loop.
   */
  shouldStop?(): boolean | Promise<boolean>;
}

/** Whether this code runs inside the Deno Jupyter kernel (`Deno.jupyter` present). */
export function inJupyter(): boolean {
  try {
    // outside `deno jupyter` the getter throws
    return (Deno as { jupyter?: unknown }).jupyter !== undefined;
  } catch {
    return false;
  }
}

/** A reporter that records nothing (tests, silent runs). */
export const SILENT: Reporter = { runStart() {}, step() {}, runEnd() {}, log() {} };

/**
 * A duration for progress displays: `m:ss`, or `XhYYm` from an hour; `--:--` when unknown.
 *
 * @param seconds The duration (`Infinity` or `NaN` when unknown).
 * @returns The formatted duration.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { formatEta } from "./progress.ts";
 * assertEquals([formatEta(75), formatEta(3720), formatEta(Infinity)], ["1:15", "1h02m", "--:--"]);
 * ```
 */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds), m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h > 0
    ? `${h}h${String(m % 60).padStart(2, "0")}m`
    : `${m}:${String(s % 60).padStart(2, "0")}`;
}

/** Options for {@linkcode TerminalReporter}. */
export interface TerminalReporterOptions {
  /** Draw a live bar (default: when stdout is a terminal). */
  live?: boolean;
  /** Print a plain line every this many steps when not live. @default {25} */
  every?: number;
  /** Where lines go. @default {console.log} */
  write?: (line: string) => void;
}

/** Run i/n, step, loss, tokens/s and ETA: a live bar on a TTY, plain lines otherwise. */
export class TerminalReporter implements Reporter {
  #live: boolean;
  #every: number;
  #write: (line: string) => void;
  #run = { index: 0, count: 0, label: "", steps: 0, fromStep: 0, started: 0 };

  constructor(options: TerminalReporterOptions = {}) {
    this.#live = options.live ?? Deno.stdout.isTerminal();
    this.#every = options.every ?? 25;
    this.#write = options.write ?? ((line) => console.log(line));
  }

  runStart(info: RunStartInfo): void {
    const { index, count, label, steps, fromStep } = info;
    this.#run = { index, count, label, steps, fromStep, started: performance.now() };
    const resume = info.fromStep > 0 ? ` (resuming at step ${info.fromStep})` : "";
    this.#write(`[${info.index}/${info.count}] ${info.label}: ${info.steps} steps${resume}`);
  }

  step(m: { step: number; loss: number; tokensPerSec: number }): void {
    const r = this.#run;
    const done = m.step - r.fromStep, left = r.steps - m.step;
    const elapsed = (performance.now() - r.started) / 1000;
    const eta = formatEta(done > 0 ? (elapsed / done) * left : Infinity);
    const text = `step ${m.step}/${r.steps}  loss ${m.loss.toFixed(4)}  ${
      m.tokensPerSec.toFixed(0)
    } tok/s  ETA ${eta}`;
    if (this.#live) {
      const width = 24, filled = Math.round((width * m.step) / Math.max(r.steps, 1));
      const bar = "█".repeat(filled) + "░".repeat(width - filled);
      Deno.stdout.writeSync(
        new TextEncoder().encode(`\r\x1b[2K[${r.index}/${r.count}] ${bar} ${text}`),
      );
      if (m.step === r.steps) Deno.stdout.writeSync(new TextEncoder().encode("\n"));
    } else if (m.step === r.steps || m.step % this.#every === 0 || done === 1) {
      this.#write(`  ${text}`);
    }
  }

  runEnd(info: RunEndInfo): void {
    this.#write(`  ${info.status}: ${info.label}${info.detail ? ` — ${info.detail}` : ""}`);
  }

  log(line: string): void {
    this.#write(line);
  }
}
