import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, gradOf } from "../_utils.ts";

Deno.test("backward() accumulates into .grad across calls (gradient accumulation)", () => {
  const w = T.tensor([1, 2, 3], { requiresGrad: true });
  T.sum(T.mul(w, 2)).backward();
  T.sum(T.mul(w, w)).backward();
  assertAllClose(gradOf(w), [4, 6, 8]);
  w.grad?.dispose();
  w.grad = null;
  T.sum(w).backward();
  assertAllClose(gradOf(w), [1, 1, 1]);
});

Deno.test("a tensor used twice gets the sum of both paths", () => {
  const x = T.tensor([3], { requiresGrad: true });
  const y = T.add(T.mul(x, x), T.exp(x)); // dy/dx = 2x + e^x
  y.backward();
  assertAllClose(gradOf(x), [6 + Math.exp(3)], { rtol: 1e-6 });
});

Deno.test("leaves sharing one upstream gradient keep independent .grad tensors", () => {
  const a = T.tensor([1], { requiresGrad: true }), b = T.tensor([2], { requiresGrad: true });
  T.sum(T.add(a, b)).backward();
  a.grad?.dispose();
  assertAllClose(gradOf(b), [1]);
});

Deno.test("noGrad() records nothing; detach() cuts the graph", () => {
  const x = T.tensor([1, 2], { requiresGrad: true });
  const y = T.noGrad(() => T.mul(x, 3));
  strictEqual(y.requiresGrad, false);
  strictEqual(y.node, null);
  const d = x.detach();
  strictEqual(d.requiresGrad, false);
  const z = T.add(T.mul(x, T.mul(x, 1).detach()), 0);
  T.sum(z).backward();
  assertAllClose(gradOf(x), [1, 2]); // d/dx x·c = c with c = x held constant
});

Deno.test("backward() errors: no grad, non-scalar without seed, wrong seed shape", () => {
  throws(
    () => T.sum(T.tensor([1])).backward(),
    /Cannot call backward\(\) on a tensor that does not require grad/,
  );
  const x = T.tensor([1, 2], { requiresGrad: true });
  throws(() => T.mul(x, 2).backward(), /without a gradient on a tensor of shape \[2\]/);
  throws(
    () => T.mul(x, 2).backward(T.ones([3])),
    /with a gradient of shape \[3\] on a tensor of shape \[2\]/,
  );
  T.mul(x, 2).backward(T.tensor([1, 10]));
  assertAllClose(gradOf(x), [2, 20]);
});

Deno.test("backward through a non-differentiable op names the op", () => {
  const x = T.tensor([1.4, 2.6], { requiresGrad: true });
  throws(
    () => T.sum(T.mul(T.round(x), x)).backward(),
    /Cannot backpropagate through 'round': it is not differentiable/,
  );
  throws(
    () => T.sum(T.cast(T.cast(x, "i32"), "f32")).backward(),
    /Cannot backpropagate through 'cast to i32'/,
  );
  // Gradient flowing around a non-differentiable op (into another input) is fine.
  const y = T.tensor([1, 2], { requiresGrad: true });
  const idx = T.argmax(T.reshape(x, [1, 2]));
  T.sum(T.gather(T.reshape(y, [1, 2]), 1, T.reshape(idx, [1, 1]))).backward();
  assertAllClose(gradOf(y), [0, 1]);
  throws(
    () => T.tensor([1], { dtype: "i32", requiresGrad: true }),
    /Cannot require grad for a tensor of dtype 'i32'/,
  );
});

Deno.test("checkOp() detects a wrong gradient (the checker can fail)", () => {
  const wrongSquare = (x: T.Tensor) => {
    const y = T.noGrad(() => T.mul(x, x));
    return T.record(y, "wrongSquare", [x], (dy) => [T.mul(dy, x)]); // should be 2·x·dy
  };
  throws(() => checkOp([[3]], wrongSquare), /Gradient of input 0/);
});

Deno.test("tidy() disposes intermediates, keeps results and leaf gradients", () => {
  const w = T.tensor([1, 2], { requiresGrad: true });
  let inner: T.Tensor | null = null;
  const loss = T.tidy(() => {
    inner = T.mul(w, w);
    const l = T.sum(inner);
    l.backward();
    return l;
  });
  strictEqual((inner as unknown as T.Tensor).isDisposed, true);
  strictEqual(loss.isDisposed, false);
  strictEqual(w.grad?.isDisposed, false);
  assertAllClose(gradOf(w), [2, 4]);
  throws(
    () => (inner as unknown as T.Tensor).dataSync(),
    /Cannot use a disposed tensor of shape \[2\]/,
  );
  throws(() => T.tidy(() => Promise.resolve(1)), /Cannot tidy an async function/);
});

Deno.test("views keep their storage alive after the base is disposed", () => {
  const base = T.arange(4);
  const view = T.slice(base, 0, 1, 3);
  base.dispose();
  deepStrictEqual(Array.from(view.dataSync()), [1, 2]);
  throws(() => base.dataSync(), /disposed/);
});
