import { deepStrictEqual, throws } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, gradOf } from "../_utils.ts";

const X = T.reshape(T.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]), [2, 2, 3]);

Deno.test("sum() over all, one, adjacent and non-adjacent axes", () => {
  assertAllClose(T.sum(X), 52);
  assertAllClose(T.sum(X, 0), [5, 7, 9, 4, 10, 17]);
  assertAllClose(T.sum(X, -1), [8, 15, 13, 16]);
  assertAllClose(T.sum(X, [1, 2]), [23, 29]);
  assertAllClose(T.sum(X, [0, 2]), [21, 31]);
  deepStrictEqual(T.sum(X, 1, { keepDims: true }).shape, [2, 1, 3]);
  assertAllClose(T.sum(T.transpose(X), 0), [5, 4, 7, 10, 9, 17]);
});

Deno.test("mean(), max(), min(), argmax()", () => {
  assertAllClose(T.mean(X, 2), [8 / 3, 5, 13 / 3, 16 / 3]);
  assertAllClose(T.max(X, 2), [4, 9, 6, 8]);
  assertAllClose(T.min(X, [0, 1]), [1, 1, 4]);
  const am = T.argmax(X, -1);
  deepStrictEqual(am.dtype, "i32");
  deepStrictEqual(Array.from(am.dataSync()), [2, 2, 1, 2]);
  deepStrictEqual(Array.from(T.argmax(T.tensor([1, 7, 7])).dataSync()), [1]);
  throws(() => T.sum(X, 3), /Cannot sum along axis 3: expected an integer in \[-3, 3\)/);
  throws(() => T.sum(X, [1, -2]), /an axis is repeated/);
});

Deno.test("gradcheck: sum, mean over axes with and without keepDims", () => {
  checkOp([[2, 3, 4]], (x) => T.sum(x));
  checkOp([[2, 3, 4]], (x) => T.sum(x, [0, 2]));
  checkOp([[2, 3, 4]], (x) => T.sum(x, 1, { keepDims: true }));
  checkOp([[2, 3, 4]], (x) => T.mean(x, -1));
  checkOp([[2, 3, 4]], (x) => T.mean(T.transpose(x), [0, 1]));
});

Deno.test("gradcheck: max and min (distinct values)", () => {
  checkOp([[3, 5]], (x) => T.max(x, 1));
  checkOp([[3, 5]], (x) => T.min(x, 0, { keepDims: true }));
  checkOp([[3, 5]], (x) => T.max(x));
});

Deno.test("max() shares the gradient between tied maxima", () => {
  const x = T.tensor([1, 3, 3], { requiresGrad: true });
  T.max(x).backward();
  assertAllClose(gradOf(x), [0, 0.5, 0.5]);
});
