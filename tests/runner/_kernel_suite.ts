/**
 * The experiments of the kernel test (tests/runner/jupyter_kernel_test.ts): `trained` is run by
 * the command line first (`deno run tests/runner/_kernel_suite.ts --out DIR`, from the
 * repository root), then planned again inside the kernel; `live` trains in the kernel, long
 * enough to be interrupted and resumed.
 *
 * @module
 */
import { brown, experiment, gqa, main, model } from "../../mod.ts";

const base = model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 });

/** Two tiny runs the CLI trains before the kernel starts. */
export const trained = experiment({
  name: "kernel-trained",
  base,
  vary: { mha: {}, gqa: { attention: gqa({ kvHeads: 1 }) } },
  data: brown(),
  train: { tokens: 1024, batch: 4, lr: 3e-3, budgets: { small: { tokens: 256 } } },
  eval: ["valLoss"],
  seeds: [0],
});

/** One run of 400 steps with a checkpoint every 10, trained (and interrupted) in the kernel. */
export const live = experiment({
  name: "kernel-live",
  base: model({ vocab: "bytes", dModel: 32, layers: 2, heads: 2, seqLen: 32 }),
  vary: { mha: {} },
  data: brown(),
  train: {
    tokens: 400 * 4 * 32,
    batch: 4,
    lr: 3e-3,
    checkpointEvery: 10,
    budgets: { small: { tokens: 400 * 4 * 32 } },
  },
  eval: ["valLoss"],
  seeds: [0],
});

if (import.meta.main) Deno.exit(await main(Deno.args, [trained], { scriptUrl: import.meta.url }));
