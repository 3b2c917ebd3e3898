/**
 * Group Relative Policy Optimization (GRPO; DeepSeekMath, arXiv:2402.03300 §4.1, used by
 * DeepSeek-R1, arXiv:2501.12948 §2.2.1): PPO without the critic. For each question `q`, sample
 * a group of `G` outputs `o_1..o_G` from the old policy, score them by rule, and use the
 * group-normalised reward as every token's advantage:
 *
 *   Â_i = (r_i − mean(r)) / (std(r) + ε_A)                                     (GRPO, outcome supervision)
 *   ρ_{i,t} = π_θ(o_{i,t} | q, o_{i,<t}) / π_old(o_{i,t} | q, o_{i,<t})
 *   J(θ) = 1/G Σ_i 1/|o_i| Σ_t [ min(ρ Â_i, clip(ρ, 1−ε, 1+ε) Â_i) − β D_KL ]
 *   D_KL = π_ref/π_θ − log(π_ref/π_θ) − 1                                        (unbiased, ≥ 0; Schulman 2020)
 *
 * `std` is the population standard deviation of the group. `π_old` is the policy that sampled
 * the round (the first of the `μ` updates has ρ = 1); `π_ref` is frozen at the start of RL.
 *
 * @module
 */

import type { Decoder } from "../models/decoder.ts";
import { withBackend } from "../backend/mod.ts";
import {
  div,
  exp,
  maximum,
  minimum,
  mul,
  type Rng,
  sub,
  sum,
  type Tensor,
  tensor,
  TidyScope,
} from "../tensor/mod.ts";
import { clipGradNorm } from "../train/clip.ts";
import { AdamW, decayGroups } from "../train/optim.ts";
import {
  packHost,
  runOnModel,
  sampleCompletions,
  type SampleCompletionsOptions,
  tokenLogProbs,
  tokenLogProbSteps,
} from "./policy.ts";
import { type RewardOptions, scoreCompletion } from "./rewards.ts";
import type { Problem, TaskTokenizer } from "./tasks.ts";

/**
 * Group-relative advantages `(r − mean) / (std + eps)`; a group of equal rewards gets zeros.
 *
 * @param rewards Rewards of one group.
 * @param eps Added to the standard deviation.
 * @returns One advantage per output.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { groupAdvantages } from "./grpo.ts";
 * deepStrictEqual(groupAdvantages([1, 1, 1]), [0, 0, 0]);
 * deepStrictEqual(groupAdvantages([0, 2], 0), [-1, 1]);
 * ```
 */
export function groupAdvantages(rewards: readonly number[], eps = 1e-4): number[] {
  const g = rewards.length;
  if (g === 0) return [];
  if (rewards.some((r) => !Number.isFinite(r))) {
    throw new Error(
      `Cannot normalise rewards [${rewards.join(", ")}]: every reward must be finite`,
    );
  }
  const mean = rewards.reduce((a, b) => a + b, 0) / g;
  const std = Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / g);
  return rewards.map((r) => (std === 0 ? 0 : (r - mean) / (std + eps)));
}

/**
 * The per-token KL estimator `π_ref/π − log(π_ref/π) − 1` from log-probabilities.
 *
 * @param logpRef `log π_ref(o_t)`.
 * @param logp `log π_θ(o_t)`.
 * @returns A non-negative number, 0 iff the two are equal.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { klEstimate } from "./grpo.ts";
 * strictEqual(klEstimate(-1.5, -1.5), 0);
 * strictEqual(klEstimate(-1, -2) > 0, true);
 * ```
 */
export function klEstimate(logpRef: number, logp: number): number {
  const d = logpRef - logp;
  return Math.exp(d) - d - 1;
}

/** Inputs of {@linkcode grpoObjective}: `[N, T]` tensors and `[N, 1]` per-sequence values. */
export interface GrpoTerms {
  /** `log π_θ` of each target token (with gradient). */
  logp: Tensor;
  /** `log π_old`, constant. */
  logpOld: Tensor;
  /** `log π_ref`, constant. */
  logpRef: Tensor;
  /** `Â_i`, `[N, 1]`. */
  advantages: Tensor;
  /** 1 on completion tokens, 0 elsewhere, `[N, T]`. */
  mask: Tensor;
  /** `1 / |o_i|`, `[N, 1]`. */
  invLengths: Tensor;
}

/** Options of {@linkcode grpoObjective}. */
export interface GrpoObjectiveOptions {
  /**
   * `ε` of the clipped ratio.
   * @default {0.2}
   */
  clipEps?: number;
  /**
   * `β`, the KL coefficient.
   * @default {0.04}
   */
  beta?: number;
}

/** What {@linkcode grpoObjective} returns. */
export interface GrpoObjective {
  /** `J(θ)` (scalar, to maximise). */
  objective: Tensor;
  /** Mean per-token KL over completion tokens (scalar, no gradient needed). */
  kl: Tensor;
  /** `ρ`, `[N, T]`. */
  ratio: Tensor;
}

/**
 * The GRPO objective `J(θ)` (see the module doc) as a differentiable scalar.
 *
 * @param terms Log-probabilities, advantages, mask and lengths.
 * @param options `clipEps`, `beta`.
 * @returns `J`, the mean KL and the ratios.
 *
 * @example At ρ = 1 and π = π_ref, J is the mean advantage
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tensor } from "../tensor/mod.ts";
 * import { grpoObjective } from "./grpo.ts";
 * const lp = tensor([[-1, -2], [-1, -3]]);
 * const { objective, kl } = grpoObjective({
 *   logp: lp, logpOld: lp, logpRef: lp,
 *   advantages: tensor([[1], [-0.5]]), mask: tensor([[1, 1], [1, 0]]),
 *   invLengths: tensor([[0.5], [1]]),
 * });
 * assertAllClose(objective, 0.25);
 * assertAllClose(kl, 0);
 * ```
 */
export function grpoObjective(terms: GrpoTerms, options: GrpoObjectiveOptions = {}): GrpoObjective {
  const { clipEps = 0.2, beta = 0.04 } = options;
  const { logp, logpOld, logpRef, advantages, mask, invLengths } = terms;
  const n = logp.shape[0];
  const ratio = exp(sub(logp, logpOld)); // ρ: [N, T]
  const clipped = minimum(maximum(ratio, 1 - clipEps), 1 + clipEps); // clip(ρ, 1−ε, 1+ε)
  const surrogate = minimum(mul(ratio, advantages), mul(clipped, advantages)); // [N, T]
  const d = sub(logpRef, logp); // log(π_ref/π_θ)
  const klTok = sub(sub(exp(d), d), 1); // D_KL per token, ≥ 0
  const perToken = mul(mul(sub(surrogate, mul(klTok, beta)), mask), invLengths);
  const objective = div(sum(perToken), n); // 1/G Σ_i 1/|o_i| Σ_t
  const kl = div(sum(mul(klTok, mask)), maximum(sum(mask), 1)); // mean over completion tokens
  return { objective, kl, ratio };
}

/** Options of {@linkcode Grpo}. */
export interface GrpoOptions extends GrpoObjectiveOptions {
  /**
   * `G`, outputs sampled per question.
   * @default {8}
   */
  group?: number;
  /**
   * `μ`, policy updates per sampling round.
   * @default {2}
   */
  updates?: number;
  /**
   * Learning rate (AdamW, β = (0.9, 0.95), no weight decay).
   * @default {1e-3}
   */
  lr?: number;
  /**
   * Gradient-norm clip.
   * @default {1}
   */
  gradClip?: number;
  /**
   * Linear learning-rate warmup over this many updates (Adam's first steps move every weight by
   * about `lr`, which a policy near its reference feels as a large KL jump).
   * @default {5}
   */
  warmup?: number;
  /** Sampling of the group (temperature 1 by default). */
  sampling?: SampleCompletionsOptions;
  /** Reward weights. */
  rewards?: RewardOptions;
  /**
   * `ε_A` of the advantage normalisation.
   * @default {1e-4}
   */
  advantageEps?: number;
}

/** What one GRPO round logs. */
export interface GrpoRoundLog {
  /** Mean total reward of the sampled outputs. */
  reward: number;
  /** Share of sampled outputs with the right answer. */
  accuracy: number;
  /** Share of sampled outputs in the exact R1 format. */
  formatRate: number;
  /** Mean sampled completion length (tokens). */
  length: number;
  /** Mean per-token KL to the reference, over the round's updates. */
  kl: number;
  /** Share of completion tokens whose ratio left `[1−ε, 1+ε]`, over the updates. */
  clipFraction: number;
  /** Mean `−J` over the updates. */
  loss: number;
  /** Share of groups whose rewards all tie (no learning signal). */
  flatGroups: number;
  /** Sampled tokens per second of the round (sampling and updates). */
  tokensPerSec: number;
}

/**
 * GRPO on a decoder policy: {@linkcode Grpo.round} samples `G` outputs per question with the KV
 * cache, scores them by rule, and takes `μ` AdamW steps on `−J(θ)` against the frozen
 * reference.
 *
 * @example One round on a tiny untrained model logs finite numbers
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { Decoder, tinyConfig } from "../models/decoder.ts";
 * import { Rng } from "../tensor/mod.ts";
 * import { Grpo } from "./grpo.ts";
 * import { makeProblems, TaskTokenizer } from "./tasks.ts";
 * const tok = new TaskTokenizer();
 * const config = tinyConfig({ vocab: tok.vocabSize, seqLen: 24 });
 * const policy = new Decoder(config, new Rng(0)), ref = new Decoder(config, new Rng(0));
 * const grpo = new Grpo(policy, ref, tok, { group: 4, sampling: { maxNewTokens: 8 } });
 * const log = await grpo.round(makeProblems("addition", 2, { digits: 1 }), new Rng(1));
 * ok(Number.isFinite(log.loss) && log.kl >= 0);
 * ```
 */
export class Grpo {
  readonly policy: Decoder;
  readonly reference: Decoder;
  readonly tokenizer: TaskTokenizer;
  readonly optimizer: AdamW;
  readonly options: Readonly<GrpoOptions>;

  /**
   * @param policy The model trained (in place).
   * @param reference A frozen copy (same vocabulary), e.g. the policy at the start of RL.
   * @param tokenizer The task tokenizer.
   * @param options Group size, updates, `ε`, `β`, learning rate, sampling, rewards.
   */
  constructor(
    policy: Decoder,
    reference: Decoder,
    tokenizer: TaskTokenizer,
    options: GrpoOptions = {},
  ) {
    const { group = 8, updates = 2, clipEps = 0.2, beta = 0.04, lr = 1e-3 } = options;
    const checks: [string, number, boolean][] = [
      ["group", group, Number.isInteger(group) && group >= 2],
      ["updates", updates, Number.isInteger(updates) && updates >= 1],
      ["clipEps", clipEps, clipEps > 0 && clipEps < 1],
      ["beta", beta, beta >= 0 && Number.isFinite(beta)],
      ["lr", lr, lr > 0 && Number.isFinite(lr)],
    ];
    for (const [name, value, ok] of checks) {
      if (!ok) {
        const allowed = name === "group"
          ? "an integer ≥ 2"
          : name === "updates"
          ? "an integer ≥ 1"
          : name === "clipEps"
          ? "a number in (0, 1)"
          : "a finite number ≥ 0 (lr > 0)";
        throw new Error(`Cannot create GRPO with ${name} ${value}: expected ${allowed}`);
      }
    }
    if (policy.config.vocab !== reference.config.vocab) {
      throw new Error(
        `Cannot run GRPO with a policy of vocab ${policy.config.vocab} and a reference of ` +
          `${reference.config.vocab}: they must match`,
      );
    }
    this.policy = policy;
    this.reference = reference;
    this.tokenizer = tokenizer;
    this.options = { ...options, group, updates, clipEps, beta, lr };
    this.optimizer = new AdamW(decayGroups(policy.parameters(), 0), {
      lr,
      betas: [0.9, 0.95],
      weightDecay: 0,
    });
  }

  /**
   * One round: sample, score, normalise within groups, `μ` updates.
   *
   * @param problems The questions of this round.
   * @param rng The sampling stream.
   * @returns The round's metrics.
   */
  async round(problems: readonly Problem[], rng: Rng): Promise<GrpoRoundLog> {
    const { group = 8, updates = 2, gradClip = 1 } = this.options;
    const started = performance.now();
    const tok = this.tokenizer;
    // 1) sample G outputs per question with the old policy (= the policy now)
    const prompts = problems.map((p) => Array.from(tok.encode(p.prompt)));
    const rows = prompts.flatMap((p) => Array.from({ length: group }, () => p));
    const completions = await sampleCompletions(this.policy, rows, rng, {
      ...this.options.sampling,
      eos: tok.eos,
    });
    // 2) rule rewards and group-relative advantages
    const scores = completions.map((c, i) =>
      scoreCompletion(problems[Math.floor(i / group)].prompt, tok.decode(c), this.options.rewards)
    );
    const advantages: number[] = [];
    let flat = 0;
    for (let q = 0; q < problems.length; q++) {
      const a = groupAdvantages(
        scores.slice(q * group, (q + 1) * group).map((s) => s.total),
        this.options.advantageEps,
      );
      if (a.every((x) => x === 0)) flat++;
      advantages.push(...a);
    }
    // 3) log π_old and log π_ref of the sampled tokens (constants of the round)
    const host = packHost(rows.map((p, i) => ({ prompt: p, completion: completions[i] })), tok.eos);
    const logpOld = await tokenLogProbs(this.policy, host);
    const logpRef = await tokenLogProbs(this.reference, host);
    // 4) μ updates on −J(θ)
    let kl = 0, clipFraction = 0, loss = 0;
    const backend = this.policy.embedTokens.backend;
    const eps = this.options.clipEps ?? 0.2;
    const tokens = host.mask.reduce((a, b) => a + b, 0);
    for (let u = 0; u < updates; u++) {
      const scope = new TidyScope();
      try {
        const t = (data: ArrayLike<number>, shape: number[], dtype: "f32" | "i32" = "f32") =>
          tensor(data as Float32Array, { shape, dtype, backend });
        const { n, t: len } = host;
        const consts = scope.run(() => ({
          inputs: t(host.inputs, [n, len], "i32"),
          targets: t(host.targets, [n, len], "i32"),
          logpOld: t(logpOld, [n, len]),
          logpRef: t(logpRef, [n, len]),
          advantages: t(advantages, [n, 1]),
          mask: t(host.mask, [n, len]),
          invLengths: t(host.lengths.map((l) => 1 / l), [n, 1]),
        }));
        const logp = await runOnModel(
          this.policy,
          tokenLogProbSteps(this.policy, consts.inputs, consts.targets),
          scope,
        );
        const out = scope.run(() =>
          withBackend(backend, () => grpoObjective({ ...consts, logp }, this.options))
        );
        const negJ = scope.run(() => mul(out.objective, -1));
        scope.run(() => negJ.backward());
        loss += await negJ.item() / updates;
        kl += await out.kl.item() / updates;
        const ratio = await out.ratio.data();
        let clippedTokens = 0;
        for (let i = 0; i < ratio.length; i++) {
          if (host.mask[i] > 0 && Math.abs(ratio[i] - 1) > eps) clippedTokens++;
        }
        clipFraction += clippedTokens / Math.max(tokens, 1) / updates;
        await clipGradNorm(this.optimizer.params, gradClip);
        const warmup = this.options.warmup ?? 5;
        this.optimizer.lr = (this.options.lr ?? 1e-3) *
          Math.min(1, (this.optimizer.t + 1) / warmup);
        this.optimizer.step();
        this.optimizer.zeroGrad();
      } finally {
        scope.end(null);
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
    return {
      reward: mean(scores.map((s) => s.total)),
      accuracy: mean(scores.map((s) => s.accuracy)),
      formatRate: mean(scores.map((s) => s.format)),
      length: mean(completions.map((c) => c.length)),
      kl,
      clipFraction,
      loss,
      flatGroups: flat / Math.max(problems.length, 1),
      tokensPerSec: completions.reduce((a, c) => a + c.length, 0) /
        Math.max((performance.now() - started) / 1000, 1e-9),
    };
  }
}
