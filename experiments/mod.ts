/**
 * The ablation suite: every experiment `deno task experiments` runs, in order.
 *
 * @module
 */

import type { Experiment } from "../lib/dsl/mod.ts";
import { attention } from "./attention.ts";
import { moeBalance } from "./moe_balance.ts";
import { mtpDepth } from "./mtp.ts";

/** The experiments of the suite. TODO(#10): fp8 (needs FP8 training, #7). */
export const EXPERIMENTS: readonly Experiment[] = [attention, moeBalance, mtpDepth];
