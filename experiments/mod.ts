/**
 * The ablation suite: every experiment `deno task experiments` runs, in order.
 *
 * @module
 */

import type { Experiment } from "../lib/dsl/mod.ts";
import { attention } from "./attention.ts";
import { fp8Training } from "./fp8.ts";
import { moeBalance } from "./moe_balance.ts";
import { mtpDepth } from "./mtp.ts";

/** The experiments of the suite, in the order they run. */
export const EXPERIMENTS: readonly Experiment[] = [attention, moeBalance, mtpDepth, fp8Training];
