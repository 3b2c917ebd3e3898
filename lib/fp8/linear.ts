/**
 * FP8 training of Linear layers, simulated (DeepSeek-V3 §3.3, Figure 6): the three GEMMs of a
 * Linear — forward `y = x Wᵀ`, input gradient `dX = dY W`, weight gradient `dW = dYᵀ x` — take
 * their operands quantised to E4M3 with fine-grained scales (activations and output gradients
 * per 1×128 tile along the channels, weights per 128×128 block), while everything else
 * (embedding, output head, MoE gating, norms, the attention core) stays in FP32.
 *
 * Simulation model: each operand is quantised and dequantised exactly as `lib/fp8/scaling.ts`
 * defines (bit-exact E4M3 rounding, amax scaling, saturation), then multiplied in FP32. Products
 * of FP8 values are exact in FP32, and FP32 accumulation is what V3's promotion every N_C = 128
 * elements approximates, so this models the promoted GEMM; the error of an unpromoted
 * accumulator is measured separately on typed arrays (`gemm.ts`).
 *
 * Which layers: a `Linear` runs in FP8 inside {@linkcode withFp8} unless marked
 * `fp8Exempt` (the output head and the MoE gate are). Quantisation runs on the host, so FP8
 * runs need a backend with synchronous reads (cpu, wasm).
 *
 * @module
 */

import { matmul, record, reshape, type Tensor, tensor, transpose } from "../tensor/mod.ts";
import { dequantizeFp8, type Fp8Granularity, quantizeFp8 } from "./scaling.ts";

/** FP8 settings of a model (the `fp8` part of a ModelConfig). */
export interface Fp8LinearSpec {
  /** `tile`: activations 1×128, weights 128×128 (V3); `block`: 128×128 both; `tensor`: one scale. */
  granularity: "tensor" | "tile" | "block";
}

let current: Fp8LinearSpec | null = null;

/** The FP8 setting in effect for Linear layers (`null` = full precision). */
export function currentFp8(): Fp8LinearSpec | null {
  return current;
}

/** Run `fn` with Linear layers in FP8 (`spec` non-null) or in full precision. */
export function withFp8<T>(spec: Fp8LinearSpec | null, fn: () => T): T {
  const previous = current;
  current = spec;
  try {
    return fn();
  } finally {
    current = previous;
  }
}

/** Quantise-dequantise a 2-D tensor `[rows, cols]` (no graph): the values an FP8 GEMM sees. */
export function fp8RoundTrip(x: Tensor, granularity: Fp8Granularity): Tensor {
  if (!x.backend.canReadSync) {
    throw new Error(
      `Cannot simulate FP8 on the '${x.backend.name}' backend: it needs synchronous reads (cpu or wasm)`,
    );
  }
  const [rows, cols] = x.shape as [number, number];
  const data = Float32Array.from(x.dataSync());
  const q = quantizeFp8(data, [rows, cols], { granularity });
  return tensor(dequantizeFp8(q), { shape: [rows, cols], backend: x.backend });
}

function granularities(spec: Fp8LinearSpec): { act: Fp8Granularity; weight: Fp8Granularity } {
  switch (spec.granularity) {
    case "tensor":
      return { act: "tensor", weight: "tensor" };
    case "tile":
      return { act: "tile", weight: "block" };
    case "block":
      return { act: "block", weight: "block" };
    default:
      throw new Error(`Unknown FP8 granularity '${spec.granularity satisfies never}'`);
  }
}

/**
 * `y = x Wᵀ` with the three GEMMs on FP8-quantised operands (see the module doc).
 * `x: [..., d_in]`, `weight: [d_out, d_in]` → `[..., d_out]`.
 *
 * @example FP8 changes the result by less than E4M3's precision
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { matmul, randn, Rng, transpose } from "../tensor/mod.ts";
 * import { fp8Linear } from "./linear.ts";
 * const rng = new Rng(0);
 * const x = randn([4, 8], { rng }), w = randn([3, 8], { rng });
 * const exact = matmul(x, transpose(w)).dataSync(), q = fp8Linear(x, w, { granularity: "tile" }).dataSync();
 * ok(q.every((v, i) => Math.abs(v - exact[i]) < 0.2 * (1 + Math.abs(exact[i]))));
 * ```
 */
export function fp8Linear(x: Tensor, weight: Tensor, spec: Fp8LinearSpec): Tensor {
  const { act, weight: wg } = granularities(spec);
  const lead = x.shape.slice(0, -1), din = x.shape[x.rank - 1], dout = weight.shape[0];
  const x2 = reshape(x, [-1, din]);
  const xq = fp8RoundTrip(x2, act), wq = fp8RoundTrip(weight, wg);
  const y = matmul(xq, transpose(wq)).detach();
  const out = record(y, "fp8Linear", [x2, weight], (dy) => {
    // Output gradients are activations of the backward pass: 1×128 tiles (E4M3 in V3).
    const dyq = fp8RoundTrip(dy, act);
    return [
      x2.requiresGrad ? matmul(dyq, wq) : null, // dX = dY · W     [N, d_in]
      weight.requiresGrad ? matmul(transpose(dyq), xq) : null, // dW = dYᵀ · X  [d_out, d_in]
    ];
  });
  return reshape(out, [...lead, dout]);
}
