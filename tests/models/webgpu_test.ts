/**
 * The decoder on WebGPU: loss and gradients of dense, MLA and MTP models equal the cpu
 * backend's (which the PyTorch fixtures check). MoE layers and generation read on the host
 * synchronously and run on cpu/wasm only for now (#4). Skips with a message without an adapter.
 */
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose } from "../_utils.ts";

let gpu: Backend | null = null;
let reason = "";
try {
  const { createWebGpuBackend } = await import("../../lib/backend/webgpu.ts");
  gpu = await createWebGpuBackend();
} catch (e) {
  reason = (e as Error).message;
}
if (gpu === null) console.log(`WebGPU decoder tests skipped: ${reason}`);

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
  ["GQA", tinyConfig({ attention: { kind: "gqa", groups: 1 } })],
  [
    "MLA with query compression",
    tinyConfig({
      attention: { kind: "mla", kvLatentRank: 8, queryLatentRank: 12, ropeHeadDim: 4 },
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
