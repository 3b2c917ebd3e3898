import { deepStrictEqual, throws } from "node:assert/strict";
import * as T from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, randomArray } from "../_utils.ts";

/** Naive triple loop over row-major arrays: the independent reference. */
function naive(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const c = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  }
  return c;
}

function transposeArr(a: number[], r: number, c: number): number[] {
  const out = new Array<number>(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  return out;
}

Deno.test("matmul() matches a naive loop on awkward sizes, plain and transposed", () => {
  for (const [m, k, n] of [[1, 1, 1], [3, 17, 5], [17, 3, 129], [7, 64, 9], [33, 31, 1]]) {
    const a = randomArray(m * k, m), b = randomArray(k * n, n);
    const want = naive(a, b, m, k, n);
    const at = T.tensor(a, { shape: [m, k] }), bt = T.tensor(b, { shape: [k, n] });
    assertAllClose(T.matmul(at, bt), want, { atol: 1e-5 });
    // Same product through transposed storage: (Aᵀ)ᵀ and (Bᵀ)ᵀ views.
    const aT = T.transpose(T.tensor(transposeArr(a, m, k), { shape: [k, m] }));
    const bT = T.transpose(T.tensor(transposeArr(b, k, n), { shape: [n, k] }));
    assertAllClose(T.matmul(aT, bt), want, { atol: 1e-5, message: "transA" });
    assertAllClose(T.matmul(at, bT), want, { atol: 1e-5, message: "transB" });
    assertAllClose(T.matmul(aT, bT), want, { atol: 1e-5, message: "transA+transB" });
  }
});

Deno.test("matmul() broadcasts batch dims and handles 1-D operands", () => {
  const a = T.tensor(randomArray(2 * 3 * 4, 1), { shape: [2, 3, 4] });
  const w = T.tensor(randomArray(4 * 5, 2), { shape: [4, 5] });
  const y = T.matmul(a, w);
  deepStrictEqual(y.shape, [2, 3, 5]);
  const ad = Array.from(a.dataSync()), wd = Array.from(w.dataSync());
  assertAllClose(T.slice(y, 0, 1, 2), naive(ad.slice(12), wd, 3, 4, 5), { atol: 1e-5 });
  const b4 = T.matmul(T.zeros([3, 1, 2, 4]), T.ones([5, 4, 6]));
  deepStrictEqual(b4.shape, [3, 5, 2, 6]);
  deepStrictEqual(T.matmul(T.tensor([1, 2]), T.tensor([[1, 2], [3, 4]])).shape, [2]);
  assertAllClose(T.matmul(T.tensor([[1, 2], [3, 4]]), T.tensor([1, 1])), [3, 7]);
  throws(
    () => T.matmul(T.zeros([2, 3]), T.zeros([4, 5])),
    /Cannot matmul shapes \[2, 3\] and \[4, 5\]: inner dimensions 3 and 4 differ/,
  );
});

Deno.test("matmul() on sliced and permuted views", () => {
  const base = T.tensor(randomArray(4 * 6, 3), { shape: [4, 6] });
  const left = T.slice(base, 1, 0, 3), right = T.slice(base, 1, 3, 6); // strided views
  const want = naive(
    Array.from(T.contiguous(left).dataSync()),
    Array.from(T.contiguous(T.transpose(right)).dataSync()),
    4,
    3,
    4,
  );
  assertAllClose(T.matmul(left, T.transpose(right)), want, { atol: 1e-5 });
});

Deno.test("gradcheck: matmul plain, transposed, batched and broadcast", () => {
  checkOp([[3, 4], [4, 5]], T.matmul);
  checkOp([[4, 3], [4, 5]], (a, b) => T.matmul(T.transpose(a), b));
  checkOp([[3, 4], [5, 4]], (a, b) => T.matmul(a, T.transpose(b)));
  checkOp([[4, 3], [5, 4]], (a, b) => T.matmul(T.transpose(a), T.transpose(b)));
  checkOp([[2, 3, 4], [4, 2]], T.matmul);
  checkOp([[3, 4], [2, 4, 2]], T.matmul);
  checkOp([[2, 1, 3, 4], [3, 4, 2]], T.matmul);
  checkOp([[4], [4, 3]], T.matmul);
});
