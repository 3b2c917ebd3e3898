/**
 * `deno task eval-noise`: measure evaluation noise against seed noise on a results store (see
 * lib/report/eval_noise.ts): every finished run's last checkpoint is re-evaluated on the whole
 * held-out split, and the spread over disjoint held-out samples of the runner's size is set
 * against the spread over seeds. Writes `<out>/eval-noise/<experiment>.json` and
 * `<out>/eval-noise/report.json` (a section of the HTML report) and prints the table.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type BackendChoiceName, chooseBackend } from "../lib/backend/mod.ts";
import { CLAIMS } from "../lib/report/claims.ts";
import { evalNoiseMarkdown, measureEvalNoise } from "../lib/report/eval_noise.ts";
import { listExperiments, loadResults } from "../lib/report/results.ts";
import { writeJsonAtomic } from "../lib/runner/store.ts";

/** Usage text. */
export const EVAL_NOISE_HELP = `Usage: deno task eval-noise [options]

Re-evaluates every finished run's last checkpoint on the whole held-out split and compares the
spread of the loss over disjoint held-out samples (evaluation noise) with its spread over seeds.

Options:
  --out DIR          results store (default: runs)
  --only NAMES       comma-separated experiments (default: every experiment in the store)
  --baseline NAME    variant the paired differences are taken against (default: the baseline
                     of the experiment's first claim, else the first variant)
  --max-windows N    evaluate only the first N held-out windows (default: all)
  --backend B        cpu or wasm (default: wasm)
  --help             show this help`;

/** Run the script; returns the exit code. */
export async function evalNoiseMain(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        out: { type: "string", default: "runs" },
        only: { type: "string" },
        baseline: { type: "string" },
        "max-windows": { type: "string" },
        backend: { type: "string", default: "wasm" },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${EVAL_NOISE_HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(EVAL_NOISE_HELP);
    return 0;
  }
  if (values.backend !== "cpu" && values.backend !== "wasm") {
    console.error(`Invalid --backend '${values.backend}': expected 'cpu' or 'wasm'`);
    return 2;
  }
  const maxWindows = values["max-windows"] === undefined
    ? undefined
    : Number(values["max-windows"]);
  if (maxWindows !== undefined && !(Number.isInteger(maxWindows) && maxWindows >= 8)) {
    console.error(`Invalid --max-windows '${values["max-windows"]}': expected an integer >= 8`);
    return 2;
  }
  const { backend, reason } = await chooseBackend(values.backend as BackendChoiceName);
  console.log(`backend: ${backend.description} (${reason})`);
  const names = values.only?.split(",").map((s) => s.trim()).filter((s) => s !== "") ??
    await listExperiments(values.out);
  const sections: string[] = [];
  for (const name of names) {
    const results = await loadResults(values.out, name);
    if (results.runs.length === 0) continue;
    const started = performance.now();
    const m = await measureEvalNoise(results, {
      backend,
      maxWindows,
      baseline: values.baseline ?? CLAIMS.find((c) => c.experiment === name)?.baseline,
      onRun: (label) => console.log(`  ${name}/${label} re-evaluated`),
    });
    const seconds = (performance.now() - started) / 1000;
    await writeJsonAtomic(`${values.out}/eval-noise/${name}.json`, { ...m, seconds });
    const md = evalNoiseMarkdown(m);
    console.log(`\n${md}\n(${seconds.toFixed(0)} s)\n`);
    sections.push(`### ${name}\n\n${md}`);
  }
  await writeJsonAtomic(`${values.out}/eval-noise/report.json`, {
    title: "Evaluation noise against seed noise",
    markdown: sections.join("\n\n"),
    charts: [],
  });
  return 0;
}

if (import.meta.main) Deno.exit(await evalNoiseMain(Deno.args));
