/**
 * Prints the suite's runs at the small budget as `deno task experiments` plans them from the
 * repository root (its permissions, backend `auto`): one JSON array of
 * `{ experiment, variant, seed, id, model, train }`. The notebook test writes a store with these
 * ids, then checks that the notebooks, planning the same runs from `notebooks/` inside the Deno
 * kernel, find every one of them done.
 *
 * @module
 */
import { planSuite } from "../../lib/runner/experiments.ts";
import { EXPERIMENTS } from "../../experiments/mod.ts";

if (import.meta.main) {
  const suite = await planSuite(EXPERIMENTS, { budget: "small", backend: "auto" });
  (suite.backend as { close?: () => void }).close?.();
  console.log(JSON.stringify(suite.plans.map((p) => ({
    experiment: p.experiment,
    variant: p.variant,
    seed: p.seed,
    id: p.id,
    model: p.model,
    train: p.train,
  }))));
}
