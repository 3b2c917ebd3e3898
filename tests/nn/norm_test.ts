import { deepStrictEqual, throws } from "node:assert/strict";
import { RmsNorm, rmsNorm } from "../../lib/nn/mod.ts";
import { mean, ones, randn, Rng, square, tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp } from "../_utils.ts";
import { checkFixtureCase, loadFixture } from "./_fixtures.ts";

const fixture = loadFixture("norm");

for (const c of fixture.cases) {
  Deno.test(`rmsNorm() matches PyTorch forward and gradients (${c.name})`, () => {
    const eps = c.eps as number;
    checkFixtureCase(fixture, c, ({ x, weight }) => rmsNorm(x, weight, { eps }));
  });
}

Deno.test("rmsNorm() gives unit root-mean-square rows, scaled by the gain", () => {
  const x = randn([3, 16], { rng: new Rng(0), std: 5 });
  assertAllClose(mean(square(rmsNorm(x, ones([16]), { eps: 0 })), -1), [1, 1, 1], { atol: 1e-5 });
  // Scale invariance: RMSNorm(c x) = RMSNorm(x) for c > 0 (eps negligible).
  const g = randn([16], { rng: new Rng(1) });
  assertAllClose(
    rmsNorm(x.detach(), g),
    rmsNorm(tensor(Array.from(x.dataSync()).map((v) => 3 * v), { shape: [3, 16] }), g),
    { atol: 1e-5 },
  );
  throws(() => rmsNorm(x, ones([8])), /Cannot apply RMSNorm of weight \[8\] to input \[3, 16\]/);
});

Deno.test("gradcheck: rmsNorm over the last axis (x and gain), default and large eps", () => {
  checkOp([[2, 3, 6], [6]], (x, g) => rmsNorm(x, g));
  checkOp([[4, 5], [5]], (x, g) => rmsNorm(x, g, { eps: 0.5 }));
});

Deno.test("RmsNorm starts at g = 1 with eps 1e-6 and names its gain weight", () => {
  const norm = new RmsNorm({ dim: 4 });
  deepStrictEqual(norm.config.eps, 1e-6);
  assertAllClose(norm.weight, [1, 1, 1, 1]);
  deepStrictEqual([...norm.parameters().keys()], ["weight"]);
  assertAllClose(norm.forward(tensor([[2, 2, 2, 2]])), [[1, 1, 1, 1]], { atol: 1e-6 });
});
