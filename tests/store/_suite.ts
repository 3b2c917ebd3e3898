/**
 * The fault-injection tests' subprocess: the CLI (`main()`) over a tiny suite, with a reporter
 * that prints one line per event, and faults injected by wrapping Deno's file functions:
 *
 * `ABLATE_FAULT=<action>:<function>:<regex>:<n>[:<file>]` — before the `n`-th call (1-based) of
 * `Deno.<function>` (`rename`, `writeTextFile`, `open`) whose path (either path for `rename`)
 * matches `regex`, print `FAULT <function> <path>` and either `hang` (wait forever, for the test
 * to kill -9) or `wait` until the file named by the last field exists (created by the test).
 */
import { brown, experiment, model } from "../../lib/dsl/mod.ts";
import { writeReport } from "../../lib/report/html.ts";
import { type CliOptions, main } from "../../lib/runner/cli.ts";
import type { Reporter } from "../../lib/runner/progress.ts";

/** Two healthy variants: 24 steps each, a checkpoint every 4. */
export const faults = experiment({
  name: "faults",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { a: {}, b: { layers: 2 } },
  data: brown(),
  train: {
    tokens: 1536,
    batch: 4,
    lr: 3e-3,
    warmup: 2,
    checkpointEvery: 4,
    budgets: { small: { tokens: 1536 } },
  },
  eval: ["valLoss", "kvBytesPerToken", "decodeTokensPerSec"],
  seeds: [0],
});

/** A healthy variant and one whose learning rate (20, warmed up over 23 steps) blows up. */
export const hot = experiment({
  name: "hot",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { calm: {}, blowup: { train: { lr: 20 } } },
  data: brown(),
  train: {
    tokens: 1536,
    batch: 4,
    lr: 3e-3,
    warmup: 23,
    gradClip: 0,
    checkpointEvery: 2,
    budgets: { small: { tokens: 1536 } },
  },
  eval: ["valLoss"],
  seeds: [0],
});

export const SUITE = [faults, hot];

function installFault(spec: string): void {
  const [action, fn, pattern, nth, until] = spec.split(":");
  const re = new RegExp(pattern);
  let count = 0;
  const trigger = async (path: string) => {
    if (!re.test(path) || ++count !== Number(nth)) return;
    console.log(`FAULT ${fn} ${path}`);
    if (action === "wait") {
      while (!(await Deno.stat(until).then(() => true, () => false))) {
        await new Promise((r) => setTimeout(r, 50));
      }
      return;
    }
    setInterval(() => {}, 1000); // keep the process alive until the test kills it
    await new Promise(() => {});
  };
  const d = Deno as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = d[fn];
  d[fn] = async (...args: unknown[]) => {
    const paths = (fn === "rename" ? args.slice(0, 2) : args.slice(0, 1)).map(String);
    for (const p of paths) await trigger(p);
    return await original.apply(Deno, args);
  };
}

if (import.meta.main) {
  const fault = Deno.env.get("ABLATE_FAULT");
  if (fault) installFault(fault);
  const reporter: Reporter = {
    runStart: (i) => console.log(`START ${i.label} from ${i.fromStep}`),
    step: (m) => console.log(`step ${m.step}`),
    runEnd: (i) => console.log(`END ${i.status} ${i.label} ${i.detail}`),
    log: (line) => console.log(`LOG ${line}`),
  };
  // after the runs of `hot`, as the main job does: the report (beside the store)
  const afterRuns = async (cli: CliOptions) => {
    if (!cli.only.some((o) => o.startsWith("hot"))) return;
    const written = await writeReport(cli.out, `${cli.out}.report`);
    console.log(`REPORT ${written.index} left out ${written.leftOut.length}`);
  };
  Deno.exit(await main(Deno.args, SUITE, { reporter, scriptUrl: import.meta.url, afterRuns }));
}
