/**
 * The ablation suite: every experiment `deno task experiments` runs, in order.
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

/** The experiments (and studies) of the suite, in the order they run. */
export const EXPERIMENTS: readonly SuiteEntry[] = [
  attention,
  moeBalance,
  mtpDepth,
  fp8Training,
  parallelism,
  r1,
];
