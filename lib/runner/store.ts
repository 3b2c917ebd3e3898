/**
 * The results store: `runs/<experiment>/<variant>/seed-<n>/` holds `config.json` (the resolved
 * run spec and the id's components), `metrics.jsonl` (one JSON object per step), `checkpoint/`
 * and `checkpoint.prev/` (the last two checkpoints), `summary.json` (the final evaluation),
 * `manifest.json` (written last: the hashes that make the run done, see `check.ts`) and, for a
 * run that failed or diverged, `failure.json`.
 *
 * Every file is replaced atomically (temp file in the same directory, then rename), so a run
 * killed at any moment never leaves a half-written file; on resume `metrics.jsonl` keeps its
 * lines up to the checkpoint's step unchanged and drops the later ones, which the resumed run
 * writes again.
 *
 * @module
 */

/** Paths of one run in the store. */
export interface RunPaths {
  dir: string;
  config: string;
  metrics: string;
  summary: string;
  checkpoint: string;
  manifest: string;
  failure: string;
}

/** The directory and files of run `(experiment, variant, seed)` under `root`. */
export function runPaths(
  root: string,
  experiment: string,
  variant: string,
  seed: number,
): RunPaths {
  const dir = `${root}/${experiment}/${variant}/seed-${seed}`;
  return {
    dir,
    config: `${dir}/config.json`,
    metrics: `${dir}/metrics.jsonl`,
    summary: `${dir}/summary.json`,
    checkpoint: `${dir}/checkpoint`,
    manifest: `${dir}/manifest.json`,
    failure: `${dir}/failure.json`,
  };
}

/** Write `text` to `path` atomically (temp file + rename), creating the directory. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Write `value` as pretty JSON to `path` atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** Read a JSON file, or `null` if it does not exist; a corrupt file is an error naming it. */
export async function readJson<T>(path: string): Promise<T | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`Cannot read '${path}': it is not valid JSON (${(e as Error).message})`);
  }
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** What {@linkcode parseMetrics} found in `metrics.jsonl`. */
export interface ParsedMetrics {
  /** The leading records that parse and number their steps 1, 2, 3, … */
  records: Record<string, number>[];
  /** The first line that breaks that, or `null` when every line is fine. */
  problem: { line: number; what: string; last: boolean } | null;
}

/**
 * Check the text of `metrics.jsonl`: every line a JSON object whose `step` is its line number.
 *
 * @param text The file's text.
 * @returns The intact leading records and the first problem.
 *
 * @example A torn last line
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { parseMetrics } from "./store.ts";
 * const parsed = parseMetrics('{"step":1,"loss":2}\n{"step":2,"lo');
 * deepStrictEqual(parsed.records, [{ step: 1, loss: 2 }]);
 * deepStrictEqual(parsed.problem, { line: 2, what: "is not valid JSON (torn)", last: true });
 * ```
 */
export function parseMetrics(text: string): ParsedMetrics {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const records: Record<string, number>[] = [];
  for (const [i, line] of lines.entries()) {
    const last = i === lines.length - 1;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      return { records, problem: { line: i + 1, what: "is not valid JSON (torn)", last } };
    }
    if (r === null || typeof r !== "object" || Array.isArray(r)) {
      return { records, problem: { line: i + 1, what: "is not a JSON object", last } };
    }
    const step = (r as { step?: unknown }).step;
    if (step !== i + 1) {
      return {
        records,
        problem: { line: i + 1, what: `has step ${JSON.stringify(step)}, expected ${i + 1}`, last },
      };
    }
    records.push(r as Record<string, number>);
  }
  return { records, problem: null };
}

/**
 * Parse a JSON-lines file such as `metrics.jsonl` into records (`[]` when it does not exist; a
 * torn last line from a kill is dropped).
 */
export async function readMetrics<T = Record<string, number>>(path: string): Promise<T[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const out: T[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      break; // a partial line at the end of a killed run
    }
  }
  return out;
}

/**
 * The metrics log of a run: buffered in memory and flushed atomically (the whole file) at each
 * checkpoint and at the end, so it always matches the last checkpoint's step.
 */
export class MetricsLog {
  readonly path: string;
  #records: Record<string, number>[] = [];

  constructor(path: string) {
    this.path = path;
  }

  /**
   * Load the records up to and including `step` (those after it are from a lost tail, which the
   * resumed run writes again); the lines before `step` must be intact (`check.ts` sees to it).
   */
  async resumeAt(step: number): Promise<void> {
    let text = "";
    try {
      text = await Deno.readTextFile(this.path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const { records } = parseMetrics(text);
    if (records.length < step) {
      throw new Error(
        `Cannot resume at step ${step}: '${this.path}' holds only steps 1 to ${records.length} ` +
          `intact (check the run with 'deno task experiments --check')`,
      );
    }
    this.#records = records.slice(0, step);
  }

  /** Add one step's metrics. */
  add(record: Record<string, number>): void {
    this.#records.push(record);
  }

  /** All records so far. */
  get records(): readonly Record<string, number>[] {
    return this.#records;
  }

  /** Rewrite the file with every record so far. */
  async flush(): Promise<void> {
    await writeTextAtomic(this.path, this.#records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  }
}
