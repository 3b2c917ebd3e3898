/**
 * The R1 pipeline (lib/rl/pipeline.ts, options.ts, stages.ts, charts.ts): the settings'
 * validation, the branch summary, and a tiny end-to-end run through the study interface that
 * writes every stage and resumes.
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { ConfigError } from "../../lib/dsl/errors.ts";
import { model } from "../../lib/dsl/mod.ts";
import {
  type R1Options,
  r1Pipeline,
  type R1Point,
  readR1Points,
  readR1Rounds,
  summarizeBranches,
} from "../../lib/rl/mod.ts";
import { SILENT } from "../../lib/runner/progress.ts";

const policy = model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 40 });
const SPEC: R1Options = {
  name: "r1-tiny",
  tasks: ["addition"],
  taskOptions: { digits: 1 },
  policy,
  student: policy,
  pretrain: { lines: 200, steps: 6 },
  coldStart: { examples: 20, steps: 4 },
  grpo: { rounds: 2, questions: 2, group: 2, updates: 1, maxNewTokens: 20 },
  rejection: { questions: 4, samples: 2, steps: 2 },
  distill: { questions: 4, steps: 2 },
  eval: { questions: 4, every: 1 },
  seeds: [0],
};

Deno.test("r1Pipeline(): bad fields are ConfigErrors naming the field, value and what is allowed", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ tasks: ["adition"] }, /tasks\[0\].*"adition".*"addition"/s],
    [{ tasks: [] }, /tasks/],
    [{ grpo: { rounds: 0 } }, /grpo\.rounds.*>= 1/s],
    [{ grpo: { rounds: 2, group: 1 } }, /grpo\.group/],
    [{ grpo: { rounds: 2, clipEps: 2 } }, /grpo\.clipEps/],
    [{ pretrain: { lines: { small: 10 }, steps: 1 } }, /pretrain\.lines\.full/],
    [{ eval: { questions: 4, every: 1, evry: 2 } }, /eval\.evry.*"every"/s],
    [{ seeds: [] }, /seeds/],
    [{ rejection: { questions: 4, samples: 0, steps: 1 } }, /rejection\.samples/],
    [{ polcy: policy }, /polcy.*"policy"/s],
    [
      { taskOptions: { small: { digits: 1 }, full: { digts: 2 } } },
      /taskOptions\.full\.digts.*"digits"/s,
    ],
    [{ taskOptions: { digits: 1, modulo: 5 } }, /taskOptions\.modulo.*"modulus"/s],
  ];
  for (const [override, message] of bad) {
    throws(() => r1Pipeline({ ...SPEC, ...override } as R1Options), (e: Error) => {
      ok(e instanceof ConfigError, `${e}`);
      ok(message.test(e.message), `${JSON.stringify(override)}: ${e.message}`);
      return true;
    });
  }
  const s = r1Pipeline(SPEC);
  deepStrictEqual(s.variants, ["zero", "r1", "distill"]);
});

Deno.test("summarizeBranches(): the last point of each branch per seed, mean ± CI over seeds", () => {
  const p = (branch: R1Point["branch"], seed: number, step: number, accuracy: number) => ({
    branch,
    seed,
    stage: "x",
    step,
    accuracy,
    formatRate: 1,
    length: 10,
  });
  const rows = summarizeBranches([
    p("base", 0, 0, 0),
    p("zero", 0, 10, 0.1),
    p("zero", 0, 20, 0.3),
    p("zero", 1, 20, 0.5),
    p("zero", 1, 10, 0.9),
  ]);
  deepStrictEqual(rows.map((r) => r.branch), ["base", "zero"]);
  strictEqual(rows[1].seeds, 2);
  ok(Math.abs(rows[1].accuracy.mean - 0.4) < 1e-12);
  ok(rows[1].accuracy.halfWidth !== null && rows[1].accuracy.halfWidth > 0);
});

Deno.test({
  name:
    "r1 study: a tiny pipeline writes every stage, the table and the report section, then resumes",
  sanitizeResources: false,
  fn: async () => {
    await Deno.mkdir(".test-tmp", { recursive: true });
    const dir = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "r1_" });
    try {
      const s = r1Pipeline(SPEC);
      const ctx = {
        budget: "small" as const,
        dir,
        variants: undefined,
        backend: new CpuBackend(),
        backendReason: "test",
        reporter: SILENT,
        codeVersion: "test",
      };
      await s.run(ctx);
      for (
        const stage of [
          "base",
          "zero",
          "cold-start",
          "r1-grpo",
          "r1-rejection-sft",
          "student-base",
          "distill",
        ]
      ) {
        ok(await Deno.stat(`${dir}/s0/${stage}/done.json`), stage);
        ok(await Deno.stat(`${dir}/s0/${stage}/model/model.safetensors`), stage);
      }
      const points = await readR1Points(dir);
      deepStrictEqual(
        [...new Set(points.map((p) => p.branch))].sort(),
        ["base", "distill", "r1", "zero"],
      );
      strictEqual((await readR1Rounds(dir)).length, 4); // 2 rounds × (zero, r1)
      const report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
      ok(report.markdown.includes("R1-Zero"));
      deepStrictEqual(report.charts, ["accuracy.svg", "formatRate.svg", "length.svg"]);
      ok((await Deno.readTextFile(`${dir}/accuracy.svg`)).includes("<svg"));
      // a rerun skips every finished stage (done.json untouched)
      const before = (await Deno.stat(`${dir}/s0/zero/done.json`)).mtime?.getTime();
      await s.run(ctx);
      strictEqual((await Deno.stat(`${dir}/s0/zero/done.json`)).mtime?.getTime(), before);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
