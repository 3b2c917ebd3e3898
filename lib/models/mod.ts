/**
 * The configurable DeepSeek-V3-style decoder: built from a resolved `ModelConfig`, trained
 * through `loss()`, decoded with the KV cache (plain or speculative with MTP), and saved as a
 * Hugging Face style checkpoint (`model.safetensors` + `config.json`).
 *
 * ```ts
 * import { Rng } from "../tensor/mod.ts";
 * import { Decoder, generate, speculativeGenerate, tinyConfig } from "./mod.ts";
 * const model = new Decoder(tinyConfig({ mtp: { depth: 1, lambda: 0.3 } }), new Rng(0));
 * const { tokens } = generate(model, [1, 2, 3], { maxNewTokens: 4 }); // greedy, KV cache
 * const { acceptanceRate } = speculativeGenerate(model, [1, 2, 3], { maxNewTokens: 4 });
 * ```
 *
 * @module
 */

export * from "./config.ts";
export * from "./decoder.ts";
export * from "./generate.ts";
export * from "./checkpoint.ts";
export * from "./hf.ts";
export * from "./hf_checkpoint.ts";
export * from "./inspect.ts";
