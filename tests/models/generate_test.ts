import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import {
  compareDecoding,
  generate,
  samplingDistribution,
  speculativeGenerate,
  type SpeculativeResult,
} from "../../lib/models/generate.ts";
import { argmax, Rng, tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose } from "../_utils.ts";
import { tinyMoe } from "../_fixtures.ts";

const MOE: ModelConfig["ffn"] = tinyMoe({ gamma: 0.001, routeScale: 2.5, groups: 2 });

const MLA: ModelConfig["attention"] = {
  kind: "mla",
  kvLatentRank: 6,
  queryLatentRank: 8,
  ropeHeadDim: 4,
};

const CONFIGS: [string, ModelConfig][] = [
  ["mha", tinyConfig({ mtp: { depth: 1, lambda: 0.3 } })],
  [
    "gqa+moe",
    tinyConfig({
      heads: 4,
      attention: { kind: "gqa", kvHeads: 2 },
      ffn: MOE,
      mtp: { depth: 1, lambda: 0.3 },
    }),
  ],
  [
    "mla absorbed",
    tinyConfig({ attention: { ...MLA, absorb: true }, mtp: { depth: 2, lambda: 0.3 } }),
  ],
  ["mla+moe", tinyConfig({ attention: MLA, ffn: MOE, mtp: { depth: 1, lambda: 0.3 } })],
];

/**
 * The counters of a speculative run agree with its tokens: the prefill gives one token and each
 * verification step one (rejected draft) or two (accepted draft and bonus), the last step
 * possibly past `maxNewTokens`; one main step per draft; `acceptanceRate = accepted / drafted`.
 */
function assertCounts(spec: SpeculativeResult, maxNewTokens: number, name: string): void {
  const produced = 1 + spec.drafted + spec.accepted;
  ok(
    produced === maxNewTokens || produced === maxNewTokens + 1,
    `${name}: 1 + ${spec.drafted} drafted + ${spec.accepted} accepted for ${maxNewTokens} tokens`,
  );
  strictEqual(spec.tokens.length, maxNewTokens, name);
  strictEqual(spec.mainSteps, spec.drafted, name);
  strictEqual(spec.acceptanceRate, spec.accepted / spec.drafted, name);
}

Deno.test("samplingDistribution(): greedy one-hot, temperature softmax, top-p nucleus", () => {
  deepStrictEqual(Array.from(samplingDistribution([0, 2, 2, 1])), [0, 1, 0, 0]); // first max
  const t2 = samplingDistribution([0, Math.log(4)], { temperature: 2 }); // softmax([0, ln 2])
  assertAllClose(t2, [1 / 3, 2 / 3]);
  const probs = [0.5, 0.3, 0.15, 0.05];
  const nucleus = samplingDistribution(probs.map(Math.log), { temperature: 1, topP: 0.75 });
  assertAllClose(nucleus, [0.5 / 0.8, 0.3 / 0.8, 0, 0]); // 0.5 + 0.3 ≥ 0.75
  throws(() => samplingDistribution([1], { temperature: -1 }), /temperature -1/);
  throws(() => samplingDistribution([1], { temperature: 1, topP: 0 }), /topP 0/);
});

Deno.test("generate() with the KV cache picks the argmax of the full forward at every step", () => {
  for (const [name, config] of CONFIGS) {
    const model = new Decoder(config, new Rng(11));
    const prompt = [3, 1, 4, 1];
    const { tokens } = generate(model, prompt, { maxNewTokens: 8 });
    strictEqual(tokens.length, 8, name);
    const all = [...prompt, ...tokens];
    const logits = model.forward(tensor([all], { dtype: "i32" })); // [1, P + 8, V]
    const best = Array.from(argmax(logits, -1).dataSync()).slice(prompt.length - 1, -1);
    deepStrictEqual(tokens, best, `${name}: cached greedy tokens vs full-forward argmax`);
  }
});

Deno.test("generate() and speculativeGenerate() of an FP8 model follow its FP8 forward's argmax at every step", () => {
  // A coarse accumulator (4 bits) makes FP8 logits differ from FP32 ones enough to change tokens.
  const fp8 = { granularity: "tile", promotion: 16, accumulatorBits: 4 } as const;
  for (const [name, config] of CONFIGS.filter(([n]) => n === "mha" || n === "gqa+moe")) {
    const model = new Decoder({ ...config, fp8 }, new Rng(11));
    const prompt = [3, 1, 4, 1];
    const { tokens } = generate(model, prompt, { maxNewTokens: 8 });
    const all = [...prompt, ...tokens];
    const logits = model.forward(tensor([all], { dtype: "i32" })); // in FP8: [1, P + 8, V]
    const best = Array.from(argmax(logits, -1).dataSync()).slice(prompt.length - 1, -1);
    deepStrictEqual(tokens, best, `${name}: cached greedy tokens vs full FP8 forward argmax`);
    deepStrictEqual(speculativeGenerate(model, prompt, { maxNewTokens: 8 }).tokens, tokens, name);
    // the same weights in FP32 decode differently: the test sees which precision ran
    const fp32 = new Decoder({ ...config, fp8: null }, new Rng(11));
    ok(generate(fp32, prompt, { maxNewTokens: 8 }).tokens.join() !== tokens.join(), name);
  }
});

Deno.test("generate() sampling is seeded: same seed, same tokens; tokens in the vocabulary", () => {
  const model = new Decoder(tinyConfig(), new Rng(12));
  const opts = { maxNewTokens: 12, temperature: 1.5, topP: 0.9, seed: 7 };
  const a = generate(model, [1, 2], opts).tokens;
  deepStrictEqual(generate(model, [1, 2], opts).tokens, a);
  ok(a.every((t) => Number.isInteger(t) && t >= 0 && t < 32));
  const b = generate(model, [1, 2], { ...opts, seed: 8 }).tokens;
  ok(a.join() !== b.join(), "another seed gives another sample");
  throws(() => generate(model, [], {}), /empty prompt/);
  throws(() => generate(model, [40], {}), /prompt token 40/);
});

Deno.test("speculativeGenerate() greedy equals generate() greedy; counts add up to the tokens", () => {
  for (const [name, config] of CONFIGS) {
    const model = new Decoder(config, new Rng(13));
    const plain = generate(model, [5, 9, 2], { maxNewTokens: 10 });
    const spec = speculativeGenerate(model, [5, 9, 2], { maxNewTokens: 10 });
    deepStrictEqual(spec.tokens, plain.tokens, name);
    assertCounts(spec, 10, name);
  }
});

Deno.test("speculativeGenerate() exercises accept and reject paths (small vocabulary)", () => {
  // With 3 tokens an untrained draft agrees often enough to hit both paths.
  const model = new Decoder(
    tinyConfig({ vocab: 3, attention: MLA, mtp: { depth: 1, lambda: 0.3 } }),
    new Rng(14),
  );
  const plain = generate(model, [0, 1, 2], { maxNewTokens: 30 });
  const spec = speculativeGenerate(model, [0, 1, 2], { maxNewTokens: 30 });
  deepStrictEqual(spec.tokens, plain.tokens);
  ok(
    spec.accepted > 0 && spec.accepted < spec.drafted,
    `accepted ${spec.accepted}/${spec.drafted}`,
  );
  ok(spec.mainSteps < 30, "accepted drafts save main-model steps");
});

Deno.test("speculativeGenerate() sampling is seeded and valid; without MTP it refuses", () => {
  const model = new Decoder(tinyConfig({ vocab: 5, mtp: { depth: 1, lambda: 0.3 } }), new Rng(15));
  const opts = { maxNewTokens: 20, temperature: 1, topP: 0.95, seed: 3 };
  const a = speculativeGenerate(model, [1, 2], opts);
  deepStrictEqual(speculativeGenerate(model, [1, 2], opts).tokens, a.tokens);
  strictEqual(a.tokens.length, 20);
  ok(a.tokens.every((t) => t >= 0 && t < 5));
  assertCounts(a, 20, "sampled");
  const noMtp = new Decoder(tinyConfig(), new Rng(0));
  throws(() => speculativeGenerate(noMtp, [1], {}), /without an MTP module/);
});

Deno.test("compareDecoding() reports both runs on the same greedy tokens", () => {
  const model = new Decoder(tinyConfig({ mtp: { depth: 1, lambda: 0.3 } }), new Rng(16));
  const { plain, speculative, speedup } = compareDecoding(model, [7, 7], { maxNewTokens: 6 });
  deepStrictEqual(speculative.tokens, plain.tokens);
  ok(speedup > 0 && Number.isFinite(speedup));
});
