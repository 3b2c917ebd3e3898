import { deepStrictEqual, throws } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, F64, gradOf } from "../_utils.ts";

const i32 = (data: number[], shape?: number[]) => T.tensor(data, { dtype: "i32", shape });

Deno.test("softmax() and logSoftmax() match the definition and survive huge logits", () => {
  const x = [1, 2, 3, 1000];
  const e = [Math.exp(1 - 3), Math.exp(2 - 3), 1];
  const z = e[0] + e[1] + e[2];
  assertAllClose(T.softmax(T.tensor([[1, 2, 3]])), e.map((v) => v / z));
  assertAllClose(T.logSoftmax(T.tensor([1, 2, 3])), e.map((v) => Math.log(v / z)), { atol: 1e-6 });
  assertAllClose(T.softmax(T.tensor(x)), [0, 0, 0, 1]);
  assertAllClose(T.logSoftmax(T.tensor([1000, 1000])), [-Math.LN2, -Math.LN2]);
  // Along a non-last axis: columns sum to one.
  assertAllClose(T.sum(T.softmax(T.tensor([[1, 2], [3, 5]]), 0), 0), [1, 1]);
});

Deno.test("crossEntropy() equals -log softmax at the target, with ignoreIndex", () => {
  const logits = [[2, 1, 0.1], [0.5, 2.5, 0.3], [1, 1, 1]];
  const targets = [0, 2, -100];
  const want = logits.slice(0, 2).map((row, r) => {
    const z = row.reduce((s, v) => s + Math.exp(v), 0);
    return -Math.log(Math.exp(row[targets[r]]) / z);
  });
  const lt = T.tensor(logits);
  assertAllClose(T.crossEntropy(lt, i32(targets), { reduction: "none" }), [...want, 0]);
  assertAllClose(T.crossEntropy(lt, i32(targets)), (want[0] + want[1]) / 2);
  assertAllClose(T.crossEntropy(lt, i32(targets), { reduction: "sum" }), want[0] + want[1]);
  // [B, T, V] logits with [B, T] targets.
  const l3 = T.reshape(T.tensor(logits.flat().concat(logits.flat())), [2, 3, 3]);
  deepStrictEqual(
    T.crossEntropy(l3, i32([0, 1, 2, 0, 1, 2], [2, 3]), { reduction: "none" }).shape,
    [2, 3],
  );
  throws(() => T.crossEntropy(lt, i32([0, 3, 1])), /target 3 at row 1 is outside \[0, 3\)/);
  throws(
    () => T.crossEntropy(lt, i32([0, 1])),
    /Cannot compute cross-entropy of logits \[3, 3\] against targets \[2\]: targets must have shape \[3\]/,
  );
  throws(() => T.crossEntropy(lt, T.tensor([0, 1, 2])), /dtype 'f32': expected 'i32'/);
});

Deno.test("gradcheck: softmax, logSoftmax along last and inner axes", () => {
  checkOp([[3, 5]], (x) => T.softmax(x));
  checkOp([[3, 5]], (x) => T.logSoftmax(x));
  checkOp([[2, 3, 4]], (x) => T.softmax(x, 1));
  checkOp([[2, 3, 4]], (x) => T.logSoftmax(x, 0));
});

Deno.test("gradcheck: crossEntropy (mean with ignored rows, sum, none)", () => {
  const targets = T.tensor([1, 0, -100, 4], { dtype: "i32", backend: F64 });
  checkOp([[4, 5]], (x) => T.crossEntropy(x, targets));
  checkOp([[4, 5]], (x) => T.crossEntropy(x, targets, { reduction: "sum" }));
  checkOp([[2, 2, 5]], (x) => T.crossEntropy(x, T.reshape(targets, [2, 2]), { reduction: "none" }));
});

Deno.test("embedding() looks up rows; repeated ids accumulate gradient", () => {
  const w = T.tensor([[1, 2], [3, 4], [5, 6]], { requiresGrad: true });
  const y = T.embedding(w, i32([2, 0, 2, 2], [2, 2]));
  deepStrictEqual(y.shape, [2, 2, 2]);
  assertAllClose(y, [5, 6, 1, 2, 5, 6, 5, 6]);
  T.sum(y).backward();
  assertAllClose(gradOf(w), [1, 1, 0, 0, 3, 3]);
  throws(() => T.embedding(w, i32([3])), /index 3 at position 0 is outside \[0, 3\)/);
});

Deno.test("indexSelect(), indexAdd(), gather(), scatterAdd() follow torch semantics", () => {
  const x = T.reshape(T.arange(12), [3, 4]);
  assertAllClose(T.indexSelect(x, 1, i32([3, 0])), [3, 0, 7, 4, 11, 8]);
  assertAllClose(T.indexAdd(T.zeros([3, 2]), 0, i32([2, 2]), T.ones([2, 2])), [0, 0, 0, 0, 2, 2]);
  // gather along axis 1: out[i][j] = x[i][index[i][j]]
  assertAllClose(T.gather(x, 1, i32([0, 3, 1, 1, 2, 0], [3, 2])), [0, 3, 5, 5, 10, 8]);
  // scatter_add along axis 0: out[index[i][j]][j] += src[i][j]
  const s = T.scatterAdd(T.zeros([2, 3]), 0, i32([1, 0, 1, 1, 1, 0], [2, 3]), T.ones([2, 3]));
  assertAllClose(s, [0, 1, 1, 2, 1, 1]);
  throws(() => T.gather(x, 1, i32([0, 1], [1, 2])), /the index must match every other dimension/);
});

Deno.test("gradcheck: indexSelect, indexAdd, gather, scatterAdd, embedding", () => {
  const idx = (data: number[], shape?: number[]) =>
    T.tensor(data, { dtype: "i32", backend: F64, shape });
  checkOp([[4, 3]], (x) => T.indexSelect(x, 0, idx([3, 1, 3])));
  checkOp([[2, 5]], (x) => T.indexSelect(x, 1, idx([4, 0])));
  checkOp([[3, 2], [2, 2]], (x, s) => T.indexAdd(x, 0, idx([2, 2]), s));
  checkOp([[3, 4]], (x) => T.gather(x, 1, idx([0, 3, 3, 1, 2, 2], [3, 2])));
  checkOp([[2, 3], [2, 3]], (x, s) => T.scatterAdd(x, 0, idx([1, 0, 1, 1, 1, 0], [2, 3]), s));
  checkOp([[5, 3]], (w) => T.embedding(w, idx([4, 0, 4, 2], [2, 2])));
});

Deno.test("topk() sorts descending, breaks ties by lower index, routes gradient", () => {
  const x = T.tensor([[1, 9, 3, 9], [4, 2, 8, 6]]);
  const { values, indices } = T.topk(x, 3);
  assertAllClose(values, [9, 9, 3, 8, 6, 4]);
  deepStrictEqual(Array.from(indices.dataSync()), [1, 3, 2, 2, 3, 0]);
  throws(() => T.topk(x, 5), /Cannot take the top-5 of 4 entries: expected an integer in \[1, 4\]/);
  checkOp([[3, 6]], (v) => T.topk(v, 2).values);
});

Deno.test("causalMask() hides future keys, also with a KV-cache offset", () => {
  assertAllClose(T.causalMask(3), [0, -Infinity, -Infinity, 0, 0, -Infinity, 0, 0, 0]);
  // 2 new queries after 2 cached keys: query i sees keys j <= i + 2.
  assertAllClose(T.causalMask(2, { keys: 4 }), [0, 0, 0, -Infinity, 0, 0, 0, 0]);
  const scores = T.add(T.zeros([3, 3]), T.causalMask(3));
  assertAllClose(T.softmax(scores), [1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3]);
});

Deno.test("gradcheck: masked causal attention composed from ops", () => {
  const mask = T.causalMask(4, { like: T.zeros([1], { backend: F64 }) });
  checkOp([[4, 3], [4, 3], [4, 3]], (q, k, v) => {
    const scores = T.add(T.mul(T.matmul(q, T.transpose(k)), 1 / Math.sqrt(3)), mask);
    return T.matmul(T.softmax(scores), v);
  }, { gradAtol: 1e-5 });
});
