import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  Attention,
  type AttentionConfig,
  causalAttention,
  KvCache,
  KvCacheLayer,
} from "../../lib/nn/attention.ts";
import { yarnMscale } from "../../lib/nn/rope.ts";
import {
  concat,
  noGrad,
  randn,
  Rng,
  slice,
  type Tensor,
  tensor,
  zeros,
} from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp } from "../_utils.ts";
import { checkFixtureCase, loadFixture } from "./_fixtures.ts";

/** Point each named part's `weight` at the tensor of the same name (`x` is the input). */
function setWeights(
  parts: Record<string, { weight: Tensor } | null>,
  inputs: Record<string, Tensor>,
): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (name === "x") continue;
    const part = parts[name];
    if (part === undefined || part === null) throw new Error(`No part '${name}' to load into`);
    part.weight = t;
  }
}

function attentionParts(attn: Attention): Record<string, { weight: Tensor }> {
  return { q_proj: attn.qProj, k_proj: attn.kProj, v_proj: attn.vProj, o_proj: attn.oProj };
}

/** Generate `x` token by token (or in chunks) through a fresh cache and stack the outputs. */
function generate(
  forward: (x: Tensor, cache: KvCacheLayer) => Tensor,
  x: Tensor,
  chunks: readonly number[],
): Tensor {
  const cache = new KvCacheLayer();
  const outs: Tensor[] = [];
  let at = 0;
  for (const n of chunks) {
    outs.push(forward(slice(x, 1, at, at + n), cache));
    at += n;
  }
  strictEqual(at, x.shape[1]);
  strictEqual(cache.length, x.shape[1]);
  cache.dispose();
  return concat(outs, 1);
}

const fixture = loadFixture("attention");

for (const c of fixture.cases) {
  Deno.test(`Attention.forward() matches PyTorch, forward and grads (${c.name})`, () => {
    const config: AttentionConfig = {
      dModel: c.d_model as number,
      heads: c.heads as number,
      kvHeads: c.kv_heads as number,
      headDim: c.head_dim as number,
      rope: { theta: c.theta as number },
    };
    const attn = new Attention(config, new Rng(0));
    checkFixtureCase(fixture, c, (inputs) => {
      setWeights(attentionParts(attn), inputs);
      return attn.forward(inputs.x);
    });
  });
}

const KINDS: [string, AttentionConfig, AttentionConfig][] = [ // kind, config, small config
  ["MHA", { dModel: 12, heads: 4, kvHeads: 4, headDim: 4 }, { dModel: 4, heads: 2, kvHeads: 2 }],
  ["GQA", { dModel: 12, heads: 4, kvHeads: 2, headDim: 4 }, { dModel: 4, heads: 4, kvHeads: 2 }],
  ["MQA", { dModel: 12, heads: 4, kvHeads: 1, headDim: 4 }, { dModel: 4, heads: 2, kvHeads: 1 }],
];

for (const [kind, config, small] of KINDS) {
  Deno.test(`gradcheck: Attention.forward (${kind}) w.r.t. x and all four weights`, () => {
    const attn = new Attention({ ...small, headDim: 2, rope: { theta: 100 } }, new Rng(1));
    const { heads, kvHeads } = attn.config;
    const shapes = [[2, 3, 4], [heads * 2, 4], [kvHeads * 2, 4], [kvHeads * 2, 4], [4, heads * 2]];
    checkOp(shapes, (x, q, k, v, o) => {
      setWeights(attentionParts(attn), { q_proj: q, k_proj: k, v_proj: v, o_proj: o });
      return attn.forward(x);
    });
  });

  Deno.test(`Attention.forward() with a KV cache equals the full pass (${kind})`, () => {
    const rng = new Rng(7);
    const attn = new Attention(config, rng);
    const x = randn([2, 6, config.dModel], { rng });
    const full = attn.forward(x);
    const step = (u: Tensor, cache: KvCacheLayer) => attn.forward(u, { cache });
    assertAllClose(generate(step, x, [1, 1, 1, 1, 1, 1]), full, { atol: 1e-5, message: "1 by 1" });
    assertAllClose(generate(step, x, [3, 1, 2]), full, { atol: 1e-5, message: "chunks 3, 1, 2" });
  });
}

Deno.test("KvCache.bytesPerToken() measures MHA 2 n_h d_h, GQA 2 n_g d_h, MQA 2 d_h (·4·L)", () => {
  const rng = new Rng(3);
  for (const [kind, config] of KINDS) {
    const layers = [new Attention(config, rng), new Attention(config, rng)];
    const cache = new KvCache(layers.length);
    noGrad(() => {
      for (const t of [4, 1, 1]) { // prefill 4 tokens, then decode 2
        let h = randn([3, t, config.dModel], { rng });
        layers.forEach((attn, i) => (h = attn.forward(h, { cache: cache.layer(i) })));
      }
    });
    strictEqual(cache.length, 6, kind);
    const kv = config.kvHeads ?? config.heads, dh = config.headDim ?? 0;
    strictEqual(cache.bytesPerToken(), 2 * kv * dh * layers.length * 4, kind);
    strictEqual(cache.bytesPerToken(), { MHA: 256, GQA: 128, MQA: 64 }[kind], kind);
    strictEqual(cache.layer(1).bytes(), 2 * kv * dh * 4 * 3 * 6, kind); // per layer: × B × S
    cache.dispose();
    strictEqual(cache.length, 0);
  }
});

Deno.test("KvCacheLayer.append() stores the new elements only, not a view's whole storage", () => {
  const layer = new KvCacheLayer();
  const big = zeros([1, 2, 10]);
  const [a, b] = [slice(big, 2, 0, 3), slice(big, 2, 3, 10)]; // views into a 20-element storage
  layer.append({ a, b });
  strictEqual(layer.bytes(), 2 * 10 * 4);
  layer.append({ a: zeros([1, 1, 3]), b: zeros([1, 1, 7]) });
  strictEqual(layer.bytes(), 3 * 10 * 4);
  strictEqual(layer.length, 3);
  throws(
    () => layer.append({ k: zeros([1, 1, 3]), v: zeros([1, 1, 7]) }),
    /Cannot append entries \[k, v\] to a cache layer holding \[a, b\]/,
  );
  throws(() => layer.append({ a: zeros([2, 1, 3]), b: zeros([2, 1, 7]) }), /batch and rank/);
  throws(() => new KvCache(1).bytesPerToken(), /empty KV cache/);
  throws(() => new KvCache(2).layer(2), /Cannot get layer 2 of a KV cache of 2 layers/);
});

Deno.test("KvCache gradients reach the current call's inputs but not earlier cached ones", () => {
  const rng = new Rng(5);
  const attn = new Attention({ dModel: 8, heads: 2 }, rng);
  const cache = new KvCache(1);
  const x0 = randn([1, 3, 8], { rng, requiresGrad: true });
  const x1 = randn([1, 1, 8], { rng, requiresGrad: true });
  attn.forward(x0, { cache: cache.layer(0) });
  const y = attn.forward(x1, { cache: cache.layer(0) });
  y.backward(tensor(new Array(8).fill(1), { shape: [1, 1, 8] }));
  strictEqual(x0.grad, null);
  strictEqual(x1.grad?.shape.join(), "1,1,8");
});

Deno.test("causalAttention() matches a naive loop, with broadcast key heads and S > T", () => {
  const rng = new Rng(11);
  const q = randn([2, 3, 2, 4], { rng }), k = randn([2, 1, 5, 4], { rng });
  const v = randn([2, 1, 5, 3], { rng });
  const y = causalAttention(q, k, v, { scale: 0.7 });
  deepStrictEqual(y.shape, [2, 3, 2, 3]);
  const [qd, kd, vd] = [q.dataSync(), k.dataSync(), v.dataSync()];
  const expected: number[] = [];
  for (let b = 0; b < 2; b++) {
    for (let h = 0; h < 3; h++) {
      for (let i = 0; i < 2; i++) {
        const seen = 5 - 2 + i + 1; // keys 0 .. S − T + i
        const s = Array.from({ length: seen }, (_, j) => {
          let dot = 0;
          for (let e = 0; e < 4; e++) {
            dot += qd[((b * 3 + h) * 2 + i) * 4 + e] * kd[(b * 5 + j) * 4 + e];
          }
          return dot * 0.7;
        });
        const m = Math.max(...s), w = s.map((z) => Math.exp(z - m));
        const z = w.reduce((acc, u) => acc + u, 0);
        for (let c = 0; c < 3; c++) {
          expected.push(w.reduce((acc, u, j) => acc + (u / z) * vd[(b * 5 + j) * 3 + c], 0));
        }
      }
    }
  }
  assertAllClose(y, expected, { atol: 1e-5 });
  throws(() => causalAttention(randn([3, 5], { rng }), k, v), /Cannot attend with q \[3, 5\]/);
  throws(
    () => causalAttention(randn([4, 2], { rng }), randn([3, 2], { rng }), randn([3, 2], { rng })),
    /Cannot attend 4 queries to 3 keys/,
  );
});

Deno.test("gradcheck: causalAttention with group broadcasting and more keys than queries", () => {
  checkOp([[1, 2, 2, 3], [1, 1, 4, 3], [1, 1, 4, 2]], (q, k, v) => causalAttention(q, k, v));
});

Deno.test("Attention config: defaults, HF names and shapes, YaRN scale, clear errors", () => {
  const rng = new Rng(0);
  const mha = new Attention({ dModel: 16, heads: 4 }, rng);
  strictEqual(mha.config.kvHeads, 4);
  strictEqual(mha.config.headDim, 4);
  assertAllClose(mha.softmaxScale, 0.5, { atol: 1e-12 });
  const gqa = new Attention({ dModel: 16, heads: 4, kvHeads: 2, headDim: 6 }, rng);
  deepStrictEqual(
    [...gqa.parameters()].map(([name, t]) => `${name} [${t.shape.join(", ")}]`),
    [
      "q_proj.weight [24, 16]",
      "k_proj.weight [12, 16]",
      "v_proj.weight [12, 16]",
      "o_proj.weight [16, 24]",
    ],
  );
  const yarn = { factor: 8, originalMaxPositionEmbeddings: 32 };
  const scaled = new Attention({ dModel: 16, heads: 4, rope: { yarn } }, rng);
  assertAllClose(scaled.softmaxScale, yarnMscale(8) ** 2 / 2, { atol: 1e-12 });
  throws(
    () => new Attention({ dModel: 16, heads: 6, kvHeads: 4, headDim: 2 }, rng),
    /Cannot build attention with heads 6 and kvHeads 4: heads must be divisible by kvHeads/,
  );
  throws(
    () => new Attention({ dModel: 10, heads: 3 }, rng),
    /Cannot derive headDim from dModel 10 and heads 3/,
  );
  throws(() => new Attention({ dModel: 12, heads: 4 }, rng), /headDim 3: RoPE needs an even/);
  throws(() => new Attention({ dModel: 8, heads: 0 }, rng), /heads 0: expected a positive/);
  throws(() => mha.forward(zeros([1, 2, 8])), /Cannot apply attention to input \[1, 2, 8\]/);
});
