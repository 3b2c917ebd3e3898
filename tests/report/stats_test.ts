import { equal, throws } from "node:assert/strict";
import { meanCi, studentTCdf, studentTQuantile } from "../../lib/report/stats.ts";
import { assertAllClose } from "../../lib/tensor/assert.ts";

// Reference quantiles: scipy.stats.t.ppf(q, df) (SciPy 1.10).
const T975: [number, number][] = [
  [1, 12.706204736174698],
  [2, 4.302652729749464],
  [3, 3.182446305284263],
  [4, 2.7764451051977934],
  [9, 2.2621571628540993],
  [29, 2.045229642132703],
];

Deno.test("studentTQuantile() matches the 97.5% t quantiles for df 1, 2, 3, 4, 9, 29", () => {
  for (const [df, t] of T975) {
    assertAllClose(studentTQuantile(0.975, df), t, {
      atol: 1e-9,
      rtol: 1e-10,
      message: `df ${df}`,
    });
  }
});

Deno.test("studentTQuantile() matches closed forms for df 1 and 2 and is symmetric", () => {
  for (const p of [0.6, 0.9, 0.995]) {
    assertAllClose(studentTQuantile(p, 1), Math.tan(Math.PI * (p - 0.5)), { atol: 1e-9 });
    const two = (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
    assertAllClose(studentTQuantile(p, 2), two, { atol: 1e-9 });
    assertAllClose(studentTQuantile(1 - p, 3), -studentTQuantile(p, 3), { atol: 1e-12 });
  }
  equal(studentTQuantile(0.5, 7), 0);
  throws(() => studentTQuantile(1, 2), /Cannot take the t quantile at p 1/);
});

Deno.test("studentTCdf() approaches the normal for large df and inverts the quantile", () => {
  assertAllClose(studentTCdf(1.959963984540054, 1e7), 0.975, { atol: 1e-6 });
  assertAllClose(studentTCdf(studentTQuantile(0.9, 5), 5), 0.9, { atol: 1e-12 });
});

Deno.test("meanCi() gives mean ± t·s/√n on known numbers (n = 2, 3) and no interval for n = 1", () => {
  // n = 2: values 2, 3 → s = 1/√2, half-width = 12.7062 · (1/√2) / √2 = 6.3531
  const two = meanCi([2, 3]);
  assertAllClose(two.mean, 2.5);
  assertAllClose(two.std ?? NaN, Math.SQRT1_2);
  assertAllClose(two.halfWidth ?? NaN, 12.706204736174698 / 2, { atol: 1e-9 });
  // n = 3: values 1, 2, 3 → s = 1, half-width = 4.302653 / √3 = 2.484138
  const three = meanCi([1, 2, 3]);
  assertAllClose(three.halfWidth ?? NaN, 4.302652729749464 / Math.sqrt(3), { atol: 1e-9 });
  assertAllClose([three.lo, three.hi, three.min, three.max], [2 - 2.4841377, 2 + 2.4841377, 1, 3], {
    atol: 1e-6,
  });
  // 90% interval uses t(0.95, 2) = 2.919986
  assertAllClose(meanCi([1, 2, 3], { level: 0.9 }).halfWidth ?? NaN, 2.919985580 / Math.sqrt(3), {
    atol: 1e-8,
  });
  const one = meanCi([4]);
  equal(one.halfWidth, null);
  equal(one.std, null);
  equal(one.lo, 4);
  equal(one.hi, 4);
  throws(() => meanCi([]), /Cannot take the mean of no values/);
});
