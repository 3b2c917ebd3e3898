/**
 * ablate: compose DeepSeek-V3 building blocks into small language models, train them on WebGPU
 * or the CPU, and compare ablations. One import gives a notebook everything: the tensor core and
 * backends, the experiment DSL, the runner (`runExperiments`, live in a notebook), the results
 * views and charts (`openResults`), the parallelism and RL (R1) views, and the suite itself
 * (`EXPERIMENTS`, each experiment by name).
 *
 * ```ts ignore
 * import { brown, experiment, mla, model, openResults, runExperiments } from "./mod.ts";
 * const base = model({ vocab: "bytes", dModel: 64, layers: 2, heads: 4, seqLen: 64 });
 * const mine = experiment({ name: "my-mla", base, vary: { mha: {}, mla: { attention: mla({ kvLatentRank: 16 }) } },
 *   data: brown(), train: { tokens: 40_960, batch: 16, lr: 3e-3 }, seeds: [0, 1] });
 * await runExperiments([mine]);                         // trains what is missing, skips the rest
 * (await openResults("../runs", "my-mla")).table();     // mean ± 95% CI over seeds
 * ```
 *
 * @module
 */

export * from "./lib/tensor/mod.ts";
export { assertAllClose, assertEquals } from "./lib/tensor/assert.ts";
export {
  type Backend,
  type BackendName,
  CpuBackend,
  getBackend,
  loadBackend,
  setBackend,
  withBackend,
} from "./lib/backend/mod.ts";
export * from "./lib/dsl/mod.ts";
export * from "./lib/runner/mod.ts";
export * from "./lib/report/mod.ts";
export * from "./lib/parallel/mod.ts";
export * from "./lib/rl/mod.ts";
// the suite (`EXPERIMENTS` and each experiment), so a notebook needs this one import
export * from "./experiments/mod.ts";
