/**
 * Helpers of the fault-injection tests: run the CLI of `_suite.ts` in a subprocess (to the end,
 * or until a line of its output, then kill -9), copy stores, and compare a store's results with
 * an uninterrupted run's, bit for bit.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { loadResults, runMetric } from "../../lib/report/results.ts";
import { sealProblem } from "../../lib/runner/check.ts";
import type { RunSummary } from "../../lib/runner/run.ts";
import { readJson, runPaths } from "../../lib/runner/store.ts";

const SCRIPT = new URL("./_suite.ts", import.meta.url).pathname;

/** The subprocess's command line (the CLI over the fault suite, cpu backend). */
function args(root: string, extra: string[]): string[] {
  return [
    "run",
    "--quiet",
    "--allow-read=.",
    "--allow-write=.test-tmp",
    "--allow-env=NO_COLOR,ABLATE_FAULT",
    "--allow-sys=hostname,systemMemoryInfo",
    SCRIPT,
    "--backend",
    "cpu",
    "--out",
    root,
    ...extra,
  ];
}

function env(fault?: string): Record<string, string> {
  return fault === undefined ? {} : { ABLATE_FAULT: fault };
}

/** Run the CLI to the end; its exit code and stdout lines. */
export async function cli(
  root: string,
  extra: string[],
  fault?: string,
): Promise<{ code: number; lines: string[] }> {
  const out = await new Deno.Command("deno", {
    args: args(root, extra),
    env: env(fault),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).split("\n");
  const err = new TextDecoder().decode(out.stderr).trim();
  if (err !== "") lines.push(...err.split("\n").map((l) => `STDERR ${l}`));
  return { code: out.code, lines };
}

/** A running CLI subprocess whose stdout is read line by line. */
export class Child {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(root: string, extra: string[], fault?: string) {
    this.process = new Deno.Command("deno", {
      args: args(root, extra),
      env: env(fault),
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#reader = this.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** Read until a line satisfies `until` (returns it), or the output ends (returns `null`). */
  async waitFor(
    until: (line: string, lines: readonly string[]) => boolean,
  ): Promise<string | null> {
    while (true) {
      let nl;
      while ((nl = this.#buffer.indexOf("\n")) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        this.lines.push(line);
        if (until(line, this.lines)) return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) return null;
      this.#buffer += value;
    }
  }

  /** kill -9, and wait for the process to be gone. */
  async kill(): Promise<void> {
    this.process.kill("SIGKILL");
    await this.#reader.cancel().catch(() => {});
    const status = await this.process.status;
    strictEqual(status.signal, "SIGKILL");
  }

  /** Read to the end; the exit code. */
  async finish(): Promise<number> {
    await this.waitFor(() => false);
    return (await this.process.status).code;
  }
}

/**
 * Start the CLI and kill -9 it once `until` matches a line of its output.
 *
 * @returns The lines read before the kill.
 */
export async function killWhen(
  root: string,
  extra: string[],
  until: (line: string, lines: readonly string[]) => boolean,
  fault?: string,
): Promise<string[]> {
  const child = new Child(root, extra, fault);
  const hit = await child.waitFor(until);
  ok(hit !== null, `the subprocess ended before the kill point:\n${child.lines.join("\n")}`);
  await child.kill();
  return child.lines;
}

/** A predicate: the `n`-th `step` line after `START <label>`. */
export function atStep(
  label: string,
  n: number,
): (line: string, lines: readonly string[]) => boolean {
  return (line, lines) => {
    if (line !== `step ${n}`) return false;
    const start = lines.findLastIndex((l) => l.startsWith("START "));
    return start >= 0 && lines[start].startsWith(`START ${label} `);
  };
}

/** Copy a directory tree. */
export async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** A fresh store directory under `.test-tmp/`. */
export async function tempStore(prefix: string): Promise<string> {
  await Deno.mkdir(".test-tmp", { recursive: true });
  return await Deno.makeTempDir({ dir: ".test-tmp", prefix: `store_${prefix}_` });
}

/** Timing fields: measured, so they differ between two runs of the same computation. */
const TIMED = ["tokensPerSec"];
const TIMED_SUMMARY = ["wallSeconds"];
const TIMED_METRICS = ["decodeTokensPerSec", "trainTokensPerSec"];

async function bytes(path: string): Promise<Uint8Array> {
  return await Deno.readFile(path);
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  ok(a.length === b.length && a.every((v, i) => v === b[i]), `${what} differ`);
}

/**
 * Assert that run `(experiment, variant, 0)` of `root` equals the uninterrupted run of `ref` bit
 * for bit: the final weights and optimizer moments, every logged number but the throughput, and
 * every summary number but the timings (which must be present and positive); that it is sealed;
 * and that the report shows exactly these values.
 */
export async function assertSameRun(
  ref: string,
  root: string,
  experiment: string,
  variant: string,
): Promise<void> {
  const a = runPaths(ref, experiment, variant, 0), b = runPaths(root, experiment, variant, 0);
  const label = `${experiment}/${variant}`;
  for (const f of ["model.safetensors", "optimizer.safetensors"]) {
    sameBytes(
      await bytes(`${a.checkpoint}/${f}`),
      await bytes(`${b.checkpoint}/${f}`),
      `${label} ${f}`,
    );
  }
  const lines = async (p: string) =>
    (await Deno.readTextFile(p)).trimEnd().split("\n").map((l) => {
      const r = JSON.parse(l) as Record<string, number>;
      for (const k of TIMED) {
        ok(typeof r[k] === "number" && r[k] > 0, `${label}: ${k} missing at step ${r.step}`);
        delete r[k];
      }
      return r;
    });
  deepStrictEqual(await lines(b.metrics), await lines(a.metrics), `${label}: metrics.jsonl`);
  const strip = (s: RunSummary) => {
    const copy = structuredClone(s) as unknown as Record<string, unknown>;
    const metrics = copy.metrics as Record<string, number>;
    for (const k of TIMED_SUMMARY) {
      ok(typeof copy[k] === "number" && (copy[k] as number) > 0, `${label}: summary ${k}`);
      delete copy[k];
    }
    for (const k of TIMED_METRICS) {
      if (k in metrics) {
        ok(Number.isFinite(metrics[k]) && metrics[k] > 0, `${label}: summary ${k}`);
        delete metrics[k];
      }
    }
    return copy;
  };
  const sa = await readJson<RunSummary>(a.summary) as RunSummary;
  const sb = await readJson<RunSummary>(b.summary) as RunSummary;
  deepStrictEqual(strip(sb), strip(sa), `${label}: summary.json`);
  ok(Number.isFinite(sb.finalTrainLoss), `${label}: finalTrainLoss ${sb.finalTrainLoss}`);
  ok(
    (sa.metrics.trainTokensPerSec === undefined) === (sb.metrics.trainTokensPerSec === undefined),
    `${label}: trainTokensPerSec present in one summary only`,
  );
  strictEqual(await sealProblem(root, { experiment, variant, seed: 0 }), null, `${label} sealed`);
  // what a report shows is what the run produced
  const shown = (await loadResults(root, experiment)).runs.find((r) => r.variant === variant);
  ok(shown !== undefined, `${label} missing from the report`);
  for (const m of ["valLoss", "finalTrainLoss", "bitsPerByte", "kvBytesPerToken"]) {
    strictEqual(runMetric(shown, m), m === "finalTrainLoss" ? sa.finalTrainLoss : sa.metrics[m]);
  }
  strictEqual(shown.steps.length, sa.steps);
}
