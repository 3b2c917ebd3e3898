import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { type Claim, CLAIMS, claimsTable, verdictLines } from "../../lib/report/claims.ts";
import {
  detectableEffectSize,
  pairedTPower,
  seedsForEquivalence,
  seedsToDetect,
} from "../../lib/report/power.ts";
import type { ExperimentResults, RunResult } from "../../lib/report/results.ts";
import { meanCi } from "../../lib/report/stats.ts";
import { claimPoints, claimVerdict, powerText, verdictText } from "../../lib/report/verdicts.ts";
import { assertAllClose } from "../../lib/tensor/assert.ts";

const MLA_QUALITY = CLAIMS[1]; // attention: Δ valLoss (mla − mha) ≤ 0
const KV = CLAIMS[0]; // attention: kvBytesPerToken ratio < 1
const FP8 = CLAIMS[5]; // fp8: |relative Δ valLoss| < 0.25%

function run(
  experiment: string,
  variant: string,
  seed: number,
  metrics: Record<string, number>,
  tokens = 40_960,
  store = "runs",
): RunResult {
  return {
    experiment,
    variant,
    seed,
    dir: `${store}/${experiment}/${variant}/seed-${seed}`,
    config: { plan: { model: { dModel: 64, layers: 2, heads: 4, seqLen: 64 } } },
    steps: [],
    summary: {
      id: `${variant}-${seed}`,
      experiment,
      variant,
      seed,
      status: "done",
      steps: tokens / 1024,
      tokens,
      finalTrainLoss: metrics.valLoss ?? 0,
      metrics,
      parameters: { total: 1000, activated: 1000, mtp: 0 },
      backend: "cpu",
      wallSeconds: 1,
    },
  };
}

function results(runs: RunResult[], experiment = "attention"): ExperimentResults {
  return {
    experiment,
    dir: `runs/${experiment}`,
    variants: [...new Set(runs.map((r) => r.variant))].sort(),
    runs,
    incomplete: [],
  };
}

/** Paired valLoss runs of `claim` whose per-seed differences are `diffs` (baseline loss 3). */
function pairedRuns(claim: Claim, diffs: number[], tokens = 40_960, store = "runs"): RunResult[] {
  return diffs.flatMap((d, seed) => [
    run(claim.experiment, claim.baseline, seed, { valLoss: 3 + seed / 10 }, tokens, store),
    run(claim.experiment, claim.variant, seed, { valLoss: 3 + seed / 10 + d }, tokens, store),
  ]);
}

Deno.test("claimVerdict(): holds, contradicted and inconclusive from the paired 95% interval", () => {
  const holds = claimVerdict(MLA_QUALITY, [results(pairedRuns(MLA_QUALITY, [-0.1, -0.12, -0.11]))]);
  equal(holds.verdict, "holds");
  equal(verdictText(holds), "holds");
  const against = claimVerdict(MLA_QUALITY, [results(pairedRuns(MLA_QUALITY, [0.1, 0.12, 0.11]))]);
  equal(against.verdict, "contradicted");
  const diffs = [-0.1, 0.05, -0.02];
  const open = claimVerdict(MLA_QUALITY, [results(pairedRuns(MLA_QUALITY, diffs))]);
  equal(open.verdict, "inconclusive");
  const m = meanCi(diffs);
  assertAllClose(open.at?.measured.mean ?? NaN, m.mean, { atol: 1e-12, rtol: 0 });
  const s = m.std ?? NaN;
  // the power statement: detectable effect at 3 seeds, and the seeds the observed Δ needs
  assertAllClose(open.power?.detectable ?? NaN, detectableEffectSize(3) * s, {
    atol: 1e-9,
    rtol: 0,
  });
  const need = seedsToDetect(m.mean / s);
  equal(open.power?.seedsNeeded, need);
  ok(need > 3);
  equal(verdictText(open), `inconclusive — needs ≥ ${need} seeds`);
  match(powerText(open), /At 3 seeds the test detects \|effect\| ≥ 0\.\d{4}/);
  match(powerText(open), /A second budget would give the noise trend/);
  equal(open.power?.tokensNeeded, null); // one budget: no tokens figure (the fallback)
});

Deno.test("claimVerdict(): one seed is inconclusive and asks for seeds; no runs is 'not run'", () => {
  const one = claimVerdict(MLA_QUALITY, [results(pairedRuns(MLA_QUALITY, [-0.5]))]);
  equal(one.verdict, "inconclusive");
  equal(verdictText(one), "inconclusive — needs ≥ 2 seeds (one seed has no interval)");
  match(powerText(one), /One seed: no interval/);
  const none = claimVerdict(MLA_QUALITY, [results(pairedRuns(CLAIMS[4], [0.1, 0.2]), "mtp")]);
  equal(none.verdict, "not run");
  equal(none.power, null);
  // variant runs without their baseline seed are not paired
  const lonely = results([
    run("attention", "mla", 0, { valLoss: 3 }),
    run("attention", "mha", 1, { valLoss: 3 }),
  ]);
  equal(claimVerdict(MLA_QUALITY, [lonely]).verdict, "not run");
});

Deno.test("claimVerdict(): a ratio claim is judged against 1; seeds that agree exactly decide at once", () => {
  const runs = [0, 1, 2].flatMap((seed) => [
    run("attention", "mha", seed, { kvBytesPerToken: 2048 }),
    run("attention", "mla", seed, { kvBytesPerToken: 384 }),
  ]);
  const v = claimVerdict(KV, [results(runs)]);
  equal(v.verdict, "holds");
  assertAllClose(v.at?.measured.mean ?? NaN, 0.1875, { atol: 1e-15, rtol: 0 });
  equal(v.power?.detectable, 0);
  match(powerText(v), /Every seed gave the same value/);
  const worse = [0, 1].flatMap((seed) => [
    run("attention", "mha", seed, { kvBytesPerToken: 384 }),
    run("attention", "mla", seed, { kvBytesPerToken: 2048 }),
  ]);
  equal(claimVerdict(KV, [results(worse)]).verdict, "contradicted");
});

Deno.test("claimVerdict(): an equivalence claim holds inside ±B, is contradicted outside, else needs seeds", () => {
  const fp8 = (rel: number[]) =>
    results(
      rel.flatMap((r, seed) => [
        run("fp8", "fp32", seed, { valLoss: 2 }),
        run("fp8", "fp8-tile-block", seed, { valLoss: 2 * (1 + r) }),
      ]),
      "fp8",
    );
  equal(claimVerdict(FP8, [fp8([0.0001, -0.0002, 0.0003, 0])]).verdict, "holds");
  equal(claimVerdict(FP8, [fp8([0.01, 0.012, 0.011])]).verdict, "contradicted");
  const rel = [0.001, -0.002, 0.0005];
  const open = claimVerdict(FP8, [fp8(rel)]);
  equal(open.verdict, "inconclusive");
  const m = meanCi(rel);
  const want = seedsForEquivalence({ gap: m.mean / (m.std ?? 1), bound: 0.0025 / (m.std ?? 1) });
  equal(open.power?.seedsNeeded, want);
  match(powerText(open), /an interval inside ±0\.250%/);
});

Deno.test("claimPoints(): budgets are grouped by tokens, paired within a budget, first store wins", () => {
  const small = pairedRuns(MLA_QUALITY, [-0.1, 0.05, -0.02], 40_960, "runs");
  const full = pairedRuns(MLA_QUALITY, [0.03, 0.02, 0.04], 2_000_000, "runs-full");
  const copy = pairedRuns(MLA_QUALITY, [9, 9, 9], 40_960, "runs-copy");
  const points = claimPoints(MLA_QUALITY, [results(small), results(full), results(copy)]);
  deepStrictEqual(points.map((p) => p.tokens), [40_960, 2_000_000]);
  assertAllClose(points[0].measured.mean, meanCi([-0.1, 0.05, -0.02]).mean, {
    atol: 1e-12,
    rtol: 0,
  });
  equal(points[0].pairs[0].variant.dir, "runs/attention/mla/seed-0");
  // one store holding both budgets gives the same points
  const mixed = claimPoints(MLA_QUALITY, [results([...small, ...full])]);
  deepStrictEqual(mixed.map((p) => p.measured.mean), points.map((p) => p.measured.mean));
});

Deno.test("claimVerdict(): two budgets give the noise trend and a tokens estimate at the seeds run", () => {
  // seed noise 0.08 at 41k tokens, 0.02 at 655k (16×): a = ln 4 / ln 16 = ½
  const spread = (s: number, mean: number) => [mean - s, mean, mean + s];
  const small = pairedRuns(MLA_QUALITY, spread(0.08, -0.02), 40_960, "runs");
  const large = pairedRuns(MLA_QUALITY, spread(0.02, -0.02), 655_360, "runs-medium");
  const v = claimVerdict(MLA_QUALITY, [results(small), results(large)]);
  equal(v.verdict, "inconclusive");
  equal(v.at?.tokens, 655_360);
  assertAllClose(v.power?.trend?.exponent ?? NaN, 0.5, { atol: 1e-12, rtol: 0 });
  const tokens = v.power?.tokensNeeded ?? NaN;
  ok(tokens > 655_360, `${tokens}`);
  // at those tokens the fitted noise gives the target power for the observed Δ at 3 seeds
  const c = v.power?.trend?.coefficient ?? NaN;
  assertAllClose(pairedTPower(3, 0.02 / (c * tokens ** -0.5)), 0.8, { atol: 1e-9, rtol: 0 });
  match(verdictText(v), /^inconclusive — needs ≥ \d+ seeds or ~[\d.]+[kMG] tokens$/);
  match(powerText(v), /noise ∝ tokens\^−0\.50, fitted on 2 budgets/);
  // noise that grows with the budget: no tokens figure, and the statement says why
  const worse = claimVerdict(MLA_QUALITY, [
    results(pairedRuns(MLA_QUALITY, spread(0.01, -0.005), 40_960)),
    results(pairedRuns(MLA_QUALITY, spread(0.02, -0.005), 655_360, "runs-medium")),
  ]);
  equal(worse.power?.tokensNeeded, null);
  match(powerText(worse), /More tokens do not help here/);
});

Deno.test("claimsTable() and verdictLines() show the verdict and the power statement per claim", () => {
  const all = [results(pairedRuns(MLA_QUALITY, [-0.1, 0.05, -0.02]))];
  const table = claimsTable(all);
  match(table, /\| verdict \| power \(80%, two-sided 5%\) \|/);
  match(table, /\| inconclusive — needs ≥ \d+ seeds \| detects ≥ 0\.\d{4} at 3 seeds \|/);
  match(
    table,
    /Δ valLoss -0\.0233 ± 0\.\d{4} \(n = 3\) — mla vs mha, 41k tokens \| inconclusive — needs ≥ \d+ seeds \|/,
  );
  equal(table.split("\n").length, 2 + CLAIMS.length);
  const lines = verdictLines(all);
  equal(lines.length, CLAIMS.length);
  match(
    lines[1],
    /^attention: MLA matches or beats MHA in quality — -0\.0233 ± 0\.\d{4} \(n = 3, 41k tokens\): inconclusive — needs ≥ \d+ seeds; detects ≥ 0\.\d{4}$/,
  );
  equal(lines[0], "attention: MLA's KV cache is a small fraction of MHA's — not run");
});
