/**
 * WGSL batched matmul `C[b] = op(A[b]) · op(B[b])` (see `MatmulSpec`).
 *
 * Algorithm (correctness-first, bounds-safe for any size): one invocation per output element,
 * a sequential dot product over K reading A and B through the transpose flags and batch
 * strides. No workgroup memory. The fast tiled variants (a GPU-shaped one with workgroup tiles
 * and a CPU-driver-shaped register-blocked one, chosen by adapter) are TODO(#4).
 *
 * @module
 */

import type { MatmulSpec } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL, grid, WORKGROUP } from "../_wgsl.ts";
import type { KernelInfo } from "../cache.ts";

/** The launcher: params [batch, m, n, k, offsetA, offsetB, strideA, strideB]. */
export function matmulKernel(spec: MatmulSpec): KernelInfo {
  const aIndex = spec.transA ? "p * m + r" : "r * k + p"; // A stored [k, m] when transposed
  const bIndex = spec.transB ? "c * k + p" : "p * n + c"; // B stored [n, k] when transposed
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32", "f32"])}
${ENTRY_WGSL}
  let m = params[1];
  let n = params[2];
  let k = params[3];
  if (i >= params[0] * m * n) { return; }
  let b = i / (m * n);
  let r = (i / n) % m;
  let c = i % n;
  let a0 = params[4] + b * params[6];
  let b0 = params[5] + b * params[7];
  var acc = 0.0;
  for (var p = 0u; p < k; p++) {
    acc += in0[a0 + ${aIndex}] * in1[b0 + ${bIndex}];
  }
  out[i] = acc;
}`;
  const n = spec.batch * spec.m * spec.n;
  return {
    key: `matmul:naive:${spec.transA}:${spec.transB}`,
    code,
    workgroupSize: WORKGROUP,
    dispatch: grid(n),
    params: Uint32Array.from([
      spec.batch,
      spec.m,
      spec.n,
      spec.k,
      spec.offsetA,
      spec.offsetB,
      spec.strideA,
      spec.strideB,
    ]),
    outDType: "f32",
    n,
  };
}
