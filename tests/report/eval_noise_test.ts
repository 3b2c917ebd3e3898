import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import { sequentialBatches } from "../../lib/data/batches.ts";
import { brown, experiment, gqa, model } from "../../lib/dsl/mod.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import {
  measureEvalNoise,
  sampleSpread,
  windowLosses,
  windowsForEvalNoise,
} from "../../lib/report/eval_noise.ts";
import { loadResults } from "../../lib/report/results.ts";
import { main } from "../../lib/runner/cli.ts";
import { SILENT } from "../../lib/runner/progress.ts";
import { noGrad, Rng, tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose } from "../../lib/tensor/assert.ts";

Deno.test("windowLosses() averages to the decoder's loss over the same windows (the runner's valLoss)", async () => {
  const cpu = new CpuBackend();
  const config = tinyConfig({ vocab: 32, dModel: 16, heads: 2, seqLen: 8 });
  const decoder = withBackend(cpu, () => new Decoder(config, new Rng(3)));
  const rng = new Rng(5);
  const tokens = Int32Array.from({ length: 8 * 20 + 1 }, () => rng.int(32));
  const losses = await windowLosses(decoder, tokens, { seqLen: 8, batch: 3, backend: cpu });
  equal(losses.length, 20);
  // per batch of 4 windows, the decoder's own mean loss
  let k = 0;
  for (const b of sequentialBatches(tokens, { batch: 4, seqLen: 8 })) {
    const want = withBackend(cpu, () =>
      noGrad(() =>
        decoder.loss(
          tensor(b.inputs, { dtype: "i32", shape: b.shape }),
          tensor(b.targets, { dtype: "i32", shape: b.shape }),
        ).mainLoss.itemSync()
      ));
    const got = Array.from(losses.subarray(k, k + b.shape[0])).reduce((a, x) => a + x, 0) /
      b.shape[0];
    assertAllClose(got, want, { atol: 1e-5, rtol: 0 });
    k += b.shape[0];
  }
  deepStrictEqual(
    Array.from(await windowLosses(decoder, tokens, { seqLen: 8, maxWindows: 7, backend: cpu })),
    Array.from(losses.subarray(0, 7)),
  );
});

Deno.test("sampleSpread(): strided samples of independent windows spread as σ_w/√n; blocks of a drifting stream spread more", () => {
  const rng = new Rng(9);
  const N = 4096, sigma = 0.3;
  const iid = Float64Array.from({ length: N }, () => 3 + rng.normal(0, sigma));
  for (const n of [64, 256]) {
    const s = sampleSpread(iid, n, { layout: "strided" });
    equal(s.samples, N / n);
    assertAllClose(s.predictedStd, (sigma / Math.sqrt(n)) * Math.sqrt(1 - n / N), {
      atol: 0,
      rtol: 0.05,
    });
    // the sample standard deviation of 16–64 means is within ±40% of the truth
    ok(Math.abs(s.std / s.predictedStd - 1) < 0.4, `n ${n}: ${s.std} vs ${s.predictedStd}`);
  }
  // documents of 256 windows with their own difficulty: contiguous blocks see it, strided not
  const docs = Float64Array.from(iid, (x, i) => x + 0.5 * Math.sin(Math.floor(i / 256)));
  const blocks = sampleSpread(docs, 128, { layout: "contiguous" }),
    strided = sampleSpread(docs, 128, { layout: "strided" });
  ok(blocks.std > 5 * strided.std, `${blocks.std} vs ${strided.std}`);
  throws(
    () => sampleSpread(iid, 3000, { layout: "strided" }),
    /expected at least 2 disjoint samples \(6000 windows\)/,
  );
  throws(() => sampleSpread(iid, 0, { layout: "strided" }), /samples of 0 windows/);
});

Deno.test("windowsForEvalNoise() sizes the held-out set for 1/5 of the seed spread", () => {
  equal(windowsForEvalNoise(0.2, 0.01), 10_000);
  equal(windowsForEvalNoise(0.2, 0.01, { ratio: 0.5 }), 1_600);
  // at that size the random-draw noise is ratio × seed spread
  const n = windowsForEvalNoise(0.197, 0.0139);
  ok(0.197 / Math.sqrt(n) <= 0.2 * 0.0139 && 0.197 / Math.sqrt(n - 1) > 0.2 * 0.0139);
  throws(() => windowsForEvalNoise(0.2, 0), /for seed spread 0: expected > 0/);
});

const tiny = experiment({
  name: "tiny",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { mha: {}, gqa: { attention: gqa({ kvHeads: 1 }) } },
  data: brown(),
  train: { tokens: 4096, batch: 4, lr: 3e-3, budgets: { small: { tokens: 512 } } },
  eval: ["valLoss"],
  seeds: [0, 1],
});

Deno.test("measureEvalNoise() re-evaluates each checkpoint: its fixed-prefix mean is the reported valLoss", async () => {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const root = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "evalnoise_" });
  try {
    equal(await main(["--out", root, "--backend", "cpu"], [tiny], { reporter: SILENT }), 0);
    const results = await loadResults(root, "tiny");
    equal(results.runs.length, 4);
    const seen: string[] = [];
    const m = await measureEvalNoise(results, {
      backend: new CpuBackend(),
      maxWindows: 160,
      baseline: "mha",
      onRun: (l) => seen.push(l),
    });
    deepStrictEqual(seen, ["gqa/seed-0", "gqa/seed-1", "mha/seed-0", "mha/seed-1"]);
    equal(m.windows, 160);
    equal(m.reportedWindows, 32); // evalBatches 8 × batch 4
    deepStrictEqual(m.rows.map((r) => r.name), ["gqa", "mha", "gqa − mha"]);
    // the seed spread is that of the reported valLoss, recomputed from the checkpoints
    for (const v of ["gqa", "mha"]) {
      const reported = results.runs.filter((r) => r.variant === v).map((r) =>
        r.summary.metrics.valLoss
      );
      const mean = (reported[0] + reported[1]) / 2;
      const sd = Math.sqrt(((reported[0] - mean) ** 2 + (reported[1] - mean) ** 2) / 1);
      assertAllClose(m.rows.find((r) => r.name === v)?.seedStd ?? NaN, sd, { atol: 1e-5, rtol: 0 });
    }
    for (const r of m.rows) ok(r.strided > 0 && r.contiguous > 0 && r.perWindowStd > 0);
    await rejects(
      measureEvalNoise(results, { backend: new CpuBackend(), baseline: "mla" }),
      /against baseline 'mla': expected one of 'gqa', 'mha'/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
