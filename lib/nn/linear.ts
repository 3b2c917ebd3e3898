/**
 * Linear (fully connected) layer in the PyTorch / Hugging Face layout: the weight is stored
 * `[out, in]` and applied as `y = x Wᵀ + b`, so DeepSeek-V3 checkpoint tensors load unchanged.
 *
 * Init: `W ~ N(0, σ²)` with `σ = initStd`, default 0.02, which is DeepSeek-V3's
 * `initializer_range` (config.json; the report's §4.2 states std 0.006 for the full model);
 * bias starts at zero. Pass `initStd: 1 / Math.sqrt(inFeatures)` for fan-in scaling.
 *
 * Shapes: `...` any leading dims (`B, T`), `d_in` input features, `d_out` output features.
 *
 * @module
 */

import { add, matmul, type Rng, type Tensor, transpose, zeros } from "../tensor/mod.ts";
import { type Module, normalParameter, parameterMap } from "./module.ts";
import { currentFp8, fp8Linear } from "../fp8/linear.ts";
import { fp8WeightLinear } from "../fp8/weights.ts";

/** Configuration of a {@linkcode Linear} layer. */
export interface LinearConfig {
  /** `d_in`, features per input row. */
  inFeatures: number;
  /** `d_out`, features per output row. */
  outFeatures: number;
  /**
   * Add a learned bias `b: [d_out]` (DeepSeek-V3's projections have none).
   * @default {false}
   */
  bias?: boolean;
  /**
   * Standard deviation of the normal weight init.
   * @default {0.02}
   */
  initStd?: number;
}

/** Defaults of {@linkcode LinearConfig}. */
export const LINEAR_DEFAULTS: Required<Pick<LinearConfig, "bias" | "initStd">> = {
  bias: false, // V3 attention, MoE and MLP projections are bias-free
  initStd: 0.02, // DeepSeek-V3 config.json initializer_range
};

/** Options for {@linkcode linear}. */
export interface LinearOptions {
  /** Bias `b: [d_out]` (default: none). */
  bias?: Tensor | null;
}

/**
 * `y = x Wᵀ + b` with `W: [d_out, d_in]` (the functional form of {@linkcode Linear}).
 *
 * @param x Input `[..., d_in]`.
 * @param weight Weight `[d_out, d_in]`.
 * @param options Optional `bias: [d_out]`.
 * @returns `[..., d_out]`.
 *
 * @example
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { tensor } from "../tensor/mod.ts";
 * import { linear } from "./mod.ts";
 * const w = tensor([[1, 0], [1, 1], [0, 2]]); // [d_out = 3, d_in = 2]
 * assertAllClose(linear(tensor([[1, 2]]), w, { bias: tensor([0, 0, 1]) }), [[1, 3, 5]]);
 * ```
 */
export function linear(x: Tensor, weight: Tensor, options: LinearOptions = {}): Tensor {
  const d = x.shape.at(-1);
  if (weight.rank !== 2 || d !== weight.shape[1]) {
    throw new Error(
      `Cannot apply a linear layer of weight [${weight.shape.join(", ")}] to input [${
        x.shape.join(", ")
      }]: expected weight [d_out, ${d}]`,
    );
  }
  const y = matmul(x, transpose(weight)); // x Wᵀ: [..., d_out]
  return options.bias ? add(y, options.bias) : y; // + b: [..., d_out]
}

/**
 * A linear layer `y = x Wᵀ (+ b)`; parameters `weight: [d_out, d_in]` and optional `bias`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { Linear } from "./mod.ts";
 * const rng = new Rng(0);
 * const proj = new Linear({ inFeatures: 8, outFeatures: 4 }, rng);
 * deepStrictEqual(proj.forward(randn([2, 3, 8], { rng })).shape, [2, 3, 4]);
 * deepStrictEqual([...proj.parameters().keys()], ["weight"]);
 * ```
 */
export class Linear implements Module {
  /** The resolved configuration. */
  readonly config: Required<LinearConfig>;
  /** `W: [d_out, d_in]`; a checkpoint loader may replace it with a tensor of the same shape. */
  weight: Tensor;
  /** `b: [d_out]`, or `null` without bias. */
  bias: Tensor | null;
  /** Stay in full precision inside `withFp8` (V3: output head, MoE gate). */
  fp8Exempt = false;
  /**
   * With an FP8 weight held as E4M3 codes (`weight` is then `u8`, see `lib/fp8/weights.ts`):
   * its 128×128 block scales `[⌈d_out / 128⌉, ⌈d_in / 128⌉]` (`weight_scale_inv`); else `null`.
   */
  weightScaleInv: Tensor | null = null;

  /**
   * Create the layer with `W ~ N(0, initStd²)` drawn from `rng` and `b = 0`.
   *
   * @param config Sizes and options, see {@linkcode LinearConfig}.
   * @param rng Seeded generator for the init.
   */
  constructor(config: LinearConfig, rng: Rng) {
    this.config = { ...LINEAR_DEFAULTS, ...config };
    const { inFeatures, outFeatures, bias, initStd } = this.config;
    this.weight = normalParameter([outFeatures, inFeatures], { rng, std: initStd });
    this.bias = bias ? zeros([outFeatures], { requiresGrad: true }) : null;
  }

  /**
   * Apply the layer.
   *
   * @param x Input `[..., d_in]`.
   * @returns `[..., d_out]`.
   */
  forward(x: Tensor): Tensor {
    const fp8 = this.fp8Exempt ? null : currentFp8();
    if (this.weightScaleInv !== null) {
      const y = fp8WeightLinear(x, this.weight, this.weightScaleInv, fp8); // held FP8 weight
      return this.bias === null ? y : add(y, this.bias);
    }
    if (fp8 === null) return linear(x, this.weight, { bias: this.bias });
    const y = fp8Linear(x, this.weight, fp8); // V3 §3.3: the GEMMs in FP8
    return this.bias === null ? y : add(y, this.bias);
  }

  /** `weight`, with an FP8 weight `weight_scale_inv`, and with a bias `bias`. */
  parameters(): Map<string, Tensor> {
    return parameterMap({
      weight: this.weight,
      weight_scale_inv: this.weightScaleInv,
      bias: this.bias,
    });
  }
}
