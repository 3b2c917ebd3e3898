/**
 * `deno task bench`: speed figures with peers measured in the same run (never a pass/fail).
 *
 * 1) matmul GFLOP/s at 256³, 512³, 1024³: ablate-wasm (SIMD kernels on worker threads),
 *    ablate-webgpu (where an adapter exists), ablate-cpu (the reference), jax-js on its wasm
 *    device (2 worker threads here: `navigator.hardwareConcurrency`; lazy, so every result is
 *    awaited), TensorFlow.js's wasm (XNNPACK SIMD) and cpu backends, and a naive loop.
 * 2) WebGPU (where an adapter exists): matmul A·B and A·Bᵀ for ablate-webgpu with its
 *    adapter-chosen kernel and each variant forced (block4, vec4, dot4, tiled), beside the WebGPU
 *    peers tfjs-backend-webgpu and jax-js on its webgpu device; then the dispatch overhead per
 *    op: N tiny adds recorded back to back and read once, per-op µs = (t(N) − t(1)) / (N − 1).
 *    A peer that cannot start prints one line saying why.
 * 3) training tokens/s of the reference tiny GPT (DESIGN.md §6), dense and MoE: ablate-wasm,
 *    ablate-webgpu where an adapter exists (through `Decoder.lossAsync`; one timed step after a
 *    warm-up, as a step takes tens of seconds on lavapipe), and PyTorch (Debian's, CPU, 2
 *    threads) when /usr/bin/python3 has torch. 4) FP8 quantise throughput and the GEMM error
 *    table (fp8.ts).
 *    Figures are noisy (±30% run to run): compare within a run.
 *    `--jax-train` adds jax-js wasm training the dense model (`jax_gpt.ts`; slow: minutes).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import {
  defaultDevice as jaxDevice,
  type Device as JaxDevice,
  init as jaxInit,
  numpy as jnp,
} from "@jax-js/jax";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend, type WasmBackend } from "../../lib/backend/wasm.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../lib/backend/webgpu.ts";
import {
  type MatmulVariant,
  resolveMatmulVariant,
} from "../../lib/backend/webgpu/kernels/matmul.ts";
import { add, matmul, randn, Rng, type Tensor, transpose } from "../../lib/tensor/mod.ts";
import { fp8Bench, fp8TrainingGap } from "./fp8.ts";
import { jaxTrainTokensPerSec } from "./jax_gpt.ts";
import { TINY_GPT, TINY_GPT_MOE, trainTokensPerSec, trainTokensPerSecAsync } from "./tiny_gpt.ts";

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

async function ablateMatmul(
  backend: Backend,
  n: number,
  reps: number,
  transB = false,
): Promise<number> {
  const rng = new Rng(0);
  const a = randn([n, n], { rng, backend }), b = randn([n, n], { rng, backend });
  const rhs = transB ? transpose(b) : b; // a view: the kernel reads B transposed in place
  // Each rep includes reading the result back: the honest end-to-end time.
  const ms = await bestMs(async () => {
    const c = matmul(a, rhs);
    await c.data();
    c.dispose();
  }, reps);
  a.dispose();
  b.dispose();
  return ms;
}

/** jax-js on `device`: keep every result and await it (its evaluation is lazy). */
async function jaxMatmul(
  n: number,
  reps: number,
  device: JaxDevice = "wasm",
  transB = false,
): Promise<number> {
  const rng = new Rng(0);
  const data = () => Float32Array.from({ length: n * n }, () => rng.normal());
  const a = jnp.array(data(), { shape: [n, n], device });
  const b = jnp.array(data(), { shape: [n, n], device });
  const ms = await bestMs(async () => {
    const c = jnp.matmul(a.ref, transB ? b.ref.transpose() : b.ref);
    await c.data();
  }, reps);
  a.dispose();
  b.dispose();
  return ms;
}

/** TensorFlow.js on backend `name` (already registered): `c = a·b` (or `a·bᵀ`), read back. */
async function tfjsMatmul(name: string, n: number, reps: number, transB = false): Promise<number> {
  await tf.setBackend(name);
  const ta = tf.randomNormal([n, n]), tb = tf.randomNormal([n, n]);
  const ms = await bestMs(async () => {
    const c = tf.matMul(ta, tb, false, transB);
    await c.data();
    c.dispose();
  }, reps);
  ta.dispose();
  tb.dispose();
  return ms;
}

/** Adds recorded back to back for the dispatch-overhead figure. */
const DISPATCH_OPS = 1000;
/** Elements per tiny add. */
const DISPATCH_SIZE = 256;

/** Best ms of `ops` chained adds of a `DISPATCH_SIZE` vector plus one read, per library. */
const chainedAdds = {
  async ablate(backend: Backend, ops: number): Promise<number> {
    const x = randn([DISPATCH_SIZE], { rng: new Rng(0), backend });
    const ms = await bestMs(async () => {
      let y: Tensor = x;
      for (let i = 0; i < ops; i++) {
        const z = add(y, x);
        if (y !== x) y.dispose();
        y = z;
      }
      await y.data();
      y.dispose();
    }, 3);
    x.dispose();
    return ms;
  },
  async tfjs(ops: number): Promise<number> {
    await tf.setBackend("webgpu");
    // Otherwise tfjs-webgpu runs ops on inputs under 1000 elements on the CPU (its default).
    tf.env().set("WEBGPU_CPU_FORWARD", false);
    const x = tf.randomNormal([DISPATCH_SIZE]);
    const ms = await bestMs(async () => {
      let y = x;
      for (let i = 0; i < ops; i++) {
        const z = tf.add(y, x);
        if (y !== x) y.dispose();
        y = z;
      }
      await y.data();
      y.dispose();
    }, 3);
    x.dispose();
    return ms;
  },
  async jax(ops: number): Promise<number> {
    const x = jnp.array(new Float32Array(DISPATCH_SIZE).fill(1), { device: "webgpu" });
    const ms = await bestMs(async () => {
      let y = jnp.add(x.ref, x.ref);
      for (let i = 1; i < ops; i++) y = jnp.add(y, x.ref);
      await y.data();
    }, 3);
    x.dispose();
    return ms;
  },
};

/** Why a WebGPU peer cannot run here, or `null` when it can. */
async function gpuPeerProblems(
  jaxDevices: JaxDevice[],
): Promise<{ tfjs: string | null; jax: string | null }> {
  let tfjs: string | null = null;
  try {
    if (!(await tf.setBackend("webgpu"))) tfjs = "tf.setBackend('webgpu') returned false";
  } catch (e) {
    tfjs = (e as Error).message;
  }
  const jax = jaxDevices.includes("webgpu")
    ? null
    : `init() found devices [${jaxDevices.join(", ")}], no webgpu`;
  return { tfjs, jax };
}

const VARIANTS = ["block4", "vec4", "dot4", "tiled"] as const;

/** Why `variant` cannot run the product, or `null` when it can. */
function notApplicable(variant: MatmulVariant, transB: boolean): string | null {
  if (variant === "vec4" && transB) return "n/a (vec4 reads B untransposed)";
  if (variant === "dot4" && !transB) return "n/a (dot4 reads B transposed)";
  return null;
}

/** Section 2: WebGPU matmul A·B and A·Bᵀ per variant and peer, then the dispatch overhead. */
async function webgpuBench(gpu: WebGpuBackend, jaxDevices: JaxDevice[]): Promise<void> {
  const problems = await gpuPeerProblems(jaxDevices);
  const peers: [string, string | null, (n: number, reps: number, t: boolean) => Promise<number>][] =
    [
      ["tfjs-webgpu (peer)", problems.tfjs, (n, reps, t) => tfjsMatmul("webgpu", n, reps, t)],
      ["jax-js webgpu (peer)", problems.jax, (n, reps, t) => jaxMatmul(n, reps, "webgpu", t)],
    ];
  for (const [name, why] of peers) if (why !== null) console.log(`(no ${name} rows: ${why})`);
  console.log(`\n## WebGPU matmul, f32, n×n×n: A·B and A·Bᵀ (best of runs, result read back)\n`);
  console.log(
    `adapter: ${gpu.description}; \`auto\` takes ${
      gpu.isCpuFallback
        ? "the CPU-driver-shaped kernels (vec4, else dot4 for A·Bᵀ, else block4)"
        : "tiled"
    }\n`,
  );
  console.log("| n | product | impl | ms | GFLOP/s | ablate-webgpu (auto) speed-up over it |");
  console.log("|---:|---|---|---:|---:|---:|");
  for (const n of [256, 512, 1024]) {
    const reps = n === 1024 ? 2 : 3;
    for (const transB of [false, true]) {
      const product = transB ? "A·Bᵀ" : "A·B";
      const spec = {
        batch: 1,
        m: n,
        n,
        k: n,
        transA: false,
        transB,
        offsetA: 0,
        offsetB: 0,
        strideA: 0,
        strideB: 0,
      };
      const auto = resolveMatmulVariant(spec, "auto", { cpuDriver: gpu.isCpuFallback });
      const rows: [string, number | string][] = [
        [`ablate-webgpu auto (${auto})`, await ablateMatmul(gpu, n, reps, transB)],
      ];
      for (const variant of VARIANTS) {
        const name = `ablate-webgpu ${variant}`;
        const why = notApplicable(variant, transB);
        if (why !== null) {
          rows.push([name, why]);
          continue;
        }
        rows.push([name, await forced(gpu, variant, () => ablateMatmul(gpu, n, reps, transB))]);
      }
      for (const peer of peers) {
        const [name, why, run] = peer;
        if (why !== null) continue;
        try {
          rows.push([name, await run(n, reps, transB)]);
        } catch (e) {
          peer[1] = (e as Error).message.split("\n")[0];
          console.log(`(${name} stopped: ${peer[1]})`);
        }
      }
      const ours = rows[0][1] as number;
      for (const [name, ms] of rows) {
        if (typeof ms === "string") {
          console.log(`| ${n} | ${product} | ${name} | ${ms} | | |`);
          continue;
        }
        console.log(
          `| ${n} | ${product} | ${name} | ${ms.toFixed(1)} | ${
            ((2 * n ** 3) / (ms * 1e6)).toFixed(1)
          } | ${(ms / ours).toFixed(2)}× |`,
        );
      }
    }
  }
  console.log(
    `\n## WebGPU dispatch overhead: ${DISPATCH_OPS} adds of ${DISPATCH_SIZE} f32 recorded back to ` +
      "back, one read\n",
  );
  console.log(`| impl | ms: 1 add + read | ms: ${DISPATCH_OPS} adds + read | µs per op |`);
  console.log("|---|---:|---:|---:|");
  const chains: [string, string | null, (ops: number) => Promise<number>][] = [
    ["ablate-webgpu", null, (ops) => chainedAdds.ablate(gpu, ops)],
    ["tfjs-webgpu (peer)", peers[0][1], chainedAdds.tfjs],
    ["jax-js webgpu (peer; lazy, may fuse adds)", peers[1][1], chainedAdds.jax],
  ];
  for (const [name, why, run] of chains) {
    if (why !== null) {
      console.log(`| ${name} | not available: ${why} | | |`);
      continue;
    }
    try {
      const one = await run(1), many = await run(DISPATCH_OPS);
      const perOp = ((many - one) / (DISPATCH_OPS - 1)) * 1000;
      console.log(
        `| ${name} | ${one.toFixed(1)} | ${many.toFixed(1)} | ${perOp.toFixed(1)} |`,
      );
    } catch (e) {
      console.log(`| ${name} | failed: ${(e as Error).message.split("\n")[0]} | | |`);
    }
  }
}

/** Run `fn` with `variant` forced on `gpu`, then restore the adapter's choice. */
async function forced<T>(
  gpu: WebGpuBackend,
  variant: MatmulVariant,
  fn: () => Promise<T>,
): Promise<T> {
  gpu.matmulVariant = variant;
  try {
    return await fn();
  } finally {
    gpu.matmulVariant = "auto";
  }
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
  const jaxDevices = await jaxInit();
  jaxDevice("wasm");
  const cpu = new CpuBackend();
  const wasm: WasmBackend = await createWasmBackend();
  let gpu: WebGpuBackend | null = null;
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
  if (gpu !== null) await webgpuBench(gpu, jaxDevices);
  console.log("\n## training the reference tiny GPT (DESIGN.md §6), tokens/s (median of steps)\n");
  console.log("| model | impl | tokens/s | ablate-wasm ÷ it |");
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
    if (gpu === null) {
      console.log(`| ${name} | ablate-webgpu | not available (no WebGPU adapter) | |`);
    } else {
      try {
        const webgpu = await trainTokensPerSecAsync(gpu, config, 1);
        console.log(
          `| ${name} | ablate-webgpu | ${webgpu.toFixed(0)} | ${(ours / webgpu).toFixed(2)}× |`,
        );
      } catch (e) {
        console.log(
          `| ${name} | ablate-webgpu | failed: ${(e as Error).message.split("\n")[0]} | |`,
        );
      }
    }
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
