/**
 * Evaluation noise against seed noise: how much a checkpoint's validation loss moves when it is
 * evaluated on a different held-out sample, compared with how much it moves between seeds. A
 * claim's interval is only about the models when the first is small: the target is evaluation
 * noise below 1/5 of the seed spread.
 *
 * Method. Every finished run's last checkpoint is evaluated on every non-overlapping window of
 * `T + 1` tokens of the held-out split, giving per-window losses `ℓ_1 … ℓ_N` (mean next-token
 * NLL of the window). A held-out sample of `n` windows has loss `L = mean(ℓ_i)`; its spread over
 * disjoint samples is the evaluation noise at size `n`:
 * - `strided` samples take windows `k, k + K, k + 2K, …` (each sample spans every held-out
 *   document, as a sample drawn across the split would);
 * - `contiguous` samples are blocks of `n` consecutive windows — what the runner's fixed prefix
 *   (`evalBatches × batch` windows from the start of the split) is one of.
 * For windows drawn at random the spread is `σ_w / √n · √(1 − n/N)` (`σ_w` the standard deviation
 * of `ℓ_i` across windows); neighbouring windows of one document are correlated, so contiguous
 * blocks spread more. The seed spread is the standard deviation over seeds of the loss each
 * run's summary reports (same windows for every run). For a paired claim the relevant noise is
 * that of the per-window difference `ℓ_i(variant) − ℓ_i(baseline)` (same seed), against the
 * seed spread of the per-seed differences.
 *
 * Design rule: a held-out set of `n ≥ 25 σ_w² / σ_seed²` windows drawn across the split keeps
 * evaluation noise below 1/5 of the seed spread ({@linkcode windowsForEvalNoise}).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { withBackend } from "../backend/mod.ts";
import { sequentialBatches } from "../data/batches.ts";
import { loadWeights } from "../models/checkpoint.ts";
import type { ModelConfig } from "../models/config.ts";
import { Decoder } from "../models/decoder.ts";
import { type DataPlan, loadTokens, type RunPlan } from "../runner/run.ts";
import { loadSafetensors, noGrad, Rng, type Tensor, tensor, tidy } from "../tensor/mod.ts";
import type { ExperimentResults } from "./results.ts";

/** Options for {@linkcode windowLosses}. */
export interface WindowLossOptions {
  /** Window length `T` (the model's context). */
  seqLen: number;
  /** Windows per forward pass. @default {32} */
  batch?: number;
  /** Evaluate only the first this many windows. @default {every window} */
  maxWindows?: number;
  /** The backend the model's weights live on. @default {the current default backend} */
  backend?: Backend;
}

/** The model interface {@linkcode windowLosses} needs: next-token logits `[B, T, V]`. */
export interface LogitModel {
  forward(ids: Tensor): Tensor;
}

/**
 * Per-window validation losses: for every non-overlapping window of `T + 1` tokens (starts
 * `0, T, 2T, …`, as the runner's `valLoss` uses them) the mean next-token negative
 * log-likelihood, `−(1/T) Σ_t log softmax(logits_t)[target_t]`, computed in f64 on the host.
 * The mean over the first `evalBatches × batch` windows is the runner's `valLoss`.
 *
 * @param model A decoder on a backend that reads synchronously (cpu, wasm); its forward runs
 *   under `noGrad`.
 * @param tokens The held-out token stream.
 * @param options Window length, windows per pass, cap.
 * @returns One loss per window, in order.
 *
 * @example A uniform model has loss `ln V` on every window
 * ```ts
 * import { assertAllClose } from "../tensor/assert.ts";
 * import { zeros } from "../tensor/mod.ts";
 * import { windowLosses } from "./eval_noise.ts";
 * const uniform = { forward: (ids: ReturnType<typeof zeros>) => zeros([ids.shape[0], ids.shape[1], 8]) };
 * const losses = await windowLosses(uniform, Int32Array.from({ length: 33 }, (_, i) => i % 8), { seqLen: 8 });
 * assertAllClose(Array.from(losses), [Math.log(8), Math.log(8), Math.log(8), Math.log(8)], { atol: 1e-12, rtol: 0 });
 * ```
 */
export async function windowLosses(
  model: LogitModel,
  tokens: Int32Array,
  options: WindowLossOptions,
): Promise<Float64Array> {
  const { seqLen, batch = 32, maxWindows = Infinity } = options;
  const out: number[] = [];
  for (const b of sequentialBatches(tokens, { batch, seqLen })) {
    if (out.length >= maxWindows) break;
    const pass = () =>
      noGrad(() => tidy(() => model.forward(tensor(b.inputs, { dtype: "i32", shape: b.shape }))));
    const logits = options.backend ? withBackend(options.backend, pass) : pass();
    const data = await logits.data();
    logits.dispose();
    const rows = b.shape[0], vocab = data.length / (rows * seqLen);
    for (let r = 0; r < rows && out.length < maxWindows; r++) {
      let sum = 0;
      for (let t = 0; t < seqLen; t++) {
        const at = (r * seqLen + t) * vocab;
        let max = -Infinity;
        for (let v = 0; v < vocab; v++) max = Math.max(max, data[at + v]);
        let z = 0;
        for (let v = 0; v < vocab; v++) z += Math.exp(data[at + v] - max);
        sum += max + Math.log(z) - data[at + b.targets[r * seqLen + t]];
      }
      out.push(sum / seqLen);
    }
  }
  return Float64Array.from(out);
}

/** Options for {@linkcode sampleSpread}. */
export interface SampleSpreadOptions {
  /**
   * `strided`: sample `k` takes windows `k, k + K, k + 2K, …` (spanning the split);
   * `contiguous`: blocks of consecutive windows. @default {"strided"}
   */
  layout?: "strided" | "contiguous";
}

/** The spread of the mean loss over disjoint held-out samples of one size. */
export interface SampleSpread {
  /** Windows per sample. */
  windows: number;
  layout: "strided" | "contiguous";
  /** Disjoint samples taken. */
  samples: number;
  /** The mean loss of each sample. */
  means: number[];
  /** Standard deviation of `means` (denominator `samples − 1`). */
  std: number;
  /** `σ_w / √n · √(1 − n/N)`: the spread if windows were drawn at random. */
  predictedStd: number;
}

function std(values: ArrayLike<number>): number {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i] / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - mean) ** 2;
  return Math.sqrt(ss / (n - 1));
}

/**
 * The evaluation noise at `windows` windows per sample: the standard deviation of the mean loss
 * over the `⌊N / windows⌋` disjoint samples of the per-window losses.
 *
 * @param losses Per-window losses of one checkpoint (or per-window differences of two).
 * @param windows Windows per sample.
 * @param options The layout.
 * @returns The spread, with the random-draw prediction beside it.
 * @throws When fewer than 2 disjoint samples fit.
 *
 * @example Alternating losses: blocks of 2 all agree; strided samples of 4 take every other window
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { sampleSpread } from "./eval_noise.ts";
 * const losses = Float64Array.from([1, 3, 1, 3, 1, 3, 1, 3]);
 * assertEquals(sampleSpread(losses, 2, { layout: "contiguous" }).std, 0);
 * assertEquals(sampleSpread(losses, 4, { layout: "strided" }).means, [1, 3]);
 * ```
 */
export function sampleSpread(
  losses: Float64Array,
  windows: number,
  options: SampleSpreadOptions = {},
): SampleSpread {
  const layout = options.layout ?? "strided";
  const n = losses.length;
  if (!Number.isInteger(windows) || windows < 1) {
    throw new Error(`Cannot take held-out samples of ${windows} windows: expected an integer >= 1`);
  }
  const samples = Math.floor(n / windows);
  if (samples < 2) {
    throw new Error(
      `Cannot measure the spread of ${windows}-window samples from ${n} windows: ` +
        `expected at least 2 disjoint samples (${2 * windows} windows)`,
    );
  }
  const means: number[] = [];
  for (let k = 0; k < samples; k++) {
    let sum = 0;
    for (let j = 0; j < windows; j++) {
      sum += losses[layout === "strided" ? k + j * samples : k * windows + j];
    }
    means.push(sum / windows);
  }
  return {
    windows,
    layout,
    samples,
    means,
    std: std(means),
    predictedStd: (std(losses) / Math.sqrt(windows)) * Math.sqrt(Math.max(0, 1 - windows / n)),
  };
}

/** Options for {@linkcode windowsForEvalNoise}. */
export interface EvalNoiseTargetOptions {
  /** Evaluation noise allowed, as a fraction of the seed spread. @default {0.2} */
  ratio?: number;
}

/**
 * The held-out windows (drawn across the split) that keep the evaluation noise below
 * `ratio × σ_seed`: `n = ⌈σ_w² / (ratio σ_seed)²⌉`.
 *
 * @param perWindowStd `σ_w`, the standard deviation of per-window losses.
 * @param seedStd `σ_seed`, the seed spread of the loss (or of the paired difference).
 * @param options `ratio`.
 * @returns Windows.
 *
 * @example Per-window spread 0.3, seed spread 0.01: 22,500 windows for 1/5
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { windowsForEvalNoise } from "./eval_noise.ts";
 * assertEquals(windowsForEvalNoise(0.3, 0.01), 22_500);
 * ```
 */
export function windowsForEvalNoise(
  perWindowStd: number,
  seedStd: number,
  options: EvalNoiseTargetOptions = {},
): number {
  const ratio = options.ratio ?? 0.2;
  if (!(seedStd > 0)) {
    throw new Error(`Cannot size the held-out set for seed spread ${seedStd}: expected > 0`);
  }
  if (!(ratio > 0)) throw new Error(`Invalid ratio ${ratio}: expected > 0`);
  return Math.ceil((perWindowStd / (ratio * seedStd)) ** 2 - 1e-9);
}

/** Options for {@linkcode checkpointWindowLosses}. */
export interface CheckpointLossOptions {
  /** Where the model runs. */
  backend: Backend;
  /** Evaluate only the first this many windows of the held-out split. @default {every window} */
  maxWindows?: number;
  /** Windows per forward pass. @default {32} */
  batch?: number;
}

/**
 * Per-window held-out losses of a finished run's last checkpoint: the model is built from the
 * run's `config.json` plan, loaded from `checkpoint/model.safetensors` and evaluated on the
 * plan's held-out split ({@linkcode windowLosses}).
 *
 * @param runDir The run's directory (`runs/<experiment>/<variant>/seed-<n>`).
 * @param options Backend and cap.
 * @returns One loss per window.
 * @throws When the run has no config or checkpoint (the message names the path).
 */
export async function checkpointWindowLosses(
  runDir: string,
  options: CheckpointLossOptions,
): Promise<Float64Array> {
  let plan: RunPlan;
  try {
    plan = (JSON.parse(await Deno.readTextFile(`${runDir}/config.json`)) as { plan: RunPlan })
      .plan;
  } catch (e) {
    throw new Error(
      `Cannot re-evaluate '${runDir}': config.json is missing or unreadable (${
        (e as Error).message
      })`,
    );
  }
  const path = `${runDir}/checkpoint/model.safetensors`;
  const { backend } = options;
  if (!backend.canReadSync) {
    throw new Error(
      `Cannot re-evaluate '${runDir}' on ${backend.description}: expected a backend that reads ` +
        `synchronously (cpu or wasm)`,
    );
  }
  const tokens = await loadTokens(plan.data as DataPlan);
  const model = withBackend(backend, () => new Decoder(plan.model as ModelConfig, new Rng(0)));
  let loaded;
  try {
    loaded = await loadSafetensors(path, { backend });
  } catch (e) {
    throw new Error(
      `Cannot re-evaluate '${runDir}': no checkpoint at '${path}' (${(e as Error).message})`,
    );
  }
  try {
    loadWeights(model, loaded.tensors);
  } finally {
    for (const t of loaded.tensors.values()) t.dispose();
  }
  return await windowLosses(model, tokens.val, {
    seqLen: plan.model.seqLen,
    batch: options.batch,
    maxWindows: options.maxWindows,
    backend,
  });
}

/** One variant's (or one pair's) evaluation noise against its seed spread. */
export interface EvalNoiseRow {
  /** `mla`, or `mla − mha` for a paired difference. */
  name: string;
  /** Seeds behind the seed spread. */
  seeds: number;
  /** Seed spread of the reported loss (or of the per-seed difference). */
  seedStd: number;
  /** Per-window standard deviation, averaged over seeds. */
  perWindowStd: number;
  /** Evaluation noise at the runner's held-out size, per layout (mean over seeds). */
  strided: number;
  contiguous: number;
  /** `strided / seedStd` and `contiguous / seedStd`. */
  stridedRatio: number;
  contiguousRatio: number;
  /** Windows drawn across the split for evaluation noise below 1/5 of the seed spread. */
  windowsNeeded: number;
}

/** What {@linkcode measureEvalNoise} measured for one experiment. */
export interface EvalNoiseMeasurement {
  experiment: string;
  /** Held-out windows evaluated per checkpoint (`N`). */
  windows: number;
  /** Windows of the runner's fixed held-out prefix (`evalBatches × batch`). */
  reportedWindows: number;
  /** Per variant, then per paired difference against `baseline`. */
  rows: EvalNoiseRow[];
}

/** Options for {@linkcode measureEvalNoise}. */
export interface MeasureEvalNoiseOptions extends CheckpointLossOptions {
  /** The variant the paired differences are taken against. @default {the first variant} */
  baseline?: string;
  /** Called after each checkpoint (progress). */
  onRun?: (label: string) => void;
}

/**
 * Measure evaluation noise against seed noise for every variant of an experiment (and every
 * variant's paired difference against `baseline`): re-evaluate each run's last checkpoint on the
 * held-out split, then compare the spread over disjoint held-out samples of the runner's size
 * (strided and contiguous) with the spread over seeds.
 *
 * @param results The experiment's results (finished runs with checkpoints).
 * @param options Backend, cap, baseline, progress.
 * @returns The rows.
 */
export async function measureEvalNoise(
  results: ExperimentResults,
  options: MeasureEvalNoiseOptions,
): Promise<EvalNoiseMeasurement> {
  const baseline = options.baseline ?? results.variants[0];
  if (!results.variants.includes(baseline)) {
    throw new Error(
      `Cannot measure evaluation noise of '${results.experiment}' against baseline '${baseline}': ` +
        `expected one of ${results.variants.map((v) => `'${v}'`).join(", ")}`,
    );
  }
  const losses = new Map<string, Float64Array>(); // `${variant}/${seed}`
  let reportedWindows = 0;
  for (const run of results.runs) {
    const l = await checkpointWindowLosses(run.dir, options);
    losses.set(`${run.variant}/${run.seed}`, l);
    const train = (run.config?.plan as RunPlan | undefined)?.train;
    if (train) reportedWindows = train.evalBatches * train.batch;
    options.onRun?.(`${run.variant}/seed-${run.seed}`);
  }
  const windows = Math.min(...[...losses.values()].map((l) => l.length));
  if (reportedWindows === 0 || reportedWindows * 2 > windows) {
    reportedWindows = Math.floor(windows / 4);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const row = (name: string, perSeed: Float64Array[]): EvalNoiseRow | null => {
    if (perSeed.length < 2) return null;
    // the reported number of each seed: the mean over the fixed prefix
    const reported = perSeed.map((l) => mean(Array.from(l.subarray(0, reportedWindows))));
    const seedStd = std(reported);
    const strided = mean(
      perSeed.map((l) =>
        sampleSpread(l.subarray(0, windows), reportedWindows, { layout: "strided" }).std
      ),
    );
    const contiguous = mean(
      perSeed.map((l) =>
        sampleSpread(l.subarray(0, windows), reportedWindows, { layout: "contiguous" }).std
      ),
    );
    const perWindowStd = mean(perSeed.map((l) => std(l.subarray(0, windows))));
    return {
      name,
      seeds: perSeed.length,
      seedStd,
      perWindowStd,
      strided,
      contiguous,
      stridedRatio: strided / seedStd,
      contiguousRatio: contiguous / seedStd,
      windowsNeeded: seedStd > 0 ? windowsForEvalNoise(perWindowStd, seedStd) : Infinity,
    };
  };
  const rows: EvalNoiseRow[] = [];
  const seedsOf = (v: string) => results.runs.filter((r) => r.variant === v).map((r) => r.seed);
  for (const v of results.variants) {
    const r = row(v, seedsOf(v).map((s) => losses.get(`${v}/${s}`) as Float64Array));
    if (r) rows.push(r);
  }
  for (const v of results.variants.filter((x) => x !== baseline)) {
    const diffs = seedsOf(v).filter((s) => losses.has(`${baseline}/${s}`)).map((s) => {
      const a = losses.get(`${v}/${s}`) as Float64Array,
        b = losses.get(`${baseline}/${s}`) as Float64Array;
      return Float64Array.from({ length: windows }, (_, i) => a[i] - b[i]);
    });
    const r = row(`${v} − ${baseline}`, diffs);
    if (r) rows.push(r);
  }
  return { experiment: results.experiment, windows, reportedWindows, rows };
}

/**
 * The measurement as Markdown: a table per row with the seed spread, the evaluation noise at
 * the runner's held-out size (strided and contiguous samples) as a fraction of it, and the
 * windows a strided held-out set needs for 1/5.
 *
 * @param m The measurement.
 * @returns Markdown (a paragraph and a GFM table).
 */
export function evalNoiseMarkdown(m: EvalNoiseMeasurement): string {
  const f = (x: number) => x.toFixed(4);
  const lines = [
    `${m.experiment}: each checkpoint re-evaluated on all ${m.windows.toLocaleString("en-US")} ` +
    `held-out windows; evaluation noise is the spread of the mean loss over disjoint samples of ` +
    `${m.reportedWindows} windows (the runner's held-out size), strided across the split or in ` +
    `contiguous blocks like the runner's fixed prefix; seed spread is the standard deviation over ` +
    `seeds of the reported loss. Target: evaluation noise < 1/5 of the seed spread.`,
    "",
    "| loss of | seeds | seed spread | per-window σ | eval noise, strided (÷ seed) | eval noise, contiguous (÷ seed) | windows for 1/5 (strided) |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...m.rows.map((r) =>
      `| ${r.name} | ${r.seeds} | ${f(r.seedStd)} | ${f(r.perWindowStd)} | ${f(r.strided)} (${
        r.stridedRatio.toFixed(2)
      }) | ${f(r.contiguous)} (${r.contiguousRatio.toFixed(2)}) | ${
        Number.isFinite(r.windowsNeeded) ? r.windowsNeeded.toLocaleString("en-US") : "–"
      } |`
    ),
  ];
  return lines.join("\n");
}
