/**
 * The results store: `runs/<experiment>/<variant>/seed-<n>/` holds `config.json` (the resolved
 * run spec and code version), `metrics.jsonl` (one JSON object per logged step), `summary.json`
 * (final evaluation; its presence marks the run done) and `checkpoint/`.
 *
 * Every file is replaced atomically (temp file in the same directory, then rename), so a run
 * killed at any moment never leaves a half-written file; `metrics.jsonl` is rewritten up to the
 * checkpoint's step on resume, so a resumed run's log has no duplicated steps.
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

  /** Load the records up to and including `step` (those after it are from a lost tail). */
  async resumeAt(step: number): Promise<void> {
    this.#records = (await readMetrics(this.path)).filter((r) => r.step <= step);
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
