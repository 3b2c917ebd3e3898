import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp } from "../_utils.ts";

Deno.test("reshape() of a contiguous tensor is a view; of a transposed one, a copy", () => {
  const x = T.arange(6);
  const r = T.reshape(x, [2, 3]);
  strictEqual(r.storage, x.storage);
  const t = T.transpose(r);
  deepStrictEqual(t.shape, [3, 2]);
  strictEqual(t.storage, x.storage);
  const flat = T.reshape(t, [-1]);
  assertAllClose(flat, [0, 3, 1, 4, 2, 5]);
  throws(
    () => T.reshape(x, [4, 2]),
    /Cannot reshape \[6\] \(6 elements\) to \[4, 2\] \(8 elements\)/,
  );
  throws(() => T.reshape(x, [-1, -1]), /Cannot reshape \[6\] to \[-1, -1\]/);
});

Deno.test("permute() reorders axes and rejects non-permutations", () => {
  const x = T.reshape(T.arange(24), [2, 3, 4]);
  const p = T.permute(x, [2, 0, 1]);
  deepStrictEqual(p.shape, [4, 2, 3]);
  // p[i, j, k] = x[j, k, i] = 12 j + 4 k + i
  const data = p.dataSync();
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 2; j++) {
      for (let k = 0; k < 3; k++) strictEqual(data[i * 6 + j * 3 + k], 12 * j + 4 * k + i);
    }
  }
  throws(() => T.permute(x, [0, 0, 1]), /expected a permutation of 3 axes/);
});

Deno.test("slice() takes a window, with negative bounds", () => {
  const x = T.reshape(T.arange(12), [3, 4]);
  assertAllClose(T.slice(x, 1, 1, 3), [1, 2, 5, 6, 9, 10]);
  assertAllClose(T.slice(x, 0, -1), [8, 9, 10, 11]);
  deepStrictEqual(T.slice(x, 0, 2, 1).shape, [0, 4]);
});

Deno.test("expand() broadcasts without copying", () => {
  const x = T.tensor([[1], [2]]);
  const e = T.expand(x, [2, 3]);
  strictEqual(e.storage, x.storage);
  assertAllClose(e, [1, 1, 1, 2, 2, 2]);
  throws(() => T.expand(T.zeros([2]), [3]), /Cannot broadcast shape \[2\] to \[3\]/);
});

Deno.test("concat() and split() are inverse", () => {
  const a = T.reshape(T.arange(6), [2, 3]), b = T.reshape(T.arange(6, 10), [2, 2]);
  const c = T.concat([a, b], 1);
  deepStrictEqual(c.shape, [2, 5]);
  assertAllClose(c, [0, 1, 2, 6, 7, 3, 4, 5, 8, 9]);
  const [a2, b2] = T.split(c, [3, 2], 1);
  assertAllClose(a2, a);
  assertAllClose(b2, b);
  deepStrictEqual(T.split(T.arange(6), 3).map((t) => t.size), [2, 2, 2]);
  throws(
    () => T.concat([a, T.zeros([3, 3])], 1),
    /Cannot concat shapes \[2, 3\] and \[3, 3\] along axis 1/,
  );
  throws(() => T.split(T.arange(5), [2, 2]), /they must sum to 5/);
});

Deno.test("squeeze() and unsqueeze()", () => {
  const x = T.zeros([2, 1, 3]);
  deepStrictEqual(T.squeeze(x).shape, [2, 3]);
  deepStrictEqual(T.unsqueeze(x, -1).shape, [2, 1, 3, 1]);
  throws(() => T.squeeze(x, 0), /Cannot squeeze axis 0 of shape \[2, 1, 3\]: it is not 1/);
});

Deno.test("gradcheck: reshape, permute, transpose, slice, expand", () => {
  checkOp([[2, 3, 4]], (x) => T.reshape(x, [4, 6]));
  checkOp([[2, 3, 4]], (x) => T.permute(x, [1, 2, 0]));
  checkOp([[2, 3, 4]], (x) => T.reshape(T.transpose(x, 0, 2), [-1]));
  checkOp([[5, 4]], (x) => T.slice(x, 0, 1, 4));
  checkOp([[5, 4]], (x) => T.mul(T.slice(x, 1, -2), T.slice(x, 1, 0, 2)));
  checkOp([[3, 1]], (x) => T.expand(x, [2, 3, 4]));
});

Deno.test("gradcheck: concat, split, squeeze, unsqueeze, contiguous", () => {
  checkOp([[2, 3], [2, 2]], (a, b) => T.concat([a, b], 1));
  checkOp([[6, 2]], (x) => {
    const [p, q, r] = T.split(x, [1, 2, 3], 0);
    return T.concat([T.mul(p, 2), q, T.exp(r)], 0);
  });
  checkOp([[2, 1, 3]], (x) => T.unsqueeze(T.squeeze(x, 1), 0));
  checkOp([[3, 4]], (x) => T.contiguous(T.transpose(x)));
});

Deno.test("split() gradients: one shared buffer, parts unused, reused, x read elsewhere", () => {
  // The parts' backwards write into one gradient buffer for x (no padded copy per part).
  checkOp([[3, 7]], (x) => {
    const [a, , c] = T.split(x, [2, 4, 1], 1); // the middle part unused: its window stays 0
    return T.concat([T.mul(a, 3), T.add(c, c), T.mul(x, x)], 1); // c twice, x read directly
  });
  checkOp([[5, 2]], (x) => {
    const [a, b] = T.split(x, [1, 4], 0);
    return T.add(T.sum(T.mul(a, b), 0, { keepDims: true }), T.sum(T.split(x, 5, 0)[4]));
  });
});

Deno.test("split() gradients accumulate over two backward passes through one graph", () => {
  const x = T.tensor([1, 2, 3, 4], { requiresGrad: true });
  const [a, b] = T.split(x, [1, 3]);
  const y = T.add(T.sum(T.mul(a, 2)), T.sum(T.mul(b, b)));
  y.backward();
  y.backward(); // the second pass must get a fresh buffer, not the first one again
  assertAllClose(x.grad as T.Tensor, [4, 8, 12, 16]);
});
