/**
 * `KernelInfo` (what a launcher returns: plain data) and the pipeline cache keyed by it.
 *
 * A kernel's `key` covers everything its WGSL depends on (variant, dtypes, flags), so each
 * distinct shader is compiled once per device; sizes travel in `params`, not in the code.
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
  /** Integer parameters bound at binding 0. */
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

/** The storage declaration of `params` every kernel's WGSL is written with. */
const STORAGE_PARAMS = "@group(0) @binding(0) var<storage, read> params: array<u32>;";

/** vec4 words of the uniform `params` block: at most 4 × this many integer parameters. */
export const PARAM_VEC4S = 16;

/**
 * Rewrite a kernel that declares `params` as a storage `array<u32>` to read it from a uniform
 * buffer of {@linkcode PARAM_VEC4S} `vec4<u32>` instead: `params[e]` becomes
 * `params[(e) / 4u][(e) % 4u]` (nested accesses included). Why: on Mesa's CPU drivers every
 * storage-buffer load is a loop over the SIMD lanes, while a uniform load at a uniform offset
 * is one scalar load and a broadcast — and kernels read their shapes, strides and offsets from
 * `params` for every element. Kernels keep the simpler storage spelling (no 16-byte padding
 * rules in their source); code without that declaration is returned unchanged.
 *
 * @param code WGSL with `params` declared as {@linkcode STORAGE_PARAMS}.
 * @returns WGSL reading `params` from a uniform buffer.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { uniformParamsWgsl } from "./cache.ts";
 * const code = "@group(0) @binding(0) var<storage, read> params: array<u32>;\n" +
 *   "let n = params[params[1] + 2u];";
 * equal(
 *   uniformParamsWgsl(code).split("\n")[1],
 *   "let n = params[(params[(1) / 4u][(1) % 4u] + 2u) / 4u][(params[(1) / 4u][(1) % 4u] + 2u) % 4u];",
 * );
 * ```
 */
export function uniformParamsWgsl(code: string): string {
  const at = code.indexOf(STORAGE_PARAMS);
  if (at < 0) return code;
  const head = code.slice(0, at) +
    `@group(0) @binding(0) var<uniform> params: array<vec4<u32>, ${PARAM_VEC4S}>;`;
  return head + rewriteParams(code.slice(at + STORAGE_PARAMS.length));
}

/** Replace every `params[e]` in `code` (after the declaration) by its uniform spelling. */
function rewriteParams(code: string): string {
  let out = "";
  let i = 0;
  for (;;) {
    const j = code.indexOf("params[", i);
    if (j < 0) return out + code.slice(i);
    const before = j > 0 ? code[j - 1] : " ";
    if (/[A-Za-z0-9_]/.test(before)) { // part of a longer name
      out += code.slice(i, j + 7);
      i = j + 7;
      continue;
    }
    let depth = 1, k = j + 7;
    for (; k < code.length && depth > 0; k++) {
      if (code[k] === "[") depth++;
      else if (code[k] === "]") depth--;
    }
    if (depth !== 0) throw new Error(`Cannot rewrite params access: unbalanced '[' at ${j}`);
    const inner = rewriteParams(code.slice(j + 7, k - 1));
    out += code.slice(i, j) + `params[(${inner}) / 4u][(${inner}) % 4u]`;
    i = k;
  }
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
        code: uniformParamsWgsl(kernel.code),
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
