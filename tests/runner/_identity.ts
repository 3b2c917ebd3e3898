/**
 * Subprocess entry for the run-identity tests: plan a tiny experiment on the cpu backend and
 * print its run ids and the hashed source files as one JSON line.
 */
import { brown, experiment, model } from "../../lib/dsl/mod.ts";
import { planSuite } from "../../lib/runner/experiments.ts";

const tiny = experiment({
  name: "tiny",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { a: {} },
  data: brown(),
  train: { tokens: 1024, batch: 4, lr: 3e-3 },
  seeds: [0, 1],
});
const suite = await planSuite([tiny], { backend: "cpu" });
console.log(JSON.stringify({
  ids: suite.plans.map((p) => p.id),
  identity: suite.plans[0].identity,
}));
