import { strictEqual, throws } from "node:assert/strict";
import { applyRope, Rope, ropeFrequencies, type YarnConfig, yarnMscale } from "../../lib/nn/mod.ts";
import {
  concat,
  mul,
  randn,
  reshape,
  Rng,
  slice,
  square,
  sum,
  type Tensor,
  tensor,
} from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp } from "../_utils.ts";
import { checkFixtureCase, loadFixture } from "./_fixtures.ts";

const fixture = loadFixture("rope");

interface FixtureYarn {
  factor: number;
  original_max_position_embeddings: number;
  beta_fast: number;
  beta_slow: number;
}

function yarnOf(y: FixtureYarn | null): YarnConfig | null {
  if (y === null) return null;
  return {
    factor: y.factor,
    originalMaxPositionEmbeddings: y.original_max_position_embeddings,
    betaFast: y.beta_fast,
    betaSlow: y.beta_slow,
  };
}

for (const c of fixture.cases) {
  Deno.test(`applyRope() matches V3's complex-pair RoPE in PyTorch (${c.name})`, () => {
    const yarn = yarnOf(c.yarn as FixtureYarn | null);
    const freqs = ropeFrequencies({ dim: c.dim as number, theta: c.theta as number, yarn });
    checkFixtureCase(fixture, c, ({ x }) => applyRope(x, freqs, { offset: c.offset as number }));
    if (yarn !== null) {
      assertAllClose(yarnMscale(yarn.factor), c.mscale as number, { atol: 1e-12 });
      const rope = new Rope({ dim: c.dim as number, yarn });
      assertAllClose(rope.attentionFactor, (c.mscale as number) ** 2, { atol: 1e-12 });
    }
  });
}

const V3_YARN: YarnConfig = { factor: 40, originalMaxPositionEmbeddings: 4096 };

Deno.test("ropeFrequencies() keeps fast pairs, divides slow pairs by s, ramps between (YaRN)", () => {
  const plain = ropeFrequencies({ dim: 16 });
  const yarn = ropeFrequencies({ dim: 16, yarn: V3_YARN });
  // d = 16, θ = 1e4, L = 4096: ramp from pair ⌊2.6⌋ = 2 (β_fast 32) to ⌈5.6⌉ = 6 (β_slow 1).
  for (let j = 0; j < 8; j++) {
    const ramp = Math.min(Math.max((j - 2) / 4, 0), 1);
    assertAllClose(yarn[j], plain[j] * (1 - ramp) + (plain[j] / 40) * ramp, { atol: 0 });
  }
  assertAllClose(yarn.slice(0, 3), plain.slice(0, 3), { atol: 0, rtol: 0 });
  assertAllClose(ropeFrequencies({ dim: 16, yarn: { ...V3_YARN, factor: 1 } }), plain);
  throws(() => ropeFrequencies({ dim: 7 }), /Cannot build RoPE frequencies for dim 7/);
});

Deno.test("yarnMscale() is 0.1 ln s + 1 (1 without extension); Rope exposes mscale²", () => {
  assertAllClose(yarnMscale(40), 1.3688879454113936, { atol: 1e-12 });
  assertAllClose(yarnMscale(40, { mscale: 0.707 }), 0.0707 * Math.log(40) + 1, { atol: 1e-12 });
  strictEqual(yarnMscale(0.5), 1);
  strictEqual(new Rope({ dim: 8 }).attentionFactor, 1);
  assertAllClose(new Rope({ dim: 8, yarn: V3_YARN }).attentionFactor, yarnMscale(40) ** 2);
  strictEqual(new Rope({ dim: 8 }).parameters().size, 0);
});

Deno.test("gradcheck: applyRope, plain and YaRN, with an offset", () => {
  checkOp([[2, 3, 2, 4]], (x) => applyRope(x, ropeFrequencies({ dim: 4 }), { offset: 3 }));
  const yarn = ropeFrequencies({
    dim: 8,
    theta: 50,
    yarn: { factor: 4, originalMaxPositionEmbeddings: 16 },
  });
  checkOp([[1, 4, 1, 8]], (x) => applyRope(x, yarn, { offset: 30 }));
});

/** Dot products over the last axis: [..., d] × [..., d] → [...]. */
function dot(a: Tensor, b: Tensor): Tensor {
  return sum(mul(a, b), -1);
}

/** Squared norm of each complex pair: [..., d] → [..., d/2]. */
function pairNorms(t: Tensor): Tensor {
  const d = t.shape[t.rank - 1];
  return sum(square(reshape(t, [...t.shape.slice(0, -1), d / 2, 2])), -1);
}

Deno.test("Rope preserves the norm of every pair, hence of every head vector", () => {
  const rope = new Rope({ dim: 8, yarn: V3_YARN });
  const x = randn([2, 5, 3, 8], { rng: new Rng(1) });
  const y = rope.forward(x, { offset: 4090 });
  assertAllClose(pairNorms(y), pairNorms(x), { atol: 1e-5 });
  assertAllClose(sum(square(y), -1), sum(square(x), -1), { atol: 1e-5 });
});

Deno.test("Rope: q·k at positions (m, n) depends only on m − n", () => {
  for (const rope of [new Rope({ dim: 8 }), new Rope({ dim: 8, yarn: V3_YARN })]) {
    const rng = new Rng(2);
    const q = randn([1, 1, 2, 8], { rng }), k = randn([1, 1, 2, 8], { rng });
    const score = (m: number, n: number) =>
      dot(rope.forward(q, { offset: m }), rope.forward(k, { offset: n })); // [1, 1, 2]
    const base = score(7, 3);
    for (const shift of [1, 10, 500, 5000]) {
      assertAllClose(score(7 + shift, 3 + shift), base, { atol: 1e-4 });
    }
    // …and does depend on it: a different distance gives a different score.
    const moved = Array.from(score(8, 3).dataSync()), at = Array.from(base.dataSync());
    strictEqual(moved.some((v, i) => Math.abs(v - at[i]) > 1e-3), true);
  }
});

Deno.test("Rope: offset is the decoding position (token-by-token equals the full pass)", () => {
  const rope = new Rope({ dim: 8, theta: 500 });
  const x = randn([2, 6, 3, 8], { rng: new Rng(3) });
  const full = rope.forward(x);
  const steps = Array.from(
    { length: 6 },
    (_, t) => rope.forward(slice(x, 1, t, t + 1), { offset: t }),
  );
  assertAllClose(concat(steps, 1), full, { atol: 1e-6 });
  // Prefill 4 tokens, then decode 2 at offset 4.
  const tail = rope.forward(slice(x, 1, 4), { offset: 4 });
  assertAllClose(tail, slice(full, 1, 4), { atol: 1e-6 });
  // Position 0 is the identity.
  assertAllClose(rope.forward(slice(x, 1, 0, 1)), slice(x, 1, 0, 1));
});

Deno.test("applyRope() rotates adjacent pairs (2j, 2j+1), not the two halves", () => {
  // d = 4, f = [π/2, 0]: pair (x0, x1) turns by 90° at position 1, pair (x2, x3) stays.
  const x = tensor([1, 2, 3, 4], { shape: [1, 1, 1, 4] });
  assertAllClose(applyRope(x, Float64Array.of(Math.PI / 2, 0), { offset: 1 }), [-2, 1, 3, 4], {
    atol: 1e-6,
  });
  throws(
    () => applyRope(randn([1, 2, 3], { rng: new Rng(0) }), Float64Array.of(1)),
    /Cannot apply RoPE with 1 frequency pairs to input \[1, 2, 3\]: expected \[B, T, H, 2\]/,
  );
});

Deno.test("Rope mscaleAllDim: softmax factor from mscale_all_dim, cos/sin times the ratio (HF)", () => {
  const base = { factor: 8, originalMaxPositionEmbeddings: 16, mscale: 1 };
  const m = (k: number) => 0.1 * k * Math.log(8) + 1;
  const plain = new Rope({ dim: 8, yarn: base });
  const both = new Rope({ dim: 8, yarn: { ...base, mscaleAllDim: 0.8 } });
  const same = new Rope({ dim: 8, yarn: { ...base, mscaleAllDim: 1 } });
  assertAllClose(plain.attentionFactor, m(1) ** 2);
  strictEqual(plain.magnitude, 1);
  assertAllClose(both.attentionFactor, m(0.8) ** 2);
  assertAllClose(both.magnitude, m(1) / m(0.8));
  strictEqual(same.magnitude, 1);
  const q = randn([1, 5, 2, 8], { rng: new Rng(3) });
  assertAllClose(
    both.forward(q, { offset: 2 }),
    mul(plain.forward(q, { offset: 2 }), m(1) / m(0.8)),
    {
      atol: 1e-6,
    },
  );
});
