import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { checkWritable, main, parseCli, selectRuns } from "../../lib/runner/cli.ts";
import { type Reporter, SILENT } from "../../lib/runner/progress.ts";
import { TINY_EXPERIMENT } from "../_fixtures.ts";
import { readJson, readMetrics, runPaths } from "../../lib/runner/store.ts";

/** The experiment of this file; `_cli_tiny.ts` serves it to `--jobs` worker processes. */
const tiny = TINY_EXPERIMENT;

Deno.test("parseCli() accepts the documented flags and defaults", () => {
  const o = parseCli([
    "--only",
    "a,b/c",
    "--budget",
    "full",
    "--backend",
    "cpu",
    "--out",
    "x",
    "--jobs",
    "2",
  ]);
  deepStrictEqual([o.only, o.budget, o.backend, o.out, o.jobs], [
    ["a", "b/c"],
    "full",
    "cpu",
    "x",
    2,
  ]);
  const d = parseCli([]);
  deepStrictEqual([d.only, d.budget, d.backend, d.out, d.jobs, d.list], [
    [],
    "small",
    "auto",
    "runs",
    1,
    false,
  ]);
});

Deno.test("parseCli() names the flag, the value and what is allowed", () => {
  throws(
    () => parseCli(["--budjet", "small"]),
    /Unknown option '--budjet': did you mean '--budget'\?/,
  );
  throws(
    () => parseCli(["--budget", "huge"]),
    /Invalid --budget 'huge': expected 'small' or 'full'/,
  );
  throws(
    () => parseCli(["--backend", "gpu"]),
    /Invalid --backend 'gpu': expected one of 'auto', 'cpu', 'wasm', 'webgpu'/,
  );
  throws(() => parseCli(["--jobs", "0"]), /Invalid --jobs '0': expected an integer from 1 to 64/);
  throws(() => parseCli(["--jobs", "two"]), /Invalid --jobs 'two'/);
  throws(() => parseCli(["--out", ""]), /Invalid --out ''/);
});

Deno.test("selectRuns() filters by experiment and variant, with suggestions for typos", () => {
  deepStrictEqual(selectRuns([tiny], ["tiny/gqa"]).map((s) => s.variants), [["gqa"]]);
  deepStrictEqual(selectRuns([tiny], []).map((s) => s.variants), [undefined]);
  throws(
    () => selectRuns([tiny], ["tinny"]),
    /Unknown experiment 'tinny' in --only: expected one of 'tiny' \(did you mean 'tiny'\?\)/,
  );
  throws(
    () => selectRuns([tiny], ["tiny/gqb"]),
    /Unknown variant 'gqb' of experiment 'tiny' in --only: expected one of 'mha', 'gqa' \(did you mean 'gqa'\?\)/,
  );
});

Deno.test("checkWritable() names an unwritable --out", async () => {
  await rejects(
    () => checkWritable("/proc/ablate-no-such-dir"),
    /Cannot write to --out '\/proc\/ablate-no-such-dir'/,
  );
});

Deno.test("main(): a small experiment end to end through the DSL on the Brown corpus, then skipped", async () => {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const out = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "cli_" });
  try {
    const lines: string[] = [];
    const reporter: Reporter = {
      ...SILENT,
      log: (l) => void lines.push(l),
      runEnd: (i) => void lines.push(`${i.status} ${i.label}`),
    };
    strictEqual(await main(["--backend", "cpu", "--out", out], [tiny], { reporter }), 0);
    ok(lines.includes("done tiny/gqa/seed-1"), lines.join("\n"));
    const p = runPaths(out, "tiny", "gqa", 1);
    const summary = await readJson<{ metrics: Record<string, number>; steps: number }>(p.summary);
    strictEqual(summary?.steps, 16); // 1024 tokens / (4 · 16)
    ok((summary?.metrics.valLoss ?? 0) > 0);
    strictEqual((await readMetrics(p.metrics)).length, 16);
    lines.length = 0;
    strictEqual(await main(["--backend", "cpu", "--out", out], [tiny], { reporter }), 0);
    strictEqual(lines.filter((l) => l.startsWith("skipped")).length, 4);
    strictEqual(await main(["--only", "tiny/nope", "--out", out], [tiny], { reporter }), 2);
    strictEqual(await main(["--budget", "huge", "--out", out], [tiny], { reporter }), 2);
    // Failed invocations leave the finished runs on disk untouched.
    deepStrictEqual(await readJson(p.summary), summary);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("main() --jobs 2 runs each run in its own worker process, with the same results", async () => {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const out = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "cli_jobs_" });
  try {
    const ended: string[] = [];
    const reporter: Reporter = {
      ...SILENT,
      runEnd: (i) => void ended.push(`${i.status} ${i.label}`),
    };
    const scriptUrl = new URL("./_cli_tiny.ts", import.meta.url).href;
    const args = ["--backend", "cpu", "--out", out, "--only", "tiny/mha"];
    strictEqual(await main([...args, "--jobs", "2"], [tiny], { reporter, scriptUrl }), 0);
    deepStrictEqual(ended.filter((l) => l.startsWith("done")).length, 2);
    const parallel = await readMetrics(runPaths(out, "tiny", "mha", 1).metrics);
    // The same run in this process gives the same numbers.
    const serial = `${out}/serial`;
    strictEqual(
      await main(["--backend", "cpu", "--out", serial, "--only", "tiny/mha"], [tiny], { reporter }),
      0,
    );
    deepStrictEqual(
      (await readMetrics(runPaths(serial, "tiny", "mha", 1).metrics)).map((m) => m.loss),
      parallel.map((m) => m.loss),
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("parseCli() rejects empty, repeated and conflicting options instead of guessing", () => {
  throws(() => parseCli(["--only", ""]), /Invalid --only '': expected comma-separated/);
  throws(
    () => parseCli(["--only", ","]),
    /Invalid --only ',': .* leave --only out to run everything/,
  );
  throws(() => parseCli(["--only", "tiny,,x"]), /without empty entries/);
  throws(
    () => parseCli(["--only", "a", "--only", "b"]),
    /--only is given 2 times \('a', 'b'\): give it once, with a comma-separated list \(--only a,b\)/,
  );
  throws(() => parseCli(["--budget", "small", "--budget", "full"]), /--budget is given 2 times/);
  throws(() => parseCli(["--list", "--check"]), /--list and --check cannot be combined/);
  throws(() => parseCli(["--on-changed", "keep"]), /Invalid --on-changed 'keep'/);
  strictEqual(parseCli(["--check"]).check, true);
});

Deno.test("main(): --out inside report/ or where the task may not write says where a store must go", async () => {
  const errors: string[] = [];
  const original = console.error;
  console.error = (m: string) => void errors.push(m);
  try {
    strictEqual(await main(["--out", "report/x"], [tiny], { reporter: SILENT }), 2);
    strictEqual(await main(["--out", "/etc/ablate"], [tiny], { reporter: SILENT }), 2);
    strictEqual(await main(["--out", ".test-tmp/x"], [tiny, tiny], { reporter: SILENT }), 2);
  } finally {
    console.error = original;
  }
  ok(errors[0].startsWith("Invalid --out 'report/x': it lies inside report/"), errors[0]);
  ok(errors[1].includes("--out must lie under runs/, e.g. --out runs/mine"), errors[1]);
  ok(errors[2].startsWith("Two suite entries are named 'tiny' (entries 1 and 2)"), errors[2]);
});
