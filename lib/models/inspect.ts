/**
 * `deno task inspect <dir>`: what a checkpoint directory holds — its configuration, total and
 * activated parameters, KV-cache bytes per token, the storage dtypes of its tensors — and, when
 * asked, a few greedy tokens from a prompt of token ids. Counts come from the file headers, so
 * inspecting a large checkpoint reads no weights; only generation loads the model.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { ModelConfig } from "./config.ts";
import { loadCheckpoint, readCheckpointConfig } from "./checkpoint.ts";
import { generate } from "./generate.ts";
import { type CheckpointFiles, mtpCopyNames, readCheckpointFiles } from "./hf_checkpoint.ts";
import { hfTopkMethod } from "./hf.ts";
import type { Fp8LoadMode } from "./hf_checkpoint.ts";

/** Storage of one dtype in a checkpoint. */
export interface DtypeStorage {
  /** The safetensors dtype. */
  dtype: string;
  /** Tensors stored in it. */
  tensors: number;
  /** Their elements. */
  elements: number;
  /** Their bytes. */
  bytes: number;
}

/** Parameter counts from the headers (as `Decoder.countParameters` counts them). */
export interface HeaderParameterCount {
  /** Main model: embedding, blocks, final norm, `lm_head` (MTP layers, router biases, FP8
   * scales and the MTP copies of the shared tensors excluded). */
  total: number;
  /** Of `total`, those a token uses: every MoE layer's routed experts beyond `topK` left out. */
  activated: number;
  /** MTP layers (without their copies of the shared embedding and head). */
  mtp: number;
}

/** What {@linkcode inspectCheckpoint} finds. */
export interface InspectReport {
  /** The directory. */
  dir: string;
  /** Which file gave the configuration (`config.json`, `ablate.json`, ...). */
  configSource: string;
  /** `model_type` of `config.json`, if any. */
  modelType: string | null;
  /** The ablate configuration. */
  config: ModelConfig;
  /** The weight files. */
  files: CheckpointFiles;
  /** Bytes of all weight files. */
  totalFileBytes: number;
  /** Storage by dtype, largest first. */
  dtypes: DtypeStorage[];
  /** Parameter counts. */
  parameters: HeaderParameterCount;
  /** KV-cache bytes per token of the main model (float32 cache). */
  kvBytesPerToken: number;
  /** The greedy continuation, when tokens were asked for. */
  greedy: { prompt: number[]; tokens: number[] } | null;
}

/** Options for {@linkcode inspectCheckpoint}. */
export interface InspectOptions {
  /** Prompt token ids. @default {[bos_token_id ?? 0]} */
  prompt?: number[];
  /** Greedy tokens to generate (0 loads no weights). @default {0} */
  tokens?: number;
  /** How FP8 weights are loaded for generation. @default {"dequantize"} */
  fp8?: Fp8LoadMode;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Parameter counts of a checkpoint from its headers (no weights read).
 *
 * @param config The model configuration.
 * @param files The weight files.
 * @returns Total, activated and MTP counts.
 */
export function headerParameterCount(
  config: ModelConfig,
  files: CheckpointFiles,
): HeaderParameterCount {
  const copies = mtpCopyNames(config.layers, config.mtp?.depth ?? 0);
  const expertSize = new Map<number, number>();
  let total = 0, mtp = 0;
  for (const t of files.tensors.values()) {
    const { name } = t;
    if (name.endsWith("_scale_inv") || name.endsWith(".e_score_correction_bias")) continue;
    if (copies.has(name)) continue;
    const n = product(t.shape);
    const layer = /^model\.layers\.(\d+)\./.exec(name);
    const l = layer === null ? -1 : Number(layer[1]);
    if (l >= config.layers) {
      mtp += n;
      continue;
    }
    total += n;
    if (l >= 0 && name.startsWith(`model.layers.${l}.mlp.experts.0.`)) {
      expertSize.set(l, (expertSize.get(l) ?? 0) + n);
    }
  }
  let inactive = 0;
  const ffn = config.ffn;
  if (ffn.kind === "moe") {
    for (const size of expertSize.values()) inactive += (ffn.routedExperts - ffn.topK) * size;
  }
  return { total, activated: total - inactive, mtp };
}

/**
 * KV-cache bytes per token of the main model with ablate's float32 cache: MLA
 * `(d_c + d_h^R) · 4 · L`; MHA `2 n_h d_h · 4 · L`, GQA `2 n_g d_h · 4 · L`, MQA `2 d_h · 4 · L`.
 *
 * @param config The model configuration.
 * @returns Bytes per token, summed over layers.
 *
 * @example V3: (512 + 64) · 4 · 61
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { tinyConfig } from "./decoder.ts";
 * import { kvCacheBytesPerToken } from "./inspect.ts";
 * const mla = { kind: "mla", kvLatentRank: 512, queryLatentRank: 1536, ropeHeadDim: 64 } as const;
 * strictEqual(kvCacheBytesPerToken(tinyConfig({ layers: 61, attention: mla })), 576 * 4 * 61);
 * ```
 */
export function kvCacheBytesPerToken(config: ModelConfig): number {
  const a = config.attention, hd = config.dModel / config.heads;
  let perLayer: number;
  switch (a.kind) {
    case "mla":
      perLayer = a.kvLatentRank + a.ropeHeadDim;
      break;
    case "mha":
      perLayer = 2 * config.heads * hd;
      break;
    case "gqa":
      perLayer = 2 * a.kvHeads * hd;
      break;
    case "mqa":
      perLayer = 2 * hd;
      break;
    default:
      throw new Error(`Unknown attention kind '${(a satisfies never as { kind: string }).kind}'`);
  }
  return perLayer * 4 * config.layers;
}

/**
 * Inspect a checkpoint directory (ablate's or a Hugging Face DeepSeek one). Needs
 * `--allow-read`.
 *
 * @param dir The checkpoint directory.
 * @param options Prompt, number of greedy tokens, FP8 load mode.
 * @returns The configuration, counts, storage and the greedy tokens.
 */
export async function inspectCheckpoint(
  dir: string,
  options: InspectOptions = {},
): Promise<InspectReport> {
  const { tokens = 0, fp8 = "dequantize" } = options;
  const source = await readCheckpointConfig(dir);
  const files = await readCheckpointFiles(dir);
  const storage = new Map<string, DtypeStorage>();
  for (const t of files.tensors.values()) {
    const s = storage.get(t.dtype) ?? { dtype: t.dtype, tensors: 0, elements: 0, bytes: 0 };
    s.tensors++;
    s.elements += product(t.shape);
    s.bytes += t.bytes;
    storage.set(t.dtype, s);
  }
  const config = source.config;
  let greedy: InspectReport["greedy"] = null;
  if (tokens > 0) {
    const bos = source.hf?.bos_token_id;
    const prompt = options.prompt ?? [typeof bos === "number" ? bos : 0];
    const { model } = await loadCheckpoint(dir, { fp8 });
    greedy = { prompt, tokens: generate(model, prompt, { maxNewTokens: tokens }).tokens };
  }
  const modelType = source.hf?.model_type;
  return {
    dir,
    configSource: source.source,
    modelType: typeof modelType === "string" ? modelType : null,
    config,
    files,
    totalFileBytes: [...files.fileBytes.values()].reduce((a, b) => a + b, 0),
    dtypes: [...storage.values()].sort((a, b) => b.bytes - a.bytes),
    parameters: headerParameterCount(config, files),
    kvBytesPerToken: kvCacheBytesPerToken(config),
    greedy,
  };
}

const int = (n: number) => n.toLocaleString("en-US");

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) [v, u] = [v / 1024, u + 1];
  return `${v.toFixed(1)} ${units[u]}`;
}

function attentionLine(c: ModelConfig): string {
  const a = c.attention, hd = c.dModel / c.heads;
  let text: string;
  if (a.kind === "mla") {
    text = `MLA: kv_lora_rank ${a.kvLatentRank}, q_lora_rank ${
      a.queryLatentRank > 0 ? a.queryLatentRank : "none"
    }, qk_nope ${a.nopeHeadDim ?? hd} + qk_rope ${a.ropeHeadDim}, v ${a.vHeadDim ?? hd}`;
  } else if (a.kind === "gqa") {
    text = `GQA: ${a.kvHeads} key/value heads of ${hd}`;
  } else {
    text = `${a.kind.toUpperCase()}: head dim ${hd}`;
  }
  const y = c.yarn;
  const rope = `RoPE θ ${c.ropeTheta}` +
    (y === null
      ? ""
      : `, YaRN ×${y.factor} from ${y.originalMaxPositionEmbeddings} (mscale ${y.mscale ?? 1}${
        y.mscaleAllDim === undefined ? "" : `, all-dim ${y.mscaleAllDim}`
      })`);
  return `${text}; ${rope}`;
}

function ffnLine(c: ModelConfig): string {
  const f = c.ffn;
  if (f.kind === "dense") return `dense SwiGLU, hidden ${f.hidden}`;
  const groups = f.groups > 1 ? `, ${f.groups} groups (top ${f.topkGroup})` : "";
  const norm = f.normTopK === false ? "not renormalised" : "renormalised";
  return `DeepSeekMoE from layer ${f.firstDenseLayers}: ${f.routedExperts} routed (top ${f.topK}) + ` +
    `${f.sharedExperts} shared, expert hidden ${f.expertHidden}, ${f.score}, ${hfTopkMethod(f)}` +
    `${groups}, ${norm} × ${f.routeScale}; dense hidden ${f.denseHidden}`;
}

/**
 * The report as text lines (`label  value`).
 *
 * @param report From {@linkcode inspectCheckpoint}.
 * @returns Lines to print.
 */
export function formatInspect(report: InspectReport): string[] {
  const { config: c, files, parameters: p } = report;
  const depth = c.mtp?.depth ?? 0;
  const where = files.sharded ? `${files.files.length} shards + index` : files.files[0];
  const kind = report.configSource === "config.json"
    ? `Hugging Face ${report.modelType}`
    : `ablate (${report.configSource})`;
  const lines = [
    ["checkpoint", report.dir],
    ["format", `${kind}, ${where}, ${bytes(report.totalFileBytes)}`],
    [
      "model",
      `vocab ${int(c.vocab)}, d ${c.dModel}, ${c.layers} layers${
        depth > 0 ? ` + ${depth} MTP` : ""
      }, ${c.heads} heads, RMSNorm eps ${c.normEps.toExponential()}`,
    ],
    ["attention", attentionLine(c)],
    ["ffn", ffnLine(c)],
    [
      "parameters",
      `total ${int(p.total)} · activated ${int(p.activated)} (${
        (100 * p.activated / Math.max(p.total, 1)).toFixed(1)
      }%)${depth > 0 ? ` · MTP ${int(p.mtp)}` : ""}`,
    ],
    ["kv cache", `${int(report.kvBytesPerToken)} B/token (float32, ${c.layers} layers)`],
  ];
  report.dtypes.forEach((d, i) =>
    lines.push([
      i === 0 ? "storage" : "",
      `${d.dtype.padEnd(8)} ${String(d.tensors).padStart(5)} tensors ${
        int(d.elements).padStart(12)
      } elements ${bytes(d.bytes).padStart(10)}`,
    ])
  );
  if (report.greedy !== null) {
    lines.push([
      "greedy",
      `[${report.greedy.prompt.join(", ")}] → [${report.greedy.tokens.join(", ")}]`,
    ]);
  }
  return lines.map(([label, value]) => `${label.padEnd(11)} ${value}`);
}

/** Usage text of `deno task inspect`. */
export const INSPECT_HELP = `Usage: deno task inspect <dir> [options]

Shows what a checkpoint directory holds: ablate's own, or a Hugging Face DeepSeek-V3 / V2 /
V2-Lite one (config.json with model.safetensors or shards and model.safetensors.index.json).
Counts come from the file headers; only --tokens loads the weights.

Options:
  --prompt IDS   comma-separated prompt token ids (default: the config's bos_token_id, or 0)
  --tokens N     greedy tokens to generate after the prompt (default: 8; 0 loads no weights)
  --fp8 MODE     FP8 weights for generation: dequantize (default) or keep
  --help         show this help`;

/** Options for {@linkcode inspectMain}. */
export interface InspectMainOptions {
  /** Where output goes. @default {console.log} */
  log?: (line: string) => void;
  /** Where errors go. @default {console.error} */
  error?: (line: string) => void;
}

/**
 * Run the inspect CLI.
 *
 * @param args Command-line arguments.
 * @param options Where messages go.
 * @returns The exit code: 0 done, 1 failed, 2 bad usage.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { inspectMain } from "./inspect.ts";
 * const lines: string[] = [];
 * strictEqual(await inspectMain(["--help"], { log: (l) => lines.push(l) }), 0);
 * strictEqual(lines[0].startsWith("Usage: deno task inspect"), true);
 * ```
 */
export async function inspectMain(
  args: string[],
  options: InspectMainOptions = {},
): Promise<number> {
  const log = options.log ?? console.log;
  const error = options.error ?? console.error;
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        prompt: { type: "string" },
        tokens: { type: "string", default: "8" },
        fp8: { type: "string", default: "dequantize" },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    error(`${(e as Error).message}\n\n${INSPECT_HELP}`);
    return 2;
  }
  if (values.help) {
    log(INSPECT_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    error(
      `Cannot inspect: expected one checkpoint directory, got ${positionals.length}\n\n${INSPECT_HELP}`,
    );
    return 2;
  }
  const tokens = Number(values.tokens);
  if (!Number.isInteger(tokens) || tokens < 0) {
    error(`Cannot inspect with --tokens '${values.tokens}': expected an integer ≥ 0`);
    return 2;
  }
  let prompt: number[] | undefined;
  if (values.prompt !== undefined) {
    prompt = values.prompt.split(",").map((s) => Number(s.trim()));
    if (prompt.length === 0 || prompt.some((t) => !Number.isInteger(t) || t < 0)) {
      error(`Cannot inspect with --prompt '${values.prompt}': expected token ids like 1,2,3`);
      return 2;
    }
  }
  const fp8 = values.fp8;
  if (fp8 !== "dequantize" && fp8 !== "keep") {
    error(`Cannot inspect with --fp8 '${fp8}': expected 'dequantize' or 'keep'`);
    return 2;
  }
  try {
    const report = await inspectCheckpoint(positionals[0], { prompt, tokens, fp8 });
    for (const line of formatInspect(report)) log(line);
    return 0;
  } catch (e) {
    error((e as Error).message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await inspectMain(Deno.args));
