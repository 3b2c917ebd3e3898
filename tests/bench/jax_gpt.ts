/**
 * Peer for `deno task bench`: the reference tiny GPT of docs/design.md §6 (dense) trained with
 * jax-js on its wasm device (worker threads: `navigator.hardwareConcurrency`) or its webgpu
 * device, written the way a jax-js user would: one `jit(valueAndGrad(loss))` step plus a jitted
 * AdamW update, so jax-js fuses what it can. Same shapes as `tiny_gpt.ts` and `peer_torch.py`:
 * bytes, d 256, 4 layers, 4 heads MHA with RoPE on adjacent pairs (applied as
 * `x·cos + (x R)·sin` with the pair-rotation matrix `R`, the same math without strided slices),
 * RMSNorm, SwiGLU 683, untied head, T 128, B 16, AdamW lr 1e-3, fp32. jax-js arrays are
 * reference-counted: every array used twice is passed as `.ref` the first time. The MoE variant
 * is not run on jax-js: without ragged ops it would compute every expert for every token.
 *
 * On webgpu the embedding is `oneHot(ids) · W` instead of `take(W, ids)`: the gradient of
 * `take` is a scatter-add whose WGSL (jax-js 0.1.25) passes a storage pointer into a function
 * (`atomic_add_f32(&output[i], ...)`), which Deno's WGSL validator rejects. The one-hot product
 * is the same math and adds ~1% to the step's FLOPs (a [B·T, 256] · [256, 256] matmul and its
 * weight gradient).
 *
 * Run alone: `deno run -A tests/bench/jax_gpt.ts [steps] [wasm|webgpu]`.
 *
 * @module
 */

import { defaultDevice, init, jit, nn, numpy as np, random, tree, valueAndGrad } from "@jax-js/jax";

const [V, D, L, H, FF, T, B] = [256, 256, 4, 4, 683, 128, 16];
const DH = D / H;

type Block = {
  n1: np.Array;
  n2: np.Array;
  qkv: np.Array;
  o: np.Array;
  w1: np.Array;
  w2: np.Array;
  w3: np.Array;
};
type Params = { emb: np.Array; norm: np.Array; head: np.Array; blocks: Block[] };
type Consts = { cos: np.Array; sin: np.Array; rot: np.Array };

function rmsNorm(x: np.Array, w: np.Array): np.Array {
  const ms = np.mean(np.square(x.ref), -1, { keepdims: true });
  return x.mul(np.reciprocal(np.sqrt(ms.add(1e-6)))).mul(w);
}

function rope(x: np.Array, c: Consts): np.Array {
  // x: [B, T, H, d_h]; cos, sin: [T, 1, d_h]; rot: [d_h, d_h]
  return x.ref.mul(c.cos.ref).add(np.matmul(x, c.rot.ref).mul(c.sin.ref));
}

function block(x: np.Array, p: Block, c: Consts): np.Array {
  const qkv = np.matmul(rmsNorm(x.ref, p.n1), p.qkv); // [B, T, 3D]
  const [q, k, v] = np.split(qkv, 3, -1).map((t) => t.reshape([B, T, H, DH]));
  const a = nn.dotProductAttention(rope(q, c), rope(k, c), v, { isCausal: true });
  const x1 = x.add(np.matmul(a.reshape([B, T, D]), p.o));
  const h = rmsNorm(x1.ref, p.n2);
  const g = nn.silu(np.matmul(h.ref, p.w1)).mul(np.matmul(h, p.w3));
  return x1.add(np.matmul(g, p.w2));
}

/** The embedding lookup: a gather, or `oneHot(ids) · W` where the gather's gradient cannot run. */
function embed(emb: np.Array, ids: np.Array, oneHot: boolean): np.Array {
  return oneHot ? np.matmul(nn.oneHot(ids, V), emb) : np.take(emb, ids, 0); // [B, T, D]
}

function loss(p: Params, ids: np.Array, targets: np.Array, c: Consts, oneHot: boolean): np.Array {
  let x = embed(p.emb, ids, oneHot); // [B, T, D]
  for (const b of p.blocks) x = block(x, b, c);
  const logits = np.matmul(rmsNorm(x, p.norm), p.head); // [B, T, V]
  const logp = nn.logSoftmax(logits, -1);
  tree.dispose(c);
  return np.mean(np.sum(logp.mul(nn.oneHot(targets, V)), -1)).mul(-1);
}

function initParams(): Params {
  let key = random.key(0);
  const normal = (shape: number[], std: number) => {
    const [k1, k2] = random.split(key, 2);
    key = k1;
    return random.normal(k2, shape).mul(std);
  };
  const blocks = Array.from({ length: L }, () => ({
    n1: np.ones([D]),
    n2: np.ones([D]),
    qkv: normal([D, 3 * D], 0.02),
    o: normal([D, D], 0.02),
    w1: normal([D, FF], 0.02),
    w2: normal([FF, D], 0.02),
    w3: normal([D, FF], 0.02),
  }));
  const p = { emb: normal([V, D], 0.02), norm: np.ones([D]), head: normal([D, V], 0.02), blocks };
  key.dispose();
  return p;
}

function makeConsts(): Consts {
  const cos = new Float32Array(T * DH),
    sin = new Float32Array(T * DH),
    rot = new Float32Array(DH * DH);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < DH / 2; i++) {
      const ang = t * 10000 ** (-(2 * i) / DH);
      cos[t * DH + 2 * i] = cos[t * DH + 2 * i + 1] = Math.cos(ang);
      sin[t * DH + 2 * i] = sin[t * DH + 2 * i + 1] = Math.sin(ang);
    }
  }
  // (x R)[2i] = −x[2i+1], (x R)[2i+1] = x[2i]
  for (let i = 0; i < DH / 2; i++) {
    rot[(2 * i + 1) * DH + 2 * i] = -1;
    rot[2 * i * DH + 2 * i + 1] = 1;
  }
  return {
    cos: np.array(cos).reshape([T, 1, DH]),
    sin: np.array(sin).reshape([T, 1, DH]),
    rot: np.array(rot).reshape([DH, DH]),
  };
}

/** Options for {@linkcode jaxTrainTokensPerSec}. */
export interface JaxTrainOptions {
  /**
   * jax-js device to train on; on webgpu the embedding is a one-hot matmul (see the header).
   * @default {"wasm"}
   */
  device?: "wasm" | "webgpu";
}

/**
 * Median training tokens/s of jax-js over `steps` steps after one warm-up (which compiles), on
 * `options.device`; jax-js's default device is restored afterwards.
 */
export async function jaxTrainTokensPerSec(
  steps: number,
  options: JaxTrainOptions = {},
): Promise<number> {
  const device = options.device ?? "wasm";
  await init();
  const previous = defaultDevice();
  defaultDevice(device);
  try {
    return await train(steps, device === "webgpu");
  } finally {
    defaultDevice(previous);
  }
}

async function train(steps: number, oneHot: boolean): Promise<number> {
  let params = initParams();
  let m = tree.map((x: np.Array) => np.zerosLike(x.ref), tree.ref(params));
  let v = tree.map((x: np.Array) => np.zerosLike(x.ref), tree.ref(params));
  const consts = makeConsts();
  const [b1, b2, lr, eps, wd] = [0.9, 0.999, 1e-3, 1e-8, 0.01];
  const gradStep = jit(
    valueAndGrad((p: Params, x: np.Array, y: np.Array, c: Consts) => loss(p, x, y, c, oneHot)),
  );
  const adam = jit((p: Params, g: Params, m0: Params, v0: Params, c1: np.Array, c2: np.Array) => {
    const m1 = tree.map(
      (a: np.Array, b: np.Array) => a.mul(b1).add(b.mul(1 - b1)),
      m0,
      tree.ref(g),
    );
    const v1 = tree.map(
      (a: np.Array, b: np.Array) => a.mul(b2).add(np.square(b).mul(1 - b2)),
      v0,
      g,
    );
    const p1 = tree.map(
      (w: np.Array, mm: np.Array, vv: np.Array) =>
        w.mul(1 - lr * wd).sub(
          mm.div(c1.ref).div(np.sqrt(vv.div(c2.ref)).add(eps)).mul(lr),
        ),
      p,
      tree.ref(m1),
      tree.ref(v1),
    );
    c1.dispose();
    c2.dispose();
    return [p1, m1, v1] as [Params, Params, Params];
  });
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const step = async (t: number) => {
    const ids = Int32Array.from({ length: B * (T + 1) }, () => Math.floor(rand() * V));
    const x = np.array(ids.filter((_, i) => i % (T + 1) !== T), { dtype: np.int32 }).reshape([
      B,
      T,
    ]);
    const y = np.array(ids.filter((_, i) => i % (T + 1) !== 0), { dtype: np.int32 }).reshape([
      B,
      T,
    ]);
    const [l, g] = gradStep(tree.ref(params), x, y, tree.ref(consts));
    const c1 = np.array([1 - b1 ** t]), c2 = np.array([1 - b2 ** t]);
    [params, m, v] = adam(params, g, m, v, c1, c2);

    // Wait for the whole step: the loss and every updated parameter.
    await l.data();
    for (const leaf of tree.leaves(params)) await (leaf as np.Array).ref.data();
  };
  await step(1);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await step(i + 2);
    times.push(performance.now() - t0);
  }
  tree.dispose([params, m, v, consts]);
  gradStep.dispose();
  adam.dispose();
  times.sort((a, b) => a - b);
  return (B * T) / (times[Math.floor(times.length / 2)] / 1000);
}

if (import.meta.main) {
  const device = Deno.args[1] ?? "wasm";
  if (device !== "wasm" && device !== "webgpu") {
    throw new Error(`Cannot train on jax-js device '${device}': expected 'wasm' or 'webgpu'`);
  }
  console.log(await jaxTrainTokensPerSec(Number(Deno.args[0] ?? 3), { device }));
  Deno.exit(0);
}
