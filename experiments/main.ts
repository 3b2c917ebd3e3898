/**
 * `deno task experiments`: run the ablation suite (see `--help`), then write the report
 * (`report/index.html`) and, where Debian's Jupyter is installed, the executed notebooks
 * (`report/notebooks/`), all from the results store.
 *
 * @module
 */

import { writeReport } from "../lib/report/html.ts";
import { executeNotebooks, jupyterAvailable } from "../lib/report/notebooks.ts";
import type { CliOptions } from "../lib/runner/cli.ts";
import { main } from "../lib/runner/cli.ts";
import type { Reporter } from "../lib/runner/progress.ts";
import { EXPERIMENTS } from "./mod.ts";

/** After the runs: the HTML report and the executed notebooks, for the whole store. */
export async function afterRuns(cli: CliOptions, reporter: Reporter): Promise<void> {
  // runs → report, runs/<name> → report/<name> (the task may write only under report/)
  const rest = cli.out.replace(/^(\.\/)?runs\/?/, "");
  const to = rest === "" ? "report" : `report/${rest === cli.out ? rest.split("/").pop() : rest}`;
  const written = await writeReport(cli.out, to);
  reporter.log(`report: ${written.index} (${written.svgs.length} charts)`);
  if (written.leftOut.length > 0) {
    reporter.log(
      `the report lists ${written.leftOut.length} runs it left out:\n${
        written.leftOut.map((l) => `  ${l}`).join("\n")
      }`,
    );
  }
  const jupyter = await jupyterAvailable();
  if (!jupyter.ok) {
    reporter.log(`notebooks not executed: ${jupyter.reason}`);
    return;
  }
  // The notebooks of the experiments that have results in the store, and the overview.
  const notebooks = ["notebooks/overview.ipynb"];
  const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
  for (const e of EXPERIMENTS) {
    if (!(await exists(`${cli.out}/${e.name}`))) continue;
    const notebook = `notebooks/${e.name.replaceAll("-", "_")}.ipynb`;
    if (await exists(notebook)) notebooks.push(notebook);
    else reporter.log(`no notebook for experiment '${e.name}' (${notebook}): skipped`);
  }
  // every notebook reads the store just written (never trains); the overview last
  notebooks.sort((a, b) =>
    Number(a.endsWith("overview.ipynb")) - Number(b.endsWith("overview.ipynb")) ||
    a.localeCompare(b)
  );
  const results = await executeNotebooks({
    notebooks,
    outDir: `${to}/notebooks`,
    runs: cli.out,
    runMissing: false,
    html: true,
  });
  const bad = results.filter((r) => r.error !== null || r.problems.length > 0);
  for (const r of bad) {
    reporter.log(`notebook ${r.notebook}: ${[r.error, ...r.problems].filter(Boolean).join("; ")}`);
  }
  reporter.log(
    `notebooks: ${
      results.length - bad.length
    } of ${results.length} executed cleanly → ${to}/notebooks/`,
  );
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, EXPERIMENTS, { scriptUrl: import.meta.url, afterRuns }));
}
