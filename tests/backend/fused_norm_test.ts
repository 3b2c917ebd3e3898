/**
 * Fused RMSNorm and SwiGLU gate kernels (`Backend.rmsNorm`, `rmsNormBackward`, `swiglu`,
 * `swigluBackward`): the fused ops (`rmsNormalize`, `swigluGate`) against their composed paths
 * on the cpu backend (values and gradients), wasm (RMSNorm inherited from cpu, the gate on its
 * SIMD kernels) and webgpu against cpu on awkward shapes (cols 1, 3, 17, 127, 129; rows 1, 5,
 * 300), and central-difference gradient checks in f64. WebGPU cases skip with a message where no adapter exists.
 */
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend } from "../../lib/backend/wasm.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, assertTensorClose as close, checkOp, randomArray } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";

const gpu = await webgpuForTests("WebGPU fused norm tests");
const hasGpu = gpu !== null;
const cpu = new CpuBackend();

const ROWS = [1, 5, 300];
const COLS = [1, 3, 17, 127, 129];
const EPS = 1e-6;

/** Values, `dx` and `dweight` of RMSNorm on `backend` for a fixed upstream gradient. */
function rmsRun(
  backend: Backend,
  x: number[],
  w: number[],
  up: number[],
  shape: number[],
  fused: boolean,
  eps = EPS,
) {
  const xt = T.tensor(x, { shape, backend, requiresGrad: true });
  const wt = T.tensor(w, { shape: [shape.at(-1) as number], backend, requiresGrad: true });
  const y = T.rmsNormalize(xt, wt, { eps, fused });
  T.sum(T.mul(y, T.tensor(up, { shape, backend }))).backward();
  return { y, dx: xt.grad as T.Tensor, dw: wt.grad as T.Tensor };
}

/** Values, `da` and `db` of the SwiGLU gate on `backend` for a fixed upstream gradient. */
function swigluRun(
  backend: Backend,
  a: number[],
  b: number[],
  up: number[],
  shape: number[],
  fused: boolean,
) {
  const at = T.tensor(a, { shape, backend, requiresGrad: true });
  const bt = T.tensor(b, { shape, backend, requiresGrad: true });
  const y = T.swigluGate(at, bt, { fused });
  T.sum(T.mul(y, T.tensor(up, { shape, backend }))).backward();
  return { y, da: at.grad as T.Tensor, db: bt.grad as T.Tensor };
}

/** Random inputs for RMSNorm `[rows, cols]`, with one row scaled up and one near zero. */
function rmsInputs(rows: number, cols: number, seed: number) {
  const x = randomArray(rows * cols, seed, 2);
  if (rows > 2) { for (let c = 0; c < cols; c++) (x[cols + c] *= 100), (x[2 * cols + c] *= 1e-3); }
  return {
    x,
    w: randomArray(cols, seed + 1).map((v) => 1 + 0.5 * v),
    up: randomArray(rows * cols, seed + 2),
  };
}

/** Random SwiGLU inputs, including large |a| where σ saturates. */
function swigluInputs(n: number, seed: number) {
  const a = randomArray(n, seed, 3);
  if (n > 2) (a[0] = 40), (a[1] = -40);
  return { a, b: randomArray(n, seed + 1), up: randomArray(n, seed + 2) };
}

Deno.test("rmsNormalize() fused equals the composed ops on cpu, values and gradients", async () => {
  for (const rows of ROWS) {
    for (const cols of COLS) {
      const { x, w, up } = rmsInputs(rows, cols, rows * 1000 + cols);
      const shape = [rows, cols];
      const fused = rmsRun(cpu, x, w, up, shape, true);
      const plain = rmsRun(cpu, x, w, up, shape, false);
      const at = `[${rows}, ${cols}]`;
      // f32 rounding of a handful of ops per element; dweight sums `rows` terms.
      await close(`y ${at}`, fused.y, plain.y, 1e-6, 1e-5);
      await close(`dx ${at}`, fused.dx, plain.dx, 1e-5, 1e-4);
      await close(`dweight ${at}`, fused.dw, plain.dw, 1e-5, 1e-4);
    }
  }
});

Deno.test("rmsNormalize() fused equals the composed ops on a 3-d input and a strided view", () => {
  const x = T.tensor(randomArray(2 * 3 * 8, 7), { shape: [2, 3, 8], requiresGrad: true });
  const w = T.tensor(randomArray(8, 8), { requiresGrad: true });
  const xt = T.transpose(x, 0, 1); // [3, 2, 8], not contiguous
  assertAllClose(T.rmsNormalize(xt, w), T.rmsNormalize(xt, w, { fused: false }), {
    atol: 1e-6,
  });
  const up = T.tensor(randomArray(48, 9), { shape: [3, 2, 8] });
  const grads = (fused: boolean) => {
    x.grad = null;
    w.grad = null;
    T.sum(T.mul(T.rmsNormalize(xt, w, { eps: 0.1, fused }), up)).backward();
    return [x.grad as unknown as T.Tensor, w.grad as unknown as T.Tensor];
  };
  const [dxF, dwF] = grads(true), [dxP, dwP] = grads(false);
  assertAllClose(dxF, dxP, { atol: 1e-5, rtol: 1e-4 });
  assertAllClose(dwF, dwP, { atol: 1e-5, rtol: 1e-4 });
});

Deno.test("swigluGate() fused equals mul(silu(a), b) on cpu, values and gradients", async () => {
  for (const shape of [[1], [3], [17, 3], [127, 5], [2, 129], [300, 129]]) {
    const n = shape.reduce((p, q) => p * q, 1);
    const { a, b, up } = swigluInputs(n, n);
    const fused = swigluRun(cpu, a, b, up, shape, true);
    const plain = swigluRun(cpu, a, b, up, shape, false);
    const at = `[${shape.join(", ")}]`;
    await close(`y ${at}`, fused.y, plain.y, 1e-6, 1e-6);
    await close(`da ${at}`, fused.da, plain.da, 1e-6, 1e-5);
    await close(`db ${at}`, fused.db, plain.db, 1e-6, 1e-6);
  }
});

Deno.test("rmsNormalize() and swigluGate() check shapes and fall back without the kernels", () => {
  const x = T.randn([3, 4], { rng: new T.Rng(0) });
  throws(
    () => T.rmsNormalize(x, T.ones([5])),
    /Cannot apply RMSNorm of weight \[5\] to input \[3, 4\]: expected weight \[4\]/,
  );
  throws(
    () => T.swigluGate(x, T.ones([4])),
    /Cannot apply the SwiGLU gate to \[3, 4\] and \[4\]: expected equal shapes/,
  );
  // A backend without the optional methods takes the composed path (more kernels, same values).
  const plain = new CpuBackend() as Backend;
  for (const m of ["rmsNorm", "rmsNormBackward", "swiglu", "swigluBackward"] as const) {
    Object.defineProperty(plain, m, { value: undefined });
  }
  const xs = Array.from(x.dataSync()), ws = [1, 2, 3, 4];
  const xp = T.tensor(xs, { shape: [3, 4], backend: plain });
  assertAllClose(
    T.rmsNormalize(xp, T.tensor(ws, { backend: plain })),
    T.rmsNormalize(x, T.tensor(ws)),
    { atol: 1e-6 },
  );
  assertAllClose(T.swigluGate(xp, xp), T.swigluGate(x, x), { atol: 1e-6 });
  // The fused op records one graph node.
  const g = T.swigluGate(T.tensor(xs, { shape: [3, 4], requiresGrad: true }), x);
  deepStrictEqual(g.node?.op, "swiglu");
  deepStrictEqual(T.swigluGate(xp, xp).node, null);
});

Deno.test("gradcheck: rmsNormalize (fused kernels) w.r.t. x and weight, awkward widths", () => {
  checkOp([[2, 3, 6], [6]], (x, w) => T.rmsNormalize(x, w));
  checkOp([[5, 1], [1]], (x, w) => T.rmsNormalize(x, w, { eps: 0.5 }));
  checkOp([[1, 17], [17]], (x, w) => T.rmsNormalize(x, w, { eps: 1e-3 }));
  checkOp([[3, 4, 3], [3]], (x, w) => T.rmsNormalize(T.transpose(x, 0, 1), w));
});

Deno.test("gradcheck: swigluGate (fused kernels) w.r.t. a and b", () => {
  checkOp([[2, 3, 5], [2, 3, 5]], (a, b) => T.swigluGate(a, b));
  checkOp([[1], [1]], (a, b) => T.swigluGate(a, b));
  checkOp([[4, 3], [3, 4]], (a, b) => T.swigluGate(T.transpose(a), b)); // strided gate input
});

Deno.test("wasm: fused RMSNorm (inherited) and SwiGLU gate (SIMD passes) equal the cpu backend", async () => {
  const wasm = await createWasmBackend({ threads: 1 });
  try {
    ok(wasm.rmsNorm !== undefined && wasm.swigluBackward !== undefined);
    for (const [rows, cols] of [[5, 17], [300, 129]]) {
      const { x, w, up } = rmsInputs(rows, cols, 3);
      const got = rmsRun(wasm, x, w, up, [rows, cols], true);
      const want = rmsRun(cpu, x, w, up, [rows, cols], true);
      await close("wasm y", got.y, want.y, 0, 0);
      await close("wasm dx", got.dx, want.dx, 1e-6, 1e-5);
      await close("wasm dweight", got.dw, want.dw, 1e-6, 1e-5);
      const s = swigluInputs(rows * cols, 4);
      const sg = swigluRun(wasm, s.a, s.b, s.up, [rows, cols], true);
      const sw = swigluRun(cpu, s.a, s.b, s.up, [rows, cols], true);
      await close("wasm swiglu", sg.y, sw.y, 1e-6, 1e-5); // SIMD exp: ~2 ulp
      await close("wasm da", sg.da, sw.da, 1e-6, 1e-5);
      await close("wasm db", sg.db, sw.db, 1e-6, 1e-5);
    }
  } finally {
    wasm.close();
  }
});

Deno.test({
  name: "webgpu: fused RMSNorm kernels (y, rstd, dx, dweight) equal cpu on awkward shapes",
  ignore: !hasGpu,
  fn: async () => {
    const g = gpu as NonNullable<typeof gpu>;
    for (const rows of ROWS) {
      for (const cols of COLS) {
        const { x, w, up } = rmsInputs(rows, cols, rows * 7 + cols);
        const shape = [rows, cols], at = `[${rows}, ${cols}]`;
        const got = rmsRun(g, x, w, up, shape, true);
        const want = rmsRun(cpu, x, w, up, shape, true);
        // GPU sums in f32 (cpu in f64) and sqrt/inverseSqrt differ by ulps.
        await close(`y ${at}`, got.y, want.y, 1e-5, 1e-4);
        await close(`dx ${at}`, got.dx, want.dx, 1e-4, 1e-3);
        await close(`dweight ${at}`, got.dw, want.dw, 1e-4, 1e-3);
        // The kernels directly, rstd included.
        const spec = { rows, cols, eps: EPS };
        const r = g.rmsNorm(g.upload("f32", x), g.upload("f32", w), spec);
        const rc = cpu.rmsNorm(cpu.upload("f32", x), cpu.upload("f32", w), spec);
        assertAllClose(Array.from(await g.read(r.rstd)), Array.from(cpu.readSync(rc.rstd)), {
          atol: 0,
          rtol: 1e-5,
          message: `rstd ${at}`,
        });
      }
    }
  },
});

Deno.test({
  name: "webgpu: fused RMSNorm forward is one dispatch and backward three (two for ≤ 64 rows)",
  ignore: !hasGpu,
  fn: async () => {
    const g = gpu as NonNullable<typeof gpu>;
    for (const [rows, backward] of [[64, 2], [65, 3]]) {
      const spec = { rows, cols: 3, eps: EPS };
      const x = g.upload("f32", randomArray(rows * 3, 1)), w = g.upload("f32", [1, 2, 3]);
      let before = g.dispatches;
      const { rstd } = g.rmsNorm(x, w, spec);
      deepStrictEqual(g.dispatches - before, 1);
      before = g.dispatches;
      const { dweight } = g.rmsNormBackward(x, w, rstd, x, spec);
      deepStrictEqual(g.dispatches - before, backward);
      deepStrictEqual((await g.read(dweight)).length, 3);
    }
  },
});

Deno.test({
  name: "webgpu: fused SwiGLU gate (out, da, db) equals cpu on awkward shapes",
  ignore: !hasGpu,
  fn: async () => {
    const g = gpu as NonNullable<typeof gpu>;
    for (const shape of [[1], [3], [17, 3], [127, 5], [2, 129], [300, 129]]) {
      const n = shape.reduce((p, q) => p * q, 1);
      const { a, b, up } = swigluInputs(n, n + 1);
      const got = swigluRun(g, a, b, up, shape, true);
      const want = swigluRun(cpu, a, b, up, shape, true);
      const at = `[${shape.join(", ")}]`;
      await close(`y ${at}`, got.y, want.y, 1e-6, 1e-5);
      await close(`da ${at}`, got.da, want.da, 1e-6, 1e-5);
      await close(`db ${at}`, got.db, want.db, 1e-6, 1e-5);
    }
  },
});
