import { equal, ok, throws } from "node:assert/strict";
import {
  detectableEffectSize,
  equivalencePower,
  fitNoiseTrend,
  noncentralTCdf,
  normalCdf,
  pairedTPower,
  seedsForEquivalence,
  seedsToDetect,
  tokensForNoise,
} from "../../lib/report/power.ts";
import { meanCi, studentTCdf, studentTQuantile } from "../../lib/report/stats.ts";
import { assertAllClose } from "../../lib/tensor/assert.ts";
import { Rng } from "../../lib/tensor/random.ts";

/**
 * Reference values from tests/fixtures/report/make_power.py: the noncentral t distribution
 * function by mpmath quadrature of its definition (40 digits), independent of the series in
 * power.ts; the power and sample sizes derived from it.
 */
const FIXTURE = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/report/power.json", import.meta.url)),
) as {
  cdf: [number, number, number, number][];
  power: [number, number, number][];
  sampleSize: [number, number, number][];
  detectableEffect: [number, number][];
};

/** The 95% interval of `n` draws from `N(mean, 1)` (as `meanCi` computes it, `t_c` given). */
function drawInterval(rng: Rng, n: number, mean: number, tc: number): { lo: number; hi: number } {
  const values = Array.from({ length: n }, () => rng.normal(mean, 1));
  const m = values.reduce((a, b) => a + b, 0) / n;
  const s = Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (n - 1));
  const h = (tc * s) / Math.sqrt(n);
  return { lo: m - h, hi: m + h };
}

Deno.test("drawInterval() is meanCi's interval", () => {
  const a = drawInterval(new Rng(3), 4, 0.5, studentTQuantile(0.975, 3));
  const rng = new Rng(3);
  const b = meanCi(Array.from({ length: 4 }, () => rng.normal(0.5, 1)));
  assertAllClose([a.lo, a.hi], [b.lo, b.hi], { rtol: 0, atol: 1e-12 });
});

Deno.test("normalCdf() matches known values of Φ, including the far tails", () => {
  assertAllClose(normalCdf(0), 0.5, { rtol: 0, atol: 1e-16 });
  assertAllClose(normalCdf(1), 0.8413447460685429, { rtol: 0, atol: 1e-15 });
  assertAllClose(normalCdf(-3), 0.0013498980316300946, { atol: 0, rtol: 1e-13 });
  assertAllClose(normalCdf(-8), 6.220960574271785e-16, { atol: 0, rtol: 1e-12 });
  assertAllClose(normalCdf(-20), 2.7536241186062337e-89, { atol: 0, rtol: 1e-11 });
  assertAllClose(normalCdf(0.3) + normalCdf(-0.3), 1, { rtol: 0, atol: 1e-15 });
});

Deno.test("noncentralTCdf() matches the quadrature of its definition (ν 1–200, δ −2…20, t −3…12.7)", () => {
  ok(FIXTURE.cdf.length >= 200);
  for (const [t, df, ncp, want] of FIXTURE.cdf) {
    assertAllClose(noncentralTCdf(t, { df: df, ncp: ncp }), want, {
      atol: 1e-12,
      rtol: 0,
      message: `F(${t}; ${df}, ${ncp})`,
    });
  }
});

Deno.test("noncentralTCdf() equals the closed form at ν = 2 (3 seeds)", () => {
  // Hand derivation: T = (Z + δ)/√W with W = V/2 ~ Exp(1), so with s = √W (density 2s e^{−s²})
  // F(t) = ∫ Φ(ts − δ) 2s e^{−s²} ds. Integrating by parts and completing the square,
  // F(t; 2, δ) = Φ(−δ) + t/√(t² + 2) · exp(−δ²/(t² + 2)) · Φ(tδ/√(t² + 2)),
  // which at δ = 0 is ½ + t / (2√(t² + 2)), Student's t with 2 degrees of freedom.
  for (const t of [-4.3, -1, 0.2, 1, 4.302652729749464, 12]) {
    for (const d of [-3, -0.5, 0.7, 2, 6, 15]) {
      const r = Math.sqrt(t * t + 2);
      const closed = normalCdf(-d) + (t / r) * Math.exp(-(d * d) / (t * t + 2)) *
          normalCdf((t * d) / r);
      assertAllClose(noncentralTCdf(t, { df: 2, ncp: d }), closed, {
        rtol: 0,
        atol: 1e-13,
        message: `t ${t}, δ ${d}`,
      });
    }
  }
});

Deno.test("noncentralTCdf() limits: t = 0 gives Φ(−δ), δ = 0 gives Student t, ν → ∞ gives Φ(t − δ)", () => {
  for (const d of [-2, 0.5, 3, 9]) {
    for (const df of [1, 3, 17]) {
      assertAllClose(noncentralTCdf(0, { df: df, ncp: d }), normalCdf(-d), {
        rtol: 0,
        atol: 1e-15,
      });
    }
  }
  for (const t of [-2, 0.7, 5]) {
    assertAllClose(noncentralTCdf(t, { df: 4, ncp: 0 }), studentTCdf(t, 4), {
      rtol: 0,
      atol: 1e-15,
    });
  }
  for (const [t, d] of [[1, 0.5], [2.5, 3], [-1, 1]]) {
    assertAllClose(noncentralTCdf(t, { df: 1e7, ncp: d }), normalCdf(t - d), {
      rtol: 0,
      atol: 1e-5,
    });
  }
  equal(noncentralTCdf(Infinity, { df: 3, ncp: 2 }), 1);
  equal(noncentralTCdf(-Infinity, { df: 3, ncp: 2 }), 0);
  throws(
    () => noncentralTCdf(1, { df: 0, ncp: 1 }),
    /Cannot evaluate the noncentral t distribution with df 0/,
  );
  throws(() => noncentralTCdf(1, { df: 2, ncp: NaN }), /with ncp NaN: expected a finite number/);
});

Deno.test("pairedTPower() matches the reference, equals α at no effect, and G*Power's 0.8078 at n 34, d 0.5", () => {
  for (const [n, d, want] of FIXTURE.power) {
    assertAllClose(pairedTPower(n, d), want, { rtol: 0, atol: 1e-12, message: `n ${n}, d ${d}` });
    assertAllClose(pairedTPower(n, -d), want, { rtol: 0, atol: 1e-12, message: `n ${n}, d −${d}` });
  }
  for (const n of [2, 3, 10]) assertAllClose(pairedTPower(n, 0), 0.05, { rtol: 0, atol: 1e-12 });
  assertAllClose(pairedTPower(34, 0.5), 0.8077775, { rtol: 0, atol: 1e-7 }); // G*Power 3.1 "actual power"
  assertAllClose(pairedTPower(5, 0, { alpha: 0.1 }), 0.1, { rtol: 0, atol: 1e-12 });
  throws(
    () => pairedTPower(1, 1),
    /Cannot compute the power with 1 seeds: expected an integer >= 2/,
  );
  throws(() => pairedTPower(3, 1, { alpha: 0 }), /at alpha 0: expected 0 < alpha < 1/);
});

Deno.test("pairedTPower() agrees with a simulation of the paired t interval (seeded, 20,000 trials)", () => {
  const rng = new Rng(7);
  for (const [n, d] of [[3, 2], [5, 1], [10, 0.7]]) {
    const trials = 20_000, tc = studentTQuantile(0.975, n - 1);
    let rejects = 0;
    for (let i = 0; i < trials; i++) {
      const ci = drawInterval(rng, n, d, tc);
      if (ci.lo > 0 || ci.hi < 0) rejects++;
    }
    const p = pairedTPower(n, d), se = Math.sqrt((p * (1 - p)) / trials);
    ok(
      Math.abs(rejects / trials - p) < 4 * se,
      `n ${n}, d ${d}: simulated ${rejects / trials}, computed ${p}`,
    );
  }
});

Deno.test("seedsToDetect() and detectableEffectSize() match the reference (pwr: n = 33.37 at d = 0.5)", () => {
  for (const [d, n] of FIXTURE.sampleSize) {
    equal(seedsToDetect(d), n, `d ${d}`);
    equal(seedsToDetect(-d), n, `d −${d}`);
    ok(pairedTPower(n - 1, d) < 0.8 && pairedTPower(n, d) >= 0.8);
  }
  // the real-valued n (what R's pwr.t.test(type = "paired") prints) lies just below the integer
  for (const [, n, real] of FIXTURE.sampleSize) ok(real <= n && real > n - 1);
  for (const [n, d] of FIXTURE.detectableEffect) {
    assertAllClose(detectableEffectSize(n), d, { rtol: 0, atol: 1e-7, message: `n ${n}` });
    assertAllClose(pairedTPower(n, detectableEffectSize(n)), 0.8, { rtol: 0, atol: 1e-9 });
  }
  equal(seedsToDetect(0), Infinity);
  equal(seedsToDetect(1e-4, { max: 1000 }), Infinity);
  equal(seedsToDetect(30), 2);
  ok(seedsToDetect(0.5, { power: 0.9 }) > seedsToDetect(0.5));
});

Deno.test("equivalencePower() is a lower bound close to a simulation of 'the 95% interval lies inside ±B'", () => {
  const rng = new Rng(11);
  for (const [n, gap, bound] of [[10, 0, 1.2], [20, 0.3, 1], [40, -0.2, 0.7]]) {
    const trials = 20_000, tc = studentTQuantile(0.975, n - 1);
    let inside = 0;
    for (let i = 0; i < trials; i++) {
      const ci = drawInterval(rng, n, gap, tc);
      if (ci.lo > -bound && ci.hi < bound) inside++;
    }
    const p = equivalencePower(n, { gap: gap, bound: bound }), sim = inside / trials;
    const se = Math.sqrt((sim * (1 - sim)) / trials);
    ok(p <= sim + 4 * se, `n ${n}: bound ${p} above the simulated ${sim}`);
    ok(sim - p < 0.02, `n ${n}: bound ${p} far below the simulated ${sim}`);
  }
  equal(seedsForEquivalence({ gap: 1, bound: 1 }), Infinity);
  const n = seedsForEquivalence({ gap: 0.2, bound: 1 });
  ok(
    equivalencePower(n, { gap: 0.2, bound: 1 }) >= 0.8 &&
      equivalencePower(n - 1, { gap: 0.2, bound: 1 }) < 0.8,
  );
  throws(() => equivalencePower(5, { gap: 0, bound: 0 }), /for bound 0: expected > 0/);
});

Deno.test("fitNoiseTrend() recovers a power law, weights by seeds, and needs 2 budgets", () => {
  const law = (tokens: number) => 3 * tokens ** -0.4;
  const trend = fitNoiseTrend(
    [1e4, 4e4, 2e6].map((tokens) => ({ tokens, std: law(tokens), n: 3 })),
  );
  assertAllClose(trend?.exponent ?? NaN, 0.4, { rtol: 0, atol: 1e-12 });
  assertAllClose(trend?.coefficient ?? NaN, 3, { atol: 0, rtol: 1e-10 });
  equal(trend?.budgets, 3);
  // one budget, or budgets without a noise estimate: no trend (the fallback: seeds only)
  equal(fitNoiseTrend([{ tokens: 1e4, std: 0.1, n: 3 }, { tokens: 1e4, std: 0.2, n: 3 }]), null);
  equal(fitNoiseTrend([{ tokens: 1e4, std: 0.1, n: 3 }, { tokens: 1e5, std: 0.05, n: 1 }]), null);
  // a budget with more seeds pulls the fit toward itself
  const pts = [
    { tokens: 1e4, std: 0.2, n: 3 },
    { tokens: 1e5, std: 0.1, n: 3 },
    { tokens: 1e6, std: 0.1, n: 3 },
  ];
  const even = fitNoiseTrend(pts)?.exponent ?? NaN;
  const heavy = fitNoiseTrend([{ ...pts[0], n: 30 }, pts[1], pts[2]])?.exponent ?? NaN;
  ok(heavy > even, `${heavy} vs ${even}`);
  // the inverse: tokens for a target noise; none when the noise does not fall
  assertAllClose(
    tokensForNoise({ exponent: 0.4, coefficient: 3, budgets: 2 }, law(5e5)) ?? NaN,
    5e5,
    {
      atol: 0,
      rtol: 1e-10,
    },
  );
  equal(tokensForNoise({ exponent: -0.1, coefficient: 3, budgets: 2 }, 0.01), null);
  throws(() => tokensForNoise({ exponent: 0.5, coefficient: 1, budgets: 2 }, 0), /noise 0/);
});
