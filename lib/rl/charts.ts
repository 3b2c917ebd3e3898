/**
 * The R1 pipeline's results: the curve points and GRPO rounds read back from a study directory,
 * the per-branch summary and its Markdown table, and the vega-lite charts (metrics over
 * training, GRPO signals per round).
 *
 * @module
 */

import { meanCi } from "../report/stats.ts";
import { PALETTE, VEGA_LITE_SCHEMA, type VegaLiteSpec } from "../report/vega_lite.ts";
import { exists, readMetrics } from "../runner/study.ts";
import type { GrpoRoundLog } from "./grpo.ts";
import { R1_BRANCHES, type R1Branch } from "./options.ts";
import type { R1Point } from "./stages.ts";

/** Final metrics of one branch, over seeds. */
export interface BranchSummary {
  branch: R1Branch | "base";
  seeds: number;
  accuracy: { mean: number; halfWidth: number | null };
  formatRate: { mean: number; halfWidth: number | null };
  length: { mean: number; halfWidth: number | null };
}

/**
 * The last evaluation of each branch per seed, as mean ± 95% CI over seeds.
 *
 * @param points Every curve point of the study.
 * @returns One row per branch present (base first).
 */
export function summarizeBranches(points: readonly R1Point[]): BranchSummary[] {
  const out: BranchSummary[] = [];
  for (const branch of ["base", ...R1_BRANCHES] as const) {
    const finals = new Map<number, R1Point>();
    for (const p of points) {
      if (p.branch !== branch) continue;
      const prev = finals.get(p.seed);
      if (prev === undefined || p.step >= prev.step) finals.set(p.seed, p);
    }
    if (finals.size === 0) continue;
    const of = (k: "accuracy" | "formatRate" | "length") => {
      const m = meanCi([...finals.values()].map((p) => p[k]));
      return { mean: m.mean, halfWidth: m.halfWidth };
    };
    out.push({
      branch,
      seeds: finals.size,
      accuracy: of("accuracy"),
      formatRate: of("formatRate"),
      length: of("length"),
    });
  }
  return out;
}

function pm(x: { mean: number; halfWidth: number | null }, digits = 2): string {
  return x.halfWidth === null
    ? x.mean.toFixed(digits)
    : `${x.mean.toFixed(digits)} ± ${x.halfWidth.toFixed(digits)}`;
}

/**
 * The comparison as a Markdown table.
 *
 * @param rows From {@linkcode summarizeBranches}.
 * @returns Markdown.
 */
export function branchTable(rows: readonly BranchSummary[]): string {
  const label: Record<string, string> = {
    base: "base (pretrained)",
    zero: "(a) R1-Zero: GRPO from base",
    r1: "(b) R1: cold start → GRPO → rejection SFT",
    distill: "(c) distilled student",
  };
  return [
    "| branch | seeds | accuracy | format rate | length (tokens) |",
    "|---|---:|---:|---:|---:|",
    ...rows.map((r) =>
      `| ${label[r.branch]} | ${r.seeds} | ${pm(r.accuracy)} | ${pm(r.formatRate)} | ${
        pm(r.length, 1)
      } |`
    ),
  ].join("\n");
}

/** Metrics plotted over training. */
export type R1Metric = "accuracy" | "formatRate" | "length";

/**
 * A vega-lite chart of `metric` over training updates per branch: the mean over seeds as a line
 * and the min–max band.
 *
 * @param points Curve points.
 * @param metric Which metric.
 * @returns The spec.
 */
export function r1CurveSpec(points: readonly R1Point[], metric: R1Metric): VegaLiteSpec {
  const branches = R1_BRANCHES.filter((b) => points.some((p) => p.branch === b));
  const rows: { branch: string; step: number; mean: number; lo: number; hi: number }[] = [];
  for (const b of branches) {
    const steps = [...new Set(points.filter((p) => p.branch === b).map((p) => p.step))].sort((
      x,
      y,
    ) => x - y);
    // the branch starts from the base model (distill from the student's base)
    const start = b === "distill" ? null : points.filter((p) => p.branch === "base");
    if (start !== null && start.length > 0) {
      const v = start.map((p) => p[metric]);
      rows.push({ branch: b, step: 0, mean: avg(v), lo: Math.min(...v), hi: Math.max(...v) });
    }
    for (const s of steps) {
      const v = points.filter((p) => p.branch === b && p.step === s).map((p) => p[metric]);
      rows.push({ branch: b, step: s, mean: avg(v), lo: Math.min(...v), hi: Math.max(...v) });
    }
  }
  const title = {
    accuracy: "accuracy (greedy, held out)",
    formatRate: "format rate",
    length: "completion length (tokens)",
  }[metric];
  const color = {
    field: "branch",
    type: "nominal" as const,
    title: "branch",
    scale: { domain: [...branches], range: branches.map((_, i) => PALETTE[i % PALETTE.length]) },
  };
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: `R1 pipeline: ${title}`,
    width: 420,
    height: 220,
    data: { values: rows },
    encoding: {
      x: { field: "step", type: "quantitative", title: "training updates after pretraining" },
    },
    layer: [
      {
        mark: { type: "area", opacity: 0.2 },
        encoding: {
          y: { field: "lo", type: "quantitative", title },
          y2: { field: "hi" },
          color,
        },
      },
      {
        mark: { type: "line", point: true },
        encoding: { y: { field: "mean", type: "quantitative", title }, color },
      },
    ],
  } as VegaLiteSpec;
}

function avg(v: number[]): number {
  return v.reduce((a, b) => a + b, 0) / Math.max(v.length, 1);
}

/** One GRPO round as logged by the study (`rounds.jsonl`), with where it came from. */
export interface RoundRow extends GrpoRoundLog {
  round: number;
  seed: number;
  /** `zero` (R1-Zero) or `r1` (after the cold start). */
  branch: "zero" | "r1";
}

/**
 * Every GRPO round the study logged under `dir`.
 *
 * @param dir The study directory (`<store>/r1`).
 * @returns Rows of both GRPO stages, every seed.
 */
export async function readR1Rounds(dir: string): Promise<RoundRow[]> {
  const out: RoundRow[] = [];
  const seeds = await Array.fromAsync(Deno.readDir(dir)).catch(() => [] as Deno.DirEntry[]);
  for (const s of seeds.filter((e) => e.isDirectory && /^s\d+$/.test(e.name))) {
    const seed = Number(s.name.slice(1));
    for (const [stageName, branch] of [["zero", "zero"], ["r1-grpo", "r1"]] as const) {
      const rows = await readMetrics<GrpoRoundLog & { round: number }>(
        `${dir}/${s.name}/${stageName}/rounds.jsonl`,
      );
      out.push(...rows.map((r) => ({ ...r, seed, branch })));
    }
  }
  return out;
}

/**
 * GRPO training signals per round (mean over seeds): sampled reward, KL to the reference and
 * clip fraction, one panel each, R1-Zero against R1.
 *
 * @param rows From {@linkcode readR1Rounds}.
 * @returns The spec.
 */
export function grpoRoundsSpec(rows: readonly RoundRow[]): VegaLiteSpec {
  const values: { branch: string; round: number; signal: string; value: number }[] = [];
  const key = (r: RoundRow) => `${r.branch}|${r.round}`;
  const groups = new Map<string, RoundRow[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  for (const g of groups.values()) {
    for (const signal of ["reward", "kl", "clipFraction"] as const) {
      values.push({
        branch: g[0].branch,
        round: g[0].round,
        signal,
        value: avg(g.map((r) => r[signal])),
      });
    }
  }
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: "GRPO rounds (mean over seeds)",
    data: { values },
    facet: { column: { field: "signal", type: "nominal", title: null } },
    spec: {
      width: 220,
      height: 160,
      mark: { type: "line", point: false },
      encoding: {
        x: { field: "round", type: "quantitative", title: "round" },
        y: { field: "value", type: "quantitative", title: null },
        color: {
          field: "branch",
          type: "nominal",
          scale: { domain: ["zero", "r1"], range: [PALETTE[0], PALETTE[1]] },
        },
      },
    },
    resolve: { scale: { y: "independent" } },
  } as VegaLiteSpec;
}

/** Read every curve point the study wrote under `dir` (any seed, any stage). */
export async function readR1Points(dir: string): Promise<R1Point[]> {
  const points: R1Point[] = [];
  let seeds: string[] = [];
  try {
    seeds = (await Array.fromAsync(Deno.readDir(dir))).filter((e) =>
      e.isDirectory && /^s\d+$/.test(e.name)
    )
      .map((e) => e.name).sort();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const s of seeds) {
    for (const st of await Array.fromAsync(Deno.readDir(`${dir}/${s}`))) {
      if (!st.isDirectory || !(await exists(`${dir}/${s}/${st.name}/done.json`))) continue;
      points.push(...await readMetrics<R1Point>(`${dir}/${s}/${st.name}/curve.jsonl`));
    }
  }
  return points;
}
