/**
 * GRPO's KL term (lib/rl/grpo.ts) against hand-computed values. The estimator is Schulman's
 * unbiased k3 of `KL(π_θ ‖ π_ref)` for tokens sampled from `π_θ`: with `r = π_ref / π_θ`,
 * `k3 = (r − 1) − ln r` (DeepSeekMath eq. (4)). The reversed log-ratio, `r = π_θ / π_ref`, gives
 * other values and a biased estimate.
 */
import { strictEqual } from "node:assert/strict";
import { grpoObjective, klEstimate } from "../../lib/rl/grpo.ts";
import { tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose } from "../_utils.ts";

Deno.test("klEstimate() is k3 = π_ref/π − ln(π_ref/π) − 1, by hand", () => {
  // π = 0.5, π_ref = 0.2: r = 0.4, k3 = 0.4 − 1 + ln 2.5 = 0.316290731874155
  assertAllClose(klEstimate(Math.log(0.2), Math.log(0.5)), 0.316290731874155, {
    atol: 0,
    rtol: 1e-12,
  });
  // π = 0.25, π_ref = 0.5: r = 2, k3 = 1 − ln 2 = 0.306852819440055
  assertAllClose(klEstimate(Math.log(0.5), Math.log(0.25)), 0.306852819440055, {
    atol: 0,
    rtol: 1e-12,
  });
  strictEqual(klEstimate(-0.7, -0.7), 0);
});

Deno.test("klEstimate() averaged over π_θ is KL(π_θ ‖ π_ref) (unbiased)", () => {
  const pi = [0.5, 0.3, 0.2], ref = [0.2, 0.5, 0.3];
  // KL = 0.5 ln 2.5 + 0.3 ln 0.6 + 0.2 ln(2/3) = 0.2238046571856475 (the reversed ratio averages to 0.3395)
  const kl = pi.reduce((s, p, i) => s + p * Math.log(p / ref[i]), 0);
  assertAllClose(kl, 0.22380465718564752, { atol: 0, rtol: 1e-12 });
  const mean = pi.reduce((s, p, i) => s + p * klEstimate(Math.log(ref[i]), Math.log(p)), 0);
  assertAllClose(mean, kl, { atol: 0, rtol: 1e-12 });
});

Deno.test("grpoObjective(): the KL it reports and subtracts is k3 of π_ref / π_θ, by hand", () => {
  // One sequence, two completion tokens; ρ = 1 and Â = 0, so J = −β · mean KL per token.
  const logp = tensor([[Math.log(0.5), Math.log(0.25)]]);
  const { objective, kl } = grpoObjective({
    logp,
    logpOld: logp,
    logpRef: tensor([[Math.log(0.2), Math.log(0.5)]]),
    advantages: tensor([[0]]),
    mask: tensor([[1, 1]]),
    invLengths: tensor([[0.5]]),
  }, { beta: 0.04 });
  const k3 = (0.316290731874155 + 0.306852819440055) / 2; // the two tokens above
  assertAllClose(kl, k3, { atol: 0, rtol: 1e-6 });
  assertAllClose(objective, -0.04 * k3, { atol: 0, rtol: 1e-6 });
});
