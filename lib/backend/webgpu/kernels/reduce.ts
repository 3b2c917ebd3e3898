/**
 * WGSL row kernels: reductions over the middle axis of `[outer, size, inner]`, softmax /
 * log-softmax, fused cross-entropy forward/backward, top-k.
 *
 * Algorithm (correctness-first): one invocation per output element (reduce), per row (softmax,
 * cross-entropy forward, top-k) or per logit (cross-entropy backward), each looping
 * sequentially — the same summation order as the cpu reference. No workgroup memory.
 * Limits: top-k is O(k · cols) per row; indices outside the valid range are not reported.
 *
 * @module
 */

import type { DType, ReduceOp } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL, paramsWgsl } from "../_wgsl.ts";
import { type KernelInfo, kernelInfo } from "../cache.ts";

/** `out[o, i] = reduce_s x[o, s, i]`. */
export function reduceKernel(
  op: ReduceOp,
  dtype: DType,
  outer: number,
  size: number,
  inner: number,
): KernelInfo {
  const t = dtype === "i32" ? "i32" : "f32";
  const outType: DType = op === "argmax" ? "i32" : dtype;
  let body: string;
  switch (op) {
    case "sum":
      body = `var acc = ${t}(0); for (var s = 0u; s < size; s++) { acc += in0[base + s * inner]; }
  out[i] = acc;`;
      break;
    case "max":
      body =
        `var acc = in0[base]; for (var s = 1u; s < size; s++) { acc = max(acc, in0[base + s * inner]); }
  out[i] = select(acc, ${
          t === "f32" ? "bitcast<f32>(0xff800000u)" : "i32(-2147483647 - 1)"
        }, size == 0u);`;
      break;
    case "min":
      body =
        `var acc = in0[base]; for (var s = 1u; s < size; s++) { acc = min(acc, in0[base + s * inner]); }
  out[i] = select(acc, ${t === "f32" ? "bitcast<f32>(0x7f800000u)" : "2147483647i"}, size == 0u);`;
      break;
    case "argmax":
      body = `var best = in0[base]; var arg = 0u;
  for (var s = 1u; s < size; s++) { let v = in0[base + s * inner]; if (v > best) { best = v; arg = s; } }
  out[i] = i32(arg);`;
      break;
    default:
      throw new Error(`Cannot reduce with unknown op '${op satisfies never}'`);
  }
  const code = /* wgsl */ `
${bindingsWgsl(outType, [dtype])}
${ENTRY_WGSL}
  let size = param(1);
  let inner = param(2);
  if (i >= param(0)) { return; }
  let o = i / inner;
  let base = o * size * inner + (i % inner);
  ${body}
}`;
  return kernelInfo(
    `reduce:${op}:${dtype}`,
    code,
    outer * inner,
    [outer * inner, size, inner],
    outType,
  );
}

/**
 * Row statistics shared by softmax and cross-entropy: `m = max_c x[base + c]` and
 * `s = Σ_c exp(x[base + c] − m)` over `in0` (needs `base` and `cols` in scope).
 */
const ROW_MAX_SUMEXP_WGSL = /* wgsl */ `var m = bitcast<f32>(0xff800000u);
  for (var c = 0u; c < cols; c++) { m = max(m, in0[base + c]); }
  var s = 0.0;
  for (var c = 0u; c < cols; c++) { s += exp(in0[base + c] - m); }`;

/** Softmax or log-softmax of each row (one invocation per row). */
export function softmaxKernel(rows: number, cols: number, log: boolean): KernelInfo {
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32"])}
${ENTRY_WGSL}
  let cols = param(1);
  if (i >= param(0)) { return; }
  let base = i * cols;
  ${ROW_MAX_SUMEXP_WGSL}
  ${
    log
      ? "let lse = m + log(s); for (var c = 0u; c < cols; c++) { out[base + c] = in0[base + c] - lse; }"
      : "let inv = 1.0 / s; for (var c = 0u; c < cols; c++) { out[base + c] = exp(in0[base + c] - m) * inv; }"
  }
}`;
  return kernelInfo(`softmax:${log}`, code, rows, [rows, cols], "f32");
}

/** Cross-entropy forward: binding out = loss[rows], in0 = logits, in1 = targets, in2 = lse out. */
export function crossEntropyKernel(rows: number, cols: number, ignoreIndex: number): KernelInfo {
  // lse is written through a second read_write binding declared by hand.
  const code = /* wgsl */ `
${paramsWgsl("rows, cols, ignoreIndex (bits)")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // per-row loss
@group(0) @binding(2) var<storage, read> in0: array<f32>; // logits [rows, cols]
@group(0) @binding(3) var<storage, read> in1: array<i32>; // targets [rows]
@group(0) @binding(4) var<storage, read_write> lse: array<f32>; // log-sum-exp [rows]
${ENTRY_WGSL}
  let cols = param(1);
  if (i >= param(0)) { return; }
  let base = i * cols;
  ${ROW_MAX_SUMEXP_WGSL}
  let l = m + log(s);
  lse[i] = l;
  let t = in1[i];
  if (t == bitcast<i32>(param(2)) || t < 0 || u32(t) >= cols) { out[i] = 0.0; return; }
  out[i] = l - in0[base + u32(t)];
}`;
  return kernelInfo("crossEntropy", code, rows, [rows, cols, ignoreIndex >>> 0], "f32");
}

/** Cross-entropy backward: out = dlogits; in0 logits, in1 targets, in2 lse, in3 dloss. */
export function crossEntropyBackwardKernel(
  rows: number,
  cols: number,
  ignoreIndex: number,
): KernelInfo {
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32", "i32", "f32", "f32"])}
${ENTRY_WGSL}
  let cols = param(1);
  if (i >= param(0) * cols) { return; }
  let r = i / cols;
  let c = i % cols;
  let t = in1[r];
  if (t == bitcast<i32>(param(2)) || t < 0 || u32(t) >= cols) { out[i] = 0.0; return; }
  let g = in3[r];
  out[i] = g * exp(in0[i] - in2[r]) - select(0.0, g, u32(t) == c);
}`;
  return kernelInfo(
    "crossEntropyBackward",
    code,
    rows * cols,
    [rows, cols, ignoreIndex >>> 0],
    "f32",
  );
}

/** Top-k per row: out = values [rows, k], second output indices via binding 3. */
export function topkKernel(rows: number, cols: number, k: number): KernelInfo {
  const code = /* wgsl */ `
${paramsWgsl("rows, cols, k")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // values [rows, k]
@group(0) @binding(2) var<storage, read> in0: array<f32>; // x [rows, cols]
@group(0) @binding(3) var<storage, read_write> idx: array<i32>; // indices [rows, k]
${ENTRY_WGSL}
  let cols = param(1);
  let k = param(2);
  if (i >= param(0)) { return; }
  let base = i * cols;
  // Pick k times the best element strictly after the previous pick in the order
  // (value descending, index ascending).
  var pv = bitcast<f32>(0x7f800000u);
  var pi = -1;
  for (var j = 0u; j < k; j++) {
    var bv = bitcast<f32>(0xff800000u);
    var bi = -1;
    for (var c = 0u; c < cols; c++) {
      let v = in0[base + c];
      let ci = i32(c);
      let after = v < pv || (v == pv && ci > pi);
      let better = bi < 0 || v > bv;
      if (after && better) { bv = v; bi = ci; }
    }
    out[i * k + j] = bv;
    idx[i * k + j] = bi;
    pv = bv;
    pi = bi;
  }
}`;
  return kernelInfo("topk", code, rows, [rows, cols, k], "f32");
}
