/**
 * FP8 on tensors: quantise, dequantise and the simulated FP8 GEMM of `scaling.ts` and `gemm.ts`
 * as Backend operations ({@linkcode Backend.fp8Quantize}, {@linkcode Backend.fp8Dequantize},
 * {@linkcode Backend.fp8Matmul}), so they run where the tensors live — cpu, wasm or WebGPU —
 * without a host round trip. The cpu backend runs the typed-array definitions themselves; the
 * wasm and WebGPU kernels give the same codes and scales bit for bit
 * (tests/backend/fp8_test.ts). None of these ops records a gradient: `linear.ts` builds FP8
 * training from them.
 *
 * Shape letters: `R` rows, `C` columns; `M`, `K`, `N` of a GEMM `[M, K] · [K, N]`.
 *
 * @module
 */

import type { Backend, Fp8BlockSpec } from "../backend/backend.ts";
import { reshape, Tensor } from "../tensor/mod.ts";
import { E4M3 } from "./format.ts";
import type { Fp8MatmulOptions } from "./gemm.ts";
import { type QuantizeFp8Options, scaleGridShape } from "./scaling.ts";

/** A quantised matrix on a backend: FP8 codes, their scales, and the blocks the scales cover. */
export interface Fp8Tensor {
  /** `u8 [R, C]`: one code per value. */
  readonly codes: Tensor;
  /** `f32` over the grid of blocks (`scaleGridShape`): `value = decode(code) · scale`. */
  readonly scales: Tensor;
  /** Rows, columns, blocks and format. */
  readonly spec: Fp8BlockSpec;
}

/** Options for {@linkcode quantizeFp8Tensor}: those of `quantizeFp8`, scales as a tensor. */
export interface QuantizeFp8TensorOptions extends Omit<QuantizeFp8Options, "scales"> {
  /** Scales to use, one per block (`f32` over the grid); from each block's amax if omitted. */
  scales?: Tensor;
}

function blockSpec(x: Tensor, options: QuantizeFp8TensorOptions, action: string): Fp8BlockSpec {
  if (x.rank !== 2) {
    throw new Error(`Cannot ${action} a tensor of shape [${x.shape.join(", ")}]: expected 2-D`);
  }
  const { granularity = "tile", tileSize = 128, format = E4M3 } = options;
  const spec: Fp8BlockSpec = {
    rows: x.shape[0],
    cols: x.shape[1],
    granularity,
    tileSize,
    format: format.name,
  };
  gridOf(spec); // checks granularity and tile size
  return spec;
}

/** `[⌈R / rows⌉, ⌈C / cols⌉]`: the grid of scales of `spec`'s blocks. */
function gridOf(spec: Fp8BlockSpec): [number, number] {
  return scaleGridShape([spec.rows, spec.cols], {
    granularity: spec.granularity,
    tileSize: spec.tileSize,
  });
}

/**
 * Quantise a 2-D `f32` tensor to FP8 with online scales (each block's current amax), on its
 * backend. No gradient.
 *
 * @param x `[R, C]`.
 * @param options Granularity (default 1×128 tiles), tile size, format (E4M3), saturation,
 *   amax floor and power-of-two scales, as `quantizeFp8`.
 * @returns The codes and scales as tensors.
 *
 * @example Codes and scales of a [2, 3] matrix, one scale per row
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "../tensor/mod.ts";
 * import { dequantizeFp8Tensor, quantizeFp8Tensor } from "./ops.ts";
 * const q = quantizeFp8Tensor(tensor([[1, 2, 448], [0.5, -0.5, 0.25]]));
 * deepStrictEqual(q.scales.shape, [2, 1]);
 * deepStrictEqual(Array.from(dequantizeFp8Tensor(q).dataSync()), [1, 2, 448, 0.5, -0.5, 0.25]);
 * ```
 */
export function quantizeFp8Tensor(
  x: Tensor,
  options: QuantizeFp8TensorOptions = {},
): Fp8Tensor {
  const spec = blockSpec(x, options, "quantize");
  if (x.dtype !== "f32") {
    throw new Error(`Cannot quantize a tensor of dtype '${x.dtype}': expected 'f32'`);
  }
  const { saturate = true, amaxFloor = 1e-4, powerOfTwo = false, scales: given } = options;
  const grid = gridOf(spec);
  if (given !== undefined) {
    checkBackend(given.backend, x.backend, "quantize");
    if (given.dtype !== "f32" || given.size !== grid[0] * grid[1]) {
      throw new Error(
        `Cannot quantize with ${given.size} ${given.dtype} scales: expected ${
          grid[0] * grid[1]
        } f32 scales for a [${grid.join(", ")}] grid`,
      );
    }
  }
  const { storage, owned } = x.contiguousStorage();
  const givenStorage = given?.contiguousStorage();
  const { codes, scales } = x.backend.fp8Quantize(
    storage,
    { ...spec, saturate, amaxFloor, powerOfTwo },
    givenStorage?.storage,
  );
  if (owned) x.backend.release(storage);
  const scaleTensor = given === undefined
    ? Tensor.fromStorage(x.backend, scales, grid)
    : givenStorage?.owned
    ? Tensor.fromStorage(x.backend, scales, grid)
    : reshape(given, grid);
  return { codes: Tensor.fromStorage(x.backend, codes, x.shape), scales: scaleTensor, spec };
}

/**
 * Dequantise: `decode(code) · scale` per value, on the codes' backend. No gradient.
 *
 * @param q A quantised matrix.
 * @returns `f32 [R, C]`.
 *
 * @example Values on the E4M3 grid come back exactly
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "../tensor/mod.ts";
 * import { dequantizeFp8Tensor, quantizeFp8Tensor } from "./ops.ts";
 * const x = tensor([[0.5, -448], [1.75, 0]]);
 * const y = dequantizeFp8Tensor(quantizeFp8Tensor(x, { granularity: "tensor" }));
 * deepStrictEqual(Array.from(y.dataSync()), [0.5, -448, 1.75, 0]);
 * ```
 */
export function dequantizeFp8Tensor(q: Fp8Tensor): Tensor {
  const backend = q.codes.backend;
  checkBackend(q.scales.backend, backend, "dequantize");
  const out = backend.fp8Dequantize(q.codes.storage, q.scales.storage, q.spec);
  return Tensor.fromStorage(backend, out, [q.spec.rows, q.spec.cols]);
}

/**
 * The simulated FP8 GEMM `C = A · B` with a limited accumulator promoted to FP32 every `N_C`
 * elements of K (`gemm.ts` defines it), on the operands' backend. No gradient.
 *
 * @param a `[M, K]`, quantised (1×128 tiles along K in V3).
 * @param b `[K, N]`, quantised (128×128 blocks in V3).
 * @param options Accumulator width (14) and rounding (`truncate`), promotion interval (128).
 * @returns `f32 [M, N]`.
 *
 * @example Equal to `fp8Matmul` of gemm.ts on the same operands
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "../tensor/mod.ts";
 * import { fp8MatmulTensor, quantizeFp8Tensor } from "./ops.ts";
 * import { fp8Matmul } from "./gemm.ts";
 * import { quantizeFp8 } from "./scaling.ts";
 * const x = Float32Array.from({ length: 2 * 256 }, (_, i) => Math.sin(i));
 * const w = Float32Array.from({ length: 256 * 3 }, (_, i) => Math.cos(i));
 * const a = quantizeFp8Tensor(tensor(Array.from(x), { shape: [2, 256] }));
 * const b = quantizeFp8Tensor(tensor(Array.from(w), { shape: [256, 3] }), { granularity: "block" });
 * const want = fp8Matmul(quantizeFp8(x, [2, 256]), quantizeFp8(w, [256, 3], { granularity: "block" }));
 * deepStrictEqual(fp8MatmulTensor(a, b).dataSync(), want);
 * ```
 */
export function fp8MatmulTensor(
  a: Fp8Tensor,
  b: Fp8Tensor,
  options: Fp8MatmulOptions = {},
): Tensor {
  const backend = a.codes.backend;
  for (const t of [a.scales, b.codes, b.scales]) checkBackend(t.backend, backend, "matmul");
  if (a.spec.cols !== b.spec.rows) {
    throw new Error(
      `Cannot matmul FP8 shapes [${a.spec.rows}, ${a.spec.cols}] and [${b.spec.rows}, ${b.spec.cols}]: expected A's columns to equal B's rows`,
    );
  }
  const { accumulatorBits = 14, accumulatorRounding = "truncate", promotionInterval = 128 } =
    options;
  const spec = {
    m: a.spec.rows,
    n: b.spec.cols,
    k: a.spec.cols,
    a: a.spec,
    b: b.spec,
    accumulatorBits,
    accumulatorRounding,
    promotionInterval,
  };
  const storages = (q: Fp8Tensor) => ({ codes: q.codes.storage, scales: q.scales.storage });
  const out = backend.fp8Matmul(storages(a), storages(b), spec);
  return Tensor.fromStorage(backend, out, [spec.m, spec.n]);
}

function checkBackend(got: Backend, want: Backend, action: string): void {
  if (got !== want) {
    throw new Error(
      `Cannot ${action} FP8 tensors on different backends ('${want.name}' and '${got.name}')`,
    );
  }
}
