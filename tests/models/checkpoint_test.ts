import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import {
  hfConfig,
  loadModel,
  loadModelConfig,
  loadWeights,
  saveModel,
} from "../../lib/models/checkpoint.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { loadSafetensors, Rng, type Tensor, tensor, zeros } from "../../lib/tensor/mod.ts";
import { tinyMla, tinyMoe } from "../_fixtures.ts";

const CONFIG: ModelConfig = tinyConfig({
  attention: tinyMla({ queryLatentRank: 8 }),
  ffn: tinyMoe({ routeScale: 2.5, groups: 2 }),
  mtp: { depth: 1, lambda: 0.3 },
});

async function tempDir(): Promise<string> {
  await Deno.mkdir(".test-tmp", { recursive: true });
  return await Deno.makeTempDir({ dir: ".test-tmp", prefix: "models-checkpoint-" });
}

Deno.test("saveModel()/loadModel() round trip gives identical logits, names and bias", async () => {
  const dir = await tempDir();
  try {
    const model = new Decoder(CONFIG, new Rng(1));
    model.loss(tensor([[1, 2, 3, 4]], { dtype: "i32" }), tensor([[2, 3, 4, 5]], { dtype: "i32" }));
    model.afterOptimizerStep(); // a non-zero e_score_correction_bias must survive too
    await saveModel(dir, model);
    const again = await loadModel(dir, { seed: 99 });
    deepStrictEqual(again.config, CONFIG);
    const ids = tensor([[5, 1, 7, 2, 9]], { dtype: "i32" });
    deepStrictEqual(
      Array.from(again.forward(ids).dataSync()),
      Array.from(model.forward(ids).dataSync()),
    );
    const { tensors, metadata } = await loadSafetensors(`${dir}/model.safetensors`);
    deepStrictEqual([...tensors.keys()].sort(), [...model.parameters().keys()].sort());
    deepStrictEqual(metadata, { format: "pt" });
    const bias = "model.layers.1.mlp.gate.e_score_correction_bias";
    deepStrictEqual(
      Array.from(again.parameters().get(bias)?.dataSync() ?? []),
      Array.from(model.parameters().get(bias)?.dataSync() ?? []),
    );
    strictEqual(again.parameters().get(bias)?.requiresGrad, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saveModel() writes a Hugging Face DeepSeek-V3 config.json with the ablate config", async () => {
  const dir = await tempDir();
  try {
    await saveModel(dir, new Decoder(CONFIG, new Rng(0)));
    const hf = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const expected = {
      model_type: "deepseek_v3",
      vocab_size: 32,
      hidden_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      kv_lora_rank: 6,
      q_lora_rank: 8,
      qk_rope_head_dim: 4,
      qk_nope_head_dim: 8,
      v_head_dim: 8,
      n_routed_experts: 4,
      n_shared_experts: 1,
      num_experts_per_tok: 2,
      moe_intermediate_size: 8,
      intermediate_size: 24,
      first_k_dense_replace: 1,
      n_group: 2,
      topk_group: 1,
      routed_scaling_factor: 2.5,
      scoring_func: "sigmoid",
      topk_method: "noaux_tc",
      num_nextn_predict_layers: 1,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: false,
    };
    for (const [k, v] of Object.entries(expected)) deepStrictEqual(hf[k], v, k);
    deepStrictEqual(await loadModelConfig(dir), CONFIG);
    const dense = hfConfig(tinyConfig({ heads: 4, attention: { kind: "gqa", kvHeads: 2 } }));
    deepStrictEqual(
      [dense.num_key_value_heads, dense.kv_lora_rank, dense.n_routed_experts, dense.head_dim],
      [2, null, null, 4],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadWeights() names the tensor that is missing, unexpected or of the wrong shape", () => {
  const model = new Decoder(tinyConfig(), new Rng(0));
  const full = () => new Map<string, Tensor>(model.parameters());
  const missing = full();
  missing.delete("model.layers.1.self_attn.k_proj.weight");
  throws(
    () => loadWeights(model, missing),
    /missing .*'model\.layers\.1\.self_attn\.k_proj\.weight'/,
  );
  const extra = full().set("model.layers.2.enorm.weight", zeros([16]));
  throws(() => loadWeights(model, extra), /not in the model: 'model\.layers\.2\.enorm\.weight'/);
  loadWeights(model, extra, { strict: false });
  const wrong = full().set("lm_head.weight", zeros([16, 32]));
  throws(
    () => loadWeights(model, wrong),
    /Cannot load tensor 'lm_head\.weight': the checkpoint holds \[16, 32\] f32, the model expects \[32, 16\] f32/,
  );
});

Deno.test("loadModel() reads a config.json without an ablate entry as Hugging Face's, naming a missing size", async () => {
  const dir = await tempDir();
  try {
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ model_type: "deepseek_v3" }));
    await rejects(
      () => loadModel(dir),
      /'num_hidden_layers' is missing, supported: a positive integer/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const PYTHON = "/usr/bin/python3";
const pythonReason = await new Deno.Command(PYTHON, { args: ["-c", "import json, struct"] })
  .output().then((o) => (o.success ? null : `${PYTHON} failed`), (e) => `${PYTHON}: ${e.message}`);
if (pythonReason !== null) console.log(`Python safetensors check skipped: ${pythonReason}`);

// A reader written from the safetensors format description, independent of our TypeScript:
// 8-byte little-endian header length, JSON header, then the data; every tensor's offsets must
// tile the data exactly. Prints name -> [dtype, shape, first value, sum] as JSON.
const PY_READER = `
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n].decode("utf-8"))
data = raw[8 + n:]
meta = header.pop("__metadata__", {})
sizes = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8}
spans = sorted((v["data_offsets"][0], v["data_offsets"][1]) for v in header.values())
pos = 0
for a, b in spans:
    assert a == pos, ("gap or overlap at", a, pos)
    pos = b
assert pos == len(data), ("data size", pos, len(data))
out = {"__metadata__": meta}
for name, v in header.items():
    a, b = v["data_offsets"]
    count = 1
    for d in v["shape"]:
        count *= d
    assert b - a == count * sizes[v["dtype"]], name
    assert v["dtype"] == "F32", name
    vals = struct.unpack("<%df" % count, data[a:b])
    out[name] = [v["dtype"], v["shape"], vals[0] if vals else None, sum(vals)]
print(json.dumps(out))
`;

Deno.test({
  name: "model.safetensors opens in Python: header, shapes, offsets and values match",
  ignore: pythonReason !== null,
  fn: async () => {
    const dir = await tempDir();
    try {
      const model = new Decoder(CONFIG, new Rng(3));
      await saveModel(dir, model);
      const out = await new Deno.Command(PYTHON, {
        args: ["-c", PY_READER, `${dir}/model.safetensors`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      strictEqual(out.success, true, new TextDecoder().decode(out.stderr));
      const seen = JSON.parse(new TextDecoder().decode(out.stdout)) as Record<
        string,
        [string, number[], number, number]
      >;
      deepStrictEqual(seen.__metadata__, { format: "pt" } as unknown);
      const params = model.parameters();
      deepStrictEqual(
        Object.keys(seen).filter((k) => k !== "__metadata__").sort(),
        [...params.keys()].sort(),
      );
      for (const [name, p] of params) {
        const [dtype, shape, first, sum] = seen[name];
        const values = Array.from(p.dataSync());
        deepStrictEqual([dtype, shape], ["F32", p.shape], name);
        strictEqual(first, values[0], name);
        const want = values.reduce((a, b) => a + b, 0);
        strictEqual(Math.abs(sum - want) <= 1e-9 + 1e-6 * Math.abs(want), true, `${name} sum`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
