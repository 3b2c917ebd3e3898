/**
 * Optimizers: SGD and AdamW (decoupled weight decay, Loshchilov & Hutter, arXiv:1711.05101).
 *
 * AdamW, per parameter `θ` with gradient `g` at step `t`:
 * `m = β1 m + (1 − β1) g`, `v = β2 v + (1 − β2) g²`, `m̂ = m / (1 − β1ᵗ)`, `v̂ = v / (1 − β2ᵗ)`,
 * `θ ← θ − lr (m̂ / (√v̂ + ε) + λ θ)` — the decay is applied to `θ` directly, not through `g`.
 *
 * @module
 */

import { add, div, mul, noGrad, sqrt, sub, type Tensor, tidy, zerosLike } from "../tensor/mod.ts";

/** A parameter group: tensors sharing a weight-decay setting. */
export interface ParamGroup {
  params: Tensor[];
  /** Overrides the optimizer's `weightDecay` (use 0 for norms, biases, embeddings). */
  weightDecay?: number;
}

function groupsOf(params: Tensor[] | ParamGroup[]): ParamGroup[] {
  if (params.length === 0) return [];
  return "params" in params[0] ? params as ParamGroup[] : [{ params: params as Tensor[] }];
}

function checkParams(groups: ParamGroup[], who: string): void {
  for (const g of groups) {
    for (const p of g.params) {
      if (!p.requiresGrad || p.node !== null) {
        throw new Error(
          `Cannot optimize ${p} with ${who}: parameters must be leaves with requiresGrad`,
        );
      }
    }
  }
}

/** Dispose and clear the gradients of `params`. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}

/** Options for {@linkcode AdamW}. */
export interface AdamWOptions {
  /** Learning rate. @default {1e-3} */
  lr?: number;
  /** @default {[0.9, 0.999]} */
  betas?: [number, number];
  /** @default {1e-8} */
  eps?: number;
  /** Decoupled weight decay λ. @default {0.01} */
  weightDecay?: number;
}

/**
 * AdamW with bias correction and decoupled weight decay.
 *
 * @example One step on f(w) = w² moves w toward 0 by about lr
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { mul, sum, tensor } from "../tensor/mod.ts";
 * import { AdamW } from "./optim.ts";
 * const w = tensor([1], { requiresGrad: true });
 * const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
 * sum(mul(w, w)).backward();
 * opt.step();
 * ok(Math.abs(w.itemSync() - 0.9) < 1e-6);
 * ```
 */
export class AdamW {
  readonly groups: ParamGroup[];
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of steps taken. */
  t = 0;
  #m = new Map<Tensor, Tensor>();
  #v = new Map<Tensor, Tensor>();

  constructor(params: Tensor[] | ParamGroup[], options: AdamWOptions = {}) {
    this.groups = groupsOf(params);
    checkParams(this.groups, "AdamW");
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    for (const [name, v] of Object.entries({ lr: this.lr, eps: this.eps })) {
      if (!(v >= 0 && Number.isFinite(v))) {
        throw new Error(`Cannot create AdamW with ${name} ${v}: expected a finite number ≥ 0`);
      }
    }
  }

  /** Every parameter, in group order. */
  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** First and second moments of `p` (created on first use). */
  moments(p: Tensor): { m: Tensor; v: Tensor } {
    let m = this.#m.get(p), v = this.#v.get(p);
    if (m === undefined || v === undefined) {
      m = zerosLike(p).keep();
      v = zerosLike(p).keep();
      this.#m.set(p, m);
      this.#v.set(p, v);
    }
    return { m, v };
  }

  /** Replace the moments of `p` (restoring a checkpoint); shapes must match `p`. */
  setMoments(p: Tensor, m: Tensor, v: Tensor): void {
    const current = this.moments(p);
    current.m.assign(m);
    current.v.assign(v);
  }

  /** Apply one update to every parameter that has a gradient. */
  step(): void {
    this.t++;
    const [b1, b2] = this.betas;
    const c1 = 1 - b1 ** this.t, c2 = 1 - b2 ** this.t;
    noGrad(() => {
      for (const group of this.groups) {
        const wd = group.weightDecay ?? this.weightDecay;
        for (const p of group.params) {
          const g = p.grad;
          if (g === null) continue;
          const { m, v } = this.moments(p);
          // Fast path (#4): one fused kernel per parameter where the backend has one and the
          // parameter and moments are whole contiguous storages (the gradient may be any view,
          // e.g. the transposed weight gradients of linear layers); else the composed ops.
          const fused = p.backend.adamwUpdate;
          if (fused !== undefined && fusable(p, g, [m, v])) {
            const h = { lr: this.lr, beta1: b1, beta2: b2, eps: this.eps, weightDecay: wd, c1, c2 };
            fused.call(p.backend, p.storage, g.view, m.storage, v.storage, h);
            continue;
          }
          tidy(() => {
            m.assign(add(mul(m, b1), mul(g, 1 - b1)));
            v.assign(add(mul(v, b2), mul(mul(g, g), 1 - b2)));
            const update = div(div(m, c1), add(sqrt(div(v, c2)), this.eps));
            const decayed = wd === 0 ? p : mul(p, 1 - this.lr * wd);
            p.assign(sub(decayed, mul(update, this.lr)));
          });
        }
      }
    });
  }

  /** Clear every parameter's gradient. */
  zeroGrad(): void {
    zeroGrad(this.params);
  }
}

/**
 * Whether `p`, its gradient `g` and its moments can take the fused AdamW update: one backend,
 * f32, one shape, distinct storages, and `p` and the moments each the whole of its own
 * contiguous storage from offset 0 (`g` may be strided).
 */
function fusable(p: Tensor, g: Tensor, moments: Tensor[]): boolean {
  const all = [p, g, ...moments];
  const same = all.every((t) =>
    t.backend === p.backend && t.dtype === "f32" && t.shape.join() === p.shape.join()
  );
  const flat = [p, ...moments].every((t) =>
    t.isContiguous && t.offset === 0 && t.storage.size === t.size
  );
  return same && flat && new Set(all.map((t) => t.storage)).size === all.length;
}

/** Parameter names that get no weight decay: norms, biases, embeddings (nanoGPT's rule). */
export function isNoDecay(name: string): boolean {
  return /(norm\.weight|\.bias|embed_tokens\.weight|e_score_correction_bias)$/.test(name);
}

/**
 * Split named trainable parameters into a decayed group and a no-decay group
 * ({@linkcode isNoDecay}); parameters without `requiresGrad` (buffers) are left out.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { ones } from "../tensor/mod.ts";
 * import { decayGroups } from "./optim.ts";
 * const p = (n: number) => ones([n], { requiresGrad: true });
 * const groups = decayGroups(new Map([["a.weight", p(2)], ["input_layernorm.weight", p(2)]]), 0.1);
 * deepStrictEqual(groups.map((g) => [g.params.length, g.weightDecay]), [[1, 0.1], [1, 0]]);
 * ```
 */
export function decayGroups(named: Map<string, Tensor>, weightDecay: number): ParamGroup[] {
  const decay: Tensor[] = [], noDecay: Tensor[] = [];
  for (const [name, p] of named) {
    if (!p.requiresGrad) continue;
    (isNoDecay(name) ? noDecay : decay).push(p);
  }
  return [{ params: decay, weightDecay }, { params: noDecay, weightDecay: 0 }];
}

/** Plain SGD: `θ ← θ − lr g`. */
export function sgdStep(params: Iterable<Tensor>, lr: number): void {
  noGrad(() => {
    for (const p of params) {
      const g = p.grad;
      if (g !== null) tidy(() => p.assign(sub(p, mul(g, lr))));
    }
  });
}
