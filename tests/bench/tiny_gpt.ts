/**
 * The reference tiny GPT of docs/design.md §6 (bytes, d 256, 4 layers, 4 heads MHA with RoPE,
 * RMSNorm, SwiGLU 683, untied head, T 128, B 16, AdamW, fp32) and its MoE variant (8 routed
 * experts top-2, softmax gate, + 1 shared expert, hidden 128), built with the same Decoder the
 * experiments train, for the training-throughput rows of `deno task bench`: synchronous on
 * backends that read synchronously (cpu, wasm), and through `Decoder.lossAsync` — one recorded
 * segment per host read, as `lib/train/trainer.ts` trains — on WebGPU.
 *
 * @module
 */

import type { Backend } from "../../lib/backend/backend.ts";
import { withBackend } from "../../lib/backend/mod.ts";
import type { ModelConfig } from "../../lib/models/config.ts";
import { Decoder } from "../../lib/models/decoder.ts";
import { Rng, type Tensor, tensor, tidy, TidyScope } from "../../lib/tensor/mod.ts";
import { AdamW, decayGroups } from "../../lib/train/optim.ts";

/** docs/design.md §6, dense. */
export const TINY_GPT: ModelConfig = {
  vocab: 256,
  tokenizer: "bytes",
  dModel: 256,
  layers: 4,
  heads: 4,
  seqLen: 128,
  attention: { kind: "mha" },
  ffn: { kind: "dense", hidden: 683 },
  mtp: null,
  fp8: null,
  ropeTheta: 10000,
  yarn: null,
  normEps: 1e-6,
  initStd: 0.02,
};

/** docs/design.md §6, MoE variant. */
export const TINY_GPT_MOE: ModelConfig = {
  ...TINY_GPT,
  ffn: {
    kind: "moe",
    routedExperts: 8,
    sharedExperts: 1,
    topK: 2,
    expertHidden: 128,
    score: "softmax",
    balance: "none",
    gamma: 0,
    alpha: 0,
    routeScale: 1,
    groups: 1,
    topkGroup: 1,
    firstDenseLayers: 0,
    denseHidden: 683,
  },
};

/** Batch size of the reference model. */
export const BATCH = 16;

/** One random batch of byte ids: inputs and next-token targets, `BATCH × seqLen` each. */
function randomBatch(data: Rng, config: ModelConfig): { x: number[]; y: number[] } {
  const T = config.seqLen;
  const ids = Array.from({ length: BATCH * (T + 1) }, () => data.int(config.vocab));
  return {
    x: ids.filter((_, i) => i % (T + 1) !== T),
    y: ids.filter((_, i) => i % (T + 1) !== 0),
  };
}

/** Tokens/s of the median of `times` (ms per step of `BATCH × seqLen` tokens). */
function medianTokensPerSec(times: number[], config: ModelConfig): number {
  const sorted = [...times].sort((a, b) => a - b);
  return (BATCH * config.seqLen) / (sorted[Math.floor(sorted.length / 2)] / 1000);
}

/**
 * Median training tokens/s of `config` on `backend` over `steps` steps (after one warm-up); the
 * backend must read synchronously (`canReadSync`), see {@linkcode trainTokensPerSecAsync}.
 */
export function trainTokensPerSec(backend: Backend, config: ModelConfig, steps: number): number {
  return withBackend(backend, () => {
    const model = new Decoder(config, new Rng(0));
    const opt = new AdamW(decayGroups(model.parameters(), 0.1), { lr: 1e-3 });
    const data = new Rng(1);
    const shape = [BATCH, config.seqLen];
    const step = () => {
      const { x, y } = randomBatch(data, config);
      tidy(() => {
        const out = model.loss(
          tensor(x, { dtype: "i32", shape }),
          tensor(y, { dtype: "i32", shape }),
        );
        out.loss.backward();
        out.loss.dataSync();
      });
      opt.step();
      opt.zeroGrad();
    };
    step();
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      step();
      times.push(performance.now() - t0);
    }
    return medianTokensPerSec(times, config);
  });
}

/**
 * {@linkcode trainTokensPerSec} for any backend, WebGPU included: the forward runs through
 * `Decoder.lossAsync` (awaiting the host reads MoE routing needs), then backward, AdamW, and one
 * awaited read of the loss per step — the loop of `lib/train/trainer.ts` without clipping.
 */
export async function trainTokensPerSecAsync(
  backend: Backend,
  config: ModelConfig,
  steps: number,
): Promise<number> {
  const model = withBackend(backend, () => new Decoder(config, new Rng(0)));
  const opt = new AdamW(decayGroups(model.parameters(), 0.1), { lr: 1e-3 });
  const data = new Rng(1);
  const shape = [BATCH, config.seqLen];
  const step = async () => {
    const { x, y } = randomBatch(data, config);
    const scope = new TidyScope();
    const [inputs, targets] = scope.run(() =>
      withBackend(backend, () => [
        tensor(x, { dtype: "i32", shape }),
        tensor(y, { dtype: "i32", shape }),
      ])
    );
    const out = await scope.run(() =>
      withBackend(backend, () => model.lossAsync(inputs, targets, { scope }))
    );
    const loss: Tensor = scope.run(() =>
      withBackend(backend, () => {
        out.loss.backward();
        return out.loss;
      })
    );
    scope.end(loss);
    withBackend(backend, () => opt.step());
    opt.zeroGrad();
    await loss.data();
    loss.dispose();
  };
  await step();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  return medianTokensPerSec(times, config);
}
