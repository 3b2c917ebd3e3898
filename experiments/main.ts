/**
 * `deno task experiments`: the main job.
 *
 * Until the ablation suite lands (#10), this is a tiny training demo of the tensor core: a
 * byte-level MLP language model (context of 4 bytes → embedding → tanh hidden → next-byte
 * logits, as Bengio et al. 2003) trained with AdamW on an embedded text, printing loss falling
 * and writing `runs/demo/metrics.jsonl` and `runs/demo/summary.json` atomically.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  add,
  crossEntropy,
  embedding,
  matmul,
  noGrad,
  randn,
  reshape,
  Rng,
  tanh,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../lib/tensor/mod.ts";
import { AdamW } from "../lib/train/optim.ts";

const HELP = `Usage: deno task experiments [options]

Trains a tiny byte-level language model on an embedded text and prints the loss falling.
(The DeepSeek-V3 ablation suite replaces this demo; see README.)

Options:
  --steps N     training steps (default 300)
  --seed N      random seed (default 0)
  --out DIR     where to write metrics (default runs/demo)
  --help        show this help`;

const TEXT =
  `It was the best of times, it was the worst of times, it was the age of wisdom, it was the
age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of
Light, it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had
everything before us, we had nothing before us, we were all going direct to Heaven, we were all going
direct the other way - in short, the period was so far like the present period, that some of its
noisiest authorities insisted on its being received, for good or for evil, in the superlative degree
of comparison only. There were a king with a large jaw and a queen with a plain face, on the throne
of England; there were a king with a large jaw and a queen with a fair face, on the throne of France.`;

const CONTEXT = 4, EMBED = 16, HIDDEN = 128, VOCAB = 256, BATCH = 64;

function parsePositiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`Invalid --${name} '${value}': expected a non-negative integer`);
  }
  return n;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        steps: { type: "string" },
        seed: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean" },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const steps = parsePositiveInt("steps", values.steps, 300);
  const seed = parsePositiveInt("seed", values.seed, 0);
  const out = values.out ?? "runs/demo";

  // 1) data: every window of CONTEXT bytes and the byte after it
  const bytes = new TextEncoder().encode(TEXT);
  const windows = bytes.length - CONTEXT;
  const rng = new Rng(seed);
  const initRng = rng.fork("init"), dataRng = rng.fork("data");

  // 2) model: C[x] (embedding), h = tanh(C·W1 + b1), logits = h·W2 + b2
  const params = {
    emb: randn([VOCAB, EMBED], { rng: initRng, std: 0.3, requiresGrad: true }),
    w1: randn([CONTEXT * EMBED, HIDDEN], { rng: initRng, std: 0.15, requiresGrad: true }),
    b1: zeros([HIDDEN], { requiresGrad: true }),
    w2: randn([HIDDEN, VOCAB], { rng: initRng, std: 0.05, requiresGrad: true }),
    b2: zeros([VOCAB], { requiresGrad: true }),
  };
  const forward = (ctx: Tensor): Tensor => {
    const x = reshape(embedding(params.emb, ctx), [-1, CONTEXT * EMBED]); // [B, 4·16]
    const h = tanh(add(matmul(x, params.w1), params.b1)); // [B, 128]
    return add(matmul(h, params.w2), params.b2); // [B, 256]
  };
  const opt = new AdamW(Object.values(params), { lr: 3e-3, weightDecay: 0 });

  const batch = (): [Tensor, Tensor] => {
    const ctx: number[] = [], next: number[] = [];
    for (let b = 0; b < BATCH; b++) {
      const start = dataRng.int(windows);
      for (let j = 0; j < CONTEXT; j++) ctx.push(bytes[start + j]);
      next.push(bytes[start + CONTEXT]);
    }
    return [tensor(ctx, { dtype: "i32", shape: [BATCH, CONTEXT] }), tensor(next, { dtype: "i32" })];
  };

  await Deno.mkdir(out, { recursive: true });
  const metrics: string[] = [];
  console.log(`demo: byte-level MLP LM, ${steps} steps, batch ${BATCH}, backend cpu, seed ${seed}`);
  console.log(`      loss starts near ln 256 = ${Math.log(256).toFixed(2)} nats/byte`);
  const t0 = performance.now();
  let loss = NaN;
  for (let step = 1; step <= steps; step++) {
    // 3) one step: forward, backward, AdamW update
    loss = tidy(() => {
      const [ctx, next] = batch();
      const l = crossEntropy(forward(ctx), next);
      l.backward();
      return l.itemSync();
    });
    if (!Number.isFinite(loss)) {
      console.error(`Stopping at step ${step}: the loss is ${loss}`);
      return 1;
    }
    opt.step();
    opt.zeroGrad();
    const tokensPerSec = (step * BATCH) / ((performance.now() - t0) / 1000);
    metrics.push(JSON.stringify({ step, tokens: step * BATCH, loss, tokensPerSec }));
    if (step === 1 || step % 25 === 0 || step === steps) {
      console.log(
        `step ${String(step).padStart(4)}/${steps}  loss ${loss.toFixed(4)}  ` +
          `${tokensPerSec.toFixed(0)} tokens/s`,
      );
    }
  }
  // 4) evaluate on every window (the demo has no held-out split)
  const fullLoss = noGrad(() =>
    tidy(() => {
      const ctx: number[] = [], next: number[] = [];
      for (let s = 0; s < windows; s++) {
        for (let j = 0; j < CONTEXT; j++) ctx.push(bytes[s + j]);
        next.push(bytes[s + CONTEXT]);
      }
      const logits = forward(tensor(ctx, { dtype: "i32", shape: [windows, CONTEXT] }));
      return crossEntropy(logits, tensor(next, { dtype: "i32" })).itemSync();
    })
  );
  await writeAtomic(`${out}/metrics.jsonl`, metrics.join("\n") + "\n");
  await writeAtomic(
    `${out}/summary.json`,
    JSON.stringify({ steps, seed, finalLoss: loss, trainTextLoss: fullLoss }, null, 2) + "\n",
  );
  console.log(`done: loss on the whole text ${fullLoss.toFixed(4)} nats/byte; metrics in ${out}/`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
