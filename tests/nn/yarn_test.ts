/**
 * YaRN frequencies (lib/nn/rope.ts `ropeFrequencies`) pinned to DeepSeek-V3's formula, computed
 * independently by tests/fixtures/nn/make_yarn.py, on configurations where the ramp's edges
 * matter: the upper edge inside the band of pairs and clamped to `dim − 1`, the lower edge
 * clamped to 0, and both edges equal.
 */
import { ok, strictEqual } from "node:assert/strict";
import { ropeFrequencies } from "../../lib/nn/mod.ts";
import { assertAllClose } from "../_utils.ts";

interface YarnCase {
  name: string;
  dim: number;
  theta: number;
  yarn: {
    factor: number;
    original_max_position_embeddings: number;
    beta_fast: number;
    beta_slow: number;
  };
  low_raw: number;
  high_raw: number;
  range: [number, number];
  plain: number[];
  freqs: number[];
}

const fixture = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/nn/yarn.json", import.meta.url)),
) as { meta: { tolerance: { f64: { atol: number; rtol: number } } }; cases: YarnCase[] };
const CASES = new Map(fixture.cases.map((c) => [c.name, c]));

function frequencies(c: YarnCase): Float64Array {
  return ropeFrequencies({
    dim: c.dim,
    theta: c.theta,
    yarn: {
      factor: c.yarn.factor,
      originalMaxPositionEmbeddings: c.yarn.original_max_position_embeddings,
      betaFast: c.yarn.beta_fast,
      betaSlow: c.yarn.beta_slow,
    },
  });
}

function caseNamed(name: string): YarnCase {
  const c = CASES.get(name);
  if (c === undefined) throw new Error(`Fixture yarn.json has no case '${name}'`);
  return c;
}

for (const c of fixture.cases) {
  Deno.test(`ropeFrequencies() equals DeepSeek-V3's YaRN frequencies in PyTorch (${c.name})`, () => {
    assertAllClose(frequencies(c), c.freqs, { ...fixture.meta.tolerance.f64, message: c.name });
  });
}

Deno.test("ropeFrequencies(): the fixture cases put the YaRN ramp's edges where they matter", () => {
  const half = (c: YarnCase) => c.dim / 2;
  const inside = caseNamed("upper_edge_inside");
  ok(inside.range[1] < half(inside) - 1, "the upper edge leaves pairs fully interpolated");
  const clamped = caseNamed("upper_edge_clamped");
  ok(Math.ceil(clamped.high_raw) > clamped.dim - 1, "the upper edge is clamped to dim − 1");
  ok(clamped.range[1] >= half(clamped), "clamped beyond the band: no pair fully interpolated");
  ok(Math.floor(clamped.low_raw) < 0 && clamped.range[0] === 0, "the lower edge is clamped");
  const equal = caseNamed("low_equals_high");
  strictEqual(equal.range[0], equal.range[1]);
  const v3 = caseNamed("deepseek_v3");
  ok(v3.range[0] > 0 && v3.range[1] < half(v3), "V3's ramp lies inside the band");
});

Deno.test("ropeFrequencies(): YaRN with the upper edge clamped to dim − 1, by hand", () => {
  // dim 8, θ 10, L 4096, s 4, β_fast 1000, β_slow 1: low = max(⌊−0.74⌋, 0) = 0,
  // high = min(⌈11.26⌉, 7) = 7, so ramp_j = j / 7 and f'_j = 10^(−j/4) (1 − j/7 + j/28).
  const got = frequencies(caseNamed("upper_edge_clamped"));
  const want = [0, 1, 2, 3].map((j) => 10 ** (-j / 4) * (1 - (3 * j) / 28));
  assertAllClose(got, want, { atol: 0, rtol: 1e-12 });
  assertAllClose(got[3], 0.12066895996692692, { atol: 0, rtol: 1e-12 }); // 10^−0.75 · 19/28
});
