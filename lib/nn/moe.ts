/**
 * DeepSeekMoE with auxiliary-loss-free load balancing (DeepSeek-V3, arXiv:2412.19437 §2.1.2,
 * eqs. (12)–(20); Wang et al. 2024, arXiv:2408.15664), in DeepSeek-V3's checkpoint conventions
 * (inference/model.py `Gate`, `MoE`; Hugging Face `DeepseekV3MoE`):
 * - affinity `s_i,t = sigmoid(u_tᵀ e_i)` (V3; `softmax` over experts as in V2), `e_i` the rows
 *   of `gate.weight`;
 * - selection on the biased score: expert i is chosen for token t if `s_i,t + b_i` is among the
 *   top `K_r` (`b` = `gate.e_score_correction_bias`, a buffer that gets no gradient);
 *   group-limited routing (V3 "node-limited", §2.1.2) first keeps the `topkGroup` groups with
 *   the largest sum of their top-2 biased scores (V3's `K_r / M` = 8 / 4 = 2; V3's code
 *   ranks groups by their max score instead when the gate has no bias: `groupScore: "max"`,
 *   V2's `group_limited_greedy`);
 * - gates from the unbiased score: `g_i,t = s_i,t / Σ_{j chosen} s_j,t · routeScale`; with
 *   `normTopK: false` (DeepSeek-V2's `norm_topk_prob: false`) `g_i,t = s_i,t · routeScale`;
 * - `h'_t = u_t + Σ_{i ≤ N_s} FFN^s_i(u_t) + Σ_{i ≤ N_r} g_i,t FFN^r_i(u_t)`: {@linkcode Moe}
 *   returns the two sums only; the residual `u_t +` is the transformer block's job;
 * - balancing: `b_i += γ sign(mean load − load_i)` after each optimizer step
 *   ({@linkcode Moe.updateBias}), plus the complementary sequence-wise loss
 *   `L_Bal = α Σ_i f_i P_i` (eqs. (17)–(20)); or, as the baseline, a GShard/Switch-style loss
 *   over the whole batch ({@linkcode MOE_CLASSIC}).
 *
 * Routed experts run only on their tokens: the (token, slot) pairs are sorted by expert, each
 * expert's rows are gathered (`indexSelect`), run through its SwiGLU, weighted by their gates
 * and added back (`indexAdd`) — `T K_r` expert rows per forward, never `T N_r`, and no token
 * is dropped. Sorting needs the routing on the host: {@linkcode Moe.forward} reads it
 * synchronously (cpu and wasm backends), {@linkcode Moe.forwardAsync} awaits it (WebGPU).
 *
 * Routing traces (off by default): with {@linkcode Moe.traceRouting} set, every forward also
 * reads its affinities and bias on the host and keeps them, with the chosen experts, in
 * {@linkcode Moe.lastRouting} — for the expert-parallel traffic model in `lib/parallel/`. The
 * reads go through the same host steps as the routing, so they work on every backend (through
 * `forwardAsync` on WebGPU), at the cost of one `[N, N_r]` read per forward.
 *
 * Shapes: `B` sequences, `T` tokens per sequence, `N = B T` tokens, `d` model width, `N_r`
 * routed experts, `N_s` shared experts, `K = K_r` experts per token, `G` expert groups,
 * `d_e` expert hidden width.
 *
 * @module
 */

import {
  add,
  concat,
  div,
  gather,
  indexAdd,
  indexSelect,
  isGradEnabled,
  mean,
  mul,
  noGrad,
  ones,
  reshape,
  type Rng,
  scatterAdd,
  sigmoid,
  sign,
  softmax,
  split,
  sub,
  sum,
  type Tensor,
  tensor,
  tidy,
  topk,
  unsqueeze,
  where,
  zeros,
} from "../tensor/mod.ts";
import { type HostSteps, runAsync, runSync } from "./steps.ts";
import { Linear } from "./linear.ts";
import { type Module, type ModuleEntry, parameterMap } from "./module.ts";
import { SwiGlu, swigluHidden } from "./ffn.ts";

/** Configuration of a {@linkcode Moe} layer; see {@linkcode MOE_DEFAULTS}. */
export interface MoeConfig {
  /** `d`, model width (V3: 7168). */
  dModel: number;
  /** `N_r`, routed experts (V3 `n_routed_experts` 256). */
  routedExperts: number;
  /** `N_s`, shared experts, merged into one SwiGLU of hidden `N_s d_e` as V3 stores them. */
  sharedExperts?: number;
  /** `K_r`, routed experts per token (V3 `num_experts_per_tok` 8). */
  topK: number;
  /**
   * `d_e`, hidden width of each expert (V3 `moe_intermediate_size` 2048).
   * @default {round(8/3 · dModel / (topK + sharedExperts))}: see {@linkcode moeExpertHidden}
   */
  expertHidden?: number;
  /** Affinity: `sigmoid` per expert (V3, eq. (15)) or `softmax` over experts (V2). */
  score?: "sigmoid" | "softmax";
  /** Factor on the normalised gates (V3 `routed_scaling_factor`). */
  routeScale?: number;
  /** `G`, expert groups for group-limited routing; 1 turns it off (V3 `n_group`). */
  groups?: number;
  /** Groups each token may use (V3 `topk_group`). @default {groups} */
  topkGroup?: number;
  /**
   * How groups are ranked for group-limited routing: the sum of each group's top-2 biased
   * scores (V3 `noaux_tc`) or its largest score (V2 `group_limited_greedy`).
   */
  groupScore?: "top2-sum" | "max";
  /**
   * Divide the chosen experts' scores by their sum (eq. (13); Hugging Face `norm_topk_prob`);
   * `false` keeps the raw scores, as DeepSeek-V2's softmax gate (`norm_topk_prob: false`).
   */
  normTopK?: boolean;
  /**
   * `aux-free`: bias updates by {@linkcode Moe.updateBias} (V3) plus the aux loss when `alpha > 0`;
   * `aux-loss`: the aux loss only (the bias stays as loaded); `none`: neither.
   */
  balance?: "aux-free" | "aux-loss" | "none";
  /** `γ`, bias update speed of the aux-loss-free strategy. */
  gamma?: number;
  /**
   * Re-centre the bias to zero mean after each update (torchtitan does; the V3 report and
   * Wang et al. do not).
   */
  biasRecenter?: boolean;
  /**
   * `α`, balance loss coefficient; 0 computes no loss.
   * @default {0.0001 with "aux-free", 0.01 with "aux-loss", 0 with "none"}
   */
  alpha?: number;
  /**
   * `sequence`: `f_i`, `P_i` per sequence, loss averaged over sequences (V3 eqs. (17)–(20));
   * `batch`: over all `B T` tokens at once (GShard / Switch Transformer).
   */
  auxLossScope?: "sequence" | "batch";
  /** Standard deviation of the normal init of every weight. */
  initStd?: number;
}

/**
 * Defaults of the MoE FFN: DeepSeek-V3's router (arXiv:2412.19437 §2.1.2, §4.2), sized for a few
 * experts. These are what a run gets (the DSL's `moe()` resolves them); V3's own sizes for 256
 * experts are {@linkcode MOE_V3}. `routedExperts` and `topK` have no default.
 */
export const MOE_DEFAULTS = {
  /** `N_s` (V3 n_shared_experts 1). */
  sharedExperts: 1,
  /** V3 scores with a sigmoid, eq. (15) (V2 used softmax). */
  score: "sigmoid",
  /** Gate multiplier 1: V3's 2.5 is tuned to 256 experts top-8; V2-Lite uses 1. */
  routeScale: 1,
  /** Group-limited routing off (V3: 8 groups, 4 used, for 256 experts). */
  groups: 1,
  /** V3 `noaux_tc`: groups ranked by the sum of their top-2 biased scores. */
  groupScore: "top2-sum",
  /** V3 `norm_topk_prob: true`: the chosen scores are renormalised, eq. (13). */
  normTopK: true,
  /** V3's auxiliary-loss-free bias balancing (§2.1.2; Wang et al. 2024, arXiv:2408.15664). */
  balance: "aux-free",
  /** Bias update speed `γ` (V3 §4.2: 0.001 for the first 14.3T tokens, then 0). */
  gamma: 0.001,
  /** The report does not re-centre the bias (torchtitan does). */
  biasRecenter: false,
  /** `α` with `aux-free`: V3's tiny sequence-wise loss (§4.2: "an extremely small value"). */
  alphaAuxFree: 0.0001,
  /** `α` with `aux-loss`: the classic 0.01 (Switch Transformer, arXiv:2101.03961). */
  alphaAuxLoss: 0.01,
  /** The complementary sequence-wise loss, eq. (17). */
  auxLossScope: "sequence",
  /** Init std: GPT-2's 0.02 (V3 initializer_range 0.006 at d = 7168). */
  initStd: 0.02,
  /**
   * Dense FFNs in the first layers, read by the decoder (`lib/models/decoder.ts`), not by the
   * layer: V3 keeps 3 of 61 (first_k_dense_replace); 0 keeps every layer MoE at small depth.
   */
  firstDenseLayers: 0,
} as const;

/**
 * DeepSeek-V3's MoE sizes (arXiv:2412.19437 §4.2; its config.json): 256 routed experts and one
 * shared, 8 per token, `d_e` 2048, gates ×2.5, 8 groups of which a token uses 4.
 *
 * @example The V3 layer at a toy width
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { Moe, MOE_V3 } from "./moe.ts";
 * const moe = new Moe({ ...MOE_V3, dModel: 8, expertHidden: 4 }, new Rng(0));
 * strictEqual(moe.experts.length, 256);
 * ```
 */
export const MOE_V3 = {
  routedExperts: 256, // N_r, §4.2
  sharedExperts: 1, // N_s, §4.2
  topK: 8, // K_r, §4.2
  expertHidden: 2048, // d_e, §4.2 ("intermediate hidden dimension of each expert is 2048")
  routeScale: 2.5, // routed_scaling_factor (config.json)
  groups: 8, // n_group: 8 nodes in §4.2 (256 experts, 32 per group)
  topkGroup: 4, // topk_group: "each token will be sent to at most 4 nodes" (§4.2)
} as const;

/**
 * The default expert width: V3 sets `(K_r + N_s) · d_e` to the dense FFN's width
 * (9 · 2048 = 18432), so a token's activated FFN compute equals the dense baseline's; the same
 * rule from the default dense width `round(8/3 · d)`.
 *
 * @param dModel `d`.
 * @param topK `K_r`.
 * @param sharedExperts `N_s`.
 * @returns `d_e`, at least 1.
 *
 * @example 8 experts top-2 plus one shared at d = 96: 256 / 3
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { moeExpertHidden } from "./moe.ts";
 * strictEqual(moeExpertHidden(96, 2, 1), 85);
 * ```
 */
export function moeExpertHidden(dModel: number, topK: number, sharedExperts: number): number {
  return Math.max(1, Math.round(swigluHidden(dModel) / (topK + sharedExperts)));
}

/** `α` when none is given: by balancing strategy ({@linkcode MOE_DEFAULTS}). */
export function moeDefaultAlpha(balance: "aux-free" | "aux-loss" | "none"): number {
  switch (balance) {
    case "aux-free":
      return MOE_DEFAULTS.alphaAuxFree;
    case "aux-loss":
      return MOE_DEFAULTS.alphaAuxLoss;
    case "none":
      return 0;
    default:
      return balance satisfies never;
  }
}

/** Every field of `config`, missing ones from {@linkcode MOE_DEFAULTS}. */
function resolveMoeConfig(config: MoeConfig): Required<MoeConfig> {
  const D = MOE_DEFAULTS;
  const sharedExperts = config.sharedExperts ?? D.sharedExperts;
  const groups = config.groups ?? D.groups;
  const balance = config.balance ?? D.balance;
  return {
    dModel: config.dModel,
    routedExperts: config.routedExperts,
    sharedExperts,
    topK: config.topK,
    expertHidden: config.expertHidden ??
      moeExpertHidden(config.dModel, config.topK, sharedExperts),
    score: config.score ?? D.score,
    routeScale: config.routeScale ?? D.routeScale,
    groups,
    topkGroup: config.topkGroup ?? groups,
    groupScore: config.groupScore ?? D.groupScore,
    normTopK: config.normTopK ?? D.normTopK,
    balance,
    gamma: config.gamma ?? D.gamma,
    biasRecenter: config.biasRecenter ?? D.biasRecenter,
    alpha: config.alpha ?? moeDefaultAlpha(balance),
    auxLossScope: config.auxLossScope ?? D.auxLossScope,
    initStd: config.initStd ?? D.initStd,
  };
}

/**
 * The classic baseline to override {@linkcode MOE_DEFAULTS} with: softmax gate, top-K
 * probabilities renormalised, no bias updates, no groups, and a GShard/Switch-style balance
 * loss over the batch with Switch Transformer's `α = 0.01` (arXiv:2101.03961 §2.2).
 *
 * @example A classic MoE layer
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { Moe, MOE_CLASSIC } from "./moe.ts";
 * const moe = new Moe({ ...MOE_CLASSIC, dModel: 8, routedExperts: 4, topK: 2 }, new Rng(0));
 * strictEqual(moe.config.score, "softmax");
 * ```
 */
export const MOE_CLASSIC: Pick<
  Required<MoeConfig>,
  | "score"
  | "routeScale"
  | "groups"
  | "topkGroup"
  | "balance"
  | "alpha"
  | "auxLossScope"
  | "sharedExperts"
> = {
  score: "softmax",
  routeScale: 1,
  groups: 1,
  topkGroup: 1,
  balance: "aux-loss",
  alpha: 0.01,
  auxLossScope: "batch",
  sharedExperts: 0,
};

/** What one {@linkcode Moe.forward} returns. */
export interface MoeOutput {
  /** `Σ FFN^s(u) + Σ g_i FFN^r_i(u)`, shaped like the input `[..., T, d]` (add `u` outside). */
  y: Tensor;
  /** `L_Bal` (scalar), or `null` when `balance` is `none` or `alpha` is 0. */
  auxLoss: Tensor | null;
  /** Chosen experts per token, by descending biased score: `[..., T, K]` `i32`. */
  indices: Tensor;
  /** Their gates `g_i,t` (differentiable): `[..., T, K]`. */
  gates: Tensor;
  /** Tokens routed to each expert in this forward (`N_r` counts summing to `N K`). */
  load: number[];
  /** `MaxVio_batch = max_i load_i / mean load − 1` of this forward. */
  maxVio: number;
}

/** The routing of one {@linkcode Moe} forward, read on the host (see {@linkcode Moe.traceRouting}). */
export interface MoeRoutingTrace {
  /** `N`, tokens of the forward (leading dims flattened, sequence-major). */
  tokens: number;
  /** `N_r`, routed experts. */
  experts: number;
  /** `K_r`, experts per token. */
  topK: number;
  /** The experts the gate chose, token-major `[N K_r]`, by descending biased score. */
  indices: Int32Array;
  /** Unbiased affinities `s_i,t` of every expert, token-major `[N N_r]`. */
  affinity: Float32Array;
  /** The bias `b` the selection used (`s + b`): `[N_r]`. */
  bias: Float32Array;
}

/**
 * Maximal violation of balance (Wang et al. 2024, arXiv:2408.15664 §4.1):
 * `max_i load_i / mean_i load_i − 1`; 0 when perfectly balanced (and for an empty load).
 *
 * @param load Tokens per expert.
 * @returns The violation, ≥ 0.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { maxVio } from "./moe.ts";
 * strictEqual(maxVio([4, 2, 1, 1]), 1); // mean 2, max 4
 * ```
 */
export function maxVio(load: ArrayLike<number>): number {
  let total = 0, most = 0;
  for (let i = 0; i < load.length; i++) {
    total += load[i];
    most = Math.max(most, load[i]);
  }
  return total === 0 ? 0 : most / (total / load.length) - 1;
}

function checkConfig(c: Required<MoeConfig>): void {
  const sizes: [string, number][] = [
    ["dModel", c.dModel],
    ["routedExperts", c.routedExperts],
    ["topK", c.topK],
    ["expertHidden", c.expertHidden],
    ["groups", c.groups],
    ["topkGroup", c.topkGroup],
  ];
  if (c.groupScore !== "top2-sum" && c.groupScore !== "max") {
    throw new Error(
      `Cannot build MoE with groupScore '${c.groupScore}': expected 'top2-sum' or 'max'`,
    );
  }
  if (typeof c.normTopK !== "boolean") {
    throw new Error(`Cannot build MoE with normTopK '${c.normTopK}': expected true or false`);
  }
  for (const [what, n] of sizes) {
    if (!Number.isInteger(n) || n <= 0) {
      throw new Error(`Cannot build MoE with ${what} ${n}: expected a positive integer`);
    }
  }
  if (!Number.isInteger(c.sharedExperts) || c.sharedExperts < 0) {
    throw new Error(
      `Cannot build MoE with sharedExperts ${c.sharedExperts}: expected an integer ≥ 0`,
    );
  }
  if (c.topK > c.routedExperts) {
    throw new Error(
      `Cannot build MoE with topK ${c.topK} > routedExperts ${c.routedExperts}: ` +
        `a token cannot use more experts than exist`,
    );
  }
  if (c.routedExperts % c.groups !== 0) {
    throw new Error(
      `Cannot build MoE with routedExperts ${c.routedExperts} in groups ${c.groups}: ` +
        `the experts must divide evenly into groups`,
    );
  }
  if (c.topkGroup > c.groups) {
    throw new Error(
      `Cannot build MoE with topkGroup ${c.topkGroup} > groups ${c.groups}: ` +
        `a token cannot use more groups than exist`,
    );
  }
  const reachable = c.topkGroup * (c.routedExperts / c.groups);
  if (c.topK > reachable) {
    throw new Error(
      `Cannot build MoE with topK ${c.topK} > ${reachable} experts reachable in topkGroup ` +
        `${c.topkGroup} groups of ${c.routedExperts / c.groups} experts`,
    );
  }
  for (const [what, v] of [["gamma", c.gamma], ["alpha", c.alpha], ["routeScale", c.routeScale]]) {
    if (typeof v !== "number" || !(v >= 0 && Number.isFinite(v))) {
      throw new Error(`Cannot build MoE with ${what} ${v}: expected a finite number ≥ 0`);
    }
  }
}

/** Routing of one forward, on the device, before the host has read `indices`. */
interface Routing {
  /** Input rows `u`: `[N, d]`. */
  u: Tensor;
  /** Unbiased affinities `s`: `[N, N_r]`. */
  s: Tensor;
  /** Chosen experts: `[N, K]` `i32`. */
  indices: Tensor;
  /** Gates `g`: `[N, K]`. */
  gates: Tensor;
  /** The input shape `[..., T, d]`. */
  shape: readonly number[];
}

/**
 * DeepSeekMoE layer. Parameters, in Hugging Face DeepSeek-V3 names and `[out, in]`:
 * `experts.{e}.{gate,up,down}_proj.weight` (`[d_e, d]`, `[d_e, d]`, `[d, d_e]`),
 * `gate.weight: [N_r, d]`, `shared_experts.{gate,up,down}_proj.weight` (hidden `N_s d_e`).
 * The buffer `gate.e_score_correction_bias: [N_r]` is listed by {@linkcode Moe.buffers}, not
 * by `parameters()`: the optimizer never sees it.
 *
 * @example Forward, metrics and one bias update
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { Moe } from "./moe.ts";
 * const rng = new Rng(0);
 * const moe = new Moe({
 *   dModel: 8, routedExperts: 4, topK: 2, expertHidden: 16, groups: 2, topkGroup: 1,
 * }, rng);
 * const { y, load, auxLoss } = moe.forward(randn([2, 5, 8], { rng })); // [B, T, d]
 * deepStrictEqual(y.shape, [2, 5, 8]);
 * strictEqual(load.reduce((a, b) => a + b), 2 * 5 * 2); // N K (token, expert) pairs
 * deepStrictEqual(auxLoss?.shape, []);
 * moe.updateBias(); // after opt.step(): b_i += γ sign(mean load − load_i)
 * ```
 *
 * @example Recording the routing of a forward
 * ```ts
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { Moe } from "./moe.ts";
 * const rng = new Rng(0);
 * const moe = new Moe(
 *   { dModel: 8, routedExperts: 4, topK: 2, expertHidden: 16, groups: 1, topkGroup: 1 },
 *   rng,
 * );
 * moe.traceRouting = true;
 * const { indices } = moe.forward(randn([1, 3, 8], { rng }));
 * deepStrictEqual(moe.lastRouting?.indices, Int32Array.from(indices.dataSync()));
 * strictEqual(moe.lastRouting?.affinity.length, 3 * 4); // [N, N_r]
 * ```
 */
export class Moe implements Module {
  /** The resolved configuration. */
  readonly config: Required<MoeConfig>;
  /** Router `e_i` as rows: `gate.weight: [N_r, d]`. */
  readonly gate: Linear;
  /** `b`: `gate.e_score_correction_bias: [N_r]`; no gradient, updated by `updateBias`. */
  readonly eScoreCorrectionBias: Tensor;
  /** Routed experts `FFN^r_i`, SwiGLU `d → d_e → d`. */
  readonly experts: SwiGlu[];
  /** The `N_s` shared experts as one SwiGLU `d → N_s d_e → d`, or `null` when `N_s` is 0. */
  readonly sharedExperts: SwiGlu | null;
  /**
   * Record each forward's routing in {@linkcode Moe.lastRouting} (off by default: it costs a
   * host read of the `[N, N_r]` affinities per forward).
   */
  traceRouting = false;
  /** The routing of the last forward while {@linkcode Moe.traceRouting} was on, else `null`. */
  lastRouting: MoeRoutingTrace | null = null;
  #loadTotal: Float64Array;
  #loadPending: Float64Array;

  /**
   * Create the layer; weights are drawn from `rng` in the order experts, gate, shared experts.
   * The bias starts at zero.
   *
   * @param config Sizes and routing, see {@linkcode MoeConfig}.
   * @param rng Seeded generator for the init.
   */
  constructor(config: MoeConfig, rng: Rng) {
    this.config = resolveMoeConfig(config);
    checkConfig(this.config);
    const { dModel, routedExperts, sharedExperts, expertHidden, initStd } = this.config;
    this.experts = Array.from(
      { length: routedExperts },
      () => new SwiGlu({ dModel, hidden: expertHidden, initStd }, rng),
    );
    this.gate = new Linear({ inFeatures: dModel, outFeatures: routedExperts, initStd }, rng);
    this.gate.fp8Exempt = true; // V3 §3.3: MoE gating stays in high precision
    this.eScoreCorrectionBias = zeros([routedExperts]);
    this.sharedExperts = sharedExperts > 0
      ? new SwiGlu({ dModel, hidden: sharedExperts * expertHidden, initStd }, rng)
      : null;
    this.#loadTotal = new Float64Array(routedExperts);
    this.#loadPending = new Float64Array(routedExperts);
  }

  /**
   * Route every token to its `K_r` experts and mix their outputs (eq. (12) without `u_t`).
   * Reads the routing synchronously: use {@linkcode Moe.forwardAsync} on WebGPU.
   *
   * @param x `u`: `[..., T, d]`; leading dims are sequences for the sequence-wise loss.
   * @returns The FFN output, the balance loss, the routing and its load metrics.
   */
  forward(x: Tensor): MoeOutput {
    return runSync(this.forwardSteps(x));
  }

  /**
   * {@linkcode Moe.forward} as {@linkcode HostSteps}: yields the routing indices for the host
   * to read, then dispatches the tokens to their experts. Run with `runSync` or `runAsync`.
   *
   * @param x `u`: `[..., T, d]`.
   * @returns As {@linkcode Moe.forward}.
   */
  *forwardSteps(x: Tensor): HostSteps<MoeOutput> {
    const routing = this.#route(x);
    const host = yield routing.indices; // [N, K] expert ids, read on the host
    if (this.traceRouting) {
      const { routedExperts: experts, topK } = this.config;
      const affinity = yield routing.s.detach(); // s_i,t: [N, N_r]
      const bias = yield this.eScoreCorrectionBias; // b: [N_r]
      this.lastRouting = {
        tokens: routing.u.shape[0],
        experts,
        topK,
        indices: Int32Array.from(host),
        affinity: Float32Array.from(affinity),
        bias: Float32Array.from(bias),
      };
    }
    return this.#combine(routing, host);
  }

  /**
   * {@linkcode Moe.forward} for backends that cannot read synchronously (WebGPU): awaits the
   * routing before dispatching tokens to experts.
   *
   * @param x `u`: `[..., T, d]`.
   * @returns As {@linkcode Moe.forward}.
   */
  forwardAsync(x: Tensor): Promise<MoeOutput> {
    return runAsync(this.forwardSteps(x));
  }

  /** Affinities, biased selection (group-limited) and gates; all on the device. */
  #route(x: Tensor): Routing {
    const { dModel: d, score, routeScale, normTopK } = this.config;
    if (x.rank < 2 || x.shape[x.rank - 1] !== d) {
      throw new Error(
        `Cannot apply MoE to input [${x.shape.join(", ")}]: expected [..., T, ${d}]`,
      );
    }
    const n = x.size / d;
    const u = reshape(x, [n, d]); // u_t: [N, d]
    const logits = this.gate.forward(u); // u_tᵀ e_i: [N, N_r]
    let s: Tensor; // s_i,t: [N, N_r]
    switch (score) {
      case "sigmoid":
        s = sigmoid(logits); // eq. (15)
        break;
      case "softmax":
        s = softmax(logits, -1); // DeepSeek-V2 §2.2.1
        break;
      default:
        throw new Error(`Unknown MoE score '${score satisfies never}'`);
    }
    const indices = noGrad(() => this.#select(s.detach())); // Topk of s + b, eq. (16): [N, K]
    const chosen = gather(s, 1, indices); // s_i,t of the chosen experts: [N, K]
    const norm = normTopK ? div(chosen, sum(chosen, -1, { keepDims: true })) : chosen; // eq. (13)
    const gates = routeScale === 1 ? norm : mul(norm, routeScale); // g_i,t: [N, K]
    return { u, s, indices, gates, shape: x.shape };
  }

  /** Top-`K` experts of `s + b`, within the `topkGroup` best groups: `[N, K]` `i32`. */
  #select(s: Tensor): Tensor {
    const { routedExperts: nR, topK: k, groups: g, topkGroup, groupScore: rank } = this.config;
    const n = s.shape[0], perGroup = nR / g;
    const biased = add(s, this.eScoreCorrectionBias); // s_i,t + b_i: [N, N_r]
    if (g === 1) return topk(biased, k).indices; // eq. (16): [N, K]
    const grouped = reshape(biased, [n, g, perGroup]); // [N, G, N_r / G]
    const best = topk(grouped, rank === "max" ? 1 : Math.min(2, perGroup)).values; // [N, G, 1|2]
    const groupScore = sum(best, -1); // each group's top-2 sum (or max): [N, G]
    const kept = topk(groupScore, topkGroup).indices; // best groups: [N, topkGroup]
    const none = zeros([n, g], { backend: s.backend });
    const keep = scatterAdd(none, 1, kept, ones(kept.shape, { backend: s.backend })); // [N, G]
    const masked = where(unsqueeze(keep, -1), grouped, -Infinity); // others out: [N, G, N_r/G]
    return topk(reshape(masked, [n, nR]), k).indices; // [N, K]
  }

  /** Dispatch rows to their experts, mix, and measure the load. */
  #combine(routing: Routing, host: ArrayLike<number>): MoeOutput {
    const { routedExperts: nR, topK: k, dModel: d } = this.config;
    const { u, s, indices, gates, shape } = routing;
    const n = u.shape[0], backend = u.backend;
    // 1) sort the N K (token, slot) pairs by expert: a counting sort on the host
    const load = new Array<number>(nR).fill(0);
    for (let p = 0; p < n * k; p++) load[host[p]]++;
    const start = new Array<number>(nR + 1).fill(0);
    for (let e = 0; e < nR; e++) start[e + 1] = start[e] + load[e];
    const cursor = start.slice(0, nR);
    const slot = new Int32Array(n * k), token = new Int32Array(n * k);
    for (let p = 0; p < n * k; p++) {
      const at = cursor[host[p]]++;
      slot[at] = p; // position in the flat [N K] routing
      token[at] = Math.floor(p / k); // its token t
    }
    const tokenIdx = tensor(token, { dtype: "i32", backend });
    const slotIdx = tensor(slot, { dtype: "i32", backend });
    // 2) gather rows and gates in expert order, run each expert on its own rows only
    const rows = indexSelect(u, 0, tokenIdx); // u_t per (token, expert) pair: [N K, d]
    const g = indexSelect(reshape(gates, [n * k]), 0, slotIdx); // g_i,t in the same order: [N K]
    const outs: Tensor[] = [];
    const parts = split(rows, load, 0); // each expert's rows (one gradient buffer for all)
    for (let e = 0; e < nR; e++) {
      if (load[e] === 0) continue;
      outs.push(this.experts[e].forward(parts[e])); // [load_e, d]
    }
    const weighted = mul(concat(outs, 0), unsqueeze(g, 1)); // g_i,t FFN^r_i(u_t): [N K, d]
    // 3) add back per token: Σ_i g_i,t FFN^r_i(u_t), eq. (12)
    const routed = indexAdd(zeros([n, d], { backend }), 0, tokenIdx, weighted); // [N, d]
    const shared = this.sharedExperts?.forward(u); // Σ_i FFN^s_i(u_t): [N, d]
    const y = reshape(shared ? add(shared, routed) : routed, shape); // [..., T, d]
    // 4) balance loss and metrics
    const auxLoss = this.#auxLoss(s, host, shape);
    for (let e = 0; e < nR; e++) {
      this.#loadTotal[e] += load[e];
      if (isGradEnabled()) this.#loadPending[e] += load[e];
    }
    const routeShape = [...shape.slice(0, -1), k];
    return {
      y,
      auxLoss,
      indices: reshape(indices, routeShape),
      gates: reshape(gates, routeShape),
      load,
      maxVio: maxVio(load),
    };
  }

  /** `L_Bal = α mean_seq Σ_i f_i P_i`, eqs. (17)–(20); `null` when off. */
  #auxLoss(s: Tensor, host: ArrayLike<number>, shape: readonly number[]): Tensor | null {
    const { balance, alpha, auxLossScope, routedExperts: nR, topK: k, score } = this.config;
    if (balance === "none" || alpha === 0) return null;
    const n = s.shape[0];
    const t = auxLossScope === "sequence" ? shape[shape.length - 2] : n; // tokens per sequence
    const b = n / t; // sequences
    const counts = new Float32Array(b * nR); // Σ_t 1[i chosen for t], per sequence
    for (let p = 0; p < n * k; p++) counts[Math.floor(p / k / t) * nR + host[p]]++;
    const f = mul(tensor(counts, { shape: [b, nR], backend: s.backend }), nR / (k * t)); // eq. (18)
    const sNorm = score === "sigmoid" ? div(s, sum(s, -1, { keepDims: true })) : s; // eq. (19)
    const p = mean(reshape(sNorm, [b, t, nR]), 1); // P_i per sequence, eq. (20): [B, N_r]
    return mul(div(sum(mul(f, p)), b), alpha); // α Σ_i f_i P_i, eq. (17), mean over sequences
  }

  /**
   * The aux-loss-free update (Wang et al. 2024, Algorithm 1; V3 §2.1.2): after the optimizer
   * step, `b_i += γ sign(mean load − load_i)` — under-loaded experts are raised, over-loaded
   * lowered; with `biasRecenter`, `b` is then shifted to zero mean. Does nothing unless
   * `balance` is `aux-free`.
   *
   * @param load Tokens per expert since the last update (default: the load of every forward
   *   with gradients enabled since the last update, which is then cleared).
   */
  updateBias(load?: ArrayLike<number>): void {
    const { routedExperts: nR, balance, gamma, biasRecenter } = this.config;
    const counts = load ?? this.#loadPending;
    if (counts.length !== nR) {
      throw new Error(
        `Cannot update the MoE bias with a load of ${counts.length} experts: expected ${nR}`,
      );
    }
    const observed = Float32Array.from(counts);
    this.#loadPending.fill(0);
    if (balance !== "aux-free") return;
    const b = this.eScoreCorrectionBias;
    tidy(() =>
      noGrad(() => {
        const loadT = tensor(observed, { backend: b.backend });
        const step = mul(sign(sub(mean(loadT), loadT)), gamma); // γ sign(mean load − load_i)
        const next = add(b, step);
        b.assign(biasRecenter ? sub(next, mean(next)) : next);
      })
    );
  }

  /** Tokens routed to each expert over every forward since the last `resetLoad`. */
  get loadTotal(): number[] {
    return Array.from(this.#loadTotal);
  }

  /** `MaxVio_global`: {@linkcode maxVio} of {@linkcode Moe.loadTotal}. */
  get maxVioGlobal(): number {
    return maxVio(this.#loadTotal);
  }

  /** Clear the global load accumulator (e.g. before an evaluation pass). */
  resetLoad(): void {
    this.#loadTotal.fill(0);
  }

  /** `experts.{e}.*`, `gate.weight`, `shared_experts.*` (Hugging Face order). */
  parameters(): Map<string, Tensor> {
    const entries: Record<string, ModuleEntry> = {};
    this.experts.forEach((e, i) => (entries[`experts.${i}`] = e));
    entries.gate = this.gate;
    entries.shared_experts = this.sharedExperts;
    return parameterMap(entries);
  }

  /** Non-trainable state for the checkpoint: `gate.e_score_correction_bias`. */
  buffers(): Map<string, Tensor> {
    return new Map([["gate.e_score_correction_bias", this.eScoreCorrectionBias]]);
  }
}
