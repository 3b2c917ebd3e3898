/**
 * Statistical power of the paired comparisons behind the claims: how small an effect the seeds
 * run can detect, how many seeds the observed effect needs, and how many tokens per run would
 * bring the seed noise down far enough (from the measured trend of noise with budget).
 *
 * The test is the paired t test the report's intervals come from: `n` seeds give differences
 * `d_1 … d_n` with mean `d̄` and sample standard deviation `s`, and the 95% interval
 * `d̄ ± t_{0.975, n−1} · s / √n` excludes zero exactly when the two-sided 5% test rejects. Under a
 * true mean `Δ` and standard deviation `σ` the statistic `T = d̄ / (s / √n)` follows the
 * noncentral t with `ν = n − 1` degrees of freedom and noncentrality `δ = √n · Δ / σ`, so
 *
 * `power(n, Δ/σ) = P(T > t_c) + P(T < −t_c) = 1 − F(t_c; ν, δ) + F(−t_c; ν, δ)`,  `t_c = t_{1−α/2, ν}`.
 *
 * `F` is computed (absolute error below 1e-13 against a 40-digit quadrature; for `t < 0` as
 * `1 − F(−t; ν, −δ)`, so lower tails under 1e-16 are not relatively accurate) as the Poisson mixture of incomplete beta functions
 * (Lenth 1989, AS 243; summed outward from the Poisson mode as in Benton & Krishnamoorthy 2003):
 *
 * `F(t; ν, δ) = Φ(−δ) + ½ Σ_{j≥0} [ p_j I_x(j + ½, ν/2) + q_j I_x(j + 1, ν/2) ]`,  `t ≥ 0`,
 * `x = t² / (t² + ν)`, `p_j = e^{−δ²/2} (δ²/2)^j / j!`, `q_j = δ e^{−δ²/2} (δ²/2)^j / (√2 Γ(j + 3/2))`,
 *
 * and `F(t; ν, δ) = 1 − F(−t; ν, −δ)` for `t < 0`. Planning takes the observed `s` for `σ` (the
 * usual plug-in; with 3 seeds `s` itself is uncertain by about ±50%, so a seeds figure is an
 * order of magnitude, not a promise).
 *
 * Ref: R. V. Lenth, "Algorithm AS 243: Cumulative distribution function of the non-central t
 * distribution", Applied Statistics 38 (1989) 185–189; D. Benton, K. Krishnamoorthy, "Computing
 * discrete mixtures of continuous distributions", CSDA 43 (2003) 249–267.
 *
 * @module
 */

import { incompleteBeta, lnGamma, studentTCdf, studentTQuantile } from "./stats.ts";

const LN_SQRT_PI = 0.5 * Math.log(Math.PI);

/** Regularized upper incomplete gamma `Q(a, x)` (series below `a + 1`, continued fraction above). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - (a === 0.5 ? LN_SQRT_PI : lnGamma(a)));
  if (x < a + 1) {
    let term = 1 / a, sum = term;
    for (let n = 1; n < 500; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-17) break;
    }
    return 1 - sum * front;
  }
  // Modified Lentz on the continued fraction of Γ(a, x) (Numerical Recipes §6.2)
  const tiny = 1e-300;
  let b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return front * h;
}

/**
 * The standard normal distribution function `Φ(x)`, from `erfc(z) = Q(½, z²)` (relative error
 * about 1e-15, in the far tails too).
 *
 * @param x The point.
 * @returns `P(Z ≤ x)`.
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { normalCdf } from "./power.ts";
 * assertAllClose(normalCdf(1.959963984540054), 0.975, { atol: 1e-15, rtol: 0 });
 * assertAllClose(normalCdf(-10), 7.619853024160527e-24, { atol: 0, rtol: 1e-12 });
 * ```
 */
export function normalCdf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const tail = 0.5 * gammaQ(0.5, (x * x) / 2); // P(Z > |x|)
  return x >= 0 ? 1 - tail : tail;
}

/** A noncentral t distribution: degrees of freedom `ν` and noncentrality `δ`. */
export interface NoncentralT {
  /** Degrees of freedom `ν > 0`. */
  df: number;
  /** Noncentrality `δ` (any sign). */
  ncp: number;
}

/**
 * The distribution function of the noncentral t with `df` degrees of freedom and
 * noncentrality `ncp`: `P(T ≤ t)` for `T = (Z + δ) / √(V/ν)`, `Z ~ N(0, 1)`, `V ~ χ²_ν`
 * (the module header gives the series).
 *
 * @param t The point.
 * @param dist `ν` (`df > 0`) and `δ` (`ncp`).
 * @returns `F(t; ν, δ)`.
 *
 * @example Two closed forms: `F(0; ν, δ) = Φ(−δ)`, and `δ = 0` is Student's t
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { noncentralTCdf, normalCdf } from "./power.ts";
 * import { studentTCdf } from "./stats.ts";
 * assertAllClose(noncentralTCdf(0, { df: 4, ncp: 1.5 }), normalCdf(-1.5), { atol: 1e-15, rtol: 0 });
 * assertAllClose(noncentralTCdf(2, { df: 4, ncp: 0 }), studentTCdf(2, 4), { atol: 1e-14, rtol: 0 });
 * ```
 */
export function noncentralTCdf(t: number, dist: NoncentralT): number {
  const { df, ncp } = dist;
  if (!(df > 0)) {
    throw new Error(`Cannot evaluate the noncentral t distribution with df ${df}: expected > 0`);
  }
  if (!Number.isFinite(ncp)) {
    throw new Error(
      `Cannot evaluate the noncentral t distribution with ncp ${ncp}: expected a finite number`,
    );
  }
  if (t < 0) return 1 - noncentralTCdf(-t, { df, ncp: -ncp });
  if (ncp === 0) return studentTCdf(t, df);
  if (t === Infinity) return 1;
  const x = (t * t) / (t * t + df);
  const base = normalCdf(-ncp);
  if (x === 0) return base;
  const b = df / 2;
  const lam = (ncp * ncp) / 2; // Poisson mean
  const lnX = Math.log(x), ln1X = Math.log1p(-x);
  const k = Math.floor(lam); // the Poisson mode: sum outward from it
  const lnLam = lam > 0 ? Math.log(lam) : 0;
  // Poisson weights at the mode: p_k and q_k / δ·√2 (sign of δ applied at the end)
  const p0 = Math.exp(-lam + k * lnLam - lnGamma(k + 1));
  const q0 = Math.exp(-lam + k * lnLam - lnGamma(k + 1.5));
  const qScale = ncp / Math.SQRT2;
  // I_x(a, b) at a = k + ½ (the p terms) and c = k + 1 (the q terms), and the recursion steps
  // g(a) = Γ(a + b) / (Γ(a + 1) Γ(b)) · x^a (1 − x)^b, with I_x(a + 1, b) = I_x(a, b) − g(a)
  const g = (a: number) =>
    Math.exp(lnGamma(a + b) - lnGamma(a + 1) - lnGamma(b) + a * lnX + b * ln1X);
  const ia0 = incompleteBeta(x, k + 0.5, b), ic0 = incompleteBeta(x, k + 1, b);
  const ga0 = g(k + 0.5), gc0 = g(k + 1);
  let sum = p0 * ia0 + qScale * q0 * ic0;
  // backward: j = k − 1, …, 0, with I_x(a − 1, b) = I_x(a, b) + g(a − 1) and
  // g(a − 1) = g(a) · a / (x (a − 1 + b)) (every term adds: no cancellation)
  let p = p0, q = q0, ia = ia0, ic = ic0, ga = ga0, gc = gc0;
  for (let j = k - 1; j >= 0; j--) {
    const a = j + 1.5, c = j + 2; // the shapes of term j + 1
    ga *= a / (x * (a - 1 + b));
    gc *= c / (x * (c - 1 + b));
    ia += ga;
    ic += gc;
    p *= (j + 1) / lam;
    q *= (j + 1.5) / lam;
    const term = p * ia + qScale * q * ic;
    sum += term;
    if (p < 1e-18 && Math.abs(term) < 1e-18) break; // the Poisson weights only fall from here
  }
  // forward: j = k + 1, k + 2, … with I_x(a + 1, b) = I_x(a, b) − g(a) and
  // g(a + 1) = g(a) · x (a + b) / (a + 1)
  p = p0, q = q0, ia = ia0, ic = ic0, ga = ga0, gc = gc0;
  for (let j = k + 1; j < k + 1_000_000; j++) {
    const a = j - 0.5, c = j; // the shapes of term j − 1
    ia = Math.max(0, ia - ga);
    ic = Math.max(0, ic - gc);
    ga *= (x * (a + b)) / (a + 1);
    gc *= (x * (c + b)) / (c + 1);
    p *= lam / j;
    q *= lam / (j + 0.5);
    sum += p * ia + qScale * q * ic;
    // Past the mode the weights fall at least geometrically (ratio r = λ / (j + 1)), and
    // |q_j δ/√2| ≤ 2 p_j there, so the rest is below p r / (1 − r) · (I_a + 2 I_c).
    const r = lam / (j + 1);
    if (r < 1 && (p * r / (1 - r)) * (ia + 2 * ic) < 1e-17) break;
  }
  return Math.min(1, Math.max(0, base + 0.5 * sum));
}

/** Options for the power functions. */
export interface PowerOptions {
  /** Two-sided significance level. @default {0.05} */
  alpha?: number;
  /** Target power (for the detectable effect and the seeds needed). @default {0.8} */
  power?: number;
}

function checkLevels(options: PowerOptions, action: string): { alpha: number; power: number } {
  const alpha = options.alpha ?? 0.05, power = options.power ?? 0.8;
  if (!(alpha > 0 && alpha < 1)) {
    throw new Error(`Cannot ${action} at alpha ${alpha}: expected 0 < alpha < 1`);
  }
  if (!(power > 0 && power < 1)) {
    throw new Error(`Cannot ${action} at power ${power}: expected 0 < power < 1`);
  }
  return { alpha, power };
}

function checkSeeds(n: number, action: string): void {
  if (!(Number.isInteger(n) && n >= 2)) {
    throw new Error(`Cannot ${action} with ${n} seeds: expected an integer >= 2`);
  }
}

/**
 * Power of the two-sided paired t test: the probability that the `(1 − α)` interval over `n`
 * paired seeds excludes zero when the true mean difference is `effectSize` standard deviations
 * (`Δ / σ`, Cohen's `d_z`).
 *
 * @param n Seeds (pairs), at least 2.
 * @param effectSize `Δ / σ` (either sign).
 * @param options `alpha`.
 * @returns `1 − F(t_c; n − 1, √n · Δ/σ) + F(−t_c; n − 1, √n · Δ/σ)`.
 *
 * @example With no effect the power is the level itself
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { pairedTPower } from "./power.ts";
 * assertAllClose(pairedTPower(5, 0), 0.05, { atol: 1e-12, rtol: 0 });
 * ```
 */
export function pairedTPower(n: number, effectSize: number, options: PowerOptions = {}): number {
  checkSeeds(n, "compute the power");
  const { alpha } = checkLevels(options, "compute the power");
  const df = n - 1;
  const tc = studentTQuantile(1 - alpha / 2, df);
  const ncp = Math.sqrt(n) * effectSize;
  return 1 - noncentralTCdf(tc, { df, ncp }) + noncentralTCdf(-tc, { df, ncp });
}

/** The root of an increasing function on `[lo, ∞)` (doubling, then bisection to `rtol`). */
function solveIncreasing(f: (x: number) => number, target: number, lo: number): number {
  let hi = Math.max(2 * lo, 1);
  while (f(hi) < target) {
    lo = hi;
    hi *= 2;
    if (hi > 1e12) return Infinity;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < target) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * The minimum detectable effect in standard deviations: the `Δ / σ` that the two-sided paired
 * t test over `n` seeds detects with the target power. Multiply by the standard deviation of
 * the per-seed differences to get it in the measure's units.
 *
 * @param n Seeds (pairs), at least 2.
 * @param options `alpha` and the target `power`.
 * @returns `d` with `pairedTPower(n, d) = power`.
 *
 * @example 3 seeds detect only effects above 3.26 standard deviations; 10 seeds about 1.0
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { detectableEffectSize } from "./power.ts";
 * assertAllClose(detectableEffectSize(3), 3.264043549699572, { atol: 1e-6, rtol: 0 });
 * assertAllClose(detectableEffectSize(10), 0.9960013714554439, { atol: 1e-6, rtol: 0 });
 * ```
 */
export function detectableEffectSize(n: number, options: PowerOptions = {}): number {
  checkSeeds(n, "compute the detectable effect");
  const { power } = checkLevels(options, "compute the detectable effect");
  return solveIncreasing((d) => pairedTPower(n, d, options), power, 0);
}

/** Options for {@linkcode seedsToDetect}. */
export interface SeedsOptions extends PowerOptions {
  /** Give up above this many seeds (the result is then `Infinity`). @default {100000} */
  max?: number;
}

/** The smallest integer `n ≥ 2` with `powerAt(n) ≥ target`, or `Infinity` above `max`. */
function smallestSeeds(powerAt: (n: number) => number, target: number, max: number): number {
  if (powerAt(2) >= target) return 2;
  let lo = 2, hi = 4;
  while (powerAt(hi) < target) {
    lo = hi;
    hi *= 2;
    if (lo >= max) return Infinity;
  }
  while (hi - lo > 1) { // powerAt(lo) < target <= powerAt(hi)
    const mid = Math.floor((lo + hi) / 2);
    if (powerAt(mid) < target) lo = mid;
    else hi = mid;
  }
  return hi > max ? Infinity : hi;
}

/**
 * The seeds a paired comparison needs so that the two-sided test detects an effect of
 * `effectSize` standard deviations with the target power.
 *
 * @param effectSize `Δ / σ` (either sign; `0` needs infinitely many).
 * @param options `alpha`, `power` and the search limit `max`.
 * @returns The smallest integer `n ≥ 2` with `pairedTPower(n, effectSize) ≥ power`, or
 *   `Infinity` when none up to `max`.
 *
 * @example Cohen's medium effect (`d_z = 0.5`) needs 34 pairs at 80% power
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { seedsToDetect } from "./power.ts";
 * assertEquals(seedsToDetect(0.5), 34);
 * assertEquals(seedsToDetect(0), Infinity);
 * ```
 */
export function seedsToDetect(effectSize: number, options: SeedsOptions = {}): number {
  const { power } = checkLevels(options, "compute the seeds needed");
  if (effectSize === 0 || !Number.isFinite(effectSize)) {
    return effectSize === 0 ? Infinity : 2;
  }
  return smallestSeeds((n) => pairedTPower(n, effectSize, options), power, options.max ?? 100_000);
}

/** An equivalence margin in standard deviations: the true gap `Δ/σ` and the bound `B/σ`. */
export interface Equivalence {
  /** The true mean difference over its standard deviation, `Δ / σ`. */
  gap: number;
  /** The bound over the same standard deviation, `B / σ`. */
  bound: number;
}

/**
 * Power of an equivalence claim (`|Δ|` below a bound `B`) as the report decides it: the
 * `(1 − α)` interval lies inside `(−B, B)`, i.e. both one-sided tests at `α/2` reject (TOST).
 * Computed as the Bonferroni bound `P(lower test rejects) + P(upper test rejects) − 1` (each a
 * noncentral t tail), a lower bound on the exact power that is tight where power is high.
 *
 * @param n Seeds (pairs), at least 2.
 * @param margin `gap = Δ / σ` and `bound = B / σ`.
 * @param options `alpha`.
 * @returns The power (0 when the bound gives nothing).
 *
 * @example A gap of zero, a bound of one standard deviation: 30 seeds give high power
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { equivalencePower } from "./power.ts";
 * ok(equivalencePower(30, { gap: 0, bound: 1 }) > 0.9);
 * ok(equivalencePower(3, { gap: 0, bound: 1 }) < 0.05);
 * ```
 */
export function equivalencePower(
  n: number,
  margin: Equivalence,
  options: PowerOptions = {},
): number {
  const { gap, bound } = margin;
  checkSeeds(n, "compute the equivalence power");
  const { alpha } = checkLevels(options, "compute the equivalence power");
  if (!(bound > 0)) {
    throw new Error(`Cannot compute the equivalence power for bound ${bound}: expected > 0`);
  }
  const df = n - 1, tc = studentTQuantile(1 - alpha / 2, df), root = Math.sqrt(n);
  const lower = 1 - noncentralTCdf(tc, { df, ncp: root * (gap + bound) }); // (d̄ + B) / (s/√n) > t_c
  const upper = 1 - noncentralTCdf(tc, { df, ncp: root * (bound - gap) }); // (B − d̄) / (s/√n) > t_c
  return Math.max(0, lower + upper - 1);
}

/**
 * The seeds an equivalence claim needs: the smallest `n ≥ 2` whose
 * {@linkcode equivalencePower} reaches the target.
 *
 * @param margin `gap = Δ / σ` and `bound = B / σ`.
 * @param options `alpha`, `power`, `max`.
 * @returns Seeds, or `Infinity` when `|gap| ≥ bound` or none up to `max`.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { seedsForEquivalence } from "./power.ts";
 * const n = seedsForEquivalence({ gap: 0, bound: 1 });
 * ok(n > 10 && n < 20);
 * ```
 */
export function seedsForEquivalence(margin: Equivalence, options: SeedsOptions = {}): number {
  const { gap, bound } = margin;
  const { power } = checkLevels(options, "compute the seeds needed");
  if (Math.abs(gap) >= bound) return Infinity;
  return smallestSeeds(
    (n) => equivalencePower(n, { gap, bound }, options),
    power,
    options.max ?? 100_000,
  );
}

/** The seed noise measured at one budget. */
export interface NoisePoint {
  /** Training tokens per run. */
  tokens: number;
  /** Standard deviation over seeds (of the paired differences). */
  std: number;
  /** Seeds behind `std` (weights the fit by `n − 1`). */
  n: number;
}

/** A fitted `σ(T) = c · T^{−a}`. */
export interface NoiseTrend {
  /** `a`: how fast the noise falls with tokens (`≤ 0`: it does not). */
  exponent: number;
  /** `c`. */
  coefficient: number;
  /** Distinct budgets behind the fit. */
  budgets: number;
}

/**
 * Fit the seed noise against the training budget, `σ(T) = c · T^{−a}`: least squares on
 * `ln σ = ln c − a ln T`, each budget weighted by `n − 1` (the variance of `ln s` is about
 * `1 / (2(n − 1))`). Budgets with fewer than 2 seeds or `σ = 0` carry no information and are
 * left out.
 *
 * @param points The noise at each budget.
 * @returns The trend, or `null` with fewer than 2 distinct budgets (the stated fallback: no
 *   tokens estimate, seeds only).
 *
 * @example Noise halving per 4× tokens is `a = ½`
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { fitNoiseTrend } from "./power.ts";
 * const trend = fitNoiseTrend([{ tokens: 1e4, std: 0.2, n: 3 }, { tokens: 4e4, std: 0.1, n: 3 }]);
 * assertAllClose(trend?.exponent ?? NaN, 0.5, { atol: 1e-12, rtol: 0 });
 * ```
 */
export function fitNoiseTrend(points: readonly NoisePoint[]): NoiseTrend | null {
  const use = points.filter((p) => p.n >= 2 && p.std > 0 && p.tokens > 0);
  if (new Set(use.map((p) => p.tokens)).size < 2) return null;
  let sw = 0, sx = 0, sy = 0;
  for (const p of use) {
    const w = p.n - 1;
    sw += w;
    sx += w * Math.log(p.tokens);
    sy += w * Math.log(p.std);
  }
  const mx = sx / sw, my = sy / sw;
  let sxx = 0, sxy = 0;
  for (const p of use) {
    const w = p.n - 1, dx = Math.log(p.tokens) - mx;
    sxx += w * dx * dx;
    sxy += w * dx * (Math.log(p.std) - my);
  }
  const slope = sxy / sxx;
  return {
    exponent: -slope,
    coefficient: Math.exp(my - slope * mx),
    budgets: new Set(use.map((p) => p.tokens)).size,
  };
}

/**
 * The training tokens per run at which a fitted trend reaches a target noise,
 * `T = (c / σ_target)^{1/a}`.
 *
 * @param trend The fit.
 * @param targetStd The noise wanted.
 * @returns Tokens, or `null` when the noise does not fall with tokens (`a ≤ 0`).
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tokensForNoise } from "./power.ts";
 * const trend = { exponent: 0.5, coefficient: 20, budgets: 2 }; // σ = 0.2 at 10⁴ tokens
 * assertAllClose(tokensForNoise(trend, 0.05) ?? NaN, 16e4, { atol: 0, rtol: 1e-12 });
 * ```
 */
export function tokensForNoise(trend: NoiseTrend, targetStd: number): number | null {
  if (!(targetStd > 0)) {
    throw new Error(`Cannot find the tokens for noise ${targetStd}: expected > 0`);
  }
  if (!(trend.exponent > 0)) return null;
  return (trend.coefficient / targetStd) ** (1 / trend.exponent);
}
