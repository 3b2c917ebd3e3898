/**
 * The stages of the R1 pipeline (`pipeline.ts`) for one seed: pretraining, R1-Zero's GRPO, the
 * cold start, GRPO, rejection sampling and its SFT, and distillation, each resumable (it writes
 * `<dir>/s<seed>/<stage>/` with `done.json` last, and a rerun skips finished stages), each
 * evaluated greedily on held-out questions into curve points.
 *
 * @module
 */

import type { ModelConfig } from "../models/config.ts";
import { loadModel, loadWeights, saveModel } from "../models/checkpoint.ts";
import { Decoder } from "../models/decoder.ts";
import { withBackend } from "../backend/mod.ts";
import {
  exists,
  readMetrics,
  type StudyContext,
  writeJsonAtomic,
  writeTextAtomic,
} from "../runner/study.ts";
import { Rng } from "../tensor/mod.ts";
import { Grpo, type GrpoRoundLog } from "./grpo.ts";
import { type Budgeted, budgeted, type R1Branch, type R1Options } from "./options.ts";
import { evaluatePolicy, type Evaluation, sampleCompletions, supervisedTrain } from "./policy.ts";
import { scoreCompletion } from "./rewards.ts";
import { formatted, makeProblems, type Problem, taskCorpus, TaskTokenizer } from "./tasks.ts";

/** One evaluation point of a branch. */
export interface R1Point extends Evaluation {
  branch: R1Branch | "base";
  seed: number;
  stage: string;
  /** Training updates of the branch so far (after pretraining). */
  step: number;
}

/** Everything a seed's stages share. */
interface SeedRun {
  spec: R1Options;
  ctx: StudyContext;
  seed: number;
  dir: string;
  tok: TaskTokenizer;
  evalSet: Problem[];
  n: (value: Budgeted<number>) => number;
}

/** Run `fn` as stage `name` unless its `done.json` exists; returns its curve points. */
async function stage(
  run: SeedRun,
  name: string,
  fn: (dir: string) => Promise<{ points: R1Point[]; extra?: Record<string, unknown> }>,
): Promise<R1Point[]> {
  const dir = `${run.dir}/${name}`;
  if (await exists(`${dir}/done.json`)) {
    run.ctx.reporter.log(`r1 seed ${run.seed}: ${name} already done`);
    return await readMetrics<R1Point>(`${dir}/curve.jsonl`);
  }
  const started = performance.now();
  run.ctx.reporter.log(`r1 seed ${run.seed}: ${name}…`);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const { points, extra } = await fn(dir);
  await writeTextAtomic(
    `${dir}/curve.jsonl`,
    points.map((p) => JSON.stringify(p)).join("\n") + "\n",
  );
  const seconds = (performance.now() - started) / 1000;
  await writeJsonAtomic(`${dir}/done.json`, {
    seconds,
    codeVersion: run.ctx.codeVersion,
    ...extra,
  });
  const last = points.at(-1);
  run.ctx.reporter.log(
    `r1 seed ${run.seed}: ${name} done in ${seconds.toFixed(1)} s` +
      (last ? ` (accuracy ${last.accuracy.toFixed(2)}, format ${last.formatRate.toFixed(2)})` : ""),
  );
  return points;
}

function taskConfig(config: ModelConfig, tok: TaskTokenizer): ModelConfig {
  return { ...config, vocab: tok.vocabSize };
}

async function load(run: SeedRun, name: string): Promise<Decoder> {
  return await withBackend(run.ctx.backend, () => loadModel(`${run.dir}/${name}/model`));
}

async function evalPoint(
  run: SeedRun,
  model: Decoder,
  at: { branch: R1Point["branch"]; stage: string; step: number },
): Promise<R1Point> {
  const e = await evaluatePolicy(model, run.evalSet, run.tok, {
    maxNewTokens: run.spec.grpo.maxNewTokens ?? 32,
  });
  return { ...at, seed: run.seed, ...e };
}

function pairsOf(tok: TaskTokenizer, items: { prompt: string; completion: string }[]) {
  return items.map((x) => ({
    prompt: Array.from(tok.encode(x.prompt)),
    completion: Array.from(tok.encode(x.completion)),
  }));
}

async function pretrain(run: SeedRun, config: ModelConfig, dir: string, seedOffset: number) {
  const { spec, tok } = run;
  const model = withBackend(
    run.ctx.backend,
    () => new Decoder(config, new Rng(run.seed * 1000 + seedOffset)),
  );
  const lines = taskCorpus(spec.tasks, run.n(spec.pretrain.lines), {
    ...budgeted(spec.taskOptions ?? {}, run.ctx.budget),
    formattedShare: spec.pretrain.formattedShare ?? 0.1,
    seed: run.seed * 1000 + 1,
  });
  const pairs = lines.map((l) => {
    const ids = Array.from(tok.encode(l));
    return { prompt: ids.slice(0, 1), completion: ids.slice(1) };
  });
  await withBackend(run.ctx.backend, () =>
    supervisedTrain(model, pairs, {
      steps: run.n(spec.pretrain.steps),
      lr: spec.pretrain.lr ?? 3e-3,
      trainOnPrompt: true,
      rng: new Rng(run.seed * 1000 + 2 + seedOffset),
    }));
  await saveModel(`${dir}/model`, model);
  return model;
}

async function grpoStage(
  run: SeedRun,
  policy: Decoder,
  dir: string,
  at: { branch: R1Branch; step: number; seedOffset: number },
): Promise<R1Point[]> {
  const { spec, tok } = run;
  const g = spec.grpo;
  const reference = await withBackend(run.ctx.backend, () => {
    const ref = new Decoder(policy.config, new Rng(0));
    loadWeights(ref, policy.parameters());
    return ref;
  });
  const grpo = withBackend(run.ctx.backend, () =>
    new Grpo(policy, reference, tok, {
      group: g.group,
      updates: g.updates,
      clipEps: g.clipEps,
      beta: g.beta,
      lr: g.lr ?? 2e-3,
      rewards: g.rewards,
      sampling: { temperature: g.temperature ?? 1, maxNewTokens: g.maxNewTokens ?? 32 },
    }));
  const rounds = run.n(g.rounds), every = run.n(spec.eval.every);
  const updates = g.updates ?? 2, questions = g.questions ?? 8;
  const rng = new Rng(run.seed * 1000 + 10 + at.seedOffset);
  const logs: (GrpoRoundLog & { round: number })[] = [];
  const points: R1Point[] = [];
  run.ctx.reporter.runStart({
    index: 0,
    count: 1,
    label: `r1 s${run.seed} ${at.branch} GRPO`,
    steps: rounds,
    fromStep: 0,
    experiment: "r1",
    variant: `${at.branch}-grpo`,
    seed: run.seed,
  });
  for (let r = 0; r < rounds; r++) {
    const problems = mixedProblems(
      spec,
      questions,
      run.seed * 100_000 + at.seedOffset * 10_000 + r,
      run.ctx.budget,
    );
    const log = await withBackend(run.ctx.backend, () => grpo.round(problems, rng));
    logs.push({ round: r, ...log });
    run.ctx.reporter.step({ step: r + 1, loss: log.loss, tokensPerSec: log.tokensPerSec });
    if ((r + 1) % every === 0 || r === rounds - 1) {
      points.push(
        await evalPoint(run, policy, {
          branch: at.branch,
          stage: "grpo",
          step: at.step + (r + 1) * updates,
        }),
      );
    }
  }
  await writeTextAtomic(
    `${dir}/rounds.jsonl`,
    logs.map((l) => JSON.stringify(l)).join("\n") + "\n",
  );
  await saveModel(`${dir}/model`, policy);
  return points;
}

/** `count` problems cycling through the spec's tasks, from `seed`. */
function mixedProblems(
  spec: R1Options,
  count: number,
  seed: number,
  budget: "small" | "full",
): Problem[] {
  const per = spec.tasks.map((t, i) =>
    makeProblems(t, Math.ceil(count / spec.tasks.length), {
      ...budgeted(spec.taskOptions ?? {}, budget),
      seed: seed * 7 + i,
    })
  );
  const out: Problem[] = [];
  for (let i = 0; out.length < count; i++) {
    out.push(per[i % per.length][Math.floor(i / per.length)]);
  }
  return out;
}

async function sftStage(
  run: SeedRun,
  model: Decoder,
  examples: { prompt: string; completion: string }[],
  dir: string,
  at: {
    branch: R1Branch;
    stage: string;
    step: number;
    steps: number;
    lr: number;
    seedOffset: number;
  },
): Promise<R1Point[]> {
  const points: R1Point[] = [];
  const every = Math.max(1, Math.round(at.steps / 4));
  const evalAt = new Set<number>();
  for (let s = every; s < at.steps; s += every) evalAt.add(s);
  const pairs = pairsOf(run.tok, examples);
  // evaluate at a few points along the way (done between chunks of training)
  let done = 0;
  for (const until of [...evalAt, at.steps]) {
    await withBackend(run.ctx.backend, () =>
      supervisedTrain(model, pairs, {
        steps: until - done,
        lr: at.lr,
        rng: new Rng(run.seed * 1000 + 20 + at.seedOffset + until),
      }));
    done = until;
    points.push(
      await evalPoint(run, model, { branch: at.branch, stage: at.stage, step: at.step + done }),
    );
  }
  await saveModel(`${dir}/model`, model);
  return points;
}

/** Sample `samples` completions per question and keep the correct, well-formed ones. */
async function correctSamples(
  run: SeedRun,
  model: Decoder,
  problems: Problem[],
  samples: number,
  temperature: number,
  seed: number,
): Promise<{ prompt: string; completion: string }[]> {
  const prompts = problems.flatMap((p) =>
    Array.from({ length: samples }, () => Array.from(run.tok.encode(p.prompt)))
  );
  const completions = await withBackend(
    run.ctx.backend,
    () =>
      sampleCompletions(model, prompts, new Rng(seed), {
        temperature,
        maxNewTokens: run.spec.grpo.maxNewTokens ?? 32,
        eos: run.tok.eos,
      }),
  );
  const kept: { prompt: string; completion: string }[] = [];
  completions.forEach((c, i) => {
    const p = problems[Math.floor(i / samples)];
    const text = run.tok.decode(c);
    const s = scoreCompletion(p.prompt, text);
    if (s.accuracy === 1 && s.format === 1 && text.endsWith("\n")) {
      kept.push({ prompt: p.prompt, completion: text });
    }
  });
  return kept;
}

/**
 * Every stage of the pipeline for one seed (the branches `ctx.variants` asks for), skipping
 * finished ones.
 *
 * @param spec The checked settings.
 * @param ctx The study's context (directory, budget, backend, reporter).
 * @param seed The seed.
 * @returns The seed's curve points.
 */
export async function runSeed(
  spec: R1Options,
  ctx: StudyContext,
  seed: number,
): Promise<R1Point[]> {
  const tok = new TaskTokenizer();
  const n = (v: Budgeted<number>) => budgeted(v, ctx.budget);
  const run: SeedRun = {
    spec,
    ctx,
    seed,
    dir: `${ctx.dir}/s${seed}`,
    tok,
    n,
    evalSet: mixedProblems(spec, n(spec.eval.questions), 9_000_000 + seed, ctx.budget),
  };
  const want = (b: R1Branch) =>
    ctx.variants === undefined || ctx.variants.includes(b) ||
    (b === "r1" && ctx.variants.includes("distill"));
  const policyConfig = taskConfig(spec.policy, tok);
  const points: R1Point[] = [];
  // 0) base
  points.push(
    ...await stage(run, "base", async (dir) => {
      const model = await pretrain(run, policyConfig, dir, 0);
      return { points: [await evalPoint(run, model, { branch: "base", stage: "base", step: 0 })] };
    }),
  );
  // (a) R1-Zero: GRPO from the base
  if (want("zero")) {
    points.push(
      ...await stage(run, "zero", async (dir) => ({
        points: await grpoStage(run, await load(run, "base"), dir, {
          branch: "zero",
          step: 0,
          seedOffset: 1,
        }),
      })),
    );
  }
  if (!want("r1")) return points;
  // (b) R1: cold start → GRPO → rejection sampling → SFT
  const coldSteps = n(spec.coldStart.steps);
  points.push(
    ...await stage(run, "cold-start", async (dir) => {
      const examples = mixedProblems(spec, n(spec.coldStart.examples), 5_000_000 + seed, ctx.budget)
        .map((p) => ({ prompt: p.prompt, completion: formatted(p) }));
      return {
        points: await sftStage(run, await load(run, "base"), examples, dir, {
          branch: "r1",
          stage: "cold-start",
          step: 0,
          steps: coldSteps,
          lr: spec.coldStart.lr ?? 2e-3,
          seedOffset: 2,
        }),
      };
    }),
  );
  const rlSteps = coldSteps + n(spec.grpo.rounds) * (spec.grpo.updates ?? 2);
  points.push(
    ...await stage(run, "r1-grpo", async (dir) => ({
      points: await grpoStage(run, await load(run, "cold-start"), dir, {
        branch: "r1",
        step: coldSteps,
        seedOffset: 3,
      }),
    })),
  );
  points.push(
    ...await stage(run, "r1-rejection-sft", async (dir) => {
      const model = await load(run, "r1-grpo");
      const problems = mixedProblems(
        spec,
        n(spec.rejection.questions),
        6_000_000 + seed,
        ctx.budget,
      );
      const kept = await correctSamples(
        run,
        model,
        problems,
        spec.rejection.samples,
        1,
        seed * 1000 + 30,
      );
      if (kept.length === 0) {
        // nothing correct to learn from: keep the RL model (said in the log and done.json)
        await saveModel(`${dir}/model`, model);
        return {
          points: [
            await evalPoint(run, model, { branch: "r1", stage: "rejection-sft", step: rlSteps }),
          ],
          extra: { kept: 0 },
        };
      }
      const pts = await sftStage(run, model, kept, dir, {
        branch: "r1",
        stage: "rejection-sft",
        step: rlSteps,
        steps: n(spec.rejection.steps),
        lr: spec.rejection.lr ?? 1e-3,
        seedOffset: 4,
      });
      return {
        points: pts,
        extra: { kept: kept.length, sampled: problems.length * spec.rejection.samples },
      };
    }),
  );
  // (c) distillation into a smaller student
  if (!want("distill")) return points;
  const studentConfig = taskConfig(spec.student, tok);
  points.push(
    ...await stage(run, "student-base", async (dir) => {
      const model = await pretrain(run, studentConfig, dir, 7);
      return {
        points: [
          await evalPoint(run, model, { branch: "distill", stage: "student-base", step: 0 }),
        ],
      };
    }),
  );
  points.push(
    ...await stage(run, "distill", async (dir) => {
      const teacher = await load(run, "r1-rejection-sft");
      const problems = mixedProblems(spec, n(spec.distill.questions), 7_000_000 + seed, ctx.budget);
      const kept = await correctSamples(run, teacher, problems, 1, 0, seed);
      const student = await load(run, "student-base");
      if (kept.length === 0) {
        await saveModel(`${dir}/model`, student);
        return {
          points: [await evalPoint(run, student, { branch: "distill", stage: "distill", step: 0 })],
          extra: { kept: 0 },
        };
      }
      const pts = await sftStage(run, student, kept, dir, {
        branch: "distill",
        stage: "distill",
        step: 0,
        steps: n(spec.distill.steps),
        lr: spec.distill.lr ?? 2e-3,
        seedOffset: 5,
      });
      return { points: pts, extra: { kept: kept.length, teacherQuestions: problems.length } };
    }),
  );
  return points;
}
