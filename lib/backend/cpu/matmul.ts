/**
 * Reference batched matmul: `C[b] = op(A[b]) · op(B[b])` (see `MatmulSpec`).
 *
 * Algorithm: transposed operands are first copied to row-major (`O(mk + kn)` against the
 * `O(mnk)` product), then one kernel runs the i-k-j loop order with 4 rows of A per pass: each
 * loaded row of B is reused for 4 output rows and the innermost loop walks B and C contiguously.
 * Products accumulate in the output array's precision (f32, or f64 on a float64 backend).
 *
 * @module
 */

import type { HostArray, MatmulSpec } from "../backend.ts";

/** `C[cOff..] += A[aOff..] (m×k) · B[bOff..] (k×n)`, all row-major. */
export function gemm(
  a: HostArray,
  aOff: number,
  b: HostArray,
  bOff: number,
  c: HostArray,
  cOff: number,
  m: number,
  n: number,
  k: number,
): void {
  let i = 0;
  for (; i + 4 <= m; i += 4) {
    const c0 = cOff + i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
    const a0 = aOff + i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
    for (let p = 0; p < k; p++) {
      const x0 = a[a0 + p], x1 = a[a1 + p], x2 = a[a2 + p], x3 = a[a3 + p];
      const row = bOff + p * n;
      for (let j = 0; j < n; j++) {
        const v = b[row + j];
        c[c0 + j] += x0 * v;
        c[c1 + j] += x1 * v;
        c[c2 + j] += x2 * v;
        c[c3 + j] += x3 * v;
      }
    }
  }
  for (; i < m; i++) {
    const c0 = cOff + i * n, a0 = aOff + i * k;
    for (let p = 0; p < k; p++) {
      const x0 = a[a0 + p];
      const row = bOff + p * n;
      for (let j = 0; j < n; j++) c[c0 + j] += x0 * b[row + j];
    }
  }
}

/** Copy the `rows × cols` row-major matrix at `src[off..]` transposed into a new array. */
function transposed(src: HostArray, off: number, rows: number, cols: number): HostArray {
  const out = new (src.constructor as { new (n: number): HostArray })(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = off + r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c];
  }
  return out;
}

/** Run a batched matmul into the zero-filled `c` (`[batch, m, n]`). */
export function matmul(a: HostArray, b: HostArray, c: HostArray, spec: MatmulSpec): void {
  const { batch, m, n, k } = spec;
  // A transposed operand shared by the whole batch (stride 0) is transposed once.
  let sharedA: HostArray | null = null, sharedB: HostArray | null = null;
  for (let bi = 0; bi < batch; bi++) {
    let aArr = a, aOff = spec.offsetA + bi * spec.strideA;
    let bArr = b, bOff = spec.offsetB + bi * spec.strideB;
    if (spec.transA) {
      aArr = sharedA ?? transposed(a, aOff, k, m); // A[b] is stored [k, m]
      if (spec.strideA === 0) sharedA = aArr;
      aOff = 0;
    }
    if (spec.transB) {
      bArr = sharedB ?? transposed(b, bOff, n, k); // B[b] is stored [n, k]
      if (spec.strideB === 0) sharedB = bArr;
      bOff = 0;
    }
    gemm(aArr, aOff, bArr, bOff, c, bi * m * n, m, n, k);
  }
}
