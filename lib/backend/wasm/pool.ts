/**
 * Worker threads for the wasm backend: each instantiates the kernel module on the shared memory
 * and waits on a futex word; the main thread writes a job into the control block, wakes them,
 * runs its own share and blocks (`Atomics.wait`) until all are done. Ops therefore stay
 * synchronous, as the `Backend` interface requires.
 *
 * Control block (Int32 words): [0] job sequence, [1] done count, [2] quit flag, [3..] job fields.
 *
 * @module
 */

import { type GemmJob, gemmPart, JOB_FIELDS } from "./gemm.ts";
import type { GemmExports } from "./kernels.ts";

const SEQ = 0, DONE = 1, QUIT = 2, FIELDS = 3;

/** Bytes of the control block. */
export const CONTROL_BYTES = (FIELDS + JOB_FIELDS.length) * 4;

/** Message that starts a worker. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  index: number;
  threads: number;
}

/** The main thread's side of the pool. */
export class ThreadPool {
  readonly threads: number;
  #workers: Worker[];
  #ctl: Int32Array;
  #memory: WebAssembly.Memory;
  #ex: GemmExports;

  constructor(
    workers: Worker[],
    memory: WebAssembly.Memory,
    control: number,
    ex: GemmExports,
  ) {
    this.#workers = workers;
    this.threads = workers.length + 1;
    this.#memory = memory;
    this.#ctl = new Int32Array(memory.buffer, control, FIELDS + JOB_FIELDS.length);
    this.#ex = ex;
  }

  /** Start `threads − 1` workers (the main thread is the last one). */
  static async create(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    control: number,
    ex: GemmExports,
    threads: number,
  ): Promise<ThreadPool> {
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 1; i < threads; i++) {
      const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      ready.push(
        new Promise((resolve, reject) => {
          w.onmessage = () => resolve();
          w.onerror = (e) => {
            e.preventDefault();
            reject(new Error(`Cannot start a wasm worker thread: ${e.message}`));
          };
        }),
      );
      const init: WorkerInit = { module, memory, control, index: i, threads };
      w.postMessage(init);
      workers.push(w);
    }
    await Promise.all(ready);
    for (const w of workers) w.onmessage = null;
    return new ThreadPool(workers, memory, control, ex);
  }

  /** Run `job` on every thread and return when all are done. */
  run(job: GemmJob, threads = this.threads): void {
    if (threads <= 1 || this.#workers.length === 0) {
      gemmPart(this.#ex, this.#memory, job, 0, 1);
      return;
    }
    const ctl = this.#ctl;
    JOB_FIELDS.forEach((f, i) => (ctl[FIELDS + i] = job[f] | 0));
    Atomics.store(ctl, DONE, 0);
    Atomics.add(ctl, SEQ, 1);
    Atomics.notify(ctl, SEQ);
    gemmPart(this.#ex, this.#memory, job, 0, this.threads);
    let done = Atomics.load(ctl, DONE);
    while (done < this.#workers.length) {
      Atomics.wait(ctl, DONE, done);
      done = Atomics.load(ctl, DONE);
    }
  }

  /** Stop the workers. */
  close(): void {
    Atomics.store(this.#ctl, QUIT, 1);
    Atomics.add(this.#ctl, SEQ, 1);
    Atomics.notify(this.#ctl, SEQ);
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }
}

/** The worker loop (called from worker.ts). */
export function workerLoop(init: WorkerInit, ex: GemmExports): void {
  const ctl = new Int32Array(init.memory.buffer, init.control, FIELDS + JOB_FIELDS.length);
  let seen = Atomics.load(ctl, SEQ);
  while (true) {
    Atomics.wait(ctl, SEQ, seen);
    seen = Atomics.load(ctl, SEQ);
    if (Atomics.load(ctl, QUIT) !== 0) return;
    const u = new Uint32Array(init.memory.buffer, init.control, FIELDS + JOB_FIELDS.length);
    const job = Object.fromEntries(JOB_FIELDS.map((f, i) => [f, u[FIELDS + i]])) as GemmJob;
    gemmPart(ex, init.memory, job, init.index, init.threads);
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}
