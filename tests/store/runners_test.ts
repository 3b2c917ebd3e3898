/**
 * Runners beside each other, with real subprocesses: two CLIs on one store never train the same
 * run (the second skips a locked run with a message naming the owner) and together give the
 * uninterrupted results; a diverging run beside healthy ones stops with a message that says what
 * to change, keeps its last healthy checkpoint, is not retried with the same config, and does not
 * keep the report from being written — the report and `--status` list it with its reason.
 */
import { ok, strictEqual } from "node:assert/strict";
import { loadResults } from "../../lib/report/results.ts";
import { runPaths } from "../../lib/runner/store.ts";
import { loadSafetensors } from "../../lib/tensor/mod.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { assertSameRun, Child, cli, tempStore } from "./_faults.ts";

globalThis.addEventListener("unload", () => {
  for (const e of Deno.readDirSync(".test-tmp")) {
    if (e.name.startsWith("store_runners_")) {
      Deno.removeSync(`.test-tmp/${e.name}`, { recursive: true });
    }
  }
});

Deno.test("two runners on one store: each run is trained once, the other runner skips it while locked", async () => {
  const ref = await tempStore("runners_ref");
  const refRun = await cli(ref, ["--only", "faults"]);
  strictEqual(refRun.code, 0, refRun.lines.join("\n"));
  const root = await tempStore("runners_two");
  // A stops at its first checkpoint of faults/a, holding that run's lock, until B has met it
  const go = `${root}.go`;
  const a = new Child(
    root,
    ["--only", "faults"],
    `wait:rename:faults/a/seed-0/checkpoint\\.next$:1:${go}`,
  );
  ok(await a.waitFor((l) => l.startsWith("FAULT ")), a.lines.join("\n"));
  const b = new Child(root, ["--only", "faults"]);
  const met = await b.waitFor((l) => l.startsWith("END ") && l.includes("faults/a/seed-0"));
  await Deno.writeTextFile(go, "");
  const [codeA, codeB] = await Promise.all([a.finish(), b.finish()]);
  ok(met?.startsWith("END skipped faults/a/seed-0"), b.lines.join("\n"));
  strictEqual(codeA, 0, a.lines.join("\n"));
  strictEqual(codeB, 0, b.lines.join("\n"));
  const starts = (label: string) =>
    [...a.lines, ...b.lines].filter((l) => l.startsWith(`START ${label} `)).length;
  strictEqual(starts("faults/a/seed-0"), 1, [...a.lines, "---", ...b.lines].join("\n"));
  strictEqual(starts("faults/b/seed-0"), 1, [...a.lines, "---", ...b.lines].join("\n"));
  const skipped = b.lines.find((l) => l.startsWith("END skipped faults/a/seed-0"));
  ok(skipped?.includes(`is being trained by pid ${a.process.pid}`), b.lines.join("\n"));
  for (const v of ["a", "b"]) await assertSameRun(ref, root, "faults", v);
});

Deno.test("a diverging run beside healthy ones: a clear message, its last healthy checkpoint, no retry, and a report that lists it", async () => {
  const root = await tempStore("runners_hot");
  const first = await cli(root, ["--only", "hot"]);
  strictEqual(first.code, 1, first.lines.join("\n"));
  const end = first.lines.find((l) => l.startsWith("END diverged hot/blowup/seed-0")) ?? "";
  ok(/Training diverged at step \d+: the loss is /.test(end), end);
  ok(end.includes("lower the learning rate (lr 20)"), end);
  ok(end.includes("enable gradient clipping (gradClip is 0)"), end);
  ok(!end.includes("rerun to retry"), end);
  ok(first.lines.some((l) => l.startsWith("END done hot/calm/seed-0")), first.lines.join("\n"));
  // the report was written although a run failed, and it names the diverged run and why
  const report = first.lines.find((l) => l.startsWith("REPORT ")) ?? "";
  ok(report.endsWith("left out 1"), first.lines.join("\n"));
  const html = await Deno.readTextFile(`${root}.report/index.html`);
  ok(html.includes("blowup/seed-0: <strong>diverged</strong> — Training diverged at step"), html);
  const results = await loadResults(root, "hot");
  strictEqual(results.runs.map((r) => r.variant).join(), "calm");
  // the checkpoint kept is from before the step whose weights produced the bad loss, and sane
  const step = Number(/diverged at step (\d+)/.exec(end)?.[1]);
  const { checkpoint } = runPaths(root, "hot", "blowup", 0);
  const state = JSON.parse(await Deno.readTextFile(`${checkpoint}/state.json`));
  ok(state.step <= step - 2, `kept step ${state.step}, diverged at ${step}`);
  ok(end.includes(`the last healthy checkpoint (step ${state.step}) is kept`), end);
  const weights = await loadSafetensors(`${checkpoint}/model.safetensors`, {
    backend: new CpuBackend(),
  });
  for (const [name, t] of weights.tensors) {
    const values = Array.from(await t.data(), Number);
    ok(values.every((v) => Number.isFinite(v) && Math.abs(v) < 1e3), `${name} blown up`);
  }
  // the same config is not retrained; --status lists it with the reason
  const again = await cli(root, ["--only", "hot"]);
  strictEqual(again.code, 1);
  ok(!again.lines.some((l) => l.startsWith("START hot/blowup")), again.lines.join("\n"));
  ok(
    again.lines.some((l) => l.startsWith("END diverged hot/blowup/seed-0")),
    again.lines.join("\n"),
  );
  const status = await cli(root, ["--only", "hot", "--status"]);
  ok(status.lines.some((l) => /^LOG diverged +hot\/blowup\/seed-0 +Training diverged/.test(l)));
  ok(status.lines.some((l) => /^LOG done +hot\/calm\/seed-0/.test(l)), status.lines.join("\n"));
});
