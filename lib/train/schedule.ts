/**
 * Learning-rate schedule: 1) linear warmup from 0  2) cosine decay  3) floor at `minLr`.
 *
 * `lr(t) = lr · (t + 1) / warmup` for `t < warmup` (no step is taken at lr 0), then
 * `minLr + (lr − minLr) · (1 + cos(π · progress)) / 2` with `progress` going 0 → 1 over the
 * remaining steps; `minLr` after the last step.
 *
 * @module
 */

/** Parameters of {@linkcode cosineSchedule}. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Final learning rate. @default {lr / 10} */
  minLr?: number;
  /** Warmup steps. @default {0} */
  warmup?: number;
  /** Total optimizer steps. */
  totalSteps: number;
}

/**
 * The learning rate at optimizer step `step` (0-based).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { cosineSchedule } from "./schedule.ts";
 * const o = { lr: 1, minLr: 0, warmup: 10, totalSteps: 110 };
 * strictEqual(cosineSchedule(4, o), 0.5);
 * strictEqual(cosineSchedule(10, o), 1);
 * strictEqual(cosineSchedule(60, o), 0.5);
 * strictEqual(cosineSchedule(200, o), 0);
 * ```
 */
export function cosineSchedule(step: number, options: ScheduleOptions): number {
  const { lr, totalSteps } = options;
  const minLr = options.minLr ?? lr / 10;
  const warmup = options.warmup ?? 0;
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (step >= totalSteps) return minLr;
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  return minLr + ((lr - minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
}
