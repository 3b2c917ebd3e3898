import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { getBackend, withBackend } from "../../lib/backend/mod.ts";
import { loadWeights } from "../../lib/models/checkpoint.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { Moe } from "../../lib/nn/moe.ts";
import { noGrad, Rng, slice, type Tensor, tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, F64, gradOf } from "../_utils.ts";
import { tinyMla, tinyMoe } from "../_fixtures.ts";

interface DecoderCase {
  name: string;
  config: ModelConfig;
  inputs: number[];
  targets: number[];
  shape: [number, number];
  weights: Record<string, { shape: number[]; data: number[] }>;
  logits: number[];
  mainLoss: number;
  mtpLosses: number[];
  auxLoss: number | null;
  loss: number;
  moeLoad: number[][];
  grads: Record<string, number[]>;
}

interface DecoderFixture {
  meta: { tolerance: Record<"f32" | "f64", { atol: number; rtol: number }> };
  cases: DecoderCase[];
}

const fixture = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/models/decoder.json", import.meta.url)),
) as DecoderFixture;

/** A decoder holding the case's weights, on the current backend. */
function fixtureModel(c: DecoderCase): Decoder {
  const model = new Decoder(c.config, new Rng(0));
  const tensors = new Map<string, Tensor>();
  for (const [name, w] of Object.entries(c.weights)) {
    tensors.set(name, tensor(w.data, { shape: w.shape }));
  }
  loadWeights(model, tensors);
  return model;
}

for (const c of fixture.cases) {
  Deno.test(`Decoder matches PyTorch: logits, losses, MoE load, weight gradients (${c.name})`, () => {
    for (const [precision, backend] of [["f32", getBackend()], ["f64", F64]] as const) {
      const tol = fixture.meta.tolerance[precision];
      withBackend(backend, () => {
        const where = `${c.name} (${precision})`;
        const model = fixtureModel(c);
        const inputs = tensor(c.inputs, { dtype: "i32", shape: c.shape });
        const targets = tensor(c.targets, { dtype: "i32", shape: c.shape });
        assertAllClose(model.forward(inputs), c.logits, { ...tol, message: `${where}: logits` });
        const out = model.loss(inputs, targets);
        assertAllClose(out.mainLoss, c.mainLoss, { ...tol, message: `${where}: main loss` });
        strictEqual(out.mtpLosses.length, c.mtpLosses.length);
        out.mtpLosses.forEach((l, k) =>
          assertAllClose(l, c.mtpLosses[k], { ...tol, message: `${where}: L^${k + 1}` })
        );
        if (c.auxLoss === null) strictEqual(out.auxLoss, null);
        else assertAllClose(out.auxLoss as Tensor, c.auxLoss, { ...tol, message: `${where}: aux` });
        assertAllClose(out.loss, c.loss, { ...tol, message: `${where}: total loss` });
        deepStrictEqual(out.moe.map((m) => m.load), c.moeLoad, `${where}: MoE load`);
        out.loss.backward();
        const params = model.parameters();
        for (const [name, g] of Object.entries(c.grads)) {
          const p = params.get(name);
          ok(p !== undefined, `${where}: no parameter '${name}'`);
          assertAllClose(gradOf(p), g, { ...tol, message: `${where}: d loss / d ${name}` });
        }
      });
    }
  });
}

const MLA_MOE: ModelConfig = tinyConfig({
  heads: 2,
  attention: tinyMla(),
  ffn: tinyMoe(),
  mtp: { depth: 1, lambda: 0.3 },
});

Deno.test("Decoder.parameters() uses DeepSeek-V3 Hugging Face names (MLA, MoE, MTP)", () => {
  const names = [...new Decoder(MLA_MOE, new Rng(0)).parameters().keys()];
  const attn = [
    "q_proj.weight",
    "kv_a_proj_with_mqa.weight",
    "kv_a_layernorm.weight",
    "kv_b_proj.weight",
    "o_proj.weight",
  ].map((n) => `self_attn.${n}`);
  const swiglu = (p: string) => ["gate_proj", "up_proj", "down_proj"].map((n) => `${p}${n}.weight`);
  const moe = [
    ...[0, 1, 2, 3].flatMap((e) => swiglu(`mlp.experts.${e}.`)),
    "mlp.gate.weight",
    "mlp.gate.e_score_correction_bias",
    ...swiglu("mlp.shared_experts."),
  ];
  const block = (i: number, mlp: string[]) =>
    ["input_layernorm.weight", ...attn, "post_attention_layernorm.weight", ...mlp].map((n) =>
      `model.layers.${i}.${n}`
    );
  const expected = [
    "model.embed_tokens.weight",
    ...block(0, swiglu("mlp.")),
    ...block(1, moe),
    ...["enorm.weight", "hnorm.weight", "eh_proj.weight"].map((n) => `model.layers.2.${n}`),
    ...block(2, moe),
    "model.layers.2.shared_head.norm.weight",
    "model.norm.weight",
    "lm_head.weight",
  ];
  deepStrictEqual(names, expected);
  const params = new Decoder(MLA_MOE, new Rng(0)).parameters();
  strictEqual(params.get("model.layers.1.mlp.gate.e_score_correction_bias")?.requiresGrad, false);
  deepStrictEqual(params.get("model.layers.2.eh_proj.weight")?.shape, [16, 32]);
});

Deno.test("Decoder.countParameters(): activated leaves out unused routed experts; MTP apart", () => {
  const model = new Decoder(MLA_MOE, new Rng(0));
  const { total, activated, mtp } = model.countParameters();
  let all = 0;
  for (const t of model.parameters().values()) if (t.requiresGrad) all += t.size;
  strictEqual(total + mtp, all);
  const expert = 3 * 16 * 8; // gate, up, down of one expert
  strictEqual(total - activated, (4 - 2) * expert); // one MoE layer in the main model
  ok(activated < total);
  const dense = new Decoder(tinyConfig(), new Rng(0)).countParameters();
  strictEqual(dense.activated, dense.total);
  strictEqual(dense.mtp, 0);
  // tinyConfig: embed 32·16, per layer 2 norms + 4·16·16 attention + 3·16·32 FFN, norm, head
  strictEqual(dense.total, 32 * 16 + 2 * (2 * 16 + 4 * 256 + 3 * 16 * 32) + 16 + 32 * 16);
});

Deno.test("Decoder.kvBytesPerToken() is measured: MLA (d_c + d_r)·4·L, MHA 2 n_h d_h·4·L", () => {
  strictEqual(new Decoder(MLA_MOE, new Rng(0)).kvBytesPerToken(), (6 + 4) * 4 * 2);
  strictEqual(new Decoder(tinyConfig(), new Rng(0)).kvBytesPerToken(), 2 * 2 * 8 * 4 * 2);
  const gqa = tinyConfig({ heads: 4, attention: { kind: "gqa", kvHeads: 2 } });
  strictEqual(new Decoder(gqa, new Rng(0)).kvBytesPerToken(), 2 * 2 * 4 * 4 * 2);
  const mqa = tinyConfig({ heads: 4, attention: { kind: "mqa" } });
  strictEqual(new Decoder(mqa, new Rng(0)).kvBytesPerToken(), 2 * 4 * 4 * 2);
});

Deno.test("gradcheck: Decoder trunk + head w.r.t. the embeddings (MHA dense, MLA MoE)", () => {
  for (const config of [tinyConfig({ dModel: 8, vocab: 5 }), { ...MLA_MOE, dModel: 8, vocab: 5 }]) {
    const model = withBackend(F64, () => new Decoder(config, new Rng(3)));
    checkOp([[1, 3, 8]], (x) => model.head(model.trunk(x).h), { gradAtol: 1e-6, gradRtol: 1e-4 });
  }
});

Deno.test("gradcheck: Decoder MTP module w.r.t. h^0 and the embeddings of t_{i+k}", () => {
  const config = { ...MLA_MOE, dModel: 8, vocab: 5 };
  const model = withBackend(F64, () => new Decoder(config, new Rng(4)));
  const [mtp] = model.mtp;
  checkOp([[1, 3, 8], [1, 3, 8]], (h, e) => mtp.logits(mtp.forward(h, e).h, model.lmHead.weight), {
    gradAtol: 1e-6,
    gradRtol: 1e-4,
  });
});

Deno.test("Decoder.loss() needs more tokens than the MTP depth; logs for the trainer", () => {
  const model = new Decoder(tinyConfig({ mtp: { depth: 2, lambda: 1 } }), new Rng(5));
  const seq = [3, 1, 4, 1, 5, 9, 2, 6];
  const run = (n: number) => {
    const inputs = tensor(seq.slice(0, n), { dtype: "i32", shape: [1, n] });
    const targets = tensor(seq.slice(1, n + 1), { dtype: "i32", shape: [1, n] });
    return noGrad(() => model.loss(inputs, targets));
  };
  const out = run(3); // depth 2 keeps one position: h^1_0 and Emb(t_2) predict t_3
  deepStrictEqual(Object.keys(out.logs), ["mainLoss", "mtpLoss1", "mtpLoss2"]);
  const sum = out.mtpLosses.reduce((s, l) => s + l.itemSync(), 0);
  assertAllClose(out.loss, out.mainLoss.itemSync() + (1 / 2) * sum, { atol: 1e-5 });
  throws(() => run(2), /Cannot train MTP depth 2 on sequences of 2 tokens/);
});

Deno.test("Decoder.afterOptimizerStep() runs the aux-loss-free bias update of MoE layers", () => {
  const model = new Decoder(MLA_MOE, new Rng(6));
  const bias = model.parameters().get("model.layers.1.mlp.gate.e_score_correction_bias");
  ok(bias !== undefined);
  const before = Array.from(bias.dataSync());
  model.loss(
    tensor([[1, 2, 3, 4, 5]], { dtype: "i32" }),
    tensor([[2, 3, 4, 5, 6]], { dtype: "i32" }),
  ).loss.backward();
  model.afterOptimizerStep();
  notDeepStrictEqual(Array.from(bias.dataSync()), before);
  strictEqual(model.moeLayers().length, 2); // layer 1 and the MTP block
  ok(model.moeLayers().every((m) => m instanceof Moe));
  strictEqual(model.maxVioGlobal().length, 1);
});

Deno.test("Decoder.forward() with a KV cache in chunks equals the full forward", () => {
  for (const config of [tinyConfig(), MLA_MOE]) {
    const model = new Decoder(config, new Rng(7));
    const ids = tensor([[5, 3, 8, 1, 9, 2]], { dtype: "i32" });
    const full = model.forward(ids);
    const cache = model.newCache();
    const a = model.forward(slice(ids, 1, 0, 4), { cache });
    const b = model.forward(slice(ids, 1, 4, 5), { cache });
    const c = model.forward(slice(ids, 1, 5, 6), { cache });
    assertAllClose(a, slice(full, 1, 0, 4), { atol: 1e-5 });
    assertAllClose(b, slice(full, 1, 4, 5), { atol: 1e-5 });
    assertAllClose(c, slice(full, 1, 5, 6), { atol: 1e-5 });
    strictEqual(cache.length, 6);
    cache.dispose();
  }
});

Deno.test("Decoder rejects bad configs and inputs, naming the values", () => {
  throws(() => new Decoder(tinyConfig({ layers: 0 }), new Rng(0)), /layers 0/);
  const model = new Decoder(tinyConfig(), new Rng(0));
  throws(() => model.forward(tensor([1, 2], { dtype: "i32" })), /Cannot embed token ids \[2\]/);
  throws(
    () => model.loss(tensor([[1, 2]], { dtype: "i32" }), tensor([[1]], { dtype: "i32" })),
    /Cannot compute the loss of inputs \[1, 2\] against targets \[1, 1\]/,
  );
  throws(
    () =>
      model.forward(tensor([[1]], { dtype: "i32" }), {
        cache: new Decoder(tinyConfig({ layers: 3 }), new Rng(0)).newCache(),
      }),
    /Cannot run 2 layers with a KV cache of 3/,
  );
});
