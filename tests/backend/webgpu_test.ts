/**
 * WebGPU backend parity: every op family on random inputs (awkward shapes included) against
 * the cpu reference, forward and gradients. Skips with a message where no adapter exists.
 */
import { ok, rejects } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertTensorClose, randomArray } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";
import { binaryKernel, castKernel } from "../../lib/backend/webgpu/kernels/elementwise.ts";

const gpu = await webgpuForTests("WebGPU tests");
const hasGpu = gpu !== null;
const cpu = new CpuBackend();

/** Same data on both backends. */
function pair(
  shape: number[],
  seed: number,
  opts: { dtype?: T.DType; positive?: boolean; ints?: number } = {},
) {
  const n = shape.reduce((a, b) => a * b, 1);
  let data = randomArray(n, seed);
  if (opts.positive) data = data.map((x) => Math.abs(x) + 0.5);
  if (opts.ints !== undefined) {
    const r = new T.Rng(seed);
    data = data.map(() => r.int(opts.ints as number));
  }
  const dtype = opts.dtype ?? "f32";
  return {
    c: T.tensor(data, { shape, dtype, backend: cpu }),
    g: T.tensor(data, { shape, dtype, backend: gpu as Backend }),
  };
}

function same(name: string, got: T.Tensor, want: T.Tensor, atol = 1e-5, rtol = 1e-4) {
  return assertTensorClose(name, got, want, atol, rtol);
}

const SHAPES = [[1], [3], [17, 3], [127, 5], [2, 129], [3, 1, 17]];

Deno.test({
  name:
    "webgpu: elementwise fast path (row-major inputs at any offset) and its mixes with strided inputs equal cpu",
  ignore: !hasGpu,
  fn: async () => {
    const a = pair([9, 7, 5], 101), b = pair([9, 7, 5], 102), row = pair([5], 103);
    // rows 2..6 of a [9, 7, 5]: contiguous at offset 70; a transpose is not
    const sl = (t: T.Tensor) => T.slice(t, 0, 2, 6);
    const tr = (t: T.Tensor) => T.transpose(T.slice(t, 1, 0, 5), 1, 2);
    await same("exp(slice)", T.exp(sl(a.g)), T.exp(sl(a.c)));
    await same("exp(transpose)", T.exp(tr(a.g)), T.exp(tr(a.c)));
    await same("slice + slice", T.add(sl(a.g), sl(b.g)), T.add(sl(a.c), sl(b.c)));
    await same(
      "slice * full",
      T.mul(sl(a.g), T.slice(b.g, 0, 5, 9)),
      T.mul(sl(a.c), T.slice(b.c, 0, 5, 9)),
    );
    await same("slice - broadcast row", T.sub(sl(a.g), row.g), T.sub(sl(a.c), row.c));
    await same("broadcast row / slice", T.div(row.g, sl(b.g)), T.div(row.c, sl(b.c)));
    await same("transpose + slice", T.add(tr(a.g), tr(b.g)), T.add(tr(a.c), tr(b.c)));
    await same(
      "max(slice, size-1 dims)",
      T.maximum(T.slice(a.g, 1, 3, 4), T.slice(b.g, 1, 4, 5)),
      T.maximum(T.slice(a.c, 1, 3, 4), T.slice(b.c, 1, 4, 5)),
    );
  },
});

Deno.test({
  name: "webgpu: unary and binary ops (with broadcasting) equal the cpu backend",
  ignore: !hasGpu,
  fn: async () => {
    const unary: [string, (t: T.Tensor) => T.Tensor, boolean][] = [
      ["neg", T.neg, false],
      ["abs", T.abs, false],
      ["exp", T.exp, false],
      ["log", T.log, true],
      ["sqrt", T.sqrt, true],
      ["rsqrt", T.rsqrt, true],
      ["reciprocal", T.reciprocal, true],
      ["square", T.square, false],
      ["sin", T.sin, false],
      ["cos", T.cos, false],
      ["tanh", T.tanh, false],
      ["sigmoid", T.sigmoid, false],
      ["relu", T.relu, false],
      ["silu", T.silu, false],
      ["gelu", T.gelu, false],
      ["sign", T.sign, false],
      ["floor", T.floor, false],
      ["round", T.round, false],
    ];
    for (const shape of SHAPES) {
      for (const [name, op, positive] of unary) {
        const { c, g } = pair(shape, 1, { positive });
        await same(`${name} ${shape}`, op(g), op(c));
      }
    }
    const binary: [string, (a: T.Tensor, b: T.Tensor) => T.Tensor][] = [
      ["add", T.add],
      ["sub", T.sub],
      ["mul", T.mul],
      ["div", T.div],
      ["maximum", T.maximum],
      ["minimum", T.minimum],
      ["eq", T.eq],
      ["lt", T.lt],
      ["ge", T.ge],
    ];
    for (const [sa, sb] of [[[17, 3], [3]], [[3, 1, 17], [5, 1]], [[1], [127, 5]]]) {
      for (const [name, op] of binary) {
        const a = pair(sa, 2), b = pair(sb, 3);
        await same(`${name} ${sa}·${sb}`, op(a.g, b.g), op(a.c, b.c));
      }
      const a = pair(sa, 4, { positive: true }), b = pair(sb, 5);
      await same(`pow ${sa}`, T.pow(a.g, b.g), T.pow(a.c, b.c), 1e-5, 1e-4);
    }
    const i = pair([17], 6, { dtype: "i32", ints: 50 }),
      j = pair([17], 7, { dtype: "i32", ints: 7 });
    await same("i32 add", T.add(i.g, j.g), T.add(i.c, j.c));
    await same("i32 div", T.div(i.g, T.add(j.g, 1)), T.div(i.c, T.add(j.c, 1)));
  },
});

Deno.test({
  name: "webgpu: views, where, cast, concat, reductions equal the cpu backend",
  ignore: !hasGpu,
  fn: async () => {
    const { c, g } = pair([3, 17, 5], 8);
    await same(
      "transpose+contiguous",
      T.contiguous(T.transpose(g, 0, 2)),
      T.contiguous(T.transpose(c, 0, 2)),
    );
    await same("slice", T.slice(g, 1, 2, 11), T.slice(c, 1, 2, 11));
    await same(
      "expand",
      T.expand(T.slice(g, 1, 0, 1), [3, 4, 5]),
      T.expand(T.slice(c, 1, 0, 1), [3, 4, 5]),
    );
    await same("where", T.where(T.gt(g, 0), g, T.mul(g, 2)), T.where(T.gt(c, 0), c, T.mul(c, 2)));
    await same("cast i32", T.cast(T.mul(g, 10), "i32"), T.cast(T.mul(c, 10), "i32"));
    await same("cast u8", T.cast(T.mul(g, 100), "u8"), T.cast(T.mul(c, 100), "u8"));
    await same("concat", T.concat([g, T.neg(g)], 1), T.concat([c, T.neg(c)], 1));
    for (const axes of [undefined, 0, 1, 2, [0, 2], [1, 2]] as T.Axes[]) {
      await same(`sum ${axes}`, T.sum(g, axes), T.sum(c, axes), 1e-4);
      await same(`max ${axes}`, T.max(g, axes), T.max(c, axes));
      await same(`min ${axes}`, T.min(g, axes), T.min(c, axes));
    }
    await same("argmax", T.argmax(g, 1), T.argmax(c, 1));
    await same("mean", T.mean(g, -1), T.mean(c, -1));
  },
});

Deno.test({
  name: "webgpu: vec4 elementwise paths (aligned last dims, strided, broadcast, assign) equal cpu",
  ignore: !hasGpu,
  fn: async () => {
    // Last dims that are multiples of 4 take the vec4 kernels (four elements per invocation);
    // views at offsets that are not multiples of 4 fall back to the scalar ones. Both checked.
    const { c, g } = pair([3, 5, 8], 11), o = pair([3, 5, 8], 12);
    const bias = pair([8], 13), col = pair([3, 1, 1], 14);
    const checks: [string, (x: T.Tensor, y: T.Tensor, b: T.Tensor, k: T.Tensor) => T.Tensor][] = [
      ["add", (x, y) => T.add(x, y)],
      ["silu", (x) => T.silu(x)],
      ["row broadcast", (x, _y, b) => T.mul(x, b)],
      ["column broadcast (scalar path)", (x, _y, _b, k) => T.sub(x, k)],
      ["permuted leading dims", (x, y) => T.add(T.transpose(x, 0, 1), T.transpose(y, 0, 1))],
      ["contiguous of a permute", (x) => T.contiguous(T.transpose(x, 0, 1))],
      ["slice at offset 4", (x) => T.contiguous(T.slice(x, 2, 4, 8))],
      ["slice at offset 1 (scalar path)", (x) => T.contiguous(T.slice(x, 2, 1, 5))],
      ["concat (strided assign)", (x, y) => T.concat([x, y], 2)],
      ["concat axis 0", (x, y) => T.concat([x, y], 0)],
      ["where", (x, y) => T.where(T.gt(x, 0), x, y)],
      ["cast i32", (x) => T.cast(T.mul(x, 10), "i32")],
      ["i32 add", (x, y) => T.add(T.cast(T.mul(x, 10), "i32"), T.cast(T.mul(y, 10), "i32"))],
      ["compare", (x, y) => T.lt(x, y)],
    ];
    for (const [name, f] of checks) {
      await same(`vec4 ${name}`, f(g, o.g, bias.g, col.g), f(c, o.c, bias.c, col.c));
    }
  },
});

Deno.test("webgpu elementwise kernels take the vec4 path only where views allow it", () => {
  const storage = { size: 1024, dtype: "f32" as const };
  const view = (shape: number[], strides: number[], offset = 0) => ({
    storage,
    shape,
    strides,
    offset,
  });
  const flat = view([3, 8], [8, 1]);
  ok(binaryKernel("add", flat, flat, [3, 8], "f32").key.includes(":v4:"));
  ok(binaryKernel("add", flat, view([3, 8], [0, 1]), [3, 8], "f32").key.includes(":v4:"));
  ok(castKernel(view([8, 3, 4], [4, 32, 1]), "f32").key.includes(":v4:")); // permuted rows
  ok(castKernel(view([3, 8], [8, 1], 2), "f32").key.includes(":s:")); // misaligned offset
  ok(castKernel(view([3, 6], [6, 1]), "f32").key.includes(":s:")); // last dim 6
  ok(castKernel(view([4, 3], [1, 4]), "f32").key.includes(":s:")); // transposed last dim
  ok(castKernel(view([3, 8], [8, 1]), "f32").n === 6); // 24 elements, four per invocation
});

Deno.test({
  name: "webgpu: matmul (plain, transposed, batched, odd sizes) equals the cpu backend",
  ignore: !hasGpu,
  fn: async () => {
    // n % 4 = 0 takes the vec4 kernel (8×8 blocks; 4, 12 and 132 leave a half block), else block4
    const shapes = [[1, 1, 1], [3, 17, 5], [17, 3, 129], [127, 33, 1], [64, 64, 64], [1, 5, 4], [
      9,
      1,
      12,
    ], [17, 129, 132]];
    for (const [m, k, n] of shapes) {
      const a = pair([m, k], m), b = pair([k, n], n), at = pair([k, m], 3), bt = pair([n, k], 4);
      await same(`mm ${m}x${k}x${n}`, T.matmul(a.g, b.g), T.matmul(a.c, b.c), 1e-4);
      await same(`mm tA`, T.matmul(T.transpose(at.g), b.g), T.matmul(T.transpose(at.c), b.c), 1e-4);
      await same(`mm tB`, T.matmul(a.g, T.transpose(bt.g)), T.matmul(a.c, T.transpose(bt.c)), 1e-4);
      await same(
        `mm tAB`,
        T.matmul(T.transpose(at.g), T.transpose(bt.g)),
        T.matmul(T.transpose(at.c), T.transpose(bt.c)),
        1e-4,
      );
    }
    const x = pair([2, 3, 17, 9], 9), w = pair([9, 5], 10), y = pair([3, 9, 4], 11);
    await same("batched×shared", T.matmul(x.g, w.g), T.matmul(x.c, w.c), 1e-4);
    await same("batched×batched", T.matmul(x.g, y.g), T.matmul(x.c, y.c), 1e-4);
    const w8 = pair([9, 8], 12), y12 = pair([3, 9, 12], 13);
    await same("batched×shared vec4", T.matmul(x.g, w8.g), T.matmul(x.c, w8.c), 1e-4);
    await same("batched×batched vec4", T.matmul(x.g, y12.g), T.matmul(x.c, y12.c), 1e-4);
    // B a view at an offset (12 floats) with batch stride 108: vec4 reads from inside the buffer
    const big = pair([5, 9, 12], 14);
    const off = [T.slice(big.g, 1, 1, 9), T.slice(big.c, 1, 1, 9)]; // [5, 8, 12]
    const lhs = pair([5, 3, 8], 15);
    await same("offset view", T.matmul(lhs.g, off[0]), T.matmul(lhs.c, off[1]), 1e-4);
  },
});

Deno.test({
  name: "webgpu: softmax, cross-entropy, embedding, gather/scatter, top-k equal the cpu backend",
  ignore: !hasGpu,
  fn: async () => {
    const { c, g } = pair([17, 129], 12);
    await same("softmax", T.softmax(g), T.softmax(c), 1e-6);
    await same("logSoftmax", T.logSoftmax(g, 0), T.logSoftmax(c, 0), 1e-5);
    const t = pair([17], 13, { dtype: "i32", ints: 129 });
    await same(
      "crossEntropy",
      T.crossEntropy(g, t.g, { reduction: "none" }),
      T.crossEntropy(c, t.c, { reduction: "none" }),
    );
    const ids = pair([5, 7], 14, { dtype: "i32", ints: 17 });
    await same("embedding", T.embedding(g, ids.g), T.embedding(c, ids.c));
    const idx = pair([17, 4], 15, { dtype: "i32", ints: 129 });
    await same("gather", T.gather(g, 1, idx.g), T.gather(c, 1, idx.c));
    const src = pair([17, 4], 16);
    await same("scatterAdd", T.scatterAdd(g, 1, idx.g, src.g), T.scatterAdd(c, 1, idx.c, src.c));
    const rows = pair([3], 17, { dtype: "i32", ints: 17 }), s2 = pair([3, 129], 18);
    await same("indexAdd", T.indexAdd(g, 0, rows.g, s2.g), T.indexAdd(c, 0, rows.c, s2.c));
    const tk = T.topk(g, 5), tc = T.topk(c, 5);
    await same("topk values", tk.values, tc.values);
    await same("topk indices", tk.indices, tc.indices);
    const ties = T.tensor([1, 3, 3, 2, 3], { backend: gpu as Backend });
    await same(
      "topk ties",
      T.topk(ties, 3).indices,
      T.tensor([1, 2, 4], { dtype: "i32", backend: cpu }),
    );
  },
});

Deno.test({
  name: "webgpu: indexAdd (counting sort, column runs, outer axis, big buckets) equals cpu",
  ignore: !hasGpu,
  fn: async () => {
    // A counting sort into per-row buckets, then per-row sums over runs of 16 vec4 (or 16
    // scalar) columns: cover a partial last run, scalar rows, an outer axis, large n and large
    // buckets; and the result must not depend on which invocation won a bucket slot.
    const cases: [number, number, number, number][] = [ // [outer, size, inner, n]
      [1, 7, 72, 40], // vec4, 18 vec4 = one full run + a partial one
      [2, 5, 5, 33], // scalar rows, outer 2
      [1, 300, 8, 20000], // large n
      [1, 3, 8, 500], // three buckets of ~170: the per-bucket sort
    ];
    for (const [outer, size, inner, n] of cases) {
      const index = pair([n], outer + size, { dtype: "i32", ints: size });
      const src = pair([outer, n, inner], n);
      const base = pair([outer, size, inner], inner);
      await same(
        `indexAdd outer ${outer} size ${size} inner ${inner} n ${n}`,
        T.indexAdd(base.g, 1, index.g, src.g),
        T.indexAdd(base.c, 1, index.c, src.c),
        1e-4,
      );
      const again = T.indexAdd(base.g, 1, index.g, src.g);
      const first = await T.indexAdd(base.g, 1, index.g, src.g).data();
      ok(Array.from(await again.data()).every((x, i) => Object.is(x, first[i])), "deterministic");
    }
  },
});

Deno.test({
  name: "webgpu: kernel parameters from the arena — 1000 dispatches in one submit, buffers reused",
  ignore: !hasGpu,
  fn: async () => {
    // Every dispatch binds a 256-byte parameter slot of a shared 64 KiB uniform buffer: a chain
    // longer than one buffer's 256 slots must still see each kernel's own parameters.
    const x = pair([8], 40);
    const chain = (t: T.Tensor) => {
      let y = T.slice(t, 0, 0, 5);
      for (let i = 1; i < 1000; i++) y = T.add(y, T.slice(t, 0, i % 4, (i % 4) + 5)); // offsets vary
      return y;
    };
    await same("1000 chained adds", chain(x.g), chain(x.c), 1e-3, 1e-4);
    const { acquireGpu } = await import("../../lib/backend/webgpu/device.ts");
    const { ParamArena } = await import("../../lib/backend/webgpu/buffers.ts");
    const ctx = await acquireGpu();
    const arena = new ParamArena(ctx.device, 256);
    for (let batch = 0; batch < 3; batch++) {
      const slots = Array.from({ length: 300 }, (_, i) => arena.take(Uint32Array.of(i)));
      ok(
        slots.every((b) => (b.offset ?? 0) % 256 === 0 && b.size === 256),
        "aligned 256-byte slots",
      );
      arena.upload(ctx.device.queue);
      arena.recycle();
    }
    ok(arena.created === 2, `300 slots need 2 buffers, reused over 3 batches: ${arena.created}`);
    ctx.device.destroy();
  },
});

Deno.test({
  name: "webgpu: gradients of a small MLP + cross-entropy equal the cpu backend's",
  ignore: !hasGpu,
  fn: async () => {
    const x = pair([17, 9], 20), w1 = pair([9, 13], 21), w2 = pair([13, 5], 22);
    const t = pair([17], 23, { dtype: "i32", ints: 5 });
    const run = (xx: T.Tensor, a: T.Tensor, b: T.Tensor, tt: T.Tensor) => {
      a.setRequiresGrad();
      b.setRequiresGrad();
      const h = T.gelu(T.matmul(xx, a));
      T.crossEntropy(T.matmul(T.softmax(h), b), tt).backward();
    };
    run(x.c, w1.c, w2.c, t.c);
    run(x.g, w1.g, w2.g, t.g);
    await same("dW1", w1.g.grad as T.Tensor, w1.c.grad as T.Tensor, 1e-6, 1e-3);
    await same("dW2", w2.g.grad as T.Tensor, w2.c.grad as T.Tensor, 1e-6, 1e-3);
    await rejects(async () => await Promise.resolve(w1.g.dataSync()), /synchronously/);
  },
});
