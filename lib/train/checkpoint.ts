/**
 * Training checkpoints: weights, optimizer moments and the JSON training state (step, tokens,
 * RNG and data positions), written so that a crash at any moment leaves a usable checkpoint, and
 * so that a damaged one is detected rather than loaded.
 *
 * Layout of `<dir>/`: `model.safetensors` (named parameters and buffers), `optimizer.safetensors`
 * (`<name>.exp_avg`, `<name>.exp_avg_sq`), and `state.json`, written last, which records each
 * file's size and SHA-256. A save writes everything into `<dir>.next/`, then rotates with two
 * renames (`<dir>` → `<dir>.prev`, `<dir>.next` → `<dir>`): the last two checkpoints are kept,
 * so a damaged latest one falls back to the previous. A load takes the newest valid checkpoint
 * among `<dir>`, `<dir>.next` (complete, when a crash hit between the renames), `<dir>.prev`
 * and `<dir>.old` (the layout before `.prev`).
 *
 * @module
 */

import { CpuBackend } from "../backend/cpu.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  type Tensor,
} from "../tensor/mod.ts";
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

/** The data files of a checkpoint, each recorded in `state.json` with its size and hash. */
export const CHECKPOINT_FILES: readonly string[] = ["model.safetensors", "optimizer.safetensors"];

/** Size and SHA-256 of one checkpoint file, as `state.json` records them. */
export interface FileDigest {
  bytes: number;
  sha256: string;
}

/**
 * SHA-256 of `bytes` as 64 hex digits.
 *
 * @param bytes Any bytes.
 * @returns The digest.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { sha256Bytes } from "./checkpoint.ts";
 * strictEqual((await sha256Bytes(new Uint8Array())).slice(0, 8), "e3b0c442");
 * ```
 */
export async function sha256Bytes(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for (let written = 0; written < bytes.length;) {
      written += await file.write(bytes.subarray(written));
    }
    await file.syncData();
  } finally {
    file.close();
  }
}

/** Write a checkpoint to `dir` atomically, keeping the previous one (see the module doc). */
export async function saveCheckpoint(dir: string, contents: CheckpointContents): Promise<void> {
  const next = `${dir}.next`, prev = `${dir}.prev`;
  await Deno.remove(next, { recursive: true }).catch(() => {});
  await Deno.mkdir(next, { recursive: true });
  const moments = new Map<string, Tensor>();
  for (const [name, p] of contents.params) {
    if (!p.requiresGrad) continue;
    const { m, v } = contents.optimizer.moments(p);
    moments.set(`${name}.exp_avg`, m);
    moments.set(`${name}.exp_avg_sq`, v);
  }
  const files: Record<string, FileDigest> = {};
  const encoded: [string, Uint8Array][] = [
    ["model.safetensors", await encodeSafetensors(contents.params, { format: "pt" })],
    [
      "optimizer.safetensors",
      await encodeSafetensors(moments, { step: String(contents.optimizer.t) }),
    ],
  ];
  for (const [name, bytes] of encoded) {
    await writeSynced(`${next}/${name}`, bytes);
    files[name] = { bytes: bytes.length, sha256: await sha256Bytes(bytes) };
  }
  // state.json last: its presence, with the digests, marks the checkpoint complete
  const state = { ...contents.state, optimizerStep: contents.optimizer.t, files };
  await writeSynced(
    `${next}/state.json`,
    new TextEncoder().encode(JSON.stringify(state, null, 2) + "\n"),
  );
  if (await exists(dir)) {
    await Deno.remove(prev, { recursive: true }).catch(() => {});
    await Deno.rename(dir, prev);
  }
  await Deno.rename(next, dir);
  await Deno.remove(`${dir}.old`, { recursive: true }).catch(() => {});
}

/** A checkpoint directory that passed {@linkcode verifyCheckpoint}. */
export interface ValidCheckpoint {
  dir: string;
  step: number;
  /** Digests of the data files and of `state.json` itself. */
  files: Record<string, FileDigest>;
}

/**
 * Check a checkpoint directory without loading it: `state.json` parses with non-negative
 * integer `step`, `tokens` and `optimizerStep`, and every data file has the recorded size and
 * SHA-256 (a checkpoint from before digests were recorded is decoded instead).
 *
 * @param dir A checkpoint directory.
 * @returns The checkpoint, or the reason it is not valid (`null` when `dir` holds none).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { verifyCheckpoint } from "./checkpoint.ts";
 * strictEqual(await verifyCheckpoint("no-such-checkpoint"), null);
 * ```
 */
export async function verifyCheckpoint(
  dir: string,
): Promise<ValidCheckpoint | { reason: string } | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/state.json`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return (await exists(dir)) ? { reason: "state.json is missing (an unfinished save)" } : null;
  }
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(text);
  } catch (e) {
    return { reason: `state.json is unreadable (${(e as Error).message})` };
  }
  for (const key of ["step", "tokens", "optimizerStep"]) {
    const v = state[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      return {
        reason: `state.json field '${key}' is ${
          JSON.stringify(v)
        }, expected a non-negative integer`,
      };
    }
  }
  const files: Record<string, FileDigest> = {
    "state.json": {
      bytes: new TextEncoder().encode(text).length,
      sha256: await sha256Bytes(new TextEncoder().encode(text)),
    },
  };
  const recorded = state.files as Record<string, FileDigest> | undefined;
  for (const name of CHECKPOINT_FILES) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(`${dir}/${name}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { reason: `${name} is missing` };
      throw e;
    }
    const digest = { bytes: bytes.length, sha256: await sha256Bytes(bytes) };
    const want = recorded?.[name];
    if (want !== undefined) {
      if (want.bytes !== digest.bytes) {
        return {
          reason:
            `${name} has ${digest.bytes} bytes, state.json recorded ${want.bytes} (truncated?)`,
        };
      }
      if (want.sha256 !== digest.sha256) {
        return { reason: `${name} does not match the SHA-256 recorded in state.json (damaged)` };
      }
    } else {
      try {
        const cpu = new CpuBackend();
        for (const t of decodeSafetensors(bytes, { backend: cpu }).tensors.values()) t.dispose();
      } catch (e) {
        return { reason: `${name} does not decode (${(e as Error).message})` };
      }
    }
    files[name] = digest;
  }
  return { dir, step: state.step as number, files };
}

/**
 * The valid checkpoints among `<dir>`, `<dir>.next`, `<dir>.prev` and `<dir>.old`, newest step
 * first, and the damaged ones with their reasons.
 *
 * @param dir The checkpoint directory of a run.
 * @returns Valid and damaged candidates.
 */
export async function checkpointCandidates(
  dir: string,
): Promise<{ valid: ValidCheckpoint[]; damaged: { dir: string; reason: string }[] }> {
  const valid: ValidCheckpoint[] = [];
  const damaged: { dir: string; reason: string }[] = [];
  for (const d of [dir, `${dir}.next`, `${dir}.prev`, `${dir}.old`]) {
    const r = await verifyCheckpoint(d);
    if (r === null) continue;
    if ("reason" in r) damaged.push({ dir: d, reason: r.reason });
    else valid.push(r);
  }
  valid.sort((a, b) => b.step - a.step);
  return { valid, damaged };
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
 * Restore the newest valid checkpoint of `dir` (see {@linkcode checkpointCandidates}) into
 * `contents.params` and `contents.optimizer` (in place). Returns its training state, or `null`
 * if there is no checkpoint.
 *
 * @throws When checkpoints exist but none is valid (the message gives each one's damage).
 */
export async function loadCheckpoint(
  dir: string,
  contents: Omit<CheckpointContents, "state">,
): Promise<TrainState | null> {
  const { valid, damaged } = await checkpointCandidates(dir);
  if (valid.length === 0) {
    if (damaged.length === 0) return null;
    throw new Error(
      `Cannot restore checkpoint '${dir}': ${
        damaged.map((d) => `${d.dir.slice(dir.length) || "latest"}: ${d.reason}`).join("; ")
      }; no valid checkpoint to fall back to (delete the damaged ones to start over)`,
    );
  }
  const from = valid[0].dir;
  const state = JSON.parse(await Deno.readTextFile(`${from}/state.json`)) as
    & TrainState
    & { optimizerStep: number };
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
