import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  loadCheckpoint,
  loadModel,
  readCheckpointConfig,
  saveModel,
} from "../../lib/models/checkpoint.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import { model } from "../../lib/dsl/model.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { fromHfConfig, type HfConfigJson, toHfConfig } from "../../lib/models/hf.ts";
import { INDEX_FILE, readCheckpointFiles } from "../../lib/models/hf_checkpoint.ts";
import {
  loadSafetensors,
  noGrad,
  Rng,
  saveSafetensors,
  slice,
  type Tensor,
  tensor,
} from "../../lib/tensor/mod.ts";
import { F64 } from "../_utils.ts";

// --- fixtures: Hugging Face checkpoints and PyTorch logits (tests/fixtures/models/make_hf.py) ---

interface HfCase {
  name: string;
  dtype: string;
  fp8: boolean;
  shards: number;
  shape: [number, number];
  ids: number[];
  logits: number[];
  mtpLogits: number[] | null;
}

const FIXTURES = "tests/fixtures/models/hf";
const fixture = JSON.parse(Deno.readTextFileSync(`${FIXTURES}/logits.json`)) as {
  meta: { tolerance: { relative: number } };
  cases: HfCase[];
};
const REL = fixture.meta.tolerance.relative; // 1e-4
const caseOf = (name: string) => fixture.cases.find((c) => c.name === name) as HfCase;

/** Per position `p`: `max_v |a − r| ≤ rel · max_v |r|`; returns the worst ratio. */
function assertPositions(
  actual: ArrayLike<number>,
  expected: readonly number[],
  vocab: number,
  label: string,
  rel = REL,
): number {
  strictEqual(actual.length, expected.length, `${label}: length`);
  let worst = 0;
  for (let p = 0; p < expected.length / vocab; p++) {
    let scale = 0, diff = 0;
    for (let v = p * vocab; v < (p + 1) * vocab; v++) {
      scale = Math.max(scale, Math.abs(expected[v]));
      diff = Math.max(diff, Math.abs(actual[v] - expected[v]));
    }
    ok(diff <= rel * scale, `${label}: position ${p} off by ${diff} (scale ${scale})`);
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

function idsOf(c: HfCase): Tensor {
  return tensor(c.ids, { shape: c.shape, dtype: "i32" });
}

/** Logits of every position through the KV cache: a prefill of 3 tokens, then one at a time. */
function decodeLogits(model: Decoder, ids: Tensor): Float32Array {
  const [b, t] = ids.shape, v = model.config.vocab;
  const out = new Float32Array(b * t * v);
  const cache = model.newCache();
  try {
    noGrad(() => {
      for (let start = 0; start < t;) {
        const end = start === 0 ? 3 : start + 1;
        const step = model.forward(slice(ids, 1, start, end), { cache }).dataSync(); // [B, n, V]
        const n = end - start;
        for (let r = 0; r < b; r++) {
          for (let i = 0; i < n; i++) {
            out.set(step.subarray((r * n + i) * v, (r * n + i + 1) * v), (r * t + start + i) * v);
          }
        }
        start = end;
      }
    });
  } finally {
    cache.dispose();
  }
  return out;
}

/** MTP module 1's logits at positions 0..T−2 (predicting t_{i+2}), as make_hf.py computes them. */
function mtpLogits(model: Decoder, ids: Tensor): Float32Array {
  return noGrad(() => {
    const t = ids.shape[1];
    const h0 = model.trunk(model.embed(ids)).h; // after model.norm: [B, T, d]
    const module = model.mtp[0];
    const next = model.embed(slice(ids, 1, 1, t)); // Emb(t_{i+1}): [B, T − 1, d]
    const h = module.forward(slice(h0, 1, 0, t - 1), next).h;
    return Float32Array.from(module.logits(h, model.lmHead.weight).dataSync());
  });
}

async function tempDir(): Promise<string> {
  await Deno.mkdir(".test-tmp", { recursive: true });
  return await Deno.makeTempDir({ dir: ".test-tmp", prefix: "models-hf-" });
}

for (const c of fixture.cases) {
  Deno.test(
    `loadModel() on ${c.name} (${c.dtype}${c.fp8 ? " + FP8" : ""}, ${
      c.shards > 0 ? `${c.shards} shards` : "one file"
    }): logits equal PyTorch's at every position, full forward and KV-cache decode`,
    async () => {
      const model = await loadModel(`${FIXTURES}/${c.name}`);
      const ids = idsOf(c), v = model.config.vocab;
      assertPositions(model.forward(ids).dataSync(), c.logits, v, "forward");
      assertPositions(decodeLogits(model, ids), c.logits, v, "decode");
      if (c.mtpLogits !== null) {
        strictEqual(model.mtp.length, 1);
        assertPositions(mtpLogits(model, ids), c.mtpLogits, v, "mtp");
      } else {
        strictEqual(model.mtp.length, 0);
      }
    },
  );
}

Deno.test("loadModel() is checked by its fixtures: a wrong norm_topk_prob or mscale_all_dim fails", async () => {
  const c = caseOf("v2_group_limited_f16");
  const hf = JSON.parse(await Deno.readTextFile(`${FIXTURES}/${c.name}/config.json`));
  const dir = await tempDir();
  try {
    for (const file of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) {
      await Deno.copyFile(`${FIXTURES}/${c.name}/${file}`, `${dir}/${file}`);
    }
    await Deno.copyFile(`${FIXTURES}/${c.name}/${INDEX_FILE}`, `${dir}/${INDEX_FILE}`);
    // routed_scaling_factor 4 applies (norm_topk_prob false): ignoring it must show
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...hf, norm_topk_prob: true }));
    const wrong = await loadModel(dir);
    throws(
      () => assertPositions(wrong.forward(idsOf(c)).dataSync(), c.logits, 64, "wrong"),
      /off by/,
    );
    // mscale_all_dim 0.8 ≠ mscale 1 sets both the softmax factor and cos/sin: equal ones must show
    const yarn = { ...hf.rope_scaling, mscale_all_dim: hf.rope_scaling.mscale };
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...hf, rope_scaling: yarn }));
    const flat = await loadModel(dir);
    throws(
      () => assertPositions(flat.forward(idsOf(c)).dataSync(), c.logits, 64, "mscale"),
      /off by/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadModel() inside withBackend() builds on that backend (float64 cpu: logits closer still)", async () => {
  const c = caseOf("v3_fp8_sharded");
  const model = await withBackend(F64, () => loadModel(`${FIXTURES}/${c.name}`));
  strictEqual(model.embedTokens.backend, F64);
  strictEqual(model.lmHead.weight.backend, F64);
  const logits = withBackend(F64, () => model.forward(idsOf(c)).dataSync());
  ok(assertPositions(logits, c.logits, 64, "float64", 1e-8) < 1e-8);
});

// --- FP8 ----------------------------------------------------------------------------------------

Deno.test("loadModel(fp8: 'keep') holds E4M3 codes and block scales: same logits, ~1/4 memory", async () => {
  const c = caseOf("v3_fp8_sharded");
  const dir = `${FIXTURES}/${c.name}`;
  const dq = await loadCheckpoint(dir);
  const kept = await loadCheckpoint(dir, { fp8: "keep" });
  const ids = idsOf(c), v = 64;
  deepStrictEqual(kept.report.fp8Kept.length, 73);
  deepStrictEqual(dq.report.fp8Dequantized.length, 73);
  const w = kept.model.parameters().get("model.layers.0.mlp.gate_proj.weight") as Tensor;
  const s = kept.model.parameters().get("model.layers.0.mlp.gate_proj.weight_scale_inv") as Tensor;
  deepStrictEqual([w.dtype, w.shape, s.dtype, s.shape], ["u8", [160, 32], "f32", [2, 1]]);
  strictEqual(kept.model.lmHead.weightScaleInv, null, "lm_head stays float32");
  const a = kept.model.forward(ids).dataSync(), b = dq.model.forward(ids).dataSync();
  const worst = assertPositions(a, Array.from(b), v, "keep vs dequantize", 1e-6);
  ok(worst < 1e-6);
  assertPositions(decodeLogits(kept.model, ids), c.logits, v, "keep decode");
  assertPositions(mtpLogits(kept.model, ids), c.mtpLogits as number[], v, "keep mtp");
  // memory of the FP8 Linear weights: 1 byte per weight plus 4 per 128×128 block scale
  const bytes = (m: Decoder, names: string[]) =>
    names.reduce((n, name) => {
      const t = m.parameters().get(name);
      return n + (t === undefined ? 0 : t.size * (t.dtype === "u8" ? 1 : 4));
    }, 0);
  const names = [...kept.report.fp8Kept, ...kept.report.fp8Kept.map((n) => `${n}_scale_inv`)];
  const ratio = bytes(kept.model, names) / bytes(dq.model, names);
  ok(ratio > 0.25 && ratio < 0.26, `kept/dequantised bytes ${ratio}`);
});

Deno.test("loadModel(fp8: 'keep', fp8Compute) runs V3's FP8 GEMMs: tile-quantised activations", async () => {
  const c = caseOf("v3_fp8_sharded");
  const spec = { granularity: "tile", promotion: 128, accumulatorBits: 14 } as const;
  const model = await loadModel(`${FIXTURES}/${c.name}`, { fp8: "keep", fp8Compute: spec });
  deepStrictEqual(model.config.fp8, spec);
  const ids = idsOf(c);
  const logits = model.forward(ids).dataSync();
  // E4M3 activations (3 mantissa bits, up to 6% per value) move the logits by a few percent;
  // the GEMM itself is checked exactly in tests/fp8/weights_test.ts
  const worst = assertPositions(logits, c.logits, 64, "fp8 activations", 0.15);
  ok(worst > 1e-3, `activations were quantised (worst relative change ${worst})`);
  const weightOnly = await loadModel(`${FIXTURES}/${c.name}`, { fp8: "keep" });
  strictEqual(weightOnly.config.fp8, null);
});

// --- memory -------------------------------------------------------------------------------------

Deno.test("loading reads tensor by tensor: peak raw bytes held is one tensor (+ scales), never a shard", async () => {
  for (const c of fixture.cases) {
    const dir = `${FIXTURES}/${c.name}`;
    const files = await readCheckpointFiles(dir);
    const { report } = await loadCheckpoint(dir);
    const shardData = [...files.fileBytes.values()];
    const total = [...files.tensors.values()].reduce((n, t) => n + t.bytes, 0);
    // the largest single read: a tensor with its scale_inv
    let largest = 0;
    for (const t of files.tensors.values()) {
      if (t.name.endsWith("_scale_inv")) continue;
      largest = Math.max(largest, t.bytes + (files.tensors.get(`${t.name}_scale_inv`)?.bytes ?? 0));
    }
    strictEqual(report.stats.peakBufferedBytes, largest, c.name);
    ok(report.stats.peakBufferedBytes <= Math.min(...shardData), `${c.name}: ≤ the smallest shard`);
    ok(report.stats.peakBufferedBytes * 10 < total, `${c.name}: far below the checkpoint`);
    strictEqual(report.stats.bytesRead, total, `${c.name}: every byte read once`);
  }
});

// --- fromHfConfig -------------------------------------------------------------------------------

/** DeepSeek-V3's config.json as published (deepseek-ai/DeepSeek-V3, without auto_map). */
const V3_671B: HfConfigJson = {
  architectures: ["DeepseekV3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 1,
  ep_size: 1,
  first_k_dense_replace: 3,
  hidden_act: "silu",
  hidden_size: 7168,
  initializer_range: 0.02,
  intermediate_size: 18432,
  kv_lora_rank: 512,
  max_position_embeddings: 163840,
  model_type: "deepseek_v3",
  moe_intermediate_size: 2048,
  moe_layer_freq: 1,
  n_group: 8,
  n_routed_experts: 256,
  n_shared_experts: 1,
  norm_topk_prob: true,
  num_attention_heads: 128,
  num_experts_per_tok: 8,
  num_hidden_layers: 61,
  num_key_value_heads: 128,
  num_nextn_predict_layers: 1,
  q_lora_rank: 1536,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  quantization_config: {
    activation_scheme: "dynamic",
    fmt: "e4m3",
    quant_method: "fp8",
    weight_block_size: [128, 128],
  },
  rms_norm_eps: 1e-06,
  rope_scaling: {
    beta_fast: 32,
    beta_slow: 1,
    factor: 40,
    mscale: 1.0,
    mscale_all_dim: 1.0,
    original_max_position_embeddings: 4096,
    type: "yarn",
  },
  rope_theta: 10000,
  routed_scaling_factor: 2.5,
  scoring_func: "sigmoid",
  tie_word_embeddings: false,
  topk_group: 4,
  topk_method: "noaux_tc",
  torch_dtype: "bfloat16",
  transformers_version: "4.46.3",
  use_cache: true,
  v_head_dim: 128,
  vocab_size: 129280,
};

/** DeepSeek-V2-Lite's config.json as published. */
const V2_LITE: HfConfigJson = {
  architectures: ["DeepseekV2ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  aux_loss_alpha: 0.001,
  bos_token_id: 100000,
  eos_token_id: 100001,
  first_k_dense_replace: 1,
  hidden_act: "silu",
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 10944,
  kv_lora_rank: 512,
  max_position_embeddings: 163840,
  model_type: "deepseek_v2",
  moe_intermediate_size: 1408,
  moe_layer_freq: 1,
  n_group: 1,
  n_routed_experts: 64,
  n_shared_experts: 2,
  norm_topk_prob: false,
  num_attention_heads: 16,
  num_experts_per_tok: 6,
  num_hidden_layers: 27,
  num_key_value_heads: 16,
  pretraining_tp: 1,
  q_lora_rank: null,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  rms_norm_eps: 1e-06,
  rope_scaling: {
    beta_fast: 32,
    beta_slow: 1,
    factor: 40,
    mscale: 0.707,
    mscale_all_dim: 0.707,
    original_max_position_embeddings: 4096,
    type: "yarn",
  },
  rope_theta: 10000,
  routed_scaling_factor: 1.0,
  scoring_func: "softmax",
  seq_aux: true,
  tie_word_embeddings: false,
  topk_group: 1,
  topk_method: "greedy",
  torch_dtype: "bfloat16",
  transformers_version: "4.33.1",
  use_cache: true,
  v_head_dim: 128,
  vocab_size: 102400,
};

Deno.test("fromHfConfig() maps DeepSeek-V3 (671B) field by field", () => {
  const expected: ModelConfig = {
    vocab: 129280,
    tokenizer: "bpe",
    dModel: 7168,
    layers: 61,
    heads: 128,
    seqLen: 163840,
    attention: {
      kind: "mla",
      kvLatentRank: 512,
      queryLatentRank: 1536,
      ropeHeadDim: 64,
      nopeHeadDim: 128,
      vHeadDim: 128,
      absorb: false,
    },
    ffn: {
      kind: "moe",
      routedExperts: 256,
      sharedExperts: 1,
      topK: 8,
      expertHidden: 2048,
      score: "sigmoid",
      balance: "aux-free",
      gamma: 0.001,
      alpha: 0.001,
      routeScale: 2.5,
      groups: 8,
      topkGroup: 4,
      firstDenseLayers: 3,
      denseHidden: 18432,
    },
    mtp: { depth: 1, lambda: 0.3 },
    fp8: null,
    ropeTheta: 10000,
    yarn: {
      factor: 40,
      originalMaxPositionEmbeddings: 4096,
      betaFast: 32,
      betaSlow: 1,
      mscale: 1,
    },
    normEps: 1e-6,
    initStd: 0.02,
  };
  deepStrictEqual(fromHfConfig(V3_671B), expected);
});

Deno.test("fromHfConfig() maps DeepSeek-V2-Lite and V2: no query latent, softmax without renormalisation", () => {
  const lite = fromHfConfig(V2_LITE);
  deepStrictEqual(lite.attention, {
    kind: "mla",
    kvLatentRank: 512,
    queryLatentRank: 0,
    ropeHeadDim: 64,
    nopeHeadDim: 128,
    vHeadDim: 128,
    absorb: false,
  });
  deepStrictEqual(lite.ffn, {
    kind: "moe",
    routedExperts: 64,
    sharedExperts: 2,
    topK: 6,
    expertHidden: 1408,
    score: "softmax",
    balance: "aux-loss",
    gamma: 0.001,
    alpha: 0.001,
    routeScale: 1,
    groups: 1,
    topkGroup: 1,
    firstDenseLayers: 1,
    denseHidden: 10944,
    normTopK: false,
  });
  deepStrictEqual(lite.yarn, {
    factor: 40,
    originalMaxPositionEmbeddings: 4096,
    betaFast: 32,
    betaSlow: 1,
    mscale: 0.707,
  });
  strictEqual(lite.mtp, null);
  // DeepSeek-V2 (236B): group-limited greedy over 8 groups, 3 kept, gates times 16
  const v2 = fromHfConfig({
    ...V2_LITE,
    q_lora_rank: 1536,
    n_routed_experts: 160,
    num_experts_per_tok: 6,
    n_group: 8,
    topk_group: 3,
    topk_method: "group_limited_greedy",
    routed_scaling_factor: 16.0,
  });
  const f = v2.ffn.kind === "moe" ? v2.ffn : null;
  deepStrictEqual(
    [f?.groups, f?.topkGroup, f?.groupScore, f?.routeScale, f?.normTopK],
    [8, 3, "max", 16, false],
  );
  // V2 ignores the scale of renormalised gates; V3 applies it
  const normalised = fromHfConfig({ ...V2_LITE, norm_topk_prob: true, routed_scaling_factor: 4 });
  strictEqual(normalised.ffn.kind === "moe" && normalised.ffn.routeScale, 1);
  const v3norm = fromHfConfig({ ...V3_671B, routed_scaling_factor: 4 });
  strictEqual(v3norm.ffn.kind === "moe" && v3norm.ffn.routeScale, 4);
  // a top-1 router never renormalises (modeling_deepseek.py: `top_k > 1 and norm_topk_prob`)
  const top1 = fromHfConfig({ ...V3_671B, num_experts_per_tok: 1 });
  strictEqual(top1.ffn.kind === "moe" && top1.ffn.normTopK, false);
});

Deno.test("fromHfConfig() uses Hugging Face's class defaults for absent behaviour fields", () => {
  const sizes = Object.fromEntries(
    [
      "model_type",
      "vocab_size",
      "hidden_size",
      "num_hidden_layers",
      "num_attention_heads",
      "intermediate_size",
      "moe_intermediate_size",
      "kv_lora_rank",
      "q_lora_rank",
      "qk_nope_head_dim",
      "qk_rope_head_dim",
      "v_head_dim",
    ].map((k) => [k, V3_671B[k]]),
  );
  const config = fromHfConfig(sizes);
  const f = config.ffn.kind === "moe" ? config.ffn : null;
  deepStrictEqual(
    [f?.routedExperts, f?.topK, f?.groups, f?.topkGroup, f?.firstDenseLayers, f?.score, f?.balance],
    [256, 8, 8, 4, 3, "sigmoid", "aux-free"],
  );
  deepStrictEqual([config.mtp?.depth, config.yarn, config.seqLen], [1, null, 4096]);
  // mscale_all_dim absent means 0 in Hugging Face's code: no softmax factor
  const yarn = fromHfConfig({
    ...V3_671B,
    rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 64 },
  }).yarn;
  deepStrictEqual(yarn, {
    factor: 4,
    originalMaxPositionEmbeddings: 64,
    betaFast: 32,
    betaSlow: 1,
    mscale: 1,
    mscaleAllDim: 0,
  });
  // dense: n_routed_experts null
  deepStrictEqual(fromHfConfig({ ...V3_671B, n_routed_experts: null }).ffn, {
    kind: "dense",
    hidden: 18432,
  });
});

Deno.test("fromHfConfig() rejects what ablate cannot run, naming the field, the value and what is supported", () => {
  const cases: [HfConfigJson, RegExp][] = [
    [
      { ...V3_671B, model_type: "llama" },
      /'model_type' is "llama", supported: 'deepseek_v3', 'deepseek_v2'/,
    ],
    [
      { ...V3_671B, hidden_size: undefined },
      /'hidden_size' is missing, supported: a positive integer/,
    ],
    [{ ...V3_671B, moe_layer_freq: 2 }, /'moe_layer_freq' is 2, supported: 1 \(every layer/],
    [
      { ...V3_671B, topk_method: "sinkhorn" },
      /'topk_method' is "sinkhorn", supported: 'greedy', 'group_limited_greedy', 'noaux_tc'/,
    ],
    [{ ...V2_LITE, topk_method: undefined }, /'topk_method' is "gready"/],
    [
      { ...V3_671B, scoring_func: "relu" },
      /'scoring_func' is "relu", supported: 'sigmoid', 'softmax'/,
    ],
    [{ ...V3_671B, hidden_act: "gelu" }, /'hidden_act' is "gelu", supported: "silu"/],
    [{ ...V3_671B, attention_bias: true }, /'attention_bias' is true, supported: false/],
    [{ ...V3_671B, rope_interleave: false }, /'rope_interleave' is false, supported: true/],
    [
      { ...V3_671B, rope_scaling: { type: "linear", factor: 2 } },
      /'rope_scaling.type' is "linear", supported: 'yarn'/,
    ],
    [
      { ...V3_671B, rope_scaling: { type: "yarn", factor: 4 } },
      /'rope_scaling.original_max_position_embeddings' is missing/,
    ],
    [{ ...V3_671B, qk_rope_head_dim: 63 }, /'qk_rope_head_dim' is 63, supported: an even number/],
    [{ ...V3_671B, n_group: 7 }, /'n_group' is 7, supported: a divisor of n_routed_experts 256/],
    [{ ...V3_671B, topk_group: 9 }, /'topk_group' is 9, supported: 1 to n_group 8/],
    [
      { ...V3_671B, topk_group: 1, num_experts_per_tok: 40 },
      /'num_experts_per_tok' is 40, supported: at most topk_group/,
    ],
    [{ ...V3_671B, norm_topk_prob: "yes" }, /'norm_topk_prob' is "yes", supported: true or false/],
    [{ ...V3_671B, seq_aux: false }, /'seq_aux' is false, supported: true/],
    [
      { ...V3_671B, first_k_dense_replace: 62 },
      /'first_k_dense_replace' is 62, supported: at most num_hidden_layers 61 with MTP/,
    ],
    [
      { ...V3_671B, quantization_config: { quant_method: "fp8", weight_block_size: [64, 64] } },
      /'quantization_config.weight_block_size' is \[64,64\], supported: \[128, 128\]/,
    ],
    [
      { ...V3_671B, quantization_config: { quant_method: "gptq" } },
      /'quantization_config.quant_method' is "gptq", supported: 'fp8'/,
    ],
  ];
  for (const [json, pattern] of cases) {
    throws(() => fromHfConfig(json, { source: "x/config.json" }), pattern, String(pattern));
  }
  throws(
    () => fromHfConfig({ ...V3_671B, moe_layer_freq: 2 }, { source: "x/config.json" }),
    /^Error: Cannot read the Hugging Face config 'x\/config.json'/,
  );
});

Deno.test("fromHfConfig() gives configs the DSL accepts as they are", () => {
  for (
    const json of [V3_671B, V2_LITE, {
      ...V2_LITE,
      rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 64 },
    }]
  ) {
    const config = fromHfConfig(json);
    deepStrictEqual(model(config), config);
  }
});

Deno.test("toHfConfig() writes only Hugging Face keys and fromHfConfig() maps them back", () => {
  for (const c of [fromHfConfig(V3_671B), fromHfConfig(V2_LITE)]) {
    const hf = toHfConfig(c);
    for (const key of ["ablate", "attention_kind", "head_dim"]) ok(!(key in hf), key);
    deepStrictEqual(fromHfConfig(hf), { ...c, seqLen: hf.max_position_embeddings as number });
  }
  strictEqual(toHfConfig(fromHfConfig(V2_LITE)).model_type, "deepseek_v2");
  strictEqual(toHfConfig(fromHfConfig(V3_671B)).model_type, "deepseek_v3");
  throws(() => toHfConfig(tinyConfig()), /attention 'mha': DeepseekV3Config describes MLA only/);
});

// --- save in the Hugging Face format ------------------------------------------------------------

const HF_KEYS = new Set([
  ...Object.keys(V3_671B),
  ...Object.keys(V2_LITE),
  "rope_scaling",
  "quantization_config",
]);

const PYTHON = "/usr/bin/python3";
async function probePython(): Promise<string | null> {
  try {
    const out = await new Deno.Command(PYTHON, { args: ["-c", "import torch, numpy"] }).output();
    return out.success ? null : `${PYTHON} has no torch`;
  } catch (e) {
    return `${PYTHON}: ${(e as Error).message}`;
  }
}
const pythonReason = await probePython();
if (pythonReason !== null) console.log(`PyTorch cross-checks skipped: ${pythonReason}`);

/** make_hf.py's independent forward on a directory: { logits, mtpLogits }. */
async function pythonForward(
  dir: string,
  c: HfCase,
): Promise<{ logits: number[]; mtpLogits: number[] | null }> {
  const [b, t] = c.shape;
  const rows = Array.from({ length: b }, (_, r) => c.ids.slice(r * t, (r + 1) * t));
  const out = await new Deno.Command(PYTHON, {
    args: ["tests/fixtures/models/make_hf.py", "--forward", dir, JSON.stringify(rows)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  strictEqual(out.success, true, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

for (const name of ["v3_f32", "v3_fp8_sharded", "v2_group_limited_f16"]) {
  Deno.test(
    `saveModel(format: 'hf') of ${name}: HF keys only, shards + index, MTP copies; reloads and runs in PyTorch`,
    async () => {
      const c = caseOf(name);
      const dir = await tempDir();
      try {
        const fp8 = c.fp8 ? "keep" : "dequantize";
        const model = await loadModel(`${FIXTURES}/${name}`, { fp8 });
        await saveModel(dir, model, { format: "hf", maxShardBytes: 40_000 });
        const hf = JSON.parse(await Deno.readTextFile(`${dir}/config.json`)) as HfConfigJson;
        for (const key of Object.keys(hf)) ok(HF_KEYS.has(key), `config.json key '${key}'`);
        ok(!Object.values(hf).includes(null) || hf.q_lora_rank === null, "no stray nulls");
        const original = JSON.parse(await Deno.readTextFile(`${FIXTURES}/${name}/config.json`));
        for (
          const key of [
            "model_type",
            "topk_method",
            "scoring_func",
            "norm_topk_prob",
            "q_lora_rank",
            "n_group",
            "topk_group",
            "routed_scaling_factor",
            "rope_scaling",
            "num_nextn_predict_layers",
          ]
        ) {
          deepStrictEqual(hf[key], original[key], key);
        }
        strictEqual("quantization_config" in hf, c.fp8);
        deepStrictEqual(JSON.parse(await Deno.readTextFile(`${dir}/ablate.json`)), model.config);
        const files = await readCheckpointFiles(dir);
        ok(files.sharded && files.files.length > 1, "sharded");
        const data = new Map<string, number>();
        for (const t of files.tensors.values()) data.set(t.file, (data.get(t.file) ?? 0) + t.bytes);
        for (const [file, size] of data) ok(size <= 40_000, `${file}: ${size} bytes of data`);
        const l = model.config.layers;
        if (c.mtpLogits !== null) {
          ok(files.tensors.has(`model.layers.${l}.embed_tokens.weight`));
          ok(files.tensors.has(`model.layers.${l}.shared_head.head.weight`));
        }
        if (c.fp8) {
          strictEqual(
            files.tensors.get("model.layers.0.self_attn.q_a_proj.weight")?.dtype,
            "F8_E4M3",
          );
          strictEqual(files.tensors.get("lm_head.weight")?.dtype, "F32");
        }
        const again = await loadCheckpoint(dir, { fp8 });
        strictEqual(again.config.source, "ablate.json");
        const ids = idsOf(c);
        deepStrictEqual(again.model.forward(ids).dataSync(), model.forward(ids).dataSync());
        // the same directory as a plain Hugging Face checkpoint (no ablate.json)
        await Deno.remove(`${dir}/ablate.json`);
        const plain = await loadModel(dir, { fp8 });
        assertPositions(plain.forward(ids).dataSync(), c.logits, model.config.vocab, "plain HF");
        if (pythonReason === null) {
          const py = await pythonForward(dir, c);
          assertPositions(py.logits, c.logits, model.config.vocab, "PyTorch on the saved dir");
          if (c.mtpLogits !== null) {
            assertPositions(
              py.mtpLogits as number[],
              c.mtpLogits,
              model.config.vocab,
              "PyTorch MTP",
            );
          }
        }
        // saving again into the same directory as one file removes the shards and the index
        await saveModel(dir, model, { format: "hf" });
        const single = await readCheckpointFiles(dir);
        deepStrictEqual(single.files, ["model.safetensors"]);
        const left = [];
        for await (const e of Deno.readDir(dir)) left.push(e.name);
        deepStrictEqual(left.sort(), ["ablate.json", "config.json", "model.safetensors"]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

Deno.test("saveModel(format: 'hf') of an ablate-trained MLA model reloads with identical logits", async () => {
  const config = tinyConfig({
    attention: { kind: "mla", kvLatentRank: 6, queryLatentRank: 0, ropeHeadDim: 4 },
    ffn: {
      kind: "moe",
      routedExperts: 4,
      sharedExperts: 1,
      topK: 2,
      expertHidden: 8,
      score: "softmax",
      balance: "aux-loss",
      gamma: 0.001,
      alpha: 0.01,
      routeScale: 1,
      groups: 2,
      topkGroup: 1,
      firstDenseLayers: 1,
      denseHidden: 24,
      normTopK: false,
      groupScore: "max",
    },
    yarn: { factor: 4, originalMaxPositionEmbeddings: 8, mscale: 0.9, mscaleAllDim: 0.7 },
  });
  const dir = await tempDir();
  try {
    const model = new Decoder(config, new Rng(4));
    await saveModel(dir, model, { format: "hf" });
    const hf = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    deepStrictEqual([hf.model_type, hf.topk_method, hf.norm_topk_prob], [
      "deepseek_v2",
      "group_limited_greedy",
      false,
    ]);
    await Deno.remove(`${dir}/ablate.json`);
    const again = await loadModel(dir);
    const ids = tensor([[1, 5, 3, 7, 2]], { dtype: "i32" });
    deepStrictEqual(again.forward(ids).dataSync(), model.forward(ids).dataSync());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- what a load checks -------------------------------------------------------------------------

async function copyFixture(name: string): Promise<string> {
  const dir = await tempDir();
  for await (const e of Deno.readDir(`${FIXTURES}/${name}`)) {
    await Deno.copyFile(`${FIXTURES}/${name}/${e.name}`, `${dir}/${e.name}`);
  }
  return dir;
}

Deno.test("loadModel() checks V3's MTP copies of the embedding and head equal the shared ones", async () => {
  const dir = await copyFixture("v3_f32");
  try {
    const { report } = await loadCheckpoint(dir);
    deepStrictEqual(report.mtpCopies.sort(), [
      "model.layers.2.embed_tokens.weight",
      "model.layers.2.shared_head.head.weight",
    ]);
    const { tensors } = await loadSafetensors(`${dir}/model.safetensors`);
    const head = tensors.get("model.layers.2.shared_head.head.weight") as Tensor;
    const changed = Float32Array.from(head.dataSync());
    changed[5] += 0.5;
    tensors.set("model.layers.2.shared_head.head.weight", tensor(changed, { shape: head.shape }));
    await saveSafetensors(`${dir}/model.safetensors`, tensors);
    await rejects(
      () => loadModel(dir),
      /MTP tensor 'model\.layers\.2\.shared_head\.head\.weight' differs from 'lm_head\.weight' \(\|Δ\| = 0\.5\d* at element 5\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadModel() names the missing scale, a wrong dtype, a wrong shape and an index mismatch", async () => {
  const dir = await copyFixture("v3_fp8_sharded");
  try {
    const index = JSON.parse(await Deno.readTextFile(`${dir}/${INDEX_FILE}`));
    const scale = "model.layers.0.self_attn.o_proj.weight_scale_inv";
    const file = index.weight_map[scale];
    const { tensors, metadata } = await loadSafetensors(`${dir}/${file}`);
    const original = new Map(tensors);
    const codes = new Map(
      [...tensors].filter(([, t]) => t.dtype === "u8").map(([n]) => [n, "F8_E4M3" as const]),
    );
    const fp8 = Object.fromEntries(codes);
    // 1) no scale
    tensors.delete(scale);
    await saveSafetensors(`${dir}/${file}`, tensors, metadata, { fp8 });
    delete index.weight_map[scale];
    await Deno.writeTextFile(`${dir}/${INDEX_FILE}`, JSON.stringify(index));
    await rejects(
      () => loadModel(dir),
      /FP8 tensor 'model\.layers\.0\.self_attn\.o_proj\.weight' has no 'model\.layers\.0\.self_attn\.o_proj\.weight_scale_inv'/,
    );
    // 2) the index no longer lists a tensor its shard holds
    await saveSafetensors(`${dir}/${file}`, original, metadata, { fp8 });
    await rejects(
      () => loadModel(dir),
      new RegExp(
        `'${scale.replaceAll(".", "\\.")}' is in '${file}' but the index does not list it`,
      ),
    );
    index.weight_map[scale] = file;
    await Deno.writeTextFile(`${dir}/${INDEX_FILE}`, JSON.stringify(index));
    // 3) a scale grid of the wrong shape
    const wrong = new Map(original).set(scale, tensor([1, 2, 3], { shape: [3, 1] }));
    await saveSafetensors(`${dir}/${file}`, wrong, metadata, { fp8 });
    await rejects(
      () => loadModel(dir),
      /'model\.layers\.0\.self_attn\.o_proj\.weight_scale_inv' is \[3, 1\] F32, expected \[1, 1\] float scales/,
    );
    // 4) codes stored as plain U8
    await saveSafetensors(`${dir}/${file}`, original, metadata);
    await rejects(
      () => loadModel(dir),
      /has dtype 'U8', supported: F32, BF16, F16, F64, F8_E4M3 with a weight_scale_inv/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadModel() with tie_word_embeddings reads lm_head from the embedding; strict rejects extras", async () => {
  const dir = await copyFixture("v2_lite");
  try {
    const hf = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const { tensors, metadata } = await loadSafetensors(`${dir}/model.safetensors`);
    tensors.delete("lm_head.weight");
    tensors.set("model.extra.weight", tensor([1, 2]));
    await saveSafetensors(`${dir}/model.safetensors`, tensors, metadata);
    await rejects(() => loadModel(dir), /missing from the checkpoint: 'lm_head\.weight'/);
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ ...hf, tie_word_embeddings: true }),
    );
    await rejects(
      () => loadModel(dir),
      /not in the model: 'model\.extra\.weight' \(pass strict: false/,
    );
    const model = await loadModel(dir, { strict: false });
    deepStrictEqual(model.lmHead.weight.dataSync(), model.embedTokens.dataSync());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readCheckpointConfig() prefers ablate.json, then config.json's ablate entry, then maps config.json", async () => {
  strictEqual((await readCheckpointConfig(`${FIXTURES}/v2_lite`)).source, "config.json");
  const dir = await tempDir();
  try {
    await rejects(() => loadModel(dir), /has no config\.json/);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ model_type: "deepseek_v3" }));
    await rejects(
      () => loadModel(dir),
      /'num_hidden_layers' is missing, supported: a positive integer/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
