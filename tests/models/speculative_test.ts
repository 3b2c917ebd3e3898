/**
 * Speculative sampling (lib/models/generate.ts; Leviathan et al., arXiv:2211.17192 §2.3) draws
 * from the main model's distribution. Over `N` seeds on a 3-token vocabulary, the empirical
 * distribution of `speculativeGenerate`'s first tokens is compared with the exact one, computed
 * here from full forwards of the main model and of MTP module 1 (no KV cache, no sampling code
 * of the library besides `samplingDistribution`, which generate_test.ts pins down).
 *
 * Bound: for `N` samples of a distribution `p` over `K` outcomes, the empirical `p̂` satisfies
 * `P(TV(p̂, p) ≥ ε) ≤ 2^K exp(−2 N ε²)` (Bretagnolle–Huber–Carol; `TV = ½‖p̂ − p‖₁`), so
 * `ε = √((K ln 2 + ln(1/δ)) / (2N))` fails a correct sampler with probability at most `δ`; a
 * mean of `N` Bernoulli draws is within `√(ln(2/δ) / (2N))` of its expectation with probability
 * `1 − δ` (Hoeffding). The seeds are fixed, so each test is deterministic; `δ` says how unlikely a
 * false alarm would be with other seeds.
 */
import { ok } from "node:assert/strict";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { generate, samplingDistribution, speculativeGenerate } from "../../lib/models/generate.ts";
import { noGrad, Rng, slice, tensor } from "../../lib/tensor/mod.ts";

const V = 3; // vocabulary
const PROMPT = [0, 1, 2];
const N = 2000; // seeds per estimate
const DELTA = 1e-4; // false-alarm probability of each bound
const SAMPLE = { temperature: 1 };

/**
 * A tiny model whose draft and main distributions differ clearly: a large init spreads the
 * logits, and the untrained MTP module 1 puts its mass elsewhere than the main model (at this
 * seed `Σ p(t1) TV(p(·|t1), q(·|t1)) = 0.64`, checked below).
 */
function tinyModel(): Decoder {
  const config = tinyConfig({
    vocab: V,
    dModel: 16,
    layers: 1,
    initStd: 0.5,
    mtp: { depth: 1, lambda: 0.3 },
  });
  return new Decoder(config, new Rng(2));
}

/** `ε` with `P(TV(p̂, p) ≥ ε) ≤ δ` for `n` samples over `k` outcomes (see the header). */
function tvBound(k: number, n: number): number {
  return Math.sqrt((k * Math.LN2 + Math.log(1 / DELTA)) / (2 * n));
}

function totalVariation(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.abs(p[i] - q[i]);
  return s / 2;
}

/** Sampling distributions after `PROMPT` and each continuation, from full forwards. */
interface Exact {
  /** Main model `p(t1)`. */
  p1: Float64Array;
  /** Main model `p(t2 | t1)`, indexed `[t1][t2]`. */
  p2: Float64Array[];
  /** Main model `p(t3 | t1, t2)`, indexed `[t1 V + t2][t3]`. */
  p3: Float64Array[];
  /** Draft `q(d | t1)` of MTP module 1 after `PROMPT + t1`, indexed `[t1][d]`. */
  q: Float64Array[];
}

function exactDistributions(m: Decoder): Exact {
  const P = PROMPT.length;
  const row = (host: Float32Array, s: number, pos: number, len: number) =>
    samplingDistribution(host.subarray((s * len + pos) * V, (s * len + pos + 1) * V), SAMPLE);
  return noGrad(() => {
    // Main model over PROMPT + [t1, t2] for all 9 pairs: [9, P + 2, V].
    const seqs: number[][] = [];
    for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) seqs.push([...PROMPT, a, b]);
    const main = m.forward(tensor(seqs, { dtype: "i32" })).dataSync() as Float32Array;
    const p1 = row(main, 0, P - 1, P + 2);
    const p2 = Array.from({ length: V }, (_, a) => row(main, a * V, P, P + 2));
    const p3 = seqs.map((_, s) => row(main, s, P + 1, P + 2));
    // The draft after PROMPT + t1: MTP module 1 on h^0 at the prompt's positions and the
    // embeddings of the tokens after them (PROMPT[1:], t1), eqs. (21)–(23) of arXiv:2412.19437.
    const ids = Array.from({ length: V }, (_, a) => [...PROMPT, a]);
    const h0 = m.trunk(m.embed(tensor(ids, { dtype: "i32" }))).h; // [V, P + 1, d]
    const next = m.embed(tensor(ids.map((s) => s.slice(1)), { dtype: "i32" })); // [V, P, d]
    const hk = m.mtp[0].forward(slice(h0, 1, 0, P), next).h; // [V, P, d]
    const draft = m.mtp[0].logits(hk, m.lmHead.weight).dataSync() as Float32Array; // [V, P, V]
    const q = ids.map((_, a) => row(draft, a, P - 1, P));
    return { p1, p2, p3, q };
  });
}

Deno.test("speculativeGenerate() samples the main model's joint distribution of the first 3 tokens", () => {
  const model = tinyModel();
  const { p1, p2, p3 } = exactDistributions(model);
  const cell = (a: number, b: number, c: number) => (a * V + b) * V + c;
  const exact = new Float64Array(V ** 3); // p(t1) p(t2 | t1) p(t3 | t1, t2)
  for (let a = 0; a < V; a++) {
    for (let b = 0; b < V; b++) {
      for (let c = 0; c < V; c++) exact[cell(a, b, c)] = p1[a] * p2[a][b] * p3[a * V + b][c];
    }
  }
  // t1 from the prefill; t2 accepted draft or residual; t3 bonus token or the next round.
  const spec = new Float64Array(V ** 3), plain = new Float64Array(V ** 3);
  for (let seed = 0; seed < N; seed++) {
    const options = { ...SAMPLE, maxNewTokens: 3, seed };
    const [a, b, c] = speculativeGenerate(model, PROMPT, options).tokens;
    spec[cell(a, b, c)] += 1 / N;
    const [x, y, z] = generate(model, PROMPT, options).tokens;
    plain[cell(x, y, z)] += 1 / N;
  }
  const eps = tvBound(V ** 3, N); // 0.084
  const tvSpec = totalVariation(spec, exact), tvPlain = totalVariation(plain, exact);
  ok(tvPlain < eps, `generate(): TV to the exact joint ${tvPlain} ≥ ${eps}`);
  ok(tvSpec < eps, `speculativeGenerate(): TV to the exact joint ${tvSpec} ≥ ${eps}`);
  const tvBoth = totalVariation(spec, plain);
  ok(tvBoth < 2 * eps, `TV between generate() and speculativeGenerate() ${tvBoth} ≥ ${2 * eps}`);
});

Deno.test("speculativeGenerate() accepts a draft with probability min(1, p/q), else resamples from norm(max(0, p − q))", () => {
  const model = tinyModel();
  const { p1, p2, q } = exactDistributions(model);
  // The draft must differ from the main model, or accept and reject would be indistinguishable.
  const divergence = p1.reduce((s, pa, a) => s + pa * totalVariation(p2[a], q[a]), 0);
  ok(divergence > 0.5, `draft and main model too alike: E TV(p, q) = ${divergence}`);
  // With 2 new tokens there is exactly one draft, after t1. Outcome (t1, t2, accepted):
  // accepted with t2 = d: p(t1) q(d) min(1, p/q) = p(t1) min(p, q)(d);
  // rejected with t2 = x: p(t1) (1 − Σ min(p, q)) norm(max(0, p − q))(x) = p(t1) max(0, p − q)(x).
  const cell = (a: number, b: number, accepted: number) => (a * V + b) * 2 + accepted;
  const exact = new Float64Array(V * V * 2);
  let alpha = 0; // exact acceptance probability
  for (let a = 0; a < V; a++) {
    for (let b = 0; b < V; b++) {
      const both = Math.min(p2[a][b], q[a][b]);
      exact[cell(a, b, 1)] = p1[a] * both;
      exact[cell(a, b, 0)] = p1[a] * Math.max(0, p2[a][b] - q[a][b]);
      alpha += p1[a] * both;
    }
  }
  const seen = new Float64Array(V * V * 2);
  let acceptance = 0;
  for (let seed = 0; seed < N; seed++) {
    const r = speculativeGenerate(model, PROMPT, { ...SAMPLE, maxNewTokens: 2, seed });
    ok(r.drafted === 1 && r.tokens.length === 2, `seed ${seed}: ${r.drafted} drafts`);
    seen[cell(r.tokens[0], r.tokens[1], r.accepted)] += 1 / N;
    acceptance += r.acceptanceRate / N;
  }
  const eps = tvBound(V * V * 2, N); // 0.074
  const tv = totalVariation(seen, exact);
  ok(tv < eps, `TV of (t1, t2, accepted) to the exact distribution ${tv} ≥ ${eps}`);
  const hoeffding = Math.sqrt(Math.log(2 / DELTA) / (2 * N)); // 0.050
  ok(
    Math.abs(acceptance - alpha) < hoeffding,
    `acceptance rate ${acceptance} vs exact E Σ min(p, q) = ${alpha} (bound ${hoeffding})`,
  );
});
