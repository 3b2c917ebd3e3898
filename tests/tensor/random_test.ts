import { deepStrictEqual, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import { Rng } from "../../lib/tensor/random.ts";
import * as T from "../../lib/tensor/mod.ts";

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/random/xoshiro128ss.json", import.meta.url)),
) as { outputs: number[] };

Deno.test("Rng.nextU32() reproduces the xoshiro128** reference outputs", () => {
  const rng = Rng.fromState([1, 2, 3, 4]);
  deepStrictEqual(Array.from({ length: 16 }, () => rng.nextU32()), fixture.outputs);
});

Deno.test("Rng: same seed same stream, different seeds differ, state round-trips", () => {
  const a = new Rng(5), b = new Rng(5), c = new Rng(6);
  const draw = (r: Rng) => Array.from({ length: 8 }, () => r.nextU32());
  deepStrictEqual(draw(a), draw(b));
  notDeepStrictEqual(draw(new Rng(5)), draw(c));
  const r = new Rng(9);
  r.nextU32();
  const saved = r.state();
  const expected = draw(r);
  deepStrictEqual(draw(Rng.fromState(saved)), expected);
  notDeepStrictEqual(draw(new Rng(1).fork("data")), draw(new Rng(1).fork("init")));
  throws(() => Rng.fromState([0, 0, 0, 0]), /all-zero state/);
});

Deno.test("Rng distributions: moments of normal and uniform, bounds of truncated normal", () => {
  const rng = new Rng(123);
  const n = 40_000;
  let s = 0, s2 = 0;
  for (let i = 0; i < n; i++) {
    const x = rng.normal();
    s += x;
    s2 += x * x;
  }
  // Standard errors: mean 1/√n = 0.005, variance √(2/n) = 0.007; allow ~4σ.
  ok(Math.abs(s / n) < 0.02, `normal mean ${s / n}`);
  ok(Math.abs(s2 / n - 1) < 0.03, `normal variance ${s2 / n}`);
  let u = 0;
  for (let i = 0; i < n; i++) u += rng.float();
  ok(Math.abs(u / n - 0.5) < 0.006, `uniform mean ${u / n}`);
  for (let i = 0; i < 2000; i++) {
    const t = rng.truncatedNormal(0, 1, -0.5, 0.5);
    ok(t >= -0.5 && t <= 0.5);
  }
  const counts = new Array(3).fill(0);
  for (let i = 0; i < 30_000; i++) counts[rng.int(3)]++;
  for (const c of counts) ok(Math.abs(c - 10_000) < 400, `int(3) counts ${counts}`);
  throws(() => rng.int(0), /Cannot draw an integer below 0/);
});

Deno.test("randn(), rand(), truncNormal() are seeded initialisers", () => {
  const a = T.randn([2, 3], { rng: new Rng(1), std: 0.02 });
  const b = T.randn([2, 3], { rng: new Rng(1), std: 0.02 });
  deepStrictEqual(a.dataSync(), b.dataSync());
  const u = T.rand([1000], { rng: new Rng(2), low: -1, high: 1 }).dataSync();
  ok(u.every((v) => v >= -1 && v < 1));
  const t = T.truncNormal([1000], { rng: new Rng(3), std: 1, a: -2, b: 2 }).dataSync();
  ok(t.every((v) => v >= -2 && v <= 2));
});
