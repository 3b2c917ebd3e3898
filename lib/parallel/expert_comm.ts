/**
 * Expert-parallel communication, counted: what a routing decision costs on the wire when the
 * routed experts live on different GPUs and nodes (DeepSeek-V3, arXiv:2412.19437 §2.1.2
 * "node-limited routing" and §3.2.2 "cross-node all-to-all communication").
 *
 * Model of the dispatch (V3 §3.2.2): a token on GPU `(n_s, l)` that chose experts on GPUs
 * `T` is sent once over InfiniBand to every *other* node that holds one of its experts,
 * landing on the GPU with the same in-node index `l`, and from there over NVLink to each
 * target GPU of that node (experts on its own node are reached over NVLink directly). One
 * copy per target GPU, however many of its experts share that GPU. The combine sends the
 * expert outputs back along the same paths, so it has the same copy counts. Bytes are
 * `copies · hidden · bytesPerElement` (V3: hidden 7168, FP8 dispatch = 1 byte, BF16 combine
 * = 2 bytes). IB bandwidth is ~1/3.2 of NVLink on H800 (§3.2.2), so IB copies dominate.
 *
 * Node-limited routing (V3 §2.1.2): each token may use experts on at most `M` nodes; the `M`
 * nodes are those with the largest sum of their top-`⌈K/M⌉` scores, and the token then takes
 * its top-`K` experts among the experts on those nodes. With `M` = every node it is plain
 * top-`K`. Re-routing a recorded trace this way ({@linkcode nodeLimitTrace}) measures both
 * sides of the trade: IB copies saved, and the affinity mass `Σ_t Σ_{i chosen} s_i,t` given up.
 *
 * Legend: `N` tokens, `E` routed experts, `K` experts per token, `M` nodes per token.
 *
 * @module
 */

/** Which expert a token chose, per token, and where each token starts. */
export interface RoutingTrace {
  /** `K`, experts per token. */
  topK: number;
  /** `E`, routed experts. */
  experts: number;
  /** Chosen experts, token-major: `[N K]`. */
  indices: ArrayLike<number>;
  /** Source GPU of each token (global id `node · gpusPerNode + local`): `[N]`. */
  source: ArrayLike<number>;
  /**
   * Selection score of every expert, token-major `[N E]` (V3: `s + b`); needed to re-route
   * ({@linkcode nodeLimitTrace}).
   */
  scores?: ArrayLike<number>;
  /** Affinity of every expert `[N E]` for the mass measure (V3: `s`); default `scores`. */
  affinity?: ArrayLike<number>;
}

/** Where the experts live. */
export interface ExpertPlacement {
  /** Nodes. */
  nodes: number;
  /** GPUs per node (V3: 8). */
  gpusPerNode: number;
  /** Global GPU of each expert: `[E]`. */
  expertGpu: readonly number[];
}

/** Options for {@linkcode contiguousPlacement}. */
export interface PlacementOptions {
  /** Nodes. @default {1} */
  nodes?: number;
  /** GPUs per node. @default {1} */
  gpusPerNode?: number;
}

/**
 * Experts in equal contiguous blocks: GPU `g` holds experts `g E/G .. (g+1) E/G − 1` (V3: 256
 * experts on 64 GPUs of 8 nodes, 4 per GPU — without redundant experts).
 *
 * @param experts `E`.
 * @param options Nodes and GPUs per node; `E` must divide evenly over the GPUs.
 * @returns The placement.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { contiguousPlacement } from "./expert_comm.ts";
 * assertEquals(contiguousPlacement(4, { nodes: 2 }).expertGpu, [0, 0, 1, 1]);
 * ```
 */
export function contiguousPlacement(
  experts: number,
  options: PlacementOptions = {},
): ExpertPlacement {
  const nodes = options.nodes ?? 1, gpusPerNode = options.gpusPerNode ?? 1;
  const gpus = nodes * gpusPerNode;
  if (!Number.isInteger(experts) || experts <= 0 || experts % gpus !== 0) {
    throw new Error(
      `Cannot place '${experts}' experts on ${nodes} × ${gpusPerNode} GPUs: expected a positive ` +
        `multiple of ${gpus}`,
    );
  }
  const per = experts / gpus;
  return {
    nodes,
    gpusPerNode,
    expertGpu: Array.from({ length: experts }, (_, e) => Math.floor(e / per)),
  };
}

/** Options for {@linkcode commVolume}. */
export interface CommOptions {
  /** Hidden size `d` of a token's activation (V3: 7168). @default {7168} */
  hiddenSize?: number;
  /** Bytes per element of the dispatch (V3: FP8). @default {1} */
  bytesPerElement?: number;
  /** Bytes per element of the combine (V3: BF16). @default {2} */
  combineBytesPerElement?: number;
}

/** What {@linkcode commVolume} counts. */
export interface CommVolume {
  /** `N`. */
  tokens: number;
  /** Tokens with at least one expert on another node than their own. */
  tokensCrossingNodes: number;
  /** (token, expert) pairs whose expert is on another node (IB copies without dedup). */
  pairsCrossingNodes: number;
  /** Dispatch copies over IB: per token, the other nodes it sends to (deduplicated per node). */
  ibCopies: number;
  /** Dispatch copies over NVLink: per token, target GPUs not reached by the IB copy itself. */
  nvlinkCopies: number;
  /** Mean and largest number of distinct nodes a token's experts are on. */
  meanNodesPerToken: number;
  maxNodesPerToken: number;
  /** All-to-all bytes (dispatch + combine) over IB and NVLink. */
  ibBytes: number;
  nvlinkBytes: number;
  /** `ibBytes / N`. */
  ibBytesPerToken: number;
}

function checkTrace(trace: RoutingTrace, placement: ExpertPlacement): number {
  const { topK: k, experts: e, indices, source } = trace;
  if (!Number.isInteger(k) || k <= 0 || !Number.isInteger(e) || k > e) {
    throw new Error(
      `Cannot use a routing trace with topK '${k}' of '${e}' experts: expected 0 < K ≤ E`,
    );
  }
  if (indices.length % k !== 0 || indices.length / k !== source.length) {
    throw new Error(
      `Cannot use a routing trace of ${indices.length} indices and ${source.length} sources: ` +
        `expected ${source.length} tokens × ${k}`,
    );
  }
  if (placement.expertGpu.length !== e) {
    throw new Error(
      `Cannot place a trace of '${e}' experts with a placement of ${placement.expertGpu.length}: ` +
        `expected one GPU per expert`,
    );
  }
  const gpus = placement.nodes * placement.gpusPerNode;
  for (let t = 0; t < source.length; t++) {
    if (!(source[t] >= 0 && source[t] < gpus)) {
      throw new Error(
        `Cannot route token ${t} from GPU '${source[t]}': expected 0 ≤ GPU < ${gpus}`,
      );
    }
  }
  return source.length;
}

/**
 * Count the expert-parallel all-to-all traffic of a routing trace (see the module doc for the
 * dispatch model).
 *
 * @param trace Chosen experts and source GPU per token.
 * @param placement Where each expert lives.
 * @param options Hidden size and bytes per element.
 * @returns Tokens and copies crossing nodes, and bytes over IB and NVLink.
 *
 * @example Two nodes of one GPU, experts 0, 1 on node 0 and 2, 3 on node 1
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { commVolume, contiguousPlacement } from "./expert_comm.ts";
 * const v = commVolume(
 *   { topK: 2, experts: 4, indices: [2, 3, 0, 2], source: [0, 0] },
 *   contiguousPlacement(4, { nodes: 2 }),
 *   { hiddenSize: 10, bytesPerElement: 1, combineBytesPerElement: 1 },
 * );
 * assertEquals([v.tokensCrossingNodes, v.pairsCrossingNodes, v.ibCopies, v.ibBytes], [2, 3, 2, 40]);
 * ```
 */
export function commVolume(
  trace: RoutingTrace,
  placement: ExpertPlacement,
  options: CommOptions = {},
): CommVolume {
  const n = checkTrace(trace, placement);
  const { hiddenSize = 7168, bytesPerElement = 1, combineBytesPerElement = 2 } = options;
  const { topK: k, indices, source } = trace;
  const { gpusPerNode: g, expertGpu } = placement;
  let crossing = 0, pairs = 0, ib = 0, nvlink = 0, nodesSum = 0, nodesMax = 0;
  for (let t = 0; t < n; t++) {
    const src = source[t], srcNode = Math.floor(src / g), local = src % g;
    const targets = new Set<number>();
    for (let j = 0; j < k; j++) {
      const gpu = expertGpu[indices[t * k + j]];
      targets.add(gpu);
      if (Math.floor(gpu / g) !== srcNode) pairs++;
    }
    const nodes = new Map<number, number[]>(); // node → its target GPUs
    for (const gpu of targets) {
      const node = Math.floor(gpu / g);
      nodes.set(node, [...(nodes.get(node) ?? []), gpu]);
    }
    let remote = 0;
    for (const [node, gpus] of nodes) {
      const landing = node === srcNode ? src : node * g + local; // where the token arrives
      if (node !== srcNode) remote++;
      nvlink += gpus.filter((x) => x !== landing).length;
    }
    ib += remote;
    if (remote > 0) crossing++;
    nodesSum += nodes.size;
    nodesMax = Math.max(nodesMax, nodes.size);
  }
  const perCopy = hiddenSize * (bytesPerElement + combineBytesPerElement); // dispatch + combine
  return {
    tokens: n,
    tokensCrossingNodes: crossing,
    pairsCrossingNodes: pairs,
    ibCopies: ib,
    nvlinkCopies: nvlink,
    meanNodesPerToken: n === 0 ? 0 : nodesSum / n,
    maxNodesPerToken: nodesMax,
    ibBytes: ib * perCopy,
    nvlinkBytes: nvlink * perCopy,
    ibBytesPerToken: n === 0 ? 0 : (ib * perCopy) / n,
  };
}

/** Top-`k` positions of `values` by value (ties: lower position first). */
function topPositions(values: readonly number[], k: number): number[] {
  return values.map((v, i) => [v, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);
}

/** Options for {@linkcode nodeLimitedTopK}. */
export interface NodeLimitOptions {
  /** `K`, experts per token. */
  topK: number;
  /** `M`, nodes a token may use (V3: 4 of 8). */
  maxNodes: number;
}

/**
 * Node-limited top-`K` of one token (V3 §2.1.2): keep the `M` nodes with the largest sum of
 * their top-`⌈K/M⌉` scores, then take the top-`K` experts on those nodes.
 *
 * @param scores Selection score of every expert: `[E]`.
 * @param placement Where the experts live (`nodes` groups of experts).
 * @param options `K` and `M`.
 * @returns The chosen experts, by descending score (ties: lower index first).
 *
 * @example 2 nodes, M = 1: the node with the better top-2 sum wins
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { contiguousPlacement, nodeLimitedTopK } from "./expert_comm.ts";
 * const place = contiguousPlacement(4, { nodes: 2 });
 * assertEquals(nodeLimitedTopK([0.9, 0.1, 0.6, 0.5], place, { topK: 2, maxNodes: 1 }), [2, 3]);
 * assertEquals(nodeLimitedTopK([0.9, 0.1, 0.6, 0.5], place, { topK: 2, maxNodes: 2 }), [0, 2]);
 * ```
 */
export function nodeLimitedTopK(
  scores: ArrayLike<number>,
  placement: ExpertPlacement,
  options: NodeLimitOptions,
): number[] {
  const { topK: k, maxNodes: m } = options;
  const { nodes, gpusPerNode: g, expertGpu } = placement;
  const e = expertGpu.length;
  if (scores.length !== e) {
    throw new Error(`Cannot route with ${scores.length} scores: expected one per expert (${e})`);
  }
  if (!Number.isInteger(m) || m < 1 || m > nodes) {
    throw new Error(
      `Cannot limit routing to maxNodes '${m}': expected an integer in [1, ${nodes}]`,
    );
  }
  const byNode: number[][] = Array.from({ length: nodes }, () => []);
  for (let i = 0; i < e; i++) byNode[Math.floor(expertGpu[i] / g)].push(i);
  const per = Math.ceil(k / m);
  const nodeScore = byNode.map((experts) => {
    const top = topPositions(experts.map((i) => scores[i]), Math.min(per, experts.length));
    return top.reduce((s, j) => s + scores[experts[j]], 0);
  });
  const kept = topPositions(nodeScore, m); // the M best nodes
  const candidates = kept.flatMap((node) => byNode[node]).sort((a, b) => a - b);
  if (candidates.length < k) {
    throw new Error(
      `Cannot choose topK '${k}' experts on ${m} nodes holding ${candidates.length}: ` +
        `expected at least K experts within M nodes`,
    );
  }
  const chosen = topPositions(candidates.map((i) => scores[i]), k);
  return chosen.map((j) => candidates[j]);
}

/** What {@linkcode nodeLimitTrace} returns. */
export interface NodeLimitedTrace {
  /** The trace re-routed with at most `M` nodes per token (scores kept). */
  trace: RoutingTrace;
  /**
   * `1 − Σ affinity of the limited choice / Σ affinity of plain top-K` over all tokens; can be
   * slightly negative when the selection scores carry a bias that the affinity does not (V3).
   */
  lostAffinity: number;
  /** Fraction of tokens whose expert set changed against plain top-`K` of the same scores. */
  changedTokens: number;
}

/**
 * Re-route a recorded trace with node-limited routing and measure what it gives up.
 *
 * @param trace A trace with `scores` (and optionally `affinity`).
 * @param placement Where the experts live.
 * @param maxNodes `M`.
 * @returns The re-routed trace, the affinity mass lost and the share of tokens changed.
 *
 * @example With M = every node nothing changes
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { contiguousPlacement, nodeLimitTrace } from "./expert_comm.ts";
 * const trace = { topK: 2, experts: 4, indices: [0, 2], source: [0], scores: [0.9, 0.1, 0.6, 0.5] };
 * const r = nodeLimitTrace(trace, contiguousPlacement(4, { nodes: 2 }), 2);
 * assertEquals([Array.from(r.trace.indices), r.lostAffinity, r.changedTokens], [[0, 2], 0, 0]);
 * ```
 */
export function nodeLimitTrace(
  trace: RoutingTrace,
  placement: ExpertPlacement,
  maxNodes: number,
): NodeLimitedTrace {
  const n = checkTrace(trace, placement);
  const { topK: k, experts: e, scores } = trace;
  if (scores === undefined || scores.length !== n * e) {
    throw new Error(
      `Cannot re-route a trace without scores of every expert: expected ${n} × ${e} scores`,
    );
  }
  const affinity = trace.affinity ?? scores;
  const every = { topK: k, maxNodes: placement.nodes };
  const limited = { topK: k, maxNodes };
  const indices = new Int32Array(n * k);
  let keptMass = 0, fullMass = 0, changed = 0;
  for (let t = 0; t < n; t++) {
    const row = Array.from({ length: e }, (_, i) => scores[t * e + i]);
    const plain = nodeLimitedTopK(row, placement, every);
    const chosen = nodeLimitedTopK(row, placement, limited);
    indices.set(chosen, t * k);
    for (const i of plain) fullMass += affinity[t * e + i];
    for (const i of chosen) keptMass += affinity[t * e + i];
    const a = [...plain].sort((x, y) => x - y).join(), b = [...chosen].sort((x, y) => x - y).join();
    if (a !== b) changed++;
  }
  return {
    trace: { ...trace, indices },
    lostAffinity: fullMass === 0 ? 0 : 1 - keptMass / fullMass,
    changedTokens: n === 0 ? 0 : changed / n,
  };
}

/** The fields of a recorded MoE routing (`MoeRoutingTrace` of `lib/nn/moe.ts`) used here. */
export interface RecordedRouting {
  tokens: number;
  experts: number;
  topK: number;
  indices: ArrayLike<number>;
  affinity: ArrayLike<number>;
  bias: ArrayLike<number>;
}

/** Options for {@linkcode routingTraceOf}. */
export interface TraceSourceOptions {
  /** GPUs tokens start on, round-robin by sequence. @default {1} */
  gpus?: number;
  /** Tokens per sequence (a sequence stays on one GPU, as in data parallelism). @default {1} */
  seqLen?: number;
}

/**
 * A {@linkcode RoutingTrace} from a recorded MoE forward: selection scores `s + b`, affinity
 * `s`, and sequence `q` starting on GPU `q mod gpus`.
 *
 * @param recorded `Moe.lastRouting` after a forward with `traceRouting` on.
 * @param options How tokens are spread over GPUs.
 * @returns The trace.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { routingTraceOf } from "./expert_comm.ts";
 * const t = routingTraceOf(
 *   { tokens: 2, experts: 2, topK: 1, indices: [1, 0], affinity: [0.25, 0.75, 0.5, 0.125], bias: [0, 0.5] },
 *   { gpus: 2, seqLen: 1 },
 * );
 * assertEquals([Array.from(t.source), Array.from(t.scores ?? [])], [[0, 1], [0.25, 1.25, 0.5, 0.625]]);
 * ```
 */
export function routingTraceOf(
  recorded: RecordedRouting,
  options: TraceSourceOptions = {},
): RoutingTrace {
  const { gpus = 1, seqLen = 1 } = options;
  const { tokens: n, experts: e } = recorded;
  const scores = new Float32Array(n * e);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < e; i++) scores[t * e + i] = recorded.affinity[t * e + i] + recorded.bias[i];
  }
  const source = Int32Array.from({ length: n }, (_, t) => Math.floor(t / seqLen) % gpus);
  return {
    topK: recorded.topK,
    experts: e,
    indices: recorded.indices,
    source,
    scores,
    affinity: recorded.affinity,
  };
}
