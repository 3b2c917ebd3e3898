import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  type PipelineSetting,
  type Schedule,
  SCHEDULES,
  simulatePipeline,
  tableCosts,
  timelineViolations,
} from "../../lib/parallel/pipeline.ts";

/**
 * Settings inside the regime where V3's Table 2 is exact (see lib/parallel/pipeline.ts):
 * `W ≤ min(F, B)`; for DualPipe also `F = B` and `F + B ≤ F&B ≤ F + B + W`.
 */
const SETTINGS: PipelineSetting[] = [
  { pp: 2, microbatches: 4, durations: { f: 1, b: 1, w: 1 } },
  { pp: 4, microbatches: 8, durations: { f: 2, b: 2, w: 1, fb: 4.5 } },
  { pp: 4, microbatches: 12, durations: { f: 1, b: 1, w: 0.5, fb: 2 } },
  { pp: 6, microbatches: 12, durations: { f: 3, b: 3, w: 2, fb: 7 } },
  { pp: 8, microbatches: 16, durations: { f: 2, b: 2, w: 1, fb: 4 } },
  { pp: 8, microbatches: 20, durations: { f: 1, b: 1, w: 1, fb: 2.5 } },
  { pp: 8, microbatches: 32, durations: { f: 1.25, b: 1.25, w: 0.75, fb: 3 } },
  { pp: 10, microbatches: 24, durations: { f: 1.5, b: 1.5, w: 0.25, fb: 3.25 } },
];

/** Extra 1F1B / ZB1P settings with F ≠ B (still `W ≤ min(F, B)`). */
const UNEVEN: PipelineSetting[] = [
  { pp: 4, microbatches: 4, durations: { f: 3, b: 2, w: 1 } },
  { pp: 5, microbatches: 9, durations: { f: 1, b: 2, w: 0.5 } },
  { pp: 8, microbatches: 13, durations: { f: 1.3, b: 1.7, w: 0.9 } },
  { pp: 3, microbatches: 7, durations: { f: 2, b: 4, w: 2, comm: 0 } },
];

const label = (s: Schedule, p: PipelineSetting) =>
  `${s} PP ${p.pp} m ${p.microbatches} ${JSON.stringify(p.durations)}`;
const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;

Deno.test("simulatePipeline() bubbles equal V3 Table 2 on 8 settings per schedule", () => {
  for (const setting of SETTINGS) {
    for (const schedule of SCHEDULES) {
      const r = simulatePipeline(schedule, setting), t = tableCosts(schedule, setting);
      ok(close(r.bubble, t.bubble), `${label(schedule, setting)}: ${r.bubble} vs ${t.bubble}`);
    }
  }
});

Deno.test("simulatePipeline() 1F1B and ZB1P bubbles equal the table with F ≠ B", () => {
  for (const setting of UNEVEN) {
    for (const schedule of ["1f1b", "zb1p"] as const) {
      const r = simulatePipeline(schedule, setting), t = tableCosts(schedule, setting);
      ok(close(r.bubble, t.bubble), `${label(schedule, setting)}: ${r.bubble} vs ${t.bubble}`);
      // every rank idles the same time in these schedules
      ok(r.idle.every((x) => close(x, r.bubble)), `${label(schedule, setting)}: ${r.idle}`);
    }
  }
});

Deno.test("simulatePipeline() parameters ×1, ×1, ×2 and activations PP, PP, PP + 1", () => {
  for (const setting of [...SETTINGS, ...UNEVEN]) {
    for (const schedule of SCHEDULES) {
      if (schedule === "dualpipe" && setting.microbatches < 2 * setting.pp) continue;
      if (schedule === "dualpipe" && setting.pp % 2 === 1) continue;
      const r = simulatePipeline(schedule, setting), t = tableCosts(schedule, setting);
      strictEqual(r.parameterCopies, t.parameterCopies, label(schedule, setting));
      strictEqual(r.peakActivations, t.activations, label(schedule, setting));
    }
  }
});

Deno.test("simulatePipeline() timelines: one op per rank at a time, dependencies hold", () => {
  const withComm = SETTINGS.map((s) => ({ ...s, durations: { ...s.durations, comm: 0.3 } }));
  for (const setting of [...SETTINGS, ...withComm]) {
    for (const schedule of SCHEDULES) {
      const r = simulatePipeline(schedule, setting);
      deepStrictEqual(timelineViolations(r), [], label(schedule, setting));
      // explicit no-overlap check, independent of timelineViolations
      for (let rank = 0; rank < setting.pp; rank++) {
        const es = r.timeline.filter((e) => e.rank === rank).sort((a, b) => a.start - b.start);
        for (let i = 1; i < es.length; i++) ok(es[i].start >= es[i - 1].end - 1e-9);
      }
      // comm only delays: the table is a lower bound
      if (setting.durations.comm) ok(r.bubble >= tableCosts(schedule, setting).bubble - 1e-9);
    }
  }
});

Deno.test("timelineViolations() catches a backward before its forward and overlapping ops", () => {
  const r = simulatePipeline("1f1b", SETTINGS[1]);
  const b = r.timeline.find((e) => e.kind === "B" && e.rank === 0 && e.microbatch === 0);
  ok(b !== undefined);
  const broken = { ...r, timeline: r.timeline.map((e) => (e === b ? { ...e, start: 0 } : e)) };
  const v = timelineViolations(broken);
  ok(v.some((x) => /backward before its forward/.test(x)), v.join("; "));
  ok(v.some((x) => /overlap/.test(x)), v.join("; "));
});

Deno.test("simulatePipeline() DualPipe with F > B gives (PP/2−1)(F&B + F − 2W)", () => {
  for (
    const [pp, m, f, b, w, fb] of [[4, 8, 3, 2, 1, 5.5], [8, 20, 2, 1, 1, 3.5], [
      6,
      16,
      2.5,
      1.5,
      1,
      4.5,
    ]]
  ) {
    const r = simulatePipeline("dualpipe", { pp, microbatches: m, durations: { f, b, w, fb } });
    ok(close(r.bubble, (pp / 2 - 1) * (fb + f - 2 * w)), `${pp} ${m}: ${r.bubble}`);
  }
});

Deno.test("simulatePipeline() rejects settings DualPipe cannot run", () => {
  const durations = { f: 1, b: 1, w: 1 };
  throws(() => simulatePipeline("dualpipe", { pp: 3, microbatches: 12, durations }), /even pp/);
  throws(() => simulatePipeline("dualpipe", { pp: 4, microbatches: 6, durations }), /≥ 2 pp/);
  throws(() => simulatePipeline("1f1b", { pp: 0, microbatches: 6, durations }), /pp '0'/);
  throws(
    () => simulatePipeline("zb1p", { pp: 2, microbatches: 2, durations: { ...durations, w: -1 } }),
    /duration w '-1'/,
  );
});

Deno.test("simulatePipeline() is deterministic and counts every chunk once", () => {
  const a = simulatePipeline("dualpipe", SETTINGS[5]),
    b = simulatePipeline("dualpipe", SETTINGS[5]);
  deepStrictEqual(a, b);
  const ops = a.timeline.reduce((n, e) => n + (e.kind === "FB" ? 2 : 1), 0);
  const full = a.timeline.filter((e) => (e.kind === "B" && e.withW) || e.kind === "FB").length;
  // m forward + m backward chunks per rank, and a W for every split backward
  strictEqual(ops, a.pp * 2 * a.microbatches + (a.pp * a.microbatches - full));
});
