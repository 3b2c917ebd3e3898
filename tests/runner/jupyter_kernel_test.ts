/**
 * The live display inside a real Deno Jupyter kernel, driven cell by cell through Debian's
 * jupyter_client (`_kernel_driver.py`), as a notebook would run (the kernel's working directory
 * is `notebooks/`):
 *
 * 1) runs the command line finished from the repository root are skipped in the kernel (same
 *    ids, nothing moved to `.superseded/`);
 * 2) a run shows one display (`display_data` with a display id) updated in place
 *    (`update_display_data`), with no per-step stream lines;
 * 3) a kernel interrupt (SIGINT) during training leaves a checkpoint and the kernel alive, and
 *    the next execution of the cell resumes from it.
 *
 * Skips with a message where /usr/bin/python3 cannot import jupyter_client.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { PYTHON, writeKernelspec } from "../../lib/report/notebooks.ts";

async function jupyterClient(): Promise<string | null> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", "import jupyter_client"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success ? null : `${PYTHON} cannot import jupyter_client`;
  } catch (e) {
    return `cannot run ${PYTHON}: ${(e as Error).message}`;
  }
}

const missing = await jupyterClient();
if (missing !== null) console.log(`Jupyter kernel test skipped: ${missing}`);

interface Message {
  type: string;
  display_id: string | null;
  text: string | null;
  ename: string | null;
  mimes: string[];
}

interface CellRun {
  status: string;
  interrupted: boolean;
  messages: Message[];
}

const repo = (path: string) => new URL(`../../${path}`, import.meta.url);

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name:
    "JupyterReporter in the Deno kernel: CLI runs skipped, one display updated in place, interrupt → checkpoint → resume",
  ignore: missing !== null,
  sanitizeResources: false,
  fn: async () => {
    await Deno.mkdir(".test-tmp", { recursive: true });
    const root = await Deno.realPath(await Deno.makeTempDir({ dir: ".test-tmp", prefix: "kern_" }));
    const out = `${root}/runs`;
    try {
      // 1) the command line, from the repository root, trains `kernel-trained`
      const cli = await run("deno", [
        "run",
        "--quiet",
        "--allow-read=.",
        `--allow-write=${root}`,
        "--allow-env=NO_COLOR,XDG_RUNTIME_DIR",
        "--allow-sys=hostname,systemMemoryInfo",
        "tests/runner/_kernel_suite.ts",
        "--out",
        out,
      ]);
      strictEqual(cli.code, 0, `the CLI failed:\n${cli.stdout}\n${cli.stderr}`);

      // 2) the kernel, in notebooks/, runs three cells
      const imports = `import { runExperiments } from "${repo("mod.ts").href}";\n` +
        `import { live, trained } from "${repo("tests/runner/_kernel_suite.ts").href}";\n` +
        `const OUT = ${JSON.stringify(out)};\n`;
      const liveCell =
        `(await runExperiments([live], { out: OUT, backend: "cpu" })).runs.map((r) => r.status).join();`;
      // what the interrupt left on disk, read in the kernel before the cell runs again
      const probe = "const dir = `${OUT}/kernel-live/mha/seed-0`;\n" +
        "const state = JSON.parse(await Deno.readTextFile(`${dir}/checkpoint/state.json`));\n" +
        "const done = await Deno.stat(`${dir}/summary.json`).then(() => true, () => false);\n" +
        "`checkpoint ${state.step} done ${done}`;";
      const cells = {
        cwd: repo("notebooks").pathname,
        cells: [
          {
            code: imports +
              "(await runExperiments([trained], { out: OUT })).runs.map((r) => r.status).join();",
          },
          { code: liveCell, interrupt_after_updates: 3 },
          { code: probe },
          { code: liveCell },
        ],
      };
      await Deno.writeTextFile(`${root}/cells.json`, JSON.stringify(cells));
      const kernels = await writeKernelspec(`${root}/kernels`);
      const driven = await run(PYTHON, [
        repo("tests/runner/_kernel_driver.py").pathname,
        `${root}/cells.json`,
      ], { JUPYTER_PATH: kernels, NO_COLOR: "1" });
      strictEqual(driven.code, 0, `the kernel driver failed:\n${driven.stderr}`);
      const result = JSON.parse(driven.stdout) as { cells: CellRun[]; alive: boolean };
      const [skip, interrupted, left, resumed] = result.cells;
      const describe = (c: CellRun) => JSON.stringify(c.messages.map((m) => [m.type, m.text]));

      // the CLI's runs, planned again from notebooks/, are found done
      strictEqual(skip.status, "ok", describe(skip));
      strictEqual(
        skip.messages.find((m) => m.type === "execute_result")?.text,
        '"skipped,skipped"',
      );
      ok(!(await Deno.stat(`${out}/.superseded`).then(() => true, () => false)), "nothing aside");

      // the interrupt: a StoppedError in the cell, a checkpoint on disk, the kernel alive
      const dir = `${out}/kernel-live/mha/seed-0`;
      ok(interrupted.interrupted, "the driver interrupted the kernel");
      strictEqual(interrupted.status, "error", describe(interrupted));
      const error = interrupted.messages.find((m) => m.type === "error");
      strictEqual(error?.ename, "StoppedError", describe(interrupted));
      const probed = left.messages.find((m) => m.type === "execute_result")?.text ?? "";
      const m = /checkpoint (\d+) done (true|false)/.exec(probed);
      const state = { step: Number(m?.[1]), done: m?.[2] === "true" };
      ok(state.step > 0 && state.step < 400, `a checkpoint mid-run (${describe(left)})`);
      strictEqual(state.done, false, "the run is not done");
      const stopped = interrupted.messages.filter((m) => m.type === "update_display_data").at(-1);
      ok(
        (stopped?.text ?? "").includes(`stopped: interrupted at step ${state.step}`),
        stopped?.text ?? "",
      );

      // the next execution resumes there, in one display updated in place
      strictEqual(resumed.status, "ok", describe(resumed));
      strictEqual(resumed.messages.find((m) => m.type === "execute_result")?.text, '"done"');
      const displays = resumed.messages.filter((m) => m.type === "display_data" && m.display_id);
      const live = displays[0];
      ok(live?.mimes.includes("application/vnd.vegalite.v5+json"), describe(resumed));
      ok(live.mimes.includes("image/svg+xml"), "with its SVG fallback");
      const updates = resumed.messages.filter((m) => m.type === "update_display_data");
      ok(updates.length >= 2, `${updates.length} updates`);
      ok(updates.every((m) => m.display_id === live.display_id), "all of the same display");
      const streams = resumed.messages.filter((m) => m.type === "stream");
      ok(streams.length <= 3, `at most a handful of stream lines: ${describe(resumed)}`);
      ok(
        updates.some((m) => (m.text ?? "").includes(`resumed at step ${state.step}`)),
        "the display says where it resumed",
      );
      const steps = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n")
        .map((l) => JSON.parse(l).step);
      deepStrictEqual(steps, Array.from({ length: 400 }, (_, i) => i + 1), "every step once");
      ok(result.alive, "the kernel is alive");
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
