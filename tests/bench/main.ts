/**
 * `deno task bench`: speed figures with a peer measured in the same run (never a pass/fail).
 *
 * Today: matmul GFLOP/s of the cpu reference backend at 256³ and 512³ (plain and with a
 * transposed operand), next to TensorFlow.js's cpu backend (`@tensorflow/tfjs-backend-cpu`, the
 * plain-JavaScript peer a user would otherwise pick) and a naive i-j-k TypeScript loop.
 * ablate-webgpu rows appear where an adapter exists (its plain kernel today; the fast variants
 * and the JavaScript WebGPU peers come with #4); the wasm backend adds its rows with #5.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWebGpuBackend } from "../../lib/backend/webgpu.ts";
import { matmul, randn, Rng, type Tensor, transpose } from "../../lib/tensor/mod.ts";

/** Median milliseconds of the async `fn` over `reps` runs after one warm-up. */
async function timeAsyncMs(fn: () => Promise<void>, reps: number): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Median milliseconds of `fn` over `reps` runs after one warm-up. */
function timeMs(fn: () => void, reps: number): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function gflops(n: number, ms: number): number {
  return (2 * n ** 3) / (ms * 1e6);
}

function naiveMatmul(a: Float32Array, b: Float32Array, n: number): Float32Array {
  const c = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < n; p++) s += a[i * n + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  }
  return c;
}

interface Row {
  name: string;
  size: number;
  ms: number;
}

async function main(): Promise<void> {
  await tf.setBackend("cpu");
  const backend = new CpuBackend();
  let gpu: Backend | null = null;
  try {
    gpu = await createWebGpuBackend();
  } catch (e) {
    console.log(`(no WebGPU rows: ${(e as Error).message})`);
  }
  const rng = new Rng(0);
  const rows: Row[] = [];
  for (const n of [256, 512]) {
    const reps = n <= 256 ? 7 : 3;
    const a = randn([n, n], { rng, backend }), b = randn([n, n], { rng, backend });
    const run = (x: Tensor, y: Tensor) => () => matmul(x, y).dispose();
    rows.push({ name: "ablate-cpu", size: n, ms: timeMs(run(a, b), reps) });
    rows.push({ name: "ablate-cpu (A·Bᵀ)", size: n, ms: timeMs(run(a, transpose(b)), reps) });
    if (gpu !== null) {
      const ga = randn([n, n], { rng, backend: gpu }), gb = randn([n, n], { rng, backend: gpu });
      // Includes one submit and a read of one element's buffer: the honest end-to-end figure.
      const once = async () => {
        const c = matmul(ga, gb);
        await c.data();
        c.dispose();
      };
      rows.push({
        name: "ablate-webgpu",
        size: n,
        ms: await timeAsyncMs(once, reps),
      });
    }
    const ta = tf.randomNormal([n, n]), tb = tf.randomNormal([n, n]);
    rows.push({
      name: "tfjs-cpu (peer)",
      size: n,
      ms: timeMs(() => {
        const c = tf.matMul(ta, tb);
        c.dataSync();
        c.dispose();
      }, reps),
    });
    const ad = a.dataSync() as Float32Array, bd = b.dataSync() as Float32Array;
    rows.push({
      name: "naive TS i-j-k (peer)",
      size: n,
      ms: timeMs(() => naiveMatmul(ad, bd, n), 1),
    });
    ta.dispose();
    tb.dispose();
  }
  console.log(
    "matmul, f32, square n×n×n (median wall time; figures are noisy, compare within a run)\n",
  );
  console.log("| impl | n | ms | GFLOP/s | ablate-cpu speed-up over it |");
  console.log("|---|---:|---:|---:|---:|");
  for (const r of rows) {
    const ours = rows.find((o) => o.name === "ablate-cpu" && o.size === r.size) as Row;
    console.log(
      `| ${r.name} | ${r.size} | ${r.ms.toFixed(1)} | ${gflops(r.size, r.ms).toFixed(2)} | ${
        (r.ms / ours.ms).toFixed(2)
      }× |`,
    );
  }
}

if (import.meta.main) await main();
