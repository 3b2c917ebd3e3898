/**
 * The numbers behind the ablation charts, computed from an experiment's results in TypeScript
 * (not in Vega transforms) so that notebooks, tests and the report read the same values:
 * - `curvePoints`: a per-step field's mean over seeds with a band (min–max or 95% CI);
 * - `expertLoadCells`: expert loads relative to a balanced router, binned over steps;
 * - `fp8Gap`: the relative loss gap of each variant to the high-precision baseline, paired by
 *   seed (DeepSeek-V3 §3.3 reports FP8 within 0.25%).
 * The chart builders (`vega_lite.ts`) draw them.
 *
 * @module
 */

import type { ExperimentResults, RunResult } from "./results.ts";
import { meanCi } from "./stats.ts";

/** How a band over seeds is drawn: the range of the seeds or the 95% Student-t interval. */
export type Band = "minmax" | "ci";

/** Mean and band of `values`. */
export function bandValues(values: number[], band: Band): { mean: number; lo: number; hi: number } {
  const ci = meanCi(values);
  switch (band) {
    case "minmax":
      return { mean: ci.mean, lo: ci.min, hi: ci.max };
    case "ci":
      return { mean: ci.mean, lo: ci.lo, hi: ci.hi };
    default:
      throw new Error(`Unknown band '${band satisfies never}': expected 'minmax' or 'ci'`);
  }
}

/** One point of a curve: the mean over seeds at `x` and its band. */
export interface CurvePoint {
  variant: string;
  x: number;
  mean: number;
  lo: number;
  hi: number;
  /** Seeds that logged this step. */
  n: number;
}

/** Options for {@linkcode curvePoints}. */
export interface CurveOptions {
  /** Horizontal axis: the step or the training tokens seen. @default {"step"} */
  x?: "step" | "tokens";
  /** Band over seeds. @default {"minmax"} */
  band?: Band;
}

/**
 * Mean and band over seeds of a per-step field, per variant and step.
 *
 * @param results An experiment's results.
 * @param field The `metrics.jsonl` field (`loss`, `mainLoss`, `maxVio`, ...).
 * @param options Horizontal axis and band.
 * @returns Points in variant, then step order (steps without the field are skipped).
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { curvePoints } from "./analysis.ts";
 * const run = (seed: number, loss: number) => ({
 *   experiment: "e", variant: "a", seed, dir: "", config: null, summary: {} as never,
 *   steps: [{ step: 1, tokens: 64, loss }],
 * });
 * const results = { experiment: "e", dir: "", variants: ["a"], runs: [run(0, 1), run(1, 3)], incomplete: [] };
 * assertEquals(curvePoints(results, "loss"), [{ variant: "a", x: 1, mean: 2, lo: 1, hi: 3, n: 2 }]);
 * ```
 */
export function curvePoints(
  results: ExperimentResults,
  field: string,
  options: CurveOptions = {},
): CurvePoint[] {
  const xField = options.x ?? "step";
  const band = options.band ?? "minmax";
  const out: CurvePoint[] = [];
  for (const variant of results.variants) {
    const byX = new Map<number, number[]>();
    for (const run of results.runs) {
      if (run.variant !== variant) continue;
      for (const r of run.steps) {
        const x = r[xField], v = r[field];
        if (typeof x !== "number" || typeof v !== "number" || !Number.isFinite(v)) continue;
        const list = byX.get(x) ?? [];
        list.push(v);
        byX.set(x, list);
      }
    }
    for (const [x, values] of [...byX].sort((a, b) => a[0] - b[0])) {
      out.push({ variant, x, ...bandValues(values, band), n: values.length });
    }
  }
  return out;
}

/** One cell of the expert-load heatmap. */
export interface ExpertLoadCell {
  variant: string;
  expert: number;
  /** Step range `[step0, step1)` the cell averages over. */
  step0: number;
  step1: number;
  /** Load relative to a balanced router: `fraction × experts` (1 = balanced). */
  relativeLoad: number;
}

/** Options for {@linkcode expertLoadCells}. */
export interface ExpertLoadOptions {
  /** At most this many step columns (steps are averaged into equal bins). @default {80} */
  maxColumns?: number;
}

const LOAD_KEY = /^expertLoad\.(?:(\d+)\.)?(\d+)$/;

/**
 * Heatmap cells from per-step expert loads: keys `expertLoad.<layer>.<expert>` (or
 * `expertLoad.<expert>`) holding the fraction of that layer's routed assignments the expert got.
 * Averaged over layers, seeds and step bins; scaled by the expert count so that 1 is balanced.
 *
 * @param results An experiment's results.
 * @param options Number of step columns.
 * @returns Cells in variant, expert, step order; `[]` when no run logged expert loads.
 *
 * @example Two experts, one step
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { expertLoadCells } from "./analysis.ts";
 * const run = {
 *   experiment: "e", variant: "a", seed: 0, dir: "", config: null, summary: {} as never,
 *   steps: [{ step: 1, tokens: 8, "expertLoad.0.0": 0.75, "expertLoad.0.1": 0.25 }],
 * };
 * const cells = expertLoadCells({ experiment: "e", dir: "", variants: ["a"], runs: [run], incomplete: [] });
 * assertEquals(cells.map((c) => c.relativeLoad), [1.5, 0.5]);
 * ```
 */
export function expertLoadCells(
  results: ExperimentResults,
  options: ExpertLoadOptions = {},
): ExpertLoadCell[] {
  const maxColumns = options.maxColumns ?? 80;
  const out: ExpertLoadCell[] = [];
  for (const variant of results.variants) {
    // step -> expert -> loads (over layers and seeds)
    const loads = new Map<number, Map<number, number[]>>();
    let experts = 0;
    for (const run of results.runs) {
      if (run.variant !== variant) continue;
      for (const r of run.steps) {
        for (const [key, value] of Object.entries(r)) {
          const m = LOAD_KEY.exec(key);
          if (m === null || typeof value !== "number") continue;
          const expert = Number(m[2]);
          experts = Math.max(experts, expert + 1);
          const byExpert = loads.get(r.step) ?? new Map<number, number[]>();
          const list = byExpert.get(expert) ?? [];
          list.push(value);
          byExpert.set(expert, list);
          loads.set(r.step, byExpert);
        }
      }
    }
    if (loads.size === 0) continue;
    const steps = [...loads.keys()].sort((a, b) => a - b);
    const perBin = Math.ceil(steps.length / maxColumns);
    for (let expert = 0; expert < experts; expert++) {
      for (let i = 0; i < steps.length; i += perBin) {
        const bin = steps.slice(i, i + perBin);
        const values = bin.flatMap((s) => loads.get(s)?.get(expert) ?? []);
        if (values.length === 0) continue;
        const next = steps[i + perBin] ?? bin[bin.length - 1] + (bin.length > 1 ? 0 : 1);
        out.push({
          variant,
          expert,
          step0: bin[0],
          step1: Math.max(next, bin[bin.length - 1] + 1),
          relativeLoad: (values.reduce((a, b) => a + b, 0) / values.length) * experts,
        });
      }
    }
  }
  return out;
}

/** One point of {@linkcode fp8GapSpec}: the relative gap of a variant's loss to the baseline. */
export interface GapPoint {
  variant: string;
  step: number;
  /** `100 · (loss − loss_baseline) / loss_baseline`, mean over paired seeds (moving average). */
  gapPct: number;
  lo: number;
  hi: number;
  n: number;
}

/** Options for {@linkcode fp8Gap} and {@linkcode fp8GapSpec}. */
export interface Fp8GapOptions {
  /** The high-precision variant. @default {"fp32" when present, else the first variant} */
  baseline?: string;
  /** Per-step field compared. @default {"loss"} */
  field?: string;
  /** Trailing moving-average window in steps, applied per seed before averaging. @default {1} */
  window?: number;
  /** Reference line in percent (DeepSeek-V3 §3.3: FP8 stays within 0.25%). @default {0.25} */
  threshold?: number;
}

/**
 * The high-precision variant the FP8 gap is measured against: `baseline`, else `fp32` when
 * present, else the first variant.
 *
 * @param results An experiment's results.
 * @param baseline The variant asked for, if any.
 * @returns The baseline variant (throws, naming the variants, when it is not one of them).
 */
export function fp8Baseline(results: ExperimentResults, baseline: string | undefined): string {
  const b = baseline ?? (results.variants.includes("fp32") ? "fp32" : results.variants[0]);
  if (!results.variants.includes(b)) {
    throw new Error(
      `Cannot compute the FP8 loss gap: no baseline variant '${b}' in '${results.experiment}' ` +
        `(variants: ${results.variants.map((v) => `'${v}'`).join(", ")})`,
    );
  }
  return b;
}

function movingAverage(values: number[], window: number): number[] {
  return values.map((_, i) => {
    const from = Math.max(0, i - window + 1);
    const part = values.slice(from, i + 1);
    return part.reduce((a, b) => a + b, 0) / part.length;
  });
}

/**
 * The relative loss gap of each variant to the baseline per step, paired by seed:
 * `gap_s(t) = 100 · (L_s(t) − L^base_s(t)) / L^base_s(t)`, then mean and min–max over seeds.
 *
 * @param results An experiment's results.
 * @param options Baseline, field, smoothing.
 * @returns Points for every non-baseline variant, in variant then step order.
 *
 * @example A 1% gap
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { fp8Gap } from "./analysis.ts";
 * const run = (variant: string, loss: number) => ({
 *   experiment: "fp8", variant, seed: 0, dir: "", config: null, summary: {} as never,
 *   steps: [{ step: 1, tokens: 8, loss }],
 * });
 * const results = {
 *   experiment: "fp8", dir: "", variants: ["fp32", "fp8"], runs: [run("fp32", 2), run("fp8", 2.02)],
 *   incomplete: [],
 * };
 * assertAllClose(fp8Gap(results)[0].gapPct, 1, { atol: 1e-9 });
 * ```
 */
export function fp8Gap(results: ExperimentResults, options: Fp8GapOptions = {}): GapPoint[] {
  const baseline = fp8Baseline(results, options.baseline);
  const field = options.field ?? "loss";
  const window = options.window ?? 1;
  const series = (run: RunResult) =>
    new Map(
      run.steps.filter((r) => typeof r[field] === "number").map((r) => [r.step, r[field]]),
    );
  const base = new Map(
    results.runs.filter((r) => r.variant === baseline).map((r) => [r.seed, series(r)]),
  );
  const out: GapPoint[] = [];
  for (const variant of results.variants) {
    if (variant === baseline) continue;
    const byStep = new Map<number, number[]>();
    for (const run of results.runs) {
      const b = base.get(run.seed);
      if (run.variant !== variant || b === undefined) continue;
      const steps = [...series(run)].filter(([s]) => b.has(s)).sort((p, q) => p[0] - q[0]);
      const gaps = steps.map(([s, v]) => {
        const ref = b.get(s) ?? NaN;
        return (100 * (v - ref)) / ref;
      });
      movingAverage(gaps, window).forEach((g, i) => {
        const list = byStep.get(steps[i][0]) ?? [];
        list.push(g);
        byStep.set(steps[i][0], list);
      });
    }
    for (const [step, values] of [...byStep].sort((p, q) => p[0] - q[0])) {
      const ci = meanCi(values);
      out.push({ variant, step, gapPct: ci.mean, lo: ci.min, hi: ci.max, n: ci.n });
    }
  }
  return out;
}
