/**
 * Host reads inside a forward pass, on every backend. Routing tokens to MoE experts and sampling
 * tokens need tensor values on the host mid-way; cpu and wasm read synchronously (`dataSync`),
 * WebGPU only asynchronously (`await data()`). The code is written once, as a generator that
 * yields each tensor it must read and receives its values ({@linkcode HostSteps}); a driver runs
 * it synchronously ({@linkcode runSync}) or asynchronously ({@linkcode runAsync}).
 *
 * The async driver restores, for every synchronous segment, the context the caller started in:
 * the default backend, the FP8 mode and the gradient mode (they are module-level state that an
 * `await` would otherwise lose), and it collects intermediates like `tidy` when asked.
 *
 * @example The same steps, read synchronously and asynchronously
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { mul, type Tensor, tensor } from "../tensor/mod.ts";
 * import { type HostSteps, runAsync, runSync } from "./steps.ts";
 * function* doubledSum(x: Tensor): HostSteps<number> {
 *   const values = yield mul(x, 2); // the host needs these
 *   return Array.from(values).reduce((a, b) => a + b, 0);
 * }
 * strictEqual(runSync(doubledSum(tensor([1, 2, 3]))), 12);
 * strictEqual(await runAsync(doubledSum(tensor([1, 2, 3]))), 12);
 * ```
 *
 * @module
 */

import { getBackend, withBackend } from "../backend/mod.ts";
import { currentFp8, withFp8 } from "../fp8/linear.ts";
import { isGradEnabled, noGrad, type Tensor, TidyScope } from "../tensor/mod.ts";

/** The host values of a tensor (what `dataSync()` / `await data()` return). */
export type HostData = ArrayLike<number>;

/** A computation that yields the tensors it needs on the host and receives their values. */
export type HostSteps<R> = Generator<Tensor, R, HostData>;

/** Run `steps`, reading each yielded tensor synchronously (cpu and wasm backends). */
export function runSync<R>(steps: HostSteps<R>): R {
  let r = steps.next();
  while (!r.done) r = steps.next(r.value.dataSync());
  return r.value;
}

/** Options for {@linkcode runAsync}. */
export interface RunAsyncOptions {
  /** Dispose the intermediates the steps created, except those in the result (like `tidy`). */
  tidy?: boolean;
  /** Run every segment in this scope instead (the caller ends it). */
  scope?: TidyScope;
}

/**
 * Run `steps`, awaiting each yielded tensor's values (any backend, including WebGPU). Each
 * segment between reads runs with the backend, FP8 mode and gradient mode current at the call.
 */
export async function runAsync<R>(steps: HostSteps<R>, options: RunAsyncOptions = {}): Promise<R> {
  const backend = getBackend(), fp8 = currentFp8(), grad = isGradEnabled();
  const own = options.tidy && options.scope === undefined ? new TidyScope() : null;
  const scope = options.scope ?? own;
  const segment = <T>(fn: () => T): T => {
    const inner = () => withBackend(backend, () => withFp8(fp8, () => (grad ? fn() : noGrad(fn))));
    return scope ? scope.run(inner) : inner();
  };
  let r = segment(() => steps.next());
  while (!r.done) {
    const values = await r.value.data();
    r = segment(() => steps.next(values));
  }
  own?.end(r.value);
  return r.value;
}

/**
 * Run every segment of `steps` inside `wrap` (e.g. `noGrad`, `withFp8(spec, …)`, a
 * {@linkcode TidyScope}'s `run`) — the generator form of calling `wrap(() => …)` around code
 * that reads on the host.
 */
export function* wrapSteps<R>(wrap: <T>(fn: () => T) => T, steps: HostSteps<R>): HostSteps<R> {
  let r = wrap(() => steps.next());
  while (!r.done) {
    const values = yield r.value;
    r = wrap(() => steps.next(values));
  }
  return r.value;
}

/** {@linkcode wrapSteps} with a fresh {@linkcode TidyScope}: intermediates freed, result kept. */
export function* tidySteps<R>(steps: HostSteps<R>): HostSteps<R> {
  const scope = new TidyScope();
  const result = yield* wrapSteps((fn) => scope.run(fn), steps);
  scope.end(result);
  return result;
}
