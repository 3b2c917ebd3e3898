/**
 * Shared WGSL snippets: element types per dtype, the flat-index helper for 1-D/2-D dispatches,
 * the strided-offset helper, and numeric helpers (stable sigmoid, erf, pow) whose definitions
 * follow the cpu reference backend (`lib/backend/cpu/elementwise.ts`).
 *
 * Every kernel declares its integer parameters with {@linkcode paramsWgsl} (a uniform block at
 * binding 0, read through `param(i)`), writes binding 1 and reads bindings 2, 3, ….
 *
 * @module
 */

import type { DType } from "../backend.ts";

/** Threads per workgroup for 1-D kernels. */
export const WORKGROUP = 256;
/** Highest rank the strided elementwise kernels handle. */
export const MAX_RANK = 8;

/** WGSL element type used to store `dtype` (u8 values are kept one per u32 word). */
export function wgslType(dtype: DType): string {
  switch (dtype) {
    case "f32":
      return "f32";
    case "i32":
      return "i32";
    case "u8":
      return "u32";
    default:
      throw new Error(`Cannot map unknown dtype '${dtype satisfies never}' to WGSL`);
  }
}

/** vec4 words of the uniform `params` block: at most 4 × this many integer parameters. */
export const PARAM_VEC4S = 16;

/**
 * The declaration of a kernel's integer parameters: a uniform block of {@linkcode PARAM_VEC4S}
 * `vec4<u32>` at binding 0 and `fn param(i: u32) -> u32`, which reads word `i` of it. Kernels
 * read their shapes, strides and offsets with `param(i)` and never touch `params` directly, so
 * they need no 16-byte padding rules. Why a uniform block: on Mesa's CPU drivers every
 * storage-buffer load is a loop over the SIMD lanes, while a uniform load at a uniform offset is
 * one scalar load and a broadcast, and kernels read `params` for every element.
 *
 * @param layout What the words hold, for the comment on the binding (e.g. `"[n, cols]"`).
 * @returns WGSL declaring `params` and `param()`.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { paramsWgsl } from "./_wgsl.ts";
 * const code = paramsWgsl("[n, cols]");
 * ok(code.startsWith("@group(0) @binding(0) var<uniform> params: array<vec4<u32>, 16>; // [n, cols]"));
 * ok(code.includes("fn param(i: u32) -> u32 { return params[i / 4u][i % 4u]; }"));
 * ```
 */
export function paramsWgsl(layout: string): string {
  return `@group(0) @binding(0) var<uniform> params: array<vec4<u32>, ${PARAM_VEC4S}>; // ${layout}
fn param(i: u32) -> u32 { return params[i / 4u][i % 4u]; }`;
}

/** Declarations of `params` ({@linkcode paramsWgsl}), the output and the inputs. */
export function bindingsWgsl(out: DType, inputs: readonly DType[]): string {
  const lines = [
    paramsWgsl("integer parameters"),
    `@group(0) @binding(1) var<storage, read_write> out: array<${wgslType(out)}>; // result`,
  ];
  inputs.forEach((d, i) => {
    lines.push(
      `@group(0) @binding(${i + 2}) var<storage, read> in${i}: array<${
        wgslType(d)
      }>; // input ${i}`,
    );
  });
  return lines.join("\n");
}

/** The entry-point header: `let i = flat thread index;` over a 2-D grid of workgroups. */
export const ENTRY_WGSL = /* wgsl */ `
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WORKGROUP}u;`;

/** Workgroup grid for `n` threads, `size` per workgroup: x up to 65535 workgroups, the rest in y. */
export function grid(n: number, size: number = WORKGROUP): [number, number] {
  const groups = Math.ceil(n / size);
  if (groups <= 65535) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/**
 * `fn stridedOffset(i, base)`: storage offset of row-major element `i` for the view whose shape
 * is at `param(shapeAt..)`, strides at `param(base..)` and offset at `param(base + MAX_RANK)`.
 * With `rank` the code is unrolled for that rank (part of the kernel's cache key then); without
 * it, it loops over the rank at `param(rankAt)`.
 */
export function stridedWgsl(shapeAt: number, rankAt: number, rank?: number): string {
  if (rank !== undefined) {
    // Unrolled for a known rank: no loop, and the first dim needs no modulo.
    const dims = Array.from({ length: rank }, (_, d) => rank - 1 - d).map((d) =>
      d === 0
        ? `off += rem * param(base + 0u);`
        : `{ let dim = param(${
          shapeAt + d
        }u); let q = rem / dim; off += (rem - q * dim) * param(base + ${d}u); rem = q; }`
    );
    return /* wgsl */ `
fn stridedOffset(flat: u32, base: u32) -> u32 {
  var rem = flat;
  var off = param(base + ${MAX_RANK}u);
  ${dims.join("\n  ")}
  return off;
}`;
  }
  return /* wgsl */ `
fn stridedOffset(flat: u32, base: u32) -> u32 {
  var rem = flat;
  var off = param(base + ${MAX_RANK}u);
  let rank = param(${rankAt}u);
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let dim = param(${shapeAt}u + u32(d));
    off += (rem % dim) * param(base + u32(d));
    rem /= dim;
  }
  return off;
}`;
}

/** Numeric helpers matching the cpu reference definitions. */
export const MATH_WGSL = /* wgsl */ `
fn sigmoidf(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn tanhf(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
// erf with relative error < 1.2e-7 (Numerical Recipes erfcc), as the cpu backend.
fn erff(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
// pow with the sign rules of Math.pow for negative bases and integer exponents.
fn powf(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a == 0.0) { return select(bitcast<f32>(0x7f800000u), 0.0, b > 0.0); } // 0^-b = +inf
  if (a > 0.0) { return pow(a, b); }
  if (floor(b) != b) { return bitcast<f32>(0x7fc00000u); } // NaN
  let m = pow(-a, b);
  return select(m, -m, (abs(b) % 2.0) == 1.0);
}`;
