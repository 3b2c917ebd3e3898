/**
 * The DeepSeek-R1 pipeline at toy scale (arXiv:2501.12948 §2.2–2.4), declared with the typed
 * DSL and run as a suite study (`deno task experiments --only r1`):
 *
 * 0) base: pretrain a tiny decoder on the task corpus (mostly `question answer` lines, a few in
 *    the R1 format — a pretrained LLM has seen such text now and then);
 * (a) R1-Zero: GRPO straight from the base (§2.2);
 * (b) R1: cold-start SFT on a few hundred formatted chain-of-thought examples → GRPO →
 *     rejection sampling (keep only correct, well-formed samples) → SFT on them (§2.3);
 * (c) distillation: SFT of a smaller pretrained student on the R1 model's correct outputs (§2.4).
 *
 * Each branch is evaluated greedily on held-out questions along its training (accuracy inside
 * `<answer>` tags, exact-format rate, completion length); every seed repeats the whole pipeline.
 * Stages are resumable: each writes `<dir>/s<seed>/<stage>/` (model, logs, `done.json` last), and
 * a rerun skips finished stages.
 *
 * @module
 */

import {
  type Study,
  study,
  type StudyContext,
  writeJsonAtomic,
  writeTextAtomic,
} from "../runner/study.ts";
import { branchTable, r1CurveSpec, readR1Points, summarizeBranches } from "./charts.ts";
import { budgeted, checkR1Options, R1_BRANCHES, type R1Options } from "./options.ts";
import { runSeed } from "./stages.ts";

/**
 * Declare the R1 pipeline as a suite study, checking every field with {@linkcode checkR1Options}
 * (unknown keys and bad values are `ConfigError`s naming the field, the value and what is
 * allowed).
 *
 * @param options The pipeline settings.
 * @returns A study for `EXPERIMENTS`.
 *
 * @example A typo names the field and the closest key
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { model } from "../dsl/mod.ts";
 * import { r1Pipeline } from "./pipeline.ts";
 * const policy = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 48 });
 * const spec = {
 *   name: "r1", tasks: ["addition" as const], policy, student: policy,
 *   pretrain: { lines: 100, steps: 10 }, coldStart: { examples: 10, steps: 5 },
 *   grpo: { rounds: 2 }, rejection: { questions: 4, samples: 2, steps: 2 },
 *   distill: { questions: 4, steps: 2 }, eval: { questions: 8, every: 1 }, seeds: [0],
 * };
 * r1Pipeline(spec);
 * throws(() => r1Pipeline({ ...spec, grpo: { rounds: 2, grup: 4 } as never }), /grpo\.grup.*"group"/s);
 * ```
 */
export function r1Pipeline(options: R1Options): Study {
  const spec = checkR1Options(options);
  return study({
    name: spec.name,
    description: spec.description ?? "the R1 pipeline (R1-Zero vs R1 vs distillation)",
    variants: [...R1_BRANCHES],
    seeds: budgeted(spec.seeds, "full"),
    run: (ctx) => runPipeline(spec, ctx),
  });
}
async function runPipeline(spec: R1Options, ctx: StudyContext): Promise<void> {
  const { renderSvg } = await import("../report/render.ts");
  await Deno.mkdir(ctx.dir, { recursive: true });
  const seeds = budgeted(spec.seeds, ctx.budget);
  for (const seed of seeds) await runSeed(spec, ctx, seed);
  // summary, table, charts and the report section, from what is on disk
  const points = await readR1Points(ctx.dir);
  const summary = summarizeBranches(points);
  await writeJsonAtomic(`${ctx.dir}/summary.json`, {
    budget: ctx.budget,
    seeds,
    branches: summary,
  });
  const table = branchTable(summary);
  await writeTextAtomic(`${ctx.dir}/table.md`, table + "\n");
  const charts: string[] = [];
  for (const metric of ["accuracy", "formatRate", "length"] as const) {
    const file = `${metric}.svg`;
    await writeTextAtomic(`${ctx.dir}/${file}`, await renderSvg(r1CurveSpec(points, metric)));
    charts.push(file);
  }
  await writeJsonAtomic(`${ctx.dir}/report.json`, {
    title: `${spec.name}: the R1 pipeline at toy scale`,
    markdown:
      `Greedy accuracy, exact-format rate and completion length on ${
        budgeted(spec.eval.questions, ctx.budget)
      } held-out questions (${
        spec.tasks.join(", ")
      }), last evaluation of each branch, mean ± 95% CI over ` +
      `${seeds.length} seed(s).\n\n${table}`,
    charts,
  });
  ctx.reporter.log(`r1: ${summary.length} branches → ${ctx.dir}/table.md`);
}
