/**
 * The `texture` matmul variant for CPU drivers: op(A) and op(B) are first packed into
 * `rgba32float` storage textures, then a register-blocked kernel reads them with `textureLoad`.
 *
 * Why textures: on Mesa's lavapipe/llvmpipe every storage-buffer load is compiled to a loop over
 * the SIMD lanes (a bounds check, a scalar load and an insert per lane and component), while a
 * storage-texture read is a vectorised fetch. Measured here (`/tmp`-style probe, 8 independent
 * loads per loop step, one run): a vec4 storage-buffer load ~1.9–2.2 ns per invocation, a
 * `texture_storage_2d<rgba32float, read>` load ~0.8 ns, a sampled-texture `textureLoad` ~1.7 ns,
 * a `mat4x4` buffer load 4× a vec4 one (no wider loads). Matmul cost on these drivers is load
 * cost, so the cheaper load lifts 1024³ from ~20 GFLOP/s (the `vec4` buffer kernel) to 50–65.
 * Block shapes measured at 1024³ (GFLOP/s without / with the packing passes, one noisy run
 * each): 8×8 45 / 44, 4×16 46 / 39, 8×16 59 / 53, 12×16 61 / 54, 16×16 65 / 59, 16×8 50 / 47,
 * 8×32 60 / 53, 16×32 67 / 54; workgroup sizes 16, 64 and 256 the same. 16×16 it is.
 *
 * Layout: texture A is `ceil(k / 4)` texels wide and `batchesA · m` high (texel `(q, b·m + i)`
 * holds `op(A)[b][i][4q … 4q+3]`), texture B is `ceil(n / 4)` wide and `batchesB · k` high
 * (texel `(q, b·k + p)` holds `op(B)[b][p][4q … 4q+3]`); a batch stride of 0 packs one matrix.
 * Elements past `k` or `n` are packed as zeros, so the kernel needs no K tail and its edge columns
 * are simply not written. The packing pass reads any layout (transposed or not) and costs one read
 * of each operand. It only applies where both textures fit the device's
 * `maxTextureDimension2D` ({@linkcode textureMatmulApplies}).
 *
 * @module
 */

import type { MatmulSpec } from "../../backend.ts";
import { grid, paramsWgsl } from "../_wgsl.ts";
import type { KernelInfo } from "../cache.ts";

/** Rows of C per invocation. */
const ROWS = 16;
/** vec4 columns of C per invocation (16 columns). */
const COLS_Q = 4;
/** Invocations per workgroup. */
const WG = 64;

/** Size of a packed operand texture: `[width in texels, height]`. */
export type TextureSize = [number, number];

/** The two textures of a texture matmul: A and B. */
export interface TextureMatmulSizes {
  a: TextureSize;
  b: TextureSize;
}

/**
 * Texture sizes for `spec`: A `[ceil(k/4), batchesA·m]`, B `[ceil(n/4), batchesB·k4]` with `k4`
 * the multiple of 4 at or above `k` (a batch stride of 0 packs one matrix).
 *
 * @param spec The matmul.
 * @returns The sizes of the two packed textures.
 */
export function textureMatmulSizes(spec: MatmulSpec): TextureMatmulSizes {
  const { a, b } = packLayouts(spec);
  const size = (l: PackLayout): TextureSize => [Math.ceil(l.cols / 4), l.batches * l.texRows];
  return { a: size(a), b: size(b) };
}

/**
 * Whether the texture kernel applies: a non-empty product whose packed operands fit textures of
 * side `maxDimension`.
 *
 * @param spec The matmul.
 * @param maxDimension The device's `maxTextureDimension2D`.
 * @returns `true` when both packed textures fit.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { textureMatmulApplies } from "./matmul_texture.ts";
 * const spec = { batch: 64, m: 128, n: 128, k: 64, transA: false, transB: true,
 *   offsetA: 0, offsetB: 0, strideA: 8192, strideB: 8192 };
 * equal(textureMatmulApplies(spec, 16384), true); // A 16 × 8192, B 32 × 4096
 * equal(textureMatmulApplies(spec, 8192), true);
 * equal(textureMatmulApplies(spec, 4096), false);
 * ```
 */
export function textureMatmulApplies(spec: MatmulSpec, maxDimension: number): boolean {
  if (spec.batch * spec.m * spec.n * spec.k === 0) return false;
  const { a, b } = textureMatmulSizes(spec);
  return Math.max(a[0], a[1], b[0], b[1]) <= maxDimension;
}

/**
 * Element layout of one packed operand: `rows × cols` per batch entry, element `(b, r, c)` at
 * `offset + b·stride + r·rowStep + c·colStep` in the source buffer, packed into `texRows ≥ rows`
 * texture rows per batch entry (the rows past `rows` zero).
 */
interface PackLayout {
  batches: number;
  texRows: number;
  rows: number;
  cols: number;
  offset: number;
  stride: number;
  rowStep: number;
  colStep: number;
}

/** The layouts of op(A) (`[m, k]`) and op(B) (`[k, n]`) in their buffers. */
function packLayouts(spec: MatmulSpec): { a: PackLayout; b: PackLayout } {
  const { m, n, k } = spec;
  return {
    a: {
      batches: spec.strideA === 0 ? 1 : spec.batch,
      texRows: m,
      rows: m,
      cols: k,
      offset: spec.offsetA,
      stride: spec.strideA,
      rowStep: spec.transA ? 1 : k,
      colStep: spec.transA ? m : 1,
    },
    b: {
      batches: spec.strideB === 0 ? 1 : spec.batch,
      texRows: 4 * Math.ceil(k / 4), // the kernel steps K by 4: rows past k must be zeros
      rows: k,
      cols: n,
      offset: spec.offsetB,
      stride: spec.strideB,
      rowStep: spec.transB ? 1 : n,
      colStep: spec.transB ? k : 1,
    },
  };
}

/**
 * The packing pass into the texture bound at 1 (write-only) from the buffer bound at 2, zero past
 * `cols` and in the padding rows, in one of three shapes:
 * - `vec4`: rows run along memory (`colStep` 1) and everything is 16-byte aligned — one vec4 load
 *   per texel;
 * - `t4`: a transposed operand (`rowStep` 1) with aligned columns and `rows % 4 = 0` — each
 *   invocation loads four vec4 down four columns (a 4×4 block) and stores its transpose as four
 *   texels, a quarter of the loads of the scalar shape;
 * - `scalar`: anything else — four scalar loads per texel.
 *
 * Params `[batches, texRows, cols, offset, stride, rowStep, colStep, width, rows]`.
 */
export function packKernel(layout: PackLayout): KernelInfo {
  const width = Math.ceil(layout.cols / 4);
  const aligned = layout.offset % 4 === 0 && (layout.batches === 1 || layout.stride % 4 === 0);
  const shape = aligned && layout.colStep === 1 && layout.cols % 4 === 0 &&
      layout.rowStep % 4 === 0
    ? "vec4"
    : aligned && layout.rowStep === 1 && layout.colStep % 4 === 0 && layout.rows % 4 === 0 &&
        layout.texRows % 4 === 0
    ? "t4"
    : "scalar";
  // Texture rows per invocation: four where the rows allow (fewer invocations, their index
  // arithmetic shared: ~30% faster on lavapipe), else one.
  const rowsPer = shape === "t4" || (shape === "vec4" && layout.texRows % 4 === 0) ? 4 : 1;
  const body = shape === "vec4"
    ? /* wgsl */ `for (var u = 0u; u < ${rowsPer}u; u++) {
    var v = vec4<f32>();
    if (r + u < param(8)) { v = src[(param(3) + b * param(4) + (r + u) * param(5)) / 4u + q]; }
    textureStore(dst, vec2<u32>(q, y + u), v);
  }`
    : shape === "t4"
    ? /* wgsl */ `// Column c of op(X) holds rows r … r+3 at (o + c·colStep)/4: load four columns.
  var c0 = vec4<f32>(); var c1 = vec4<f32>(); var c2 = vec4<f32>(); var c3 = vec4<f32>();
  if (r < param(8)) {
    let o = param(3) + b * param(4) + r;
    let c = q * 4u; let cs = param(6); let cols = param(2);
    if (c < cols) { c0 = src[(o + c * cs) / 4u]; }
    if (c + 1u < cols) { c1 = src[(o + (c + 1u) * cs) / 4u]; }
    if (c + 2u < cols) { c2 = src[(o + (c + 2u) * cs) / 4u]; }
    if (c + 3u < cols) { c3 = src[(o + (c + 3u) * cs) / 4u]; }
  }
  textureStore(dst, vec2<u32>(q, y), vec4<f32>(c0.x, c1.x, c2.x, c3.x));
  textureStore(dst, vec2<u32>(q, y + 1u), vec4<f32>(c0.y, c1.y, c2.y, c3.y));
  textureStore(dst, vec2<u32>(q, y + 2u), vec4<f32>(c0.z, c1.z, c2.z, c3.z));
  textureStore(dst, vec2<u32>(q, y + 3u), vec4<f32>(c0.w, c1.w, c2.w, c3.w));`
    : /* wgsl */ `let o = param(3) + b * param(4) + r * param(5);
  var v = vec4<f32>();
  for (var e = 0u; e < 4u; e++) {
    let c = q * 4u + e;
    if (c < param(2) && r < param(8)) { v[e] = src[o + c * param(6)]; }
  }
  textureStore(dst, vec2<u32>(q, y), v);`;
  const code = /* wgsl */ `
${paramsWgsl("integer parameters")}
@group(0) @binding(1) var dst: texture_storage_2d<rgba32float, write>; // packed operand
@group(0) @binding(2) var<storage, read> src: array<${shape === "scalar" ? "f32" : "vec4<f32>"}>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  let w = param(7);
  let groups = param(1) / ${rowsPer}u; // texture row groups per batch entry
  if (i >= param(0) * groups * w) { return; }
  let q = i % w; let g = i / w; // texel column, row group
  let b = g / groups; let r = (g % groups) * ${rowsPer}u; // batch entry, first row
  let y = b * param(1) + r; // texture row
  ${body}
}`;
  const units = layout.batches * (layout.texRows / rowsPer) * width;
  return {
    key: `matmul:pack:${shape}:${rowsPer}`,
    code,
    workgroupSize: WG,
    dispatch: grid(units, WG),
    params: Uint32Array.from([
      layout.batches,
      layout.texRows,
      layout.cols,
      layout.offset,
      layout.stride,
      layout.rowStep,
      layout.colStep,
      width,
      layout.rows,
    ]),
    outDType: "f32",
    n: units,
  };
}

/**
 * The packing pass of a contiguous `f32 [rows, cols]` buffer into a texture `ceil(cols / 4)`
 * texels wide and `rows` high (one matrix row per texture row).
 */
export function packRowsKernel(rows: number, cols: number): KernelInfo {
  return packKernel({
    batches: 1,
    texRows: rows,
    rows,
    cols,
    offset: 0,
    stride: 0,
    rowStep: cols,
    colStep: 1,
  });
}

/** The two packing passes of `spec`: A then B (see {@linkcode packKernel}). */
export function packKernels(spec: MatmulSpec): { a: KernelInfo; b: KernelInfo } {
  const layouts = packLayouts(spec);
  return { a: packKernel(layouts.a), b: packKernel(layouts.b) };
}

/**
 * The texture matmul kernel: output `f32 [batch, m, n]` at binding 1, textures A and B
 * (read-only storage textures) at 2 and 3. Each invocation computes a 16×16 block of C, stepping
 * K four at a time: one texel (4 values along K) of each of its 16 rows of A, four texels (4 rows
 * of K × 4 columns) for each of its 4 vec4 columns of B, 256 vec4 FMAs. Adjacent invocations take
 * adjacent column blocks. Params `[batch, m, n, k, rowsA, rowsB, blocksM, blocksN]` where
 * `rowsA`/`rowsB` are the texture rows per batch entry (0 when the operand is shared).
 *
 * @param spec The matmul (see {@linkcode textureMatmulApplies}).
 * @returns The kernel as data.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { textureMatmulKernel } from "./matmul_texture.ts";
 * const kernel = textureMatmulKernel({ batch: 1, m: 33, n: 20, k: 5, transA: false,
 *   transB: false, offsetA: 0, offsetB: 0, strideA: 0, strideB: 0 });
 * equal(kernel.n, 3 * 2); // 16×16 blocks: 3 row blocks × 2 column blocks
 * ```
 */
export function textureMatmulKernel(spec: MatmulSpec): KernelInfo {
  const rs = Array.from({ length: ROWS }, (_, i) => i);
  const cs = Array.from({ length: COLS_Q }, (_, i) => i);
  const es = [0, 1, 2, 3];
  const xyzw = ["x", "y", "z", "w"];
  const bLoads = cs.map((c) =>
    es.map((e) => `let b${e}_${c} = textureLoad(tb, vec2<u32>(q0 + ${c}u, kb + ${e}u));`)
      .join(" ")
  ).join("\n    ");
  const fmas = rs.map((r) =>
    `{ let a = textureLoad(ta, vec2<u32>(kq, ra + ${r}u)); ${
      cs.map((c) =>
        `c${r}_${c} = ${
          es.reduceRight(
            (acc, e) => `fma(vec4<f32>(a.${xyzw[e]}), b${e}_${c}, ${acc})`,
            `c${r}_${c}`,
          )
        };`
      ).join(" ")
    } }`
  ).join("\n    ");
  const stores = rs.map((r) =>
    `if (r0 + ${r}u < m) { let o = base + (r0 + ${r}u) * n; ${
      cs.map((c) =>
        es.map((e) =>
          `if (col + ${c * 4 + e}u < n) { out[o + col + ${c * 4 + e}u] = c${r}_${c}.${xyzw[e]}; }`
        ).join(" ")
      ).join(" ")
    } }`
  ).join("\n  ");
  const code = /* wgsl */ `
${paramsWgsl("integer parameters")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // C [batch, m, n]
@group(0) @binding(2) var ta: texture_storage_2d<rgba32float, read>; // packed op(A)
@group(0) @binding(3) var tb: texture_storage_2d<rgba32float, read>; // packed op(B)
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  let m = param(1); let n = param(2); let k = param(3);
  let bm = param(6); let bn = param(7);
  if (i >= param(0) * bm * bn) { return; }
  let b = i / (bm * bn);
  let r0 = ((i / bn) % bm) * ${ROWS}u;
  let q0 = (i % bn) * ${COLS_Q}u; // first texel column of B
  let ra = b * param(4) + r0; // texture row of A's first row
  let rb = b * param(5); // texture row of B's first K row
  ${rs.map((r) => cs.map((c) => `var c${r}_${c} = vec4<f32>();`).join(" ")).join("\n  ")}
  let kv = (k + 3u) / 4u;
  for (var kq = 0u; kq < kv; kq++) {
    let kb = rb + kq * 4u;
    ${bLoads}
    ${fmas}
  }
  let base = b * m * n;
  let col = q0 * 4u;
  ${stores}
}`;
  const bm = Math.ceil(spec.m / ROWS), bn = Math.ceil(spec.n / (4 * COLS_Q));
  const units = spec.batch * bm * bn;
  const layouts = packLayouts(spec);
  return {
    key: `matmul:texture:${ROWS}x${4 * COLS_Q}`,
    code,
    workgroupSize: WG,
    dispatch: grid(units, WG),
    params: Uint32Array.from([
      spec.batch,
      spec.m,
      spec.n,
      spec.k,
      layouts.a.batches === 1 ? 0 : spec.m,
      layouts.b.batches === 1 ? 0 : layouts.b.texRows,
      bm,
      bn,
    ]),
    outDType: "f32",
    n: units,
  };
}
