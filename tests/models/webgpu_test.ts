/**
 * The decoder on WebGPU: loss and gradients of dense, MLA, MTP and MoE models equal the cpu
 * backend's (which the PyTorch fixtures check); MoE routing and sampling read on the host through
 * the async paths (`lossAsync`, `generateAsync`, `speculativeGenerateAsync`, lib/nn/steps.ts).
 * Skips with a message without an adapter.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import {
  generate,
  generateAsync,
  speculativeGenerate,
  speculativeGenerateAsync,
} from "../../lib/models/generate.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";
import { tinyMla, tinyMoe } from "../_fixtures.ts";

const gpu = await webgpuForTests("WebGPU decoder tests");

async function lossAndGrads(backend: Backend, config: ModelConfig): Promise<number[][]> {
  const { loss, params } = withBackend(backend, () => {
    const model = new Decoder(config, new T.Rng(0));
    const ids = T.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], { dtype: "i32" });
    const targets = T.tensor([[2, 3, 4, 5, 6, 7], [5, 4, 3, 2, 1, 0]], { dtype: "i32" });
    const out = model.loss(ids, targets);
    out.loss.backward();
    return {
      loss: out.loss,
      params: [...model.parameters().values()].filter((p) => p.requiresGrad),
    };
  });
  const rows = [[await loss.item()]];
  for (const p of params) rows.push(Array.from(await (p.grad as T.Tensor).data()));
  return rows;
}

const CONFIGS: [string, ModelConfig][] = [
  ["MHA + MTP depth 2", tinyConfig({ mtp: { depth: 2, lambda: 0.3 } })],
  ["GQA", tinyConfig({ attention: { kind: "gqa", kvHeads: 1 } })],
  [
    "MLA with query compression",
    tinyConfig({
      attention: tinyMla({ kvLatentRank: 8, queryLatentRank: 12 }),
    }),
  ],
];

for (const [name, config] of CONFIGS) {
  Deno.test({
    name: `Decoder (${name}) on WebGPU: loss and every gradient equal the cpu backend's`,
    ignore: gpu === null,
    fn: async () => {
      const want = await lossAndGrads(new CpuBackend(), config);
      const got = await lossAndGrads(gpu as Backend, config);
      got.forEach((g, i) =>
        assertAllClose(g, want[i], { atol: 1e-5, rtol: 1e-4, message: `tensor ${i}` })
      );
    },
  });
}

// MoE (routing read on the host, awaited on WebGPU) with group-limited routing, MLA and MTP.
const MOE_CONFIG = tinyConfig({
  attention: tinyMla({ kvLatentRank: 8 }),
  ffn: tinyMoe({ gamma: 0.05, alpha: 0.01, routeScale: 2.5, groups: 2 }),
  mtp: { depth: 1, lambda: 0.3 },
});

/** Loss, every gradient and the aux-free biases after one bias update, via `lossAsync`. */
async function moeLossGradsBias(backend: Backend): Promise<number[][]> {
  const model = withBackend(backend, () => new Decoder(MOE_CONFIG, new T.Rng(0)));
  const ids = withBackend(
    backend,
    () => T.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], { dtype: "i32" }),
  );
  const targets = withBackend(
    backend,
    () => T.tensor([[2, 3, 4, 5, 6, 7], [5, 4, 3, 2, 1, 0]], { dtype: "i32" }),
  );
  const out = await withBackend(backend, () => model.lossAsync(ids, targets));
  withBackend(backend, () => out.loss.backward());
  const rows = [[await out.loss.item()], [await out.mainLoss.item()]];
  for (const [, p] of model.parameters()) {
    if (p.requiresGrad) rows.push(Array.from(await (p.grad as T.Tensor).data()));
  }
  withBackend(backend, () => model.afterOptimizerStep());
  for (const [name, p] of model.parameters()) {
    if (name.endsWith("e_score_correction_bias")) rows.push(Array.from(await p.data()));
  }
  return rows;
}

Deno.test({
  name:
    "Decoder (MLA + MoE + MTP) lossAsync on WebGPU: loss, every gradient, bias update as on cpu",
  ignore: gpu === null,
  fn: async () => {
    const want = await moeLossGradsBias(new CpuBackend());
    const sync = withBackend(new CpuBackend(), () => {
      const model = new Decoder(MOE_CONFIG, new T.Rng(0));
      const ids = T.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], { dtype: "i32" });
      const targets = T.tensor([[2, 3, 4, 5, 6, 7], [5, 4, 3, 2, 1, 0]], { dtype: "i32" });
      return model.loss(ids, targets).loss.dataSync()[0];
    });
    assertAllClose([want[0][0]], [sync], { atol: 0, rtol: 0, message: "lossAsync = loss (cpu)" });
    const got = await moeLossGradsBias(gpu as Backend);
    strictEqual(got.length, want.length);
    got.forEach((g, i) =>
      assertAllClose(g, want[i], { atol: 1e-5, rtol: 1e-4, message: `tensor ${i}` })
    );
  },
});

Deno.test({
  name:
    "generateAsync / speculativeGenerateAsync on WebGPU: the cpu's greedy tokens; cache = full forward",
  ignore: gpu === null,
  fn: async () => {
    const prompt = [3, 1, 4, 1, 5];
    const cpuModel = withBackend(new CpuBackend(), () => new Decoder(MOE_CONFIG, new T.Rng(1)));
    const want = generate(cpuModel, prompt, { maxNewTokens: 6 }).tokens;
    const cpuSpec = speculativeGenerate(cpuModel, prompt, { maxNewTokens: 6 });
    const gpuModel = withBackend(gpu as Backend, () => new Decoder(MOE_CONFIG, new T.Rng(1)));
    const plain = await withBackend(
      gpu as Backend,
      () => generateAsync(gpuModel, prompt, { maxNewTokens: 6 }),
    );
    deepStrictEqual(plain.tokens, want);
    const spec = await withBackend(
      gpu as Backend,
      () => speculativeGenerateAsync(gpuModel, prompt, { maxNewTokens: 6 }),
    );
    deepStrictEqual(spec.tokens, want);
    // The same drafts accepted and rejected as on the cpu.
    deepStrictEqual(
      [spec.drafted, spec.accepted, spec.mainSteps],
      [cpuSpec.drafted, cpuSpec.accepted, cpuSpec.mainSteps],
    );
    // Logits through the KV cache (prompt, then one token) equal a full forward's last row.
    const all = [...prompt, want[0]];
    const full = await withBackend(gpu as Backend, async () => {
      const logits = await gpuModel.forwardAsync(
        T.tensor([all], { dtype: "i32", backend: gpu as Backend }),
      );
      return Array.from(await logits.data()).slice(-MOE_CONFIG.vocab);
    });
    const cached = await withBackend(gpu as Backend, async () => {
      const cache = gpuModel.newCache();
      await gpuModel.forwardAsync(T.tensor([prompt], { dtype: "i32", backend: gpu as Backend }), {
        cache,
      });
      const last = await gpuModel.forwardAsync(
        T.tensor([[want[0]]], { dtype: "i32", backend: gpu as Backend }),
        { cache },
      );
      return Array.from(await last.data());
    });
    assertAllClose(cached, full, { atol: 1e-5, rtol: 1e-4 });
  },
});
