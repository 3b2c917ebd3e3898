/**
 * Training: the loop the runner drives (`train`: 1) batches  2) forward + backward with gradient
 * accumulation  3) clip  4) schedule + AdamW  5) model hooks  6) metrics  7) checkpoints; a
 * resumed run reproduces an uninterrupted one bit for bit), AdamW with decoupled weight decay and
 * its parameter groups, the warmup + cosine schedule, global-norm clipping, and atomic
 * checkpoints (weights, optimizer and RNG state).
 *
 * ```ts
 * import { mul, sum, tensor } from "../tensor/mod.ts";
 * import { AdamW, cosineSchedule } from "./mod.ts";
 * const w = tensor([1, -1], { requiresGrad: true });
 * const opt = new AdamW([w], { lr: cosineSchedule(0, { lr: 0.01, warmup: 10, totalSteps: 100 }) });
 * sum(mul(w, w)).backward(); opt.step(); opt.zeroGrad();
 * ```
 *
 * @module
 */

export * from "./trainer.ts";
export * from "./optim.ts";
export * from "./schedule.ts";
export * from "./clip.ts";
export * from "./checkpoint.ts";
