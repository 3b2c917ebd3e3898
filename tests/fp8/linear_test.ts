import { ok, strictEqual } from "node:assert/strict";
import { fp8Linear, fp8RoundTrip, withFp8 } from "../../lib/fp8/linear.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { Linear } from "../../lib/nn/linear.ts";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, gradOf } from "../_utils.ts";

const E4M3_REL = 2 ** -4; // half an ulp of a 3-bit mantissa

Deno.test("fp8RoundTrip() lands every value on a scaled E4M3 grid point within half an ulp", () => {
  const x = T.randn([4, 256], { rng: new T.Rng(0) });
  const q = fp8RoundTrip(x, "tile").dataSync(), v = x.dataSync();
  for (let i = 0; i < v.length; i++) {
    ok(Math.abs(q[i] - v[i]) <= E4M3_REL * Math.abs(v[i]) + 1e-3, `${v[i]} -> ${q[i]}`);
  }
  ok(q.some((a, i) => a !== v[i]), "quantisation must change some values");
});

Deno.test("fp8Linear(): forward and both gradients equal FP32 GEMMs of the quantised operands", () => {
  const rng = new T.Rng(1);
  const x = T.randn([6, 130], { rng, requiresGrad: true }),
    w = T.randn([5, 130], { rng, requiresGrad: true });
  const y = fp8Linear(x, w, { granularity: "tile" });
  const dy = T.randn([6, 5], { rng });
  y.backward(dy);
  const xq = fp8RoundTrip(x.detach(), "tile"), wq = fp8RoundTrip(w.detach(), "block");
  const dyq = fp8RoundTrip(dy, "tile");
  assertAllClose(y, T.matmul(xq, T.transpose(wq)), { atol: 1e-5 });
  assertAllClose(gradOf(x), T.matmul(dyq, wq), { atol: 1e-5 });
  assertAllClose(gradOf(w), T.matmul(T.transpose(dyq), xq), { atol: 1e-5 });
});

Deno.test("Linear runs in FP8 inside withFp8() unless exempt", () => {
  const rng = new T.Rng(2);
  const layer = new Linear({ inFeatures: 64, outFeatures: 8 }, rng);
  const x = T.randn([3, 64], { rng });
  const full = layer.forward(x).dataSync();
  const fp8 = withFp8({ granularity: "tensor" }, () => layer.forward(x)).dataSync();
  ok(fp8.some((v, i) => v !== full[i]));
  layer.fp8Exempt = true;
  assertAllClose(withFp8({ granularity: "tensor" }, () => layer.forward(x)), full);
});

Deno.test("Decoder with fp8 stays within 1% of the FP32 loss and keeps the output head in FP32", () => {
  const ids = T.tensor([[1, 2, 3, 4, 5, 6]], { dtype: "i32" }),
    targets = T.tensor([[2, 3, 4, 5, 6, 7]], { dtype: "i32" });
  const base = tinyConfig({ dModel: 32, heads: 2 });
  const fp32 = new Decoder(base, new T.Rng(0)).loss(ids, targets).loss.itemSync();
  const model8 = new Decoder({
    ...base,
    fp8: { granularity: "tile", promotion: 128, accumulatorBits: 14 },
  }, new T.Rng(0));
  const fp8 = model8.loss(ids, targets).loss.itemSync();
  ok(fp8 !== fp32 && Math.abs(fp8 - fp32) / fp32 < 0.01, `fp32 ${fp32} fp8 ${fp8}`);
  strictEqual(model8.lmHead.fp8Exempt, true);
});
