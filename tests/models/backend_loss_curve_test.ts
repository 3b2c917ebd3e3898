/**
 * Same seed, same loss curve on every backend: a tiny decoder (dense, and MLA + MoE + MTP)
 * trained for a few AdamW steps on cpu, on wasm with 1 and 2 threads, and on WebGPU where an
 * adapter exists (MoE routing through the async host reads there). Each backend rounds in its own
 * order (SIMD lanes, f32 accumulation, split ranges), so the curves are compared with a stated
 * tolerance rather than bit for bit: every step's loss within `rtol` 1e-5 of the cpu curve
 * (measured here: at most 3e-7). The curve must also fall, so a backend that silently failed
 * to train could not pass.
 */
import { ok } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend } from "../../lib/backend/wasm.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { tinyConfig } from "../../lib/models/decoder.ts";
import { assertAllClose } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";
import { lossCurve, tinyMla, tinyMoe } from "../_fixtures.ts";

/** Relative tolerance between a backend's loss and the cpu loss at every step. */
const RTOL = 1e-5;
const STEPS = 6;

const gpu = await webgpuForTests("WebGPU loss-curve test");

const DENSE = tinyConfig({ vocab: 64, dModel: 32, heads: 4, seqLen: 16 });
const MOE: ModelConfig = tinyConfig({
  vocab: 64,
  dModel: 32,
  heads: 4,
  seqLen: 16,
  attention: tinyMla({ kvLatentRank: 12 }),
  ffn: tinyMoe({ expertHidden: 16, denseHidden: 48 }),
  mtp: { depth: 1, lambda: 0.3 },
});

const cpu = new CpuBackend();
const wasm1 = await createWasmBackend({ threads: 1 });
const wasm2 = await createWasmBackend({ threads: 2, parallelMinElements: 1 });

for (const [name, config] of [["dense", DENSE], ["MLA + MoE + MTP", MOE]] as const) {
  Deno.test(`${name} decoder: same seed gives the same loss curve on cpu and wasm (1, 2 threads)`, async () => {
    const want = await lossCurve(cpu, config, STEPS);
    ok(want[STEPS - 1] < want[0], `cpu loss should fall: ${want}`);
    for (const w of [wasm1, wasm2]) {
      const got = await lossCurve(w, config, STEPS);
      assertAllClose(got, want, { atol: 0, rtol: RTOL, message: `${w.description}: ${got}` });
    }
  });
}

for (const [name, config] of [["dense", DENSE], ["MLA + MoE + MTP", MOE]] as const) {
  Deno.test({
    name: `${name} decoder: same seed gives the same loss curve on cpu and WebGPU`,
    ignore: gpu === null,
    fn: async () => {
      // Every fused WebGPU kernel a model uses (RMSNorm, SwiGLU, RoPE, attention with d ≠ d_v
      // in MLA, cross-entropy, AdamW, texture matmuls, MoE gathers) against the cpu curve.
      const want = await lossCurve(cpu, config, STEPS);
      const got = await lossCurve(gpu as Backend, config, STEPS);
      assertAllClose(got, want, { atol: 0, rtol: RTOL, message: `webgpu: ${got}` });
    },
  });
}

globalThis.addEventListener("unload", () => {
  wasm1.close();
  wasm2.close();
});
