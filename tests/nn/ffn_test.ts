import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { withFp8 } from "../../lib/fp8/linear.ts";
import { fp8MatmulTensor, quantizeFp8Tensor } from "../../lib/fp8/ops.ts";
import { countParameters, SwiGlu, swiglu } from "../../lib/nn/mod.ts";
import { randn, Rng, swigluGate, type Tensor, transpose } from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp } from "../_utils.ts";
import { checkFixtureCase, loadFixture } from "./_fixtures.ts";

const fixture = loadFixture("ffn");

for (const c of fixture.cases) {
  Deno.test(`swiglu() matches PyTorch W2 (silu(W1 x) ⊙ W3 x) and gradients (${c.name})`, () => {
    checkFixtureCase(
      fixture,
      c,
      (p) => swiglu(p.x, { gateProj: p.gate_proj, upProj: p.up_proj, downProj: p.down_proj }),
    );
  });
}

Deno.test("gradcheck: swiglu w.r.t. x, W1, W3, W2", () => {
  checkOp(
    [[2, 2, 3], [5, 3], [5, 3], [3, 5]],
    (x, w1, w3, w2) => swiglu(x, { gateProj: w1, upProj: w3, downProj: w2 }),
  );
});

Deno.test("SwiGlu has seeded HF-named weights of the right shapes and applies them", () => {
  const ffn = new SwiGlu({ dModel: 6, hidden: 10 }, new Rng(5));
  const shapes = [...ffn.parameters()].map(([k, t]) => [k, t.shape]);
  deepStrictEqual(shapes, [
    ["gate_proj.weight", [10, 6]],
    ["up_proj.weight", [10, 6]],
    ["down_proj.weight", [6, 10]],
  ]);
  strictEqual(countParameters(ffn), 3 * 60);
  const again = new SwiGlu({ dModel: 6, hidden: 10 }, new Rng(5));
  deepStrictEqual(again.downProj.weight.dataSync(), ffn.downProj.weight.dataSync());
  const x = randn([2, 6], { rng: new Rng(6) });
  const w = {
    gateProj: ffn.gateProj.weight,
    upProj: ffn.upProj.weight,
    downProj: ffn.downProj.weight,
  };
  assertAllClose(ffn.forward(x), swiglu(x, w));
});

Deno.test("SwiGlu inside withFp8() runs W1, W3 and W2 as FP8 GEMMs of hand-quantised operands", () => {
  const rng = new Rng(7);
  const ffn = new SwiGlu({ dModel: 160, hidden: 136 }, rng); // K > 128: two tiles per row
  const x = randn([5, 160], { rng });
  const spec = { granularity: "tile", promotion: 64, accumulatorBits: 12 } as const;
  const got = Float32Array.from(withFp8(spec, () => ffn.forward(x)).dataSync());
  // V3 §3.3: activations in 1×128 tiles, weights in 128×128 blocks, 12-bit sums promoted every 64
  const gemm = (a: Tensor, w: Tensor) =>
    fp8MatmulTensor(
      quantizeFp8Tensor(a, { granularity: "tile" }),
      quantizeFp8Tensor(transpose(w), { granularity: "block" }),
      { accumulatorBits: 12, promotionInterval: 64 },
    );
  const h = swigluGate(gemm(x, ffn.gateProj.weight), gemm(x, ffn.upProj.weight));
  deepStrictEqual(got, Float32Array.from(gemm(h, ffn.downProj.weight).dataSync()));
  const fp32 = ffn.forward(x).dataSync();
  ok(got.some((v, i) => Math.abs(v - fp32[i]) > 1e-3 * Math.abs(fp32[i])), "FP8 must change y");
});
