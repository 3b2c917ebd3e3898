/**
 * `deno task notebooks`: execute the notebooks in `notebooks/` headlessly with real Jupyter and
 * the Deno kernel, write them (and HTML renderings) to `report/notebooks/`, and check them: no
 * cell raised, and every plot cell showed both the vega-lite bundle and its SVG fallback.
 *
 * Jupyter comes from Debian (`apt-get install -y jupyter-nbconvert python3-nbclient`) and runs
 * under /usr/bin/python3; `execute_notebooks.py` beside this file is the client (stock
 * `nbconvert --execute` loses late outputs of the Deno kernel). The Deno kernel is registered in
 * a private kernelspec directory passed through `JUPYTER_PATH`, so nothing is installed in the
 * user's home. The notebooks read the store named by `ABLATE_RUNS` (default `../runs`) and, unless
 * `ABLATE_NOTEBOOK_RUN=0`, first run whatever of their experiment is missing. `deno task notebooks`
 * only reads the store unless given `--run-missing`.
 *
 * The kernel runs with every permission: `deno jupyter --kernel` (Deno 2.9) accepts no
 * `--allow-*` flags and reads no permission set from `deno.json`, so the kernelspec cannot narrow
 * them; execute only notebooks you trust.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The Python that has Debian's Jupyter packages. */
export const PYTHON = "/usr/bin/python3";

/** MIME type of the interactive chart bundle. */
export const VEGA_LITE_MIME = "application/vnd.vegalite.v5+json";

/** A cell output as nbformat stores it. */
export interface NotebookOutput {
  output_type: string;
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  name?: string;
  text?: string | string[];
}

/** A notebook as nbformat stores it (the fields read here). */
export interface NotebookJson {
  cells: { cell_type: string; source: string | string[]; outputs?: NotebookOutput[] }[];
}

const joined = (s: string | string[] | undefined) => (Array.isArray(s) ? s.join("") : s ?? "");

/** Whether a code cell draws a chart: it calls `.plot(` or carries a `// plot` marker. */
export function isPlotCell(source: string): boolean {
  return /\.plot\(/.test(source) || /^\s*\/\/ plot\b/m.test(source);
}

/**
 * What is wrong with an executed notebook: cells that raised, code cells never executed, and plot
 * cells without both `image/svg+xml` and the vega-lite MIME type in one output.
 *
 * @param nb The executed notebook.
 * @returns One line per problem (empty when the notebook is fine).
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { notebookProblems } from "./notebooks.ts";
 * const nb = { cells: [{ cell_type: "code", source: "await r.plot('loss')", outputs: [] }] };
 * assertEquals(notebookProblems(nb), ["cell 1: a plot cell without image/svg+xml + application/vnd.vegalite.v5+json output"]);
 * ```
 */
export function notebookProblems(nb: NotebookJson): string[] {
  const problems: string[] = [];
  nb.cells.forEach((cell, i) => {
    if (cell.cell_type !== "code") return;
    const source = joined(cell.source);
    const outputs = cell.outputs ?? [];
    for (const o of outputs) {
      if (o.output_type === "error") {
        problems.push(`cell ${i + 1}: raised ${o.ename}: ${o.evalue}`);
      }
    }
    if (isPlotCell(source)) {
      const ok = outputs.some((o) =>
        o.data !== undefined && "image/svg+xml" in o.data && VEGA_LITE_MIME in o.data &&
        joined(o.data["image/svg+xml"] as string | string[]).includes("<svg")
      );
      if (!ok) {
        problems.push(
          `cell ${i + 1}: a plot cell without image/svg+xml + ${VEGA_LITE_MIME} output`,
        );
      }
    }
  });
  return problems;
}

/** Whether `/usr/bin/python3` can import nbclient and nbconvert; the reason when not. */
export async function jupyterAvailable(): Promise<{ ok: boolean; reason: string }> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", "import nbclient, nbconvert, nbformat"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return { ok: true, reason: "" };
    return {
      ok: false,
      reason: `${PYTHON} cannot import nbclient/nbconvert (install them: apt-get install -y ` +
        `jupyter-nbconvert python3-nbclient): ${new TextDecoder().decode(out.stderr).trim()}`,
    };
  } catch (e) {
    return { ok: false, reason: `cannot run ${PYTHON}: ${(e as Error).message}` };
  }
}

/** Options for {@linkcode executeNotebooks}. */
export interface ExecuteOptions {
  /** Notebook files to run (each runs in its own directory). */
  notebooks: string[];
  /** Where the executed notebooks go (`<name>.ipynb`, and `<name>.html` with `html`). */
  outDir: string;
  /** Results store the notebooks read (`ABLATE_RUNS`); default: their `../runs`. */
  runs?: string;
  /** `false`: only read the store, never train what is missing (`ABLATE_NOTEBOOK_RUN=0`). */
  runMissing?: boolean;
  /** Also write HTML renderings. */
  html?: boolean;
  /** The `deno` binary the kernel runs. @default {"deno"} (from PATH) */
  deno?: string;
  /** Per-line progress (one line per notebook). */
  log?: (line: string) => void;
}

/** One executed notebook. */
export interface ExecutedNotebook {
  notebook: string;
  out: string;
  seconds: number;
  /** The kernel died or timed out (cell errors are in {@linkcode problems} instead). */
  error: string | null;
  problems: string[];
}

const SCRIPT = new URL("./execute_notebooks.py", import.meta.url).pathname;

/**
 * Write a private Jupyter kernelspec for the Deno kernel under `dir` (pass `dir` as
 * `JUPYTER_PATH`), so nothing is installed in the user's home.
 *
 * @param dir The directory to create (`<dir>/kernels/deno/kernel.json`).
 * @param deno The `deno` binary the kernel runs.
 * @returns `dir`.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { writeKernelspec } from "./notebooks.ts";
 * await Deno.mkdir(".test-tmp", { recursive: true });
 * const dir = await writeKernelspec(await Deno.makeTempDir({ dir: ".test-tmp" }));
 * const spec = JSON.parse(await Deno.readTextFile(`${dir}/kernels/deno/kernel.json`));
 * assertEquals(spec.argv.slice(1, 3), ["jupyter", "--kernel"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeKernelspec(dir: string, deno = "deno"): Promise<string> {
  await Deno.mkdir(`${dir}/kernels/deno`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/kernels/deno/kernel.json`,
    JSON.stringify({
      argv: [deno, "jupyter", "--kernel", "--conn", "{connection_file}"],
      display_name: "Deno",
      language: "typescript",
      env: { NO_COLOR: "1" },
    }),
  );
  return dir;
}

/** Execute notebooks with the Deno kernel through `execute_notebooks.py` and check them. */
export async function executeNotebooks(options: ExecuteOptions): Promise<ExecutedNotebook[]> {
  const abs = (p: string) => (p.startsWith("/") ? p : `${Deno.cwd()}/${p}`);
  // A private kernelspec beside the outputs (the only place this may write).
  const kernels = `${abs(options.outDir)}/.kernels-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await writeKernelspec(kernels, options.deno);
    const env: Record<string, string> = { JUPYTER_PATH: kernels, NO_COLOR: "1" };
    if (options.runs !== undefined) env.ABLATE_RUNS = abs(options.runs);
    if (options.runMissing === false) env.ABLATE_NOTEBOOK_RUN = "0";
    const child = new Deno.Command(PYTHON, {
      args: [
        SCRIPT,
        "--out",
        abs(options.outDir),
        ...(options.html ? ["--html"] : []),
        ...options.notebooks.map(abs),
      ],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const results: ExecutedNotebook[] = [];
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const r = JSON.parse(line) as Omit<ExecutedNotebook, "problems">;
        const nb = JSON.parse(await Deno.readTextFile(r.out)) as NotebookJson;
        const done = { ...r, problems: notebookProblems(nb) };
        results.push(done);
        options.log?.(
          `${r.notebook}: ${r.seconds} s, ${
            done.error ?? (done.problems.length === 0 ? "ok" : `${done.problems.length} problems`)
          }`,
        );
      }
    }
    const status = await child.status;
    const err = await stderr;
    if (results.length < options.notebooks.length) {
      throw new Error(
        `the notebook executor stopped (exit ${status.code}) after ${results.length} of ` +
          `${options.notebooks.length} notebooks:\n${err.trim().split("\n").slice(-15).join("\n")}`,
      );
    }
    return results;
  } finally {
    await Deno.remove(kernels, { recursive: true }).catch(() => {});
  }
}

/** Usage text of `deno task notebooks`. */
export const NOTEBOOKS_HELP = `Usage: deno task notebooks [options] [NOTEBOOK...]

Executes the notebooks with Jupyter and the Deno kernel, headlessly, and writes them executed,
with HTML renderings, to <to>/. They only read the results store (runs/, or ABLATE_RUNS): run
'deno task experiments' first, or pass --run-missing to let each notebook train what is missing of
its experiment (small budget). Default notebooks: every notebooks/*.ipynb except the quick start,
which trains an experiment of its own and so runs only with --run-missing or when named. Fails if
a cell raised or a plot cell lacks its chart. Needs Debian's Jupyter: apt-get install -y
jupyter-nbconvert python3-nbclient.

Options:
  --to DIR        where executed notebooks go (default: report/notebooks)
  --run-missing   let the notebooks train what is missing (default: only read the store)
  --help          show this help`;

/** Run the `deno task notebooks` CLI; returns the exit code. */
export async function notebooksMain(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        to: { type: "string", default: "report/notebooks" },
        "run-missing": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${NOTEBOOKS_HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(NOTEBOOKS_HELP);
    return 0;
  }
  const available = await jupyterAvailable();
  if (!available.ok) {
    console.error(`Cannot execute the notebooks: ${available.reason}`);
    return 1;
  }
  const runMissing = values["run-missing"];
  let notebooks = positionals;
  if (notebooks.length === 0) {
    for await (const e of Deno.readDir("notebooks")) {
      if (!e.isFile || !e.name.endsWith(".ipynb")) continue;
      if (e.name === "quickstart.ipynb" && !runMissing) continue; // it trains by design
      notebooks.push(`notebooks/${e.name}`);
    }
    // the overview last: it summarises what the others produced
    notebooks = notebooks.sort((a, b) =>
      (a.endsWith("overview.ipynb") ? 1 : 0) - (b.endsWith("overview.ipynb") ? 1 : 0) ||
      a.localeCompare(b)
    );
  }
  const results = await executeNotebooks({
    notebooks,
    outDir: values.to,
    html: true,
    runMissing,
    log: console.log,
  });
  const bad = results.filter((r) => r.error !== null || r.problems.length > 0);
  for (const r of bad) {
    console.error(`${r.notebook}:\n  ${[r.error, ...r.problems].filter(Boolean).join("\n  ")}`);
  }
  console.log(
    `${
      results.length - bad.length
    } of ${results.length} notebooks ok → ${values.to}/ (.ipynb, .html)`,
  );
  return bad.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await notebooksMain(Deno.args));
