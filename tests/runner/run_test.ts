import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { tinyConfig } from "../../lib/models/decoder.ts";
import { SILENT } from "../../lib/runner/progress.ts";
import { type ExecuteOptions, executeRun } from "../../lib/runner/execute.ts";
import { type RunPlan, type RunSummary, scheduledLambda } from "../../lib/runner/run.ts";
import { readJson, readMetrics, runPaths } from "../../lib/runner/store.ts";
import { tinyMoe } from "../_fixtures.ts";
import { webgpuForTests } from "../_gpu.ts";

const TEST_TMP = ".test-tmp";

function plan(overrides: Partial<RunPlan> = {}): RunPlan {
  return {
    id: "test-run-1",
    experiment: "unit",
    variant: "tiny",
    seed: 0,
    model: tinyConfig({ vocab: 256, seqLen: 16 }),
    data: { corpus: "brown", tokenizer: "bytes" },
    train: {
      steps: 24,
      batch: 4,
      lr: 3e-3,
      warmup: 2,
      weightDecay: 0.1,
      gradClip: 1,
      accumulate: 1,
      checkpointEvery: 4,
      evalBatches: 2,
    },
    eval: ["valLoss", "kvBytesPerToken", "decodeTokensPerSec"],
    ...overrides,
  };
}

const options = (root: string) => ({
  root,
  backend: new CpuBackend(),
  backendReason: "test",
  reporter: SILENT,
  index: 1,
  count: 1,
});

/** Execute a run that must end done or skipped; its summary. */
async function runSummary(p: RunPlan, o: ExecuteOptions): Promise<RunSummary> {
  const outcome = await executeRun(p, o);
  if (outcome.summary === null) throw new Error(`${outcome.label}: ${outcome.detail}`);
  return outcome.summary;
}

async function tempRoot(): Promise<string> {
  await Deno.mkdir(TEST_TMP, { recursive: true });
  return await Deno.makeTempDir({ dir: TEST_TMP, prefix: "runner_" });
}

Deno.test("executeRun() writes config, metrics, summary and checkpoint; a rerun is skipped", async () => {
  const root = await tempRoot();
  try {
    const summary = await runSummary(plan(), options(root));
    const paths = runPaths(root, "unit", "tiny", 0);
    strictEqual(summary.steps, 24);
    ok(summary.metrics.valLoss < Math.log(256), `val loss ${summary.metrics.valLoss}`);
    strictEqual(summary.metrics.kvBytesPerToken, 2 * 16 * 2 * 4); // MHA: 2·n_h·d_h·layers·4 bytes
    const metrics = await readMetrics(paths.metrics);
    deepStrictEqual(metrics.map((m) => m.step), Array.from({ length: 24 }, (_, i) => i + 1));
    for (const f of ["config.json", "summary.json", "checkpoint/model.safetensors"]) {
      await Deno.stat(`${paths.dir}/${f}`);
    }
    const again = await runSummary(plan(), options(root));
    deepStrictEqual(again, summary);
    // A changed configuration keeps the old results, moved aside, and runs afresh.
    const changed = await runSummary(plan({ id: "another-config" }), options(root));
    strictEqual(changed.id, "another-config");
    const aside = `${root}/.superseded/unit/tiny/seed-0-test-run-1`;
    deepStrictEqual(await readJson(`${aside}/summary.json`), summary);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "a run killed with SIGKILL resumes from its checkpoint to bit-identical weights",
  async fn() {
    const root = await tempRoot();
    try {
      const planPath = `${root}/plan.json`;
      const p = plan({ train: { ...plan().train, steps: 40, checkpointEvery: 5 } });
      await Deno.writeTextFile(planPath, JSON.stringify(p));
      const script = new URL("./_run_plan.ts", import.meta.url).pathname;
      const args = (out: string) => [
        "run",
        "--quiet",
        "--allow-read=.",
        `--allow-write=${TEST_TMP}`,
        "--allow-env=NO_COLOR",
        script,
        planPath,
        out,
      ];
      // Uninterrupted reference run.
      const ref = await new Deno.Command("deno", { args: args(`${root}/ref`), stdout: "null" })
        .output();
      strictEqual(ref.code, 0);
      // Killed run: SIGKILL once it has passed its first checkpoints, then the same command again.
      const child = new Deno.Command("deno", { args: args(`${root}/killed`), stdout: "piped" })
        .spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!/step 12\n/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      child.kill("SIGKILL");
      await reader.cancel();
      const status = await child.status;
      strictEqual(status.signal, "SIGKILL");
      const resumed = await new Deno.Command("deno", {
        args: args(`${root}/killed`),
        stdout: "null",
      }).output();
      strictEqual(resumed.code, 0);
      const a = await Deno.readFile(
        `${runPaths(`${root}/ref`, "unit", "tiny", 0).checkpoint}/model.safetensors`,
      );
      const b = await Deno.readFile(
        `${runPaths(`${root}/killed`, "unit", "tiny", 0).checkpoint}/model.safetensors`,
      );
      ok(a.length === b.length && a.every((v, i) => v === b[i]), "final weights differ");
      const metrics = await readMetrics(runPaths(`${root}/killed`, "unit", "tiny", 0).metrics);
      deepStrictEqual(metrics.map((m) => m.step), Array.from({ length: 40 }, (_, i) => i + 1));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("same seed and backend give identical metrics; another seed differs", async () => {
  const root = await tempRoot();
  try {
    const a = await runSummary(plan(), options(`${root}/a`));
    const b = await runSummary(plan(), options(`${root}/b`));
    const c = await runSummary(plan({ seed: 1, id: "seed-1" }), options(`${root}/c`));
    const metrics = async (r: string, seed: number) =>
      (await readMetrics(runPaths(r, "unit", "tiny", seed).metrics)).map((
        m,
      ) => [m.loss, m.gradNorm]);
    deepStrictEqual(await metrics(`${root}/a`, 0), await metrics(`${root}/b`, 0));
    strictEqual(a.metrics.valLoss, b.metrics.valLoss);
    ok(a.metrics.valLoss !== c.metrics.valLoss);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scheduledLambda() follows V3's 0.3-then-0.1 MTP weight schedule", () => {
  const schedule = [{ from: 0, lambda: 0.3 }, { from: 0.7, lambda: 0.1 }];
  deepStrictEqual([0, 69, 70, 99].map((s) => scheduledLambda(schedule, s, 100)), [
    0.3,
    0.3,
    0.1,
    0.1,
  ]);
  strictEqual(scheduledLambda(null, 5, 10), null);
});

Deno.test("executeRun() trains on a BPE tokenization and reports bits per byte through it", async () => {
  const root = await tempRoot();
  try {
    const model = tinyConfig({ vocab: 300, tokenizer: "bpe", seqLen: 16 });
    const p = plan({ id: "bpe", model, data: { corpus: "brown", tokenizer: { bpe: 300 } } });
    const s = await runSummary({ ...p, train: { ...p.train, steps: 8 } }, options(root));
    // BPE packs more than one byte per token, so bits per byte < nats per token / ln 2.
    ok(s.metrics.bitsPerByte < s.metrics.valLoss / Math.LN2, JSON.stringify(s.metrics));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a MoE run logs each step's expert load per layer (the heatmap's input)", async () => {
  const root = await tempRoot();
  try {
    const moe: RunPlan["model"]["ffn"] = tinyMoe({ alpha: 0 });
    const p = plan({ model: tinyConfig({ vocab: 256, seqLen: 16, ffn: moe }) });
    p.train = { ...p.train, steps: 6 };
    await runSummary(p, options(root));
    const records = await readMetrics(runPaths(root, "unit", "tiny", 0).metrics);
    strictEqual(records.length, 6);
    for (const r of records) {
      const keys = Object.keys(r).filter((k) => k.startsWith("expertLoad.")).sort();
      // layer 0 is dense (firstDenseLayers 1): only layer 1's four experts
      deepStrictEqual(keys, [0, 1, 2, 3].map((e) => `expertLoad.1.${e}`));
      const total = keys.reduce((s, k) => s + r[k], 0);
      ok(Math.abs(total - 1) < 1e-9, `step ${r.step}: loads sum to ${total}`);
    }
    // The loads follow the routing: not all equal at every step (4 experts, 128 tokens, top-2).
    ok(records.some((r) => r["expertLoad.1.0"] !== 0.25), "loads vary");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const gpu: Backend | null = await webgpuForTests("WebGPU run test");

Deno.test({
  name: "a MoE + MTP run on WebGPU (async routing reads) trains and evaluates like the cpu run",
  ignore: gpu === null,
  fn: async () => {
    const root = await tempRoot();
    try {
      const p = plan({
        model: tinyConfig({
          vocab: 256,
          seqLen: 16,
          mtp: { depth: 1, lambda: 0.3 },
          ffn: tinyMoe(),
        }),
        eval: ["valLoss", "kvBytesPerToken", "decodeTokensPerSec", "mtpAcceptance"],
      });
      p.train = { ...p.train, steps: 3, evalBatches: 1 };
      const cpu = await runSummary(p, options(`${root}/cpu`));
      const onGpu = await runSummary(p, { ...options(`${root}/gpu`), backend: gpu as Backend });
      const losses = async (r: string) =>
        (await readMetrics(runPaths(r, "unit", "tiny", 0).metrics)).map((m) => m.loss);
      const [a, b] = [await losses(`${root}/cpu`), await losses(`${root}/gpu`)];
      a.forEach((l, i) =>
        ok(Math.abs(l - b[i]) < 1e-4 * Math.abs(l), `step ${i + 1}: ${l} vs ${b[i]}`)
      );
      ok(Math.abs(cpu.metrics.valLoss - onGpu.metrics.valLoss) < 1e-4 * cpu.metrics.valLoss);
      strictEqual(onGpu.metrics.mtpAcceptance, cpu.metrics.mtpAcceptance);
      ok(onGpu.metrics.decodeTokensPerSec > 0);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
