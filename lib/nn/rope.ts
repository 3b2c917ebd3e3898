/**
 * Rotary position embedding (RoPE; Su et al., arXiv:2104.09864 §3.2) with YaRN context
 * extension (Peng et al., arXiv:2309.00071: "NTK-by-parts" interpolation and the attention
 * temperature `√(1/t) = 0.1 ln s + 1`), in
 * DeepSeek-V3's conventions (arXiv:2412.19437 §4.3; inference/model.py `precompute_freqs_cis`,
 * `apply_rotary_emb`):
 * - dims `(2j, 2j+1)` form the complex number `z_j = x_2j + i x_2j+1` (adjacent pairs, not the
 *   halves-split `rotate_half` of Hugging Face's Llama code), rotated as `z_j · e^{i p f_j}` at
 *   position `p`, with `f_j = θ^(-2j/d)`;
 * - YaRN with factor `s` and original context `L`: pairs whose wavelength `2π / f_j` fits more
 *   than `β_fast` times into `L` keep `f_j`, pairs fitting fewer than `β_slow` times get `f_j / s`,
 *   with a linear ramp between (over pair indices from `⌊j(β_fast)⌋` to `⌈j(β_slow)⌉`);
 * - the YaRN attention temperature `mscale = 0.1 ln s + 1` is not folded into cos/sin: as in V3's
 *   code, the softmax scale is multiplied by `mscale²` ({@linkcode yarnMscale}). Hugging Face's
 *   DeepSeek code has two multipliers, `mscale` and `mscale_all_dim`: the softmax scale gets
 *   `yarnMscale(s, mscale_all_dim)²` and cos/sin get `yarnMscale(s, mscale) /
 *   yarnMscale(s, mscale_all_dim)` (1 in every released config, where the two are equal).
 * V3's own code switches YaRN on only when `max_seq_len > original_seq_len`; here it is on
 * whenever `yarn` is given.
 *
 * cos/sin tables `[T, d/2]` are computed on the host in float64, uploaded once per call and applied
 * by `ropeRotate` (one fused kernel each way where the backend has `Backend.rope`).
 *
 * Shapes: `B` batch, `T` sequence (new tokens), `H` heads, `d` rotary dims per head (even),
 * `d/2` complex pairs.
 *
 * @module
 */

import { ropeRotate, type Tensor, tensor } from "../tensor/mod.ts";
import type { Module } from "./module.ts";

/** YaRN context extension (arXiv:2309.00071), DeepSeek-V3 `rope_scaling`. */
export interface YarnConfig {
  /** `s = L' / L`, the context extension factor (V3: 40). */
  factor: number;
  /** `L`, the context length of pre-training (V3: 4096). */
  originalMaxPositionEmbeddings: number;
  /**
   * `β_fast`: pairs rotating more than this many times over `L` are not interpolated.
   * @default {32}
   */
  betaFast?: number;
  /**
   * `β_slow`: pairs rotating fewer than this many times over `L` are fully interpolated.
   * @default {1}
   */
  betaSlow?: number;
  /**
   * Multiplier of `0.1 ln s` in the attention temperature (V3 `rope_scaling.mscale`).
   * @default {1}
   */
  mscale?: number;
  /**
   * Hugging Face `rope_scaling.mscale_all_dim`: the multiplier of the softmax-scale temperature;
   * cos/sin are then scaled by `yarnMscale(s, mscale) / yarnMscale(s, mscaleAllDim)`.
   * @default {mscale}
   */
  mscaleAllDim?: number;
}

/** Defaults of the optional {@linkcode YarnConfig} fields (DeepSeek-V3 config.json). */
export const YARN_DEFAULTS: Required<Pick<YarnConfig, "betaFast" | "betaSlow" | "mscale">> = {
  betaFast: 32, // beta_fast (YaRN suggests α = 1, β = 32 for LLaMA)
  betaSlow: 1, // beta_slow
  mscale: 1, // rope_scaling.mscale (and mscale_all_dim) in V3
};

/** Configuration of {@linkcode Rope}. */
export interface RopeConfig {
  /** `d`, rotary dims per head (V3: qk_rope_head_dim = 64); even. */
  dim: number;
  /**
   * `θ`, the frequency base.
   * @default {10000}
   */
  theta?: number;
  /** YaRN scaling; `null` for plain RoPE. @default {null} */
  yarn?: YarnConfig | null;
}

/** Defaults of {@linkcode RopeConfig}. */
export const ROPE_DEFAULTS: Required<Pick<RopeConfig, "theta" | "yarn">> = {
  theta: 10000, // rope_theta in DeepSeek-V3 config.json
  yarn: null,
};

/**
 * The YaRN attention temperature `0.1 · mscale · ln s + 1` (1 when `s ≤ 1`); V3 multiplies the
 * softmax scale `(d_h + d_h^R)^-0.5` by its square.
 *
 * @param factor `s`, the context extension factor.
 * @param options `mscale` multiplier.
 * @returns The temperature.
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { yarnMscale } from "./mod.ts";
 * assertAllClose(yarnMscale(40), 0.1 * Math.log(40) + 1);
 * assertAllClose(yarnMscale(1), 1);
 * ```
 */
export function yarnMscale(factor: number, options: { mscale?: number } = {}): number {
  const { mscale = YARN_DEFAULTS.mscale } = options;
  return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1; // YaRN temperature √(1/t), arXiv:2309.00071
}

/**
 * Rotation frequencies `f_j` (radians per position) of the `d/2` pairs, YaRN-adjusted when
 * `config.yarn` is set.
 *
 * @param config Dims, base and YaRN settings.
 * @returns `Float64Array` of length `d/2`.
 *
 * @example Plain RoPE: `f_j = θ^(-2j/d)`
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { ropeFrequencies } from "./mod.ts";
 * assertAllClose(ropeFrequencies({ dim: 4, theta: 100 }), [1, 0.1]);
 * ```
 */
export function ropeFrequencies(config: RopeConfig): Float64Array {
  const { dim, theta, yarn } = { ...ROPE_DEFAULTS, ...config };
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0) {
    throw new Error(
      `Cannot build RoPE frequencies for dim ${dim}: expected a positive even integer`,
    );
  }
  const half = dim / 2;
  const freqs = new Float64Array(half);
  for (let j = 0; j < half; j++) freqs[j] = theta ** (-(2 * j) / dim); // f_j = θ^(-2j/d)
  if (yarn === null) return freqs;
  const { factor, originalMaxPositionEmbeddings: len, betaFast, betaSlow } = {
    ...YARN_DEFAULTS,
    ...yarn,
  };
  // Pair index whose wavelength 2π/f_j fits `rotations` times into L (YaRN r(d) = L / λ_d).
  const pairAt = (rotations: number) =>
    (dim * Math.log(len / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  const low = Math.max(Math.floor(pairAt(betaFast)), 0);
  let high = Math.min(Math.ceil(pairAt(betaSlow)), dim - 1);
  if (low === high) high += 0.001; // V3 code: avoid dividing by zero
  for (let j = 0; j < half; j++) {
    const ramp = Math.min(Math.max((j - low) / (high - low), 0), 1); // 0: keep, 1: interpolate
    freqs[j] = (freqs[j] / factor) * ramp + freqs[j] * (1 - ramp); // NTK-by-parts: [d/2]
  }
  return freqs;
}

/** Options for {@linkcode applyRope}. */
export interface ApplyRopeOptions {
  /**
   * Position of the first of the `T` tokens (the number already in the KV cache).
   * @default {0}
   */
  offset?: number;
  /**
   * Factor on cos and sin (Hugging Face YaRN's `mscale / mscale_all_dim` temperature ratio).
   * @default {1}
   */
  scale?: number;
}

/**
 * Rotate adjacent pairs of `x` by `e^{i p f_j}` at positions `p = offset .. offset + T - 1`.
 *
 * @param x Queries or keys `[B, T, H, d]`.
 * @param freqs `f_j` from {@linkcode ropeFrequencies}, length `d/2`.
 * @param options `offset`.
 * @returns `[B, T, H, d]`.
 *
 * @example A pair at position 1 with f = π/2 turns by 90°
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tensor } from "../tensor/mod.ts";
 * import { applyRope } from "./mod.ts";
 * const x = tensor([1, 0], { shape: [1, 1, 1, 2] });
 * assertAllClose(applyRope(x, Float64Array.of(Math.PI / 2), { offset: 1 }), [0, 1]);
 * ```
 */
export function applyRope(x: Tensor, freqs: Float64Array, options: ApplyRopeOptions = {}): Tensor {
  const { offset = 0, scale = 1 } = options;
  const half = freqs.length;
  if (x.rank !== 4 || x.shape[3] !== 2 * half) {
    throw new Error(
      `Cannot apply RoPE with ${half} frequency pairs to input [${
        x.shape.join(", ")
      }]: expected [B, T, H, ${2 * half}]`,
    );
  }
  const t = x.shape[1];
  const cosHost = new Float64Array(t * half), sinHost = new Float64Array(t * half);
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < half; j++) {
      const angle = (offset + i) * freqs[j]; // p f_j
      cosHost[i * half + j] = scale * Math.cos(angle);
      sinHost[i * half + j] = scale * Math.sin(angle);
    }
  }
  const opts = { backend: x.backend, shape: [t, half] };
  const cos = tensor(cosHost, opts), sin = tensor(sinHost, opts); // [T, d/2]
  // z_j e^{ipf_j} on pairs z_j = x_2j + i x_2j+1, one fused kernel where available: [B, T, H, d]
  return ropeRotate(x, { cos, sin });
}

/**
 * RoPE / YaRN for one attention layer; it has no parameters.
 *
 * @example Decoding one token at position 5 equals position 5 of a full pass
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { randn, Rng, slice } from "../tensor/mod.ts";
 * import { Rope } from "./mod.ts";
 * const rope = new Rope({ dim: 8, yarn: { factor: 4, originalMaxPositionEmbeddings: 16 } });
 * const q = randn([1, 6, 2, 8], { rng: new Rng(0) });
 * const last = slice(q, 1, 5, 6);
 * assertAllClose(rope.forward(last, { offset: 5 }), slice(rope.forward(q), 1, 5, 6), { atol: 1e-6 });
 * ```
 */
export class Rope implements Module {
  /** The resolved configuration. */
  readonly config: Required<RopeConfig>;
  /** `f_j`, length `d/2` (YaRN-adjusted). */
  readonly freqs: Float64Array;
  /** `mscale²` to multiply the softmax scale by (1 without YaRN). */
  readonly attentionFactor: number;
  /** Factor on cos/sin: `yarnMscale(s, mscale) / yarnMscale(s, mscaleAllDim)` (usually 1). */
  readonly magnitude: number;

  /**
   * Precompute the frequencies.
   *
   * @param config See {@linkcode RopeConfig}.
   */
  constructor(config: RopeConfig) {
    this.config = { ...ROPE_DEFAULTS, ...config };
    this.freqs = ropeFrequencies(this.config);
    const yarn = this.config.yarn;
    const m = yarn === null ? 1 : yarnMscale(yarn.factor, { mscale: yarn.mscale });
    const mAll = yarn?.mscaleAllDim === undefined
      ? m
      : yarnMscale(yarn.factor, { mscale: yarn.mscaleAllDim });
    this.attentionFactor = mAll * mAll;
    this.magnitude = m / mAll;
  }

  /**
   * Rotate `x` at positions `offset ..`.
   *
   * @param x `[B, T, H, d]`.
   * @param options `offset` (tokens already cached).
   * @returns `[B, T, H, d]`.
   */
  forward(x: Tensor, options: ApplyRopeOptions = {}): Tensor {
    if (this.magnitude === 1) return applyRope(x, this.freqs, options);
    return applyRope(x, this.freqs, { scale: this.magnitude, ...options });
  }

  /** No parameters: an empty map. */
  parameters(): Map<string, Tensor> {
    return new Map();
  }
}
