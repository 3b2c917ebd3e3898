/**
 * Reference reductions and row kernels: sum/max/min/argmax over the middle axis of
 * `[outer, size, inner]`, softmax / log-softmax along rows, fused cross-entropy forward and
 * backward, and top-k.
 *
 * Softmax and cross-entropy subtract the row maximum before exponentiating, so large logits
 * never overflow: `lse = max + log Σ exp(x - max)`.
 *
 * @module
 */

import type { CrossEntropySpec, HostArray, ReduceOp } from "../backend.ts";

/** Reduce the middle axis of `x: [outer, size, inner]` into `out: [outer, inner]`. */
export function reduce(
  op: ReduceOp,
  x: HostArray,
  out: HostArray,
  outer: number,
  size: number,
  inner: number,
): void {
  if (inner > 1 && op !== "argmax") {
    // Walk rows contiguously, folding each into the [inner] accumulator row.
    for (let o = 0; o < outer; o++) {
      const dst = o * inner, base = o * size * inner;
      const init = op === "sum" ? 0 : op === "max" ? -Infinity : Infinity;
      for (let i = 0; i < inner; i++) out[dst + i] = size === 0 ? init : x[base + i];
      for (let s = 1; s < size; s++) {
        const row = base + s * inner;
        if (op === "sum") { for (let i = 0; i < inner; i++) out[dst + i] += x[row + i]; }
        else if (op === "max") {
          for (let i = 0; i < inner; i++) {
            const v = x[row + i], a = out[dst + i];
            if (v > a || v !== v) out[dst + i] = a !== a ? a : v;
          }
        } else {
          for (let i = 0; i < inner; i++) {
            const v = x[row + i], a = out[dst + i];
            if (v < a || v !== v) out[dst + i] = a !== a ? a : v;
          }
        }
      }
    }
    return;
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * size * inner + i;
      let acc: number;
      switch (op) {
        case "sum":
          acc = 0;
          for (let s = 0; s < size; s++) acc += x[base + s * inner];
          break;
        case "max":
          acc = -Infinity;
          for (let s = 0; s < size; s++) {
            const v = x[base + s * inner];
            if (v > acc || v !== v) acc = v;
            if (acc !== acc) break;
          }
          break;
        case "min":
          acc = Infinity;
          for (let s = 0; s < size; s++) {
            const v = x[base + s * inner];
            if (v < acc || v !== v) acc = v;
            if (acc !== acc) break;
          }
          break;
        case "argmax": {
          // First index of the maximum; a NaN counts as the maximum, as in torch.argmax.
          let best = -Infinity;
          acc = 0;
          for (let s = 0; s < size; s++) {
            const v = x[base + s * inner];
            if (v !== v) {
              acc = s;
              break;
            }
            if (v > best) {
              best = v;
              acc = s;
            }
          }
          break;
        }
        default:
          throw new Error(`Cannot reduce with unknown op '${op satisfies never}'`);
      }
      out[o * inner + i] = acc;
    }
  }
}

/** Softmax (or log-softmax) of each row of `x: [rows, cols]` into `out`. */
export function softmax(
  x: HostArray,
  out: HostArray,
  rows: number,
  cols: number,
  log: boolean,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) if (x[base + c] > max) max = x[base + c];
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[base + c] - max);
    if (log) {
      const lse = max + Math.log(sum);
      for (let c = 0; c < cols; c++) out[base + c] = x[base + c] - lse;
    } else {
      const inv = 1 / sum;
      for (let c = 0; c < cols; c++) out[base + c] = Math.exp(x[base + c] - max) * inv;
    }
  }
}

function checkTarget(t: number, row: number, spec: CrossEntropySpec): boolean {
  if (t === spec.ignoreIndex) return false;
  if (!(t >= 0 && t < spec.cols)) {
    throw new RangeError(
      `Cannot compute cross-entropy: target ${t} at row ${row} is outside [0, ${spec.cols}) ` +
        `and is not the ignore index ${spec.ignoreIndex}`,
    );
  }
  return true;
}

/** Fused cross-entropy forward: per-row loss and log-sum-exp. */
export function crossEntropy(
  logits: HostArray,
  targets: HostArray,
  loss: HostArray,
  lse: HostArray,
  spec: CrossEntropySpec,
): void {
  const { rows, cols } = spec;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) if (logits[base + c] > max) max = logits[base + c];
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(logits[base + c] - max);
    const l = max + Math.log(sum);
    lse[r] = l;
    const t = targets[r];
    loss[r] = checkTarget(t, r, spec) ? l - logits[base + t] : 0;
  }
}

/** Fused cross-entropy backward: `dlogits = dloss · (softmax − onehot)`, zero for ignored rows. */
export function crossEntropyBackward(
  logits: HostArray,
  targets: HostArray,
  lse: HostArray,
  dloss: HostArray,
  out: HostArray,
  spec: CrossEntropySpec,
): void {
  const { rows, cols } = spec;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const t = targets[r];
    if (!checkTarget(t, r, spec)) {
      for (let c = 0; c < cols; c++) out[base + c] = 0;
      continue;
    }
    const g = dloss[r], l = lse[r];
    for (let c = 0; c < cols; c++) out[base + c] = g * Math.exp(logits[base + c] - l);
    out[base + t] -= g;
  }
}

/** The `k` largest entries per row, descending; ties go to the lower index; NaN ranks highest. */
export function topk(
  x: HostArray,
  values: HostArray,
  indices: HostArray,
  rows: number,
  cols: number,
  k: number,
): void {
  const order = new Array<number>(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) order[c] = c;
    order.sort((i, j) => {
      const a = x[base + i], b = x[base + j];
      if (a !== a) return b !== b ? i - j : -1;
      if (b !== b) return 1;
      return a > b ? -1 : a < b ? 1 : i - j;
    });
    for (let j = 0; j < k; j++) {
      values[r * k + j] = x[base + order[j]];
      indices[r * k + j] = order[j];
    }
  }
}
