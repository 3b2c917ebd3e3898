/**
 * Worker threads for the wasm backend: each instantiates the kernel module on the shared memory
 * and waits on a futex word; the main thread writes a job into the control block, wakes them,
 * runs its own share and blocks (`Atomics.wait`) until all are done. Ops therefore stay
 * synchronous, as the `Backend` interface requires.
 *
 * Two kinds of job: a SGEMM (`gemm.ts` splits it), and a "split" job — one kernel export called
 * on every thread with its own contiguous range of `count` units (elements, rows or outer
 * slices): thread `t` gets `[c0, c1)`, adds `c0 · steps[i]` to each byte-address argument and
 * passes `c1 − c0` as the count argument. Every elementwise, reduction and row kernel has that
 * shape, so one job kind parallelises them all.
 *
 * Control block (Int32 words): [0] job sequence, [1] done count, [2] quit flag, [3] job kind,
 * [4..] job fields (gemm: `JOB_FIELDS`; split: fn, count, countArg, align, arity, args[12], steps[12]).
 *
 * @module
 */

import { type GemmJob, gemmPart, JOB_FIELDS } from "./gemm.ts";
import type { KernelExports } from "./kernels.ts";

const SEQ = 0, DONE = 1, QUIT = 2, KIND = 3, FIELDS = 4;
/** Arguments of a split job's kernel call, at most. */
export const MAX_ARGS = 12;
const SPLIT_WORDS = 5 + 2 * MAX_ARGS;
const ARGS = FIELDS + 5, STEPS = ARGS + MAX_ARGS;

/** Bytes of the control block. */
export const CONTROL_BYTES = (FIELDS + Math.max(JOB_FIELDS.length, SPLIT_WORDS)) * 4;

/** One kernel call split by ranges of `count` units among threads (see the module doc). */
export interface SplitJob {
  /** Name of the kernel export; must be listed in {@linkcode SPLIT_KERNELS}. */
  fn: string;
  /** Units to split (elements, rows, outer slices). */
  count: number;
  /** Which argument receives the range length. */
  countArg: number;
  /** Ranges start at multiples of this many units (4 keeps element splits vector-aligned). */
  align: number;
  /** The kernel's arguments for the whole range. */
  args: number[];
  /** Per-argument bytes added per unit of range start (0 for arguments that stay). */
  steps: number[];
}

/** Message that starts a worker. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  index: number;
  threads: number;
  /** Kernel names a split job may call, indexed by the job's `fn` word. */
  kernels: string[];
  /**
   * The job sequence number when the worker was created. The worker waits for the sequence to
   * move past it, so a job posted before the worker reaches its loop is not missed.
   */
  seq: number;
}

/** Run thread `t`'s range of a split job. */
export function splitPart(ex: KernelExports, job: SplitJob, t: number, threads: number): void {
  const units = Math.ceil(job.count / job.align);
  const c0 = Math.min(job.count, Math.floor((units * t) / threads) * job.align);
  const c1 = Math.min(job.count, Math.floor((units * (t + 1)) / threads) * job.align);
  if (c1 <= c0) return;
  const args = job.args.map((a, i) => a + c0 * (job.steps[i] ?? 0));
  args[job.countArg] = c1 - c0;
  ex[job.fn](...args);
}

/** The main thread's side of the pool. */
export class ThreadPool {
  readonly threads: number;
  #workers: Worker[];
  #ctl: Int32Array;
  #memory: WebAssembly.Memory;
  #ex: KernelExports;
  #kernelIndex: Map<string, number>;

  constructor(
    workers: Worker[],
    memory: WebAssembly.Memory,
    control: number,
    ex: KernelExports,
    kernels: string[],
  ) {
    this.#workers = workers;
    this.threads = workers.length + 1;
    this.#memory = memory;
    this.#ctl = new Int32Array(memory.buffer, control, CONTROL_BYTES / 4);
    this.#ex = ex;
    this.#kernelIndex = new Map(kernels.map((k, i) => [k, i]));
  }

  /** Start `threads − 1` workers (the main thread is the last one). */
  static async create(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    control: number,
    ex: KernelExports,
    threads: number,
  ): Promise<ThreadPool> {
    const kernels = WebAssembly.Module.exports(module).map((e) => e.name);
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
      const seq = Atomics.load(new Int32Array(memory.buffer, control, 1), SEQ);
      const init: WorkerInit = { module, memory, control, index: i, threads, kernels, seq };
      w.postMessage(init);
      workers.push(w);
    }
    await Promise.all(ready);
    for (const w of workers) w.onmessage = null;
    return new ThreadPool(workers, memory, control, ex, kernels);
  }

  /** Run the SGEMM `job` on `threads` threads and return when all are done. */
  run(job: GemmJob, threads = this.threads): void {
    if (threads <= 1 || this.#workers.length === 0) {
      gemmPart(this.#ex, this.#memory, job, 0, 1);
      return;
    }
    const ctl = this.#ctl;
    ctl[KIND] = 0;
    JOB_FIELDS.forEach((f, i) => (ctl[FIELDS + i] = job[f] | 0));
    this.#start();
    gemmPart(this.#ex, this.#memory, job, 0, this.threads);
    this.#finish();
  }

  /** Run the split `job` on `threads` threads (1: a plain call on this thread). */
  split(job: SplitJob, threads = this.threads): void {
    if (threads <= 1 || this.#workers.length === 0) {
      splitPart(this.#ex, job, 0, 1);
      return;
    }
    const fn = this.#kernelIndex.get(job.fn);
    if (fn === undefined || job.args.length > MAX_ARGS) {
      throw new Error(`Cannot split kernel '${job.fn}' among threads: unknown or too many args`);
    }
    const ctl = this.#ctl;
    ctl[KIND] = 1;
    ctl[FIELDS] = fn;
    ctl[FIELDS + 1] = job.count;
    ctl[FIELDS + 2] = job.countArg;
    ctl[FIELDS + 3] = job.align;
    ctl[FIELDS + 4] = job.args.length;
    for (let i = 0; i < job.args.length; i++) {
      ctl[ARGS + i] = job.args[i];
      ctl[STEPS + i] = job.steps[i] ?? 0;
    }
    this.#start();
    splitPart(this.#ex, job, 0, this.threads);
    this.#finish();
  }

  #start(): void {
    Atomics.store(this.#ctl, DONE, 0);
    Atomics.add(this.#ctl, SEQ, 1);
    Atomics.notify(this.#ctl, SEQ);
  }

  #finish(): void {
    const ctl = this.#ctl;
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

function readSplit(ctl: Int32Array, kernels: string[]): SplitJob {
  const arity = ctl[FIELDS + 4];
  const args: number[] = [], steps: number[] = [];
  for (let i = 0; i < arity; i++) {
    args.push(ctl[ARGS + i]);
    steps.push(ctl[STEPS + i]);
  }
  return {
    fn: kernels[ctl[FIELDS]],
    count: ctl[FIELDS + 1],
    countArg: ctl[FIELDS + 2],
    align: ctl[FIELDS + 3],
    args,
    steps,
  };
}

/** The worker loop (called from worker.ts). */
export function workerLoop(init: WorkerInit, ex: KernelExports): void {
  const ctl = new Int32Array(init.memory.buffer, init.control, CONTROL_BYTES / 4);
  let seen = init.seq;
  while (true) {
    Atomics.wait(ctl, SEQ, seen);
    seen = Atomics.load(ctl, SEQ);
    if (Atomics.load(ctl, QUIT) !== 0) return;
    if (ctl[KIND] === 0) {
      const u = new Uint32Array(init.memory.buffer, init.control, CONTROL_BYTES / 4);
      const job = Object.fromEntries(JOB_FIELDS.map((f, i) => [f, u[FIELDS + i]])) as GemmJob;
      gemmPart(ex, init.memory, job, init.index, init.threads);
    } else {
      splitPart(ex, readSplit(ctl, init.kernels), init.index, init.threads);
    }
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}
