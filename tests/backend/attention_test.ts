/**
 * Fused causal attention (`Backend.attention` / `attentionBackward`, `fusedCausalAttention`):
 * the cpu reference kernel against the composed path (matmul, mask, softmax, matmul), a
 * gradcheck, and the WebGPU kernels against the cpu reference on awkward shapes (skipped where
 * no adapter exists).
 */
import { ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { causalAttention } from "../../lib/nn/attention.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, F64, gradOf, randomArray } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";

const gpu = await webgpuForTests("WebGPU attention tests");
const cpu = new CpuBackend();

/** q, k, v shapes: MHA, GQA `[B, G, R, T, d]` vs `[B, G, 1, S, d]`, MLA latent (d ≠ d_v), …. */
const CASES: [string, number[], number[], number[]][] = [
  ["MHA, T = S", [2, 3, 5, 4], [2, 3, 5, 4], [2, 3, 5, 4]],
  ["GQA, S > T", [2, 2, 3, 5, 6], [2, 2, 1, 7, 6], [2, 2, 1, 7, 6]],
  ["MLA latent, d ≠ d_v", [2, 3, 4, 9], [2, 1, 6, 9], [2, 1, 6, 5]],
  ["d = 1, T = 1, S = 5", [3, 1, 1], [3, 5, 1], [3, 5, 1]],
  ["d = 3, d_v = 17, T = S = 17", [1, 17, 3], [1, 17, 3], [1, 17, 17]],
  ["no leading axes", [5, 4], [9, 4], [9, 2]],
  ["queries broadcast over key heads", [1, 5, 4], [3, 5, 4], [3, 5, 4]],
  ["keys broadcast over a batch axis", [2, 3, 4, 4], [1, 3, 4, 4], [2, 3, 4, 4]],
];

/** Random leaves of `shapes` on `backend` (seeded by position). */
function leaves(backend: Backend, shapes: number[][], seed: number): T.Tensor[] {
  return shapes.map((shape, i) =>
    T.tensor(randomArray(T.shapeSize(shape), seed + i), { shape, backend, requiresGrad: true })
  );
}

/** Output and input gradients of `Σ attention(q, k, v) ⊙ R` for a fixed random `R`. */
async function run(
  backend: Backend,
  shapes: number[][],
  fused: boolean,
  scale = 0.7,
): Promise<number[][]> {
  const [q, k, v] = leaves(backend, shapes, 11);
  const y = causalAttention(q, k, v, { scale, fused });
  const r = T.tensor(randomArray(y.size, 99), { shape: y.shape, backend });
  T.sum(T.mul(y, r)).backward();
  const all = [y, gradOf(q), gradOf(k), gradOf(v)];
  return await Promise.all(all.map(async (t) => Array.from(await t.data())));
}

const NAMES = ["output", "dq", "dk", "dv"];

Deno.test("fusedCausalAttention() equals the composed path on cpu: outputs and q, k, v gradients", async () => {
  for (const [name, ...shapes] of CASES) {
    const fused = await run(F64, shapes, true), composed = await run(F64, shapes, false);
    fused.forEach((got, i) => {
      assertAllClose(got, composed[i], {
        atol: 1e-12,
        rtol: 1e-10,
        message: `${name}: ${NAMES[i]}`,
      });
    });
  }
});

Deno.test("causalAttention() takes the fused op on backends with the kernel, unless fused: false", () => {
  ok(T.hasFusedAttention(cpu));
  const x = T.tensor([[1], [1]], { backend: cpu, requiresGrad: true });
  const k = T.tensor([[0], [0]], { backend: cpu }), v = T.tensor([[2], [4]], { backend: cpu });
  const fused = causalAttention(x, k, v); // reshape(fused op)
  strictEqual(fused.node?.inputs[0].node?.op, "causalAttention");
  strictEqual(causalAttention(x, k, v, { fused: false }).node?.op, "matmul");
  assertAllClose(fused, [[2], [3]]);
});

Deno.test("fusedCausalAttention() rejects mismatched shapes, fewer keys than queries, backends without the kernel", () => {
  const t = (shape: number[]) => T.zeros(shape, { backend: cpu });
  throws(() => T.fusedCausalAttention(t([4, 2]), t([3, 2]), t([3, 2])), /at least as many keys/);
  throws(
    () => T.fusedCausalAttention(t([4, 2]), t([4, 3]), t([4, 2])),
    /Cannot attend with q \[4, 2\]/,
  );
  const bare = new CpuBackend();
  Object.defineProperty(bare, "attention", { value: undefined });
  const z = T.zeros([2, 2], { backend: bare });
  throws(() => T.fusedCausalAttention(z, z, z), /has no attention kernel/);
  assertAllClose(causalAttention(z, z, z), [[0, 0], [0, 0]]); // the composed fallback
});

Deno.test("gradcheck: fusedCausalAttention with a shared key head, S > T and d ≠ d_v", () => {
  checkOp(
    [[1, 2, 3, 3], [1, 1, 5, 3], [1, 1, 5, 2]],
    (q, k, v) => T.fusedCausalAttention(q, k, v, { scale: 0.8 }),
  );
  checkOp([[2, 4, 5], [2, 4, 5], [2, 4, 1]], (q, k, v) => T.fusedCausalAttention(q, k, v));
});

/** WebGPU cases: every width path (scalar, vec4) and T, S in {1, 5, 17, 129}. */
const GPU_CASES: [string, number[], number[], number[]][] = [
  ...CASES,
  ["d = 64, T = S = 129", [2, 129, 64], [2, 129, 64], [2, 129, 64]],
  ["d = 17, S = 129 > T = 17", [2, 3, 17, 17], [2, 1, 129, 17], [2, 1, 129, 17]],
  ["d = 8, d_v = 12, T = 1, S = 17 (decode)", [4, 2, 1, 8], [4, 1, 17, 8], [4, 1, 17, 12]],
  ["d = 16, GQA R = 4, T = S = 33", [1, 2, 4, 33, 16], [1, 2, 1, 33, 16], [1, 2, 1, 33, 16]],
];

Deno.test({
  name: "webgpu: fused attention forward and q, k, v gradients equal the cpu reference",
  ignore: gpu === null,
  fn: async () => {
    const backend = gpu as Backend;
    for (const [name, ...shapes] of GPU_CASES) {
      const got = await run(backend, shapes, true), want = await run(cpu, shapes, true);
      got.forEach((g, i) => {
        assertAllClose(g, want[i], { atol: 1e-4, rtol: 1e-3, message: `${name}: ${NAMES[i]}` });
      });
    }
  },
});

Deno.test({
  name: "webgpu: fused attention with large scores (online softmax rescaling) equals cpu",
  ignore: gpu === null,
  fn: async () => {
    const shapes = [[2, 37, 4], [2, 41, 4], [2, 41, 5]];
    // scale 8 makes the scores span hundreds: any missed rescale overflows or misweights
    const got = await run(gpu as Backend, shapes, true, 8), want = await run(cpu, shapes, false, 8);
    got.forEach((g, i) => {
      assertAllClose(g, want[i], { atol: 1e-3, rtol: 1e-3, message: `scale 8: ${NAMES[i]}` });
    });
  },
});
