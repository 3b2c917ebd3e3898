/**
 * wasm backend parity: matmul (every transpose variant, batch strides, awkward sizes) and every
 * SIMD kernel family (unary, binary with each broadcast pattern, strided views, reductions,
 * softmax / log-softmax / cross-entropy, index select/add, fill, copy, assign) against the cpu
 * reference on awkward sizes (1, 3, 17, 127, 129, 1000), with 1 thread and with 3 threads
 * splitting even tiny ops; analytic gradients on wasm against f64 central differences.
 */
import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { type BackendChoiceName, chooseBackend } from "../../lib/backend/mod.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend, type WasmBackend } from "../../lib/backend/wasm.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, F64, randomArray } from "../_utils.ts";

const cpu = new CpuBackend();
const backends: WasmBackend[] = [
  await createWasmBackend({ threads: 1 }),
  // Every elementwise, reduction and row op split among threads, however small: ranges of 0,
  // 1 and uneven lengths per thread.
  await createWasmBackend({ threads: 3, parallelMinElements: 1 }),
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

/** Awkward sizes: below, at and around the 4-lane vector width and the split boundaries. */
const AWKWARD = [1, 3, 17, 127, 129, 1000];

/** Inputs with special values in front: ±0, large magnitudes (exp overflow/underflow). */
function inputs(n: number, seed: number, scale = 3): number[] {
  const v = randomArray(n, seed, scale);
  [0, -0, 100, -100, 88.5, -88].forEach((x, i) => i < n && (v[i] = x));
  return v;
}

const UNARY_OPS = [
  ["neg", T.neg],
  ["abs", T.abs],
  ["sqrt", (x: T.Tensor) => T.sqrt(T.abs(x))],
  ["rsqrt", (x: T.Tensor) => T.rsqrt(T.add(T.abs(x), 0.5))],
  ["reciprocal", (x: T.Tensor) => T.reciprocal(T.add(T.abs(x), 0.5))],
  ["square", T.square],
  ["exp", T.exp],
  ["sigmoid", T.sigmoid],
  ["silu", T.silu],
  ["relu", T.relu],
  ["gelu (cpu fallback)", T.gelu],
  ["tanh (cpu fallback)", T.tanh],
] as const;

const BINARY_OPS = [
  ["add", T.add],
  ["sub", T.sub],
  ["mul", T.mul],
  ["div", (a: T.Tensor, b: T.Tensor) => T.div(a, T.add(T.abs(b), 0.25))],
  ["maximum", T.maximum],
  ["minimum", T.minimum],
  ["lt", T.lt],
  ["ge", T.ge],
  ["eq", (a: T.Tensor, b: T.Tensor) => T.eq(T.round(a), T.round(b))],
  ["ne", (a: T.Tensor, b: T.Tensor) => T.ne(T.round(a), T.round(b))],
  ["pow (cpu fallback)", (a: T.Tensor, b: T.Tensor) => T.pow(T.abs(a), b)],
] as const;

/** Shapes `[a-shape, b-shape]` covering each broadcast pattern and a 3-D block walk. */
function broadcastCases(n: number): [number[], number[]][] {
  return [
    [[n], [n]],
    [[3, n], [n]],
    [[n, 3], [n, 1]],
    [[1], [2, n]],
    [[2, 3, n], [2, 1, n]],
    [[5, 2, 3, n], [1, 2, 1, n]],
  ];
}

for (const w of backends) {
  const tag = `wasm (${w.threads} threads)`;
  const both = <R>(fn: (b: T.Tensor["backend"]) => R): [R, R] => [fn(w), fn(cpu)];

  Deno.test(`${tag}: unary kernels equal the cpu backend on awkward sizes and strided views`, () => {
    for (const n of AWKWARD) {
      for (const [name, op] of UNARY_OPS) {
        const [got, want] = both((b) => {
          const x = on(b, inputs(3 * n, n), [3, n]);
          return [op(x), op(T.transpose(x)), op(T.slice(x, 1, 0, n))];
        });
        got.forEach((g, i) =>
          assertAllClose(g, want[i], { atol: 1e-6, rtol: 2e-6, message: `${name} n=${n} #${i}` })
        );
      }
    }
  });

  Deno.test(`${tag}: binary kernels equal the cpu backend for every broadcast pattern`, () => {
    for (const n of AWKWARD) {
      for (const [sa, sb] of broadcastCases(n)) {
        for (const [name, op] of BINARY_OPS) {
          const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
          const [got, want] = both((b) => {
            const x = on(b, inputs(size(sa), n), sa), y = on(b, inputs(size(sb), n + 1), sb);
            // Swapped operands (scalar on the left), and a strided left operand (step 2).
            const last = sa[sa.length - 1];
            const pairs = T.reshape(T.concat([x, x], -1), [...sa.slice(0, -1), last, 2]);
            const rope = T.slice(pairs, -1, 0, 1);
            return [op(x, y), op(y, x), op(T.reshape(rope, sa), y)];
          });
          got.forEach((g, i) =>
            assertAllClose(g, want[i], {
              atol: 1e-6,
              rtol: 1e-6,
              message: `${name} [${sa}] ⊕ [${sb}] #${i}`,
            })
          );
        }
      }
    }
  });

  Deno.test(`${tag}: reductions, softmax and cross-entropy equal the cpu backend`, () => {
    for (const n of AWKWARD) {
      const [got, want] = both((b) => {
        const x = on(b, inputs(7 * n, 2 * n, 2), [7, n]).setRequiresGrad();
        const t = T.tensor(Array.from({ length: 7 }, (_, i) => (i === 2 ? -100 : (i * 5) % n)), {
          dtype: "i32",
          backend: b,
        });
        const ce = T.crossEntropy(x, t);
        ce.backward();
        return [
          T.sum(x, -1),
          T.max(x, -1),
          T.min(x, -1),
          T.sum(x, 0),
          T.max(x, 0),
          T.sum(T.reshape(x, [7, n, 1]), 1),
          T.max(T.reshape(T.concat([x, x, x], 0), [3, 7, n]), 1), // outer slices split
          T.softmax(x, -1),
          T.logSoftmax(x, -1),
          T.softmax(x, 0),
          ce,
          x.grad as T.Tensor,
        ];
      });
      got.forEach((g, i) =>
        assertAllClose(g, want[i], { atol: 2e-5, rtol: 1e-5, message: `n=${n} output ${i}` })
      );
    }
  });

  Deno.test(`${tag}: fill, copy, assign, embedding select and add equal the cpu backend`, () => {
    for (const n of AWKWARD) {
      const [got, want] = both((b) => {
        const x = on(b, randomArray(5 * n, n), [5, n]);
        const m = Math.min(n, 17);
        const ids = T.tensor(Array.from({ length: 2 * m }, (_, i) => (i * 7) % 5), {
          dtype: "i32",
          shape: [m, 2],
          backend: b,
        });
        const table = on(b, randomArray(5 * n, 3), [5, n]).setRequiresGrad();
        const e = T.embedding(table, ids);
        T.sum(T.mul(e, on(b, randomArray(2 * m * n, 4), [m, 2, n]))).backward();
        const target = T.zeros([n, 5], { backend: b });
        target.assign(T.transpose(x));
        const ints = T.cast(T.full([n], 7, { backend: b }), "i32");
        return [
          T.full([n], -2.5, { backend: b }),
          T.cast(ints, "f32"),
          T.contiguous(T.transpose(x)),
          T.contiguous(T.slice(x, 1, 1)),
          target,
          e,
          table.grad as T.Tensor,
        ];
      });
      got.forEach((g, i) => assertAllClose(g, want[i], { atol: 1e-5, message: `n=${n} #${i}` }));
    }
    const table = T.zeros([4, 3], { backend: w });
    const bad = T.tensor([1, 4], { dtype: "i32", backend: w });
    throws(
      () => T.embedding(table, bad),
      /Cannot select rows: index 4 at position 1 is outside \[0, 4\)/,
    );
    const t = T.tensor([0, 9], { dtype: "i32", backend: w });
    throws(() => T.crossEntropy(T.zeros([2, 3], { backend: w }), t), /target 9 at row 1/);
  });

  Deno.test(`${tag}: analytic gradients equal f64 central differences`, () => {
    // x → RMSNorm → silu MLP → softmax attention-like mix → cross-entropy, on wasm (f32);
    // numeric gradients of the same function on the float64 cpu backend.
    const shapes = [[6, 17], [17, 9], [9, 5]];
    const values = shapes.map((s, i) => randomArray(s[0] * s[1], 40 + i, 0.7));
    const f = (b: T.Tensor["backend"], x: T.Tensor, w1: T.Tensor, w2: T.Tensor) => {
      const ms = T.mean(T.square(x), -1, { keepDims: true });
      const h = T.mul(x, T.rsqrt(T.add(ms, 1e-6)));
      const g = T.silu(T.matmul(h, w1));
      const mixed = T.matmul(T.softmax(T.matmul(g, T.transpose(g)), -1), g);
      const t = T.tensor([0, 1, 2, 3, 4, 0], { dtype: "i32", backend: b });
      return T.crossEntropy(T.matmul(T.sigmoid(mixed), w2), t);
    };
    const params = values.map((v, i) => on(w, v, shapes[i]).setRequiresGrad());
    f(w, params[0], params[1], params[2]).backward();
    const eps = 1e-5;
    values.forEach((v, i) => {
      const numeric = v.map((_, j) => {
        const at = (d: number) => {
          const vals = values.map((u) => [...u]);
          vals[i][j] += d;
          const ts = vals.map((u, k) => on(F64, u, shapes[k]));
          return f(F64, ts[0], ts[1], ts[2]).itemSync();
        };
        return (at(eps) - at(-eps)) / (2 * eps);
      });
      assertAllClose(params[i].grad as T.Tensor, numeric, {
        atol: 1e-5,
        rtol: 1e-3,
        message: `input ${i}`,
      });
    });
  });
}
