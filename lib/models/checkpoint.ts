/**
 * Model checkpoints in the Hugging Face layout of DeepSeek-V3 (docs: README "Bring your own
 * checkpoint"), in two formats:
 * - `"ablate"` (the default of {@linkcode saveModel}): `model.safetensors` (every tensor of
 *   {@linkcode Decoder.parameters}, by DeepSeek-V3 name) and a `config.json` with the
 *   `DeepseekV3Config` fields plus the full ablate {@linkcode ModelConfig} under `"ablate"`;
 *   MHA / GQA / MQA models also write `attention_kind`, `num_key_value_heads` and `head_dim`;
 * - `"hf"`: what the Hugging Face Hub holds for DeepSeek-V2/V3 — a `config.json` with only
 *   Hugging Face keys (`toHfConfig`), weights in `model.safetensors` or, above a size, in shards
 *   with `model.safetensors.index.json`, V3's MTP layer with its copies of `embed_tokens` and
 *   `shared_head.head`; the ablate config travels in `ablate.json` beside it.
 * {@linkcode loadModel} reads both, and any Hugging Face DeepSeek-V3 / V2 / V2-Lite directory
 * (`fromHfConfig`): weights in F32, BF16, F16 or F8_E4M3 with 128×128 block scales, read tensor
 * by tensor from their file offsets (`hf_checkpoint.ts`).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { getBackend, withBackend } from "../backend/mod.ts";
import { noGrad, Rng, saveSafetensors, type Tensor, tensor } from "../tensor/mod.ts";
import type { Fp8Spec, ModelConfig } from "./config.ts";
import { Decoder } from "./decoder.ts";
import { deepseekConfigFields, fromHfConfig, type HfConfigJson, toHfConfig } from "./hf.ts";
import {
  type CheckpointFiles,
  type Fp8LoadMode,
  hfTensors,
  type LoadCheckpointReport,
  loadCheckpointWeights,
  readCheckpointFiles,
  writeHfWeights,
  type WriteHfWeightsOptions,
} from "./hf_checkpoint.ts";

/** Options for {@linkcode loadWeights}. */
export interface LoadWeightsOptions {
  /**
   * Fail on tensors the model does not have (otherwise they are ignored). Missing tensors and
   * shape mismatches always fail.
   * @default {true}
   */
  strict?: boolean;
}

/**
 * Copy named tensors into a model's parameters in place (so an optimizer holding them keeps
 * working), after checking that every name is present with the right shape.
 *
 * @param model The model (anything with `parameters()`).
 * @param tensors Tensors by Hugging Face name.
 * @param options `strict`.
 *
 * @example Copy the weights of one model into another
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { Rng, tensor } from "../tensor/mod.ts";
 * import { loadWeights } from "./checkpoint.ts";
 * import { Decoder, tinyConfig } from "./decoder.ts";
 * const a = new Decoder(tinyConfig(), new Rng(0)), b = new Decoder(tinyConfig(), new Rng(1));
 * loadWeights(b, a.parameters());
 * const ids = tensor([[1, 2, 3]], { dtype: "i32" });
 * assertAllClose(b.forward(ids), a.forward(ids));
 * ```
 */
export function loadWeights(
  model: { parameters(): Map<string, Tensor> },
  tensors: Map<string, Tensor>,
  options: LoadWeightsOptions = {},
): void {
  const { strict = true } = options;
  const params = model.parameters();
  const missing = [...params.keys()].filter((n) => !tensors.has(n));
  if (missing.length > 0) {
    throw new Error(
      `Cannot load weights: ${missing.length} tensor(s) missing from the checkpoint: ` +
        missing.slice(0, 8).map((n) => `'${n}'`).join(", ") + (missing.length > 8 ? ", ..." : ""),
    );
  }
  const unexpected = [...tensors.keys()].filter((n) => !params.has(n));
  if (strict && unexpected.length > 0) {
    throw new Error(
      `Cannot load weights: ${unexpected.length} tensor(s) in the checkpoint are not in the ` +
        `model: ${unexpected.slice(0, 8).map((n) => `'${n}'`).join(", ")}` +
        (unexpected.length > 8 ? ", ..." : "") + " (pass strict: false to ignore them)",
    );
  }
  for (const [name, p] of params) {
    const t = tensors.get(name) as Tensor;
    if (t.shape.join() !== p.shape.join() || t.dtype !== p.dtype) {
      throw new Error(
        `Cannot load tensor '${name}': the checkpoint holds [${t.shape.join(", ")}] ${t.dtype}, ` +
          `the model expects [${p.shape.join(", ")}] ${p.dtype}`,
      );
    }
  }
  noGrad(() => {
    for (const [name, p] of params) {
      const t = tensors.get(name) as Tensor;
      if (t.backend === p.backend) {
        p.assign(t);
        continue;
      }
      const moved = tensor(t.dataSync(), { shape: t.shape, dtype: t.dtype, backend: p.backend });
      p.assign(moved);
      moved.dispose();
    }
  });
}

/** A Hugging Face `config.json` for `DeepseekV3ForCausalLM`, with the ablate config embedded. */
export type HfConfig = Record<string, unknown> & { ablate: ModelConfig };

/**
 * The Hugging Face `config.json` object of a model configuration.
 *
 * @param config The resolved ablate configuration.
 * @returns DeepSeek-V3 config fields plus `ablate: config`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { hfConfig } from "./checkpoint.ts";
 * import { tinyConfig } from "./decoder.ts";
 * const hf = hfConfig(tinyConfig({ mtp: { depth: 1, lambda: 0.3 } }));
 * strictEqual(hf.num_nextn_predict_layers, 1);
 * strictEqual(hf.hidden_size, 16);
 * ```
 */
export function hfConfig(config: ModelConfig): HfConfig {
  const a = config.attention;
  let kvHeads = config.heads;
  if (a.kind === "gqa") kvHeads = a.kvHeads;
  else if (a.kind === "mqa") kvHeads = 1;
  return {
    ...deepseekConfigFields(config),
    num_key_value_heads: kvHeads,
    head_dim: a.kind === "mla" ? null : config.dModel / config.heads,
    attention_kind: a.kind,
    ablate: config,
  };
}

/** The file beside a Hugging Face `config.json` that holds the ablate {@linkcode ModelConfig}. */
export const ABLATE_CONFIG_FILE = "ablate.json";

/** Checkpoint layouts {@linkcode saveModel} writes (see the module doc). */
export type CheckpointFormat = "ablate" | "hf";

/** Options for {@linkcode saveModel}. */
export interface SaveModelOptions extends WriteHfWeightsOptions {
  /**
   * `"ablate"`: `model.safetensors` and a `config.json` embedding the ablate config; `"hf"`:
   * only Hugging Face keys in `config.json`, the ablate config in `ablate.json`, weights sharded
   * above `maxShardBytes` (MLA models only, as `DeepseekV3Config` describes MLA only).
   * @default {"ablate"}
   */
  format?: CheckpointFormat;
}

async function writeTextAtomic(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(temporary, text);
  await Deno.rename(temporary, path);
}

/** FP8 tags for the held FP8 weights (`u8` codes with a `_scale_inv`) of a tensor map. */
function fp8Tags(tensors: Map<string, Tensor>): Record<string, "F8_E4M3"> {
  const tags: Record<string, "F8_E4M3"> = {};
  for (const [name, t] of tensors) {
    if (t.dtype === "u8" && tensors.has(`${name}_scale_inv`)) tags[name] = "F8_E4M3";
  }
  return tags;
}

/**
 * Save a model into `dir` (created if needed; every file is written atomically). Needs
 * `--allow-write` (and `--allow-read` for `"hf"`, which removes weight files of an earlier save).
 *
 * @param dir The checkpoint directory.
 * @param model The model to save.
 * @param options `format` (`"ablate"` or `"hf"`) and, for `"hf"`, `maxShardBytes`.
 * @returns A promise that resolves once every file is in place.
 *
 * @example
 * ```ts ignore
 * await saveModel("runs/x/checkpoint", model);
 * await saveModel("export/deepseek-tiny", model, { format: "hf", maxShardBytes: 2e9 });
 * const again = await loadModel("export/deepseek-tiny");
 * ```
 */
export async function saveModel(
  dir: string,
  model: Decoder,
  options: SaveModelOptions = {},
): Promise<void> {
  const { format = "ablate", ...weights } = options;
  await Deno.mkdir(dir, { recursive: true });
  switch (format) {
    case "ablate": {
      const params = model.parameters();
      const fp8 = fp8Tags(params);
      await saveSafetensors(`${dir}/model.safetensors`, params, { format: "pt" }, { fp8 });
      const json = JSON.stringify(hfConfig(model.config), null, 2) + "\n";
      await writeTextAtomic(`${dir}/config.json`, json);
      return;
    }
    case "hf": {
      const fp8Weights = Object.keys(fp8Tags(hfTensors(model))).length > 0;
      const hf = toHfConfig(model.config, { fp8Weights });
      await writeTextAtomic(`${dir}/config.json`, JSON.stringify(hf, null, 2) + "\n");
      const ablate = JSON.stringify(model.config, null, 2) + "\n";
      await writeTextAtomic(`${dir}/${ABLATE_CONFIG_FILE}`, ablate);
      await writeHfWeights(dir, model, weights);
      return;
    }
    default:
      throw new Error(
        `Cannot save a model in format '${format satisfies never}': expected 'ablate' or 'hf'`,
      );
  }
}

/** A checkpoint's configuration and where it came from. */
export interface CheckpointConfig {
  /** The ablate configuration the model is built from. */
  config: ModelConfig;
  /** The Hugging Face `config.json` (or `null` when the directory has none). */
  hf: HfConfigJson | null;
  /** `"ablate.json"`, `"config.json#ablate"` or `"config.json"` (mapped by `fromHfConfig`). */
  source: string;
}

async function readJsonFile(path: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`Cannot load '${path}': ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Read a checkpoint's configuration: `ablate.json` when present, else the `"ablate"` entry of
 * `config.json`, else `config.json` as a Hugging Face DeepSeek config (`fromHfConfig`).
 *
 * @param dir The checkpoint directory.
 * @returns The configuration, the Hugging Face JSON and which file gave it.
 */
export async function readCheckpointConfig(dir: string): Promise<CheckpointConfig> {
  const path = `${dir}/config.json`;
  const raw = await readJsonFile(path);
  const hf = raw !== null && typeof raw === "object" && !Array.isArray(raw)
    ? raw as HfConfigJson
    : null;
  const own = await readJsonFile(`${dir}/${ABLATE_CONFIG_FILE}`);
  if (own !== undefined) {
    if (own === null || typeof own !== "object" || Array.isArray(own)) {
      throw new Error(`Cannot load '${dir}/${ABLATE_CONFIG_FILE}': expected a model config object`);
    }
    return { config: own as ModelConfig, hf, source: ABLATE_CONFIG_FILE };
  }
  if (raw === undefined) {
    throw new Error(`Cannot load '${dir}': it has no config.json`);
  }
  if (hf === null) throw new Error(`Cannot load '${path}': expected a JSON object`);
  const embedded = hf.ablate;
  if (embedded !== undefined) {
    if (embedded === null || typeof embedded !== "object") {
      throw new Error(`Cannot load '${path}': its "ablate" entry is not a model config object`);
    }
    return { config: embedded as ModelConfig, hf, source: "config.json#ablate" };
  }
  return { config: fromHfConfig(hf, { source: path }), hf, source: "config.json" };
}

/**
 * Read a checkpoint's ablate configuration (see {@linkcode readCheckpointConfig}).
 *
 * @param dir The checkpoint directory.
 * @returns The {@linkcode ModelConfig}.
 */
export async function loadModelConfig(dir: string): Promise<ModelConfig> {
  return (await readCheckpointConfig(dir)).config;
}

/** Options for {@linkcode loadModel}. */
export interface LoadModelOptions extends LoadWeightsOptions {
  /** Seed of the throwaway init before the weights are copied in. @default {0} */
  seed?: number;
  /**
   * `F8_E4M3` weights: `"dequantize"` to float32, or `"keep"` them as E4M3 codes plus block
   * scales in their Linear layers (a quarter of the memory; inference, cpu and wasm backends).
   * @default {"dequantize"}
   */
  fp8?: Fp8LoadMode;
  /**
   * Replace the configuration's `fp8` (FP8 GEMM simulation): e.g. tile-scaled activations over
   * kept FP8 weights, as DeepSeek-V3's FP8 inference runs (`quantization_config`
   * `activation_scheme: "dynamic"`). `undefined` keeps the checkpoint's.
   * @default {undefined}
   */
  fp8Compute?: Fp8Spec | null;
  /** Backend to build the model on. @default {the current backend when called} */
  backend?: Backend;
}

/** What {@linkcode loadCheckpoint} returns. */
export interface LoadedCheckpoint {
  /** The model, on the current backend. */
  model: Decoder;
  /** The configuration and its source. */
  config: CheckpointConfig;
  /** The weight files (headers). */
  files: CheckpointFiles;
  /** Measured reads, FP8 handling and the MTP copies checked. */
  report: LoadCheckpointReport;
}

/**
 * {@linkcode loadModel}, also returning the configuration's source, the weight files and the
 * reader's measurements (peak raw bytes held, bytes read). Needs `--allow-read`.
 *
 * @param dir The checkpoint directory.
 * @param options `strict`, `seed`, `fp8`, `fp8Compute`.
 * @returns The model, its configuration, files and load report.
 */
export async function loadCheckpoint(
  dir: string,
  options: LoadModelOptions = {},
): Promise<LoadedCheckpoint> {
  const { seed = 0, fp8 = "dequantize", fp8Compute, strict } = options;
  // Taken before the first await: withBackend() scopes only the synchronous part of a call.
  const backend = options.backend ?? getBackend();
  const config = await readCheckpointConfig(dir);
  const files = await readCheckpointFiles(dir);
  const built = fp8Compute === undefined ? config.config : { ...config.config, fp8: fp8Compute };
  const model = withBackend(backend, () => new Decoder(built, new Rng(seed)));
  const report = await loadCheckpointWeights(model, files, {
    strict,
    fp8,
    tieWordEmbeddings: config.hf?.tie_word_embeddings === true,
  });
  return { model, config: { ...config, config: built }, files, report };
}

/**
 * Build a {@linkcode Decoder} from a checkpoint directory and load its weights, checking every
 * name and shape: ablate's own checkpoints (both formats) and Hugging Face DeepSeek-V3 / V2
 * directories, single-file or sharded. Needs `--allow-read`.
 *
 * @param dir The checkpoint directory.
 * @param options `strict` name checking, `fp8` mode, `fp8Compute`, `seed`.
 * @returns The model on the current backend.
 *
 * @example
 * ```ts ignore
 * const model = await loadModel("DeepSeek-V2-Lite"); // config.json + sharded safetensors
 * const { tokens } = generate(model, [1, 2, 3], { maxNewTokens: 8 });
 * ```
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<Decoder> {
  return (await loadCheckpoint(dir, options)).model;
}
