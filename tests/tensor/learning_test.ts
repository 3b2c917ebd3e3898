/**
 * End-to-end learning checks: the core (ops + autograd + optimizer) can fit XOR with a 2-layer
 * MLP, and a byte-level bigram model reaches the text's true conditional entropy.
 */
import { ok } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { AdamW } from "../../lib/train/optim.ts";

Deno.test("a 2-layer MLP fits XOR", () => {
  const rng = new T.Rng(0);
  const x = T.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]);
  const y = T.tensor([0, 1, 1, 0], { dtype: "i32" });
  const w1 = T.randn([2, 8], { rng, std: 1, requiresGrad: true });
  const b1 = T.zeros([8], { requiresGrad: true });
  const w2 = T.randn([8, 2], { rng, std: 0.5, requiresGrad: true });
  const b2 = T.zeros([2], { requiresGrad: true });
  const opt = new AdamW([w1, b1, w2, b2], { lr: 0.05, weightDecay: 0 });
  const forward = () => T.add(T.matmul(T.tanh(T.add(T.matmul(x, w1), b1)), w2), b2);
  let loss = Infinity;
  for (let step = 0; step < 300; step++) {
    loss = T.tidy(() => {
      const l = T.crossEntropy(forward(), y);
      l.backward();
      return l.itemSync();
    });
    opt.step();
    opt.zeroGrad();
  }
  ok(loss < 0.02, `XOR loss ${loss} should fall below 0.02`);
  const predicted = Array.from(T.argmax(forward(), -1).dataSync());
  ok(predicted.join() === "0,1,1,0", `XOR predictions ${predicted}`);
});

const TEXT = `It was the best of times, it was the worst of times, it was the age of wisdom, it was
the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the
season of Light, it was the season of Darkness, it was the spring of hope, it was the winter of
despair, we had everything before us, we had nothing before us, we were all going direct to
Heaven, we were all going direct the other way - in short, the period was so far like the present
period, that some of its noisiest authorities insisted on its being received, for good or for
evil, in the superlative degree of comparison only.`;

Deno.test("a byte-level bigram model reaches the text's bigram entropy", () => {
  const bytes = new TextEncoder().encode(TEXT);
  const prev = Array.from(bytes.subarray(0, -1)), next = Array.from(bytes.subarray(1));
  // The true conditional entropy H(next | prev) of the text, in nats: the loss of the
  // maximum-likelihood bigram table, the best any bigram model can do on this text.
  const pair = new Map<number, number>(), ctx = new Map<number, number>();
  prev.forEach((p, i) => {
    pair.set(p * 256 + next[i], (pair.get(p * 256 + next[i]) ?? 0) + 1);
    ctx.set(p, (ctx.get(p) ?? 0) + 1);
  });
  let entropy = 0;
  for (const [key, count] of pair) {
    entropy -= count * Math.log(count / (ctx.get(Math.floor(key / 256)) ?? 1));
  }
  entropy /= prev.length;
  // Uniform over 256 bytes starts at ln 256 = 5.55 nats; the text's bigram entropy is ~1.2.
  const table = T.zeros([256, 256], { requiresGrad: true });
  const opt = new AdamW([table], { lr: 0.5, weightDecay: 0 });
  const ids = T.tensor(prev, { dtype: "i32" }), targets = T.tensor(next, { dtype: "i32" });
  let loss = Infinity;
  for (let step = 0; step < 150; step++) {
    loss = T.tidy(() => {
      const l = T.crossEntropy(T.embedding(table, ids), targets);
      l.backward();
      return l.itemSync();
    });
    opt.step();
    opt.zeroGrad();
  }
  // Unseen pairs keep some mass at any finite step, so allow 0.1 nats above the optimum.
  ok(loss < entropy + 0.1, `bigram loss ${loss} vs entropy ${entropy} (+0.1 allowed)`);
  ok(loss >= entropy - 1e-4, `bigram loss ${loss} cannot beat the entropy ${entropy}`);
});
