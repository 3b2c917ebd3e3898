/**
 * Bench section 2c: causal attention forward + backward on WebGPU — ablate's fused kernel
 * (`causalAttention`, online softmax, no `[T, S]` scores stored), ablate's composed path
 * (`{ fused: false }`: batched matmuls, mask, softmax), TensorFlow.js on tfjs-backend-webgpu
 * (composed; its backward written out in a `tf.customGrad`, since tfjs-core registers no op
 * gradients) and jax-js on its webgpu device (`jit(valueAndGrad(nn.dotProductAttention(…,
 * { isCausal: true })))`). Each timed call computes the output, then `dq, dk, dv` for a fixed
 * output gradient `dO`, and reads all three back; best of runs.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import {
  type Device as JaxDevice,
  jit as jaxJit,
  nn as jnn,
  numpy as jnp,
  valueAndGrad as jaxValueAndGrad,
} from "@jax-js/jax";
import type { Backend } from "../../lib/backend/backend.ts";
import type { WebGpuBackend } from "../../lib/backend/webgpu.ts";
import { causalAttention } from "../../lib/nn/attention.ts";
import { mul, Rng, sum, tensor, tidy } from "../../lib/tensor/mod.ts";
import { bestMs, type Impl, printComparison } from "./_common.ts";

/** `[B, H, T, d]`: the tiny GPT's attention (docs/design.md §6), then a longer context. */
const SHAPES = [[16, 4, 128, 64], [2, 4, 1024, 64]] as const;

/** Host data of one shape: q, k, v and dO, each `[B, H, T, d]` row-major, ~ N(0, 1). */
interface AttentionData {
  shape: [number, number, number, number];
  q: Float32Array<ArrayBuffer>;
  k: Float32Array<ArrayBuffer>;
  v: Float32Array<ArrayBuffer>;
  dO: Float32Array<ArrayBuffer>;
}

function attentionData(shape: readonly number[]): AttentionData {
  const rng = new Rng(0);
  const n = shape.reduce((a, b) => a * b, 1);
  const draw = () => Float32Array.from({ length: n }, () => rng.normal());
  return {
    shape: [shape[0], shape[1], shape[2], shape[3]],
    q: draw(),
    k: draw(),
    v: draw(),
    dO: draw(),
  };
}

/** ablate: `causalAttention` (fused or composed), `backward()` of `Σ o ⊙ dO`, grads read. */
async function ablateAttention(
  backend: Backend,
  d: AttentionData,
  fused: boolean,
  reps: number,
): Promise<number> {
  const shape = d.shape;
  const [q, k, v] = [d.q, d.k, d.v].map((x) => tensor(x, { shape, backend, requiresGrad: true }));
  const dO = tensor(d.dO, { shape, backend });
  const ms = await bestMs(async () => {
    tidy(() => sum(mul(causalAttention(q, k, v, { fused }), dO)).backward());
    const grads = [q.grad, k.grad, v.grad];
    if (grads.some((g) => g === null)) throw new Error("Cannot time attention: a grad is missing");
    await Promise.all(grads.map((g) => g?.data()));
    for (const t of [q, k, v]) {
      t.grad?.dispose();
      t.grad = null;
    }
  }, reps);
  for (const t of [q, k, v, dO]) t.dispose();
  return ms;
}

/**
 * tfjs-webgpu: `softmax(q kᵀ · scale + mask) v` on `[B·H, T, d]` with `tf.matMul`, inside a
 * `tf.customGrad` whose gradient is the standard one (`dv = pᵀ dO`, `ds = p ⊙ (dO vᵀ − rowsum)`,
 * `dq = ds k · scale`, `dk = dsᵀ q · scale`), evaluated with `tf.grads` at `dO`.
 */
async function tfjsAttention(d: AttentionData, reps: number): Promise<number> {
  await tf.setBackend("webgpu");
  const [b, h, t, dh] = d.shape;
  const shape: [number, number, number] = [b * h, t, dh];
  const scale = 1 / Math.sqrt(dh);
  const q = tf.tensor3d(d.q, shape), k = tf.tensor3d(d.k, shape), v = tf.tensor3d(d.v, shape);
  const dO = tf.tensor3d(d.dO, shape);
  const keep = tf.linalg.bandPart(tf.ones([t, t]), -1, 0); // 1 on and below the diagonal
  const mask = tf.mul(tf.sub(1, keep), -1e9); // 0 where visible, −1e9 elsewhere: [T, T]
  const attention = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qq, kk, vv, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
    const p = tf.softmax(tf.add(tf.mul(tf.matMul(qq, kk, false, true), scale), mask));
    save([qq, kk, vv, p]);
    return {
      value: tf.matMul(p, vv),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, sp] = saved as tf.Tensor3D[];
        const g = dy as tf.Tensor3D;
        const dv = tf.matMul(sp, g, true, false);
        const dp = tf.matMul(g, sv, false, true);
        const ds = tf.mul(sp, tf.sub(dp, tf.sum(tf.mul(dp, sp), -1, true))) as tf.Tensor3D;
        return [
          tf.mul(tf.matMul(ds, sk), scale),
          tf.mul(tf.matMul(ds, sq, true, false), scale),
          dv,
        ];
      },
    };
  }) as (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor;
  const grads = tf.grads((a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor) => attention(a, bb, c));
  const ms = await bestMs(async () => {
    const gs = grads([q, k, v], dO);
    await Promise.all(gs.map((g) => g.data()));
    tf.dispose(gs);
  }, reps);
  tf.dispose([q, k, v, dO, keep, mask]);
  return ms;
}

/**
 * jax-js webgpu: `jit(valueAndGrad(Σ dotProductAttention(q, k, v, { isCausal: true }) ⊙ dO))`
 * over q, k, v in its `[B, T, H, d]` layout.
 */
async function jaxAttention(d: AttentionData, reps: number): Promise<number> {
  const device: JaxDevice = "webgpu";
  const [b, h, t, dh] = d.shape;
  // jax-js wants [B, T, H, d]: transpose the host data once.
  const toBthd = (x: Float32Array) => {
    const out = new Float32Array(x.length);
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        for (let ti = 0; ti < t; ti++) {
          const from = ((bi * h + hi) * t + ti) * dh, to = ((bi * t + ti) * h + hi) * dh;
          out.set(x.subarray(from, from + dh), to);
        }
      }
    }
    return out;
  };
  const shape = [b, t, h, dh];
  const [q, k, v, dO] = [d.q, d.k, d.v, d.dO].map((x) => jnp.array(toBthd(x), { shape, device }));
  const step = jaxJit(
    jaxValueAndGrad(
      (qq: jnp.Array, kk: jnp.Array, vv: jnp.Array, g: jnp.Array) =>
        jnp.sum(jnn.dotProductAttention(qq, kk, vv, { isCausal: true }).mul(g)),
      { argnums: [0, 1, 2] },
    ),
  );
  const ms = await bestMs(async () => {
    const [loss, grads] = step(q.ref, k.ref, v.ref, dO.ref);
    await Promise.all([loss.data(), ...grads.map((g: jnp.Array) => g.data())]);
  }, reps);
  step.dispose();
  for (const x of [q, k, v, dO]) x.dispose();
  return ms;
}

/**
 * Section 2c: fused causal attention forward + backward beside the composed path and the WebGPU
 * peers, one table row per implementation and shape.
 *
 * @param gpu The WebGPU backend.
 * @param problems Why each peer cannot run (`null`: it can).
 */
export async function attentionBench(
  gpu: WebGpuBackend,
  problems: { tfjs: string | null; jax: string | null },
): Promise<void> {
  console.log(
    "\n## WebGPU causal attention, f32: output + dq, dk, dv for a fixed dO, q/k/v [B, H, T, d] " +
      "(best of runs, gradients read back)\n",
  );
  console.log("| B, H, T, d | impl | ms (fwd + bwd) | ablate-webgpu fused speed-up over it |");
  console.log("|---|---|---:|---:|");
  for (const shape of SHAPES) {
    const d = attentionData(shape);
    const reps = shape[2] > 512 ? 2 : 3;
    const impls: Impl[] = [
      ["ablate-webgpu fused (causalAttention)", null, () => ablateAttention(gpu, d, true, reps)],
      [
        "ablate-webgpu composed (matmul, mask, softmax, matmul)",
        null,
        () => ablateAttention(gpu, d, false, reps),
      ],
      ["tfjs-webgpu (peer, composed + customGrad)", problems.tfjs, () => tfjsAttention(d, reps)],
      [
        "jax-js webgpu (peer, jit(valueAndGrad(nn.dotProductAttention, isCausal)))",
        problems.jax,
        () => jaxAttention(d, reps),
      ],
    ];
    await printComparison(shape.join(", "), impls);
  }
}
