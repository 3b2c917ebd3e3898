import { deepStrictEqual, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  brown,
  canonicalJson,
  ConfigError,
  dense,
  experiment,
  type ExperimentOptions,
  gqa,
  mla,
  model,
  moe,
  mtp,
  runId,
  type RunSpec,
  sha256Hex,
  synthetic,
  validateExperiment,
  validateModelConfig,
  validateRunSpec,
} from "../../lib/dsl/mod.ts";

const ENV = { codeVersion: "v1", backend: "cpu" } as const;
const base = model({
  vocab: "bytes",
  dModel: 64,
  layers: 2,
  heads: 4,
  seqLen: 32,
  ffn: moe({ routedExperts: 8, sharedExperts: 1, topK: 2, expertHidden: 32, balance: "aux-free" }),
});
const SPEC: ExperimentOptions = {
  name: "attention",
  base,
  vary: {
    mha: {},
    gqa: { attention: gqa({ kvHeads: 2 }) },
    mla: { attention: mla({ kvLatentRank: 16, queryLatentRank: 24, ropeHeadDim: 8 }) },
  },
  data: brown(),
  train: {
    tokens: 256_000,
    batch: 8,
    lr: 3e-3,
    warmup: 50,
    budgets: { small: { tokens: 25_600, warmup: 5 } },
  },
  eval: ["valLoss", "kvBytesPerToken", "decodeTokensPerSec"],
  seeds: [0, 1, 2],
};
const exp = experiment(SPEC);

Deno.test("expand() gives variants × seeds, variant-major, in declaration order", () => {
  const runs = exp.expand({ budget: "full", ...ENV });
  deepStrictEqual(runs.length, 9);
  deepStrictEqual(
    runs.map((r) => `${r.variant}/${r.seed}`),
    ["mha/0", "mha/1", "mha/2", "gqa/0", "gqa/1", "gqa/2", "mla/0", "mla/1", "mla/2"],
  );
  deepStrictEqual(runs[3].model.attention, { kind: "gqa", kvHeads: 2 });
  deepStrictEqual(runs[0].model, base);
  ok(runs.every((r) => r.experiment === "attention" && Object.isFrozen(r)));
  deepStrictEqual(exp.variants, ["mha", "gqa", "mla"]);
});

Deno.test("expand({ only }) keeps declaration order and rejects unknown names", () => {
  const runs = exp.expand({ budget: "full", only: ["mla", "mha"], ...ENV });
  deepStrictEqual(runs.map((r) => r.variant), ["mha", "mha", "mha", "mla", "mla", "mla"]);
  throws(() => exp.expand({ budget: "full", only: ["mlx"], ...ENV }), {
    message: 'Cannot set expand.only[0] to "mlx" (did you mean "mla"?): expected one of "mha", ' +
      '"gqa", "mla"',
  });
});

Deno.test("expand() applies budgets: small overrides, full is the spec", () => {
  const [small] = exp.expand({ budget: "small", ...ENV });
  const [full] = exp.expand({ budget: "full", ...ENV });
  deepStrictEqual([small.train.tokens, small.train.steps, small.train.warmup], [25_600, 100, 5]);
  deepStrictEqual([full.train.tokens, full.train.steps, full.train.warmup], [256_000, 1000, 50]);
  deepStrictEqual([small.budget, full.budget], ["small", "full"]);
  notDeepStrictEqual(small.id, full.id);
  // without budgets, small is a tenth of the step counts
  const plain = experiment({ ...SPEC, train: { tokens: 256_000, batch: 8, lr: 3e-3, warmup: 50 } });
  const [p] = plain.expand({ budget: "small", ...ENV });
  deepStrictEqual([p.train.tokens, p.train.warmup, p.train.evalEvery], [25_600, 5, 10]);
});

Deno.test("variant train overrides win over the budget", () => {
  const e = experiment({ ...SPEC, vary: { slow: { train: { lr: 1e-3, warmup: 2 } } } });
  const [r] = e.expand({ budget: "small", ...ENV });
  deepStrictEqual([r.train.lr, r.train.warmup, r.train.tokens], [1e-3, 2, 25_600]);
});

Deno.test("run ids are stable and change with everything that changes the numbers", () => {
  const a = exp.expand({ budget: "full", ...ENV });
  const b = experiment(SPEC).expand({ budget: "full", ...ENV });
  deepStrictEqual(a.map((r) => r.id), b.map((r) => r.id));
  ok(a.every((r) => /^[0-9a-f]{64}$/.test(r.id) && r.id === runId(r)));
  deepStrictEqual(new Set(a.map((r) => r.id)).size, 9); // seeds and variants differ
  const id = a[0].id;
  const other = (o: Partial<ExperimentOptions>): string =>
    experiment({ ...SPEC, ...o }).expand({ budget: "full", ...ENV })[0].id;
  notDeepStrictEqual(exp.expand({ budget: "full", ...ENV, codeVersion: "v2" })[0].id, id);
  notDeepStrictEqual(exp.expand({ budget: "full", ...ENV, backend: "webgpu" })[0].id, id);
  notDeepStrictEqual(exp.expand({ budget: "full", ...ENV, dataHash: "abc" })[0].id, id);
  notDeepStrictEqual(other({ vary: { mha: { ffn: { gamma: 0.002 } } } }), id); // nested field
  notDeepStrictEqual(other({ train: { ...SPEC.train, lr: 1e-3 } }), id);
  notDeepStrictEqual(other({ data: brown({ valEvery: 20 }) }), id);
  // names and the eval list do not change what is computed
  deepStrictEqual(other({ name: "renamed", eval: ["valLoss"] }), id);
  deepStrictEqual(other({ vary: { baseline: {} } }), id);
});

Deno.test("deep merge: same kind merges, other kind replaces, null removes", () => {
  const b = model({
    vocab: "bytes",
    dModel: 64,
    layers: 2,
    heads: 4,
    seqLen: 32,
    attention: mla({ kvLatentRank: 16, queryLatentRank: 24 }),
    ffn: moe({ routedExperts: 8, topK: 2, balance: "aux-loss" }),
    mtp: mtp({ depth: 2 }),
  });
  const e = experiment({
    name: "merge",
    base: b,
    vary: {
      rank: { attention: mla({ kvLatentRank: 32 }) },
      topk: { ffn: { topK: 4 } },
      dense: { ffn: dense() },
      nomtp: { mtp: null },
      wide: { dModel: 128 },
    },
    train: { tokens: 100_000, batch: 4, lr: 1e-3 },
  });
  const m = e.models;
  deepStrictEqual(m.rank.attention, { ...b.attention, kvLatentRank: 32 });
  // balance "aux-loss" kept; the default expert width re-derives: round(171 / (4 + 1))
  deepStrictEqual(m.topk.ffn, { ...b.ffn, topK: 4, expertHidden: 34 });
  deepStrictEqual(m.dense.ffn, { kind: "dense", hidden: 171 });
  deepStrictEqual([m.nomtp.mtp, m.rank.mtp], [null, { depth: 2, lambda: 0.3 }]);
  // defaults derived from dModel follow the variant: d_h, expert width, dense width
  deepStrictEqual(m.wide.attention.kind === "mla" && m.wide.attention.nopeHeadDim, 32);
  deepStrictEqual(m.wide.ffn.kind === "moe" && m.wide.ffn.denseHidden, 341);
  deepStrictEqual(b.ffn.kind === "moe" && b.ffn.denseHidden, 171);
});

Deno.test("a RunSpec survives a JSON round trip and validates back to the same config", () => {
  for (const run of exp.expand({ budget: "small", ...ENV, dataHash: "feed" })) {
    const json = JSON.parse(JSON.stringify(run));
    deepStrictEqual(validateModelConfig(json.model), run.model);
    deepStrictEqual(validateRunSpec(json), run);
  }
  const [run] = exp.expand({ budget: "full", ...ENV });
  const tampered = JSON.parse(JSON.stringify(run)) as RunSpec;
  (tampered.model as { seqLen: number }).seqLen = 64;
  throws(() => validateRunSpec(tampered), (e: unknown) => e instanceof ConfigError);
});

Deno.test("an Experiment survives a JSON round trip with the same run ids", () => {
  const wide = experiment({ ...SPEC, vary: { ...SPEC.vary, wide: { dModel: 128 } } });
  const back = validateExperiment(JSON.parse(JSON.stringify(wide)));
  deepStrictEqual(
    back.expand({ budget: "small", ...ENV }).map((r) => r.id),
    wide.expand({ budget: "small", ...ENV }).map((r) => r.id),
  );
});

Deno.test("sha256Hex() matches node:crypto and canonicalJson() sorts keys", () => {
  for (const text of ["", "abc", "a".repeat(55), "b".repeat(56), "ü✓".repeat(100)]) {
    deepStrictEqual(sha256Hex(text), createHash("sha256").update(text).digest("hex"));
  }
  deepStrictEqual(
    canonicalJson({ b: 1, a: { d: [2, { z: 0, y: 1 }], c: null } }),
    '{"a":{"c":null,"d":[2,{"y":1,"z":0}]},"b":1}',
  );
  throws(() => canonicalJson({ a: NaN }), /Cannot hash NaN at \$\.a/);
});

Deno.test("experiment() is typed: a wrong field is a compile error", () => {
  throws(
    // @ts-expect-error misspelt model field in a variant
    () => experiment({ ...SPEC, vary: { a: { atention: gqa({ kvHeads: 2 }) } } }),
    ConfigError,
  );
  // @ts-expect-error unknown metric
  throws(() => experiment({ ...SPEC, eval: ["valLos"] }), ConfigError);
  // @ts-expect-error bpe size is a number
  throws(() => brown({ tokenizer: { bpe: "4096" } }), ConfigError);
  // @ts-expect-error budget is "small" | "full"
  throws(() => exp.expand({ budget: "tiny", ...ENV }), ConfigError);
});

/** Malformed experiments and the exact message each one gets. */
const MALFORMED: [string, Partial<ExperimentOptions> | Record<string, unknown>, string][] = [
  [
    "empty vary",
    { vary: {} },
    "Cannot set vary to {}: expected at least one variant, e.g. { base: {} }",
  ],
  [
    "duplicate seeds",
    { seeds: [0, 1, 0] },
    "Cannot set seeds[2] to 0: expected a seed not already listed (seeds[0] is 0)",
  ],
  ["negative seed", { seeds: [-1] }, "Cannot set seeds[0] to -1: expected an integer >= 0"],
  [
    "lr <= 0",
    { train: { tokens: 256_000, batch: 8, lr: 0 } },
    "Cannot set train.lr to 0: expected a finite number > 0",
  ],
  [
    "warmup > total steps",
    { train: { tokens: 256_000, batch: 8, lr: 1e-3, warmup: 1001 } },
    'Cannot set train.warmup to 1001: expected at most the 1000 optimizer steps of variant "mha" ' +
    'at budget "full" (tokens / (batch · accumulate · seqLen))',
  ],
  [
    "warmup > steps only in the small budget",
    {
      train: {
        tokens: 256_000,
        batch: 8,
        lr: 1e-3,
        warmup: 200,
        budgets: { small: { tokens: 25_600 } },
      },
    },
    'Cannot set train.warmup to 200: expected at most the 100 optimizer steps of variant "mha" ' +
    'at budget "small" (tokens / (batch · accumulate · seqLen))',
  ],
  [
    "fewer tokens than one step",
    { train: { tokens: 100, batch: 8, lr: 1e-3 } },
    "Cannot set train.tokens to 100: expected at least batch · accumulate · seqLen = 256 of " +
    'variant "mha" at budget "full"',
  ],
  [
    "minLr above lr",
    { train: { tokens: 256_000, batch: 8, lr: 1e-3, minLr: 1e-2 } },
    "Cannot set train.minLr to 0.01: expected a number from 0 to lr 0.001",
  ],
  [
    "misspelt train key",
    { train: { tokens: 256_000, batch: 8, lr: 1e-3, warmpu: 3 } },
    'Cannot set unknown key train.warmpu to 3 (did you mean "warmup"?): expected a key among ' +
    '"tokens", "batch", "lr", "minLr", "warmup", "weightDecay", "gradClip", "accumulate", ' +
    '"evalEvery", "checkpointEvery", "mtpLambdaSchedule", "budgets"',
  ],
  [
    "unknown budget",
    { train: { tokens: 256_000, batch: 8, lr: 1e-3, budgets: { tiny: {} } } },
    'Cannot set unknown key train.budgets.tiny to {}: expected a key among "small", "full"',
  ],
  [
    "variant with a misspelt model key",
    { vary: { a: { dmodel: 32 } } },
    'Cannot set unknown key vary.a.dmodel to 32 (did you mean "dModel"?): expected a key among ' +
    '"vocab", "tokenizer", "dModel", "layers", "heads", "seqLen", "attention", "ffn", "mtp", ' +
    '"fp8", "ropeTheta", "yarn", "normEps", "initStd", "train"',
  ],
  [
    "variant breaking a cross-field rule",
    { vary: { h3: { heads: 8, attention: gqa({ kvHeads: 3 }) } } },
    "Cannot set vary.h3.attention.kvHeads to 3: expected a divisor of heads 8",
  ],
  [
    "variant field meant for another kind",
    { vary: { a: { attention: { kvLatentRank: 8 } } } },
    'Cannot set unknown key vary.a.attention.kvLatentRank to 8: expected a key among "kind"',
  ],
  [
    "variant with a bad train override",
    { vary: { a: { train: { lr: -1 } } } },
    "Cannot set vary.a.train.lr to -1: expected a finite number > 0",
  ],
  [
    "variant name that cannot be a folder",
    { vary: { "a/b": {} } },
    'Cannot set vary to "a/b": expected variant names: a name of letters, digits, ., _ and - ' +
    "that starts with a letter",
  ],
  [
    "unknown eval metric",
    { eval: ["valLoss", "bitsPerBite"] },
    'Cannot set eval[1] to "bitsPerBite" (did you mean "bitsPerByte"?): expected one of ' +
    '"valLoss", "bitsPerByte", "kvBytesPerToken", "decodeTokensPerSec", "trainTokensPerSec", ' +
    '"maxVio", "mtpAcceptance"',
  ],
  [
    "duplicate eval metric",
    { eval: ["valLoss", "valLoss"] },
    'Cannot set eval[1] to "valLoss": expected a metric not already listed at eval[0]',
  ],
  [
    "data tokenizer that does not match the model",
    { data: brown({ tokenizer: { bpe: 4096 } }) },
    'Cannot set base.vocab to 256: expected 4096 with tokenizer "bpe", to match the data\'s ' +
    "tokenizer",
  ],
  [
    "experiment name with a space",
    { name: "my run" },
    'Cannot set name to "my run": expected a name of letters, digits, ., _ and - that starts ' +
    "with a letter",
  ],
  [
    "unknown experiment key",
    { seed: [0] },
    'Cannot set unknown key seed to [0] (did you mean "seeds"?): expected a key among "name", ' +
    '"base", "vary", "data", "train", "eval", "seeds"',
  ],
  [
    "bad MTP λ schedule",
    {
      train: {
        tokens: 256_000,
        batch: 8,
        lr: 1e-3,
        mtpLambdaSchedule: [{ from: 0.5, lambda: 0.1 }],
      },
    },
    "Cannot set train.mtpLambdaSchedule[0].from to 0.5: expected 0 (the first step starts training)",
  ],
];

for (const [what, change, message] of MALFORMED) {
  Deno.test(`validateExperiment() rejects ${what}`, () => {
    for (
      const make of [
        () => validateExperiment({ ...SPEC, ...change }),
        () => experiment({ ...SPEC, ...change } as ExperimentOptions),
      ]
    ) {
      throws(make, (e: unknown) => {
        ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
        deepStrictEqual(e.message, message);
        return true;
      });
    }
  });
}

Deno.test("synthetic() data specs are byte-tokenized and checked", () => {
  const e = experiment({ ...SPEC, data: synthetic({ task: "copy", minLength: 2 }) });
  deepStrictEqual(e.data, {
    kind: "synthetic",
    task: "copy",
    train: 10000,
    val: 1000,
    seed: 0,
    minLength: 2,
    maxLength: 8,
    alphabet: "abcdefghijklmnopqrstuvwxyz",
  });
  throws(() => synthetic({ task: "copy", minLength: 5, maxLength: 4 }), {
    message: "Cannot set data.maxLength to 4: expected an integer >= minLength 5",
  });
  throws(() => synthetic({ task: "arithmetic", ops: ["/" as "+"] }), {
    message: 'Cannot set data.ops[0] to "/": expected one of "+", "-", "*"',
  });
});
