/**
 * `matmul(a, b)`: batched matrix product with NumPy broadcasting over leading dims.
 *
 * A transposed view (e.g. `transpose(w)`) is passed to the kernel as a transpose flag, not
 * copied, and a batch dim of stride 0 (a broadcast operand) as batch stride 0. The backward
 * rules `dA = dC · Bᵀ`, `dB = Aᵀ · dC` therefore run without materialising transposes.
 *
 * @module
 */

import type { MatmulSpec } from "../../backend/backend.ts";
import { record } from "../autograd.ts";
import { checkDType } from "../dtype.ts";
import { broadcastShapes, formatShape, shapeSize } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { broadcastView, checkSameBackend, sumToShape, wrap } from "./_util.ts";
import { reshape, transpose } from "./movement.ts";

/** How a `[..., r, c]` operand is fed to the kernel. */
interface Operand {
  tensor: Tensor; // the tensor whose storage is read (maybe a contiguous copy)
  trans: boolean;
  offset: number;
  stride: number; // batch stride, 0 when shared by every batch entry
}

/** Lay out `t` (already broadcast to `[...batch, r, c]`) for the kernel, copying only if needed. */
function operand(t: Tensor, batch: number): Operand {
  const rank = t.rank;
  const [r, c] = [t.shape[rank - 2], t.shape[rank - 1]];
  const [sr, sc] = [t.strides[rank - 2], t.strides[rank - 1]];
  let trans: boolean | null = null;
  if ((sc === 1 || c === 1) && (sr === c || r === 1)) trans = false;
  else if ((sr === 1 || r === 1) && (sc === r || c === 1)) trans = true;
  // Batch dims must be all-broadcast (stride 0) or dense with one stride of r·c.
  const bShape = t.shape.slice(0, rank - 2), bStrides = t.strides.slice(0, rank - 2);
  let stride: number | null = 0;
  if (bStrides.some((s, i) => s !== 0 && bShape[i] !== 1)) {
    let expected = r * c;
    for (let d = bShape.length - 1; d >= 0; d--) {
      if (bShape[d] !== 1 && bStrides[d] !== expected) stride = null;
      expected *= bShape[d];
    }
    if (stride !== null) stride = r * c;
  }
  if (trans === null || stride === null) {
    const copy = wrap(t, t.backend.copy(t.view), t.shape);
    return { tensor: copy, trans: false, offset: 0, stride: batch > 1 ? r * c : 0 };
  }
  return { tensor: t, trans, offset: t.offset, stride };
}

/**
 * Matrix product `a · b` for `a: [..., M, K]`, `b: [..., K, N]` → `[..., M, N]`; 1-D operands
 * are treated as a row (a) or column (b) vector and that dim is dropped from the result.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { matmul, tensor, transpose } from "../mod.ts";
 * const a = tensor([[1, 2], [3, 4]]);
 * deepStrictEqual(Array.from(matmul(a, transpose(a)).dataSync()), [5, 11, 11, 25]);
 * ```
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkSameBackend("matmul", [a, b]);
  checkDType(a.dtype, ["f32"], "matmul");
  checkDType(b.dtype, ["f32"], "matmul");
  if (a.rank === 0 || b.rank === 0) {
    throw new Error(`Cannot matmul shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  }
  if (a.rank === 1) return reshape(matmul(reshape(a, [1, a.shape[0]]), b), dropDim(b, -2));
  if (b.rank === 1) return reshape(matmul(a, reshape(b, [b.shape[0], 1])), a.shape.slice(0, -1));
  const [m, k] = a.shape.slice(-2), [k2, n] = b.shape.slice(-2);
  if (k !== k2) {
    throw new Error(
      `Cannot matmul shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}: ` +
        `inner dimensions ${k} and ${k2} differ`,
    );
  }
  if (b.rank === 2 && a.rank > 2 && a.isContiguous && k > 0) {
    // x·W with a batch of x: one [Σbatch·M, K]·[K, N] product (so the weight gradient is one
    // matmul, not a batched one plus a sum over the batch) — same values, larger kernels.
    const rows = reshape(a, [a.size / k, k]);
    return reshape(matmul(rows, b), [...a.shape.slice(0, -1), n]);
  }
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), "matmul");
  const batch = shapeSize(batchShape);
  const av = broadcastView(a, [...batchShape, m, k]), bv = broadcastView(b, [...batchShape, k, n]);
  const oa = operand(av, batch), ob = operand(bv, batch);
  const spec: MatmulSpec = {
    batch,
    m,
    n,
    k,
    transA: oa.trans,
    transB: ob.trans,
    offsetA: oa.offset,
    offsetB: ob.offset,
    strideA: oa.stride,
    strideB: ob.stride,
  };
  const out = wrap(a, a.backend.matmul(oa.tensor.storage, ob.tensor.storage, spec), [
    ...batchShape,
    m,
    n,
  ]);
  for (const t of [av, bv, oa.tensor, ob.tensor]) t.dispose();
  return record(out, "matmul", [a, b], (dy) => [
    a.requiresGrad ? sumToShape(matmul(dy, transpose(b)), a.shape) : null,
    b.requiresGrad ? sumToShape(matmul(transpose(a), dy), b.shape) : null,
  ]);
}

function dropDim(t: Tensor, axis: number): number[] {
  const shape = [...t.shape];
  shape.splice(axis < 0 ? shape.length + axis : axis, 1);
  return shape;
}
