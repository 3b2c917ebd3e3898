/**
 * Neural-network ops built on fused kernels: softmax, log-softmax, cross-entropy, embedding
 * lookup, index/scatter ops, top-k and the causal mask.
 *
 * Softmax backward: `dx = y ⊙ (dy − Σ dy ⊙ y)`; log-softmax: `dx = dy − eʸ Σ dy`.
 * Cross-entropy backward: `dlogits = dloss · (softmax(logits) − onehot(target))`, in one kernel.
 * RMSNorm and the SwiGLU gate use fused kernels where the backend has them (optional `Backend`
 * methods) and fall back to the composed ops otherwise.
 *
 * @module
 */

import type { Backend } from "../../backend/backend.ts";
import { getBackend } from "../../backend/mod.ts";
import { record } from "../autograd.ts";
import { checkDType } from "../dtype.ts";
import { formatShape, normalizeAxis, shapeSize } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import { checkSameBackend, sameShape, wrap } from "./_util.ts";
import { add, cast, div, exp, mul, ne, rsqrt, silu, square, sub } from "./elementwise.ts";
import { permute, reshape } from "./movement.ts";
import { mean, sum } from "./reduce.ts";

/** Apply a last-axis row kernel along `axis` by moving that axis last and back. */
function alongAxis(x: Tensor, axis: number, op: string, fn: (rows: Tensor) => Tensor): Tensor {
  const ax = normalizeAxis(axis, x.rank, op);
  if (ax === x.rank - 1) return fn(x);
  const order = Array.from({ length: x.rank }, (_, i) => i).filter((i) => i !== ax);
  order.push(ax);
  const inverse = new Array<number>(x.rank);
  order.forEach((a, i) => (inverse[a] = i));
  return permute(fn(permute(x, order)), inverse);
}

function rowsKernel(x: Tensor, log: boolean): Tensor {
  const cols = x.shape[x.rank - 1] ?? 1;
  const rows = x.size / Math.max(cols, 1);
  const { storage, owned } = x.contiguousStorage();
  const out = wrap(x, x.backend.softmax(storage, rows, cols, log), x.shape);
  if (owned) x.backend.release(storage);
  return out;
}

/**
 * Softmax along `axis` (default: last), max-subtracted so large inputs do not overflow.
 *
 * @example
 * ```ts
 * import { softmax, tensor } from "../mod.ts";
 * import { assertAllClose } from "../assert.ts";
 * assertAllClose(softmax(tensor([0, Math.log(3)])), [0.25, 0.75]);
 * ```
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  checkDType(x.dtype, ["f32"], "take the softmax of");
  return alongAxis(x, axis, "softmax", (rows) => {
    const y = rowsKernel(rows, false);
    return record(y, "softmax", [rows], (dy) => [
      mul(y, sub(dy, sum(mul(dy, y), -1, { keepDims: true }))),
    ]);
  });
}

/** Log-softmax along `axis` (default: last): `x − log Σ eˣ`, computed stably. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  checkDType(x.dtype, ["f32"], "take the log-softmax of");
  return alongAxis(x, axis, "logSoftmax", (rows) => {
    const y = rowsKernel(rows, true);
    return record(y, "logSoftmax", [rows], (dy) => [
      sub(dy, mul(exp(y), sum(dy, -1, { keepDims: true }))),
    ]);
  });
}

/** Options for {@linkcode crossEntropy}. */
export interface CrossEntropyOptions {
  /**
   * Targets equal to this are skipped (no loss, no gradient, not counted in the mean).
   * @default {-100}
   */
  ignoreIndex?: number;
  /**
   * `mean` over counted targets, `sum`, or `none` (per-target losses, shaped like `targets`).
   * @default {"mean"}
   */
  reduction?: "mean" | "sum" | "none";
}

/**
 * Cross-entropy of `logits: [..., V]` against integer `targets: [...]`, fused: the softmax is
 * never materialised in the forward pass.
 *
 * @example Uniform logits over 4 classes give log 4
 * ```ts
 * import { crossEntropy, tensor, zeros } from "../mod.ts";
 * import { assertAllClose } from "../assert.ts";
 * const loss = crossEntropy(zeros([2, 4]), tensor([1, 3], { dtype: "i32" }));
 * assertAllClose(loss, Math.log(4));
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyOptions = {},
): Tensor {
  checkSameBackend("compute cross-entropy of", [logits, targets]);
  checkDType(logits.dtype, ["f32"], "compute cross-entropy of logits");
  checkDType(targets.dtype, ["i32"], "compute cross-entropy against targets");
  const cols = logits.shape[logits.rank - 1];
  const lead = logits.shape.slice(0, -1);
  if (lead.length !== targets.rank || lead.some((d, i) => d !== targets.shape[i])) {
    throw new Error(
      `Cannot compute cross-entropy of logits ${formatShape(logits.shape)} against targets ` +
        `${formatShape(targets.shape)}: targets must have shape ${formatShape(lead)}`,
    );
  }
  const ignoreIndex = options.ignoreIndex ?? -100;
  const reduction = options.reduction ?? "mean";
  const rows = shapeSize(lead);
  const spec = { rows, cols, ignoreIndex };
  const flat = reshape(logits, [rows, cols]);
  const { storage: lg, owned: ownL } = flat.contiguousStorage();
  const { storage: tg, owned: ownT } = targets.contiguousStorage();
  const { loss, lse } = logits.backend.crossEntropy(lg, tg, spec);
  if (ownL) logits.backend.release(lg);
  const lseT = wrap(logits, lse, [rows]);
  const targetsT = ownT ? wrap(targets, tg, [rows]) : targets;
  const perRow = record(wrap(logits, loss, [rows]), "crossEntropy", [flat], (dy) => {
    const { storage: x, owned } = flat.contiguousStorage();
    const { storage: d, owned: ownD } = dy.contiguousStorage();
    const g = flat.backend.crossEntropyBackward(x, targetsT.storage, lseT.storage, d, spec);
    if (owned) flat.backend.release(x);
    if (ownD) dy.backend.release(d);
    return [wrap(flat, g, [rows, cols])];
  });
  switch (reduction) {
    case "none":
      return reshape(perRow, lead);
    case "sum":
      return sum(perRow);
    case "mean": {
      // Count on the device: no host round trip.
      const counted = sum(ne(cast(reshape(targetsT, [rows]), "f32"), ignoreIndex));
      return div(sum(perRow), counted);
    }
    default:
      throw new Error(`Unknown cross-entropy reduction '${reduction satisfies never}'`);
  }
}

/** Options for {@linkcode rmsNormalize}. */
export interface RmsNormalizeOptions {
  /**
   * Added to `mean(x²)` before the square root.
   * @default {1e-6}
   */
  eps?: number;
  /**
   * Use the backend's fused kernels ({@linkcode Backend.rmsNorm}) when it has them; `false`
   * forces the composed ops, the plain reference the fused path is tested against.
   * @default {true}
   */
  fused?: boolean;
}

/** A backend with both fused RMSNorm kernels. */
type RmsNormBackend = Backend & Required<Pick<Backend, "rmsNorm" | "rmsNormBackward">>;

function hasFusedRmsNorm(backend: Backend): backend is RmsNormBackend {
  return backend.rmsNorm !== undefined && backend.rmsNormBackward !== undefined;
}

/**
 * RMSNorm over the last axis: `y = x / sqrt(mean(x²) + eps) ⊙ weight`; `x: [..., d]`,
 * `weight: [d]`. One fused kernel forward (saving the per-row `rstd`) and one backward
 * (`dx` and `dweight`) where the backend has them, else the composed ops (`mean`, `rsqrt`, `mul`).
 * Ref: arXiv:1910.07467 eq. (4).
 *
 * @param x Input `[..., d]` (f32).
 * @param weight Gain `[d]` (f32).
 * @param options `eps`, and `fused: false` to force the composed ops.
 * @returns `[..., d]`.
 *
 * @example The fused and composed paths agree
 * ```ts
 * import { rmsNormalize, tensor } from "../mod.ts";
 * import { assertAllClose } from "../assert.ts";
 * const x = tensor([[3, 4], [1, -1]]), g = tensor([1, 2]);
 * const y = rmsNormalize(x, g, { eps: 0 });
 * assertAllClose(y, [[3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)], [1, -2]]);
 * assertAllClose(y, rmsNormalize(x, g, { eps: 0, fused: false }));
 * ```
 */
export function rmsNormalize(
  x: Tensor,
  weight: Tensor,
  options: RmsNormalizeOptions = {},
): Tensor {
  checkSameBackend("apply RMSNorm to", [x, weight]);
  checkDType(x.dtype, ["f32"], "apply RMSNorm to");
  checkDType(weight.dtype, ["f32"], "apply RMSNorm with a weight of");
  const cols = x.shape.at(-1);
  if (cols === undefined || weight.rank !== 1 || weight.shape[0] !== cols) {
    throw new Error(
      `Cannot apply RMSNorm of weight ${formatShape(weight.shape)} to input ` +
        `${formatShape(x.shape)}: expected weight [${cols ?? "d"}]`,
    );
  }
  const { eps = 1e-6, fused = true } = options;
  const backend = x.backend;
  if (!fused || !hasFusedRmsNorm(backend)) {
    const ms = mean(square(x), -1, { keepDims: true }); // mean(x²): [..., 1]
    return mul(mul(x, rsqrt(add(ms, eps))), weight); // [..., d]
  }
  // Fast path: one kernel each way; rstd [rows] is the only saved intermediate.
  const spec = { rows: x.size / Math.max(cols, 1), cols, eps };
  const xs = x.contiguousStorage(), ws = weight.contiguousStorage();
  const { y, rstd } = backend.rmsNorm(xs.storage, ws.storage, spec);
  if (xs.owned) backend.release(xs.storage);
  if (ws.owned) backend.release(ws.storage);
  const rstdT = wrap(x, rstd, [spec.rows]);
  const out = record(wrap(x, y, x.shape), "rmsNorm", [x, weight], (dy) => {
    const xb = x.contiguousStorage(), wb = weight.contiguousStorage();
    const db = dy.contiguousStorage();
    const g = backend.rmsNormBackward(xb.storage, wb.storage, rstdT.storage, db.storage, spec);
    for (const s of [xb, wb, db]) if (s.owned) backend.release(s.storage);
    return [wrap(x, g.dx, x.shape), wrap(weight, g.dweight, weight.shape)];
  });
  if (out.node === null) rstdT.dispose(); // no graph (inference): rstd is not needed
  return out;
}

/** Options for {@linkcode swigluGate}. */
export interface SwigluGateOptions {
  /**
   * Use the backend's fused kernels ({@linkcode Backend.swiglu}) when it has them; `false`
   * forces the composed ops `mul(silu(a), b)`.
   * @default {true}
   */
  fused?: boolean;
}

/** A backend with both fused SwiGLU gate kernels. */
type SwigluBackend = Backend & Required<Pick<Backend, "swiglu" | "swigluBackward">>;

function hasFusedSwiglu(backend: Backend): backend is SwigluBackend {
  return backend.swiglu !== undefined && backend.swigluBackward !== undefined;
}

/**
 * The SwiGLU gate `silu(a) ⊙ b` of two tensors of the same shape (`a = x W1`, `b = x W3`), in
 * one kernel each way (backward: `da = dy ⊙ b ⊙ silu'(a)`, `db = dy ⊙ silu(a)`) where the
 * backend has them, else `mul(silu(a), b)`. Ref: arXiv:2002.05202 eq. (6).
 *
 * @param a Gate pre-activation (f32).
 * @param b Up projection, same shape as `a` (f32).
 * @param options `fused: false` forces the composed ops.
 * @returns `silu(a) ⊙ b`, shaped like `a`.
 *
 * @example
 * ```ts
 * import { swigluGate, tensor } from "../mod.ts";
 * import { assertAllClose } from "../assert.ts";
 * const silu1 = 1 / (1 + Math.exp(-1));
 * assertAllClose(swigluGate(tensor([1, 0]), tensor([2, 5])), [2 * silu1, 0]);
 * ```
 */
export function swigluGate(a: Tensor, b: Tensor, options: SwigluGateOptions = {}): Tensor {
  checkSameBackend("apply the SwiGLU gate to", [a, b]);
  checkDType(a.dtype, ["f32"], "apply the SwiGLU gate to");
  checkDType(b.dtype, ["f32"], "apply the SwiGLU gate to");
  if (!sameShape(a.shape, b.shape)) {
    throw new Error(
      `Cannot apply the SwiGLU gate to ${formatShape(a.shape)} and ${formatShape(b.shape)}: ` +
        "expected equal shapes",
    );
  }
  const backend = a.backend;
  if (options.fused === false || !hasFusedSwiglu(backend)) return mul(silu(a), b);
  const as = a.contiguousStorage(), bs = b.contiguousStorage();
  const out = wrap(a, backend.swiglu(as.storage, bs.storage, a.size), a.shape);
  if (as.owned) backend.release(as.storage);
  if (bs.owned) backend.release(bs.storage);
  return record(out, "swiglu", [a, b], (dy) => {
    const ag = a.contiguousStorage(), bg = b.contiguousStorage(), dg = dy.contiguousStorage();
    const g = backend.swigluBackward(ag.storage, bg.storage, dg.storage, a.size);
    for (const s of [ag, bg, dg]) if (s.owned) backend.release(s.storage);
    return [wrap(a, g.da, a.shape), wrap(b, g.db, b.shape)];
  });
}

function checkIndexTensor(index: Tensor, op: string): void {
  checkDType(index.dtype, ["i32"], `${op} with an index`);
}

/** Rows `index[j]` of `x` along `axis` (`index`: 1-D `i32`), as `torch.index_select`. */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  checkSameBackend("index", [x, index]);
  checkIndexTensor(index, "select");
  if (index.rank !== 1) {
    throw new Error(
      `Cannot select with an index of shape ${formatShape(index.shape)}: expected 1-D`,
    );
  }
  const ax = normalizeAxis(axis, x.rank, "indexSelect");
  const outer = shapeSize(x.shape.slice(0, ax)), size = x.shape[ax];
  const inner = shapeSize(x.shape.slice(ax + 1));
  const shape = [...x.shape];
  shape[ax] = index.size;
  const xs = x.contiguousStorage(), is = index.contiguousStorage();
  const out = wrap(x, x.backend.indexSelect(xs.storage, is.storage, outer, size, inner), shape);
  if (xs.owned) x.backend.release(xs.storage);
  if (is.owned) x.backend.release(is.storage);
  return record(out, "indexSelect", [x], (dy) => [indexAddRaw(dy, index, x.shape, ax)]);
}

function indexAddRaw(src: Tensor, index: Tensor, shape: readonly number[], ax: number): Tensor {
  const outer = shapeSize(shape.slice(0, ax)), size = shape[ax];
  const inner = shapeSize(shape.slice(ax + 1));
  const ss = src.contiguousStorage(), is = index.contiguousStorage();
  const out = wrap(src, src.backend.indexAdd(is.storage, ss.storage, outer, size, inner), shape);
  if (ss.owned) src.backend.release(ss.storage);
  if (is.owned) src.backend.release(is.storage);
  return out;
}

/** `x` plus `src` added at rows `index` along `axis`, as `torch.index_add`. */
export function indexAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  checkSameBackend("index-add", [x, index, src]);
  checkIndexTensor(index, "index-add");
  const ax = normalizeAxis(axis, x.rank, "indexAdd");
  const expected = [...x.shape];
  expected[ax] = index.size;
  if (index.rank !== 1 || src.shape.join() !== expected.join()) {
    throw new Error(
      `Cannot index-add source ${formatShape(src.shape)} with index ${formatShape(index.shape)} ` +
        `into ${formatShape(x.shape)} along axis ${axis}: expected source ${formatShape(expected)}`,
    );
  }
  const added = record(indexAddRaw(src, index, x.shape, ax), "indexAdd", [src], (dy) => [
    indexSelect(dy, ax, index),
  ]);
  return addSame(x, added);
}

function addSame(x: Tensor, y: Tensor): Tensor {
  const out = wrap(x, x.backend.binary("add", x.view, y.view, x.shape), x.shape);
  return record(out, "add", [x, y], (dy) => [dy, dy]);
}

/**
 * Embedding lookup: rows `ids` of `weight: [V, D]` → `[...ids.shape, D]`. The gradient is
 * scattered back with index-add (repeated ids accumulate).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { embedding, tensor } from "../mod.ts";
 * const w = tensor([[0, 0], [1, 1], [2, 2]]);
 * const y = embedding(w, tensor([2, 0], { dtype: "i32" }));
 * deepStrictEqual(Array.from(y.dataSync()), [2, 2, 0, 0]);
 * ```
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.rank !== 2) {
    throw new Error(
      `Cannot embed with a weight of shape ${formatShape(weight.shape)}: expected [V, D]`,
    );
  }
  const flat = indexSelect(weight, 0, reshape(ids, [ids.size]));
  return reshape(flat, [...ids.shape, weight.shape[1]]);
}

function checkGatherShapes(x: Tensor, ax: number, index: Tensor, op: string): void {
  if (index.rank !== x.rank || index.shape.some((d, i) => i !== ax && d !== x.shape[i])) {
    throw new Error(
      `Cannot ${op} ${formatShape(x.shape)} with index ${formatShape(index.shape)} along axis ` +
        `${ax}: the index must match every other dimension`,
    );
  }
}

/** `out[..., j, ...] = x[..., index[..., j, ...], ...]` along `axis`, as `torch.gather`. */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  checkSameBackend("gather", [x, index]);
  checkIndexTensor(index, "gather");
  const ax = normalizeAxis(axis, x.rank, "gather");
  checkGatherShapes(x, ax, index, "gather");
  const outer = shapeSize(x.shape.slice(0, ax)), size = x.shape[ax];
  const inner = shapeSize(x.shape.slice(ax + 1)), k = index.shape[ax];
  const xs = x.contiguousStorage(), is = index.contiguousStorage();
  const out = wrap(x, x.backend.gather(xs.storage, is.storage, outer, size, inner, k), index.shape);
  if (xs.owned) x.backend.release(xs.storage);
  if (is.owned) x.backend.release(is.storage);
  return record(out, "gather", [x], (dy) => [scatterAddRaw(dy, index, x.shape, ax)]);
}

function scatterAddRaw(src: Tensor, index: Tensor, shape: readonly number[], ax: number): Tensor {
  const outer = shapeSize(shape.slice(0, ax)), size = shape[ax];
  const inner = shapeSize(shape.slice(ax + 1)), k = index.shape[ax];
  const ss = src.contiguousStorage(), is = index.contiguousStorage();
  const out = wrap(
    src,
    src.backend.scatterAdd(is.storage, ss.storage, outer, size, inner, k),
    shape,
  );
  if (ss.owned) src.backend.release(ss.storage);
  if (is.owned) src.backend.release(is.storage);
  return out;
}

/** `x` plus `src` added at `index` along `axis`, as `torch.scatter_add`. */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  checkSameBackend("scatter-add", [x, index, src]);
  checkIndexTensor(index, "scatter-add");
  const ax = normalizeAxis(axis, x.rank, "scatterAdd");
  checkGatherShapes(x, ax, index, "scatter-add into");
  if (src.shape.join() !== index.shape.join()) {
    throw new Error(
      `Cannot scatter-add source ${formatShape(src.shape)} with index ${
        formatShape(index.shape)
      }: ` +
        "they must have the same shape",
    );
  }
  const added = record(scatterAddRaw(src, index, x.shape, ax), "scatterAdd", [src], (dy) => [
    gather(dy, ax, index),
  ]);
  return addSame(x, added);
}

/** Result of {@linkcode topk}. */
export interface TopK {
  /** The k largest values along the axis, descending (differentiable). */
  values: Tensor;
  /** Their positions (`i32`). */
  indices: Tensor;
}

/**
 * The `k` largest entries along the last axis, sorted descending; ties go to the lower index.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor, topk } from "../mod.ts";
 * const { values, indices } = topk(tensor([1, 5, 3, 5]), 2);
 * deepStrictEqual(Array.from(values.dataSync()), [5, 5]);
 * deepStrictEqual(Array.from(indices.dataSync()), [1, 3]);
 * ```
 */
export function topk(x: Tensor, k: number): TopK {
  checkDType(x.dtype, ["f32"], "take the top-k of");
  if (x.rank === 0) throw new Error("Cannot take the top-k of a scalar");
  const cols = x.shape[x.rank - 1];
  if (!Number.isInteger(k) || k < 1 || k > cols) {
    throw new Error(
      `Cannot take the top-${k} of ${cols} entries: expected an integer in [1, ${cols}]`,
    );
  }
  const rows = x.size / cols;
  const shape = [...x.shape.slice(0, -1), k];
  const xs = x.contiguousStorage();
  const r = x.backend.topk(xs.storage, rows, cols, k);
  if (xs.owned) x.backend.release(xs.storage);
  const indices = wrap(x, r.indices, shape);
  const values = record(wrap(x, r.values, shape), "topk", [x], (dy) => [
    scatterAddRaw(dy, indices, x.shape, x.rank - 1),
  ]);
  return { values, indices };
}

/**
 * Additive causal mask `[T, T]`: 0 where key `j ≤ query i + offset`, `-Infinity` above.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { causalMask } from "../mod.ts";
 * deepStrictEqual(Array.from(causalMask(2).dataSync()), [0, -Infinity, 0, 0]);
 * ```
 */
export function causalMask(size: number, options: CausalMaskOptions = {}): Tensor {
  const queries = size, keys = options.keys ?? size, offset = options.offset ?? keys - queries;
  const data = new Float32Array(queries * keys);
  for (let i = 0; i < queries; i++) {
    for (let j = 0; j < keys; j++) data[i * keys + j] = j <= i + offset ? 0 : -Infinity;
  }
  const backend = options.like?.backend ?? getBackend();
  return Tensor.fromStorage(backend, backend.upload("f32", data), [queries, keys]);
}

/** Options for {@linkcode causalMask}. */
export interface CausalMaskOptions {
  /**
   * Number of keys (for decoding with a cache, keys ≥ queries).
   * @default {size}
   */
  keys?: number;
  /**
   * Query `i` sees keys `j ≤ i + offset`.
   * @default {keys - size}
   */
  offset?: number;
  /** Create the mask on this tensor's backend (default: the current backend). */
  like?: Tensor;
}
