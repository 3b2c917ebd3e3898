/**
 * Run identity: the id of a run is the same from the repository root, from `notebooks/` (the
 * Deno kernel's working directory) and from a copy without `.git`; it changes when a source file
 * that computes the run changes (committed or not), not when the README, the report code or the
 * comments and layout of a computing file do.
 * Each case plans a tiny experiment in a subprocess (`_identity.ts`).
 */
import { deepStrictEqual, notDeepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { tinyConfig } from "../../lib/models/decoder.ts";
import { codeIdentity, identityChanges, type RunIdentity } from "../../lib/runner/identity.ts";
import { SILENT } from "../../lib/runner/progress.ts";
import { executeRun, RunChangedError } from "../../lib/runner/execute.ts";
import type { RunPlan } from "../../lib/runner/run.ts";
import { exists, readJson, runPaths } from "../../lib/runner/store.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCRIPT = "tests/runner/_identity.ts";

interface Planned {
  ids: string[];
  identity: RunIdentity;
}

async function plan(cwd: string, script: string, extra: string[] = []): Promise<Planned> {
  const out = await new Deno.Command("deno", {
    args: ["run", "--quiet", ...extra, script],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  strictEqual(out.code, 0, err);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop() as string);
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

Deno.test({
  name: "run ids: the same from the repo root, notebooks/ and a copy without .git; " +
    "they change with the trainer's source, not with README.md or the report code",
  async fn() {
    await Deno.mkdir(".test-tmp", { recursive: true });
    const copy = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "identity_" });
    try {
      const fromRoot = await plan(ROOT, SCRIPT, ["--allow-read=."]);
      const fromNotebooks = await plan(`${ROOT}notebooks`, `../${SCRIPT}`, ["--allow-read=.."]);
      deepStrictEqual(fromNotebooks.ids, fromRoot.ids);
      ok("lib/train/trainer.ts" in fromRoot.identity.code.files);
      ok(!("README.md" in fromRoot.identity.code.files));
      ok(!("lib/report/html.ts" in fromRoot.identity.code.files));

      // A tarball-like copy: no .git, no node_modules (npm packages from Deno's cache).
      await copyTree("lib", `${copy}/lib`);
      await Deno.mkdir(`${copy}/tests/runner`, { recursive: true });
      await Deno.copyFile(SCRIPT, `${copy}/${SCRIPT}`);
      for (const f of ["deno.json", "deno.lock", "README.md"]) {
        await Deno.copyFile(f, `${copy}/${f}`);
      }
      ok(!(await exists(`${copy}/.git`)));
      const inCopy = (dir: string) =>
        plan(dir, SCRIPT, ["--node-modules-dir=none", "--allow-read"]);
      deepStrictEqual((await inCopy(copy)).ids, fromRoot.ids);

      // Files no run computes with: the README and the report code.
      await Deno.writeTextFile(`${copy}/README.md`, "\nAn edit.\n", { append: true });
      await Deno.writeTextFile(`${copy}/lib/report/html.ts`, "\n// an edit\n", { append: true });
      deepStrictEqual((await inCopy(copy)).ids, fromRoot.ids);

      // The trainer's comments and layout: documenting or re-wrapping it keeps every id.
      const trainer = `${copy}/lib/train/trainer.ts`;
      const text = await Deno.readTextFile(trainer);
      const documented = "/** A new note on the trainer. */\n" +
        text.replaceAll("\nexport ", "\n// a new comment\n\n  export ");
      ok(documented !== text);
      await Deno.writeTextFile(trainer, documented);
      deepStrictEqual((await inCopy(copy)).ids, fromRoot.ids);

      // An uncommitted edit to the trainer's code (AdamW betas) changes every id, and says where.
      ok(text.includes("?? [0.9, 0.95]"));
      await Deno.writeTextFile(trainer, text.replace("?? [0.9, 0.95]", "?? [0.9, 0.99]"));
      const edited = await inCopy(copy);
      edited.ids.forEach((id, i) => notDeepStrictEqual(id, fromRoot.ids[i]));
      deepStrictEqual(identityChanges(fromRoot.identity, edited.identity), [
        "code: lib/train/trainer.ts changed",
      ]);
    } finally {
      await Deno.remove(copy, { recursive: true });
    }
  },
});

function tinyPlan(id: string, identity: RunIdentity): RunPlan {
  return {
    id,
    experiment: "ident",
    variant: "a",
    seed: 0,
    model: tinyConfig({ vocab: 256, seqLen: 16 }),
    data: { corpus: "brown", tokenizer: "bytes" },
    train: {
      steps: 4,
      batch: 2,
      lr: 3e-3,
      warmup: 1,
      weightDecay: 0.1,
      gradClip: 1,
      accumulate: 1,
      checkpointEvery: 2,
      evalBatches: 1,
    },
    eval: ["valLoss"],
    identity,
  };
}

Deno.test("executeRun(): a finished run whose id changed is left alone with onChanged 'stop', and the error names the changed file", async () => {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const root = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "changed_" });
  try {
    const code = await codeIdentity("cpu");
    const identity: RunIdentity = {
      model: {},
      data: {},
      dataHash: "d",
      train: { lr: 3e-3 },
      seed: 0,
      backend: "cpu",
      code,
    };
    const options = {
      root,
      backend: new CpuBackend(),
      backendReason: "test",
      reporter: SILENT,
      index: 1,
      count: 1,
    };
    const first = await executeRun(tinyPlan("id-1", identity), options);
    strictEqual(first.status, "done");
    const files = { ...code.files, "lib/train/trainer.ts": "0".repeat(64) };
    const edited = { ...identity, train: { lr: 1e-3 }, code: { hash: "h", files } };
    await rejects(
      executeRun(tinyPlan("id-2", edited), { ...options, onChanged: "stop" }),
      (e: Error) => {
        ok(e instanceof RunChangedError);
        ok(e.message.includes("train.lr 0.003 → 0.001"), e.message);
        ok(e.message.includes("code: lib/train/trainer.ts changed"), e.message);
        return true;
      },
    );
    const paths = runPaths(root, "ident", "a", 0);
    deepStrictEqual(await readJson(paths.summary), first.summary);
    ok(!(await exists(`${root}/.superseded`)));
    // "supersede" moves it aside with the reason, and trains the new one.
    const second = await executeRun(tinyPlan("id-2", edited), {
      ...options,
      onChanged: "supersede",
    });
    strictEqual(second.status, "done");
    const reason = await Deno.readTextFile(`${root}/.superseded/ident/a/seed-0-id-1/REASON.txt`);
    ok(reason.includes("code: lib/train/trainer.ts changed"), reason);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
