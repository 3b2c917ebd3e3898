/**
 * Shared WGSL snippets: element types per dtype, the flat-index helper for 1-D/2-D dispatches,
 * the strided-offset helper, and numeric helpers (stable sigmoid, erf, pow) whose definitions
 * follow the cpu reference backend (`lib/backend/cpu/elementwise.ts`).
 *
 * Every kernel reads its integer parameters from `params: array<u32>` at binding 0 (a storage
 * buffer, so arrays need no 16-byte padding), writes binding 1 and reads bindings 2, 3, ….
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

/** Declarations of `params`, the output and the inputs. */
export function bindingsWgsl(out: DType, inputs: readonly DType[]): string {
  const lines = [
    "@group(0) @binding(0) var<storage, read> params: array<u32>; // integer parameters",
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
 * is at `params[SHAPE..]`, strides at `params[base..]` and offset at `params[base + MAX_RANK]`.
 * With `rank` the code is unrolled for that rank (part of the kernel's cache key then); without
 * it, it loops over the rank at `params[rankAt]`.
 */
export function stridedWgsl(shapeAt: number, rankAt: number, rank?: number): string {
  if (rank !== undefined) {
    // Unrolled for a known rank: no loop, and the first dim needs no modulo.
    const dims = Array.from({ length: rank }, (_, d) => rank - 1 - d).map((d) =>
      d === 0
        ? `off += rem * params[base + 0u];`
        : `{ let dim = params[${
          shapeAt + d
        }u]; let q = rem / dim; off += (rem - q * dim) * params[base + ${d}u]; rem = q; }`
    );
    return /* wgsl */ `
fn stridedOffset(flat: u32, base: u32) -> u32 {
  var rem = flat;
  var off = params[base + ${MAX_RANK}u];
  ${dims.join("\n  ")}
  return off;
}`;
  }
  return /* wgsl */ `
fn stridedOffset(flat: u32, base: u32) -> u32 {
  var rem = flat;
  var off = params[base + ${MAX_RANK}u];
  let rank = params[${rankAt}u];
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let dim = params[${shapeAt}u + u32(d)];
    off += (rem % dim) * params[base + u32(d)];
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
