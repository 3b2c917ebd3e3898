import { throws } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { AdamW, sgdStep } from "../../lib/train/optim.ts";
import { assertAllClose } from "../_utils.ts";

/** AdamW on plain numbers, written from the paper's algorithm (arXiv:1711.05101, Alg. 2). */
function referenceAdamW(theta: number[], grads: number[][], lr: number, wd: number): number[] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const m = theta.map(() => 0), v = theta.map(() => 0);
  const th = [...theta];
  grads.forEach((g, step) => {
    const t = step + 1;
    for (let i = 0; i < th.length; i++) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mh = m[i] / (1 - b1 ** t), vh = v[i] / (1 - b2 ** t);
      th[i] = th[i] - lr * (mh / (Math.sqrt(vh) + eps) + wd * th[i]);
    }
  });
  return th;
}

Deno.test("AdamW.step() matches the reference algorithm over several steps", () => {
  const start = [0.5, -1.5, 2];
  const grads = [[0.1, -0.2, 0.3], [0.4, 0.1, -0.5], [-0.3, 0.2, 0.05]];
  const w = T.tensor(start, { requiresGrad: true });
  const opt = new AdamW([w], { lr: 0.01, weightDecay: 0.1 });
  for (const g of grads) {
    w.grad = T.tensor(g);
    opt.step();
  }
  assertAllClose(w, referenceAdamW(start, grads, 0.01, 0.1), { atol: 1e-6 });
});

Deno.test("AdamW: per-group weight decay (none for norms) and skipped params without grad", () => {
  const a = T.tensor([1], { requiresGrad: true }), b = T.tensor([1], { requiresGrad: true });
  const opt = new AdamW([{ params: [a] }, { params: [b], weightDecay: 0 }], {
    lr: 0.1,
    weightDecay: 0.5,
  });
  opt.step(); // no gradients yet: nothing moves
  assertAllClose(a, [1]);
  a.grad = T.tensor([0]);
  b.grad = T.tensor([0]);
  opt.step();
  assertAllClose(a, [1 - 0.1 * 0.5]);
  assertAllClose(b, [1]);
  throws(() => new AdamW([T.tensor([1])]), /parameters must be leaves with requiresGrad/);
});

Deno.test("sgdStep() subtracts lr·grad", () => {
  const w = T.tensor([1, 2], { requiresGrad: true });
  T.sum(T.mul(w, w)).backward();
  sgdStep([w], 0.25);
  assertAllClose(w, [0.5, 1]);
});
