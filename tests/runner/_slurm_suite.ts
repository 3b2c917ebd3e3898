/**
 * Entry of the Slurm tests' array tasks: the CLI over a tiny sweep and a
 * longer one (`long`: 384 steps, a checkpoint every 16) that can be cancelled mid-run.
 */
import { brown, experiment, model } from "../../lib/dsl/mod.ts";
import { main } from "../../lib/runner/cli.ts";
import { TINY_EXPERIMENT } from "../_fixtures.ts";

/** The same tiny sweep as cli_test.ts's (2 variants × 2 seeds, 16 steps at the small budget). */
export const tiny = TINY_EXPERIMENT;

export const long = experiment({
  name: "long",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { base: {} },
  data: brown(),
  train: { tokens: 24_576, batch: 4, lr: 3e-3, checkpointEvery: 16 },
  eval: ["valLoss"],
  seeds: [0],
});

export const SLURM_SUITE = [tiny, long];

if (import.meta.main) {
  Deno.exit(await main(Deno.args, SLURM_SUITE, { scriptUrl: import.meta.url }));
}
