/**
 * `KernelInfo` (what a launcher returns: plain data) and the pipeline cache keyed by it.
 *
 * A kernel's `key` covers everything its WGSL depends on (variant, dtypes, flags), so each
 * distinct shader is compiled once per device; sizes travel in `params`, not in the code. The
 * WGSL is compiled as the launcher wrote it: kernels declare their parameters with
 * `paramsWgsl()` (`_wgsl.ts`).
 *
 * @module
 */

import type { DType } from "../backend.ts";
import { grid, WORKGROUP } from "./_wgsl.ts";

/** A kernel launch described as data. */
export interface KernelInfo {
  /** Cache key: identifies `code` exactly. */
  key: string;
  /** The WGSL module (entry point `main`). */
  code: string;
  /** Invocations per workgroup. */
  workgroupSize: number;
  /** Workgroups in x and y. */
  dispatch: [number, number];
  /** Integer parameters bound at binding 0 (`paramsWgsl()`: at most `4 · PARAM_VEC4S` words). */
  params: Uint32Array;
  /** dtype of the output bound at binding 1. */
  outDType: DType;
  /** Number of output elements (0 skips the dispatch). */
  n: number;
}

/** A {@linkcode KernelInfo} for `threads` invocations of a 1-D kernel. */
export function kernelInfo(
  key: string,
  code: string,
  threads: number,
  params: ArrayLike<number>,
  outDType: DType,
): KernelInfo {
  return {
    key,
    code,
    workgroupSize: WORKGROUP,
    dispatch: grid(threads),
    params: Uint32Array.from(params),
    outDType,
    n: threads,
  };
}

/** Compiled compute pipelines by kernel key. */
export class PipelineCache {
  #device: GPUDevice;
  #pipelines = new Map<string, GPUComputePipeline>();

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** The pipeline for `kernel`, compiling it on first use. */
  get(kernel: KernelInfo): GPUComputePipeline {
    let pipeline = this.#pipelines.get(kernel.key);
    if (pipeline === undefined) {
      const module = this.#device.createShaderModule({
        code: kernel.code,
        label: kernel.key,
      });
      pipeline = this.#device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
        label: kernel.key,
      });
      this.#pipelines.set(kernel.key, pipeline);
    }
    return pipeline;
  }

  /** Number of compiled pipelines. */
  get size(): number {
    return this.#pipelines.size;
  }
}
