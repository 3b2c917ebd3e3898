/**
 * ablate: compose DeepSeek-V3 building blocks into small language models, train them on WebGPU
 * or the CPU, and compare ablations.
 *
 * This entry point grows with the project (DSL, runner, reports). Today it exports the tensor
 * core, its backends and seeded randomness.
 *
 * ```ts
 * import { matmul, randn, Rng, sum } from "./mod.ts";
 * const x = randn([2, 3], { rng: new Rng(0), requiresGrad: true });
 * sum(matmul(x, randn([3, 1], { rng: new Rng(1) }))).backward();
 * console.assert(x.grad?.shape.join() === "2,3");
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
