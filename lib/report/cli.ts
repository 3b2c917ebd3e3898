/**
 * `deno task report`: read the results store and write the HTML report (`index.html` plus one
 * SVG per chart).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeReport } from "./html.ts";

/** Usage text of `deno task report`. */
export const REPORT_HELP = `Usage: deno task report [options]

Reads the results store written by 'deno task experiments' (<out>/<experiment>/<variant>/
seed-<n>/) and writes a self-contained HTML report: <to>/index.html (tables with mean ± 95% CI
over seeds, inline charts) and one SVG file per chart.

Options:
  --out DIR      results store to read (default: runs)
  --to DIR       report directory to write (default: report)
  --only NAMES   comma-separated experiments (default: every experiment with finished runs)
  --budgets DIRS comma-separated stores of the same experiments at other budgets: they enter
                 the claims' verdicts, the noise trend (tokens estimates) and the cards
  --help         show this help`;

/** Options for {@linkcode reportMain}. */
export interface ReportMainOptions {
  /** Where messages go. @default {console.log / console.error} */
  log?: (line: string) => void;
  error?: (line: string) => void;
}

/**
 * Run the report CLI.
 *
 * @param args Command-line arguments.
 * @param options Where messages go.
 * @returns The exit code: 0 done, 1 failed (e.g. no results), 2 bad usage.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { reportMain } from "./cli.ts";
 * const lines: string[] = [];
 * assertEquals(await reportMain(["--help"], { log: (l) => lines.push(l) }), 0);
 * assertEquals(lines[0].startsWith("Usage: deno task report"), true);
 * ```
 */
export async function reportMain(
  args: string[],
  options: ReportMainOptions = {},
): Promise<number> {
  const log = options.log ?? console.log;
  const error = options.error ?? console.error;
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: "string", default: "runs" },
        to: { type: "string", default: "report" },
        only: { type: "string" },
        budgets: { type: "string" },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    error(`${(e as Error).message}\n\n${REPORT_HELP}`);
    return 2;
  }
  if (values.help) {
    log(REPORT_HELP);
    return 0;
  }
  for (const flag of ["out", "to"] as const) {
    if (values[flag].trim() === "") {
      error(`Invalid --${flag} '': expected a directory path\n\n${REPORT_HELP}`);
      return 2;
    }
  }
  const experiments = values.only?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  try {
    const budgetStores = values.budgets?.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const written = await writeReport(values.out, values.to, { experiments, budgetStores });
    log(
      `Wrote ${written.index} (${written.experiments.join(", ")}; ${written.svgs.length} charts, ` +
        `also as SVG files in ${values.to}/)`,
    );
    if (written.leftOut.length > 0) {
      log(
        `Left out ${written.leftOut.length} runs (listed in the report):\n${
          written.leftOut.map((l) => `  ${l}`).join("\n")
        }`,
      );
    }
    return 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      error(
        `Cannot write the report to '${values.to}': ${(e as Error).message} ` +
          `(the task may write only under 'report/'; pass --to report/<name>)`,
      );
      return 1;
    }
    error((e as Error).message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await reportMain(Deno.args));
