/**
 * The ablation suite: every experiment `deno task experiments` runs, in order, and each one by
 * name (with the helpers its notebook draws with, e.g. the parallelism study's tables).
 *
 * @module
 */

import type { SuiteEntry } from "../lib/runner/study.ts";
import { attention } from "./attention.ts";
import { fp8Training } from "./fp8.ts";
import { moeBalance } from "./moe_balance.ts";
import { mtpDepth } from "./mtp.ts";
import { parallelism } from "./parallelism.ts";
import { r1 } from "./r1.ts";

export * from "./_suite.ts";
export * from "./attention.ts";
export * from "./moe_balance.ts";
export * from "./mtp.ts";
export * from "./fp8.ts";
export * from "./parallelism.ts";
export * from "./r1.ts";

/** The experiments (and studies) of the suite, in the order they run. */
export const EXPERIMENTS: readonly SuiteEntry[] = [
  attention,
  moeBalance,
  mtpDepth,
  fp8Training,
  parallelism,
  r1,
];
