import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  commVolume,
  contiguousPlacement,
  nodeLimitedTopK,
  nodeLimitTrace,
  type RoutingTrace,
} from "../../lib/parallel/expert_comm.ts";
import { Rng } from "../../lib/tensor/mod.ts";

// 2 nodes × 2 GPUs, expert e on GPU e: node 0 = experts {0, 1}, node 1 = experts {2, 3}
const PLACE = contiguousPlacement(4, { nodes: 2, gpusPerNode: 2 });

Deno.test("commVolume() counts a hand-made 4-token trace", () => {
  const trace: RoutingTrace = {
    topK: 2,
    experts: 4,
    // t0: GPU 0 → {0, 1} local; t1: GPU 0 → {2, 3} remote; t2: GPU 1 → {0, 3} both; t3: GPU 3 → {3, 2}
    indices: [0, 1, 2, 3, 0, 3, 3, 2],
    source: [0, 0, 1, 3],
  };
  const v = commVolume(trace, PLACE, {
    hiddenSize: 8,
    bytesPerElement: 1,
    combineBytesPerElement: 2,
  });
  // by hand: IB copies t1 (→ GPU 2) and t2 (→ GPU 3, same in-node index as GPU 1);
  // NVLink copies: t0 GPU 0→1, t1 GPU 2→3, t2 GPU 1→0, t3 GPU 3→2
  deepStrictEqual(
    {
      crossing: v.tokensCrossingNodes,
      pairs: v.pairsCrossingNodes,
      ib: v.ibCopies,
      nvlink: v.nvlinkCopies,
      mean: v.meanNodesPerToken,
      max: v.maxNodesPerToken,
      ibBytes: v.ibBytes,
      nvlinkBytes: v.nvlinkBytes,
    },
    { crossing: 2, pairs: 3, ib: 2, nvlink: 4, mean: 1.25, max: 2, ibBytes: 48, nvlinkBytes: 96 },
  );
  strictEqual(v.ibBytesPerToken, 12);
});

Deno.test("commVolume() sends one IB copy per node and one copy per GPU", () => {
  // 2 experts per GPU: a token choosing both experts of a remote GPU sends one copy
  const place = contiguousPlacement(8, { nodes: 2, gpusPerNode: 2 });
  const v = commVolume({ topK: 3, experts: 8, indices: [4, 5, 6], source: [0] }, place);
  strictEqual(v.pairsCrossingNodes, 3);
  strictEqual(v.ibCopies, 1); // node 1, landing on GPU 2 (= experts 4, 5)
  strictEqual(v.nvlinkCopies, 1); // GPU 2 → GPU 3 (expert 6)
  strictEqual(v.ibBytes, 7168 * 3); // FP8 dispatch + BF16 combine by default
});

Deno.test("nodeLimitedTopK() picks nodes by their top-(K/M) sums (hand-made)", () => {
  const place = contiguousPlacement(6, { nodes: 3 });
  const scores = [0.9, 0, 0.5, 0.5, 0.45, 0.45]; // node sums of top-2: 0.9, 1.0, 0.9
  // nodes 1 and 0 (tie with node 2 broken by index), then top-4 of experts 0..3
  deepStrictEqual(nodeLimitedTopK(scores, place, { topK: 4, maxNodes: 2 }), [0, 2, 3, 1]);
  const r = nodeLimitTrace(
    { topK: 4, experts: 6, indices: [0, 2, 3, 4], source: [0], scores },
    place,
    2,
  );
  ok(Math.abs(r.lostAffinity - 0.45 / 2.35) < 1e-6);
  strictEqual(r.changedTokens, 1);
});

Deno.test("nodeLimitedTopK() uses at most M nodes and equals top-K when M = nodes", () => {
  const rng = new Rng(5);
  const place = contiguousPlacement(16, { nodes: 4, gpusPerNode: 2 });
  for (let t = 0; t < 200; t++) {
    const scores = Array.from({ length: 16 }, () => rng.normal(0, 1));
    const plain = scores.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0]).slice(0, 4)
      .map(([, i]) => i);
    deepStrictEqual(nodeLimitedTopK(scores, place, { topK: 4, maxNodes: 4 }), plain);
    for (let m = 1; m <= 4; m++) {
      const chosen = nodeLimitedTopK(scores, place, { topK: 4, maxNodes: m });
      strictEqual(new Set(chosen).size, 4);
      const nodes = new Set(chosen.map((e) => Math.floor(place.expertGpu[e] / 2)));
      ok(nodes.size <= m, `M ${m}: ${nodes.size} nodes`);
    }
  }
});

Deno.test("nodeLimitTrace() lowers IB traffic and gives up affinity as M shrinks", () => {
  const rng = new Rng(9);
  const n = 64, e = 16, k = 4;
  const place = contiguousPlacement(e, { nodes: 4, gpusPerNode: 2 });
  const scores = Float32Array.from({ length: n * e }, () => rng.normal(0, 1));
  const source = Int32Array.from({ length: n }, (_, t) => t % 8);
  const base: RoutingTrace = {
    topK: k,
    experts: e,
    indices: new Int32Array(n * k),
    source,
    scores,
  };
  let lastIb = Infinity, lastLost = -1;
  for (let m = 1; m <= 4; m++) {
    const r = nodeLimitTrace(base, place, m);
    const v = commVolume(r.trace, place);
    ok(v.maxNodesPerToken <= m);
    if (m === 4) strictEqual(r.lostAffinity, 0);
    ok(v.ibCopies <= n * m); // at most M nodes, so at most M IB copies per token
    lastIb = Math.min(lastIb, v.ibCopies);
    lastLost = Math.max(lastLost, r.lostAffinity);
  }
  const one = nodeLimitTrace(base, place, 1);
  ok(one.lostAffinity > 0 && one.changedTokens > 0);
  ok(
    commVolume(one.trace, place).ibCopies <
      commVolume(nodeLimitTrace(base, place, 4).trace, place).ibCopies,
  );
});

Deno.test("commVolume() and nodeLimitTrace() reject malformed input", () => {
  throws(
    () => commVolume({ topK: 2, experts: 4, indices: [0, 1, 2], source: [0, 0] }, PLACE),
    /3 indices and 2 sources/,
  );
  throws(() => commVolume({ topK: 1, experts: 4, indices: [0], source: [9] }, PLACE), /GPU '9'/);
  throws(
    () => nodeLimitTrace({ topK: 1, experts: 4, indices: [0], source: [0] }, PLACE, 1),
    /without scores/,
  );
  throws(() => nodeLimitedTopK([1, 2, 3, 4], PLACE, { topK: 3, maxNodes: 1 }), /at least K/);
  throws(() => contiguousPlacement(6, { nodes: 4 }), /multiple of 4/);
});
