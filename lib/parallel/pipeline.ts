/**
 * Pipeline parallelism, simulated: a discrete-event simulator and three schedules — 1F1B
 * (Narayanan et al. 2021, PipeDream-Flush), ZB1P ("ZB-H1", Qi et al. 2023, arXiv:2401.10241
 * §3.1) and DualPipe (DeepSeek-V3, arXiv:2412.19437 §3.2.1, Fig. 5, Table 2).
 *
 * A schedule is a per-rank list of operations on model chunks; the simulator starts every
 * operation as soon as its rank is free and its inputs exist, and records the timeline. Nothing
 * about a schedule's cost is computed from a formula: bubble, memory and parameter copies are
 * all measured on the timeline, and {@linkcode tableCosts} gives V3's Table 2 to compare with.
 *
 * Legend: `PP` pipeline ranks, `m` micro-batches (all directions together), a *chunk* is the
 * part of the model one rank runs for one micro-batch in one direction (`1/PP` of the layers).
 * Durations are per chunk:
 * - `F` forward;
 * - `B` backward for the input (the gradient the previous stage waits for);
 * - `W` backward for the weights (needed by nobody downstream, so it can be delayed);
 * - `F&B` (option `fb`) one forward chunk and one full backward chunk run together with their
 *   communication overlapped (V3 Fig. 4); default `F + B + W`, i.e. no gain from overlap;
 * - `comm` the point-to-point transfer of activations or gradients between neighbouring stages.
 *
 * **Convention (so that the simulated numbers meet Table 2 exactly).** V3's Table 2 writes `B`
 * for a *full* backward chunk ("B denotes the execution time of a full backward chunk"), i.e.
 * `B_table = B + W` here. Its rows, in this module's per-operation durations:
 * - 1F1B: `(PP−1)(F + B_table) = (PP−1)(F + B + W)`; the backward is never split, so a 1F1B
 *   `B` operation lasts `B + W` and is marked `withW`;
 * - ZB1P: `(PP−1)(F + B_table − 2W) = (PP−1)(F + B − W)`;
 * - DualPipe: `(PP/2−1)(F&B + B_table − 3W) = (PP/2−1)(F&B + B − 2W)`.
 *
 * **Bubble.** V3 (like the ZB paper) counts the idle time of one pipeline rank over one
 * training step: from the first operation of the step to the last, the time a rank does not
 * compute. Here `idle_r = makespan − busy_r`, where `makespan` is the end of the last operation
 * on any rank (the step starts at 0) and `busy_r` the summed durations of the operations of rank
 * `r` (an `F&B` pair counts once, with its overlapped duration). The reported `bubble` is the
 * largest `idle_r` over ranks, the rank that bounds the step. For 1F1B and ZB1P every rank has
 * the same idle time; for DualPipe ranks run different numbers of overlapped pairs, and the
 * maximum is what Table 2 gives. Table 2 neglects `comm`: with `comm > 0` the measured bubbles
 * grow beyond the formulas (that is what DualPipe's overlap is designed to hide).
 *
 * **When the formulas hold.** 1F1B is exact for any durations with `m ≥ PP`. ZB1P is exact when
 * `W ≤ min(F, B)` (the delayed `W`s fit the gaps they fill). DualPipe (`m ≥ 2 PP`, even) is
 * exact when `F = B` (as in V3's Fig. 5, where forward and backward chunks are drawn alike),
 * `W ≤ F` and `F + B ≤ F&B ≤ F + B + W` (overlap hides communication, not computation); with
 * `F > B` the simulated bubble is `(PP/2−1)(F&B + F − 2W)` (the middle ranks' start-up waits on
 * forwards where the table charges a backward), with `F < B` it lies between that and the
 * table. The tests check these statements; the study reports measured values everywhere.
 *
 * **Activations** are counted in chunk activations of one micro-batch: a chunk's activation is
 * held from the start of its forward until the end of the operation that finishes its backward
 * (its `W`, or its full backward). **Parameter copies**: the number of distinct (rank, stage)
 * chunks a timeline runs, divided by `PP` (1 when each rank holds one stage, 2 for DualPipe,
 * whose rank `r` holds stage `r` of one direction and stage `PP−1−r` of the other).
 *
 * @module
 */

/** The schedules the simulator knows. */
export type Schedule = "1f1b" | "zb1p" | "dualpipe";

/** Every {@linkcode Schedule}, in the order of V3's Table 2. */
export const SCHEDULES: readonly Schedule[] = ["1f1b", "zb1p", "dualpipe"];

/** Operation kinds on a timeline (`FB`: an overlapped forward + backward pair). */
export type OpKind = "F" | "B" | "W" | "FB";

/** Per-chunk durations (any time unit). */
export interface ChunkDurations {
  /** `F`, forward of one chunk. */
  f: number;
  /** `B`, backward of one chunk for its input. */
  b: number;
  /** `W`, backward of one chunk for its weights. */
  w: number;
  /** `F&B`, an overlapped forward chunk + full backward chunk. @default {f + b + w} */
  fb?: number;
  /** Transfer of activations / gradients between neighbouring stages. @default {0} */
  comm?: number;
}

/** A pipeline to simulate. */
export interface PipelineSetting {
  /** `PP`, pipeline ranks (even for DualPipe). */
  pp: number;
  /** `m`, micro-batches per step (DualPipe: split evenly between the two directions). */
  microbatches: number;
  /** Per-chunk durations. */
  durations: ChunkDurations;
}

/** One chunk of work: micro-batch `microbatch` of `direction` at pipeline `stage`. */
export interface ChunkRef {
  /** 0: fed at rank 0; 1: fed at rank `PP−1` (DualPipe only). */
  direction: 0 | 1;
  /** Pipeline stage within its direction (`0` is where the micro-batch enters). */
  stage: number;
  /** Micro-batch index within its direction. */
  microbatch: number;
}

/** One operation as it ran. */
export interface TimelineEntry extends ChunkRef {
  /** The rank that ran it. */
  rank: number;
  /** `F`, `B`, `W`, or `FB` (then `direction`/`stage`/`microbatch` are its forward half). */
  kind: OpKind;
  start: number;
  end: number;
  /** `B` only: the weight gradient is computed inside (a full backward, no separate `W`). */
  withW?: boolean;
  /** `FB` only: the backward half (always a full backward). */
  backward?: ChunkRef;
}

/** What {@linkcode simulatePipeline} returns. */
export interface PipelineResult {
  schedule: Schedule;
  pp: number;
  microbatches: number;
  /** The durations used, `fb` and `comm` resolved. */
  durations: Required<ChunkDurations>;
  /** Every operation, sorted by start time then rank. */
  timeline: TimelineEntry[];
  /** End of the last operation (the step starts at 0). */
  makespan: number;
  /** Summed operation durations per rank. */
  busy: number[];
  /** `makespan − busy_r` per rank. */
  idle: number[];
  /** The bubble: the largest `idle_r` (see the module doc). */
  bubble: number;
  /** Peak chunk activations held per rank. */
  activationsPerRank: number[];
  /** The largest of `activationsPerRank`. */
  peakActivations: number;
  /** Distinct (rank, stage) chunks over `PP`. */
  parameterCopies: number;
}

/** Table 2 of DeepSeek-V3 for one schedule. */
export interface TableCosts {
  /** The bubble formula evaluated (see the module doc for the `B` convention). */
  bubble: number;
  /** Parameter copies: 1, 1, 2. */
  parameterCopies: number;
  /** Peak activations in chunk activations: `PP`, `PP`, `PP + 1`. */
  activations: number;
}

/** Internal: one scheduled operation before it runs. */
type Op =
  | { kind: "F"; c: ChunkRef }
  | { kind: "B"; c: ChunkRef; withW: boolean }
  | { kind: "W"; c: ChunkRef }
  | { kind: "FB"; f: ChunkRef; b: ChunkRef };

function resolveDurations(d: ChunkDurations): Required<ChunkDurations> {
  const out = { fb: d.f + d.b + d.w, comm: 0, ...d };
  for (const [name, v] of Object.entries(out)) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new Error(
        `Cannot simulate a pipeline with duration ${name} '${v}': expected a number ≥ 0`,
      );
    }
  }
  return out;
}

function checkSetting(schedule: Schedule, setting: PipelineSetting): void {
  const { pp, microbatches: m } = setting;
  if (!Number.isInteger(pp) || pp < 1) {
    throw new Error(`Cannot simulate ${schedule} with pp '${pp}': expected a positive integer`);
  }
  if (!Number.isInteger(m) || m < 1) {
    throw new Error(
      `Cannot simulate ${schedule} with microbatches '${m}': expected a positive integer`,
    );
  }
  if (schedule === "dualpipe" && (pp % 2 !== 0 || m % 2 !== 0 || m < 2 * pp)) {
    throw new Error(
      `Cannot simulate dualpipe with pp '${pp}' and microbatches '${m}': expected an even pp ` +
        `and an even number of micro-batches ≥ 2 pp`,
    );
  }
}

const chunk = (direction: 0 | 1, stage: number, microbatch: number): ChunkRef => ({
  direction,
  stage,
  microbatch,
});

/** 1F1B: `PP−1−r` warm-up forwards, then one forward / one full backward, then the rest. */
function ops1f1b(pp: number, m: number, r: number): Op[] {
  const ops: Op[] = [];
  const warmup = Math.min(pp - 1 - r, m);
  let f = 0, b = 0;
  for (; f < warmup; f++) ops.push({ kind: "F", c: chunk(0, r, f) }); // 1) warm-up
  while (f < m) { // 2) steady: 1F1B
    ops.push({ kind: "F", c: chunk(0, r, f++) });
    ops.push({ kind: "B", c: chunk(0, r, b++), withW: true });
  }
  while (b < m) ops.push({ kind: "B", c: chunk(0, r, b++), withW: true }); // 3) cool-down
  return ops;
}

/**
 * ZB1P (ZB-H1): the 1F1B order with the backward split; rank `r` runs the `W` of micro-batch
 * `i − (r + 1)` just before its forward of `i + PP − 1 − r`, i.e. it keeps `r + 1` weight
 * gradients pending. That holds `PP` activations on every rank (as 1F1B's first rank) and
 * shortens the critical path of the last micro-batch's backward by `W` per stage; the pending
 * `W`s run at the end, where 1F1B's ranks idle.
 */
function opsZb1p(pp: number, m: number, r: number): Op[] {
  const ops: Op[] = [];
  const warmup = Math.min(pp - 1 - r, m);
  const lag = r + 1; // pending W's
  let f = 0, w = 0;
  for (; f < warmup; f++) ops.push({ kind: "F", c: chunk(0, r, f) }); // 1) warm-up
  for (let i = 0; i < m; i++) { // 2) steady and cool-down: [W], [F], B
    if (i - lag >= 0) ops.push({ kind: "W", c: chunk(0, r, w++) });
    if (f < m) ops.push({ kind: "F", c: chunk(0, r, f++) });
    ops.push({ kind: "B", c: chunk(0, r, i), withW: false });
  }
  while (w < m) ops.push({ kind: "W", c: chunk(0, r, w++) }); // 3) the pending W's
  return ops;
}

/**
 * DualPipe (V3 §3.2.1, Fig. 5): micro-batches enter at both ends. Rank `r` holds two chunks:
 * "phase 0", the direction in which it sits in the first half (stage `h = min(r, PP−1−r)`),
 * and "phase 1", the other (stage `PP−1−h`). In eight steps:
 * 1) `PP − 2 − 2h` forwards of phase 0 (warm-up, deeper for ranks near the ends);
 * 2) `h + 1` pairs of forwards, phase 0 then phase 1;
 * 3) `PP/2 − 1 − h` × [backward phase 1 (split), `W`, forward phase 1];
 * 4) the main part, `m/2 − PP + h + 1` × [F&B(F phase 0, B phase 1), F&B(F phase 1, B phase 0)]
 *    (the middle ranks run their first phase-0 forward and phase-1 backward apart);
 * 5) `PP/2 − 1 − h` × [backward phase 1, F&B(F phase 1, B phase 0)];
 * 6) `h + 1` × [backward phase 1, backward phase 0], the second half of them split;
 * 7) `PP/2 − 1 − h` × [`W`, backward phase 0 (split)];
 * 8) the remaining `h + 1` `W`s.
 * Split backwards queue their `W` (first in, first out) for the later `W` slots.
 */
function opsDualPipe(pp: number, m: number, r: number): Op[] {
  const half = pp / 2, perDir = m / 2;
  const h = Math.min(r, pp - 1 - r);
  const middle = h === half - 1;
  // phase k → (direction, stage) on this rank
  const dir0: 0 | 1 = r < half ? 0 : 1;
  const dir1: 0 | 1 = dir0 === 0 ? 1 : 0;
  const phases = [{ d: dir0, s: h }, { d: dir1, s: pp - 1 - h }];
  const nextF = [0, 0], nextB = [0, 0];
  const pendingW: ChunkRef[] = [];
  const ops: Op[] = [];
  const fwd = (k: 0 | 1): ChunkRef => chunk(phases[k].d, phases[k].s, nextF[k]++);
  const bwd = (k: 0 | 1): ChunkRef => chunk(phases[k].d, phases[k].s, nextB[k]++);
  const F = (k: 0 | 1) => ops.push({ kind: "F", c: fwd(k) });
  const B = (k: 0 | 1, split: boolean) => {
    const c = bwd(k);
    ops.push({ kind: "B", c, withW: !split });
    if (split) pendingW.push(c);
  };
  const W = () => {
    const c = pendingW.shift();
    if (c === undefined) {
      throw new Error(`Cannot schedule a W on dualpipe rank '${r}': none pending`);
    }
    ops.push({ kind: "W", c });
  };
  const FB = (kf: 0 | 1, kb: 0 | 1) => ops.push({ kind: "FB", f: fwd(kf), b: bwd(kb) });
  for (let i = 0; i < 2 * (half - h - 1); i++) F(0); // 1)
  for (let i = 0; i < h + 1; i++) { // 2)
    F(0);
    F(1);
  }
  for (let i = 0; i < half - h - 1; i++) { // 3)
    B(1, true);
    W();
    F(1);
  }
  for (let i = 0; i < perDir - pp + h + 1; i++) { // 4)
    if (i === 0 && middle) {
      F(0);
      B(1, false);
    } else FB(0, 1);
    FB(1, 0);
  }
  for (let i = 0; i < half - h - 1; i++) { // 5)
    B(1, false);
    FB(1, 0);
  }
  const steps6 = h + 1; // 6)
  let split = false;
  for (let i = 0; i < steps6; i++) {
    if (i === Math.floor(steps6 / 2) && h % 2 === 1) split = true;
    B(1, split);
    if (i === Math.floor(steps6 / 2) && h % 2 === 0) split = true;
    B(0, split);
  }
  for (let i = 0; i < half - h - 1; i++) { // 7)
    W();
    B(0, true);
  }
  while (pendingW.length > 0) W(); // 8)
  return ops;
}

function rankOps(schedule: Schedule, pp: number, m: number, r: number): Op[] {
  switch (schedule) {
    case "1f1b":
      return ops1f1b(pp, m, r);
    case "zb1p":
      return opsZb1p(pp, m, r);
    case "dualpipe":
      return opsDualPipe(pp, m, r);
    default:
      throw new Error(`Unknown schedule '${schedule satisfies never}'`);
  }
}

const key = (kind: "F" | "B" | "W", c: ChunkRef) =>
  `${kind}:${c.direction}:${c.stage}:${c.microbatch}`;

/** When the inputs of `op` are ready, or `null` while one is missing. */
function readyAt(op: Op, pp: number, comm: number, done: Map<string, number>): number | null {
  let t = 0;
  const need = (k: string, delay: number): boolean => {
    const at = done.get(k);
    if (at === undefined) return false;
    t = Math.max(t, at + delay);
    return true;
  };
  const fwdOk = (c: ChunkRef) =>
    c.stage === 0 || need(key("F", { ...c, stage: c.stage - 1 }), comm);
  const bwdOk = (c: ChunkRef) =>
    need(key("F", c), 0) &&
    (c.stage === pp - 1 || need(key("B", { ...c, stage: c.stage + 1 }), comm));
  switch (op.kind) {
    case "F":
      return fwdOk(op.c) ? t : null;
    case "B":
      return bwdOk(op.c) ? t : null;
    case "W":
      return need(key("B", op.c), 0) ? t : null;
    case "FB": {
      // the forward half's own activation is not an input of the backward half
      const ok = fwdOk(op.f) && bwdOk(op.b);
      return ok ? t : null;
    }
    default:
      throw new Error(`Unknown operation '${(op satisfies never as Op).kind}'`);
  }
}

function duration(op: Op, d: Required<ChunkDurations>): number {
  switch (op.kind) {
    case "F":
      return d.f;
    case "B":
      return op.withW ? d.b + d.w : d.b;
    case "W":
      return d.w;
    case "FB":
      return d.fb;
    default:
      throw new Error(`Unknown operation '${(op satisfies never as Op).kind}'`);
  }
}

/** Peak number of activations alive on one rank's timeline. */
function peakActivations(entries: TimelineEntry[]): number {
  const events: [number, number][] = []; // [time, +1 alloc | −1 free]
  for (const e of entries) {
    if (e.kind === "F" || e.kind === "FB") events.push([e.start, +1]);
    if ((e.kind === "B" && e.withW) || e.kind === "W" || e.kind === "FB") events.push([e.end, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // frees before allocations at equal times
  let live = 0, peak = 0;
  for (const [, delta] of events) peak = Math.max(peak, live += delta);
  return peak;
}

/**
 * Simulate one training step of a pipeline schedule: every operation starts when its rank is
 * free and its inputs are ready (forward from the previous stage, backward from the next stage
 * and its own forward, `W` after its `B`), each input `comm` after it was produced on another
 * rank. Bubble, activations and parameter copies are measured on the resulting timeline.
 *
 * @param schedule `1f1b`, `zb1p` or `dualpipe`.
 * @param setting Ranks, micro-batches and per-chunk durations.
 * @returns The timeline and what it costs (see the module doc for the definitions).
 *
 * @example 1F1B and ZB1P against V3's Table 2
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { simulatePipeline, tableCosts } from "./pipeline.ts";
 * const setting = { pp: 4, microbatches: 8, durations: { f: 2, b: 2, w: 1 } };
 * const oneF = simulatePipeline("1f1b", setting);
 * assertEquals(oneF.bubble, 3 * (2 + 2 + 1)); // (PP−1)(F + B_full)
 * assertEquals(simulatePipeline("zb1p", setting).bubble, tableCosts("zb1p", setting).bubble);
 * assertEquals(oneF.peakActivations, 4);
 * ```
 */
export function simulatePipeline(schedule: Schedule, setting: PipelineSetting): PipelineResult {
  checkSetting(schedule, setting);
  const { pp, microbatches: m } = setting;
  const d = resolveDurations(setting.durations);
  const queues = Array.from({ length: pp }, (_, r) => rankOps(schedule, pp, m, r));
  const next = new Array<number>(pp).fill(0);
  const free = new Array<number>(pp).fill(0);
  const done = new Map<string, number>();
  const perRank: TimelineEntry[][] = Array.from({ length: pp }, () => []);
  let remaining = queues.reduce((s, q) => s + q.length, 0);
  while (remaining > 0) {
    let progressed = false;
    for (let r = 0; r < pp; r++) {
      while (next[r] < queues[r].length) {
        const op = queues[r][next[r]];
        const ready = readyAt(op, pp, d.comm, done);
        if (ready === null) break;
        const start = Math.max(ready, free[r]), end = start + duration(op, d);
        free[r] = end;
        next[r]++;
        remaining--;
        progressed = true;
        switch (op.kind) {
          case "F":
            done.set(key("F", op.c), end);
            perRank[r].push({ rank: r, kind: "F", ...op.c, start, end });
            break;
          case "B":
            done.set(key("B", op.c), end);
            if (op.withW) done.set(key("W", op.c), end);
            perRank[r].push({ rank: r, kind: "B", ...op.c, start, end, withW: op.withW });
            break;
          case "W":
            done.set(key("W", op.c), end);
            perRank[r].push({ rank: r, kind: "W", ...op.c, start, end });
            break;
          case "FB":
            done.set(key("F", op.f), end);
            done.set(key("B", op.b), end);
            done.set(key("W", op.b), end);
            perRank[r].push({ rank: r, kind: "FB", ...op.f, start, end, backward: op.b });
            break;
          default:
            throw new Error(`Unknown operation '${(op satisfies never as Op).kind}'`);
        }
      }
    }
    if (!progressed) {
      const stuck = queues.map((q, r) => `rank ${r} at op ${next[r]}/${q.length}`).join(", ");
      throw new Error(`Cannot simulate ${schedule} with pp '${pp}': it deadlocks (${stuck})`);
    }
  }
  const timeline = perRank.flat().sort((a, b) => a.start - b.start || a.rank - b.rank);
  const makespan = Math.max(0, ...free);
  const busy = perRank.map((es) => es.reduce((s, e) => s + (e.end - e.start), 0));
  const idle = busy.map((b) => makespan - b);
  const activationsPerRank = perRank.map(peakActivations);
  const chunks = new Set(timeline.map((e) => `${e.rank}:${e.direction}:${e.stage}`));
  return {
    schedule,
    pp,
    microbatches: m,
    durations: d,
    timeline,
    makespan,
    busy,
    idle,
    bubble: Math.max(...idle),
    activationsPerRank,
    peakActivations: Math.max(...activationsPerRank),
    parameterCopies: chunks.size / pp,
  };
}

/**
 * DeepSeek-V3 Table 2 for a schedule, evaluated at this module's per-operation durations
 * (`B_table = B + W`, see the module doc).
 *
 * @param schedule The schedule.
 * @param setting `pp` and the durations (`microbatches` is not used: the table has none).
 * @returns The formula bubble, parameter copies and peak activations.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { tableCosts } from "./pipeline.ts";
 * const d = { f: 2, b: 2, w: 1, fb: 4 };
 * assertEquals(tableCosts("dualpipe", { pp: 8, microbatches: 16, durations: d }), {
 *   bubble: 3 * (4 + 3 - 3 * 1), parameterCopies: 2, activations: 9,
 * });
 * ```
 */
export function tableCosts(schedule: Schedule, setting: PipelineSetting): TableCosts {
  const { pp } = setting;
  const { f, b, w, fb } = resolveDurations(setting.durations);
  const bFull = b + w; // Table 2's B
  switch (schedule) {
    case "1f1b":
      return { bubble: (pp - 1) * (f + bFull), parameterCopies: 1, activations: pp };
    case "zb1p":
      return { bubble: (pp - 1) * (f + bFull - 2 * w), parameterCopies: 1, activations: pp };
    case "dualpipe":
      return {
        bubble: (pp / 2 - 1) * (fb + bFull - 3 * w),
        parameterCopies: 2,
        activations: pp + 1,
      };
    default:
      throw new Error(`Unknown schedule '${schedule satisfies never}'`);
  }
}

/**
 * Check a timeline's invariants: no rank runs two operations at once; a forward at stage
 * `s > 0` starts after the same micro-batch's forward at `s − 1` ended; a backward starts after
 * its own forward and after the backward at `s + 1`; a `W` after its `B`; every chunk runs its
 * forward, backward and weight gradient exactly once.
 *
 * @param result A simulated pipeline.
 * @returns One line per violation (empty when the timeline is sound).
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { simulatePipeline, timelineViolations } from "./pipeline.ts";
 * const r = simulatePipeline("dualpipe", { pp: 4, microbatches: 8, durations: { f: 1, b: 1, w: 1 } });
 * assertEquals(timelineViolations(r), []);
 * ```
 */
export function timelineViolations(result: PipelineResult): string[] {
  const { pp, timeline } = result;
  const out: string[] = [];
  const eps = 1e-9;
  // 1) one operation at a time per rank
  const byRank = new Map<number, TimelineEntry[]>();
  for (const e of timeline) byRank.set(e.rank, [...(byRank.get(e.rank) ?? []), e]);
  for (const [rank, es] of byRank) {
    const sorted = [...es].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].start < sorted[i - 1].end - eps) {
        out.push(`rank ${rank}: operations overlap at ${sorted[i].start}`);
      }
    }
  }
  // 2) when each chunk's F, B and W ran (start, end, rank)
  const when = new Map<string, { start: number; end: number; rank: number }[]>();
  const add = (k: "F" | "B" | "W", c: ChunkRef, e: TimelineEntry) =>
    when.set(key(k, c), [...(when.get(key(k, c)) ?? []), {
      start: e.start,
      end: e.end,
      rank: e.rank,
    }]);
  for (const e of timeline) {
    if (e.kind === "F") add("F", e, e);
    if (e.kind === "B") {
      add("B", e, e);
      if (e.withW) add("W", e, e);
    }
    if (e.kind === "W") add("W", e, e);
    if (e.kind === "FB" && e.backward) {
      add("F", e, e);
      add("B", e.backward, e);
      add("W", e.backward, e);
    }
  }
  const directions = result.schedule === "dualpipe" ? [0, 1] as const : [0] as const;
  const perDir = result.schedule === "dualpipe" ? result.microbatches / 2 : result.microbatches;
  for (const direction of directions) {
    for (let microbatch = 0; microbatch < perDir; microbatch++) {
      for (let stage = 0; stage < pp; stage++) {
        const c = { direction, stage, microbatch };
        const name = `direction ${direction} micro-batch ${microbatch} stage ${stage}`;
        const [f, b, w] = (["F", "B", "W"] as const).map((k) => when.get(key(k, c)) ?? []);
        if (f.length !== 1 || b.length !== 1 || w.length !== 1) {
          out.push(`${name}: F, B, W ran ${f.length}, ${b.length}, ${w.length} times`);
          continue;
        }
        if (b[0].rank !== f[0].rank) out.push(`${name}: backward on another rank than forward`);
        if (b[0].start < f[0].end - eps) out.push(`${name}: backward before its forward ended`);
        if (w[0].start < b[0].start - eps || w[0].end < b[0].end - eps) {
          out.push(`${name}: W before its B`);
        }
        if (stage > 0) {
          const prev = when.get(key("F", { ...c, stage: stage - 1 }));
          if (prev && f[0].start < prev[0].end - eps) {
            out.push(`${name}: forward before stage ${stage - 1}`);
          }
        }
        if (stage < pp - 1) {
          const later = when.get(key("B", { ...c, stage: stage + 1 }));
          if (later && b[0].start < later[0].end - eps) {
            out.push(`${name}: backward before stage ${stage + 1}`);
          }
        }
      }
    }
  }
  return out;
}
