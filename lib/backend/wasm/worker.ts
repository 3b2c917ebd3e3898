/**
 * Entry point of a wasm-backend worker thread: instantiate the kernels on the shared memory,
 * report ready, then serve jobs forever (see `pool.ts`).
 *
 * @module
 */

import type { KernelExports } from "./kernels.ts";
import { type WorkerInit, workerLoop } from "./pool.ts";

/** The worker global scope, typed for what this file uses. */
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<WorkerInit>) => void) | null;
  postMessage(message: string): void;
};

scope.onmessage = (e) => {
  const init = e.data;
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  scope.postMessage("ready");
  // Leave the event loop turn so "ready" is delivered, then block in the job loop.
  setTimeout(() => workerLoop(init, instance.exports as unknown as KernelExports), 0);
};
