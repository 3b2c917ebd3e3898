/**
 * Training: optimizers (more to come with the training issue: schedules, checkpoints, runner).
 *
 * ```ts
 * import { mul, sum, tensor } from "../tensor/mod.ts";
 * import { AdamW } from "./mod.ts";
 * const w = tensor([1, -1], { requiresGrad: true });
 * const opt = new AdamW([w], { lr: 0.01 });
 * sum(mul(w, w)).backward(); opt.step(); opt.zeroGrad();
 * ```
 *
 * @module
 */

export * from "./optim.ts";
