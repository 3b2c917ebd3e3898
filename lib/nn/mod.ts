/**
 * Neural-network building blocks of DeepSeek-V3 (arXiv:2412.19437): `Linear` (`[out, in]`
 * weights), `RmsNorm`, `Rope` with YaRN, and the `SwiGlu` FFN. Each module takes a config object
 * (and a seeded `Rng` when it has random weights) and lists its tensors by Hugging Face name.
 *
 * ```ts
 * import { randn, Rng } from "../tensor/mod.ts";
 * import { parameterMap, RmsNorm, SwiGlu } from "./mod.ts";
 * const rng = new Rng(0), x = randn([2, 5, 16], { rng }); // [B, T, d]
 * const norm = new RmsNorm({ dim: 16 }), mlp = new SwiGlu({ dModel: 16, hidden: 32 }, rng);
 * const y = mlp.forward(norm.forward(x)); // [2, 5, 16]
 * const names = parameterMap({ "model.layers.0.mlp": mlp }); // "model.layers.0.mlp.gate_proj.weight", ...
 * ```
 *
 * @module
 */

export * from "./module.ts";
export * from "./linear.ts";
export * from "./norm.ts";
export * from "./rope.ts";
export * from "./ffn.ts";
export * from "./attention.ts";
export * from "./mla.ts";
export * from "./moe.ts";
export * from "./mtp.ts";
export * from "./steps.ts";
