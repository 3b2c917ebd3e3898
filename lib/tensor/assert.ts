/**
 * Tensor assertions for tests and doc examples (the std `assertEquals` substitute plus
 * `assertAllClose`), built on `node:assert/strict`.
 *
 * @module
 */

import { AssertionError, deepStrictEqual } from "node:assert/strict";
import { formatShape } from "./shape.ts";
import { Tensor } from "./tensor.ts";

/** Deep equality (re-export of `node:assert/strict` `deepStrictEqual`). */
export const assertEquals: typeof deepStrictEqual = deepStrictEqual;

/** Tolerances for {@linkcode assertAllClose}: pass when `|a − e| ≤ atol + rtol·|e|`. */
export interface AllCloseOptions {
  /** @default {1e-6} */
  atol?: number;
  /** @default {1e-5} */
  rtol?: number;
  /** Prefix for the failure message. */
  message?: string;
}

type Numeric = Tensor | ArrayLike<number> | number | readonly Numeric[];

function toFlat(x: Numeric): { values: ArrayLike<number>; shape: number[] | null } {
  if (x instanceof Tensor) return { values: x.dataSync(), shape: [...x.shape] };
  if (typeof x === "number") return { values: [x], shape: null };
  if (ArrayBuffer.isView(x)) return { values: x as ArrayLike<number>, shape: null };
  const out: number[] = [];
  const walk = (v: Numeric) => {
    if (typeof v === "number") out.push(v);
    else if (v instanceof Tensor) out.push(...Array.from(v.dataSync()));
    else {for (let i = 0; i < (v as ArrayLike<Numeric>).length; i++) {
        walk((v as ArrayLike<Numeric>)[i]);
      }}
  };
  walk(x);
  return { values: out, shape: null };
}

/**
 * Assert `actual` ≈ `expected` elementwise (NaN matches NaN, ±Infinity must match exactly).
 * Tensors must be readable synchronously (cpu backends); a scalar `expected` is broadcast.
 *
 * @example
 * ```ts
 * import { tensor } from "./mod.ts";
 * import { assertAllClose } from "./assert.ts";
 * assertAllClose(tensor([1, 2]), [1, 2.0000001]);
 * ```
 */
export function assertAllClose(
  actual: Numeric,
  expected: Numeric,
  options: AllCloseOptions = {},
): void {
  const { atol = 1e-6, rtol = 1e-5 } = options;
  const a = toFlat(actual), e = toFlat(expected);
  if (a.shape && e.shape && formatShape(a.shape) !== formatShape(e.shape)) {
    throw new AssertionError({
      message: `${options.message ?? "Tensors differ"}: shape ${formatShape(a.shape)} vs ${
        formatShape(e.shape)
      }`,
    });
  }
  const broadcast = e.values.length === 1 && a.values.length !== 1;
  if (!broadcast && a.values.length !== e.values.length) {
    throw new AssertionError({
      message: `${
        options.message ?? "Tensors differ"
      }: ${a.values.length} vs ${e.values.length} elements`,
    });
  }
  let worst = -1, worstExcess = 0;
  let count = 0;
  for (let i = 0; i < a.values.length; i++) {
    const x = a.values[i], y = e.values[broadcast ? 0 : i];
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    const excess = Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (!(excess <= 0)) {
      count++;
      if (worst < 0 || excess > worstExcess || Number.isNaN(excess)) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (worst >= 0) {
    const x = a.values[worst], y = e.values[broadcast ? 0 : worst];
    throw new AssertionError({
      message: `${options.message ?? "Values differ"}: ${count} of ${a.values.length} elements ` +
        `outside atol ${atol}, rtol ${rtol}; worst at flat index ${worst}: ${x} vs expected ${y} ` +
        `(|diff| ${Math.abs(x - y)})`,
    });
  }
}
