/**
 * Training checkpoints: weights, optimizer moments and the JSON training state (step, tokens,
 * RNG and data positions), written so that a crash at any moment leaves a usable checkpoint.
 *
 * Layout of `<dir>/`: `model.safetensors` (named parameters and buffers), `optimizer.safetensors`
 * (`<name>.exp_avg`, `<name>.exp_avg_sq`), `state.json`. A save writes everything into
 * `<dir>.next/`, then swaps it in with two renames (`<dir>` → `<dir>.old`, `<dir>.next` →
 * `<dir>`) and removes `<dir>.old`; a load falls back to `<dir>.old` if a crash hit between the
 * renames.
 *
 * @module
 */

import { loadSafetensors, saveSafetensors, type Tensor } from "../tensor/mod.ts";
import type { AdamW } from "./optim.ts";

/** The JSON part of a checkpoint. */
export interface TrainState {
  /** Optimizer steps completed. */
  step: number;
  /** Training tokens consumed. */
  tokens: number;
  /** Anything else needed to continue exactly (data position, RNG states, ...). */
  extra: Record<string, unknown>;
}

/** What a checkpoint saves and restores. */
export interface CheckpointContents {
  /** All named tensors of the model (parameters and buffers). */
  params: Map<string, Tensor>;
  optimizer: AdamW;
  state: TrainState;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Write a checkpoint to `dir` atomically (see the module doc). */
export async function saveCheckpoint(dir: string, contents: CheckpointContents): Promise<void> {
  const next = `${dir}.next`, old = `${dir}.old`;
  await Deno.remove(next, { recursive: true }).catch(() => {});
  await Deno.mkdir(next, { recursive: true });
  const moments = new Map<string, Tensor>();
  for (const [name, p] of contents.params) {
    if (!p.requiresGrad) continue;
    const { m, v } = contents.optimizer.moments(p);
    moments.set(`${name}.exp_avg`, m);
    moments.set(`${name}.exp_avg_sq`, v);
  }
  await saveSafetensors(`${next}/model.safetensors`, contents.params, { format: "pt" });
  await saveSafetensors(`${next}/optimizer.safetensors`, moments, {
    step: String(contents.optimizer.t),
  });
  const state = { ...contents.state, optimizerStep: contents.optimizer.t };
  await Deno.writeTextFile(`${next}/state.json`, JSON.stringify(state, null, 2) + "\n");
  if (await exists(dir)) {
    await Deno.remove(old, { recursive: true }).catch(() => {});
    await Deno.rename(dir, old);
  }
  await Deno.rename(next, dir);
  await Deno.remove(old, { recursive: true }).catch(() => {});
}

function checkTensor(
  name: string,
  saved: Tensor | undefined,
  target: Tensor,
  file: string,
): Tensor {
  if (saved === undefined) {
    throw new Error(`Cannot restore checkpoint '${file}': tensor '${name}' is missing`);
  }
  if (saved.shape.join() !== target.shape.join() || saved.dtype !== target.dtype) {
    throw new Error(
      `Cannot restore checkpoint '${file}': tensor '${name}' has shape [${saved.shape}] ` +
        `${saved.dtype}, the model expects [${target.shape}] ${target.dtype}`,
    );
  }
  return saved;
}

/**
 * Restore the latest checkpoint in `dir` into `contents.params` and `contents.optimizer`
 * (in place). Returns its training state, or `null` if there is no checkpoint.
 */
export async function loadCheckpoint(
  dir: string,
  contents: Omit<CheckpointContents, "state">,
): Promise<TrainState | null> {
  let from = dir;
  if (!(await exists(`${dir}/state.json`))) {
    if (!(await exists(`${dir}.old/state.json`))) return null;
    from = `${dir}.old`;
  }
  let state: TrainState & { optimizerStep: number };
  try {
    state = JSON.parse(await Deno.readTextFile(`${from}/state.json`));
  } catch (e) {
    throw new Error(
      `Cannot restore checkpoint '${from}': state.json is unreadable (${(e as Error).message})`,
    );
  }
  for (const key of ["step", "tokens", "optimizerStep"] as const) {
    if (!Number.isInteger(state[key]) || state[key] < 0) {
      throw new Error(
        `Cannot restore checkpoint '${from}': state.json field '${key}' is ${
          JSON.stringify(state[key])
        }, expected a non-negative integer`,
      );
    }
  }
  const backend = [...contents.params.values()][0]?.backend;
  const model = await loadSafetensors(`${from}/model.safetensors`, { backend });
  const moments = await loadSafetensors(`${from}/optimizer.safetensors`, { backend });
  const extra = [...model.tensors.keys()].filter((k) => !contents.params.has(k));
  if (extra.length > 0) {
    throw new Error(
      `Cannot restore checkpoint '${from}': it has tensors the model lacks: ${
        extra.slice(0, 5).join(", ")
      }`,
    );
  }
  for (const [name, p] of contents.params) {
    p.assign(checkTensor(name, model.tensors.get(name), p, `${from}/model.safetensors`));
    if (!p.requiresGrad) continue;
    const file = `${from}/optimizer.safetensors`;
    const m = checkTensor(`${name}.exp_avg`, moments.tensors.get(`${name}.exp_avg`), p, file);
    const v = checkTensor(`${name}.exp_avg_sq`, moments.tensors.get(`${name}.exp_avg_sq`), p, file);
    contents.optimizer.setMoments(p, m, v);
  }
  contents.optimizer.t = state.optimizerStep;
  for (const t of [...model.tensors.values(), ...moments.tensors.values()]) t.dispose();
  return { step: state.step, tokens: state.tokens, extra: state.extra ?? {} };
}
