/**
 * `deno task bench`: speed figures with peers measured in the same run (never a pass/fail).
 *
 * 1) matmul GFLOP/s at 256³, 512³, 1024³: ablate-wasm (SIMD kernels on worker threads),
 *    ablate-webgpu (where an adapter exists), ablate-cpu (the reference), jax-js on its wasm
 *    device (2 worker threads here: `navigator.hardwareConcurrency`; lazy, so every result is
 *    awaited), TensorFlow.js's wasm (XNNPACK SIMD) and cpu backends, and a naive loop.
 * 2) WebGPU (where an adapter exists): matmul A·B and A·Bᵀ for ablate-webgpu with its
 *    adapter-chosen kernel and each variant forced (texture, block4, vec4, dot4, tiled), beside the WebGPU
 *    peers tfjs-backend-webgpu and jax-js on its webgpu device; then the dispatch overhead per
 *    op: N tiny adds recorded back to back and read once, per-op µs = (t(N) − t(1)) / (N − 1).
 *    A peer that cannot start prints one line saying why.
 *    2b) WebGPU cross-entropy, forward + backward (mean loss and `d loss / d logits`, both read
 *    back) at rows × vocab = 2048 × 256 and 1024 × 32768 (128 MiB of logits, the most lavapipe
 *    binds): ablate-webgpu's fused `crossEntropy` beside tfjs-webgpu
 *    (`tf.losses.softmaxCrossEntropy` in a `tf.customGrad`) and jax-js webgpu
 *    (`jit(valueAndGrad(−mean Σ logSoftmax · onehot))`).
 *    2c) WebGPU causal attention, forward + backward (`attention.ts`), at [B, H, T, d] =
 *    [16, 4, 128, 64] and [2, 4, 1024, 64]: ablate's fused kernel and its composed path beside
 *    tfjs-webgpu and jax-js webgpu (`nn.dotProductAttention`).
 * 3) training tokens/s of the reference tiny GPT (docs/design.md §6), dense and MoE: ablate-wasm,
 *    ablate-webgpu where an adapter exists (through `Decoder.lossAsync`; median of 5 steps after
 *    a warm-up), jax-js on its webgpu device training the
 *    dense model (`jax_gpt.ts`, embedding as `oneHot(ids) · W` because the WGSL of jax-js's
 *    gather gradient fails Deno's validator; median of 3 steps after a compiling warm-up, about a
 *    minute), and PyTorch (Debian's, CPU, 2 threads) when /usr/bin/python3 has torch; ratio
 *    columns: ablate-wasm ÷ each row and ablate-webgpu ÷ each row. 4) FP8 (fp8.ts): the FP8
 *    Backend operations (quantise + dequantise, simulated GEMM) on cpu, wasm and WebGPU, FP8 vs
 *    FP32 training tokens/s on wasm and WebGPU, weight memory and the GEMM error table.
 *    Figures are noisy (±30% run to run): compare within a run.
 *
 * Flags: `--jax-train` adds jax-js wasm training the dense model (`jax_gpt.ts`; slow: minutes).
 * `--only=<section>[,<section>…]` runs only the named sections, of `matmul` (1), `webgpu` (2),
 * `xent` (2b), `attention` (2c), `train` (3), `fp8` (4): e.g.
 * `deno task bench --only=xent,train`.
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
  jit as jaxJit,
  nn as jnn,
  numpy as jnp,
  valueAndGrad as jaxValueAndGrad,
} from "@jax-js/jax";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend, type WasmBackend } from "../../lib/backend/wasm.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../lib/backend/webgpu.ts";
import type { MatmulVariant } from "../../lib/backend/webgpu/kernels/matmul.ts";
import {
  add,
  crossEntropy,
  matmul,
  randn,
  Rng,
  type Tensor,
  tensor,
  tidy,
  transpose,
} from "../../lib/tensor/mod.ts";
import { bestMs, type Impl, printComparison } from "./_common.ts";
import { attentionBench } from "./attention.ts";
import { fp8Bench, fp8TrainingGap } from "./fp8.ts";
import { jaxTrainTokensPerSec } from "./jax_gpt.ts";
import { TINY_GPT, TINY_GPT_MOE, trainTokensPerSec, trainTokensPerSecAsync } from "./tiny_gpt.ts";

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

/**
 * Best ms per product of `chain` products `a·b` (or `a·bᵀ`) recorded back to back and read back
 * once (the last; on WebGPU that waits for all of them): `chain` 1 is the end-to-end latency of
 * one product, a longer chain the throughput without a host round trip per product.
 */
async function ablateMatmul(
  backend: Backend,
  n: number,
  reps: number,
  transB = false,
  chain = 1,
): Promise<number> {
  const rng = new Rng(0);
  const a = randn([n, n], { rng, backend }), b = randn([n, n], { rng, backend });
  const rhs = transB ? transpose(b) : b; // a view: the kernel reads B transposed in place
  const ms = await bestMs(async () => {
    const cs = Array.from({ length: chain }, () => matmul(a, rhs));
    await cs[chain - 1].data();
    for (const c of cs) c.dispose();
  }, reps);
  a.dispose();
  b.dispose();
  return ms / chain;
}

/**
 * jax-js on `device`, as {@linkcode ablateMatmul}: its evaluation is lazy, so every product of a
 * chain is kept and waited for (`blockUntilReady`), and the last one read back.
 */
async function jaxMatmul(
  n: number,
  reps: number,
  device: JaxDevice = "wasm",
  transB = false,
  chain = 1,
): Promise<number> {
  const rng = new Rng(0);
  const data = () => Float32Array.from({ length: n * n }, () => rng.normal());
  const a = jnp.array(data(), { shape: [n, n], device });
  const b = jnp.array(data(), { shape: [n, n], device });
  const ms = await bestMs(async () => {
    const cs = Array.from(
      { length: chain },
      () => jnp.matmul(a.ref, transB ? b.ref.transpose() : b.ref),
    );
    for (const c of cs.slice(0, -1)) (await c.blockUntilReady()).dispose();
    await cs[chain - 1].data();
  }, reps);
  a.dispose();
  b.dispose();
  return ms / chain;
}

/**
 * TensorFlow.js on backend `name` (already registered), as {@linkcode ablateMatmul}: `chain`
 * products `a·b` (or `a·bᵀ`) queued back to back (tfjs runs ops eagerly, in order) and the last
 * read back.
 */
async function tfjsMatmul(
  name: string,
  n: number,
  reps: number,
  transB = false,
  chain = 1,
): Promise<number> {
  await tf.setBackend(name);
  const ta = tf.randomNormal([n, n]), tb = tf.randomNormal([n, n]);
  const ms = await bestMs(async () => {
    const cs = Array.from({ length: chain }, () => tf.matMul(ta, tb, false, transB));
    await cs[chain - 1].data();
    for (const c of cs) c.dispose();
  }, reps);
  ta.dispose();
  tb.dispose();
  return ms / chain;
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

const VARIANTS = ["texture", "block4", "vec4", "dot4", "tiled"] as const;

/** Products per timed chain in the WebGPU matmul table, by n. */
const CHAIN = { 256: 16, 512: 8, 1024: 4 } as const;

/** Why `variant` cannot run the product, or `null` when it can. */
function notApplicable(variant: MatmulVariant, transB: boolean): string | null {
  if (variant === "vec4" && transB) return "n/a (vec4 reads B untransposed)";
  if (variant === "dot4" && !transB) return "n/a (dot4 reads B transposed)";
  return null;
}

/** Section 2: WebGPU matmul A·B and A·Bᵀ per variant and peer, then the dispatch overhead. */
async function webgpuBench(gpu: WebGpuBackend, jaxDevices: JaxDevice[]): Promise<void> {
  const problems = await gpuPeerProblems(jaxDevices);
  type Run = (n: number, reps: number, t: boolean, chain: number) => Promise<number>;
  const peers: [string, string | null, Run][] = [
    ["tfjs-webgpu (peer)", problems.tfjs, (n, r, t, c) => tfjsMatmul("webgpu", n, r, t, c)],
    ["jax-js webgpu (peer)", problems.jax, (n, r, t, c) => jaxMatmul(n, r, "webgpu", t, c)],
  ];
  for (const [name, why] of peers) if (why !== null) console.log(`(no ${name} rows: ${why})`);
  console.log(
    "\n## WebGPU matmul, f32, n×n×n: A·B and A·Bᵀ (best of runs; ms per product of a chain of " +
      `${Object.entries(CHAIN).map(([n, c]) => `${c} at ${n}`).join(", ")} recorded back to back ` +
      "and read back once; the latency row: one product and its read)\n",
  );
  console.log(
    `adapter: ${gpu.description}; \`auto\` takes ${
      gpu.isCpuFallback
        ? "the CPU-driver-shaped kernels (texture where it fits, else vec4, dot4 or block4)"
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
      const auto = gpu.matmulVariantFor(spec);
      const chain = CHAIN[n as keyof typeof CHAIN];
      const rows: [string, number | string][] = [
        [`ablate-webgpu auto (${auto})`, await ablateMatmul(gpu, n, reps, transB, chain)],
        [
          `ablate-webgpu auto, latency (1 product + read)`,
          await ablateMatmul(gpu, n, reps, transB),
        ],
      ];
      for (const variant of VARIANTS) {
        const name = `ablate-webgpu ${variant}`;
        const why = notApplicable(variant, transB);
        if (why !== null) {
          rows.push([name, why]);
          continue;
        }
        const ms = await forced(gpu, variant, () => ablateMatmul(gpu, n, reps, transB, chain));
        rows.push([name, ms]);
      }
      for (const peer of peers) {
        const [name, why, run] = peer;
        if (why !== null) continue;
        try {
          rows.push([name, await run(n, reps, transB, chain)]);
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

/**
 * `[rows, vocab]` of the cross-entropy figure: the tiny GPT's logits (B·T = 2048, bytes), then a
 * BPE-sized vocab at 1024 rows: 128 MiB of f32 logits, lavapipe's `maxStorageBufferBindingSize`
 * (2048 × 32768 cannot be bound there by any of the three).
 */
const XENT_SHAPES = [[2048, 256], [1024, 32768]] as const;

/** Host logits `[rows, vocab]` ~ N(0, 1) and targets `[rows]`, shared by every impl. */
interface XentData {
  rows: number;
  vocab: number;
  logits: Float32Array<ArrayBuffer>;
  targets: Int32Array<ArrayBuffer>;
}

function xentData(rows: number, vocab: number): XentData {
  const rng = new Rng(0);
  return {
    rows,
    vocab,
    logits: Float32Array.from({ length: rows * vocab }, () => rng.normal()),
    targets: Int32Array.from({ length: rows }, () => rng.int(vocab)),
  };
}

/**
 * Best ms of the mean cross-entropy of `logits` against `targets` and its gradient
 * `d loss / d logits`, both read back, per library, each written the way its users would.
 */
const crossEntropyFwdBwd = {
  /** ablate: `crossEntropy` (fused forward kernel, fused backward kernel) + `backward()`. */
  async ablate(backend: Backend, d: XentData, reps: number): Promise<number> {
    const shape = [d.rows, d.vocab];
    const logits = tensor(d.logits, { shape, backend, requiresGrad: true });
    const targets = tensor(d.targets, { dtype: "i32", shape: [d.rows], backend });
    const ms = await bestMs(async () => {
      const loss = tidy(() => {
        const l = crossEntropy(logits, targets);
        l.backward();
        return l;
      });
      const grad = logits.grad;
      if (grad === null) throw new Error("Cannot time crossEntropy(): logits got no gradient");
      await Promise.all([loss.data(), grad.data()]);
      loss.dispose();
      grad.dispose();
      logits.grad = null;
    }, reps);
    logits.dispose();
    targets.dispose();
    return ms;
  },
  /**
   * tfjs: `tf.losses.softmaxCrossEntropy` on `tf.oneHot` labels, inside `tf.customGrad` with
   * its own gradient `dy · (softmax(x) − labels) / rows`: tfjs-core's bundle registers no op
   * gradients (those come with the `@tensorflow/tfjs` umbrella), so the loss's mean (RealDiv)
   * has none; the custom gradient is the one the loss computes internally.
   */
  async tfjs(d: XentData, reps: number): Promise<number> {
    await tf.setBackend("webgpu");
    const logits = tf.tensor2d(d.logits, [d.rows, d.vocab]);
    const targets = tf.tensor1d(d.targets, "int32");
    // customGrad passes (...inputs, save): here (x, save).
    const loss = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      const labels = tf.oneHot(targets, d.vocab);
      save([x, labels]);
      return {
        value: tf.losses.softmaxCrossEntropy(labels, x) as tf.Scalar,
        gradFunc: (dy: tf.Tensor, [z, y]: tf.Tensor[]) =>
          tf.mul(dy, tf.div(tf.sub(tf.softmax(z), y), d.rows)),
      };
    }) as (x: tf.Tensor) => tf.Scalar;
    const f = tf.valueAndGrad(loss);
    const ms = await bestMs(async () => {
      const { value, grad } = f(logits);
      await Promise.all([value.data(), grad.data()]);
      value.dispose();
      grad.dispose();
    }, reps);
    logits.dispose();
    targets.dispose();
    return ms;
  },
  /**
   * jax-js: `jit(valueAndGrad(−mean Σ logSoftmax(x) · onehot))`, the one-hot as
   * `t == arange(V)`: `nn.oneHot` slices `eye(V)`, a V² buffer (4 GiB at V = 32768).
   */
  async jax(d: XentData, reps: number): Promise<number> {
    const device: JaxDevice = "webgpu";
    const classes = jnp.arange(d.vocab, undefined, undefined, { dtype: jnp.int32, device });
    const oneHot = (t: jnp.Array) =>
      jnp.equal(t.reshape([d.rows, 1]), classes.ref).astype(jnp.float32); // [rows, V]
    const step = jaxJit(
      jaxValueAndGrad((x: jnp.Array, t: jnp.Array) =>
        jnp.mean(jnp.sum(jnn.logSoftmax(x, -1).mul(oneHot(t)), -1)).mul(-1)
      ),
    );
    const logits = jnp.array(d.logits, { shape: [d.rows, d.vocab], device });
    const targets = jnp.array(d.targets, { dtype: jnp.int32, shape: [d.rows], device });
    const ms = await bestMs(async () => {
      const [loss, grad] = step(logits.ref, targets.ref);
      await Promise.all([loss.data(), grad.data()]);
    }, reps);
    step.dispose();
    classes.dispose();
    logits.dispose();
    targets.dispose();
    return ms;
  },
};

/** Section 2b: the fused cross-entropy forward + backward beside the WebGPU peers. */
async function crossEntropyBench(gpu: WebGpuBackend, jaxDevices: JaxDevice[]): Promise<void> {
  const problems = await gpuPeerProblems(jaxDevices);
  console.log(
    "\n## WebGPU cross-entropy, f32: mean loss of logits [rows, vocab] against i32 targets + " +
      "d loss / d logits (best of runs, both read back)\n",
  );
  console.log("| rows × vocab | impl | ms (fwd + bwd) | ablate-webgpu speed-up over it |");
  console.log("|---|---|---:|---:|");
  for (const [rows, vocab] of XENT_SHAPES) {
    const d = xentData(rows, vocab);
    const reps = vocab > 4096 ? 2 : 5;
    const impls: Impl[] = [
      ["ablate-webgpu (fused crossEntropy)", null, () => crossEntropyFwdBwd.ablate(gpu, d, reps)],
      [
        "tfjs-webgpu (peer, tf.losses.softmaxCrossEntropy + customGrad)",
        problems.tfjs,
        () => crossEntropyFwdBwd.tfjs(d, reps),
      ],
      [
        "jax-js webgpu (peer, jit(valueAndGrad(logSoftmax · (t == arange V))))",
        problems.jax,
        () => crossEntropyFwdBwd.jax(d, reps),
      ],
    ];
    await printComparison(`${rows} × ${vocab}`, impls);
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

/** Sections of the bench, for `--only=<name>[,<name>…]`. */
const SECTIONS = ["matmul", "webgpu", "xent", "attention", "train", "fp8"] as const;
type Section = typeof SECTIONS[number];

/** The sections `--only=` names (all when absent); an unknown name is an error. */
function chosenSections(args: string[]): Set<Section> {
  const only = args.find((a) => a.startsWith("--only="));
  if (only === undefined) return new Set(SECTIONS);
  const names = only.slice("--only=".length).split(",");
  for (const name of names) {
    if (!(SECTIONS as readonly string[]).includes(name)) {
      throw new Error(`Cannot run bench section '${name}': expected one of ${SECTIONS.join(", ")}`);
    }
  }
  return new Set(names as Section[]);
}

/** Section 1: matmul on the CPU-side backends and peers. */
async function matmulBench(
  cpu: CpuBackend,
  wasm: WasmBackend,
  gpu: WebGpuBackend | null,
): Promise<void> {
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
}

/** Timed steps of jax-js webgpu training (after one compiling warm-up); ~15 s each on lavapipe. */
const JAX_WEBGPU_TRAIN_STEPS = 3;

/**
 * Section 3: training tokens/s of the reference tiny GPT, dense and MoE, with two ratio
 * columns: ablate-wasm and ablate-webgpu over each row.
 */
async function trainBench(
  wasm: WasmBackend,
  gpu: WebGpuBackend | null,
  jaxDevices: JaxDevice[],
  jaxWasm: boolean,
): Promise<void> {
  console.log(
    "\n## training the reference tiny GPT (docs/design.md §6), tokens/s (median of steps)\n",
  );
  console.log("| model | impl | tokens/s | ablate-wasm ÷ it | ablate-webgpu ÷ it |");
  console.log("|---|---|---:|---:|---:|");
  const failed = (e: unknown) => `failed: ${(e as Error).message.split("\n")[0]}`;
  for (
    const [model, config, kind] of [["dense", TINY_GPT, "dense"], [
      "MoE",
      TINY_GPT_MOE,
      "moe",
    ]] as const
  ) {
    const ours = trainTokensPerSec(wasm, config, 3);
    const rows: [string, number | string][] = [["ablate-wasm", ours]];
    let webgpu: number | null = null;
    if (gpu === null) {
      rows.push(["ablate-webgpu", "not available (no WebGPU adapter)"]);
    } else {
      try {
        webgpu = await trainTokensPerSecAsync(gpu, config, 5);
        rows.push(["ablate-webgpu", webgpu]);
      } catch (e) {
        rows.push(["ablate-webgpu", failed(e)]);
      }
    }
    if (kind === "dense") {
      const name = "jax-js webgpu (peer, jax_gpt.ts; embedding as oneHot(ids) · W)";
      if (!jaxDevices.includes("webgpu")) {
        rows.push([name, `not available: jax-js init() found [${jaxDevices.join(", ")}]`]);
      } else {
        try {
          rows.push([
            name,
            await jaxTrainTokensPerSec(JAX_WEBGPU_TRAIN_STEPS, { device: "webgpu" }),
          ]);
        } catch (e) {
          rows.push([name, failed(e)]);
        }
      }
    }
    const peer = await torchPeer(kind);
    rows.push([
      "PyTorch CPU (peer)",
      peer ?? "not available (/usr/bin/python3 without torch)",
    ]);
    if (kind === "dense" && jaxWasm) {
      try {
        rows.push(["jax-js wasm (peer, jax_gpt.ts)", await jaxTrainTokensPerSec(2)]);
      } catch (e) {
        rows.push(["jax-js wasm (peer, jax_gpt.ts)", failed(e)]);
      }
    }
    for (const [name, tps] of rows) {
      if (typeof tps === "string") {
        console.log(`| ${model} | ${name} | ${tps} | | |`);
        continue;
      }
      const overWasm = name === "ablate-wasm" ? "" : `${(ours / tps).toFixed(2)}×`;
      const overGpu = webgpu === null || name === "ablate-webgpu"
        ? ""
        : `${(webgpu / tps).toFixed(2)}×`;
      console.log(`| ${model} | ${name} | ${tps.toFixed(0)} | ${overWasm} | ${overGpu} |`);
    }
  }
}

async function main(): Promise<void> {
  const sections = chosenSections(Deno.args);
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
  if (sections.has("matmul")) await matmulBench(cpu, wasm, gpu);
  if (gpu !== null && sections.has("webgpu")) await webgpuBench(gpu, jaxDevices);
  if (gpu !== null && sections.has("xent")) await crossEntropyBench(gpu, jaxDevices);
  if (gpu !== null && sections.has("attention")) {
    await attentionBench(gpu, await gpuPeerProblems(jaxDevices));
  }
  if (sections.has("train")) {
    await trainBench(wasm, gpu, jaxDevices, Deno.args.includes("--jax-train"));
  }
  if (sections.has("fp8")) {
    await fp8Bench(cpu, wasm, gpu);
    await fp8TrainingGap(wasm);
  }
  wasm.close();
}

if (import.meta.main) {
  await main();
  Deno.exit(0); // jax-js and tfjs-wasm keep worker threads alive
}
