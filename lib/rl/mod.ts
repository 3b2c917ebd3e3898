/**
 * DeepSeek-R1 at toy scale: rule-checked arithmetic tasks and their tokenizer (`tasks.ts`),
 * rule rewards (`rewards.ts`), batched sampling, SFT and evaluation of a policy (`policy.ts`),
 * GRPO (`grpo.ts`), and the R1 pipeline as a suite study — its settings (`options.ts`), stages
 * (`stages.ts`), results and charts (`charts.ts`) and declaration (`pipeline.ts`).
 *
 * ```ts
 * import { model } from "../dsl/mod.ts";
 * import { r1Pipeline } from "./mod.ts";
 * const policy = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 48 });
 * const r1 = r1Pipeline({
 *   name: "r1", tasks: ["addition"], policy, student: policy,
 *   pretrain: { lines: 100, steps: 10 }, coldStart: { examples: 10, steps: 5 },
 *   grpo: { rounds: 2 }, rejection: { questions: 4, samples: 2, steps: 2 },
 *   distill: { questions: 4, steps: 2 }, eval: { questions: 8, every: 1 }, seeds: [0],
 * }); // a study: `EXPERIMENTS` runs it with `--only r1`
 * ```
 *
 * @module
 */

export * from "./tasks.ts";
export * from "./rewards.ts";
export * from "./policy.ts";
export * from "./grpo.ts";
export * from "./options.ts";
export * from "./stages.ts";
export * from "./charts.ts";
export * from "./pipeline.ts";
