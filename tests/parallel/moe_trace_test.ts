import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Moe } from "../../lib/nn/moe.ts";
import {
  contiguousPlacement,
  nodeLimitTrace,
  routingTraceOf,
} from "../../lib/parallel/expert_comm.ts";
import { noGrad, randn, Rng } from "../../lib/tensor/mod.ts";

/** Read the trace through a call, so that assertions on it do not narrow the field's type. */
const recorded = (moe: Moe) => moe.lastRouting;

const sorted = (xs: ArrayLike<number>, k: number) => {
  const out: number[] = [];
  for (let t = 0; t < xs.length; t += k) {
    out.push(...Array.from(xs).slice(t, t + k).sort((a, b) => a - b));
  }
  return out;
};

Deno.test("Moe.traceRouting records the experts the gate used and their load", () => {
  const rng = new Rng(3);
  const moe = new Moe({
    dModel: 8,
    routedExperts: 8,
    topK: 2,
    expertHidden: 8,
  }, rng);
  const x = randn([2, 6, 8], { rng });
  strictEqual(recorded(moe), null);
  noGrad(() => moe.forward(x)); // off by default: nothing recorded
  strictEqual(recorded(moe), null);
  moe.traceRouting = true;
  const out = noGrad(() => moe.forward(x));
  const trace = recorded(moe);
  ok(trace !== null);
  deepStrictEqual(trace.indices, Int32Array.from(out.indices.dataSync()));
  const counts = new Array(8).fill(0);
  for (const e of trace.indices) counts[e]++;
  deepStrictEqual(counts, out.load);
  strictEqual(trace.tokens, 12);
  strictEqual(trace.affinity.length, 12 * 8);
  // the recorded indices are the top-2 of the recorded s + b
  const routed = routingTraceOf(trace, { gpus: 1, seqLen: 6 });
  const again = nodeLimitTrace(routed, contiguousPlacement(8, { nodes: 1 }), 1);
  deepStrictEqual(sorted(again.trace.indices, 2), sorted(trace.indices, 2));
});

Deno.test("Moe.traceRouting: the group-limited gate equals node-limited re-routing", async () => {
  const rng = new Rng(11);
  // 4 groups ("nodes") of 2 experts, at most 2 groups per token; K/M = 2 = the gate's top-2
  const moe = new Moe({
    dModel: 8,
    routedExperts: 8,
    topK: 4,
    expertHidden: 8,
    groups: 4,
    topkGroup: 2,
  }, rng);
  moe.traceRouting = true;
  const x = randn([1, 16, 8], { rng });
  const out = await noGrad(() => moe.forwardAsync(x)); // the async host steps record too
  const trace = recorded(moe);
  ok(trace !== null);
  deepStrictEqual(trace.indices, Int32Array.from(out.indices.dataSync()));
  const place = contiguousPlacement(8, { nodes: 4 });
  const limited = nodeLimitTrace(routingTraceOf(trace), place, 2);
  deepStrictEqual(sorted(limited.trace.indices, 4), sorted(trace.indices, 4));
});
