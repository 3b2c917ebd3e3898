/**
 * Memory estimates: what a run needs (weights, AdamW's two moments and the gradients, and the
 * activations kept for the backward pass of one micro-batch), checked against what the backend
 * can hold before any run starts — so a model too large fails at once with the numbers, not an
 * hour into a sweep with an allocator's message.
 *
 * Parameter counts follow `lib/models/decoder.ts` exactly (tested against
 * `Decoder.countParameters`); activations are an estimate (`≈`): per layer the hidden states,
 * attention scores and FFN intermediates of one micro-batch, plus the logits, times a factor for
 * the temporaries of the backward pass.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { ModelConfig } from "../models/config.ts";

/** What {@linkcode estimateMemory} returns (bytes, f32). */
export interface MemoryEstimate {
  /** Trainable parameters (main model and MTP modules). */
  parameters: number;
  weights: number;
  /** Gradients and AdamW's first and second moments. */
  optimizer: number;
  activations: number;
  total: number;
  /** Bytes of the largest single tensor (the embedding, the logits or the attention scores). */
  largestTensor: number;
}

function attentionParams(m: ModelConfig): number {
  const d = m.dModel, h = m.heads, dh = d / h;
  const a = m.attention;
  switch (a.kind) {
    case "mha":
      return 4 * d * d;
    case "gqa":
      return 2 * d * d + 2 * d * a.kvHeads * dh;
    case "mqa":
      return 2 * d * d + 2 * d * dh;
    case "mla": {
      const dn = a.nopeHeadDim ?? dh, dv = a.vHeadDim ?? dh, dr = a.ropeHeadDim;
      const dc = a.kvLatentRank, dq = a.queryLatentRank;
      const q = dq > 0 ? d * dq + dq + dq * h * (dn + dr) : d * h * (dn + dr);
      return q + d * (dc + dr) + dc + dc * h * (dn + dv) + h * dv * d;
    }
    default:
      throw new Error(`Unknown attention kind '${(a satisfies never as { kind: string }).kind}'`);
  }
}

function ffnParams(m: ModelConfig, layer: number): { total: number; hidden: number } {
  const d = m.dModel, f = m.ffn;
  if (f.kind === "dense") return { total: 3 * d * f.hidden, hidden: f.hidden };
  if (layer < f.firstDenseLayers) return { total: 3 * d * f.denseHidden, hidden: f.denseHidden };
  const shared = f.sharedExperts > 0 ? 3 * d * f.sharedExperts * f.expertHidden : 0;
  return {
    total: f.routedExperts * 3 * d * f.expertHidden + d * f.routedExperts + shared,
    hidden: f.topK * f.expertHidden + f.sharedExperts * f.expertHidden,
  };
}

/**
 * Trainable parameters of a decoder, as `Decoder.countParameters()` counts them (`total` of
 * the main model plus `mtp`), without building it.
 *
 * @param m The resolved model config.
 * @returns The count.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { Decoder, tinyConfig } from "../models/decoder.ts";
 * import { parameterCount } from "./memory.ts";
 * const config = tinyConfig();
 * const count = new Decoder(config, new Rng(0)).countParameters();
 * strictEqual(parameterCount(config), count.total + count.mtp);
 * ```
 */
export function parameterCount(m: ModelConfig): number {
  const d = m.dModel;
  const block = (layer: number) => 2 * d + attentionParams(m) + ffnParams(m, layer).total;
  let n = m.vocab * d + d + d * m.vocab; // embedding, final norm, lm_head
  for (let l = 0; l < m.layers; l++) n += block(l);
  const depth = m.mtp?.depth ?? 0;
  for (let k = 0; k < depth; k++) n += 3 * d + 2 * d * d + block(m.layers + k);
  return n;
}

/**
 * Estimate a run's memory (f32 everywhere).
 *
 * @param m The resolved model config.
 * @param train The micro-batch size.
 * @returns The estimate in bytes.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { tinyConfig } from "../models/decoder.ts";
 * import { estimateMemory } from "./memory.ts";
 * const e = estimateMemory(tinyConfig(), { batch: 4 });
 * ok(e.total > e.weights * 4 && e.total < 50e6);
 * ```
 */
export function estimateMemory(m: ModelConfig, train: { batch: number }): MemoryEstimate {
  const parameters = parameterCount(m);
  const bt = train.batch * m.seqLen, d = m.dModel;
  const blocks = m.layers + (m.mtp?.depth ?? 0);
  let perLayer = 0;
  for (let l = 0; l < blocks; l++) {
    const hidden = ffnParams(m, l).hidden;
    // hidden states and projections (~8 d), scores + probabilities (2 h T), FFN (3 hidden)
    perLayer += bt * (8 * d + 2 * m.heads * m.seqLen + 3 * hidden);
  }
  const logits = bt * m.vocab * (1 + (m.mtp?.depth ?? 0));
  const activations = 4 * 2 * (perLayer + 3 * logits); // × 2: backward temporaries
  const weights = 4 * parameters;
  const optimizer = 3 * weights;
  const largestTensor = 4 * Math.max(
    m.vocab * d,
    bt * m.vocab,
    train.batch * m.heads * m.seqLen * m.seqLen,
  );
  return {
    parameters,
    weights,
    optimizer,
    activations,
    total: weights + optimizer + activations,
    largestTensor,
  };
}

/** What a backend can hold. */
export interface BackendCapacity {
  /** All tensors together, when known. */
  totalBytes?: number;
  /** One tensor, when limited. */
  tensorBytes?: number;
  /** Where the limits come from, for the message. */
  what: string;
}

/**
 * The memory limits of `backend`: the wasm heap's maximum; a WebGPU device's largest storage
 * buffer; for the cpu backend the machine's memory when `--allow-sys=systemMemoryInfo` allows
 * reading it.
 *
 * @param backend A backend.
 * @returns Its limits (empty when none is known).
 */
export function backendCapacity(backend: Backend): BackendCapacity {
  const heap = (backend as { heap?: { maxPages?: number } }).heap;
  if (backend.name === "wasm" && typeof heap?.maxPages === "number") {
    return { totalBytes: heap.maxPages * 65536, what: "the wasm backend's heap" };
  }
  const maxTensor = (backend as { maxTensorBytes?: number }).maxTensorBytes;
  if (backend.name === "webgpu" && typeof maxTensor === "number") {
    return { tensorBytes: maxTensor, what: "the WebGPU device's largest storage buffer" };
  }
  try {
    return { totalBytes: Deno.systemMemoryInfo().total, what: "this machine's memory" };
  } catch {
    return { what: "unknown limits" };
  }
}

/**
 * Bytes as `12.3 MiB`.
 *
 * @param bytes A size.
 * @returns Binary units, 3 significant digits.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatBytes } from "./memory.ts";
 * strictEqual(formatBytes(3 * 2 ** 30), "3.00 GiB");
 * ```
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toPrecision(3)} ${units[u]}`;
}

/**
 * Why a run does not fit `capacity`, or `null` when it does (or nothing is known).
 *
 * @param e The run's estimate.
 * @param capacity The backend's limits.
 * @returns A phrase naming the sizes, or `null`.
 */
export function memoryProblem(e: MemoryEstimate, capacity: BackendCapacity): string | null {
  if (capacity.totalBytes !== undefined && e.total > capacity.totalBytes) {
    return `it needs ≈ ${formatBytes(e.total)} (weights ${formatBytes(e.weights)}, gradients ` +
      `and AdamW moments ${formatBytes(e.optimizer)}, activations ≈ ${
        formatBytes(e.activations)
      }), more than ${capacity.what} (${formatBytes(capacity.totalBytes)})`;
  }
  if (capacity.tensorBytes !== undefined && e.largestTensor > capacity.tensorBytes) {
    return `its largest tensor needs ${formatBytes(e.largestTensor)}, more than ${capacity.what} ` +
      `(${formatBytes(capacity.tensorBytes)})`;
  }
  return null;
}
