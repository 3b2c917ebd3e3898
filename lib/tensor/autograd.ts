/**
 * The define-by-run tape: grad mode, graph nodes, and how ops record themselves.
 *
 * An op that produces `out` from `inputs` calls `record(out, name, inputs, backward)`. When grad
 * mode is on and any input requires grad, `out` gets a node holding the inputs and a closure
 * mapping `dL/dout` to `dL/dinput` for each input (`null` for inputs that take no gradient).
 * `Tensor.backward()` walks these nodes in reverse topological order. Backward closures run
 * with grad mode off, so the tape never records its own gradient computation.
 *
 * @module
 */

import type { Tensor } from "./tensor.ts";

/** How an op maps the gradient of its output to the gradients of its inputs. */
export type BackwardFn = (dy: Tensor) => (Tensor | null)[];

/** A node of the graph: the op that produced a tensor. */
export interface Node {
  /** The op's name, used in error messages. */
  readonly op: string;
  /** The op's inputs, in the order `backward` returns their gradients. */
  readonly inputs: readonly Tensor[];
  /** Gradient rule; throws for non-differentiable ops. */
  readonly backward: BackwardFn;
}

let gradEnabled = true;

/** Whether ops currently record the graph. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Run `fn` without recording the graph (inference, optimizer updates).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { mul, noGrad, tensor } from "./mod.ts";
 * const w = tensor([1, 2], { requiresGrad: true });
 * strictEqual(noGrad(() => mul(w, w)).requiresGrad, false);
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Attach a graph node to `out` if grad mode is on and an input requires grad; returns `out`. */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: BackwardFn,
): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/**
 * Mark `out` as produced by a non-differentiable op: gradient may flow around it (other inputs
 * of later ops), but a gradient that reaches it is an error naming the op.
 */
export function recordNonDifferentiable(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
): Tensor {
  return record(out, op, inputs, () => {
    throw new Error(
      `Cannot backpropagate through '${op}': it is not differentiable; ` +
        `detach() its input or compute it under noGrad()`,
    );
  });
}
