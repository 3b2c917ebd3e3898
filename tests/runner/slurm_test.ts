/**
 * The Slurm executor against a real single-node Slurm (`.ci/slurm.sh` starts one; CI runs it):
 * a sweep submitted as a job array gives the same metrics as the local executor; a run cancelled
 * mid-way (SIGTERM → checkpoint) resumes on resubmission and ends with the same weights as an
 * uninterrupted run; `--status` and `--cancel` work on this selection only. Skips with a message
 * where Slurm is not up. The argument checks run everywhere.
 */
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { main, parseCli, UsageError } from "../../lib/runner/cli.ts";
import { type Reporter, SILENT } from "../../lib/runner/progress.ts";
import { checkSharedPath, partitions, SLURM_COMMANDS, submit } from "../../lib/runner/slurm.ts";
import { readJson, readMetrics, runPaths } from "../../lib/runner/store.ts";
import { SLURM_SUITE } from "./_slurm_suite.ts";

Deno.test({
  name: "a Slurm command the task does not allow is an error naming the flag to change",
  // under the test task's --allow-run, /bin/ls is not allowed (skip where every command is)
  ignore: (await Deno.permissions.query({ name: "run", command: "/bin/ls" })).state === "granted",
  fn: async () => {
    await rejects(
      partitions({ ...SLURM_COMMANDS, sinfo: "/bin/ls" }),
      (e) =>
        e instanceof UsageError &&
        /^Cannot run '\/bin\/ls': .* add its path .* to --allow-run in deno\.json$/.test(e.message),
    );
  },
});

async function slurmUp(): Promise<string | null> {
  try {
    const out = await new Deno.Command("sinfo", { args: ["-h", "-o", "%T"], stdout: "piped" })
      .output();
    const states = new TextDecoder().decode(out.stdout).split("\n").map((s) => s.trim());
    return out.success && states.some((s) => s === "idle" || s === "mixed")
      ? null
      : `no idle Slurm node (sinfo: ${states.join(" ")})`;
  } catch (e) {
    return `sinfo not runnable (start one with: bash .ci/slurm.sh): ${(e as Error).message}`;
  }
}
const reason = await slurmUp();
if (reason !== null) console.log(`Slurm executor tests skipped: ${reason}`);

const SCRIPT = new URL("./_slurm_suite.ts", import.meta.url).href;

async function store(prefix: string): Promise<string> {
  await Deno.mkdir(".test-tmp", { recursive: true });
  return `${Deno.cwd()}/${await Deno.makeTempDir({ dir: ".test-tmp", prefix })}`;
}

function recorder(): { reporter: Reporter; lines: string[] } {
  const lines: string[] = [];
  return { lines, reporter: { ...SILENT, log: (l) => void lines.push(l) } };
}

Deno.test("parseCli(): the executor flags, with errors naming flag, value and what is allowed", () => {
  const o = parseCli(["--executor", "slurm", "--partition", "debug", "--time", "01:30:00"]);
  deepStrictEqual([o.executor, o.slurm.partition, o.slurm.time], ["slurm", "debug", "01:30:00"]);
  strictEqual(parseCli([]).executor, "local");
  throws(
    () => parseCli(["--executor", "slrum"]),
    /Invalid --executor 'slrum': expected 'local' or 'slurm'/,
  );
  throws(() => parseCli(["--executor", "slurm", "--time", "90 min"]), /Invalid --time '90 min'/);
  throws(
    () => parseCli(["--executor", "slurm", "--cpus-per-task", "0"]),
    /Invalid --cpus-per-task '0'/,
  );
  throws(() => parseCli(["--partition", "debug"]), /--partition applies to --executor slurm only/);
  throws(() => parseCli(["--exector", "slurm"]), /did you mean '--executor'/);
});

Deno.test("the Slurm executor names what is missing: sbatch/sinfo, a node-local store", async () => {
  throws(
    () => checkSharedPath("/tmp/runs", 4),
    /under \/tmp, which is local to each of the 4 nodes/,
  );
  checkSharedPath("/tmp/runs", 1); // one node sees every path
  checkSharedPath("/home/me/project/runs", 4);
  const missing = {
    sbatch: "no-such-sbatch",
    squeue: "no-such-squeue",
    scancel: "x",
    sinfo: "no-such-sinfo",
  };
  await rejects(
    () =>
      submit([], {
        root: `${Deno.cwd()}/runs`,
        script: "x.ts",
        args: [],
        permissions: [],
        commands: missing,
      }),
    (e: Error) =>
      e instanceof UsageError &&
      /'no-such-sinfo' not found: .*install slurm-wlm.*--executor local/.test(e.message),
  );
});

Deno.test({
  name:
    "--executor slurm: a job array gives the local executor's metrics; --status; unknown partition",
  ignore: reason !== null,
  fn: async () => {
    const [viaSlurm, local] = [await store("slurm_a_"), await store("slurm_b_")];
    try {
      const base = ["--only", "tiny", "--backend", "cpu"];
      const { reporter, lines } = recorder();
      strictEqual(
        await main(
          [...base, "--executor", "slurm", "--partition", "nope", "--out", viaSlurm],
          SLURM_SUITE,
          {
            reporter,
            scriptUrl: SCRIPT,
          },
        ),
        2,
      );
      strictEqual(
        await main([...base, "--executor", "slurm", "--out", viaSlurm], SLURM_SUITE, {
          reporter,
          scriptUrl: SCRIPT,
        }),
        0,
      );
      ok(lines.some((l) => /submitted 4 runs as Slurm job array \d+/.test(l)), lines.join("\n"));
      // Submitting again while they are queued or done submits nothing twice.
      lines.length = 0;
      strictEqual(
        await main([...base, "--executor", "slurm", "--out", viaSlurm], SLURM_SUITE, {
          reporter,
          scriptUrl: SCRIPT,
        }),
        0,
      );
      ok(
        lines.some((l) => l.startsWith("nothing to submit") || /submitted 0/.test(l)),
        lines.join("\n"),
      );
      await waitUntilDone(viaSlurm, base);
      lines.length = 0;
      strictEqual(
        await main([...base, "--status", "--out", viaSlurm], SLURM_SUITE, { reporter }),
        0,
      );
      strictEqual(lines.filter((l) => l.startsWith("done")).length, 4, lines.join("\n"));
      strictEqual(await main([...base, "--out", local], SLURM_SUITE, { reporter: SILENT }), 0);
      for (const variant of ["mha", "gqa"]) {
        for (const seed of [0, 1]) {
          const a = await readMetrics(runPaths(viaSlurm, "tiny", variant, seed).metrics);
          const b = await readMetrics(runPaths(local, "tiny", variant, seed).metrics);
          deepStrictEqual(
            a.map((m) => [m.step, m.loss, m.gradNorm]),
            b.map((m) => [m.step, m.loss, m.gradNorm]),
          );
          const sa = await readJson<{ metrics: { valLoss: number } }>(
            runPaths(viaSlurm, "tiny", variant, seed).summary,
          );
          const sb = await readJson<{ metrics: { valLoss: number } }>(
            runPaths(local, "tiny", variant, seed).summary,
          );
          strictEqual(sa?.metrics.valLoss, sb?.metrics.valLoss);
          ok(
            (await Deno.readTextFile(`${runPaths(viaSlurm, "tiny", variant, seed).dir}/slurm.log`))
              .includes("== "),
          );
        }
      }
    } finally {
      await Deno.remove(viaSlurm, { recursive: true }).catch(() => {});
      await Deno.remove(local, { recursive: true }).catch(() => {});
    }
  },
});

/** Poll `--status` until no run of the selection is queued. */
async function waitUntilDone(out: string, base: string[], timeoutMs = 240_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const { reporter, lines } = recorder();
    await main([...base, "--status", "--out", out], SLURM_SUITE, { reporter });
    if (!lines.some((l) => l.startsWith("running") || l.startsWith("pending"))) return lines;
    if (Date.now() > deadline) throw new Error(`Slurm jobs still queued:\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

Deno.test({
  name:
    "scancel mid-run (SIGTERM → checkpoint), resubmit: resumes and ends with an uninterrupted run's weights",
  ignore: reason !== null,
  fn: async () => {
    const [viaSlurm, local] = [await store("slurm_c_"), await store("slurm_d_")];
    try {
      const base = ["--only", "long", "--backend", "cpu", "--budget", "full"]; // 384 steps
      const opts = { reporter: SILENT, scriptUrl: SCRIPT };
      strictEqual(
        await main([...base, "--executor", "slurm", "--out", viaSlurm], SLURM_SUITE, opts),
        0,
      );
      const paths = runPaths(viaSlurm, "long", "base", 0);
      const deadline = Date.now() + 120_000;
      while (!(await Deno.stat(`${paths.checkpoint}/state.json`).then(() => true, () => false))) {
        if (Date.now() > deadline) throw new Error("no checkpoint appeared");
        await new Promise((r) => setTimeout(r, 100));
      }
      const { reporter, lines } = recorder();
      strictEqual(
        await main([...base, "--cancel", "--out", viaSlurm], SLURM_SUITE, { reporter }),
        0,
      );
      ok(lines.some((l) => /^cancelled \d+_0$/.test(l)), lines.join("\n"));
      const status = await waitUntilDone(viaSlurm, base);
      ok(status.some((l) => l.startsWith("failed")), status.join("\n"));
      strictEqual(await readJson(paths.summary), null, "cancelled before the end");
      const log = await Deno.readTextFile(`${paths.dir}/slurm.log`);
      ok(/stopped at step \d+ on request/.test(log), `the run checkpointed on SIGTERM:\n${log}`);
      const stoppedAt = Number(/stopped at step (\d+)/.exec(log)?.[1]);
      ok(stoppedAt > 0 && stoppedAt < 384, `stopped at ${stoppedAt}`);
      // Resubmit: the failed run goes back to Slurm and resumes from its checkpoint.
      strictEqual(
        await main([...base, "--executor", "slurm", "--out", viaSlurm], SLURM_SUITE, opts),
        0,
      );
      await waitUntilDone(viaSlurm, base);
      const resumed = await Deno.readTextFile(`${paths.dir}/slurm.log`);
      strictEqual((resumed.match(/^== /gm) ?? []).length, 2, "two tasks logged into one file");
      strictEqual(await main([...base, "--out", local], SLURM_SUITE, { reporter: SILENT }), 0);
      const weights = async (root: string) =>
        await Deno.readFile(`${runPaths(root, "long", "base", 0).checkpoint}/model.safetensors`);
      deepStrictEqual(await weights(viaSlurm), await weights(local));
      const m = await readMetrics(paths.metrics);
      const steps = m.map((r) => r.step);
      deepStrictEqual(steps, Array.from({ length: 384 }, (_, i) => i + 1), JSON.stringify(steps));
    } finally {
      await Deno.remove(viaSlurm, { recursive: true }).catch(() => {});
      await Deno.remove(local, { recursive: true }).catch(() => {});
    }
  },
});
