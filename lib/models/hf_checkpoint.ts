/**
 * The weights of a checkpoint directory in the Hugging Face layout, read tensor by tensor and
 * written in shards:
 * - one `model.safetensors`, or shards listed by `model.safetensors.index.json`
 *   (`{ "metadata": { "total_size": … }, "weight_map": { name: file } }`);
 * - only the headers are read up front ({@linkcode readCheckpointFiles}); each tensor's bytes are
 *   then read from its file offset, converted (`F32`, `BF16`, `F16`, `F64` to float32; `F8_E4M3`
 *   with its `<name>_scale_inv` of 128×128 block scales dequantised, or kept as FP8) and copied
 *   into the model's parameter before the next is read. Memory is the model plus one tensor's
 *   raw bytes (its scales included), never a whole shard or the whole checkpoint:
 *   {@linkcode CheckpointReader.stats} measures the peak of raw bytes held;
 * - DeepSeek-V3's MTP layer `L + k − 1` stores its own copies of `embed_tokens.weight` and
 *   `shared_head.head.weight`; ablate shares the main model's, so the copies are read, checked
 *   equal to `model.embed_tokens.weight` / `lm_head.weight`, and dropped (written back on save).
 *
 * @module
 */

import {
  decodeSafetensorsData,
  readSafetensorsHeader,
  type SafetensorsDType,
  saveSafetensors,
} from "../tensor/safetensors.ts";
import { type Tensor, tensor } from "../tensor/mod.ts";
import { dequantizeFp8 } from "../fp8/scaling.ts";
import { fp8BlockWeight, fp8ScaleShape } from "../fp8/weights.ts";
import { Attention } from "../nn/attention.ts";
import type { SwiGlu } from "../nn/ffn.ts";
import type { Linear } from "../nn/linear.ts";
import { Mla } from "../nn/mla.ts";
import { Moe } from "../nn/moe.ts";
import type { Decoder, DecoderBlock } from "./decoder.ts";
import { hfTopkMethod } from "./hf.ts";

/** The single-file weights of a checkpoint. */
export const SINGLE_FILE = "model.safetensors";
/** The shard index of a sharded checkpoint. */
export const INDEX_FILE = "model.safetensors.index.json";
/** Shard file names as `transformers` writes them. */
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** Where one tensor of a checkpoint lies. */
export interface CheckpointTensor {
  /** Hugging Face name. */
  name: string;
  /** The file holding it (a name inside the checkpoint directory). */
  file: string;
  /** Dtype in the file. */
  dtype: SafetensorsDType;
  /** Shape. */
  shape: number[];
  /** File offset of its first byte. */
  offset: number;
  /** Its size in bytes. */
  bytes: number;
}

/** The tensors of a checkpoint directory, from the file headers only. */
export interface CheckpointFiles {
  /** The directory. */
  dir: string;
  /** Its weight files, in order (one for a single-file checkpoint). */
  files: string[];
  /** Size of each weight file in bytes. */
  fileBytes: Map<string, number>;
  /** Every tensor by name, in file order. */
  tensors: Map<string, CheckpointTensor>;
  /** Whether the weights are sharded with an index. */
  sharded: boolean;
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

function checkFileName(dir: string, file: unknown, name: string): string {
  if (typeof file !== "string" || !/^[^/\\]+\.safetensors$/.test(file) || file.startsWith(".")) {
    throw new Error(
      `Cannot load '${dir}/${INDEX_FILE}': tensor '${name}' maps to ${
        JSON.stringify(file)
      }, expected a .safetensors file name inside the directory`,
    );
  }
  return file;
}

/**
 * Read the headers of a checkpoint's weight files: the shard index when there is one, else
 * `model.safetensors`. Checks that the index and the headers agree (every indexed tensor is in
 * its file, every tensor of a shard is indexed, no name twice). Needs `--allow-read`.
 *
 * @param dir The checkpoint directory.
 * @returns Where each tensor lies.
 *
 * @example
 * ```ts ignore
 * const files = await readCheckpointFiles("DeepSeek-V2-Lite");
 * console.log(files.files.length, files.tensors.get("lm_head.weight")?.dtype);
 * ```
 */
export async function readCheckpointFiles(dir: string): Promise<CheckpointFiles> {
  const indexPath = `${dir}/${INDEX_FILE}`;
  let weightMap: Map<string, string> | null = null;
  let files: string[];
  if (await exists(indexPath)) {
    let index: unknown;
    try {
      index = JSON.parse(await Deno.readTextFile(indexPath));
    } catch (e) {
      throw new Error(`Cannot load '${indexPath}': ${(e as Error).message}`, { cause: e });
    }
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (map === null || typeof map !== "object" || Array.isArray(map)) {
      throw new Error(`Cannot load '${indexPath}': it has no "weight_map" object`);
    }
    weightMap = new Map();
    for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
      weightMap.set(name, checkFileName(dir, file, name));
    }
    files = [...new Set(weightMap.values())].sort();
  } else if (await exists(`${dir}/${SINGLE_FILE}`)) {
    files = [SINGLE_FILE];
  } else {
    throw new Error(
      `Cannot load '${dir}': it has neither '${SINGLE_FILE}' nor '${INDEX_FILE}'`,
    );
  }
  const tensors = new Map<string, CheckpointTensor>();
  const fileBytes = new Map<string, number>();
  for (const file of files) {
    const header = await readSafetensorsHeader(`${dir}/${file}`);
    fileBytes.set(file, header.fileSize);
    const sorted = [...header.entries].sort((a, b) => a.begin - b.begin);
    for (const e of sorted) {
      const held = tensors.get(e.name);
      if (held !== undefined) {
        throw new Error(
          `Cannot load '${dir}': tensor '${e.name}' is in both '${held.file}' and '${file}'`,
        );
      }
      if (weightMap !== null && weightMap.get(e.name) !== file) {
        throw new Error(
          `Cannot load '${dir}': tensor '${e.name}' is in '${file}' but the index ${
            weightMap.has(e.name) ? `maps it to '${weightMap.get(e.name)}'` : "does not list it"
          }`,
        );
      }
      const offset = header.dataStart + e.begin;
      tensors.set(e.name, {
        name: e.name,
        file,
        dtype: e.dtype,
        shape: e.shape,
        offset,
        bytes: e.end - e.begin,
      });
    }
  }
  for (const [name, file] of weightMap ?? []) {
    if (!tensors.has(name)) {
      throw new Error(
        `Cannot load '${dir}': the index maps tensor '${name}' to '${file}', which does not hold it`,
      );
    }
  }
  return { dir, files, fileBytes, tensors, sharded: weightMap !== null };
}

/** What a {@linkcode CheckpointReader} has read. */
export interface ReadStats {
  /** The most raw tensor bytes held at once (read and not yet released). */
  peakBufferedBytes: number;
  /** Raw bytes read in all. */
  bytesRead: number;
  /** Tensors read. */
  tensorsRead: number;
}

/**
 * Reads tensors' raw bytes from their file offsets, one request at a time, and counts the raw
 * bytes it holds: {@linkcode CheckpointReader.stats} is the measured peak.
 *
 * @example
 * ```ts ignore
 * const reader = new CheckpointReader(await readCheckpointFiles(dir));
 * const [raw] = await reader.read(["lm_head.weight"]);
 * reader.release([raw]);
 * reader.close();
 * ```
 */
export class CheckpointReader {
  readonly #files: CheckpointFiles;
  readonly #open = new Map<string, Deno.FsFile>();
  #buffered = 0;
  #stats: ReadStats = { peakBufferedBytes: 0, bytesRead: 0, tensorsRead: 0 };

  /**
   * Create a reader; files are opened on first use.
   *
   * @param files The checkpoint, from {@linkcode readCheckpointFiles}.
   */
  constructor(files: CheckpointFiles) {
    this.#files = files;
  }

  /** The peak of raw bytes held, bytes and tensors read so far. */
  get stats(): ReadStats {
    return { ...this.#stats };
  }

  /**
   * Read the raw bytes of `names` (each a fresh buffer); they count as held until
   * {@linkcode CheckpointReader.release}.
   *
   * @param names Tensor names.
   * @returns Their bytes, in order.
   */
  async read(names: readonly string[]): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const name of names) {
      const t = this.#files.tensors.get(name);
      if (t === undefined) throw new Error(`Cannot read tensor '${name}': not in the checkpoint`);
      let file = this.#open.get(t.file);
      if (file === undefined) {
        file = await Deno.open(`${this.#files.dir}/${t.file}`, { read: true });
        this.#open.set(t.file, file);
      }
      const bytes = new Uint8Array(t.bytes);
      this.#buffered += t.bytes;
      this.#stats.peakBufferedBytes = Math.max(this.#stats.peakBufferedBytes, this.#buffered);
      await file.seek(t.offset, Deno.SeekMode.Start);
      for (let at = 0; at < bytes.length;) {
        const n = await file.read(bytes.subarray(at));
        if (n === null) {
          throw new Error(
            `Cannot read tensor '${name}' from '${this.#files.dir}/${t.file}': the file ends ` +
              `${bytes.length - at} bytes early (truncated?)`,
          );
        }
        at += n;
      }
      this.#stats.bytesRead += t.bytes;
      this.#stats.tensorsRead++;
      out.push(bytes);
    }
    return out;
  }

  /**
   * Stop counting buffers returned by {@linkcode CheckpointReader.read} (drop them after).
   *
   * @param raw The buffers.
   */
  release(raw: readonly Uint8Array[]): void {
    for (const bytes of raw) this.#buffered -= bytes.length;
  }

  /** Close the open files. */
  close(): void {
    for (const file of this.#open.values()) file.close();
    this.#open.clear();
  }
}

/** How FP8 weights are loaded. */
export type Fp8LoadMode = "dequantize" | "keep";

/** Options for {@linkcode loadCheckpointWeights}. */
export interface LoadCheckpointWeightsOptions {
  /**
   * Fail on tensors the model does not have (otherwise they are skipped, unread).
   * @default {true}
   */
  strict?: boolean;
  /**
   * `F8_E4M3` weights: dequantised to float32, or kept as E4M3 codes with their block scales in
   * the Linear layers that use them (not the MoE gate or `lm_head`, which stay float32).
   * @default {"dequantize"}
   */
  fp8?: Fp8LoadMode;
  /** The checkpoint ties `lm_head` to the embedding (it may omit `lm_head.weight`). @default {false} */
  tieWordEmbeddings?: boolean;
}

/** What {@linkcode loadCheckpointWeights} did. */
export interface LoadCheckpointReport {
  /** The reader's measurements. */
  stats: ReadStats;
  /** FP8 weights kept as codes (names). */
  fp8Kept: string[];
  /** FP8 weights dequantised (names). */
  fp8Dequantized: string[];
  /** MTP copies of the shared embedding and head, checked equal and dropped. */
  mtpCopies: string[];
}

/** Every Linear of a decoder by its weight's Hugging Face name. */
export function decoderLinears(model: Decoder): Map<string, Linear> {
  const out = new Map<string, Linear>();
  const add = (name: string, l: Linear | null) => {
    if (l !== null) out.set(`${name}.weight`, l);
  };
  const swiglu = (p: string, f: SwiGlu) => {
    add(`${p}.gate_proj`, f.gateProj);
    add(`${p}.up_proj`, f.upProj);
    add(`${p}.down_proj`, f.downProj);
  };
  const block = (p: string, b: DecoderBlock) => {
    const a = b.selfAttn;
    if (a instanceof Mla) {
      add(`${p}.self_attn.q_a_proj`, a.qAProj);
      add(`${p}.self_attn.q_b_proj`, a.qBProj);
      add(`${p}.self_attn.q_proj`, a.qProj);
      add(`${p}.self_attn.kv_a_proj_with_mqa`, a.kvAProjWithMqa);
      add(`${p}.self_attn.kv_b_proj`, a.kvBProj);
      add(`${p}.self_attn.o_proj`, a.oProj);
    } else if (a instanceof Attention) {
      add(`${p}.self_attn.q_proj`, a.qProj);
      add(`${p}.self_attn.k_proj`, a.kProj);
      add(`${p}.self_attn.v_proj`, a.vProj);
      add(`${p}.self_attn.o_proj`, a.oProj);
    }
    const m = b.mlp;
    if (m instanceof Moe) {
      m.experts.forEach((e, i) => swiglu(`${p}.mlp.experts.${i}`, e));
      add(`${p}.mlp.gate`, m.gate);
      if (m.sharedExperts !== null) swiglu(`${p}.mlp.shared_experts`, m.sharedExperts);
    } else {
      swiglu(`${p}.mlp`, m);
    }
  };
  model.layers.forEach((b, i) => block(`model.layers.${i}`, b));
  model.mtp.forEach((m, k) => {
    const p = `model.layers.${model.layers.length + k}`;
    add(`${p}.eh_proj`, m.ehProj);
    block(p, m.block);
  });
  add("lm_head", model.lmHead);
  return out;
}

/** Names of the MTP copies of the shared tensors, each with the main model's name. */
export function mtpCopyNames(layers: number, depth: number): Map<string, string> {
  const out = new Map<string, string>();
  for (let k = 0; k < depth; k++) {
    out.set(`model.layers.${layers + k}.embed_tokens.weight`, "model.embed_tokens.weight");
    out.set(`model.layers.${layers + k}.shared_head.head.weight`, "lm_head.weight");
  }
  return out;
}

const FLOAT_DTYPES: readonly SafetensorsDType[] = ["F32", "BF16", "F16", "F64"];

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Float32 values of a tensor's raw bytes (FP8 with its scales dequantised). */
function floatValues(
  t: CheckpointTensor,
  raw: Uint8Array,
  scale: { t: CheckpointTensor; raw: Uint8Array } | null,
): Float32Array {
  if (scale === null) return decodeSafetensorsData(raw, t.dtype, { copy: false }) as Float32Array;
  const scales = Float32Array.from(decodeSafetensorsData(scale.raw, scale.t.dtype));
  const q = fp8BlockWeight(raw, scales, [t.shape[0], t.shape[1]]);
  return dequantizeFp8(q);
}

/**
 * Load a checkpoint's tensors into `model` in place, one tensor at a time from its file offset
 * (see the module doc). Every parameter must be present with its shape (except
 * `mlp.gate.e_score_correction_bias` of a router without bias, and `lm_head.weight` of a tied
 * checkpoint); with `strict`, no other tensor may be. Needs `--allow-read`.
 *
 * @param model The decoder to fill.
 * @param files The checkpoint, from {@linkcode readCheckpointFiles}.
 * @param options `strict`, `fp8` mode, `tieWordEmbeddings`.
 * @returns The reader's measurements and what happened to FP8 weights and MTP copies.
 *
 * @example
 * ```ts ignore
 * const report = await loadCheckpointWeights(model, await readCheckpointFiles(dir));
 * console.log(report.stats.peakBufferedBytes);
 * ```
 */
export async function loadCheckpointWeights(
  model: Decoder,
  files: CheckpointFiles,
  options: LoadCheckpointWeightsOptions = {},
): Promise<LoadCheckpointReport> {
  const { strict = true, fp8 = "dequantize", tieWordEmbeddings = false } = options;
  const { dir, tensors } = files;
  const params = model.parameters();
  const copies = mtpCopyNames(model.layers.length, model.mtp.length);
  const linears = decoderLinears(model);
  const biased = model.config.ffn.kind === "moe" && model.config.ffn.balance === "aux-free";
  const fail: (message: string) => never = (message) => {
    throw new Error(`Cannot load '${dir}': ${message}`);
  };

  // 1) plan: which tensor goes where; names, shapes and dtypes checked before any read
  const optional = (name: string) =>
    (name.endsWith(".mlp.gate.e_score_correction_bias") && !biased) ||
    (name === "lm_head.weight" && tieWordEmbeddings);
  const missing = [...params.keys()].filter((n) => !tensors.has(n) && !optional(n));
  if (missing.length > 0) {
    fail(
      `${missing.length} tensor(s) missing from the checkpoint: ` +
        missing.slice(0, 8).map((n) => `'${n}'`).join(", ") + (missing.length > 8 ? ", ..." : ""),
    );
  }
  const scaleOf = (name: string) => tensors.get(`${name}_scale_inv`) ?? null;
  const consumed = new Set<string>();
  for (const name of params.keys()) {
    if (tensors.has(name) && scaleOf(name) !== null) consumed.add(`${name}_scale_inv`);
  }
  for (const name of copies.keys()) {
    if (tensors.has(name) && scaleOf(name) !== null) consumed.add(`${name}_scale_inv`);
  }
  const unexpected = [...tensors.keys()].filter(
    (n) => !params.has(n) && !copies.has(n) && !consumed.has(n),
  );
  if (strict && unexpected.length > 0) {
    fail(
      `${unexpected.length} tensor(s) in the checkpoint are not in the model: ` +
        unexpected.slice(0, 8).map((n) => `'${n}'`).join(", ") +
        (unexpected.length > 8 ? ", ..." : "") + " (pass strict: false to skip them)",
    );
  }
  const check = (t: CheckpointTensor, expected: readonly number[]) => {
    if (t.shape.join() !== expected.join()) {
      fail(
        `tensor '${t.name}' is ${shapeText(t.shape)} ${t.dtype} in '${t.file}', the model ` +
          `expects ${shapeText(expected)}`,
      );
    }
    if (t.dtype === "F8_E4M3") {
      const scale = scaleOf(t.name);
      const grid = fp8ScaleShape(expected);
      if (scale === null) {
        fail(`FP8 tensor '${t.name}' has no '${t.name}_scale_inv' (128×128 block scales)`);
      }
      if (scale.shape.join() !== grid.join() || !FLOAT_DTYPES.includes(scale.dtype)) {
        fail(
          `'${scale.name}' is ${shapeText(scale.shape)} ${scale.dtype}, expected ` +
            `${shapeText(grid)} float scales (one per 128×128 block of ${shapeText(expected)})`,
        );
      }
    } else if (!FLOAT_DTYPES.includes(t.dtype)) {
      fail(
        `tensor '${t.name}' has dtype '${t.dtype}', supported: ${FLOAT_DTYPES.join(", ")}, ` +
          `F8_E4M3 with a weight_scale_inv`,
      );
    }
  };
  for (const [name, p] of params) {
    const t = tensors.get(name);
    if (t !== undefined) check(t, p.shape);
  }
  for (const [name, main] of copies) {
    const t = tensors.get(name);
    if (t !== undefined) check(t, params.get(main)?.shape ?? []);
  }

  // 2) read each parameter in file order and copy it into the model
  const reader = new CheckpointReader(files);
  const report: LoadCheckpointReport = {
    stats: reader.stats,
    fp8Kept: [],
    fp8Dequantized: [],
    mtpCopies: [],
  };
  try {
    const order = [...tensors.values()].filter((t) => params.has(t.name));
    for (const t of order) {
      const p = params.get(t.name) as Tensor;
      const scale = t.dtype === "F8_E4M3" ? scaleOf(t.name) : null;
      const names = scale === null ? [t.name] : [t.name, scale.name];
      const raw = await reader.read(names);
      try {
        const linear = linears.get(t.name);
        if (scale !== null && fp8 === "keep" && linear !== undefined && !linear.fp8Exempt) {
          const backend = p.backend;
          const codes = tensor(raw[0], { shape: t.shape, dtype: "u8", backend });
          const scales = Float32Array.from(decodeSafetensorsData(raw[1], scale.dtype));
          linear.weight.dispose();
          linear.weight = codes.keep();
          linear.weightScaleInv = tensor(scales, { shape: scale.shape, backend }).keep();
          report.fp8Kept.push(t.name);
          continue;
        }
        const values = floatValues(t, raw[0], scale && { t: scale, raw: raw[1] });
        if (scale !== null) report.fp8Dequantized.push(t.name);
        const loaded = tensor(values, { shape: t.shape, backend: p.backend });
        p.assign(loaded);
        loaded.dispose();
      } finally {
        reader.release(raw);
      }
    }
    if (!tensors.has("lm_head.weight") && tieWordEmbeddings) {
      model.lmHead.weight.assign(model.embedTokens);
    }

    // 3) the MTP copies must equal the shared tensors they duplicate
    for (const [name, main] of copies) {
      const t = tensors.get(name);
      if (t === undefined) continue;
      const scale = t.dtype === "F8_E4M3" ? scaleOf(name) : null;
      const raw = await reader.read(scale === null ? [name] : [name, scale.name]);
      try {
        const copy = floatValues(t, raw[0], scale && { t: scale, raw: raw[1] });
        const shared = await (params.get(main) as Tensor).data();
        let worst = 0, at = -1;
        for (let i = 0; i < copy.length; i++) {
          const d = Math.abs(copy[i] - shared[i]);
          if (!(d <= worst)) [worst, at] = [Number.isNaN(d) ? Infinity : d, i];
        }
        if (at >= 0) {
          fail(
            `MTP tensor '${name}' differs from '${main}' (|Δ| = ${worst} at element ${at}): ` +
              `ablate shares one ${main === "lm_head.weight" ? "output head" : "embedding"} ` +
              `between the main model and the MTP modules`,
          );
        }
        report.mtpCopies.push(name);
      } finally {
        reader.release(raw);
      }
    }
  } finally {
    report.stats = reader.stats;
    reader.close();
  }
  return report;
}

/** Options for {@linkcode writeHfWeights}. */
export interface WriteHfWeightsOptions {
  /**
   * Shard above this many bytes of tensor data (as `transformers`' `max_shard_size`; a tensor
   * larger than it gets a shard of its own).
   * @default {5e9}
   */
  maxShardBytes?: number;
}

/** What {@linkcode writeHfWeights} wrote. */
export interface WrittenWeights {
  /** The weight files, in order. */
  files: string[];
  /** Bytes of tensor data (the index's `total_size`). */
  totalBytes: number;
  /** Tensor names written, FP8 scales and MTP copies included. */
  names: string[];
}

async function writeTextAtomic(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(temporary, text);
  await Deno.rename(temporary, path);
}

/**
 * The tensors of a Hugging Face checkpoint of `model`, in order: every parameter, a held FP8
 * weight followed by its `_scale_inv`, the MTP layers' copies of the shared embedding and head,
 * and the router bias only where `topk_method` is `noaux_tc`.
 */
export function hfTensors(model: Decoder): Map<string, Tensor> {
  const params = model.parameters();
  const ffn = model.config.ffn;
  const bias = ffn.kind === "moe" && hfTopkMethod(ffn) === "noaux_tc";
  const out = new Map<string, Tensor>();
  const layers = model.layers.length;
  for (const [name, t] of params) {
    if (name.endsWith(".mlp.gate.e_score_correction_bias") && !bias) continue;
    const k = /^model\.layers\.(\d+)\.enorm\.weight$/.exec(name);
    if (k !== null && Number(k[1]) >= layers) {
      out.set(`model.layers.${k[1]}.embed_tokens.weight`, model.embedTokens);
    }
    out.set(name, t);
    const s = /^model\.layers\.(\d+)\.shared_head\.norm\.weight$/.exec(name);
    if (s !== null) out.set(`model.layers.${s[1]}.shared_head.head.weight`, model.lmHead.weight);
  }
  return out;
}

/**
 * Write `model`'s weights into `dir` in the Hugging Face layout: `model.safetensors`, or, above
 * `maxShardBytes`, shards `model-0000i-of-0000N.safetensors` and `model.safetensors.index.json`.
 * Every file is written atomically; weight files of an earlier save that the new one does not
 * use are removed afterwards. FP8 weights held as codes are stored as `F8_E4M3` with their
 * `weight_scale_inv`. Needs `--allow-read` and `--allow-write`.
 *
 * @param dir The checkpoint directory (must exist).
 * @param model The decoder.
 * @param options `maxShardBytes`.
 * @returns The files, the data size and the tensor names.
 */
export async function writeHfWeights(
  dir: string,
  model: Decoder,
  options: WriteHfWeightsOptions = {},
): Promise<WrittenWeights> {
  const { maxShardBytes = 5e9 } = options;
  if (!(maxShardBytes > 0)) {
    throw new Error(`Cannot shard weights at ${maxShardBytes} bytes: expected a positive size`);
  }
  const all = hfTensors(model);
  // a weight and its scales stay in one shard
  const groups: [string, Tensor][][] = [];
  for (const [name, t] of all) {
    if (name.endsWith("_scale_inv") && groups.length > 0) groups[groups.length - 1].push([name, t]);
    else groups.push([[name, t]]);
  }
  const bytesOf = (t: Tensor) => t.size * (t.dtype === "u8" ? 1 : 4);
  const shards: [string, Tensor][][] = [];
  let current: [string, Tensor][] = [], size = 0, totalBytes = 0;
  for (const g of groups) {
    const bytes = g.reduce((n, [, t]) => n + bytesOf(t), 0);
    if (current.length > 0 && size + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(...g);
    size += bytes;
    totalBytes += bytes;
  }
  if (current.length > 0) shards.push(current);
  const n = shards.length;
  const names = shards.map((_, i) =>
    n === 1
      ? SINGLE_FILE
      : `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`
  );
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const fp8: Record<string, "F8_E4M3"> = {};
    for (const [name, t] of shard) {
      if (t.dtype === "u8" && all.has(`${name}_scale_inv`)) fp8[name] = "F8_E4M3";
      weightMap[name] = names[i];
    }
    await saveSafetensors(`${dir}/${names[i]}`, new Map(shard), { format: "pt" }, { fp8 });
  }
  if (n > 1) {
    const index = { metadata: { total_size: totalBytes }, weight_map: weightMap };
    await writeTextAtomic(`${dir}/${INDEX_FILE}`, JSON.stringify(index, null, 2) + "\n");
  } else {
    await Deno.remove(`${dir}/${INDEX_FILE}`).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  for await (const entry of Deno.readDir(dir)) {
    const stale = (entry.name === SINGLE_FILE || SHARD_NAME.test(entry.name)) &&
      !names.includes(entry.name);
    if (entry.isFile && stale) await Deno.remove(`${dir}/${entry.name}`);
  }
  return { files: names, totalBytes, names: [...all.keys()] };
}
