/**
 * WebGPU matmul variants (`lib/backend/webgpu/kernels/matmul.ts`): each kernel forced in turn —
 * the CPU-driver-shaped `block4`, `vec4` and `dot4`, the GPU-shaped `tiled`, and `auto` — against
 * the cpu reference on random inputs with awkward sizes (1, 3, 17, 127, 129, 64, 65, k not a
 * multiple of 4 or of the 16-wide K step), transposes, batches and views at offsets (16-byte
 * aligned and not); plus gradient checks through matmul with `tiled` forced and with `auto`. The variant choice itself (`resolveMatmulVariant`, `isCpuAdapter`)
 * is checked without an adapter; the kernels skip with a message where none exists.
 *
 * Tolerances: inputs are N(0, 1), so an output is a k-term dot product of size ~√k (k ≤ 132
 * here). Each variant accumulates in f32 in K order with FMAs, the cpu backend in f32 without,
 * so they differ by a few ulps of the partial sums: atol = rtol = 1e-4 holds with a wide margin.
 */
import { equal, ok, throws } from "node:assert/strict";
import type { Backend, MatmulSpec } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import type { MatmulVariant, WebGpuBackend } from "../../lib/backend/webgpu.ts";
import { isCpuAdapter } from "../../lib/backend/webgpu.ts";
import { resolveMatmulVariant } from "../../lib/backend/webgpu/kernels/matmul.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, assertTensorClose, randomArray } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";

const gpu = await webgpuForTests("WebGPU matmul tests");
const hasGpu = gpu !== null;
const cpu = new CpuBackend();

/** Forward tolerances (see the module comment). */
const ATOL = 1e-4, RTOL = 1e-4;

/** Same seeded N(0, 1) data on both backends. */
function pair(shape: number[], seed: number): { c: T.Tensor; g: T.Tensor } {
  const data = randomArray(shape.reduce((a, b) => a * b, 1), seed);
  return {
    c: T.tensor(data, { shape, backend: cpu }),
    g: T.tensor(data, { shape, backend: gpu as Backend }),
  };
}

function same(name: string, got: T.Tensor, want: T.Tensor, atol = ATOL, rtol = RTOL) {
  return assertTensorClose(name, got, want, atol, rtol);
}

/** Run `fn` with `variant` forced on the gpu backend, restoring `auto` after. */
async function withVariant(variant: MatmulVariant, fn: () => Promise<void>): Promise<void> {
  const backend = gpu as WebGpuBackend;
  backend.matmulVariant = variant;
  try {
    await fn();
  } finally {
    backend.matmulVariant = "auto";
  }
}

/** Record the specs the gpu backend's matmul receives until `stop()`. */
function recordSpecs(): { specs: MatmulSpec[]; stop: () => void } {
  const backend = gpu as WebGpuBackend;
  const specs: MatmulSpec[] = [];
  const original = backend.matmul;
  backend.matmul = (a, b, spec) => {
    specs.push(spec);
    return original.call(backend, a, b, spec);
  };
  return { specs, stop: () => void (backend.matmul = original) };
}

/** `[m, k, n]`: sizes around the 4-, 8- and 64-wide blocks and the 16-deep K step. */
const SHAPES = [
  [1, 1, 1],
  [3, 17, 5],
  [17, 3, 129],
  [127, 33, 1],
  [64, 64, 64],
  [65, 65, 65],
  [129, 17, 127],
  [1, 5, 4],
  [9, 1, 12],
  [17, 129, 132],
  [65, 16, 8],
];

const SPEC: MatmulSpec = {
  batch: 1,
  m: 8,
  n: 8,
  k: 8,
  transA: false,
  transB: false,
  offsetA: 0,
  offsetB: 0,
  strideA: 0,
  strideB: 0,
};

Deno.test("resolveMatmulVariant() picks register blocks on CPU drivers and tiles on GPUs", () => {
  equal(resolveMatmulVariant(SPEC, "auto", { cpuDriver: true }), "vec4");
  equal(resolveMatmulVariant({ ...SPEC, n: 6 }, "auto", { cpuDriver: true }), "block4");
  equal(resolveMatmulVariant({ ...SPEC, transB: true }, "auto", { cpuDriver: true }), "dot4");
  const odd = { ...SPEC, transA: true, transB: true, k: 7, offsetA: 1, offsetB: 3 };
  equal(resolveMatmulVariant(odd, "auto", { cpuDriver: true }), "dot4");
  equal(resolveMatmulVariant({ ...SPEC, offsetB: 2 }, "auto", { cpuDriver: true }), "block4");
  equal(resolveMatmulVariant({ ...SPEC, n: 1 }, "auto", { cpuDriver: true }), "dot4");
  equal(resolveMatmulVariant(SPEC, "auto", { cpuDriver: false }), "tiled");
  equal(resolveMatmulVariant({ ...SPEC, transB: true }, "auto"), "tiled");
  for (const v of ["block4", "dot4", "tiled"] as const) {
    equal(resolveMatmulVariant({ ...SPEC, transB: true }, v, { cpuDriver: true }), v);
  }
  throws(() => resolveMatmulVariant({ ...SPEC, transB: true }, "vec4"), /Cannot use the vec4/);
  throws(() => resolveMatmulVariant(SPEC, "dot4"), /Cannot use the dot4/);
  throws(() => resolveMatmulVariant(SPEC, "nope" as MatmulVariant), /Cannot choose matmul/);
  // The texture variant: by default only for products of at least TEXTURE_MIN_MACS that fit.
  const cpuTex = { cpuDriver: true, maxTextureDimension: 16384 };
  const big = { ...SPEC, m: 64, n: 64, k: 64 }; // 64³ = TEXTURE_MIN_MACS
  equal(resolveMatmulVariant(big, "auto", cpuTex), "texture");
  equal(resolveMatmulVariant({ ...big, k: 63 }, "auto", cpuTex), "vec4");
  equal(resolveMatmulVariant(big, "auto", { cpuDriver: true }), "vec4"); // no texture limit given
  equal(resolveMatmulVariant(big, "auto", { ...cpuTex, cpuDriver: false }), "tiled");
  equal(resolveMatmulVariant({ ...big, m: 20000 }, "auto", cpuTex), "vec4"); // A too tall
  equal(resolveMatmulVariant(SPEC, "texture", cpuTex), "texture"); // forced: any fitting size
  throws(() => resolveMatmulVariant({ ...big, k: 0 }, "texture", cpuTex), /Cannot use the texture/);
  const tall = { ...big, batch: 300, strideA: 4096 }; // A packed 16 × 19200
  throws(() => resolveMatmulVariant(tall, "texture", cpuTex), /16384/);
});

Deno.test("isCpuAdapter() recognises llvmpipe, lavapipe, SwiftShader and fallback adapters", () => {
  const info = (fields: Partial<GPUAdapterInfo>) =>
    ({
      vendor: "",
      architecture: "",
      device: "",
      description: "",
      isFallbackAdapter: false,
      ...fields,
    }) as GPUAdapterInfo;
  ok(isCpuAdapter(info({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" })));
  ok(isCpuAdapter(info({ device: "Lavapipe" })));
  ok(isCpuAdapter(info({ vendor: "google", architecture: "swiftshader" })));
  ok(isCpuAdapter(info({ isFallbackAdapter: true })));
  ok(!isCpuAdapter(info({ vendor: "nvidia", architecture: "hopper", description: "H200" })));
});

for (const variant of ["texture", "block4", "vec4", "dot4", "tiled", "auto"] as const) {
  Deno.test({
    name: `webgpu matmul '${variant}': plain, transposed, odd sizes equal the cpu backend`,
    ignore: !hasGpu,
    fn: () =>
      withVariant(variant, async () => {
        for (const [m, k, n] of SHAPES) {
          const a = pair([m, k], m), b = pair([k, n], n);
          const at = pair([k, m], 3), bt = pair([n, k], 4);
          const tag = `${variant} ${m}x${k}x${n}`;
          // vec4 reads B as vec4 rows: only for B not transposed with n % 4 = 0; dot4 reads
          // rows of B along K: only for B transposed (or n = 1, k = 1: both layouts coincide).
          const isVec4 = variant === "vec4", isDot4 = variant === "dot4";
          if ((!isVec4 || n % 4 === 0) && (!isDot4 || n === 1 || k === 1)) {
            await same(`${tag}`, T.matmul(a.g, b.g), T.matmul(a.c, b.c));
            await same(
              `${tag} Aᵀ`,
              T.matmul(T.transpose(at.g), b.g),
              T.matmul(T.transpose(at.c), b.c),
            );
          }
          if (!isVec4) {
            await same(
              `${tag} Bᵀ`,
              T.matmul(a.g, T.transpose(bt.g)),
              T.matmul(a.c, T.transpose(bt.c)),
            );
            await same(
              `${tag} AᵀBᵀ`,
              T.matmul(T.transpose(at.g), T.transpose(bt.g)),
              T.matmul(T.transpose(at.c), T.transpose(bt.c)),
            );
          }
        }
        if (variant === "vec4") {
          const a = pair([3, 5], 1), bt = pair([4, 5], 2);
          throws(() => T.matmul(a.g, T.transpose(bt.g)), /Cannot use the vec4 matmul kernel/);
        }
        if (variant === "dot4") {
          const a = pair([3, 5], 1), b = pair([5, 4], 2);
          throws(() => T.matmul(a.g, b.g), /Cannot use the dot4 matmul kernel/);
        }
      }),
  });

  // dot4 takes only A·Bᵀ: see the next test.
  if (variant !== "dot4") {
    Deno.test({
      name: `webgpu matmul '${variant}': batches, broadcast operands and views at offsets`,
      ignore: !hasGpu,
      fn: () =>
        withVariant(variant, async () => {
          const tag = variant;
          const x = pair([2, 3, 17, 9], 9);
          // n = 8 and 12 suit every variant (vec4 included); the tiled kernel also gets n = 65.
          for (const n of variant === "vec4" ? [8, 12] : [5, 8, 12, 65]) {
            const w = pair([9, n], 10 + n), y = pair([3, 9, n], 20 + n);
            await same(`${tag} batched×shared n=${n}`, T.matmul(x.g, w.g), T.matmul(x.c, w.c));
            await same(`${tag} batched×batched n=${n}`, T.matmul(x.g, y.g), T.matmul(x.c, y.c));
          }
          const p = pair([3, 65, 70], 30), q = pair([3, 70, 68], 31);
          await same(`${tag} 3×65×70×68`, T.matmul(p.g, q.g), T.matmul(p.c, q.c));
          // Views at offsets, each passed to the kernel without a copy (checked via the specs).
          const seen = recordSpecs();
          const lhs = pair([5, 3, 9], 15);
          const rows = pair([19, 12], 16), rhs = pair([12, 8], 17);
          await same(
            `${tag} A rows at offset 24`,
            T.matmul(T.slice(rows.g, 0, 2), rhs.g),
            T.matmul(T.slice(rows.c, 0, 2), rhs.c),
          );
          const lhs2 = pair([7, 9], 18);
          for (const n of variant === "vec4" ? [12] : [5, 12]) {
            const cols = pair([10, n], 19);
            await same(
              `${tag} B rows at offset ${n}`,
              T.matmul(lhs2.g, T.slice(cols.g, 0, 1)),
              T.matmul(lhs2.c, T.slice(cols.c, 0, 1)),
            );
          }
          const big = pair([6, 9, 12], 20);
          await same(
            `${tag} batched B at offset 108`,
            T.matmul(lhs.g, T.slice(big.g, 0, 1)),
            T.matmul(lhs.c, T.slice(big.c, 0, 1)),
          );
          const wide = pair([6, 12, 21], 21), rhs4 = pair([4, 12, 8], 22);
          await same(
            `${tag} batched Aᵀ at offset 252`,
            T.matmul(T.transpose(T.slice(wide.g, 0, 1, 5)), rhs4.g),
            T.matmul(T.transpose(T.slice(wide.c, 0, 1, 5)), rhs4.c),
          );
          if (variant !== "vec4") {
            const bigT = pair([6, 8, 9], 23);
            await same(
              `${tag} batched Bᵀ at offset 72`,
              T.matmul(lhs.g, T.transpose(T.slice(bigT.g, 0, 1))),
              T.matmul(lhs.c, T.transpose(T.slice(bigT.c, 0, 1))),
            );
          }
          seen.stop();
          const offsets = seen.specs.filter((s) => s.offsetA > 0 || s.offsetB > 0);
          equal(
            offsets.length,
            seen.specs.length,
            `${tag}: every view reached the kernel in place`,
          );
          ok(seen.specs.some((s) => s.transA && s.offsetA === 252 && s.strideA === 252));
        }),
    });
  }
}

for (const variant of ["texture", "block4", "dot4", "tiled", "auto"] as const) {
  Deno.test({
    name: `webgpu matmul '${variant}': batched A·Bᵀ, k % 4 ≠ 0 and views at unaligned offsets`,
    ignore: !hasGpu,
    fn: () =>
      withVariant(variant, async () => {
        const seen = recordSpecs();
        // k = 8, 12: vec4 loads in dot4; k = 9, 13: scalar loads and a k % 4 tail.
        for (const k of [8, 9, 12, 13]) {
          const x = pair([2, 3, 17, k], k);
          for (const n of [5, 16, 17, 33]) {
            const tag = `${variant} k=${k} n=${n}`;
            const w = pair([n, k], 10 + n), y = pair([2, 3, n, k], 20 + n);
            const wt = T.transpose(w.g), wtc = T.transpose(w.c);
            await same(`${tag} batched×shared`, T.matmul(x.g, wt), T.matmul(x.c, wtc));
            await same(
              `${tag} batched×batched`,
              T.matmul(x.g, T.transpose(y.g)),
              T.matmul(x.c, T.transpose(y.c)),
            );
          }
        }
        // A and B rows at offsets: 16 and 12 (aligned, k = 4), 5 and 13 (not).
        const flat = pair([200], 60);
        for (const [oa, ob, k] of [[16, 12, 4], [16, 12, 8], [5, 13, 8], [5, 13, 7]]) {
          const view = (t: T.Tensor, o: number, rows: number) =>
            T.reshape(T.slice(t, 0, o, o + rows * k), [rows, k]);
          await same(
            `${variant} A at ${oa}, B at ${ob}, k=${k}`,
            T.matmul(view(flat.g, oa, 9), T.transpose(view(flat.g, ob, 6))),
            T.matmul(view(flat.c, oa, 9), T.transpose(view(flat.c, ob, 6))),
          );
        }
        // Batched B at offset 72 (k = 9) and 64 (k = 8), and batched A at offset 27 (k = 9).
        const lhs = pair([5, 3, 9], 15), lhs8 = pair([5, 3, 8], 24);
        const bigT = pair([6, 8, 9], 23), big8 = pair([6, 8, 8], 25);
        await same(
          `${variant} batched Bᵀ at offset 72`,
          T.matmul(lhs.g, T.transpose(T.slice(bigT.g, 0, 1), 1, 2)),
          T.matmul(lhs.c, T.transpose(T.slice(bigT.c, 0, 1), 1, 2)),
        );
        await same(
          `${variant} batched Bᵀ at offset 64`,
          T.matmul(lhs8.g, T.transpose(T.slice(big8.g, 0, 1), 1, 2)),
          T.matmul(lhs8.c, T.transpose(T.slice(big8.c, 0, 1), 1, 2)),
        );
        await same(
          `${variant} batched A at offset 27`,
          T.matmul(T.slice(lhs.g, 0, 1), T.transpose(T.slice(bigT.g, 0, 2), 1, 2)),
          T.matmul(T.slice(lhs.c, 0, 1), T.transpose(T.slice(bigT.c, 0, 2), 1, 2)),
        );
        // Aᵀ·Bᵀ in a batch.
        const at = pair([4, 9, 17], 26);
        await same(
          `${variant} batched AᵀBᵀ`,
          T.matmul(T.transpose(at.g, 1, 2), T.transpose(T.slice(bigT.g, 0, 0, 4), 1, 2)),
          T.matmul(T.transpose(at.c, 1, 2), T.transpose(T.slice(bigT.c, 0, 0, 4), 1, 2)),
        );
        seen.stop();
        ok(seen.specs.every((s) => s.transB), `${variant}: every product reached it as A·Bᵀ`);
        ok(seen.specs.some((s) => s.offsetA % 4 !== 0 && s.k % 4 === 0), "unaligned A, k % 4 = 0");
        ok(seen.specs.some((s) => s.offsetB === 64 && s.batch === 5), "batched B at offset 64");
      }),
  });
}

Deno.test({
  name: "webgpu matmul 'tiled': analytic gradients equal central differences on the gpu",
  ignore: !hasGpu,
  fn: () =>
    withVariant("tiled", async () => {
      // L(A, B) = Σ (A · B) ⊙ R is bilinear, so a central difference with step 1 is exact up to
      // f32 rounding of L (|L| ≲ 30 here): atol 1e-4. The backward pass runs A·Bᵀ-style
      // (dA = dC · Bᵀ, transB) and batched Aᵀ·dC (dB, transA, summed over the batch).
      const shapes = [[2, 5, 7], [7, 6]];
      const values = shapes.map((s, i) => randomArray(s.reduce((x, y) => x * y, 1), 40 + i));
      const r = T.tensor(randomArray(2 * 5 * 6, 42), { shape: [2, 5, 6], backend: gpu as Backend });
      const loss = (a: T.Tensor, b: T.Tensor) => T.sum(T.mul(T.matmul(a, b), r));
      const make = (vals: number[][], grad: boolean) =>
        vals.map((v, i) =>
          T.tensor(v, { shape: shapes[i], backend: gpu as Backend, requiresGrad: grad })
        );
      const [a, b] = make(values, true);
      loss(a, b).backward();
      for (const [i, input] of [a, b].entries()) {
        const shifted: T.Tensor[] = [];
        for (let j = 0; j < values[i].length; j++) {
          for (const delta of [1, -1]) {
            const vals = values.map((v) => [...v]);
            vals[i][j] += delta;
            const [sa, sb] = make(vals, false);
            shifted.push(T.reshape(loss(sa, sb), [1]));
          }
        }
        const l = await T.concat(shifted).data(); // one read for every shifted loss
        const numeric = Array.from({ length: values[i].length }, (_, j) =>
          (l[2 * j] - l[2 * j + 1]) / 2);
        assertAllClose(Array.from(await (input.grad as T.Tensor).data()), numeric, {
          atol: 1e-4,
          rtol: 1e-4,
          message: `d/d input ${i}`,
        });
      }
    }),
});

for (const variant of ["tiled", "auto"] as const) {
  Deno.test({
    name: `webgpu matmul '${variant}': MLP + cross-entropy gradients equal the cpu backend's`,
    ignore: !hasGpu,
    fn: () =>
      withVariant(variant, async () => {
        // Widths 65 and 17 leave partial 64-wide tiles in every product, forward and backward.
        const x = pair([33, 17], 50), w1 = pair([17, 65], 51), w2 = pair([65, 5], 52);
        const targets = Array.from({ length: 33 }, (_, i) => (i * 7) % 5);
        const run = (xx: T.Tensor, a: T.Tensor, b: T.Tensor, backend: Backend) => {
          a.setRequiresGrad();
          b.setRequiresGrad();
          const t = T.tensor(targets, { dtype: "i32", backend });
          const h = T.gelu(T.matmul(xx, a));
          T.crossEntropy(T.matmul(h, b), t).backward();
        };
        run(x.c, w1.c, w2.c, cpu);
        run(x.g, w1.g, w2.g, gpu as Backend);
        await same("dW1", w1.g.grad as T.Tensor, w1.c.grad as T.Tensor, 1e-6, 1e-3);
        await same("dW2", w2.g.grad as T.Tensor, w2.c.grad as T.Tensor, 1e-6, 1e-3);
      }),
  });
}
