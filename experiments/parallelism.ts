/**
 * Parallelism at V3 scale, simulated (DeepSeek-V3 §3.2, Table 2; §2.1.2 node-limited routing).
 * A study, not a training sweep:
 * - `schedules`: 1F1B, ZB1P and DualPipe on the pipeline simulator (`lib/parallel/pipeline.ts`)
 *   for several (PP, micro-batches, F/B/W) settings: timelines (JSON), a table of simulated
 *   against Table 2 bubbles, activations and parameter copies (JSON + Markdown), Gantt charts.
 * - `routing`: two tiny MoE decoders trained at the suite's budget (8 routed experts top-2 in 4
 *   "nodes" of 2), one with plain top-K routing and one node-limited to 1 node per token (the
 *   gate's group-limited routing, V3's `n_group` / `topk_group`); the plain model's routing
 *   recorded on held-out text (`Moe.traceRouting`) and re-routed with at most M nodes per
 *   token, counting all-to-all bytes (`lib/parallel/expert_comm.ts`) and the affinity mass
 *   given up; the validation loss of both models gives the loss side of the trade.
 *
 * Run with `deno task experiments --only parallelism`. Every file is written atomically and a
 * finished part is skipped on rerun (the training resumes from its checkpoint).
 *
 * @module
 */

import { withBackend } from "../lib/backend/mod.ts";
import { CpuBackend } from "../lib/backend/cpu.ts";
import { RandomBatches, sequentialBatches } from "../lib/data/batches.ts";
import { model, moe } from "../lib/dsl/model.ts";
import type { ModelConfig } from "../lib/models/config.ts";
import { Decoder } from "../lib/models/decoder.ts";
import {
  bubbleBarsSpec,
  type BubbleRow,
  commVolume,
  contiguousPlacement,
  ganttSpec,
  nodeLimitTrace,
  type PipelineSetting,
  type RoutingTrace,
  routingTraceOf,
  type Schedule,
  SCHEDULE_LABELS,
  SCHEDULES,
  simulatePipeline,
  tableCosts,
  timelineViolations,
  type TrafficRow,
  trafficSpec,
} from "../lib/parallel/mod.ts";
import { renderSvg } from "../lib/report/render.ts";
import { loadTokens } from "../lib/runner/run.ts";
import { readJson } from "../lib/runner/store.ts";
import {
  exists,
  study,
  type StudyContext,
  writeJsonAtomic,
  writeTextAtomic,
} from "../lib/runner/study.ts";
import { noGrad, Rng, tensor, tidy } from "../lib/tensor/mod.ts";
import { train } from "../lib/train/trainer.ts";
import { SUITE_SEEDS } from "./_suite.ts";

// 1) the pipeline settings: Table 2's regime (F = B, W ≤ F, F + B ≤ F&B ≤ F + B + W), then
//    outside it (F ≠ B, communication that nothing hides)
/** A named pipeline setting of the study. */
export interface NamedSetting extends PipelineSetting {
  /** Short label for tables and charts. */
  name: string;
}

/** The settings the `schedules` part simulates (the Gantt charts use the second, V3 Fig. 5). */
export const PIPELINE_SETTINGS: readonly NamedSetting[] = [
  { name: "PP 4, m 8, F=B=W=1, F&B=3", pp: 4, microbatches: 8, durations: { f: 1, b: 1, w: 1 } },
  {
    name: "PP 8, m 20, F=B=W=1, F&B=2.5",
    pp: 8,
    microbatches: 20,
    durations: { f: 1, b: 1, w: 1, fb: 2.5 },
  },
  {
    name: "PP 8, m 32, F=B=1, W=0.5, F&B=2.2",
    pp: 8,
    microbatches: 32,
    durations: { f: 1, b: 1, w: 0.5, fb: 2.2 },
  },
  {
    name: "PP 16, m 64, F=B=W=1, F&B=2.5",
    pp: 16,
    microbatches: 64,
    durations: { f: 1, b: 1, w: 1, fb: 2.5 },
  },
  {
    name: "PP 8, m 20, F=1, B=2, W=1, F&B=3.5 (F≠B)",
    pp: 8,
    microbatches: 20,
    durations: { f: 1, b: 2, w: 1, fb: 3.5 },
  },
  {
    name: "PP 8, m 20, F=B=W=1, F&B=2.5, comm 0.2",
    pp: 8,
    microbatches: 20,
    durations: { f: 1, b: 1, w: 1, fb: 2.5, comm: 0.2 },
  },
];

/** One row of the schedules table. */
export interface ScheduleRow {
  setting: string;
  schedule: Schedule;
  pp: number;
  microbatches: number;
  simulatedBubble: number;
  formulaBubble: number;
  makespan: number;
  peakActivations: number;
  tableActivations: number;
  parameterCopies: number;
  tableParameterCopies: number;
  /** Invariant violations found on the timeline (0 expected). */
  violations: number;
}

/**
 * Simulate every schedule on every setting and compare with Table 2.
 *
 * @param settings The settings.
 * @returns One row per (setting, schedule).
 */
export function scheduleRows(settings: readonly NamedSetting[] = PIPELINE_SETTINGS): ScheduleRow[] {
  return settings.flatMap((s) =>
    SCHEDULES.map((schedule) => {
      const r = simulatePipeline(schedule, s), t = tableCosts(schedule, s);
      return {
        setting: s.name,
        schedule,
        pp: s.pp,
        microbatches: s.microbatches,
        simulatedBubble: r.bubble,
        formulaBubble: t.bubble,
        makespan: r.makespan,
        peakActivations: r.peakActivations,
        tableActivations: t.activations,
        parameterCopies: r.parameterCopies,
        tableParameterCopies: t.parameterCopies,
        violations: timelineViolations(r).length,
      };
    })
  );
}

const fmt = (x: number) => String(Math.round(x * 1000) / 1000);

/**
 * The schedules table in Markdown.
 *
 * @param rows From {@linkcode scheduleRows}.
 * @returns A GFM table.
 */
export function scheduleMarkdown(rows: readonly ScheduleRow[]): string {
  const head = "| setting | schedule | bubble (sim) | bubble (Table 2) | makespan | " +
    "activations (sim / table) | parameters (sim / table) |\n|---|---|---:|---:|---:|---:|---:|\n";
  return head +
    rows.map((r) =>
      `| ${r.setting} | ${SCHEDULE_LABELS[r.schedule]} | ${fmt(r.simulatedBubble)} | ` +
      `${fmt(r.formulaBubble)} | ${
        fmt(r.makespan)
      } | ${r.peakActivations} / ${r.tableActivations} | ` +
      `×${r.parameterCopies} / ×${r.tableParameterCopies} |`
    ).join("\n") + "\n";
}

async function runSchedules(ctx: StudyContext): Promise<void> {
  const dir = `${ctx.dir}/schedules`;
  if (await exists(`${dir}/done.json`)) {
    ctx.reporter.log("parallelism/schedules: already done");
    return;
  }
  // 2) table: simulated vs formula for every setting
  const rows = scheduleRows();
  await writeJsonAtomic(`${dir}/table.json`, rows);
  await writeTextAtomic(`${dir}/table.md`, scheduleMarkdown(rows));
  const bubbles: BubbleRow[] = rows.map((r) => ({
    setting: r.setting,
    schedule: r.schedule,
    simulated: r.simulatedBubble,
    formula: r.formulaBubble,
  }));
  await writeTextAtomic(`${dir}/bubbles.svg`, await renderSvg(bubbleBarsSpec(bubbles)));
  // 3) timelines and Gantt charts of the V3 Fig. 5 shape (PP 8, 20 micro-batches)
  const fig5 = PIPELINE_SETTINGS[1];
  for (const schedule of SCHEDULES) {
    const r = simulatePipeline(schedule, fig5);
    await writeJsonAtomic(`${dir}/timeline_${schedule}.json`, r);
    await writeTextAtomic(`${dir}/gantt_${schedule}.svg`, await renderSvg(ganttSpec(r)));
  }
  await writeJsonAtomic(`${dir}/done.json`, {
    codeVersion: ctx.codeVersion,
    settings: rows.length,
  });
  ctx.reporter.log(`parallelism/schedules: ${rows.length} rows → ${dir}/`);
}

// 4) the routing part: two tiny MoE decoders, plain and node-limited
/** Experts, "nodes" (groups of experts, 2 GPUs each), and the node limit of the trained gate. */
const EXPERTS = 8, NODES = 4, GPUS_PER_NODE = 2, TOP_K = 2;

/** The tiny MoE decoder; `maxNodes` < `NODES` turns on the gate's group-limited routing. */
export function routingModel(maxNodes: number): ModelConfig {
  return model({
    vocab: "bytes",
    dModel: 32,
    layers: 2,
    heads: 2,
    seqLen: 64,
    ffn: moe({
      routedExperts: EXPERTS,
      topK: TOP_K,
      sharedExperts: 1,
      balance: "aux-free",
      gamma: 0.01,
      groups: maxNodes < NODES ? NODES : 1,
      topkGroup: maxNodes < NODES ? maxNodes : 1,
    }),
  });
}

/** Training budget of each routing model: `small` ~15 s on 2 CPU cores (120 × 16 × 64 tokens). */
const ROUTING_TRAIN = {
  small: { steps: 120, batch: 16 },
  full: { steps: 2000, batch: 16 },
} as const;

/** What one trained routing model leaves behind. */
export interface RoutingModelResult {
  variant: string;
  maxNodes: number;
  steps: number;
  finalTrainLoss: number;
  valLoss: number;
  /** Per MoE layer: the recorded routing of the held-out batch. */
  traces: {
    layer: number;
    tokens: number;
    experts: number;
    topK: number;
    indices: number[];
    affinity: number[];
    bias: number[];
  }[];
  seqLen: number;
  wallSeconds: number;
}

async function trainRoutingModel(
  ctx: StudyContext,
  variant: string,
  maxNodes: number,
): Promise<RoutingModelResult> {
  const dir = `${ctx.dir}/routing/${variant}`;
  const done = await readJson<RoutingModelResult>(`${dir}/result.json`);
  if (done !== null) {
    ctx.reporter.log(`parallelism/routing/${variant}: already done`);
    return done;
  }
  const started = performance.now();
  const backend = ctx.backend.canReadSync ? ctx.backend : new CpuBackend();
  const config = routingModel(maxNodes);
  const { steps, batch } = ROUTING_TRAIN[ctx.budget];
  const seed = SUITE_SEEDS[0];
  const tokens = await loadTokens({ corpus: "brown", tokenizer: "bytes" });
  const rng = new Rng(seed);
  const net = withBackend(backend, () => new Decoder(config, rng.fork("init")));
  ctx.reporter.runStart({
    index: 0,
    count: 1,
    label: `parallelism/${variant}`,
    steps,
    fromStep: 0,
    experiment: "parallelism",
    variant,
    seed,
  });
  const result = await train(
    net,
    (saved) =>
      saved === null
        ? new RandomBatches(tokens.train, {
          batch,
          seqLen: config.seqLen,
          seed: rng.fork("data").nextU32(),
        })
        : RandomBatches.fromState(tokens.train, saved),
    backend,
    {
      steps,
      lr: 3e-3,
      warmup: Math.min(5, steps),
      checkpointEvery: 10,
      checkpointDir: `${dir}/checkpoint`,
      onStep: (m) => ctx.reporter.step(m),
    },
  );
  // 5) validation loss and the routing of the first held-out batch, per MoE layer
  const layers = net.moeLayers();
  let sum = 0, count = 0, first = true;
  const traces: RoutingModelResult["traces"] = [];
  for (const b of sequentialBatches(tokens.val, { batch, seqLen: config.seqLen, maxBatches: 4 })) {
    for (const m of layers) m.traceRouting = first;
    const loss = withBackend(backend, () =>
      noGrad(() =>
        tidy(() => {
          const inputs = tensor(b.inputs, { dtype: "i32", shape: b.shape });
          const targets = tensor(b.targets, { dtype: "i32", shape: b.shape });
          return net.loss(inputs, targets).mainLoss;
        })
      ));
    sum += (await loss.item()) * b.inputs.length;
    count += b.inputs.length;
    loss.dispose();
    if (first) {
      layers.forEach((m, layer) => {
        const t = m.lastRouting;
        if (t === null) return;
        traces.push({
          layer,
          tokens: t.tokens,
          experts: t.experts,
          topK: t.topK,
          indices: Array.from(t.indices),
          affinity: Array.from(t.affinity),
          bias: Array.from(t.bias),
        });
      });
      first = false;
    }
  }
  for (const m of layers) m.traceRouting = false;
  const out: RoutingModelResult = {
    variant,
    maxNodes,
    steps: result.steps,
    finalTrainLoss: result.finalLoss,
    valLoss: sum / Math.max(count, 1),
    traces,
    seqLen: config.seqLen,
    wallSeconds: (performance.now() - started) / 1000,
  };
  await writeJsonAtomic(`${dir}/result.json`, out);
  await Deno.remove(`${dir}/checkpoint`, { recursive: true }).catch(() => {});
  ctx.reporter.runEnd({
    label: `parallelism/${variant}`,
    status: "done",
    detail: `val loss ${out.valLoss.toFixed(4)}`,
  });
  return out;
}

/** One row of the traffic table. */
export interface TrafficTableRow extends TrafficRow {
  tokens: number;
  tokensCrossingNodes: number;
  ibCopies: number;
  nvlinkCopies: number;
  meanNodesPerToken: number;
  changedTokens: number;
}

/**
 * Re-route a trace with M = 1 .. nodes and count its traffic (V3 sizes: hidden 7168, FP8
 * dispatch, BF16 combine).
 *
 * @param trace The recorded (or synthetic) routing with scores.
 * @param series Its label.
 * @param placement Where the experts live.
 * @returns One row per M.
 */
export function trafficRows(
  trace: RoutingTrace,
  series: string,
  placement = contiguousPlacement(EXPERTS, { nodes: NODES, gpusPerNode: GPUS_PER_NODE }),
): TrafficTableRow[] {
  const rows: TrafficTableRow[] = [];
  for (let m = 1; m <= placement.nodes; m++) {
    if (m * (trace.experts / placement.nodes) < trace.topK) continue; // K experts must fit
    const r = nodeLimitTrace(trace, placement, m);
    const v = commVolume(r.trace, placement);
    rows.push({
      series,
      maxNodes: m,
      ibBytesPerToken: v.ibBytesPerToken,
      lostAffinity: r.lostAffinity,
      tokens: v.tokens,
      tokensCrossingNodes: v.tokensCrossingNodes,
      ibCopies: v.ibCopies,
      nvlinkCopies: v.nvlinkCopies,
      meanNodesPerToken: v.meanNodesPerToken,
      changedTokens: r.changedTokens,
    });
  }
  return rows;
}

/**
 * A V3-shaped synthetic trace: 256 experts on 8 nodes × 8 GPUs, top-8, sigmoid affinities of
 * independent normal logits (no learned structure: an upper bound on how spread routing is).
 *
 * @param tokens Tokens to draw.
 * @param seed Seed.
 * @returns The trace with scores (plain top-8 indices).
 */
export function v3SyntheticTrace(tokens = 1024, seed = 0): RoutingTrace {
  const e = 256, k = 8, rng = new Rng(seed);
  const scores = Float32Array.from(
    { length: tokens * e },
    () => 1 / (1 + Math.exp(-rng.normal(0, 1))),
  );
  const placement = contiguousPlacement(e, { nodes: 8, gpusPerNode: 8 });
  const source = Int32Array.from({ length: tokens }, (_, t) => t % 64);
  const base = { topK: k, experts: e, indices: new Int32Array(tokens * k), source, scores };
  return { ...base, indices: nodeLimitTrace(base, placement, 8).trace.indices };
}

/** A recorded trace of the study as a {@linkcode RoutingTrace} (sequence q on GPU q mod 8). */
export function studyTrace(t: RoutingModelResult["traces"][number], seqLen: number): RoutingTrace {
  return routingTraceOf(t, { gpus: NODES * GPUS_PER_NODE, seqLen });
}

/**
 * The traffic table in Markdown.
 *
 * @param rows From {@linkcode trafficRows}.
 * @returns A GFM table.
 */
export function trafficMarkdown(rows: readonly TrafficTableRow[]): string {
  const head =
    "| trace | M | tokens crossing nodes | IB copies / token | NVLink copies / token | " +
    "IB KB / token | affinity lost | tokens re-routed |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
  return head +
    rows.map((r) =>
      `| ${r.series} | ${r.maxNodes} | ${(100 * r.tokensCrossingNodes / r.tokens).toFixed(1)}% | ` +
      `${(r.ibCopies / r.tokens).toFixed(3)} | ${(r.nvlinkCopies / r.tokens).toFixed(3)} | ` +
      `${(r.ibBytesPerToken / 1024).toFixed(1)} | ${
        Math.max(0, 100 * r.lostAffinity).toFixed(2)
      }% | ` +
      `${(100 * r.changedTokens).toFixed(1)}% |`
    ).join("\n") + "\n";
}

async function runRouting(ctx: StudyContext): Promise<void> {
  const dir = `${ctx.dir}/routing`;
  if (await exists(`${dir}/done.json`)) {
    ctx.reporter.log("parallelism/routing: already done");
    return;
  }
  const plain = await trainRoutingModel(ctx, "plain", NODES);
  const limited = await trainRoutingModel(ctx, "node-limited-1", 1);
  // 6) traffic of the plain model's routing re-routed with M = 1..4, and of the V3 shape
  const rows: TrafficTableRow[] = [
    ...plain.traces.flatMap((t) =>
      trafficRows(studyTrace(t, plain.seqLen), `tiny MoE layer ${t.layer}`)
    ),
    ...trafficRows(
      v3SyntheticTrace(),
      "V3 shape, random affinities",
      contiguousPlacement(256, { nodes: 8, gpusPerNode: 8 }),
    ).filter((r) => [1, 2, 4, 8].includes(r.maxNodes)),
  ];
  // the node-limited model's own routing, as trained
  const own = limited.traces.map((t) => {
    const v = commVolume(
      studyTrace(t, limited.seqLen),
      contiguousPlacement(EXPERTS, {
        nodes: NODES,
        gpusPerNode: GPUS_PER_NODE,
      }),
    );
    return {
      layer: t.layer,
      meanNodesPerToken: v.meanNodesPerToken,
      ibBytesPerToken: v.ibBytesPerToken,
    };
  });
  const loss = {
    plain: { valLoss: plain.valLoss, finalTrainLoss: plain.finalTrainLoss, steps: plain.steps },
    nodeLimited: {
      maxNodes: 1,
      valLoss: limited.valLoss,
      finalTrainLoss: limited.finalTrainLoss,
      steps: limited.steps,
      ownTraffic: own,
    },
    valLossGap: limited.valLoss - plain.valLoss,
    seeds: 1,
  };
  await writeJsonAtomic(`${dir}/traffic.json`, rows);
  await writeTextAtomic(`${dir}/traffic.md`, trafficMarkdown(rows));
  await writeJsonAtomic(`${dir}/loss.json`, loss);
  const tiny = rows.filter((r) => r.series.startsWith("tiny"));
  await writeTextAtomic(`${dir}/traffic.svg`, await renderSvg(trafficSpec(tiny, { nodes: NODES })));
  await writeJsonAtomic(`${dir}/done.json`, { codeVersion: ctx.codeVersion });
  ctx.reporter.log(
    `parallelism/routing: val loss plain ${plain.valLoss.toFixed(4)}, node-limited (M = 1) ` +
      `${limited.valLoss.toFixed(4)} → ${dir}/`,
  );
}

/** 7) `report.json`: the section of the HTML report, from whatever parts are on disk. */
async function writeStudyReport(ctx: StudyContext): Promise<void> {
  const read = (path: string) => Deno.readTextFile(`${ctx.dir}/${path}`).catch(() => null);
  const parts: string[] = [];
  const charts: string[] = [];
  const table = await read("schedules/table.md");
  if (table !== null) {
    parts.push(
      "Pipeline bubbles simulated by a discrete-event scheduler (1F1B, ZB1P, DualPipe), " +
        "against DeepSeek-V3 Table 2.\n\n" + table,
    );
    charts.push("schedules/bubbles.svg");
    for (const s of SCHEDULES) charts.push(`schedules/gantt_${s}.svg`);
  }
  const traffic = await read("routing/traffic.md");
  const loss = await read("routing/loss.json");
  if (traffic !== null) {
    parts.push("Expert-parallel traffic with and without node-limited routing.\n\n" + traffic);
    charts.push("routing/traffic.svg");
  }
  if (loss !== null) {
    const l = JSON.parse(loss);
    parts.push(
      `Node-limited gate (M = ${l.nodeLimited.maxNodes}) trained from scratch: validation loss ` +
        `${l.nodeLimited.valLoss.toFixed(4)} vs ${l.plain.valLoss.toFixed(4)} unrestricted ` +
        `(Δ ${l.valLossGap >= 0 ? "+" : ""}${l.valLossGap.toFixed(4)}, ${l.seeds} seed).`,
    );
  }
  if (parts.length === 0) return;
  await writeJsonAtomic(`${ctx.dir}/report.json`, {
    title: "parallelism (simulated)",
    markdown: parts.join("\n\n"),
    charts,
  });
}

/** The study: `schedules` (simulator vs Table 2) and `routing` (EP traffic, node limiting). */
export const parallelism = study({
  name: "parallelism",
  description: "DualPipe vs 1F1B vs ZB1P (simulated, vs V3 Table 2) and the cost of EP routing",
  variants: ["schedules", "routing"],
  seeds: [SUITE_SEEDS[0]],
  async run(ctx: StudyContext): Promise<void> {
    const want = (v: string) => ctx.variants === undefined || ctx.variants.includes(v);
    await Deno.mkdir(ctx.dir, { recursive: true });
    if (want("schedules")) await runSchedules(ctx);
    if (want("routing")) await runRouting(ctx);
    await writeStudyReport(ctx);
  },
});
