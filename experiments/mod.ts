/**
 * The ablation suite: every experiment `deno task experiments` runs, in order.
 *
 * @module
 */

import type { Experiment } from "../lib/dsl/mod.ts";
import { attention } from "./attention.ts";

/** The experiments of the suite. TODO(#10): moe-balance, mtp, fp8. */
export const EXPERIMENTS: readonly Experiment[] = [attention];
