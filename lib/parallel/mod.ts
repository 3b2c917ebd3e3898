/**
 * Parallelism at DeepSeek-V3 scale, simulated: pipeline schedules (1F1B, ZB1P, DualPipe) on a
 * discrete-event simulator checked against V3's Table 2, and the expert-parallel all-to-all
 * traffic of a routing trace with and without node-limited routing (V3 §2.1.2, §3.2).
 *
 * ```ts
 * import { simulatePipeline, tableCosts } from "./mod.ts";
 * const setting = { pp: 8, microbatches: 20, durations: { f: 1, b: 1, w: 1, fb: 2.5 } };
 * const dualpipe = simulatePipeline("dualpipe", setting);
 * console.assert(dualpipe.bubble === tableCosts("dualpipe", setting).bubble); // (PP/2−1)(F&B+B−3W)
 * console.assert(dualpipe.parameterCopies === 2 && dualpipe.peakActivations === 9);
 * ```
 *
 * @module
 */

export * from "./pipeline.ts";
export * from "./expert_comm.ts";
export * from "./charts.ts";
