/**
 * Verdicts on the claims, with their power statements: each claim is *holds*, *contradicted*
 * (the interval excludes zero the other way) or *inconclusive*, and every verdict says what the
 * seeds run can detect and what it would take to separate the observed effect.
 *
 * Data model: a claim is measured at every budget the results hold. Runs are grouped by their
 * training tokens (`summary.tokens`), so the budgets may come from one store or several (pass
 * the {@linkcode ExperimentResults} of every store: `runs/`, `runs-full/`, …); within a budget,
 * runs are paired by seed (the first store wins when two hold the same seed). The verdict is
 * taken at the largest budget; all budgets with 2 or more seeds feed the trend of the seed noise
 * with budget, `σ(T) = c · T^{−a}` (`power.ts`), from which the tokens per run that would
 * separate the observed effect at the seeds run follow. With a single budget there is no trend
 * and no tokens figure (the stated fallback: seeds only).
 *
 * Rules, with `m₀` the null value (0; 1 for a ratio) and `[lo, hi]` the 95% interval of the
 * paired per-seed values (Student t):
 * - a directional claim (`negative`, `nonPositive`, `ratioBelowOne`) *holds* when `hi < m₀`, is
 *   *contradicted* when `lo > m₀`, and is *inconclusive* otherwise;
 * - an equivalence claim (`|x| < B`) *holds* when `[lo, hi] ⊂ (−B, B)`, is *contradicted* when
 *   the interval lies wholly outside (`lo ≥ B` or `hi ≤ −B`), and is *inconclusive* otherwise.
 * A single seed has no interval and is always inconclusive.
 *
 * Power (80%, two-sided 5%, paired t, `σ` taken as the observed `s`): the minimum detectable
 * effect at the seeds run, the seeds that would detect the observed effect (for an equivalence
 * claim: the seeds whose interval would fit inside the bound, or show it is exceeded), and the
 * tokens per run at which the fitted noise gives the same power at the seeds run.
 *
 * @module
 */

import type { Claim } from "./claims.ts";
import {
  detectableEffectSize,
  equivalencePower,
  fitNoiseTrend,
  type NoiseTrend,
  pairedTPower,
  seedsForEquivalence,
  seedsToDetect,
  tokensForNoise,
} from "./power.ts";
import { type ExperimentResults, formatNumber, runMetric, type RunResult } from "./results.ts";
import { type MeanCi, meanCi } from "./stats.ts";

/** The verdict on a claim. */
export type Verdict = "holds" | "contradicted" | "inconclusive" | "not run";

/**
 * The claim's measure for one seed pair: `m(v) − m(b)`, `(m(v) − m(b)) / m(b)` or `m(v) / m(b)`.
 *
 * @param claim The claim (its `measure`).
 * @param pair `variant = m(v)` and `baseline = m(b)` for one seed.
 * @returns The per-seed value.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { CLAIMS } from "./claims.ts";
 * import { claimValue } from "./verdicts.ts";
 * assertEquals(claimValue(CLAIMS[0], { variant: 16, baseline: 64 }), 0.25); // the KV-cache ratio
 * ```
 */
export function claimValue(claim: Claim, pair: { variant: number; baseline: number }): number {
  const { variant, baseline } = pair;
  switch (claim.measure) {
    case "difference":
      return variant - baseline;
    case "relative":
      return (variant - baseline) / baseline;
    case "ratio":
      return variant / baseline;
    default:
      return claim.measure satisfies never;
  }
}

/** The value of the measure that means "no effect": 1 for a ratio, else 0. */
export function nullValue(claim: Claim): number {
  return claim.measure === "ratio" ? 1 : 0;
}

/** A claim measured at one budget. */
export interface ClaimPoint {
  /** Training tokens per run. */
  tokens: number;
  /** Mean ± 95% CI of the per-seed values. */
  measured: MeanCi;
  /** The seed pairs behind it, by seed. */
  pairs: { seed: number; variant: RunResult; baseline: RunResult }[];
}

/**
 * The claim at every budget in `results`: runs of `claim.experiment` grouped by training tokens,
 * paired by seed within a budget.
 *
 * @param claim The claim.
 * @param results Results of any number of stores (other experiments are ignored).
 * @returns One point per budget with at least one pair, by tokens ascending.
 *
 * @example No runs, no points
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { CLAIMS } from "./claims.ts";
 * import { claimPoints } from "./verdicts.ts";
 * assertEquals(claimPoints(CLAIMS[1], []), []);
 * ```
 */
export function claimPoints(
  claim: Claim,
  results: readonly ExperimentResults[],
): ClaimPoint[] {
  // tokens → seed → the first variant and baseline run found
  const byBudget = new Map<number, Map<number, { v?: RunResult; b?: RunResult }>>();
  for (const r of results.filter((x) => x.experiment === claim.experiment)) {
    for (const run of r.runs) {
      const role = run.variant === claim.variant
        ? "v"
        : run.variant === claim.baseline
        ? "b"
        : null;
      if (role === null) continue;
      const seeds = byBudget.get(run.summary.tokens) ?? new Map();
      byBudget.set(run.summary.tokens, seeds);
      const pair = seeds.get(run.seed) ?? {};
      seeds.set(run.seed, pair);
      pair[role] ??= run;
    }
  }
  const points: ClaimPoint[] = [];
  for (const [tokens, seeds] of [...byBudget].sort((a, b) => a[0] - b[0])) {
    const pairs: ClaimPoint["pairs"] = [];
    const values: number[] = [];
    for (const [seed, { v, b }] of [...seeds].sort((a, b) => a[0] - b[0])) {
      if (v === undefined || b === undefined) continue;
      const mv = runMetric(v, claim.metric), mb = runMetric(b, claim.metric);
      if (mv === undefined || mb === undefined) continue;
      pairs.push({ seed, variant: v, baseline: b });
      values.push(claimValue(claim, { variant: mv, baseline: mb }));
    }
    if (values.length > 0) points.push({ tokens, measured: meanCi(values), pairs });
  }
  return points;
}

/** What the seeds run can detect, and what would separate the observed effect. */
export interface PowerStatement {
  /** Seeds (pairs) at the verdict's budget. */
  seeds: number;
  /** Standard deviation of the per-seed values (`null` for one seed). */
  std: number | null;
  /**
   * The smallest `|effect|` (in the measure's units) the two-sided test detects with 80% power
   * at these seeds; `null` for one seed. 0 when every seed gave the same value.
   */
  detectable: number | null;
  /**
   * Seeds that would separate the observed effect with 80% power; `null` for one seed or when
   * the seeds agree exactly; `Infinity` when no number would (zero effect, or an equivalence
   * claim whose observed gap is the bound).
   */
  seedsNeeded: number | null;
  /** The noise trend over the budgets (`null` with one budget). */
  trend: NoiseTrend | null;
  /**
   * Tokens per run at which the fitted noise separates the observed effect at the seeds run
   * (80% power); `null` without a trend, when the noise does not fall with tokens, or when the
   * seeds already suffice.
   */
  tokensNeeded: number | null;
}

/** A claim's verdict, the budgets behind it and its power statement. */
export interface ClaimVerdict {
  claim: Claim;
  /** The claim at every budget, by tokens ascending. */
  points: ClaimPoint[];
  /** The point the verdict is taken at (the largest budget), `null` when not run. */
  at: ClaimPoint | null;
  verdict: Verdict;
  /** `null` when not run. */
  power: PowerStatement | null;
}

/** Options for {@linkcode claimVerdict}. */
export interface VerdictOptions {
  /** Two-sided level of the test and the intervals. @default {0.05} */
  alpha?: number;
  /** Target power. @default {0.8} */
  power?: number;
}

function decide(claim: Claim, m: MeanCi): Verdict {
  if (m.n < 2) return "inconclusive";
  const e = claim.expect;
  if (typeof e === "object") {
    if (m.lo > -e.absBelow && m.hi < e.absBelow) return "holds";
    if (m.lo >= e.absBelow || m.hi <= -e.absBelow) return "contradicted";
    return "inconclusive";
  }
  const m0 = nullValue(claim);
  if (m.hi < m0) return "holds";
  if (m.lo > m0) return "contradicted";
  return "inconclusive";
}

/** The largest σ (the noise) at which `powerAt(σ) ≥ target`: bisection on a decreasing power. */
function noiseForPower(powerAt: (std: number) => number, target: number, start: number): number {
  let lo = start, hi = start;
  while (powerAt(lo) < target) {
    hi = lo;
    lo /= 2;
    if (lo < start * 1e-12) return 0;
  }
  while (powerAt(hi) >= target) {
    lo = hi;
    hi *= 2;
    if (hi > start * 1e12) return Infinity;
  }
  for (let i = 0; i < 100 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (powerAt(mid) >= target) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * The verdict on one claim, with its power statement (see the module header for the rules).
 *
 * @param claim The claim.
 * @param results Results of any number of stores; every budget found is used.
 * @param options Level and target power.
 * @returns The verdict at the largest budget, the points at all budgets and the power.
 *
 * @example Three seeds whose differences all favour the variant: holds
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { CLAIMS } from "./claims.ts";
 * import { claimVerdict } from "./verdicts.ts";
 * const run = (variant: string, seed: number, valLoss: number) => ({
 *   experiment: "attention", variant, seed, dir: `runs/attention/${variant}/seed-${seed}`,
 *   config: null, steps: [],
 *   summary: { tokens: 40960, metrics: { valLoss }, finalTrainLoss: valLoss } as never,
 * });
 * const runs = [0, 1, 2].flatMap((s) => [run("mha", s, 3 + s / 10), run("mla", s, 2.9 + s / 10)]);
 * const v = claimVerdict(CLAIMS[1], [
 *   { experiment: "attention", dir: "", variants: ["mha", "mla"], runs, incomplete: [] },
 * ]);
 * assertEquals(v.verdict, "holds");
 * ```
 */
export function claimVerdict(
  claim: Claim,
  results: readonly ExperimentResults[],
  options: VerdictOptions = {},
): ClaimVerdict {
  const points = claimPoints(claim, results);
  const at = points.at(-1) ?? null;
  if (at === null) return { claim, points, at, verdict: "not run", power: null };
  const m = at.measured;
  const verdict = decide(claim, m);
  const trend = fitNoiseTrend(
    points.filter((p) => p.measured.std !== null).map((p) => ({
      tokens: p.tokens,
      std: p.measured.std ?? 0,
      n: p.measured.n,
    })),
  );
  if (m.n < 2 || m.std === null) {
    return {
      claim,
      points,
      at,
      verdict,
      power: {
        seeds: m.n,
        std: null,
        detectable: null,
        seedsNeeded: null,
        trend,
        tokensNeeded: null,
      },
    };
  }
  const level = { alpha: options.alpha ?? 0.05, power: options.power ?? 0.8 };
  const n = m.n, s = m.std;
  const detectable = s === 0 ? 0 : detectableEffectSize(n, level) * s;
  // Power of the decision as a function of the noise σ, at n seeds and the observed effect.
  const effect = m.mean - nullValue(claim);
  const e = claim.expect;
  const powerAt = (seeds: number, std: number): number => {
    if (typeof e === "object" && Math.abs(effect) < e.absBelow) {
      return equivalencePower(seeds, { gap: effect / std, bound: e.absBelow / std }, level);
    }
    const size = typeof e === "object" ? Math.abs(effect) - e.absBelow : effect;
    return pairedTPower(seeds, size / std, level);
  };
  let seedsNeeded: number | null = null;
  if (s > 0) {
    seedsNeeded = typeof e === "object" && Math.abs(effect) < e.absBelow
      ? seedsForEquivalence({ gap: effect / s, bound: e.absBelow / s }, level)
      : seedsToDetect(
        (typeof e === "object" ? Math.abs(effect) - e.absBelow : effect) / s,
        level,
      );
  }
  let tokensNeeded: number | null = null;
  if (trend !== null && s > 0 && verdict === "inconclusive" && Number.isFinite(seedsNeeded)) {
    const target = noiseForPower((std) => powerAt(n, std), level.power, s);
    tokensNeeded = target > 0 && Number.isFinite(target) ? tokensForNoise(trend, target) : null;
  }
  return {
    claim,
    points,
    at,
    verdict,
    power: { seeds: n, std: s, detectable, seedsNeeded, trend, tokensNeeded },
  };
}

/**
 * `1.2M`, `40k`, `950`: a token count to 2 significant figures.
 *
 * @param tokens A count.
 * @returns The short form.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { formatTokens } from "./verdicts.ts";
 * assertEquals(formatTokens(2_140_000), "2.1M");
 * assertEquals(formatTokens(2_000_000), "2M");
 * assertEquals(formatTokens(40_960), "41k");
 * ```
 */
export function formatTokens(tokens: number): string {
  const units: [number, string][] = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [size, unit] of units) {
    if (tokens >= size) return `${Number((tokens / size).toPrecision(2))}${unit}`;
  }
  return String(Math.round(tokens));
}

/**
 * A value of the claim's measure: a percentage for `relative`, 3 decimals for a ratio, else 4.
 *
 * @param claim The claim (its `measure`).
 * @param x The value.
 * @returns The formatted value.
 */
export function formatClaimValue(claim: Claim, x: number): string {
  return claim.measure === "relative"
    ? `${(100 * x).toFixed(3)}%`
    : claim.measure === "ratio"
    ? x.toFixed(3)
    : x.toFixed(4);
}

function formatSeeds(n: number): string {
  return Number.isFinite(n) ? formatNumber(n, 0) : "∞";
}

/**
 * The verdict in words: `holds`, `contradicted`, `inconclusive — needs ≥ 17 seeds or ~2.1M
 * tokens`, `not run`.
 *
 * @param v A verdict.
 * @returns One short phrase.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { CLAIMS } from "./claims.ts";
 * import { verdictText } from "./verdicts.ts";
 * assertEquals(verdictText({ claim: CLAIMS[0], points: [], at: null, verdict: "not run", power: null }), "not run");
 * ```
 */
export function verdictText(v: ClaimVerdict): string {
  if (v.verdict !== "inconclusive") return v.verdict;
  const p = v.power;
  if (p === null || p.std === null) {
    return "inconclusive — needs ≥ 2 seeds (one seed has no interval)";
  }
  if (p.seedsNeeded === null) return "inconclusive";
  if (!Number.isFinite(p.seedsNeeded)) {
    return "inconclusive — no effect to separate (more seeds only narrow the interval)";
  }
  const seeds = `needs ≥ ${formatSeeds(Math.max(p.seedsNeeded, p.seeds + 1))} seeds`;
  return `inconclusive — ${seeds}` +
    (p.tokensNeeded !== null ? ` or ~${formatTokens(p.tokensNeeded)} tokens` : "");
}

/**
 * The power statement in words: what the seeds detect, and what would change the verdict.
 *
 * @param v A verdict.
 * @returns One or two sentences (empty when not run).
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { CLAIMS } from "./claims.ts";
 * import { powerText } from "./verdicts.ts";
 * assertEquals(powerText({ claim: CLAIMS[0], points: [], at: null, verdict: "not run", power: null }), "");
 * ```
 */
export function powerText(v: ClaimVerdict): string {
  const p = v.power, at = v.at;
  if (p === null || at === null) return "";
  const f = (x: number) => formatClaimValue(v.claim, x);
  if (p.std === null || p.detectable === null) {
    return "One seed: no interval and no noise estimate; run at least 2 (better 3) seeds.";
  }
  const parts: string[] = [];
  parts.push(
    p.detectable === 0
      ? `Every seed gave the same value (no seed noise).`
      : `At ${p.seeds} seeds the test detects |effect| ≥ ${f(p.detectable)} ` +
        `(80% power, two-sided 5%).`,
  );
  const effect = at.measured.mean - nullValue(v.claim);
  if (v.verdict === "inconclusive" && p.seedsNeeded !== null) {
    if (!Number.isFinite(p.seedsNeeded)) {
      parts.push("The observed effect is zero (or on the bound): no number of seeds separates it.");
    } else {
      const what = typeof v.claim.expect === "object"
        ? Math.abs(effect) < v.claim.expect.absBelow
          ? `an interval inside ±${f(v.claim.expect.absBelow)}`
          : `an interval beyond ±${f(v.claim.expect.absBelow)}`
        : `an interval that excludes ${v.claim.measure === "ratio" ? "1" : "zero"}`;
      parts.push(
        `The observed ${f(at.measured.mean)} would give ${what} with ≥ ` +
          `${formatSeeds(Math.max(p.seedsNeeded, p.seeds + 1))} seeds` +
          (p.tokensNeeded !== null
            ? `, or at ${p.seeds} seeds with ~${formatTokens(p.tokensNeeded)} tokens per run ` +
              `(noise ∝ tokens^−${
                p.trend?.exponent.toFixed(2)
              }, fitted on ${p.trend?.budgets} budgets)`
            : "") +
          ", if the effect stays the same.",
      );
      if (p.trend === null) {
        parts.push("A second budget would give the noise trend and a tokens estimate.");
      } else if (p.trend.exponent <= 0) {
        parts.push(
          `More tokens do not help here: the noise does not fall with the budget ` +
            `(a = ${p.trend.exponent.toFixed(2)} over ${p.trend.budgets} budgets).`,
        );
      }
    }
  } else if (v.verdict === "holds" || v.verdict === "contradicted") {
    parts.push(
      "More seeds at this budget would not change it (the 95% interval excludes the other side); " +
        "a different budget or model size may change the effect itself.",
    );
  }
  return parts.join(" ");
}

/**
 * One line per claim for `deno task experiments --status`: the claim, our number at the largest
 * budget, the verdict and what the seeds detect.
 *
 * @param verdicts The verdicts (from `claimVerdicts`).
 * @returns Lines of plain text.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { CLAIMS } from "./claims.ts";
 * import { verdictLinesOf } from "./verdicts.ts";
 * const notRun = { claim: CLAIMS[0], points: [], at: null, verdict: "not run" as const, power: null };
 * assertEquals(verdictLinesOf([notRun]), ["attention: MLA's KV cache is a small fraction of MHA's — not run"]);
 * ```
 */
export function verdictLinesOf(verdicts: readonly ClaimVerdict[]): string[] {
  return verdicts.map((v) => {
    const head = `${v.claim.experiment}: ${v.claim.statement}`;
    if (v.at === null) return `${head} — not run`;
    const m = v.at.measured;
    const f = (x: number) => formatClaimValue(v.claim, x);
    const ours = `${f(m.mean)}${m.halfWidth === null ? "" : ` ± ${f(m.halfWidth)}`} ` +
      `(n = ${m.n}, ${formatTokens(v.at.tokens)} tokens)`;
    const det = v.power?.detectable;
    return `${head} — ${ours}: ${verdictText(v)}` +
      (det !== null && det !== undefined && det > 0 ? `; detects ≥ ${f(det)}` : "");
  });
}
