import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { ConfigError } from "../../lib/dsl/errors.ts";
import {
  dense,
  fp8,
  gqa,
  mha,
  mla,
  model,
  type ModelOptions,
  moe,
  type MoeSpec,
  mqa,
  mtp,
  validateModelConfig,
} from "../../lib/dsl/model.ts";

const BASE: ModelOptions = { vocab: "bytes", dModel: 128, layers: 4, heads: 4, seqLen: 128 };

Deno.test("model() resolves every default and freezes the config", () => {
  const m = model({
    ...BASE,
    attention: mla({ kvLatentRank: 32, queryLatentRank: 48 }),
    ffn: moe({ routedExperts: 8, topK: 2, balance: "aux-loss", groups: 4, topkGroup: 2 }),
    mtp: mtp(),
    fp8: fp8({ granularity: "tensor", promotion: null }),
  });
  deepStrictEqual(m, {
    vocab: 256,
    tokenizer: "bytes",
    dModel: 128,
    layers: 4,
    heads: 4,
    seqLen: 128,
    attention: {
      kind: "mla",
      kvLatentRank: 32,
      queryLatentRank: 48,
      ropeHeadDim: 16,
      nopeHeadDim: 32,
      vHeadDim: 32,
      absorb: false,
    },
    ffn: {
      kind: "moe",
      routedExperts: 8,
      sharedExperts: 1,
      topK: 2,
      expertHidden: 114, // round(341 / 3)
      score: "sigmoid",
      balance: "aux-loss",
      gamma: 0.001,
      alpha: 0.01,
      routeScale: 1,
      groups: 4,
      topkGroup: 2,
      firstDenseLayers: 0,
      denseHidden: 341,
    },
    mtp: { depth: 1, lambda: 0.3 },
    fp8: { granularity: "tensor", promotion: null, accumulatorBits: 14 },
    ropeTheta: 10000,
    yarn: null,
    normEps: 1e-6,
    initStd: 0.02,
  });
  ok(Object.isFrozen(m) && Object.isFrozen(m.attention) && Object.isFrozen(m.ffn));
  throws(() => {
    (m as { dModel: number }).dModel = 3;
  }, TypeError);
});

Deno.test("model() is idempotent: a resolved config resolves to itself", () => {
  const m = model({ ...BASE, attention: gqa({ kvHeads: 2 }), ffn: dense({ hidden: 300 }) });
  deepStrictEqual(model(m), m);
  deepStrictEqual(validateModelConfig(JSON.parse(JSON.stringify(m))), m);
  deepStrictEqual(model({ ...BASE, vocab: 4096 }).tokenizer, "bpe");
  deepStrictEqual([mha(), mqa()], [{ kind: "mha" }, { kind: "mqa" }]);
});

Deno.test("validateModelConfig() is strict, model() fills defaults", () => {
  throws(() => validateModelConfig(BASE), {
    message: 'Cannot leave model.tokenizer unset: expected one of "bytes", "bpe"',
  });
  deepStrictEqual(validateModelConfig(BASE, { defaults: true }), model(BASE));
});

Deno.test("builders are typed: a wrong field is a compile error", () => {
  // Each line would fail `deno check`; at runtime the same checks throw ConfigError.
  // @ts-expect-error gqa() needs kvHeads
  throws(() => gqa({}), ConfigError);
  // @ts-expect-error no such MLA field
  throws(() => mla({ kvLatentRank: 8, kvRank: 4 }), ConfigError);
  // @ts-expect-error unknown balance kind
  throws(() => moe({ routedExperts: 8, topK: 2, balance: "aux-freee" }), ConfigError);
  // @ts-expect-error granularity is "tensor" | "tile" | "block"
  throws(() => fp8({ granularity: "row" }), ConfigError);
  // @ts-expect-error misspelt model field
  throws(() => model({ ...BASE, dModle: 64 }), ConfigError);
  // @ts-expect-error vocab is "bytes" or a number
  throws(() => model({ ...BASE, vocab: "byte" }), ConfigError);
  // @ts-expect-error dense has no topK
  throws(() => dense({ topK: 2 }), ConfigError);
});

/** Malformed model configs and the exact message each one gets. */
const MALFORMED: [string, () => unknown, string][] = [
  [
    "misspelt key, with a suggestion",
    () => validateModelConfig({ ...model(BASE), seqlen: 5 }),
    'Cannot set unknown key model.seqlen to 5 (did you mean "seqLen"?): expected a key among ' +
    '"vocab", "tokenizer", "dModel", "layers", "heads", "seqLen", "attention", "ffn", "mtp", ' +
    '"fp8", "ropeTheta", "yarn", "normEps", "initStd"',
  ],
  [
    "unknown key inside a part",
    () => mla({ kvLatentRank: 8, ropeHeadDims: 4 } as never),
    'Cannot set unknown key model.attention.ropeHeadDims to 4 (did you mean "ropeHeadDim"?): ' +
    'expected a key among "kind", "kvLatentRank", "queryLatentRank", "ropeHeadDim", ' +
    '"nopeHeadDim", "vHeadDim", "absorb"',
  ],
  [
    "wrong type",
    () => model({ ...BASE, dModel: "128" as never }),
    'Cannot set model.dModel to "128": expected an integer >= 1',
  ],
  [
    "non-integer",
    () => model({ ...BASE, layers: 2.5 }),
    "Cannot set model.layers to 2.5: expected an integer >= 1",
  ],
  [
    "zero dim",
    () => model({ ...BASE, dModel: 0 }),
    "Cannot set model.dModel to 0: expected an integer >= 1",
  ],
  [
    "negative MLA rank",
    () => mla({ kvLatentRank: -1 }),
    "Cannot set model.attention.kvLatentRank to -1: expected an integer >= 1",
  ],
  [
    "seqLen <= 0",
    () => model({ ...BASE, seqLen: 0 }),
    "Cannot set model.seqLen to 0: expected an integer >= 1",
  ],
  [
    "heads not dividing dModel",
    () => model({ ...BASE, heads: 3 }),
    "Cannot set model.heads to 3: expected a divisor of dModel 128",
  ],
  [
    "gqa kvHeads not dividing heads",
    () => model({ ...BASE, attention: gqa({ kvHeads: 3 }) }),
    "Cannot set model.attention.kvHeads to 3: expected a divisor of heads 4",
  ],
  [
    "MLA latent wider than the keys and values",
    () => model({ ...BASE, attention: mla({ kvLatentRank: 257 }) }),
    "Cannot set model.attention.kvLatentRank to 257: expected at most heads · " +
    "(nopeHeadDim + vHeadDim) = 256, the width it compresses",
  ],
  [
    "MLA odd RoPE dims",
    () => mla({ kvLatentRank: 16, ropeHeadDim: 7 }),
    "Cannot set model.attention.ropeHeadDim to 7: expected an even integer >= 2",
  ],
  [
    "MLA query rank too wide",
    () => model({ ...BASE, attention: mla({ kvLatentRank: 16, queryLatentRank: 1000 }) }),
    "Cannot set model.attention.queryLatentRank to 1000: expected 0 or at most heads · " +
    "(nopeHeadDim + ropeHeadDim) = 192, the width it compresses",
  ],
  [
    "topK > routed experts",
    () => moe({ routedExperts: 4, topK: 5 }),
    "Cannot set model.ffn.topK to 5: expected an integer from 1 to routedExperts 4",
  ],
  [
    "routedExperts not divisible by groups",
    () => moe({ routedExperts: 8, topK: 2, groups: 3 }),
    "Cannot set model.ffn.groups to 3: expected a divisor of routedExperts 8",
  ],
  [
    "topkGroup > groups",
    () => moe({ routedExperts: 8, topK: 2, groups: 4, topkGroup: 5 }),
    "Cannot set model.ffn.topkGroup to 5: expected an integer from 1 to groups 4",
  ],
  [
    "topK beyond the experts reachable in topkGroup groups",
    () => moe({ routedExperts: 8, topK: 3, groups: 4, topkGroup: 1 }),
    "Cannot set model.ffn.topK to 3: expected at most topkGroup · routedExperts / groups = 2 " +
    "reachable experts",
  ],
  [
    "firstDenseLayers > layers",
    () => model({ ...BASE, ffn: moe({ routedExperts: 8, topK: 2, firstDenseLayers: 5 }) }),
    "Cannot set model.ffn.firstDenseLayers to 5: expected an integer from 0 to layers 4",
  ],
  [
    "unknown balance kind, with a suggestion",
    () => validateModelConfig({ ...model(BASE), ffn: { ...moeSpec(), balance: "auxfree" } }),
    'Cannot set model.ffn.balance to "auxfree" (did you mean "aux-free"?): expected one of ' +
    '"aux-free", "aux-loss", "none"',
  ],
  [
    "unknown attention kind",
    () => validateModelConfig({ ...model(BASE), attention: { kind: "mla2" } }),
    'Cannot set model.attention.kind to "mla2" (did you mean "mla"?): expected one of "mha", ' +
    '"gqa", "mqa", "mla"',
  ],
  [
    "byte vocab of the wrong size",
    () => model({ ...BASE, vocab: 300, tokenizer: "bytes" }),
    'Cannot set model.vocab to 300: expected 256 (or "bytes") with tokenizer "bytes"',
  ],
  [
    "BPE vocab below the byte alphabet",
    () => model({ ...BASE, vocab: 100 }),
    "Cannot set model.vocab to 100: expected an integer >= 256 and <= 1048576",
  ],
  [
    "MTP depth 0",
    () => mtp({ depth: 0 }),
    "Cannot set model.mtp.depth to 0: expected an integer >= 1",
  ],
  [
    "FP8 accumulator wider than FP32's mantissa",
    () => fp8({ accumulatorBits: 30 }),
    "Cannot set model.fp8.accumulatorBits to 30: expected an integer >= 1 and <= 23",
  ],
  [
    "FP8 promotion not an interval",
    () => fp8({ promotion: 0 }),
    "Cannot set model.fp8.promotion to 0: expected null (never promote) or an integer >= 1",
  ],
  [
    "FP8 never promoting with fine-grained scales",
    () => fp8({ granularity: "tile", promotion: null }),
    'Cannot set model.fp8.promotion to null: expected an interval that divides 128 with granularity "tile" (its scales change every 128 elements of K and are applied at promotion); null (never promote) needs granularity "tensor"',
  ],
  [
    "FP8 promotion across a change of block scale",
    () => fp8({ granularity: "block", promotion: 256 }),
    'Cannot set model.fp8.promotion to 256: expected an interval that divides 128 with granularity "block" (its scales change every 128 elements of K and are applied at promotion); null (never promote) needs granularity "tensor"',
  ],
  [
    "a part that is not an object",
    () => validateModelConfig({ ...model(BASE), ffn: "moe" }),
    'Cannot set model.ffn to "moe": expected an FFN part: dense() or moe()',
  ],
  [
    "not an object at all",
    () => validateModelConfig([1, 2]),
    "Cannot set model to [1,2]: expected a model config object",
  ],
  [
    "missing field in strict mode",
    () => validateModelConfig({ ...model(BASE), initStd: undefined }),
    "Cannot leave model.initStd unset: expected a finite number > 0",
  ],
  [
    "NaN",
    () => model({ ...BASE, ropeTheta: NaN }),
    "Cannot set model.ropeTheta to NaN: expected a finite number > 0",
  ],
];

function moeSpec(): object {
  return model({ ...BASE, ffn: moe({ routedExperts: 8, topK: 2 }) }).ffn;
}

for (const [what, make, message] of MALFORMED) {
  Deno.test(`validateModelConfig() rejects ${what}`, () => {
    throws(make, (e: unknown) => {
      ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
      deepStrictEqual(e.message, message);
      ok(message.includes(e.path));
      return true;
    });
  });
}

Deno.test("ConfigError carries path, value and allowed", () => {
  throws(() => model({ ...BASE, attention: gqa({ kvHeads: 3 }) }), (e: unknown) => {
    ok(e instanceof ConfigError);
    deepStrictEqual([e.path, e.value, e.allowed], [
      "model.attention.kvHeads",
      3,
      "a divisor of heads 4",
    ]);
    return true;
  });
});

Deno.test("validateModelConfig() reads a config.json saved with the old MoE keys routed/shared", () => {
  const m = model({ ...BASE, ffn: moe({ routedExperts: 8, topK: 2 }) });
  const { routedExperts, sharedExperts, ...rest } = m.ffn as MoeSpec;
  const saved = { ...m, ffn: { ...rest, routed: routedExperts, shared: sharedExperts } };
  deepStrictEqual(validateModelConfig(JSON.parse(JSON.stringify(saved))), m);
  throws(
    () => validateModelConfig({ ...m, ffn: { ...m.ffn, routed: 8 } }),
    /Cannot set model\.ffn\.routed to 8: expected "routedExperts" alone/,
  );
});

Deno.test("validateModelConfig() reads a config.json saved with the old GQA key groups", () => {
  const m = model({ ...BASE, attention: gqa({ kvHeads: 2 }) });
  deepStrictEqual(validateModelConfig({ ...m, attention: { kind: "gqa", groups: 2 } }), m);
});
