/**
 * Test helpers: a float64 cpu backend, seeded inputs, and `checkOp`, which compares an op's
 * analytic gradient with central differences (tinygrad's helper_test_op, in f64).
 *
 * @module
 */

import { AssertionError, ok } from "node:assert/strict";
import { CpuBackend } from "../lib/backend/cpu.ts";
import { withBackend } from "../lib/backend/mod.ts";
import { assertAllClose } from "../lib/tensor/assert.ts";
import { noGrad, type Shape, shapeSize, type Tensor } from "../lib/tensor/mod.ts";
import { mul, sum, tensor } from "../lib/tensor/mod.ts";
import { Rng } from "../lib/tensor/random.ts";

export { assertAllClose } from "../lib/tensor/assert.ts";

/** A float64 reference backend: central differences without f32 rounding noise. */
export const F64: CpuBackend = new CpuBackend({ float64: true });

/** Seeded normal samples as a plain array. */
export function randomArray(n: number, seed: number, scale = 1): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.normal(0, scale));
}

/** Options for {@linkcode checkOp}. */
export interface CheckOpOptions {
  /** Absolute tolerance between analytic and numeric gradients. @default {1e-6} */
  gradAtol?: number;
  /** Relative tolerance between analytic and numeric gradients. @default {1e-5} */
  gradRtol?: number;
  /** Central-difference step. @default {1e-6} */
  eps?: number;
  /** Seed for inputs and the upstream gradient. @default {0} */
  seed?: number;
  /** Map each random normal input value (e.g. `Math.abs` for log, sqrt). */
  transform?: (x: number, input: number) => number;
  /** Explicit input values per input (overrides random init). */
  values?: (readonly number[] | undefined)[];
}

/**
 * Gradient check on the float64 cpu backend: inputs of `shapes` with `requiresGrad`, loss
 * `L = Σ fn(inputs) ⊙ R` for a fixed random `R` (so every output element gets its own upstream
 * gradient), analytic `dL/dx` from `backward()` vs `(L(x + ε) − L(x − ε)) / 2ε` per element.
 */
export function checkOp(
  shapes: readonly Shape[],
  fn: (...inputs: Tensor[]) => Tensor,
  options: CheckOpOptions = {},
): void {
  const { gradAtol = 1e-6, gradRtol = 1e-5, eps = 1e-6, seed = 0 } = options;
  withBackend(F64, () => {
    const values = shapes.map((shape, i) => {
      const given = options.values?.[i];
      if (given) return [...given];
      const raw = randomArray(shapeSize(shape), seed * 101 + i);
      return options.transform ? raw.map((x) => options.transform?.(x, i) ?? x) : raw;
    });
    const make = (vals: number[][], grad: boolean) =>
      vals.map((v, i) => tensor(v, { shape: shapes[i], requiresGrad: grad }));
    const inputs = make(values, true);
    const out = fn(...inputs);
    const upstream = tensor(randomArray(out.size, seed * 101 + 99), { shape: out.shape });
    const loss = (t: Tensor) => sum(mul(t, upstream));
    loss(out).backward();
    inputs.forEach((input, i) => {
      const numeric = new Array<number>(input.size);
      for (let j = 0; j < input.size; j++) {
        const at = (delta: number) =>
          noGrad(() => {
            const shifted = values.map((v) => [...v]);
            shifted[i][j] += delta;
            return loss(fn(...make(shifted, false))).itemSync();
          });
        numeric[j] = (at(eps) - at(-eps)) / (2 * eps);
      }
      if (input.grad === null) {
        throw new AssertionError({ message: `Input ${i} received no gradient` });
      }
      assertAllClose(input.grad, numeric, {
        atol: gradAtol,
        rtol: gradRtol,
        message: `Gradient of input ${i} (shape [${shapes[i].join(", ")}])`,
      });
    });
  });
}

/** The gradient of `t`, failing the test if backward() left none. */
export function gradOf(t: Tensor): Tensor {
  if (t.grad === null) throw new AssertionError({ message: `${t} has no gradient` });
  return t.grad;
}

/**
 * `got` (from any backend, read asynchronously: WebGPU too) has `want`'s shape and values within
 * `atol + rtol · |want|` elementwise; `name` labels a failure. `want` must read synchronously
 * (the cpu reference).
 */
export async function assertTensorClose(
  name: string,
  got: Tensor,
  want: Tensor,
  atol: number,
  rtol: number,
): Promise<void> {
  ok(got.shape.join() === want.shape.join(), `${name}: shape ${got.shape} vs ${want.shape}`);
  assertAllClose(Array.from(await got.data()), Array.from(want.dataSync()), {
    atol,
    rtol,
    message: name,
  });
}
