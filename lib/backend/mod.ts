/**
 * Backends behind one interface, and the registry that picks one.
 *
 * The cpu reference backend is always available. Other backends register a loader here and are
 * brought in with `await import()` only when asked for, so `lib/tensor` never depends on them.
 *
 * @example Choose a backend for new tensors
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { CpuBackend, getBackend, withBackend } from "./mod.ts";
 * const f64 = new CpuBackend({ float64: true });
 * withBackend(f64, () => strictEqual(getBackend(), f64));
 * strictEqual(getBackend().name, "cpu");
 * ```
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { CpuBackend } from "./cpu.ts";

export type * from "./backend.ts";
export { COMPARISON_OPS } from "./backend.ts";
export { CpuBackend, type CpuBackendOptions, CpuStorage } from "./cpu.ts";

/** Names accepted by {@linkcode loadBackend}. */
export type BackendName = "cpu" | "wasm" | "webgpu";

/** Names accepted by {@linkcode chooseBackend}: a backend, or `auto`. */
export type BackendChoiceName = BackendName | "auto";

/** Every accepted backend choice, for validation messages. */
export const BACKEND_CHOICES: readonly BackendChoiceName[] = ["auto", "cpu", "wasm", "webgpu"];

/** The backends this build knows how to load; the others are added by their issues. */
const LOADERS: Partial<Record<BackendName, () => Promise<Backend>>> = {
  cpu: () => Promise.resolve(new CpuBackend()),
  webgpu: () => import("./webgpu.ts").then((m) => m.createWebGpuBackend()),
  wasm: () => import("./wasm.ts").then((m) => m.createWasmBackend()),
};

let current: Backend = new CpuBackend();

/** The backend new tensors are created on. */
export function getBackend(): Backend {
  return current;
}

/** Make `backend` the default for new tensors. */
export function setBackend(backend: Backend): void {
  current = backend;
}

/** Run `fn` with `backend` as the default, restoring the previous one afterwards. */
export function withBackend<T>(backend: Backend, fn: () => T): T {
  const previous = current;
  current = backend;
  try {
    return fn();
  } finally {
    current = previous;
  }
}

/** Create a backend by name; fails with the list of available names for an unknown one. */
export async function loadBackend(name: BackendName): Promise<Backend> {
  const loader = LOADERS[name];
  if (loader === undefined) {
    const known = Object.keys(LOADERS).map((k) => `'${k}'`).join(", ");
    throw new Error(`Cannot load backend '${name}': available backends are ${known}`);
  }
  return await loader();
}

/** A chosen backend and why it was chosen (printed at the start of a run, stored with it). */
export interface BackendChoice {
  backend: Backend;
  reason: string;
}

/**
 * Resolve a backend choice. `auto`: WebGPU when the adapter is a real GPU; the wasm backend
 * when there is no adapter or it is a CPU fallback (Mesa's llvmpipe/lavapipe), where
 * WebAssembly SIMD is the faster path; the cpu reference if neither can start.
 */
export async function chooseBackend(name: BackendChoiceName = "auto"): Promise<BackendChoice> {
  if (!BACKEND_CHOICES.includes(name)) {
    throw new Error(
      `Unknown backend '${name}': expected one of ${
        BACKEND_CHOICES.map((b) => `'${b}'`).join(", ")
      }`,
    );
  }
  if (name !== "auto") return { backend: await loadBackend(name), reason: `requested '${name}'` };
  let why: string;
  try {
    const { acquireGpu } = await import("./webgpu/device.ts");
    const ctx = await acquireGpu();
    if (!ctx.isCpuFallback) {
      const { WebGpuBackend } = await import("./webgpu.ts");
      return { backend: new WebGpuBackend(ctx), reason: `GPU adapter '${ctx.description}'` };
    }
    ctx.device.destroy();
    why = `the WebGPU adapter '${ctx.description}' is a CPU fallback`;
  } catch {
    why = "no WebGPU adapter";
  }
  try {
    return {
      backend: await loadBackend("wasm"),
      reason: `${why}: WebAssembly SIMD is faster on CPUs`,
    };
  } catch (e) {
    return {
      backend: new CpuBackend(),
      reason: `${why}, and the wasm backend cannot start (${(e as Error).message})`,
    };
  }
}
