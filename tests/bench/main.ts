/**
 * `deno task bench`: speed figures with peers measured in the same run (never a pass/fail).
 *
 * 1) matmul GFLOP/s at 256³, 512³, 1024³: ablate-wasm (SIMD kernels on worker threads),
 *    ablate-webgpu (where an adapter exists), ablate-cpu (the reference), jax-js on its wasm
 *    device (2 worker threads here: `navigator.hardwareConcurrency`; lazy, so every result is
 *    awaited), TensorFlow.js's wasm (XNNPACK SIMD) and cpu backends, and a naive loop. 2) training tokens/s of the reference tiny GPT (DESIGN.md §6),
 *    dense and MoE: ablate-wasm beside PyTorch (Debian's, CPU, 2 threads) when
 *    /usr/bin/python3 has torch. 3) FP8 quantise throughput and the GEMM error table (fp8.ts).
 *    Figures are noisy (±30% run to run): compare within a run.
 *    `--jax-train` adds jax-js wasm training the dense model (`jax_gpt.ts`; slow: minutes).
 *    Peers still to add: jax-js WebGPU, tfjs-webgpu (#4).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { defaultDevice as jaxDevice, init as jaxInit, numpy as jnp } from "@jax-js/jax";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend, type WasmBackend } from "../../lib/backend/wasm.ts";
import { createWebGpuBackend } from "../../lib/backend/webgpu.ts";
import { matmul, randn, Rng } from "../../lib/tensor/mod.ts";
import { fp8Bench, fp8TrainingGap } from "./fp8.ts";
import { jaxTrainTokensPerSec } from "./jax_gpt.ts";
import { TINY_GPT, TINY_GPT_MOE, trainTokensPerSec } from "./tiny_gpt.ts";

/** Best (minimum) milliseconds of the async `fn` over `reps` runs after one warm-up. */
async function bestMs(fn: () => void | Promise<void>, reps: number): Promise<number> {
  await fn();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
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

async function ablateMatmul(backend: Backend, n: number, reps: number): Promise<number> {
  const rng = new Rng(0);
  const a = randn([n, n], { rng, backend }), b = randn([n, n], { rng, backend });
  // Each rep includes reading the result back: the honest end-to-end time.
  return await bestMs(async () => {
    const c = matmul(a, b);
    await c.data();
    c.dispose();
  }, reps);
}

/** jax-js on its wasm device: keep every result and await it (its evaluation is lazy). */
async function jaxMatmul(n: number, reps: number): Promise<number> {
  const rng = new Rng(0);
  const data = () => Float32Array.from({ length: n * n }, () => rng.normal());
  const a = jnp.array(data()).reshape([n, n]), b = jnp.array(data()).reshape([n, n]);
  const ms = await bestMs(async () => {
    const c = jnp.matmul(a.ref, b.ref);
    await c.data();
  }, reps);
  a.dispose();
  b.dispose();
  return ms;
}

/** TensorFlow.js on backend `name` (already registered): `c = a·b`, read back. */
async function tfjsMatmul(name: string, n: number, reps: number): Promise<number> {
  await tf.setBackend(name);
  const ta = tf.randomNormal([n, n]), tb = tf.randomNormal([n, n]);
  const ms = await bestMs(async () => {
    const c = tf.matMul(ta, tb);
    await c.data();
    c.dispose();
  }, reps);
  ta.dispose();
  tb.dispose();
  return ms;
}

async function torchPeer(kind: "dense" | "moe"): Promise<number | null> {
  try {
    const script = new URL("./peer_torch.py", import.meta.url).pathname;
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [script, kind, "5"],
      stderr: "null",
    })
      .output();
    if (out.code !== 0) return null;
    return JSON.parse(new TextDecoder().decode(out.stdout).trim()).tokensPerSec;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  // tfjs-wasm loads its .wasm files from node_modules (Deno has no bundler to place them).
  setWasmPaths(
    new URL("../../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url).pathname,
  );
  setThreadsCount(2);
  await jaxInit();
  jaxDevice("wasm");
  const cpu = new CpuBackend();
  const wasm: WasmBackend = await createWasmBackend();
  let gpu: Backend | null = null;
  try {
    gpu = await createWebGpuBackend();
  } catch (e) {
    console.log(`(no WebGPU rows: ${(e as Error).message})`);
  }
  console.log(
    `backends: ${wasm.description}; ${gpu?.description ?? "no webgpu"}; ${cpu.description}\n`,
  );
  console.log("## matmul, f32, n×n×n (best of runs, result read back)\n");
  console.log("| n | impl | ms | GFLOP/s | ablate-wasm speed-up over it |");
  console.log("|---:|---|---:|---:|---:|");
  for (const n of [256, 512, 1024]) {
    const reps = n === 1024 ? 3 : 7;
    const rows: [string, number][] = [["ablate-wasm", await ablateMatmul(wasm, n, reps)]];
    if (gpu !== null) rows.push(["ablate-webgpu", await ablateMatmul(gpu, n, Math.min(reps, 3))]);
    if (n <= 512) rows.push(["ablate-cpu (reference)", await ablateMatmul(cpu, n, 2)]);
    rows.push(["jax-js wasm (peer)", await jaxMatmul(n, reps)]);
    rows.push(["tfjs-wasm (peer)", await tfjsMatmul("wasm", n, reps)]);
    rows.push(["tfjs-cpu (peer)", await tfjsMatmul("cpu", n, n === 1024 ? 1 : 2)]);
    if (n <= 512) {
      const a = new Float32Array(n * n).fill(1), b = new Float32Array(n * n).fill(1);
      rows.push(["naive TS loop (peer)", await bestMs(() => void naiveMatmul(a, b, n), 1)]);
    }
    const ours = rows[0][1];
    for (const [name, ms] of rows) {
      console.log(
        `| ${n} | ${name} | ${ms.toFixed(1)} | ${((2 * n ** 3) / (ms * 1e6)).toFixed(1)} | ${
          (ms / ours).toFixed(2)
        }× |`,
      );
    }
  }
  console.log("\n## training the reference tiny GPT (DESIGN.md §6), tokens/s (median of steps)\n");
  console.log("| model | impl | tokens/s | ablate-wasm ÷ peer |");
  console.log("|---|---|---:|---:|");
  for (
    const [name, config, kind] of [["dense", TINY_GPT, "dense"], [
      "MoE",
      TINY_GPT_MOE,
      "moe",
    ]] as const
  ) {
    const ours = trainTokensPerSec(wasm, config, 3);
    console.log(`| ${name} | ablate-wasm | ${ours.toFixed(0)} | |`);
    const peer = await torchPeer(kind);
    if (peer !== null) {
      console.log(
        `| ${name} | PyTorch CPU (peer) | ${peer.toFixed(0)} | ${(ours / peer).toFixed(2)}× |`,
      );
    } else {console.log(
        `| ${name} | PyTorch CPU (peer) | not available (/usr/bin/python3 without torch) | |`,
      );}
    if (kind === "dense" && Deno.args.includes("--jax-train")) {
      const jax = await jaxTrainTokensPerSec(2);
      console.log(
        `| ${name} | jax-js wasm (peer, jax_gpt.ts) | ${jax.toFixed(0)} | ${
          (ours / jax).toFixed(2)
        }× |`,
      );
    }
  }
  await fp8Bench();
  await fp8TrainingGap(wasm);
  wasm.close();
}

if (import.meta.main) {
  await main();
  Deno.exit(0); // jax-js and tfjs-wasm keep worker threads alive
}
