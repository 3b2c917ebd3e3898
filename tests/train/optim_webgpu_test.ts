/**
 * The fused WebGPU AdamW update (`Backend.adamwUpdate`, issue #4) against the composed path on
 * the cpu backend: parameters and moments after several steps, the dispatch count per step, and
 * the fallback for a parameter that is a view (gradient views are read through their strides). Skips with a message where no
 * adapter exists.
 *
 * Tolerance: the two paths evaluate the same f32 operations in the same order, but WGSL allows
 * `/` and `sqrt` a few ULP and a driver may contract `a·b + c` into an FMA, so values agree to
 * float32 rounding: `rtol` 1e-6 plus `atol` 1e-7 (moments of tiny gradients).
 */
import { equal, ok } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu.ts";
import * as T from "../../lib/tensor/mod.ts";
import { AdamW } from "../../lib/train/optim.ts";
import { assertAllClose, randomArray } from "../_utils.ts";
import { webgpuForTests } from "../_gpu.ts";

const gpu = await webgpuForTests("WebGPU AdamW tests");
const hasGpu = gpu !== null;
const cpu = new CpuBackend();

const RTOL = 1e-6, ATOL = 1e-7;
const SIZES = [1, 3, 17, 1025];
const STEPS = 4;

/** Parameters of `SIZES` on `backend` (seeded), leaves with requiresGrad. */
function params(backend: Backend, seed: number): T.Tensor[] {
  return SIZES.map((n, k) =>
    T.tensor(randomArray(n, seed + k), { backend, requiresGrad: true }).keep()
  );
}

/** Set a fresh seeded gradient on every parameter (step `s`). */
function setGrads(ps: T.Tensor[], backend: Backend, s: number): void {
  ps.forEach((p, k) => {
    p.grad?.dispose();
    p.grad = T.tensor(randomArray(p.size, 1000 * s + k, 0.5), { backend, shape: p.shape }).keep();
  });
}

async function same(name: string, got: T.Tensor, want: T.Tensor): Promise<void> {
  assertAllClose(Array.from(await got.data()), Array.from(want.dataSync()), {
    atol: ATOL,
    rtol: RTOL,
    message: name,
  });
}

/** The composed path on `gpu`: shadow the fused method with `undefined` on the instance. */
function withoutFused<R>(backend: WebGpuBackend, fn: () => R): R {
  Object.defineProperty(backend, "adamwUpdate", { value: undefined, configurable: true });
  try {
    return fn();
  } finally {
    delete (backend as { adamwUpdate?: unknown }).adamwUpdate;
  }
}

for (const weightDecay of [0, 0.1]) {
  Deno.test({
    name: `AdamW.step() fused on webgpu equals the composed cpu path (weightDecay ${weightDecay})`,
    ignore: !hasGpu,
    fn: async () => {
      const g = gpu as WebGpuBackend;
      const opts = { lr: 0.01, weightDecay };
      const pg = params(g, 7), pc = params(cpu, 7);
      const og = new AdamW(pg, opts), oc = new AdamW(pc, opts);
      for (let s = 0; s < STEPS; s++) {
        setGrads(pg, g, s);
        setGrads(pc, cpu, s);
        const d0 = g.dispatches;
        og.step();
        // The first step also fills the zero moments (2 dispatches per parameter).
        const want = pg.length * (s === 0 ? 3 : 1);
        equal(g.dispatches - d0, want, `step ${s}: one dispatch per parameter`);
        oc.step();
      }
      for (let k = 0; k < pg.length; k++) {
        const mg = og.moments(pg[k]), mc = oc.moments(pc[k]);
        await same(`param ${SIZES[k]}`, pg[k], pc[k]);
        await same(`m ${SIZES[k]}`, mg.m, mc.m);
        await same(`v ${SIZES[k]}`, mg.v, mc.v);
      }
      for (const t of [...pg, ...pc]) t.dispose();
    },
  });
}

Deno.test({
  name: "AdamW.step() fused on webgpu cuts the dispatches per step to one per parameter",
  ignore: !hasGpu,
  fn: async () => {
    const g = gpu as WebGpuBackend;
    const count = (fused: boolean) => {
      const ps = params(g, 3);
      const opt = new AdamW(ps, { lr: 0.01, weightDecay: 0.1 });
      setGrads(ps, g, 0);
      for (const p of ps) opt.moments(p); // allocate the zero moments outside the count
      const d0 = g.dispatches;
      if (fused) opt.step();
      else withoutFused(g, () => opt.step());
      const n = g.dispatches - d0;
      return { n, ps, opt };
    };
    const composed = count(false), fused = count(true);
    equal(fused.n, SIZES.length);
    ok(composed.n >= 8 * SIZES.length, `composed path: ${composed.n} dispatches`);
    // Same start, same gradients: the two webgpu paths agree too.
    for (let k = 0; k < SIZES.length; k++) {
      const a = fused.opt.moments(fused.ps[k]), b = composed.opt.moments(composed.ps[k]);
      const [pa, pb] = [await fused.ps[k].data(), await composed.ps[k].data()];
      assertAllClose(Array.from(pa), Array.from(pb), { atol: ATOL, rtol: RTOL });
      assertAllClose(Array.from(await a.v.data()), Array.from(await b.v.data()), {
        atol: ATOL,
        rtol: RTOL,
      });
    }
    for (const t of [...fused.ps, ...composed.ps]) t.dispose();
  },
});

Deno.test({
  name:
    "AdamW.step() on webgpu falls back for a transposed parameter; fuses transposed and broadcast gradients",
  ignore: !hasGpu,
  fn: async () => {
    const g = gpu as WebGpuBackend;
    const make = (backend: Backend) => {
      const base = T.tensor(randomArray(12, 5), { backend, shape: [3, 4] });
      const pt = T.transpose(base).setRequiresGrad().keep(); // [4, 3], strides [1, 4]: composed
      const pb = T.tensor(randomArray(17, 6), { backend, requiresGrad: true }).keep();
      const pg = T.tensor(randomArray(15, 8), { backend, shape: [5, 3], requiresGrad: true })
        .keep();
      return [pt, pb, pg];
    };
    const grads = (backend: Backend, ps: T.Tensor[], s: number) => {
      ps[0].grad = T.tensor(randomArray(12, 20 + s), { backend, shape: [4, 3] }).keep();
      const one = T.tensor(randomArray(1, 30 + s), { backend, shape: [1] });
      ps[1].grad = T.expand(one, [17]).keep(); // stride 0
      const gt = T.tensor(randomArray(15, 40 + s), { backend, shape: [3, 5] });
      ps[2].grad = T.transpose(gt).keep(); // [5, 3], strides [1, 5], as linear weight grads
    };
    const pg = make(g), pc = make(cpu);
    ok(!pg[0].isContiguous, "the transposed parameter is a strided view");
    const og = new AdamW(pg, { lr: 0.01 }), oc = new AdamW(pc, { lr: 0.01 });
    for (const p of pg) og.moments(p);
    for (let s = 0; s < 3; s++) {
      for (const p of [...pg, ...pc]) p.grad?.dispose();
      grads(g, pg, s);
      grads(cpu, pc, s);
      const d0 = g.dispatches;
      og.step();
      const n = g.dispatches - d0;
      ok(n > 3, `composed for the first, one dispatch each for the others: ${n}`);
      oc.step();
    }
    for (let k = 0; k < pg.length; k++) {
      await same(`param ${k}`, pg[k], pc[k]);
      await same(`m ${k}`, og.moments(pg[k]).m, oc.moments(pc[k]).m);
      await same(`v ${k}`, og.moments(pg[k]).v, oc.moments(pc[k]).v);
    }
    for (const t of [...pg, ...pc]) t.dispose();
  },
});
