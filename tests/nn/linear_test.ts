import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { countParameters, Linear, linear, parameterMap } from "../../lib/nn/mod.ts";
import { mean, randn, Rng, square, tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp } from "../_utils.ts";
import { checkFixtureCase, loadFixture } from "./_fixtures.ts";

const fixture = loadFixture("linear");

for (const c of fixture.cases) {
  Deno.test(`linear() matches PyTorch F.linear forward and gradients (${c.name})`, () => {
    checkFixtureCase(fixture, c, ({ x, weight, bias }) => linear(x, weight, { bias }));
  });
}

Deno.test("linear() computes x Wᵀ + b with W stored [out, in]", () => {
  const w = tensor([[1, 2, 3], [0, -1, 1]]); // [2, 3]
  assertAllClose(linear(tensor([[1, 1, 2]]), w), [[9, 1]]);
  assertAllClose(linear(tensor([[1, 1, 2]]), w, { bias: tensor([1, -1]) }), [[10, 0]]);
  throws(() => linear(tensor([[1, 2]]), w), /Cannot apply a linear layer of weight \[2, 3\]/);
});

Deno.test("gradcheck: linear with and without bias, 3-d input", () => {
  checkOp([[2, 3, 4], [5, 4]], (x, w) => linear(x, w));
  checkOp([[2, 3, 4], [5, 4], [5]], (x, w, b) => linear(x, w, { bias: b }));
});

Deno.test("Linear is seeded, [out, in], N(0, initStd²), zero bias, HF parameter names", () => {
  const a = new Linear({ inFeatures: 64, outFeatures: 32, bias: true }, new Rng(3));
  const b = new Linear({ inFeatures: 64, outFeatures: 32, bias: true }, new Rng(3));
  deepStrictEqual(a.weight.shape, [32, 64]);
  deepStrictEqual(a.weight.dataSync(), b.weight.dataSync());
  strictEqual(a.weight.requiresGrad, true);
  const std = Math.sqrt(mean(square(a.weight)).itemSync());
  strictEqual(Math.abs(std - 0.02) < 0.002, true, `std ${std}`);
  assertAllClose(a.bias ?? 1, new Array(32).fill(0));
  deepStrictEqual([...a.parameters().keys()], ["weight", "bias"]);
  strictEqual(countParameters(a), 32 * 64 + 32);
  const c = new Linear({ inFeatures: 4, outFeatures: 2, initStd: 0.5 }, new Rng(0));
  strictEqual(c.bias, null);
  deepStrictEqual([...parameterMap({ "model.layers.0.self_attn.o_proj": c }).keys()], [
    "model.layers.0.self_attn.o_proj.weight",
  ]);
  deepStrictEqual(c.forward(randn([3, 4], { rng: new Rng(1) })).shape, [3, 2]);
});
