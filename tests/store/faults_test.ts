/**
 * Fault injection with real subprocesses (`_suite.ts`: the CLI over two tiny 24-step runs, a
 * checkpoint every 4 steps): kill -9 at random steps, inside a checkpoint write, between its
 * renames, during the final evaluation and before the seal; torn metrics lines at the start,
 * middle and end; truncated checkpoints; a deleted summary. After each, the same command again
 * must give results equal to an uninterrupted run's bit for bit (`assertSameRun`), sealed, with
 * the report showing exactly those values — and while a run is damaged the report leaves it out
 * and says why.
 */
import { ok, strictEqual } from "node:assert/strict";
import { loadResults } from "../../lib/report/results.ts";
import { runPaths } from "../../lib/runner/store.ts";
import { Rng } from "../../lib/tensor/mod.ts";
import { assertSameRun, atStep, cli, copyTree, killWhen, tempStore } from "./_faults.ts";

let reference: Promise<string> | null = null;

/** The uninterrupted runs (computed once, by the same CLI). */
function ref(): Promise<string> {
  reference ??= (async () => {
    const root = await tempStore("reference");
    const r = await cli(root, ["--only", "faults"]);
    strictEqual(r.code, 0, r.lines.join("\n"));
    return root;
  })();
  return reference;
}

globalThis.addEventListener("unload", () => {
  for (const e of Deno.readDirSync(".test-tmp")) {
    // the stores and the reports written beside them
    if (e.name.startsWith("store_")) Deno.removeSync(`.test-tmp/${e.name}`, { recursive: true });
  }
});

async function finishAndCompare(root: string, only: string[], variants: string[]) {
  const r = await cli(root, ["--only", only.join(",")]);
  strictEqual(r.code, 0, r.lines.join("\n"));
  for (const v of variants) await assertSameRun(await ref(), root, "faults", v);
  return r.lines;
}

Deno.test("kill -9 at random steps of both runs, twice, then the same command: bit-identical results", async () => {
  const root = await tempStore("kill");
  const rng = new Rng(24);
  const at = () => 1 + (rng.nextU32() % 23); // steps 1..23
  const [k1, k2] = [at(), at()];
  await killWhen(root, ["--only", "faults"], atStep("faults/a/seed-0", k1));
  const second = await killWhen(root, ["--only", "faults"], atStep("faults/b/seed-0", k2));
  // the second run resumed a from its last checkpoint: the one before the step printed last
  // (complete), or that step's own when the kill came after its save
  const resumed = second.find((l) => l.startsWith("START faults/a/seed-0"));
  const from = Number(resumed?.split(" from ")[1]);
  ok(from >= Math.floor((k1 - 1) / 4) * 4 && from <= k1, `killed at ${k1}, resumed at ${from}`);
  const lines = await finishAndCompare(root, ["faults"], ["a", "b"]);
  ok(lines.some((l) => l.startsWith("START faults/b/seed-0 from ")), lines.join("\n"));
});

for (
  const [where, fault] of [
    ["inside a checkpoint write", "hang:open:checkpoint\\.next/optimizer\\.safetensors:3"],
    ["between the checkpoint's renames", "hang:rename:checkpoint\\.next$:3"],
    ["during the final evaluation", "hang:writeTextFile:summary\\.json\\.tmp:1"],
    ["between the summary and the manifest", "hang:writeTextFile:manifest\\.json\\.tmp:1"],
  ]
) {
  Deno.test(`kill -9 ${where}, then the same command: bit-identical results`, async () => {
    const root = await tempStore("point");
    await killWhen(root, ["--only", "faults/a"], (l) => l.startsWith("FAULT "), fault);
    // never shown while unfinished: the report lists the run as not finished
    const before = await loadResults(root, "faults");
    strictEqual(before.runs.length, 0);
    strictEqual(before.problems?.[0].status, "unfinished");
    await finishAndCompare(root, ["faults/a"], ["a"]);
  });
}

/** A copy of the reference's run `faults/a` in a fresh store. */
async function finishedCopy(prefix: string): Promise<{ root: string; dir: string }> {
  const root = await tempStore(prefix);
  const from = runPaths(await ref(), "faults", "a", 0).dir;
  const dir = runPaths(root, "faults", "a", 0).dir;
  await copyTree(from, dir);
  return { root, dir };
}

async function tear(path: string, line: number): Promise<void> {
  const lines = (await Deno.readTextFile(path)).split("\n");
  lines[line - 1] = lines[line - 1].slice(0, 9);
  await Deno.writeTextFile(path, lines.join("\n"));
}

for (const [where, line] of [["first", 1], ["10th", 10], ["last", 24]] as const) {
  Deno.test(`a torn ${where} line of a finished run's metrics.jsonl: left out of the report, then repaired bit for bit`, async () => {
    const { root, dir } = await finishedCopy("torn");
    const original = await Deno.readTextFile(`${dir}/metrics.jsonl`);
    await tear(`${dir}/metrics.jsonl`, line);
    const shown = await loadResults(root, "faults");
    strictEqual(shown.runs.length, 0);
    strictEqual(shown.problems?.[0].status, "damaged");
    ok(
      shown.problems?.[0].reason.includes(`line ${line} is not valid JSON`),
      shown.problems?.[0].reason,
    );
    const check = await cli(root, ["--only", "faults/a", "--check"]);
    const verdict = check.lines.find((l) => l.includes("faults/a/seed-0")) ?? "";
    if (line === 24) {
      // cut; resumed from the checkpoint before (20): the history before it is not rewritten
      ok(verdict.includes("cut a torn last line (line 24"), verdict);
      ok(verdict.includes("resumable at step 20 of 24"), verdict);
      const kept = await Deno.readTextFile(`${dir}/metrics.jsonl`);
      strictEqual(kept, original.split("\n").slice(0, 23).join("\n") + "\n");
    } else {
      ok(verdict.includes(`restarted from step 0`), verdict);
      ok(verdict.includes(`line ${line} is not valid JSON`), verdict);
      const aside = await Array.fromAsync(Deno.readDir(`${root}/.superseded/faults/a`));
      const reason = await Deno.readTextFile(
        `${root}/.superseded/faults/a/${aside[0].name}/REASON.txt`,
      );
      ok(reason.includes(`line ${line} is not valid JSON`), reason);
    }
    await finishAndCompare(root, ["faults/a"], ["a"]);
  });
}

Deno.test("a torn middle line of an interrupted run: it restarts rather than resume over a hole, bit for bit", async () => {
  const root = await tempStore("torn_interrupted");
  await killWhen(root, ["--only", "faults/a"], atStep("faults/a/seed-0", 18));
  await tear(runPaths(root, "faults", "a", 0).metrics, 10);
  const lines = await finishAndCompare(root, ["faults/a"], ["a"]);
  ok(lines.some((l) => l.includes("restarted from step 0")), lines.join("\n"));
  ok(lines.includes("START faults/a/seed-0 from 0"), lines.join("\n"));
});

Deno.test("a truncated final checkpoint falls back to the previous one; both truncated: a restart; bit for bit", async () => {
  const { root, dir } = await finishedCopy("truncated");
  const file = `${dir}/checkpoint/model.safetensors`;
  const size = (await Deno.stat(file)).size;
  await Deno.truncate(file, Math.floor(size / 2));
  const lines = await finishAndCompare(root, ["faults/a"], ["a"]);
  ok(
    lines.some((l) => l.includes("has") && l.includes("bytes, state.json recorded")),
    lines.join("\n"),
  );
  ok(lines.includes("START faults/a/seed-0 from 20"), lines.join("\n"));
  // both checkpoints damaged
  await Deno.truncate(`${dir}/checkpoint/optimizer.safetensors`, 100);
  await Deno.truncate(`${dir}/checkpoint.prev/model.safetensors`, 100);
  const again = await finishAndCompare(root, ["faults/a"], ["a"]);
  ok(again.some((l) => l.includes("restarted from step 0")), again.join("\n"));
});

Deno.test("a truncated checkpoint of an interrupted run: resumes from the previous one, bit for bit", async () => {
  const root = await tempStore("truncated_interrupted");
  await killWhen(root, ["--only", "faults/a"], atStep("faults/a/seed-0", 14));
  const { checkpoint } = runPaths(root, "faults", "a", 0);
  await Deno.truncate(`${checkpoint}/optimizer.safetensors`, 64);
  const lines = await finishAndCompare(root, ["faults/a"], ["a"]);
  ok(lines.includes("START faults/a/seed-0 from 8"), lines.join("\n"));
});

Deno.test("a deleted summary.json: re-evaluated from the final checkpoint and the log, never with made-up values", async () => {
  const { root, dir } = await finishedCopy("deleted");
  await Deno.remove(`${dir}/summary.json`);
  strictEqual((await loadResults(root, "faults")).runs.length, 0);
  const lines = await finishAndCompare(root, ["faults/a"], ["a"]);
  ok(lines.includes("START faults/a/seed-0 from 24"), lines.join("\n")); // no training step
});
