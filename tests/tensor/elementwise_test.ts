import { deepStrictEqual, throws } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, F64, gradOf } from "../_utils.ts";

const X = [-2.5, -1, -0.5, 0, 0.5, 1, 2.5];

Deno.test("unary ops match closed-form references", () => {
  const x = T.tensor(X);
  const cases: [string, (t: T.Tensor) => T.Tensor, (v: number) => number][] = [
    ["neg", T.neg, (v) => -v],
    ["abs", T.abs, Math.abs],
    ["exp", T.exp, Math.exp],
    ["square", T.square, (v) => v * v],
    ["sin", T.sin, Math.sin],
    ["cos", T.cos, Math.cos],
    ["tanh", T.tanh, Math.tanh],
    ["sigmoid", T.sigmoid, (v) => 1 / (1 + Math.exp(-v))],
    ["relu", T.relu, (v) => Math.max(v, 0)],
    ["silu", T.silu, (v) => v / (1 + Math.exp(-v))],
    ["sign", T.sign, Math.sign],
    ["floor", T.floor, Math.floor],
  ];
  for (const [name, op, ref] of cases) {
    assertAllClose(op(x), X.map(ref), { atol: 1e-6, message: name });
  }
  const pos = T.tensor([0.25, 1, 4]);
  assertAllClose(T.log(pos), [Math.log(0.25), 0, Math.log(4)]);
  assertAllClose(T.sqrt(pos), [0.5, 1, 2]);
  assertAllClose(T.rsqrt(pos), [2, 1, 0.5]);
  assertAllClose(T.reciprocal(pos), [4, 1, 0.25]);
});

Deno.test("gelu() matches the exact erf form (values from x·Φ(x) tables)", () => {
  // Φ(1) = 0.8413447460685429, Φ(0.5) = 0.6914624612740131, Φ(2) = 0.9772498680518208
  const x = T.tensor([1, -1, 0.5, 2, 0]);
  assertAllClose(T.gelu(x), [
    0.8413447460685429,
    -0.15865525393145707,
    0.34573123063700656,
    1.9544997361036416,
    0,
  ], { atol: 2e-7 });
});

Deno.test("round() rounds half to even", () => {
  assertAllClose(T.round(T.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6])), [
    0,
    2,
    2,
    -0,
    -2,
    2,
    -3,
  ]);
});

Deno.test("binary ops broadcast like NumPy", () => {
  const a = T.tensor([[1], [2], [3]]); // [3, 1]
  const b = T.tensor([10, 20]); // [2]
  const s = T.add(a, b);
  deepStrictEqual(s.shape, [3, 2]);
  assertAllClose(s, [11, 21, 12, 22, 13, 23]);
  assertAllClose(T.sub(a, b), [-9, -19, -8, -18, -7, -17]);
  assertAllClose(T.mul(a, b), [10, 20, 20, 40, 30, 60]);
  assertAllClose(T.div(b, a), [10, 20, 5, 10, 10 / 3, 20 / 3]);
  assertAllClose(T.pow(a, T.tensor([2, 0.5])), [1, 1, 4, Math.SQRT2, 9, Math.sqrt(3)]);
  assertAllClose(T.maximum(T.tensor([1, 5, 3]), 3), [3, 5, 3]);
  assertAllClose(T.minimum(T.tensor([1, 5, 3]), 3), [1, 3, 3]);
  assertAllClose(T.add(2, T.tensor([1, 2])), [3, 4]);
});

Deno.test("comparisons return f32 masks without gradient", () => {
  const x = T.tensor([1, 2, 3], { requiresGrad: true });
  const m = T.gt(x, 2);
  deepStrictEqual(m.dtype, "f32");
  deepStrictEqual(m.requiresGrad, false);
  assertAllClose(m, [0, 0, 1]);
  assertAllClose(T.eq(x, 2), [0, 1, 0]);
  assertAllClose(T.ne(x, 2), [1, 0, 1]);
  assertAllClose(T.lt(x, 2), [1, 0, 0]);
  assertAllClose(T.le(x, 2), [1, 1, 0]);
  assertAllClose(T.ge(x, 2), [0, 1, 1]);
});

Deno.test("integer tensors support arithmetic and truncating division", () => {
  const a = T.tensor([7, -7, 9], { dtype: "i32" });
  const q = T.div(a, 2);
  deepStrictEqual(q.dtype, "i32");
  deepStrictEqual(Array.from(q.dataSync()), [3, -3, 4]);
  deepStrictEqual(Array.from(T.add(a, 1).dataSync()), [8, -6, 10]);
});

Deno.test("binary ops name the op and both shapes on mismatch", () => {
  throws(
    () => T.add(T.zeros([2, 3]), T.zeros([4, 3])),
    /Cannot add shapes \[2, 3\] and \[4, 3\]: dimension 0 is 2 vs 4/,
  );
  throws(() => T.mul(T.zeros([2]), T.zeros([3])), /Cannot multiply shapes \[2\] and \[3\]/);
  throws(
    () => T.add(T.zeros([2]), T.zeros([2], { dtype: "i32" })),
    /Cannot add tensors of dtypes 'f32' and 'i32'/,
  );
  throws(
    () => T.exp(T.zeros([2], { dtype: "i32" })),
    /Cannot apply 'exp' to a tensor of dtype 'i32': expected 'f32'/,
  );
});

Deno.test("where() selects with broadcasting and routes gradients to the chosen side", () => {
  const cond = T.tensor([1, 0, 1]);
  assertAllClose(T.where(cond, T.tensor([1, 2, 3]), -1), [1, -1, 3]);
  checkOp([[2, 3], [3]], (a, b) => T.where(T.tensor([[1, 0, 1], [0, 0, 1]]), a, b));
});

Deno.test("cast() truncates toward zero and wraps u8 modulo 256", () => {
  const x = T.tensor([1.9, -1.9, 300, -1]);
  deepStrictEqual(Array.from(T.cast(x, "i32").dataSync()), [1, -1, 300, -1]);
  deepStrictEqual(Array.from(T.cast(x, "u8").dataSync()), [1, 255, 44, 255]);
  deepStrictEqual(Array.from(T.cast(T.tensor([3, 4], { dtype: "i32" }), "f32").dataSync()), [3, 4]);
});

// Gradient checks: every differentiable elementwise op, incl. broadcasting on both sides.
const positive = (x: number) => Math.abs(x) + 0.5;
const awayFromZero = (x: number) => (x >= 0 ? x + 0.2 : x - 0.2);

Deno.test("gradcheck: neg, exp, square, sin, cos, tanh, sigmoid, silu, gelu", () => {
  for (const op of [T.neg, T.exp, T.square, T.sin, T.cos, T.tanh, T.sigmoid, T.silu, T.gelu]) {
    checkOp([[3, 4]], op, { gradAtol: 1e-5 });
  }
});

Deno.test("gradcheck: log, sqrt, rsqrt, reciprocal on positive inputs", () => {
  for (const op of [T.log, T.sqrt, T.rsqrt, T.reciprocal]) {
    checkOp([[3, 4]], op, { transform: positive, gradAtol: 1e-5 });
  }
});

Deno.test("gradcheck: abs and relu away from the kink", () => {
  checkOp([[3, 4]], T.abs, { transform: awayFromZero });
  checkOp([[3, 4]], T.relu, { transform: awayFromZero });
});

Deno.test("gradcheck: add, sub, mul, div with broadcasting on both operands", () => {
  const shapes: [number[], number[]][] = [[[2, 3], [2, 3]], [[2, 1, 4], [3, 1]], [[4], [2, 3, 4]], [
    [],
    [2, 2],
  ]];
  for (const [sa, sb] of shapes) {
    checkOp([sa, sb], T.add);
    checkOp([sa, sb], T.sub);
    checkOp([sa, sb], T.mul);
    checkOp([sa, sb], T.div, { transform: (x, i) => (i === 1 ? positive(x) : x), gradAtol: 1e-5 });
  }
});

Deno.test("gradcheck: pow in base and exponent", () => {
  checkOp([[2, 3], [3]], T.pow, {
    transform: (x, i) => (i === 0 ? positive(x) : x),
    gradAtol: 1e-5,
  });
});

Deno.test("gradcheck: maximum and minimum without ties", () => {
  checkOp([[3, 4], [4]], T.maximum);
  checkOp([[3, 4], [4]], T.minimum);
});

Deno.test("maximum() splits the gradient at ties", () => {
  const a = T.tensor([1, 2], { requiresGrad: true }), b = T.tensor([1, 3], { requiresGrad: true });
  T.sum(T.maximum(a, b)).backward();
  assertAllClose(gradOf(a), [0.5, 0]);
  assertAllClose(gradOf(b), [0.5, 1]);
});

Deno.test("gradcheck runs in float64", () => {
  deepStrictEqual(T.tensor([1], { backend: F64 }).dataSync() instanceof Float64Array, true);
});
