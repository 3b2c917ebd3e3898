import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { KvCache, KvCacheLayer } from "../../lib/nn/attention.ts";
import { Mla, MLA_DEFAULTS, MLA_V3, type MlaConfig } from "../../lib/nn/mla.ts";
import { type YarnConfig, yarnMscale } from "../../lib/nn/rope.ts";
import { concat, noGrad, randn, reshape, Rng, slice, type Tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp } from "../_utils.ts";
import { checkFixtureCase, loadFixture } from "./_fixtures.ts";

/** The parts of `mla` that own a `weight`, by Hugging Face name. */
function mlaParts(mla: Mla): Record<string, { weight: Tensor } | null> {
  return {
    q_a_proj: mla.qAProj,
    q_a_layernorm: mla.qALayernorm,
    q_b_proj: mla.qBProj,
    q_proj: mla.qProj,
    kv_a_proj_with_mqa: mla.kvAProjWithMqa,
    kv_a_layernorm: mla.kvALayernorm,
    kv_b_proj: mla.kvBProj,
    o_proj: mla.oProj,
  };
}

/** Point each part's `weight` at the input of the same name (`x` is the hidden state). */
function setWeights(mla: Mla, inputs: Record<string, Tensor>): void {
  const parts = mlaParts(mla);
  for (const [name, t] of Object.entries(inputs)) {
    if (name === "x") continue;
    const part = parts[name];
    if (part === undefined || part === null) throw new Error(`No part '${name}' to load into`);
    part.weight = t;
  }
}

/** Run `x` through a fresh cache in chunks of the given sizes and join the outputs. */
function generate(mla: Mla, x: Tensor, chunks: readonly number[], absorb: boolean): Tensor {
  const cache = new KvCacheLayer();
  const outs: Tensor[] = [];
  let at = 0;
  for (const n of chunks) {
    outs.push(mla.forward(slice(x, 1, at, at + n), { cache, absorb }));
    at += n;
  }
  strictEqual(cache.length, x.shape[1]);
  cache.dispose();
  return concat(outs, 1);
}

// A small MLA with every size distinct, so a swapped split or transpose cannot pass.
const SMALL: MlaConfig = {
  dModel: 16,
  heads: 3,
  kvLatentRank: 8,
  queryLatentRank: 12,
  ropeHeadDim: 4,
  nopeHeadDim: 6,
  vHeadDim: 5,
};

const fixture = loadFixture("mla");

interface FixtureYarn {
  factor: number;
  original_max_position_embeddings: number;
  beta_fast: number;
  beta_slow: number;
  mscale: number;
}

function configOf(c: Record<string, unknown>): MlaConfig {
  const y = c.yarn as FixtureYarn | null;
  const yarn: YarnConfig | null = y === null ? null : {
    factor: y.factor,
    originalMaxPositionEmbeddings: y.original_max_position_embeddings,
    betaFast: y.beta_fast,
    betaSlow: y.beta_slow,
    mscale: y.mscale,
  };
  return {
    dModel: c.d_model as number,
    heads: c.heads as number,
    kvLatentRank: c.kv_lora_rank as number,
    queryLatentRank: c.q_lora_rank as number,
    ropeHeadDim: c.qk_rope_head_dim as number,
    nopeHeadDim: c.qk_nope_head_dim as number,
    vHeadDim: c.v_head_dim as number,
    rope: { theta: c.theta as number, yarn },
  };
}

for (const c of fixture.cases) {
  for (const absorb of [false, true]) {
    const path = absorb ? "absorbed" : "naive";
    Deno.test(`Mla.forward() (${path}) matches V3's MLA in PyTorch with grads (${c.name})`, () => {
      const mla = new Mla(configOf(c), new Rng(0));
      checkFixtureCase(fixture, c, (inputs) => {
        setWeights(mla, inputs);
        return mla.forward(inputs.x, { absorb });
      });
    });
  }
}

for (const absorb of [false, true]) {
  const path = absorb ? "absorbed" : "naive";
  Deno.test(`gradcheck: Mla.forward (${path}) w.r.t. x and every weight`, () => {
    const mla = new Mla({
      dModel: 4,
      heads: 2,
      kvLatentRank: 3,
      queryLatentRank: 5,
      ropeHeadDim: 2,
      nopeHeadDim: 2,
      vHeadDim: 3,
      rope: { theta: 100 },
    }, new Rng(2));
    const names = ["x", ...[...mla.parameters().keys()].map((n) => n.replace(/\.weight$/, ""))];
    const shapes = [[1, 3, 4], ...[...mla.parameters().values()].map((t) => t.shape)];
    checkOp(shapes, (...inputs) => {
      const byName = Object.fromEntries(names.map((n, i) => [n, inputs[i]]));
      setWeights(mla, byName);
      return mla.forward(byName.x, { absorb });
    }, { transform: (v, i) => (names[i].endsWith("layernorm") ? 1 + 0.1 * v : v) });
  });
}

Deno.test("Mla.forward() naive and absorbed paths agree, with and without q compression", () => {
  for (const queryLatentRank of [12, 0]) {
    const rng = new Rng(queryLatentRank);
    const mla = new Mla({ ...SMALL, queryLatentRank, initStd: 0.3 }, rng);
    const x = randn([2, 7, 16], { rng });
    const naive = mla.forward(x);
    assertAllClose(mla.forward(x, { absorb: true }), naive, { atol: 1e-5, rtol: 1e-4 });
    const absorbing = new Mla({ ...SMALL, queryLatentRank, absorb: true }, new Rng(9));
    const plain = new Mla({ ...SMALL, queryLatentRank }, new Rng(9));
    assertAllClose(absorbing.forward(x), plain.forward(x), { atol: 1e-6 });
  }
});

for (const absorb of [false, true]) {
  const path = absorb ? "absorbed" : "naive";
  Deno.test(`Mla.forward() (${path}) with a latent KV cache equals the full naive pass`, () => {
    const rng = new Rng(4);
    const yarn: YarnConfig = { factor: 4, originalMaxPositionEmbeddings: 4 };
    for (const rope of [{}, { yarn }]) {
      const mla = new Mla({ ...SMALL, initStd: 0.3, rope }, rng);
      const x = randn([2, 6, 16], { rng });
      const full = mla.forward(x);
      const opts = { atol: 1e-5, rtol: 1e-4 };
      assertAllClose(generate(mla, x, [1, 1, 1, 1, 1, 1], absorb), full, opts);
      assertAllClose(generate(mla, x, [4, 2], absorb), full, opts);
    }
  });
}

Deno.test("KvCache.bytesPerToken() of MLA is measured: (d_c + d_h^R) · 4 per layer", () => {
  const rng = new Rng(6);
  for (const absorb of [false, true]) {
    const layers = [new Mla({ ...SMALL, absorb }, rng), new Mla({ ...SMALL, absorb }, rng)];
    const cache = new KvCache(2);
    noGrad(() => {
      for (const t of [3, 1, 1]) {
        let h = randn([2, t, 16], { rng });
        layers.forEach((mla, i) => (h = mla.forward(h, { cache: cache.layer(i) })));
      }
    });
    strictEqual(cache.length, 5);
    strictEqual(cache.bytesPerToken(), (8 + 4) * 4 * 2);
    deepStrictEqual([...cache.layer(0).entries.keys()], ["kv", "pe"]);
    deepStrictEqual(cache.layer(0).entries.get("kv")?.shape, [2, 5, 8]);
    deepStrictEqual(cache.layer(0).entries.get("pe")?.shape, [2, 5, 4]);
    cache.dispose();
  }
  // DeepSeek-V3 sizes: 576 elements per token per layer, vs 2 · 128 · 128 = 32768 for MHA.
  strictEqual(MLA_V3.kvLatentRank + MLA_V3.ropeHeadDim, 576);
});

Deno.test("Mla cache entries are c^KV after kv_a_layernorm and k^R after RoPE", () => {
  const rng = new Rng(8);
  const mla = new Mla({ ...SMALL, initStd: 0.3 }, rng);
  const x = randn([1, 3, 16], { rng });
  const cache = new KvCacheLayer();
  mla.forward(x, { cache });
  const kvA = mla.kvAProjWithMqa.forward(x);
  const cKv = mla.kvALayernorm.forward(slice(kvA, -1, 0, 8));
  const kR = reshape(mla.rope.forward(reshape(slice(kvA, -1, 8, 12), [1, 3, 1, 4])), [1, 3, 4]);
  assertAllClose(cache.entries.get("kv") ?? [], cKv, { atol: 1e-6 });
  assertAllClose(cache.entries.get("pe") ?? [], kR, { atol: 1e-6 });
});

Deno.test("Mla config: V3 defaults, HF names and shapes, softmax scale, clear errors", () => {
  const rng = new Rng(0);
  const mla = new Mla(SMALL, rng);
  deepStrictEqual(
    [...mla.parameters()].map(([name, t]) => `${name} [${t.shape.join(", ")}]`),
    [
      "q_a_proj.weight [12, 16]",
      "q_a_layernorm.weight [12]",
      "q_b_proj.weight [30, 12]",
      "kv_a_proj_with_mqa.weight [12, 16]",
      "kv_a_layernorm.weight [8]",
      "kv_b_proj.weight [33, 8]",
      "o_proj.weight [16, 15]",
    ],
  );
  const noQ = new Mla({ ...SMALL, queryLatentRank: 0 }, rng);
  deepStrictEqual([...noQ.parameters().keys()].slice(0, 2), [
    "q_proj.weight",
    "kv_a_proj_with_mqa.weight",
  ]);
  deepStrictEqual(noQ.parameters().get("q_proj.weight")?.shape, [30, 16]);
  assertAllClose(mla.softmaxScale, 1 / Math.sqrt(6 + 4), { atol: 1e-12 });
  const yarn = { factor: 40, originalMaxPositionEmbeddings: 4096 };
  const long = new Mla({ ...SMALL, rope: { yarn } }, rng);
  assertAllClose(long.softmaxScale, yarnMscale(40) ** 2 / Math.sqrt(10), { atol: 1e-12 });
  // MLA_DEFAULTS (what a run resolves): head widths follow d_h = dModel / heads = 8.
  deepStrictEqual(new Mla({ dModel: 16, heads: 2, kvLatentRank: 4 }, rng).config, {
    dModel: 16,
    heads: 2,
    kvLatentRank: 4,
    queryLatentRank: MLA_DEFAULTS.queryLatentRank,
    ropeHeadDim: 4, // d_h / 2
    nopeHeadDim: 8,
    vHeadDim: 8,
    rope: {},
    normEps: 1e-6,
    initStd: 0.02,
    absorb: false,
  });
  throws(() => new Mla({ ...SMALL, ropeHeadDim: 3 }, rng), /ropeHeadDim 3: RoPE needs an even/);
  throws(() => new Mla({ ...SMALL, kvLatentRank: 0 }, rng), /kvLatentRank 0: expected a positive/);
  throws(() => new Mla({ ...SMALL, queryLatentRank: -1 }, rng), /queryLatentRank -1/);
  throws(() => mla.forward(randn([2, 16], { rng })), /Cannot apply MLA to input \[2, 16\]/);
  const shared = new KvCacheLayer();
  shared.append({ k: randn([1, 1, 2], { rng }), v: randn([1, 1, 2], { rng }) });
  throws(
    () => mla.forward(randn([1, 1, 16], { rng }), { cache: shared }),
    /Cannot append entries \[kv, pe\] to a cache layer holding \[k, v\]/,
  );
});
