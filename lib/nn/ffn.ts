/**
 * SwiGLU feed-forward network (Shazeer 2020, arXiv:2002.05202 eq. 6), DeepSeek-V3's dense FFN
 * and expert (arXiv:2412.19437 §2; inference/model.py `MLP`, `Expert`):
 * `FFN(x) = W2 (silu(W1 x) ⊙ W3 x)`, bias-free. Hugging Face names: `gate_proj` = W1,
 * `up_proj` = W3, `down_proj` = W2 (each `.weight`, stored `[out, in]`).
 *
 * Shapes: `...` leading dims (`B, T`), `d` model width, `d_ff` hidden width
 * (V3: d = 7168, d_ff = 18432 dense, 2048 per expert).
 *
 * @module
 */

import { type Rng, swigluGate, type Tensor } from "../tensor/mod.ts";
import { Linear, linear } from "./linear.ts";
import { type Module, parameterMap } from "./module.ts";

/** Configuration of a {@linkcode SwiGlu} FFN. */
export interface SwiGluConfig {
  /** `d`, model width: the input and output width. */
  dModel: number;
  /**
   * `d_ff`, hidden width (V3 `intermediate_size` / `moe_intermediate_size`).
   * @default {round(8/3 · dModel)}
   */
  hidden?: number;
  /**
   * Standard deviation of the normal init of all three weights.
   * @default {0.02}
   */
  initStd?: number;
}

/** Defaults of {@linkcode SwiGluConfig}; the hidden width is {@linkcode swigluHidden}. */
export const SWIGLU_DEFAULTS = {
  /** `d_ff / d` = 8/3: LLaMA's ratio, the parameters of a 4·d GELU FFN (683 at d = 256). */
  hiddenRatio: 8 / 3,
  /** DeepSeek-V3 config.json initializer_range. */
  initStd: 0.02,
} as const;

/**
 * The default hidden width of a SwiGLU FFN: `round(8/3 · dModel)`.
 *
 * @param dModel `d`, the model width.
 * @returns `d_ff`.
 *
 * @example The docs/design.md §6 model: d = 256 gives 683
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { swigluHidden } from "./ffn.ts";
 * strictEqual(swigluHidden(256), 683);
 * ```
 */
export function swigluHidden(dModel: number): number {
  return Math.round(SWIGLU_DEFAULTS.hiddenRatio * dModel);
}

/** The three SwiGLU weights, `[out, in]` each. */
export interface SwiGluWeights {
  /** `W1: [d_ff, d]` (HF `gate_proj.weight`). */
  gateProj: Tensor;
  /** `W3: [d_ff, d]` (HF `up_proj.weight`). */
  upProj: Tensor;
  /** `W2: [d, d_ff]` (HF `down_proj.weight`). */
  downProj: Tensor;
}

/**
 * `W2 (silu(W1 x) ⊙ W3 x)`, the functional form of {@linkcode SwiGlu}, in full precision (the
 * layer's own `forward` goes through its Linears, which run in FP8 inside `withFp8`).
 *
 * @param x Input `[..., d]`.
 * @param weights `gateProj`, `upProj`, `downProj`.
 * @returns `[..., d]`.
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tensor } from "../tensor/mod.ts";
 * import { swiglu } from "./mod.ts";
 * const w = { gateProj: tensor([[1]]), upProj: tensor([[2]]), downProj: tensor([[3]]) };
 * const silu1 = 1 / (1 + Math.exp(-1));
 * assertAllClose(swiglu(tensor([[1]]), w), [[3 * silu1 * 2]]);
 * ```
 */
export function swiglu(x: Tensor, weights: SwiGluWeights): Tensor {
  const gate = linear(x, weights.gateProj); // W1 x: [..., d_ff]
  const up = linear(x, weights.upProj); // W3 x: [..., d_ff]
  const h = swigluGate(gate, up); // silu(W1 x) ⊙ W3 x, fused where available: [..., d_ff]
  return linear(h, weights.downProj); // W2 (silu(W1 x) ⊙ W3 x), eq. (6): [..., d]
}

/**
 * SwiGLU FFN layer with parameters `gate_proj.weight`, `up_proj.weight`, `down_proj.weight`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { SwiGlu } from "./mod.ts";
 * const rng = new Rng(0);
 * const ffn = new SwiGlu({ dModel: 8, hidden: 16 }, rng);
 * deepStrictEqual(ffn.forward(randn([2, 3, 8], { rng })).shape, [2, 3, 8]);
 * deepStrictEqual([...ffn.parameters().keys()], [
 *   "gate_proj.weight",
 *   "up_proj.weight",
 *   "down_proj.weight",
 * ]);
 * ```
 */
export class SwiGlu implements Module {
  /** The resolved configuration. */
  readonly config: Required<SwiGluConfig>;
  /** `W1`: `[d_ff, d]`. */
  readonly gateProj: Linear;
  /** `W3`: `[d_ff, d]`. */
  readonly upProj: Linear;
  /** `W2`: `[d, d_ff]`. */
  readonly downProj: Linear;

  /**
   * Create the layer; weights are drawn from `rng` in the order W1, W3, W2.
   *
   * @param config Widths and init, see {@linkcode SwiGluConfig}.
   * @param rng Seeded generator for the init.
   */
  constructor(config: SwiGluConfig, rng: Rng) {
    this.config = {
      dModel: config.dModel,
      hidden: config.hidden ?? swigluHidden(config.dModel),
      initStd: config.initStd ?? SWIGLU_DEFAULTS.initStd,
    };
    const { dModel, hidden, initStd } = this.config;
    this.gateProj = new Linear({ inFeatures: dModel, outFeatures: hidden, initStd }, rng);
    this.upProj = new Linear({ inFeatures: dModel, outFeatures: hidden, initStd }, rng);
    this.downProj = new Linear({ inFeatures: hidden, outFeatures: dModel, initStd }, rng);
  }

  /**
   * Apply the FFN.
   *
   * @param x `[..., d]`.
   * @returns `[..., d]`.
   */
  forward(x: Tensor): Tensor {
    // Each product through its Linear, so the GEMMs run in FP8 inside `withFp8` (V3 §3.3: the
    // FFN and expert GEMMs are FP8) and FP8 weights held as codes work (lib/fp8/weights.ts).
    const gate = this.gateProj.forward(x); // W1 x: [..., d_ff]
    const up = this.upProj.forward(x); // W3 x: [..., d_ff]
    const h = swigluGate(gate, up); // silu(W1 x) ⊙ W3 x, fused where available: [..., d_ff]
    return this.downProj.forward(h); // W2 (silu(W1 x) ⊙ W3 x), eq. (6): [..., d]
  }

  /** `gate_proj.weight`, `up_proj.weight`, `down_proj.weight`. */
  parameters(): Map<string, Tensor> {
    return parameterMap({
      gate_proj: this.gateProj,
      up_proj: this.upProj,
      down_proj: this.downProj,
    });
  }
}
