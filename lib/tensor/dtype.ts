/**
 * Element types: `f32` for values and gradients, `i32` for indices and token ids, `u8` for
 * packed FP8 codes and bytes.
 *
 * @module
 */

import type { DType } from "../backend/backend.ts";

export type { DType } from "../backend/backend.ts";

/** Every dtype, for validation messages. */
export const DTYPES: readonly DType[] = ["f32", "i32", "u8"];

/** Throw unless `dtype` is one of `allowed`, naming the op and the dtype. */
export function checkDType(dtype: DType, allowed: readonly DType[], op: string): void {
  if (!allowed.includes(dtype)) {
    const list = allowed.map((d) => `'${d}'`).join(" or ");
    throw new TypeError(`Cannot ${op} a tensor of dtype '${dtype}': expected ${list}`);
  }
}

/** Throw unless `dtype` is a known dtype. */
export function parseDType(dtype: string): DType {
  if (!(DTYPES as readonly string[]).includes(dtype)) {
    throw new TypeError(`Unknown dtype '${dtype}': expected one of ${DTYPES.join(", ")}`);
  }
  return dtype as DType;
}
