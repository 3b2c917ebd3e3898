import { deepStrictEqual, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import {
  type Batch,
  RandomBatches,
  sequentialBatches,
  windowCount,
} from "../../lib/data/batches.ts";

const arange = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

function draw(batches: RandomBatches, n: number): Batch[] {
  return Array.from({ length: n }, () => batches.next());
}

Deno.test("RandomBatches rows are next-token windows of the stream", () => {
  const tokens = arange(1000).map((x) => (x * 7919) % 1013); // distinct values
  const [B, T] = [8, 16];
  for (
    const { inputs, targets, shape, starts } of draw(
      new RandomBatches(tokens, { batch: B, seqLen: T }),
      5,
    )
  ) {
    deepStrictEqual(shape, [B, T]);
    deepStrictEqual([inputs.length, targets.length, starts.length], [B * T, B * T, B]);
    starts.forEach((s, b) => {
      ok(s >= 0 && s + T + 1 <= tokens.length, `start ${s}`);
      deepStrictEqual(inputs.subarray(b * T, (b + 1) * T), tokens.subarray(s, s + T));
      deepStrictEqual(targets.subarray(b * T, (b + 1) * T), tokens.subarray(s + 1, s + T + 1));
    });
  }
});

Deno.test("RandomBatches draws every valid start and none past the end", () => {
  // 12 tokens, T = 4: windows of 5 tokens start at 0..7.
  const seen = new Set<number>();
  for (const b of draw(new RandomBatches(arange(12), { batch: 4, seqLen: 4, seed: 3 }), 100)) {
    for (const s of b.starts) seen.add(s);
  }
  deepStrictEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("RandomBatches is reproducible from its seed, and seeds differ", () => {
  const tokens = arange(5000);
  const config = { batch: 4, seqLen: 32 };
  const a = draw(new RandomBatches(tokens, { ...config, seed: 42 }), 10);
  const b = draw(new RandomBatches(tokens, { ...config, seed: 42 }), 10);
  deepStrictEqual(a, b);
  const c = draw(new RandomBatches(tokens, { ...config, seed: 43 }), 10);
  notDeepStrictEqual(a.map((x) => x.starts), c.map((x) => x.starts));
  // The default seed is 0.
  deepStrictEqual(
    draw(new RandomBatches(tokens, config), 3),
    draw(new RandomBatches(tokens, { ...config, seed: 0 }), 3),
  );
});

Deno.test("RandomBatches.fromState() resumes exactly where state() was taken", () => {
  const tokens = arange(3000).map((x) => x % 251);
  const config = { batch: 3, seqLen: 20, seed: 9 };
  const uninterrupted = draw(new RandomBatches(tokens, config), 12);

  const first = new RandomBatches(tokens, config);
  const before = draw(first, 5);
  const saved = JSON.stringify(first.state()); // as in a checkpoint
  const resumed = RandomBatches.fromState(tokens, JSON.parse(saved));
  deepStrictEqual(resumed.step, 5);
  deepStrictEqual([...before, ...draw(resumed, 7)], uninterrupted);
  deepStrictEqual(resumed.state().step, 12);
  // Restoring is independent of the original: it keeps drawing its own stream.
  deepStrictEqual(draw(first, 7), uninterrupted.slice(5));

  throws(
    () => RandomBatches.fromState(tokens.subarray(1), JSON.parse(saved)),
    /Cannot restore batches drawn from 3000 tokens onto 2999 tokens: expected the same token stream/,
  );
  throws(
    () => RandomBatches.fromState(tokens, { ...JSON.parse(saved), step: -1 }),
    /Cannot restore batches at step -1/,
  );
});

Deno.test("sequentialBatches() walks non-overlapping windows in order, the same every time", () => {
  const tokens = arange(103);
  const config = { batch: 4, seqLen: 10 };
  deepStrictEqual(windowCount(103, 10), 10); // starts 0, 10, …, 90; the window at 90 ends at 100
  const batches = [...sequentialBatches(tokens, config)];
  deepStrictEqual(batches.map((b) => b.shape), [[4, 10], [4, 10], [2, 10]]);
  deepStrictEqual(batches.flatMap((b) => b.starts), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  // Every token from 1 to 100 is a target exactly once, in order.
  deepStrictEqual(
    batches.flatMap((b) => Array.from(b.targets)),
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
  deepStrictEqual([...sequentialBatches(tokens, config)], batches);
  deepStrictEqual(
    [...sequentialBatches(tokens, { ...config, maxBatches: 2 })],
    batches.slice(0, 2),
  );
  deepStrictEqual([...sequentialBatches(arange(11), { batch: 1, seqLen: 10 })].length, 1);
});

Deno.test("batches reject bad sizes and streams shorter than one window", () => {
  throws(
    () => new RandomBatches(arange(10), { batch: 2, seqLen: 10 }),
    /Cannot make windows of seqLen 10 from 10 tokens: expected at least 11 tokens/,
  );
  throws(
    () => new RandomBatches(arange(10), { batch: 0, seqLen: 2 }),
    /Cannot make batches of batch 0: expected an integer >= 1/,
  );
  throws(
    () => sequentialBatches(arange(10), { batch: 1, seqLen: 2.5 }).next(),
    /Cannot make batches of seqLen 2.5: expected an integer >= 1/,
  );
});
