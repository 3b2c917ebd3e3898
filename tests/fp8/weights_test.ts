import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { decodeFp8, E4M3, encodeFp8 } from "../../lib/fp8/format.ts";
import { withFp8 } from "../../lib/fp8/linear.ts";
import {
  dequantizeFp8Weight,
  fp8BlockWeight,
  fp8ScaleShape,
  fp8WeightLinear,
} from "../../lib/fp8/weights.ts";
import { SwiGlu } from "../../lib/nn/ffn.ts";
import { Linear } from "../../lib/nn/linear.ts";
import { matmul, randn, Rng, type Tensor, tensor, transpose } from "../../lib/tensor/mod.ts";
import { assertAllClose } from "../_utils.ts";

/** A [rows, cols] weight as E4M3 codes with 128×128 block scales, quantised here by hand. */
function quantise(w: Float32Array, rows: number, cols: number) {
  const [gr, gc] = [Math.ceil(rows / 128), Math.ceil(cols / 128)];
  const scales = new Float32Array(gr * gc), codes = new Uint8Array(rows * cols);
  for (let bi = 0; bi < gr; bi++) {
    for (let bj = 0; bj < gc; bj++) {
      let amax = 0;
      for (let r = bi * 128; r < Math.min(rows, bi * 128 + 128); r++) {
        for (let c = bj * 128; c < Math.min(cols, bj * 128 + 128); c++) {
          amax = Math.max(amax, Math.abs(w[r * cols + c]));
        }
      }
      const s = Math.fround(amax / 448);
      scales[bi * gc + bj] = s;
      for (let r = bi * 128; r < Math.min(rows, bi * 128 + 128); r++) {
        for (let c = bj * 128; c < Math.min(cols, bj * 128 + 128); c++) {
          codes[r * cols + c] = encodeFp8(Math.fround(w[r * cols + c] / s), E4M3);
        }
      }
    }
  }
  return { codes, scales, grid: [gr, gc] };
}

Deno.test("dequantizeFp8Weight() applies each 128×128 block's scale, partial edge blocks included", () => {
  const rows = 160, cols = 200;
  const w = Float32Array.from(randn([rows, cols], { rng: new Rng(1) }).dataSync());
  const { codes, scales, grid } = quantise(w, rows, cols);
  deepStrictEqual(fp8ScaleShape([rows, cols]), grid);
  const deq = dequantizeFp8Weight(
    tensor(codes, { shape: [rows, cols], dtype: "u8" }),
    tensor(scales, { shape: grid }),
  ).dataSync();
  for (const [r, c] of [[0, 0], [127, 127], [128, 0], [0, 128], [159, 199], [140, 150]]) {
    const s = scales[Math.floor(r / 128) * grid[1] + Math.floor(c / 128)];
    strictEqual(deq[r * cols + c], Math.fround(decodeFp8(codes[r * cols + c], E4M3) * s));
    ok(Math.abs(deq[r * cols + c] - w[r * cols + c]) <= Math.abs(w[r * cols + c]) / 16 + s);
  }
  throws(
    () => fp8BlockWeight(codes, new Float32Array(3), [rows, cols]),
    /Cannot scale a weight of shape \[160, 200\] with 3 block scales: expected \[2, 2\]/,
  );
});

Deno.test("fp8WeightLinear() with FP8 activations equals 1×128-tile act_quant then the product", () => {
  const rng = new Rng(2);
  const n = 5, din = 300, dout = 7;
  const w = Float32Array.from(randn([dout, din], { rng }).dataSync());
  const { codes, scales, grid } = quantise(w, dout, din);
  const codesT = tensor(codes, { shape: [dout, din], dtype: "u8" });
  const scalesT = tensor(scales, { shape: grid });
  const x = randn([1, n, din], { rng, std: 3 });
  // act_quant by hand: per row, per 128 columns, scale = max(amax, 1e-4) / 448
  const xs = x.dataSync(), xq = new Float32Array(n * din);
  for (let r = 0; r < n; r++) {
    for (let c0 = 0; c0 < din; c0 += 128) {
      let amax = 0;
      for (let c = c0; c < Math.min(din, c0 + 128); c++) {
        amax = Math.max(amax, Math.abs(xs[r * din + c]));
      }
      const s = Math.fround(Math.max(amax, 1e-4) / 448);
      for (let c = c0; c < Math.min(din, c0 + 128); c++) {
        const code = encodeFp8(Math.fround(xs[r * din + c] / s), E4M3);
        xq[r * din + c] = Math.fround(decodeFp8(code, E4M3) * s);
      }
    }
  }
  const wDeq = dequantizeFp8Weight(codesT, scalesT);
  const expected = matmul(tensor(xq, { shape: [1, n, din] }), transpose(wDeq));
  const spec = { granularity: "tile" } as const;
  assertAllClose(fp8WeightLinear(x, codesT, scalesT, spec), expected, { atol: 1e-5 });
  // without FP8 activations: the float32 product with the dequantised weight
  assertAllClose(fp8WeightLinear(x, codesT, scalesT, null), matmul(x, transpose(wDeq)), {
    atol: 1e-5,
  });
});

Deno.test("Linear and SwiGlu with held FP8 weights: forward through the codes, parameters name the scales", () => {
  const rng = new Rng(3);
  const ffn = new SwiGlu({ dModel: 8, hidden: 12 }, rng);
  const x = randn([2, 3, 8], { rng });
  const hold = (l: Linear): Tensor => {
    const w = Float32Array.from(l.weight.dataSync());
    const [rows, cols] = l.weight.shape;
    const q = quantise(w, rows, cols);
    l.weight = tensor(q.codes, { shape: [rows, cols], dtype: "u8" });
    l.weightScaleInv = tensor(q.scales, { shape: q.grid });
    return dequantizeFp8Weight(l.weight, l.weightScaleInv);
  };
  const deq = [hold(ffn.gateProj), hold(ffn.upProj), hold(ffn.downProj)];
  const reference = new SwiGlu({ dModel: 8, hidden: 12 }, new Rng(9));
  [reference.gateProj, reference.upProj, reference.downProj].forEach((l, i) =>
    l.weight.assign(deq[i])
  );
  assertAllClose(ffn.forward(x), reference.forward(x), { atol: 1e-6 });
  deepStrictEqual([...ffn.parameters().keys()], [
    "gate_proj.weight",
    "gate_proj.weight_scale_inv",
    "up_proj.weight",
    "up_proj.weight_scale_inv",
    "down_proj.weight",
    "down_proj.weight_scale_inv",
  ]);
  // inside withFp8 the activations are quantised: a different, close result
  const fp8 = withFp8({ granularity: "tile" }, () => ffn.forward(x)).dataSync();
  const plain = ffn.forward(x).dataSync();
  ok(fp8.some((v, i) => v !== plain[i]));
  assertAllClose(fp8, plain, { atol: 0.1, rtol: 0.1 });
});
