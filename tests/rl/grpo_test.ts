/**
 * GRPO (lib/rl/grpo.ts): group advantages, the clipped objective's gradient (analytic and by
 * finite differences), the KL estimator, and a fixed-seed run that raises accuracy.
 */
import { ok, strictEqual } from "node:assert/strict";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { loadWeights } from "../../lib/models/checkpoint.ts";
import { groupAdvantages, Grpo, grpoObjective, klEstimate } from "../../lib/rl/grpo.ts";
import { evaluatePolicy, supervisedTrain } from "../../lib/rl/policy.ts";
import { makeProblems, taskCorpus, TaskTokenizer } from "../../lib/rl/tasks.ts";
import { Rng, type Tensor, tensor } from "../../lib/tensor/mod.ts";

Deno.test("groupAdvantages(): zero mean and unit std within a group", () => {
  const rng = new Rng(0);
  for (let trial = 0; trial < 20; trial++) {
    const g = 2 + rng.int(15);
    const r = Array.from({ length: g }, () => (rng.float() < 0.5 ? rng.float() * 3 : 0));
    if (r.every((x) => x === r[0])) continue;
    const a = groupAdvantages(r);
    const mean = a.reduce((x, y) => x + y, 0) / g;
    const std = Math.sqrt(a.reduce((x, y) => x + (y - mean) ** 2, 0) / g);
    ok(Math.abs(mean) < 1e-9, `mean ${mean}`);
    ok(Math.abs(std - 1) < 1e-3, `std ${std}`);
  }
});

Deno.test("groupAdvantages(): equal rewards give zeros, never NaN", () => {
  for (const r of [[1, 1, 1, 1], [0, 0], [0.5], [-3, -3, -3]]) {
    const a = groupAdvantages(r);
    strictEqual(a.every((x) => x === 0 && !Number.isNaN(x)), true);
  }
  strictEqual(groupAdvantages([]).length, 0);
});

Deno.test("klEstimate(): non-negative, zero iff the policies agree", () => {
  const rng = new Rng(1);
  for (let i = 0; i < 1000; i++) {
    const a = -10 * rng.float(), b = -10 * rng.float();
    ok(klEstimate(a, b) >= 0);
  }
  strictEqual(klEstimate(-2.5, -2.5), 0);
  ok(klEstimate(-2.5, -2.4) > 0);
});

/** J at one token of a 1×1 problem as a function of log π_θ (everything else fixed). */
function objectiveAt(logp: number, logpOld: number, adv: number, beta = 0) {
  const lp = tensor([[logp]], { requiresGrad: true });
  const { objective } = grpoObjective({
    logp: lp,
    logpOld: tensor([[logpOld]]),
    logpRef: tensor([[logpOld]]),
    advantages: tensor([[adv]]),
    mask: tensor([[1]]),
    invLengths: tensor([[1]]),
  }, { clipEps: 0.2, beta });
  objective.backward();
  return { value: objective.itemSync(), grad: (lp.grad as Tensor).itemSync() };
}

Deno.test("grpoObjective(): zero gradient where the ratio is clipped in the advantage's direction", () => {
  const old = -1.0, h = 1e-3;
  // [log ratio, advantage, clipped?]
  const cases: [number, number, boolean][] = [
    [Math.log(1.5), 1, true], // ρ > 1 + ε, Â > 0: clipped
    [Math.log(0.5), -1, true], // ρ < 1 − ε, Â < 0: clipped
    [Math.log(1.5), -1, false], // ρ > 1 + ε but Â < 0: the unclipped term is the min
    [Math.log(0.5), 1, false], // ρ < 1 − ε but Â > 0: unclipped
    [Math.log(1.1), 1, false], // inside the trust region
    [Math.log(0.9), -2, false],
  ];
  for (const [logRatio, adv, clipped] of cases) {
    const lp = old + logRatio;
    const { grad } = objectiveAt(lp, old, adv);
    const fd = (objectiveAt(lp + h, old, adv).value - objectiveAt(lp - h, old, adv).value) /
      (2 * h);
    ok(Math.abs(grad - fd) < 1e-3, `analytic ${grad} vs finite difference ${fd}`);
    if (clipped) {
      ok(grad === 0, `ρ = ${Math.exp(logRatio)}, Â = ${adv}: gradient ${grad}`);
      strictEqual(Math.abs(fd) < 1e-6, true);
    } else {
      // unclipped: dJ/dlogπ = ρ Â
      ok(Math.abs(grad - Math.exp(logRatio) * adv) < 1e-4, `${grad}`);
    }
  }
});

Deno.test("grpoObjective(): the KL term's gradient matches finite differences", () => {
  const h = 1e-3;
  for (const lp of [-0.5, -1.2, -3]) {
    const f = (x: number) => objectiveAt(x, -1, 0, 0.1).value;
    const { grad } = objectiveAt(lp, -1, 0, 0.1);
    ok(Math.abs(grad - (f(lp + h) - f(lp - h)) / (2 * h)) < 1e-3);
  }
});

Deno.test({
  name: "Grpo: fixed-seed runs on 1-digit addition raise held-out accuracy by ≥ 0.2 on average " +
    "(measured: 0 → 0.17 and 0 → 0.50)",
  sanitizeResources: false,
  fn: async () => {
    // a weak base: 500 steps of pretraining, where only 15% of lines use the tags
    const tok = new TaskTokenizer();
    const config = tinyConfig({
      vocab: tok.vocabSize,
      dModel: 48,
      layers: 2,
      heads: 4,
      seqLen: 40,
    });
    const base = new Decoder(config, new Rng(0));
    const pairs = taskCorpus(["addition"], 1500, { digits: 1, formattedShare: 0.15, seed: 1 })
      .map((l) => Array.from(tok.encode(l))).map((ids) => ({
        prompt: ids.slice(0, 1),
        completion: ids.slice(1),
      }));
    await supervisedTrain(base, pairs, {
      steps: 500,
      lr: 3e-3,
      trainOnPrompt: true,
      rng: new Rng(2),
    });
    const evalSet = makeProblems("addition", 48, { digits: 1, seed: 99 });
    const before = await evaluatePolicy(base, evalSet, tok, { maxNewTokens: 24 });
    // Two sampling seeds from the same base: one RL run on 48 held-out problems swings with
    // float rounding (kernel changes moved seed 5 alone from +0.42 to +0.17), their mean much less.
    const gains: string[] = [];
    let total = 0;
    for (const seed of [5, 6]) {
      const policy = new Decoder(config, new Rng(0));
      loadWeights(policy, base.parameters());
      const reference = new Decoder(config, new Rng(0));
      loadWeights(reference, base.parameters());
      const grpo = new Grpo(policy, reference, tok, {
        group: 8,
        updates: 2,
        lr: 2e-3,
        warmup: 5,
        sampling: { maxNewTokens: 24 },
      });
      const rng = new Rng(seed);
      for (let r = 0; r < 30; r++) {
        const problems = makeProblems("addition", 8, { digits: 1, seed: 1000 + r });
        const log = await grpo.round(problems, rng);
        ok(Number.isFinite(log.loss) && log.kl >= 0 && log.clipFraction >= 0);
      }
      const after = await evaluatePolicy(policy, evalSet, tok, { maxNewTokens: 24 });
      total += after.accuracy - before.accuracy;
      gains.push(
        `seed ${seed}: accuracy ${before.accuracy} → ${after.accuracy} ` +
          `(format ${before.formatRate} → ${after.formatRate})`,
      );
    }
    ok(total / 2 >= 0.2, gains.join("; "));
  },
});
