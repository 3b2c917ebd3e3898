/**
 * Settings every experiment of the suite shares, so their numbers compare across experiments:
 * the training budgets and the seeds.
 *
 * @module
 */

import type { TrainSpec } from "../lib/dsl/mod.ts";

/** `small`: the quick look the README's main command runs (40 steps of 16 × 64 bytes);
 * `full`: the documented setting for claims (50× the tokens). */
export const SUITE_TRAIN: TrainSpec = {
  tokens: 2_000_000,
  batch: 16,
  lr: 3e-3,
  warmup: 50,
  budgets: { small: { tokens: 40_960, warmup: 5 } },
};

/** Seeds of every experiment (mean ± 95% CI over them). */
export const SUITE_SEEDS: readonly number[] = [0, 1, 2];
