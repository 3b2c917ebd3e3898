/**
 * RMSNorm (Zhang & Sennrich 2019, arXiv:1910.07467, eq. 4), as used throughout DeepSeek-V3
 * (arXiv:2412.19437 §2; inference/model.py `RMSNorm`, eps 1e-6):
 * `y = x / sqrt(mean(x²) + eps) ⊙ g`, normalising over the last axis, with no mean subtraction
 * and no bias. The gain `g` starts at one and is named `weight` (HF `input_layernorm.weight`).
 *
 * Shapes: `...` any leading dims (`B, T`), `d` the normalised features.
 *
 * @module
 */

import { ones, rmsNormalize, type Tensor } from "../tensor/mod.ts";
import { type Module, parameterMap } from "./module.ts";

/** Configuration of an {@linkcode RmsNorm} layer. */
export interface RmsNormConfig {
  /** `d`, size of the normalised last axis. */
  dim: number;
  /**
   * Added to `mean(x²)` before the square root.
   * @default {1e-6}
   */
  eps?: number;
}

/** Defaults of {@linkcode RmsNormConfig}. */
export const RMS_NORM_DEFAULTS: Required<Pick<RmsNormConfig, "eps">> = {
  eps: 1e-6, // DeepSeek-V3 config.json rms_norm_eps
};

/** Options for {@linkcode rmsNorm}. */
export interface RmsNormOptions {
  /** @default {1e-6} */
  eps?: number;
  /**
   * Use the backend's fused RMSNorm kernels when it has them; `false` forces the composed ops.
   * @default {true}
   */
  fused?: boolean;
}

/**
 * `y = x / sqrt(mean(x²) + eps) ⊙ g` over the last axis (functional {@linkcode RmsNorm}).
 *
 * @param x Input `[..., d]`.
 * @param weight Gain `g: [d]`.
 * @param options `eps`.
 * @returns `[..., d]`.
 *
 * @example Each row gets root-mean-square one
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { ones, tensor } from "../tensor/mod.ts";
 * import { rmsNorm } from "./mod.ts";
 * const y = rmsNorm(tensor([[3, 4]]), ones([2]), { eps: 0 });
 * assertAllClose(y, [[3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)]]);
 * ```
 */
export function rmsNorm(x: Tensor, weight: Tensor, options: RmsNormOptions = {}): Tensor {
  const { eps = RMS_NORM_DEFAULTS.eps, fused = true } = options;
  return rmsNormalize(x, weight, { eps, fused }); // eq. (4), arXiv:1910.07467: [..., d]
}

/**
 * RMSNorm layer with a learned gain `weight: [d]` (initialised to ones).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { RmsNorm } from "./mod.ts";
 * const norm = new RmsNorm({ dim: 8 });
 * deepStrictEqual(norm.forward(randn([2, 3, 8], { rng: new Rng(0) })).shape, [2, 3, 8]);
 * deepStrictEqual([...norm.parameters().keys()], ["weight"]);
 * ```
 */
export class RmsNorm implements Module {
  /** The resolved configuration. */
  readonly config: Required<RmsNormConfig>;
  /** Gain `g: [d]`; a checkpoint loader may replace it with a tensor of the same shape. */
  weight: Tensor;

  /**
   * Create the layer with `g = 1` (no randomness, so no `Rng`).
   *
   * @param config `dim` and `eps`, see {@linkcode RmsNormConfig}.
   */
  constructor(config: RmsNormConfig) {
    this.config = { ...RMS_NORM_DEFAULTS, ...config };
    this.weight = ones([this.config.dim], { requiresGrad: true });
  }

  /**
   * Normalise the last axis.
   *
   * @param x Input `[..., d]`.
   * @returns `[..., d]`.
   */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, { eps: this.config.eps });
  }

  /** `weight`. */
  parameters(): Map<string, Tensor> {
    return parameterMap({ weight: this.weight });
  }
}
