/**
 * The claims the ablation suite tests (docs/design.md §5), each stated with the paper's number, our
 * measurement and whether the direction holds. A comparison is paired by seed: for each seed
 * present in both variants, `d_s = m(variant, s) − m(baseline, s)` (or the relative gap), then
 * mean ± 95% CI over seeds (Student t). "holds" means the mean has the claimed sign (or meets the
 * threshold); "significant" that the interval excludes zero. An honest negative is a result.
 * The verdicts (holds / contradicted / inconclusive) and their power statements are in
 * `verdicts.ts`; the reproduction cards in `cards.ts`.
 *
 * @module
 */

import { escapeMarkdown, type ExperimentResults, runMetric } from "./results.ts";
import { type MeanCi, meanCi } from "./stats.ts";
import {
  claimValue,
  type ClaimVerdict,
  claimVerdict,
  formatClaimValue,
  formatTokens,
  verdictLinesOf,
  type VerdictOptions,
  verdictText,
} from "./verdicts.ts";

/** One claim of a paper, and how to measure it from an experiment's results. */
export interface Claim {
  experiment: string;
  /** The claim, in words. */
  statement: string;
  /** The paper's number, with its source. */
  paper: string;
  /** The paper and section the claim comes from (the reproduction card's first line). */
  source: string;
  metric: string;
  variant: string;
  baseline: string;
  /** `difference`: `m(v) − m(b)`; `relative`: `(m(v) − m(b)) / m(b)`; `ratio`: `m(v) / m(b)`. */
  measure: "difference" | "relative" | "ratio";
  /** The direction the claim predicts: below 0 (or below 1 for a ratio), or `|x|` below a bound. */
  expect: "negative" | "nonPositive" | "ratioBelowOne" | { absBelow: number };
}

/** DeepSeek-V2/V3's claims as the suite measures them. */
export const CLAIMS: readonly Claim[] = [
  {
    experiment: "attention",
    statement: "MLA's KV cache is a small fraction of MHA's",
    paper: "576 vs 32,768 elements/token/layer at V3 size (1.8%; DeepSeek-V2 §2.1)",
    source: "DeepSeek-V2 (arXiv:2405.04434) §2.1, Table 1",
    metric: "kvBytesPerToken",
    variant: "mla",
    baseline: "mha",
    measure: "ratio",
    expect: "ratioBelowOne",
  },
  {
    experiment: "attention",
    statement: "MLA matches or beats MHA in quality",
    paper: "MLA outperforms MHA on benchmarks (DeepSeek-V2 App. D.1)",
    source: "DeepSeek-V2 (arXiv:2405.04434) App. D.1",
    metric: "valLoss",
    variant: "mla",
    baseline: "mha",
    measure: "difference",
    expect: "nonPositive",
  },
  {
    experiment: "moe-balance",
    statement: "Aux-loss-free balancing has lower MaxVio than the auxiliary loss",
    paper: "MaxVio_global 0.04 vs 0.72 (Wang et al. 2024, 1B MoE)",
    source: "Wang et al. 2024, Auxiliary-Loss-Free Load Balancing (arXiv:2408.15664)",
    metric: "maxVioGlobal",
    variant: "aux-free",
    baseline: "aux-loss-0.01",
    measure: "difference",
    expect: "negative",
  },
  {
    experiment: "moe-balance",
    statement: "…at equal or better validation loss",
    paper: "perplexity 9.50 vs 9.56 (Wang et al. 2024); Pile BPB 0.724 vs 0.727 (V3 Table 5)",
    source: "arXiv:2408.15664; DeepSeek-V3 (arXiv:2412.19437) §4.5.2, Table 5",
    metric: "valLoss",
    variant: "aux-free",
    baseline: "aux-loss-0.01",
    measure: "difference",
    expect: "nonPositive",
  },
  {
    experiment: "mtp",
    statement: "MTP (depth 1) lowers the main head's validation loss at equal tokens",
    paper: "MTP improves most benchmarks at equal compute (V3 §4.5.1, Table 4)",
    source: "DeepSeek-V3 (arXiv:2412.19437) §4.5.1, Table 4",
    metric: "valLoss",
    variant: "depth-1",
    baseline: "depth-0",
    measure: "difference",
    expect: "negative",
  },
  {
    experiment: "fp8",
    statement: "FP8 training (tile/block scales) stays within 0.25% of the FP32 loss",
    paper: "relative loss error < 0.25% (V3 §3.3)",
    source: "DeepSeek-V3 (arXiv:2412.19437) §3.3",
    metric: "valLoss",
    variant: "fp8-tile-block",
    baseline: "fp32",
    measure: "relative",
    expect: { absBelow: 0.0025 },
  },
];

/** A claim with its measurement. */
export interface ClaimResult {
  claim: Claim;
  /** Paired per-seed values of the measure, mean ± CI; `null` when the variants are missing. */
  measured: MeanCi | null;
  holds: boolean | null;
  /** The interval excludes zero (or stays within the bound). */
  significant: boolean | null;
}

/**
 * Measure `claim` on `results` (paired by seed), with the direction alone: `holds` here is "the
 * mean has the claimed sign". The verdict with its power statement is {@linkcode claimVerdicts}.
 */
export function evaluateClaim(claim: Claim, results: ExperimentResults): ClaimResult {
  const values: number[] = [];
  for (const run of results.runs.filter((r) => r.variant === claim.variant)) {
    const base = results.runs.find((r) => r.variant === claim.baseline && r.seed === run.seed);
    const v = runMetric(run, claim.metric), b = base ? runMetric(base, claim.metric) : undefined;
    if (v === undefined || b === undefined) continue;
    values.push(claimValue(claim, { variant: v, baseline: b }));
  }
  if (values.length === 0) return { claim, measured: null, holds: null, significant: null };
  const m = meanCi(values);
  const e = claim.expect;
  if (e === "negative" || e === "nonPositive") {
    return {
      claim,
      measured: m,
      holds: e === "negative" ? m.mean < 0 : m.mean <= 0,
      significant: m.hi < 0,
    };
  }
  if (e === "ratioBelowOne") {
    return { claim, measured: m, holds: m.mean < 1, significant: m.hi < 1 };
  }
  return {
    claim,
    measured: m,
    holds: Math.abs(m.mean) < e.absBelow,
    significant: Math.max(Math.abs(m.lo), Math.abs(m.hi)) < e.absBelow,
  };
}

/**
 * Every claim's verdict with its power statement, from the results of any number of stores (each
 * budget found is used: see `verdicts.ts`).
 *
 * @param results Experiment results, from one store or several.
 * @param options Level and target power.
 * @returns One verdict per claim, in {@linkcode CLAIMS} order.
 *
 * @example Nothing run
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { claimVerdicts } from "./claims.ts";
 * assertEquals(claimVerdicts([]).map((v) => v.verdict), Array(6).fill("not run"));
 * ```
 */
export function claimVerdicts(
  results: readonly ExperimentResults[],
  options: VerdictOptions = {},
): ClaimVerdict[] {
  return CLAIMS.map((claim) => claimVerdict(claim, results, options));
}

/**
 * One line per claim for `--status`: our number at the largest budget, the verdict (with the
 * seeds or tokens an inconclusive one needs) and the smallest effect the seeds detect.
 *
 * @param results Experiment results, from one store or several.
 * @returns Plain-text lines, one per claim.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { verdictLines } from "./claims.ts";
 * assertEquals(verdictLines([])[4], "mtp: MTP (depth 1) lowers the main head's validation loss at equal tokens — not run");
 * ```
 */
export function verdictLines(results: readonly ExperimentResults[]): string[] {
  return verdictLinesOf(claimVerdicts(results));
}

function formatMeasure(claim: Claim, m: MeanCi): string {
  const f = (x: number) => formatClaimValue(claim, x);
  const ci = m.halfWidth === null ? "" : ` ± ${f(m.halfWidth)}`;
  const what = claim.measure === "difference"
    ? `Δ ${claim.metric}`
    : claim.measure === "relative"
    ? `relative Δ ${claim.metric}`
    : `${claim.metric} ratio`;
  return `${what} ${f(m.mean)}${ci} (n = ${m.n})`;
}

/** The power column: `detects ≥ 0.0903 at 3 seeds` (the full statement is on the card). */
function detectsText(v: ClaimVerdict): string {
  const p = v.power;
  if (p === null) return "–";
  if (p.detectable === null) return "one seed: no noise estimate";
  if (p.detectable === 0) return "no seed noise";
  return `detects ≥ ${formatClaimValue(v.claim, p.detectable)} at ${p.seeds} seeds`;
}

/** Options for {@linkcode claimsTable}. */
export interface ClaimsTableOptions {
  /** Only the claims of these experiments. @default {undefined} (every claim) */
  experiments?: readonly string[];
}

/**
 * The claims table (GFM): claim, paper, our measurement at the largest budget (mean ± 95% CI of
 * the paired per-seed values), the verdict, and the smallest effect the seeds detect (80% power,
 * two-sided 5%); the full power statement is on the claim's reproduction card.
 *
 * @param results Experiment results, from one store or several (every budget is used).
 * @param options Which claims to list.
 * @returns The table (its header only when no claim is selected).
 *
 * @example An empty store gives a table of "not run" rows
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { claimsTable } from "./claims.ts";
 * ok(claimsTable([]).includes("not run"));
 * ok(!claimsTable([], { experiments: ["mtp"] }).includes("FP8"));
 * ```
 */
export function claimsTable(
  results: readonly ExperimentResults[],
  options: ClaimsTableOptions = {},
): string {
  const rows = [
    "| claim | paper | ours (variant vs baseline) | verdict | power (80%, two-sided 5%) |",
    "|---|---|---|---|---|",
  ];
  const only = options.experiments;
  for (const v of claimVerdicts(results)) {
    if (only !== undefined && !only.includes(v.claim.experiment)) continue;
    const { claim, at } = v;
    const ours = at
      ? `${escapeMarkdown(formatMeasure(claim, at.measured))} — ${
        escapeMarkdown(`${claim.variant} vs ${claim.baseline}, ${formatTokens(at.tokens)} tokens`)
      }`
      : "not run";
    rows.push(
      `| ${escapeMarkdown(`${claim.experiment}: ${claim.statement}`)} | ${
        escapeMarkdown(claim.paper)
      } | ${ours} | ${escapeMarkdown(verdictText(v))} | ${escapeMarkdown(detectsText(v))} |`,
    );
  }
  return rows.join("\n");
}
