/**
 * `checkRun()` in process, on a finished tiny run (12 steps, a checkpoint every 4): what it
 * reports without repairing, the repairs it makes, and runs that are sealed again afterwards.
 * The kill -9 and damage scenarios against an uninterrupted run are in tests/store/.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { tinyConfig } from "../../lib/models/decoder.ts";
import { checkRun, sealProblem } from "../../lib/runner/check.ts";
import { SILENT } from "../../lib/runner/progress.ts";
import { executeRun } from "../../lib/runner/execute.ts";
import type { RunPlan } from "../../lib/runner/run.ts";
import { parseMetrics, runPaths } from "../../lib/runner/store.ts";

const PLAN: RunPlan = {
  id: "check-1",
  experiment: "chk",
  variant: "a",
  seed: 0,
  model: tinyConfig({ vocab: 256, seqLen: 16 }),
  data: { corpus: "brown", tokenizer: "bytes" },
  train: {
    steps: 12,
    batch: 2,
    lr: 3e-3,
    warmup: 1,
    weightDecay: 0.1,
    gradClip: 1,
    accumulate: 1,
    checkpointEvery: 4,
    evalBatches: 1,
  },
  eval: ["valLoss"],
};

const options = (root: string) => ({
  root,
  backend: new CpuBackend(),
  backendReason: "test",
  reporter: SILENT,
  index: 1,
  count: 1,
});

async function finished(): Promise<string> {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const root = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "check_" });
  strictEqual((await executeRun(PLAN, options(root))).status, "done");
  return root;
}

Deno.test("checkRun(): a sealed run is done; damage is reported without repair, then repaired", async () => {
  const root = await finished();
  try {
    const paths = runPaths(root, "chk", "a", 0);
    const done = await checkRun(root, PLAN);
    deepStrictEqual([done.state, done.step, done.actions], ["done", 12, []]);
    strictEqual(done.summary?.id, "check-1");
    // a torn last line: reported as a would-be repair, files untouched
    const text = await Deno.readTextFile(paths.metrics);
    const torn = text.slice(0, text.length - 20);
    await Deno.writeTextFile(paths.metrics, torn);
    const dry = await checkRun(root, PLAN, { repair: false });
    strictEqual(dry.state, "resumable");
    strictEqual(dry.step, 8);
    ok(
      dry.actions[0].startsWith("cut a torn last line (line 12 is not valid JSON"),
      dry.actions[0],
    );
    ok(dry.actions.some((a) => a.startsWith("would move checkpoint, summary.json, manifest.json")));
    strictEqual(await Deno.readTextFile(paths.metrics), torn);
    // repaired: cut, the final checkpoint set aside, resumable at step 8 with steps 1..8 kept
    const fixed = await checkRun(root, PLAN);
    deepStrictEqual([fixed.state, fixed.step], ["resumable", 8]);
    strictEqual(parseMetrics(await Deno.readTextFile(paths.metrics)).records.length, 11);
    const state = JSON.parse(await Deno.readTextFile(`${paths.checkpoint}/state.json`));
    strictEqual(state.step, 8);
    // the next execution trains steps 9..12 again and seals the run
    const again = await executeRun(PLAN, options(root));
    strictEqual(again.status, "done");
    strictEqual(await sealProblem(root, PLAN), null);
    strictEqual(parseMetrics(await Deno.readTextFile(paths.metrics)).records.length, 12);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkRun(): lines beyond the last step, or an unsealed summary, are not a finished run", async () => {
  const root = await finished();
  try {
    const paths = runPaths(root, "chk", "a", 0);
    const text = await Deno.readTextFile(paths.metrics);
    await Deno.writeTextFile(paths.metrics, text + '{"step":13,"loss":1}\n');
    strictEqual((await checkRun(root, PLAN)).state, "resumable");
    const again = await executeRun(PLAN, options(root));
    strictEqual(again.status, "done");
    strictEqual(await Deno.readTextFile(paths.metrics), text);
    // a summary without its manifest (killed between the two) is evaluated again
    await Deno.remove(paths.manifest);
    const check = await checkRun(root, PLAN);
    deepStrictEqual([check.state, check.step], ["resumable", 12]);
    ok(
      check.actions.includes(
        "removed summary.json written without a manifest (killed before sealing)",
      ),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
