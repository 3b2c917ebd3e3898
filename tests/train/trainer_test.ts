import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import { RandomBatches } from "../../lib/data/batches.ts";
import * as T from "../../lib/tensor/mod.ts";
import { loadCheckpoint, saveCheckpoint } from "../../lib/train/checkpoint.ts";
import { AdamW } from "../../lib/train/optim.ts";
import { cosineSchedule } from "../../lib/train/schedule.ts";
import {
  DivergedError,
  type StepMetrics,
  train,
  type TrainableModel,
} from "../../lib/train/trainer.ts";

const backend = new CpuBackend();
const TEST_TMP = ".test-tmp";
const TOKENS = Int32Array.from(
  new TextEncoder().encode("the quick brown fox jumps over the lazy dog. ".repeat(20)),
);

/** A bigram model with a norm-like buffer, enough to exercise the trainer. */
function bigram(seed: number, scale = 1): TrainableModel & { table: T.Tensor } {
  return withBackend(backend, () => {
    const table = T.randn([256, 256], { rng: new T.Rng(seed), std: 0.02, requiresGrad: true });
    const counter = T.zeros([1]); // a buffer (no grad), like the MoE bias
    return {
      table,
      parameters: () => new Map([["lm.weight", table], ["lm.counter", counter]]),
      loss(inputs, targets) {
        const logits = T.mul(T.embedding(table, inputs), scale);
        const loss = T.crossEntropy(logits, targets);
        return { loss, logs: { mainLoss: loss } };
      },
      afterOptimizerStep() {
        counter.assign(T.add(counter, 1));
      },
    };
  });
}

const data = (seed: number) => (saved: unknown) =>
  saved === null
    ? new RandomBatches(TOKENS, { batch: 4, seqLen: 16, seed })
    : RandomBatches.fromState(TOKENS, saved as ReturnType<RandomBatches["state"]>);

/** Exact equality of two tensors' elements, reporting the first difference (cheaply). */
function assertBitIdentical(a: T.Tensor, b: T.Tensor): void {
  const x = a.dataSync(), y = b.dataSync();
  strictEqual(x.length, y.length);
  const i = x.findIndex((v, j) => !Object.is(v, y[j]));
  strictEqual(i, -1, `first difference at ${i}: ${x[i]} vs ${y[i]}`);
}

async function tempDir(): Promise<string> {
  await Deno.mkdir(TEST_TMP, { recursive: true });
  return await Deno.makeTempDir({ dir: TEST_TMP, prefix: "trainer_" });
}

Deno.test("cosineSchedule(): warmup, cosine decay, floor", () => {
  const o = { lr: 1, minLr: 0.1, warmup: 4, totalSteps: 14 };
  deepStrictEqual([0, 1, 2, 3].map((s) => cosineSchedule(s, o)), [0.25, 0.5, 0.75, 1]);
  ok(Math.abs(cosineSchedule(9, o) - 0.55) < 1e-12);
  strictEqual(cosineSchedule(14, o), 0.1);
});

Deno.test("train() lowers the loss and logs every step", async () => {
  const seen: StepMetrics[] = [];
  const result = await train(bigram(0), data(0), backend, {
    steps: 30,
    lr: 0.1,
    warmup: 3,
    weightDecay: 0,
    onStep: (m) => void seen.push(m),
  });
  strictEqual(result.steps, 30);
  strictEqual(seen.length, 30);
  ok(seen[29].loss < seen[0].loss - 1, `loss ${seen[0].loss} -> ${seen[29].loss}`);
  ok(
    ["step", "tokens", "loss", "lr", "gradNorm", "tokensPerSec", "mainLoss"].every((k) =>
      k in seen[0]
    ),
  );
  strictEqual(seen[29].tokens, 30 * 4 * 16);
});

Deno.test("train() resumed from a checkpoint reaches bit-identical weights", async () => {
  const dirA = await tempDir(), dirB = await tempDir();
  try {
    const opts = { steps: 12, lr: 0.05, warmup: 2, checkpointEvery: 4, gradClip: 0.5 };
    const full = bigram(1);
    await train(full, data(1), backend, { ...opts, checkpointDir: `${dirA}/ckpt` });
    // Interrupted run: killed during step 10 (after the step-8 checkpoint), then restarted.
    const first = bigram(1);
    const kill = (m: StepMetrics) => {
      if (m.step === 10) throw new Error("killed");
    };
    await rejects(
      () =>
        train(first, data(1), backend, { ...opts, onStep: kill, checkpointDir: `${dirB}/ckpt` }),
      /killed/,
    );
    const resumed = bigram(99); // different init: everything must come from the checkpoint
    const r = await train(resumed, data(1), backend, { ...opts, checkpointDir: `${dirB}/ckpt` });
    strictEqual(r.resumedFrom, 8);
    assertBitIdentical(resumed.table, full.table);
    assertBitIdentical(
      resumed.parameters().get("lm.counter") as T.Tensor,
      full.parameters().get("lm.counter") as T.Tensor,
    );
  } finally {
    await Deno.remove(dirA, { recursive: true });
    await Deno.remove(dirB, { recursive: true });
  }
});

Deno.test("train() stops on a non-finite loss before updating, keeping the last checkpoint", async () => {
  const dir = await tempDir();
  try {
    const model = bigram(2, NaN);
    await rejects(
      () => train(model, data(2), backend, { steps: 5, lr: 0.1, checkpointDir: `${dir}/ckpt` }),
      (e) =>
        e instanceof DivergedError &&
        /Training diverged at step 1: the loss is NaN/.test(e.message),
    );
    strictEqual(
      await loadCheckpoint(`${dir}/ckpt`, {
        params: model.parameters(),
        optimizer: new AdamW([model.table]),
      }),
      null,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint() names the mismatching tensor and survives a crash between renames", async () => {
  const dir = await tempDir();
  try {
    const model = bigram(3);
    const optimizer = new AdamW([model.table]);
    const state = { step: 1, tokens: 64, extra: {} };
    await saveCheckpoint(`${dir}/ckpt`, { params: model.parameters(), optimizer, state });
    // Crash after the first rename: only ckpt.old exists.
    await Deno.rename(`${dir}/ckpt`, `${dir}/ckpt.old`);
    deepStrictEqual(
      await loadCheckpoint(`${dir}/ckpt`, { params: model.parameters(), optimizer }),
      state,
    );
    const other = withBackend(backend, () => T.zeros([4], { requiresGrad: true }));
    await rejects(
      () =>
        loadCheckpoint(`${dir}/ckpt`, {
          params: new Map([["lm.weight", other]]),
          optimizer: new AdamW([other]),
        }),
      /it has tensors the model lacks: lm.counter/,
    );
    await rejects(
      () =>
        loadCheckpoint(`${dir}/ckpt`, {
          params: new Map([["lm.weight", other], ["lm.counter", T.zeros([1], { backend })]]),
          optimizer: new AdamW([other]),
        }),
      /tensor 'lm.weight' has shape \[256,256\] f32, the model expects \[4\] f32/,
    );
    await Deno.writeTextFile(`${dir}/ckpt.old/state.json`, "{ not json");
    await rejects(
      () => loadCheckpoint(`${dir}/ckpt`, { params: model.parameters(), optimizer }),
      /state.json is unreadable/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
