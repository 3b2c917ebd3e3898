/**
 * A small synthetic results store for the report tests, written under `.test-tmp/`: experiment
 * `ablation` with variants `base` (FP32), `fp8` (FP8 config) and `moe` (per-step MaxVio and
 * expert loads) × seeds 0 and 1, 10 steps each, plus one unfinished run and a hidden directory.
 * The numbers are closed-form (no randomness).
 *
 * @module
 */

import type { ExperimentResults, RunResult } from "../../lib/report/results.ts";
import type { Manifest } from "../../lib/runner/check.ts";
import { sha256Bytes } from "../../lib/train/checkpoint.ts";

/** Steps per synthetic run. */
export const STEPS = 10;
/** Routed experts in the `moe` variant. */
export const EXPERTS = 4;

/** The synthetic runs (variant, seed) with their summaries and step logs. */
export function syntheticRuns(
  experiment = "ablation",
  variants: string[] = ["base", "fp8", "moe"],
): RunResult[] {
  const runs: RunResult[] = [];
  variants.forEach((variant, v) => {
    for (const seed of [0, 1]) {
      const steps = Array.from({ length: STEPS }, (_, i) => {
        const step = i + 1;
        const rec: Record<string, number> = {
          step,
          tokens: step * 1024,
          loss: 5 / Math.sqrt(step) + 0.01 * v + 0.02 * seed,
          lr: 0.003,
          gradNorm: 1,
          tokensPerSec: 1000 + 100 * v,
        };
        if (variant === "moe") {
          rec.maxVio = 1 / step + 0.1 * seed;
          for (let e = 0; e < EXPERTS; e++) {
            for (let layer = 0; layer < 2; layer++) {
              rec[`expertLoad.${layer}.${e}`] = e === 0 ? 0.4 : 0.2;
            }
          }
        }
        return rec;
      });
      const valLoss = 2 + 0.1 * v + 0.05 * seed;
      runs.push({
        experiment,
        variant,
        seed,
        dir: "",
        config: {
          id: `${variant}-${seed}`,
          codeVersion: "0123456789abcdef",
          backend: "cpu",
          plan: {
            model: {
              dModel: 64,
              heads: 4,
              fp8: variant === "fp8" ? { granularity: "tile" } : null,
            },
            train: { steps: STEPS, batch: 4, lr: 0.003 },
          },
        },
        summary: {
          id: `${variant}-${seed}`,
          experiment,
          variant,
          seed,
          status: "done",
          steps: STEPS,
          tokens: STEPS * 1024,
          finalTrainLoss: steps[STEPS - 1].loss,
          metrics: {
            valLoss,
            bitsPerByte: valLoss / Math.LN2,
            kvBytesPerToken: 1024 / (v + 1),
            trainTokensPerSec: 1000 + 100 * v + 10 * seed,
          },
          parameters: { total: 1000, activated: 1000, mtp: 0 },
          backend: "cpu",
          wallSeconds: 1,
        },
        steps,
      });
    }
  });
  return runs;
}

/** The synthetic experiment in memory (no store). */
export function syntheticResults(
  experiment = "ablation",
  variants: string[] = ["base", "fp8", "moe"],
): ExperimentResults {
  return {
    experiment,
    dir: "",
    variants: [...variants].sort(),
    runs: syntheticRuns(experiment, variants).sort((a, b) =>
      a.variant < b.variant ? -1 : a.variant > b.variant ? 1 : a.seed - b.seed
    ),
    incomplete: [],
  };
}

/**
 * Write a run's `config.json`, `summary.json` and `metrics.jsonl` into `dir` and seal it with a
 * `manifest.json` of their hashes, as the runner does when a run is done (reports show only
 * sealed runs; the checkpoint digests, which only the runner checks, are left empty).
 */
export async function writeSealedRun(dir: string, run: RunResult): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const metrics = run.steps.map((r) => JSON.stringify(r)).join("\n") + "\n";
  const summary = JSON.stringify(run.summary);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(run.config));
  await Deno.writeTextFile(`${dir}/summary.json`, summary);
  await Deno.writeTextFile(`${dir}/metrics.jsonl`, metrics);
  const sha = (t: string) => sha256Bytes(new TextEncoder().encode(t));
  const manifest: Manifest = {
    id: run.summary.id,
    steps: run.steps.length,
    metrics: { lines: run.steps.length, sha256: await sha(metrics) },
    checkpoint: { step: run.steps.length, files: {} },
    summary: { sha256: await sha(summary) },
    sealed: "2024-01-01T00:00:00.000Z",
  };
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
}

/**
 * Write the synthetic store to a fresh directory under `.test-tmp/` and return its root.
 * Also writes an unfinished run (`base/seed-2`, no summary), a hidden `.superseded/` and a
 * stray directory without runs.
 */
export async function writeSyntheticStore(
  experiment = "ablation",
  variants: string[] = ["base", "fp8", "moe"],
): Promise<string> {
  const root = `.test-tmp/report-${crypto.randomUUID()}`;
  for (const run of syntheticRuns(experiment, variants)) {
    await writeSealedRun(`${root}/${experiment}/${run.variant}/seed-${run.seed}`, run);
  }
  const unfinished = `${root}/${experiment}/${variants[0]}/seed-2`;
  await Deno.mkdir(unfinished, { recursive: true });
  await Deno.writeTextFile(`${unfinished}/config.json`, "{}");
  await Deno.mkdir(`${root}/.superseded/${experiment}/x/seed-0`, { recursive: true });
  await Deno.mkdir(`${root}/stray`, { recursive: true });
  return root;
}

/** Count SVG items by `aria-roledescription` (`"line mark"`, `"bar"`, `"circle"`, ...). */
export function countRoles(svg: string): Record<string, number> {
  const roles: Record<string, number> = {};
  for (const m of svg.matchAll(/aria-roledescription="([^"]+)"/g)) {
    roles[m[1]] = (roles[m[1]] ?? 0) + 1;
  }
  return roles;
}
