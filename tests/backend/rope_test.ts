/**
 * Fused rotary embedding (`Backend.rope`, `ropeRotate`): the fused op against its composed path on
 * the cpu backend (values and gradients) on awkward shapes (d/2 1, 3, 8, 32; T 1, 5, 17; H 1, 3;
 * position offsets), strided inputs, wasm (inherited kernel) and webgpu (pair and vec4 variants)
 * against cpu, and central-difference gradient checks in f64. WebGPU cases skip with a message
 * where no adapter exists.
 */
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { getBackend } from "../../lib/backend/mod.ts";
import { createWasmBackend } from "../../lib/backend/wasm.ts";
import { applyRope, ropeFrequencies } from "../../lib/nn/rope.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, assertTensorClose as close, checkOp, randomArray } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";

const gpu = await webgpuForTests("WebGPU fused RoPE tests");
const hasGpu = gpu !== null;
const cpu = new CpuBackend();

const HALVES = [1, 3, 8, 32];
const POSITIONS = [1, 5, 17];
const HEADS = [1, 3];
const BATCH = 2;

/** Every `[B, T, H, d/2, offset]` case: the offset grows with the case index. */
function cases(): [number, number, number, number, number][] {
  const out: [number, number, number, number, number][] = [];
  for (const half of HALVES) {
    for (const t of POSITIONS) {
      for (const h of HEADS) out.push([BATCH, t, h, half, (out.length * 7) % 23]);
    }
  }
  return out;
}

/** `cos`/`sin` tables `[T, d/2]` at positions `offset ..` (as `applyRope` builds them). */
function tables(backend: Backend, t: number, half: number, offset: number): T.RopeTables {
  const freqs = ropeFrequencies({ dim: 2 * half, theta: 100 });
  const cos: number[] = [], sin: number[] = [];
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < half; j++) {
      cos.push(Math.cos((offset + i) * freqs[j]));
      sin.push(Math.sin((offset + i) * freqs[j]));
    }
  }
  return {
    cos: T.tensor(cos, { shape: [t, half], backend }),
    sin: T.tensor(sin, { shape: [t, half], backend }),
  };
}

/** Values and `dx` of `ropeRotate` on `backend` for a fixed upstream gradient. */
function ropeRun(
  backend: Backend,
  shape: [number, number, number, number],
  offset: number,
  fused: boolean,
  seed: number,
) {
  const [, t, , half] = shape, xShape = [shape[0], t, shape[2], 2 * half];
  const n = xShape.reduce((p, q) => p * q, 1);
  const x = T.tensor(randomArray(n, seed), { shape: xShape, backend, requiresGrad: true });
  const y = T.ropeRotate(x, tables(backend, t, half, offset), { fused });
  T.sum(T.mul(y, T.tensor(randomArray(n, seed + 1), { shape: xShape, backend }))).backward();
  return { y, dx: x.grad as T.Tensor };
}

Deno.test("ropeRotate() fused equals the composed ops on cpu, values and gradients", async () => {
  for (const [b, t, h, half, offset] of cases()) {
    const at = `[${b}, ${t}, ${h}, ${2 * half}] offset ${offset}`;
    const fused = ropeRun(cpu, [b, t, h, half], offset, true, t * 100 + half);
    const plain = ropeRun(cpu, [b, t, h, half], offset, false, t * 100 + half);
    deepStrictEqual(fused.y.node?.op, "rope");
    // The composed ops round each product to f32; the kernel rounds once.
    await close(`y ${at}`, fused.y, plain.y, 1e-6, 1e-6);
    await close(`dx ${at}`, fused.dx, plain.dx, 1e-6, 1e-6);
  }
});

Deno.test("ropeRotate() fused equals the composed ops on strided views of x", () => {
  const base = T.tensor(randomArray(2 * 3 * 5 * 10, 3), {
    shape: [2, 3, 5, 10],
    requiresGrad: true,
  });
  const up = T.tensor(randomArray(2 * 5 * 3 * 6, 4), { shape: [2, 5, 3, 6] });
  const tab = tables(getBackend(), 5, 3, 2);
  // [B, H, T, 10] → [B, T, H, 10] (transpose), then the last 6 dims (MLA's q_pe slice).
  const view = () => T.slice(T.transpose(base, 1, 2), -1, 4, 10);
  const grads = (fused: boolean) => {
    base.grad = null;
    const y = T.ropeRotate(view(), tab, { fused });
    T.sum(T.mul(y, up)).backward();
    return [y, base.grad as unknown as T.Tensor];
  };
  const [yF, dF] = grads(true), [yP, dP] = grads(false);
  assertAllClose(yF, yP, { atol: 1e-6 });
  assertAllClose(dF, dP, { atol: 1e-6 });
  assertAllClose(T.slice(dF, -1, 0, 4), T.zeros([2, 3, 5, 4])); // unrotated dims: no gradient
});

Deno.test("ropeRotate() checks shapes, leaves tables without gradient, falls back", () => {
  const x = T.randn([1, 2, 1, 4], { rng: new T.Rng(0) });
  const tab = tables(getBackend(), 2, 2, 0);
  throws(
    () => T.ropeRotate(x, tables(getBackend(), 3, 2, 0)),
    /Cannot apply RoPE with tables \[3, 2\] and \[3, 2\] to input \[1, 2, 1, 4\]: expected/,
  );
  throws(() => T.ropeRotate(T.reshape(x, [2, 4]), tab), /Cannot apply RoPE with tables/);
  throws(() => applyRope(x, new Float64Array(3)), /Cannot apply RoPE with 3 frequency pairs/);
  // A backend without the optional method takes the composed path (more kernels, same values).
  const plain = new CpuBackend() as Backend;
  Object.defineProperty(plain, "rope", { value: undefined });
  const xs = Array.from(x.dataSync());
  const xp = T.tensor(xs, { shape: [1, 2, 1, 4], backend: plain });
  const yp = T.ropeRotate(xp, tables(plain, 2, 2, 0));
  assertAllClose(yp, T.ropeRotate(x, tab), { atol: 1e-6 });
  // Tables that require grad get none through the fused op (they are host constants).
  const cos = T.tensor(Array.from(tab.cos.dataSync()), { shape: [2, 2], requiresGrad: true });
  const xg = T.tensor(xs, { shape: [1, 2, 1, 4], requiresGrad: true });
  for (const fused of [true, false]) {
    T.sum(T.ropeRotate(xg, { cos, sin: tab.sin }, { fused })).backward();
    deepStrictEqual(cos.grad, null);
    ok(xg.grad !== null);
  }
});

Deno.test("gradcheck: ropeRotate (fused kernel) w.r.t. x, awkward and strided inputs", () => {
  const rotate = (t: number, half: number, offset: number) => (x: T.Tensor) =>
    T.ropeRotate(x, tables(getBackend(), t, half, offset));
  checkOp([[2, 5, 3, 6]], rotate(5, 3, 4));
  checkOp([[1, 1, 1, 2]], rotate(1, 1, 9));
  checkOp([[1, 3, 2, 16]], rotate(3, 8, 0));
  checkOp([[2, 3, 4, 4]], (x) => rotate(4, 2, 1)(T.transpose(x, 1, 2))); // strided x
});

Deno.test("wasm: fused RoPE (inherited from cpu) equals the cpu backend", async () => {
  const wasm = await createWasmBackend({ threads: 1 });
  try {
    ok(wasm.rope !== undefined);
    for (const [b, t, h, half, offset] of [[2, 5, 3, 3], [2, 17, 3, 32]].map((c) => [...c, 5])) {
      const got = ropeRun(wasm, [b, t, h, half], offset, true, 11);
      const want = ropeRun(cpu, [b, t, h, half], offset, true, 11);
      await close("wasm y", got.y, want.y, 0, 0);
      await close("wasm dx", got.dx, want.dx, 0, 0);
    }
  } finally {
    wasm.close();
  }
});

Deno.test({
  name: "webgpu: fused RoPE (pair and vec4 kernels) equals cpu on awkward shapes",
  ignore: !hasGpu,
  fn: async () => {
    const g = gpu as NonNullable<typeof gpu>;
    for (const [b, t, h, half, offset] of cases()) {
      const at = `[${b}, ${t}, ${h}, ${2 * half}] offset ${offset}`;
      const got = ropeRun(g, [b, t, h, half], offset, true, t * 31 + half);
      const want = ropeRun(cpu, [b, t, h, half], offset, true, t * 31 + half);
      // f32 products (possibly fused multiply-adds) against a rounded-once f64 result.
      await close(`y ${at}`, got.y, want.y, 1e-6, 1e-5);
      await close(`dx ${at}`, got.dx, want.dx, 1e-6, 1e-5);
    }
  },
});

Deno.test({
  name: "webgpu: fused RoPE is one dispatch each way, and applyRope uses it",
  ignore: !hasGpu,
  fn: async () => {
    const g = gpu as NonNullable<typeof gpu>;
    for (const half of [3, 4]) {
      const x = g.upload("f32", randomArray(2 * 5 * 3 * 2 * half, 1));
      const tab = tables(g, 5, half, 0);
      const spec = { rows: 30, heads: 3, positions: 5, half, inverse: false };
      let before = g.dispatches;
      const y = g.rope(x, tab.cos.storage, tab.sin.storage, spec);
      deepStrictEqual(g.dispatches - before, 1);
      before = g.dispatches;
      const back = g.rope(y, tab.cos.storage, tab.sin.storage, { ...spec, inverse: true });
      deepStrictEqual(g.dispatches - before, 1);
      // The inverse undoes the rotation.
      assertAllClose(Array.from(await g.read(back)), Array.from(await g.read(x)), { atol: 1e-5 });
    }
    const x = T.tensor(randomArray(2 * 5 * 3 * 8, 2), { shape: [2, 5, 3, 8], backend: g });
    const before = g.dispatches;
    const y = applyRope(x, ropeFrequencies({ dim: 8 }), { offset: 3 });
    deepStrictEqual(y.node, null);
    const cpuY = applyRope(
      T.tensor(Array.from(await x.data()), { shape: [2, 5, 3, 8] }),
      ropeFrequencies({ dim: 8 }),
      { offset: 3 },
    );
    deepStrictEqual(g.dispatches - before, 1);
    await close("applyRope", y, cpuY, 1e-6, 1e-5);
  },
});
