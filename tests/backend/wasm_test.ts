/**
 * wasm backend parity: matmul (every transpose variant, batch strides, awkward sizes) with 1
 * and 2 threads, and the other op families, against the cpu reference; gradients of a small
 * network match.
 */
import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { type BackendChoiceName, chooseBackend } from "../../lib/backend/mod.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend, type WasmBackend } from "../../lib/backend/wasm.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, randomArray } from "../_utils.ts";

const cpu = new CpuBackend();
const backends: WasmBackend[] = [
  await createWasmBackend({ threads: 1 }),
  await createWasmBackend({ threads: 2 }),
];

function on(b: T.Tensor["backend"], data: number[], shape: number[]): T.Tensor {
  return T.tensor(data, { shape, backend: b });
}

// Includes sizes large enough for the threaded paths: split by panels (100·300·67) and by rows
// (600·200·5, a single 8-column panel).
const SIZES = [[1, 1, 1], [3, 17, 5], [17, 3, 129], [127, 129, 1], [6, 8, 8], [100, 300, 67], [
  600,
  200,
  5,
]];

for (const w of backends) {
  Deno.test(`wasm (${w.threads} threads): matmul equals the cpu backend on awkward sizes`, () => {
    for (const [m, k, n] of SIZES) {
      const a = randomArray(m * k, m), b = randomArray(k * n, n);
      const want = T.matmul(on(cpu, a, [m, k]), on(cpu, b, [k, n]));
      const aw = on(w, a, [m, k]), bw = on(w, b, [k, n]);
      assertAllClose(T.matmul(aw, bw), want, { atol: 1e-4, message: `${m}x${k}x${n}` });
      // Transposed storage: pass the same matrices as transposed views.
      const at = T.contiguous(T.transpose(aw)), bt = T.contiguous(T.transpose(bw));
      assertAllClose(T.matmul(T.transpose(at), bw), want, { atol: 1e-4, message: "transA" });
      assertAllClose(T.matmul(aw, T.transpose(bt)), want, { atol: 1e-4, message: "transB" });
      assertAllClose(T.matmul(T.transpose(at), T.transpose(bt)), want, { atol: 1e-4 });
    }
  });

  Deno.test(`wasm (${w.threads} threads): batched and broadcast matmul, K over several blocks`, () => {
    const x = randomArray(3 * 2 * 7 * 600, 1),
      y = randomArray(600 * 9, 2),
      z = randomArray(2 * 600 * 5, 3);
    const want1 = T.matmul(on(cpu, x, [3, 2, 7, 600]), on(cpu, y, [600, 9]));
    assertAllClose(T.matmul(on(w, x, [3, 2, 7, 600]), on(w, y, [600, 9])), want1, { atol: 1e-3 });
    const want2 = T.matmul(on(cpu, x, [3, 2, 7, 600]), on(cpu, z, [2, 600, 5]));
    assertAllClose(T.matmul(on(w, x, [3, 2, 7, 600]), on(w, z, [2, 600, 5])), want2, {
      atol: 1e-3,
    });
    // Split by batch entries: 4 · 64³ multiply-adds.
    const p = randomArray(4 * 64 * 64, 7), q = randomArray(4 * 64 * 64, 8);
    const want3 = T.matmul(on(cpu, p, [4, 64, 64]), on(cpu, q, [4, 64, 64]));
    assertAllClose(T.matmul(on(w, p, [4, 64, 64]), on(w, q, [4, 64, 64])), want3, { atol: 1e-4 });
  });

  Deno.test(`wasm (${w.threads} threads): other op families and gradients equal the cpu backend`, () => {
    const run = (b: T.Tensor["backend"]) => {
      const x = on(b, randomArray(17 * 9, 4), [17, 9]);
      const w1 = on(b, randomArray(9 * 13, 5), [9, 13]).setRequiresGrad();
      const w2 = on(b, randomArray(13 * 5, 6), [13, 5]).setRequiresGrad();
      const t = T.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1], {
        dtype: "i32",
        backend: b,
      });
      const h = T.gelu(T.matmul(x, w1));
      const loss = T.crossEntropy(T.matmul(T.softmax(h), w2), t);
      loss.backward();
      const top = T.topk(h, 3);
      return [
        loss,
        w1.grad as T.Tensor,
        w2.grad as T.Tensor,
        top.values,
        T.cast(top.indices, "f32"),
        T.sum(h, 0),
      ];
    };
    const got = run(w), want = run(cpu);
    got.forEach((g, i) =>
      assertAllClose(g, want[i], { atol: 1e-5, rtol: 1e-4, message: `output ${i}` })
    );
  });
}

Deno.test("wasm: storages live in the shared heap, are reused after release, and u8 is one byte", () => {
  const w = backends[0];
  const a = T.zeros([1000], { backend: w });
  const used = w.heap.used;
  a.dispose();
  const b = T.zeros([1000], { backend: w });
  deepStrictEqual(w.heap.used, used);
  ok(b.storage instanceof Object);
  const bytes = T.tensor([1, 2, 255], { dtype: "u8", backend: w });
  deepStrictEqual(Array.from(bytes.dataSync()), [1, 2, 255]);
  deepStrictEqual((bytes.storage as unknown as { bytes: number }).bytes, 3);
});

Deno.test("chooseBackend('auto') prefers wasm over a CPU-fallback WebGPU adapter and says why", async () => {
  const { backend, reason } = await chooseBackend("auto");
  if (backend.name === "webgpu") {
    ok(/GPU adapter/.test(reason), reason); // a machine with a real GPU
  } else {
    deepStrictEqual(backend.name, "wasm");
    ok(/CPU fallback|no WebGPU adapter/.test(reason), reason);
    (backend as WasmBackend).close();
  }
  await rejects(
    () => chooseBackend("gpu" as BackendChoiceName),
    /Unknown backend 'gpu': expected one of 'auto', 'cpu', 'wasm', 'webgpu'/,
  );
});
