/**
 * The parameter convention every `lib/nn` module follows: a module is a class whose
 * `parameters()` returns its trainable tensors under names relative to the module, in the
 * DeepSeek-V3 Hugging Face spelling (`weight`, `bias`, `gate_proj.weight`, ...). A model nests
 * modules with {@linkcode parameterMap}, which prefixes child names, so the full names read like
 * the checkpoint: `model.layers.0.mlp.gate_proj.weight`.
 *
 * Weights are created from a seeded `Rng` passed to the constructor: same seed, same weights.
 *
 * @module
 */

import { randn, type Rng, type Shape, type Tensor } from "../tensor/mod.ts";

/** A container of named trainable tensors. */
export interface Module {
  /** Trainable tensors by name relative to this module, in a stable order. */
  parameters(): Map<string, Tensor>;
}

/** A named part of a module: a tensor, a child module, or nothing (an absent optional bias). */
export type ModuleEntry = Tensor | Module | null | undefined;

function isModule(entry: Tensor | Module): entry is Module {
  return typeof (entry as Module).parameters === "function";
}

/**
 * Flatten named tensors and child modules into one parameter map; a child's names get the
 * prefix `name.`; `null`/`undefined` entries are skipped.
 *
 * @param entries Parts by name, in the order the map should list them.
 * @returns The parameter map.
 *
 * @example Nesting modules gives Hugging Face style names
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { Linear, parameterMap } from "./mod.ts";
 * const proj = new Linear({ inFeatures: 4, outFeatures: 2 }, new Rng(0));
 * const names = [...parameterMap({ "model.layers.0.mlp.down_proj": proj }).keys()];
 * deepStrictEqual(names, ["model.layers.0.mlp.down_proj.weight"]);
 * ```
 */
export function parameterMap(entries: Record<string, ModuleEntry>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(entries)) {
    if (entry === null || entry === undefined) continue;
    if (!isModule(entry)) {
      out.set(name, entry);
      continue;
    }
    for (const [child, t] of entry.parameters()) out.set(`${name}.${child}`, t);
  }
  return out;
}

/**
 * Total number of scalar parameters of a module.
 *
 * @param module The module.
 * @returns `Σ size` over `module.parameters()`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { countParameters, Linear } from "./mod.ts";
 * strictEqual(countParameters(new Linear({ inFeatures: 4, outFeatures: 2, bias: true }, new Rng(0))), 10);
 * ```
 */
export function countParameters(module: Module): number {
  let n = 0;
  for (const t of module.parameters().values()) n += t.size;
  return n;
}

/**
 * A trainable tensor of normal samples `N(0, std²)` drawn from `rng`.
 *
 * @param shape Its shape.
 * @param options `rng` (required) and `std`.
 * @returns A leaf tensor with `requiresGrad`.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Rng } from "../tensor/mod.ts";
 * import { normalParameter } from "./mod.ts";
 * strictEqual(normalParameter([3, 2], { rng: new Rng(1), std: 0.02 }).requiresGrad, true);
 * ```
 */
export function normalParameter(shape: Shape, options: { rng: Rng; std: number }): Tensor {
  return randn(shape, { rng: options.rng, std: options.std, requiresGrad: true });
}
