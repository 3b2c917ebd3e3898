/**
 * WGSL batched matmul `C[b] = op(A[b]) · op(B[b])` (see `MatmulSpec`), in two shapes chosen by
 * adapter (`MatmulVariant`; the backend decides what `auto` means, see ../../webgpu.ts).
 *
 * On CPU drivers `auto` prefers the `texture` variant (./matmul_texture.ts: operands packed into
 * storage textures, whose reads cost a fraction of storage-buffer reads there; 1024³ at ~60
 * GFLOP/s) wherever it fits; the kernels below serve tiny products, textures past the device
 * limit, forced variants and GPUs.
 *
 * CPU-driver-shaped (`block4`, `vec4`, `dot4`): register blocking straight from storage buffers
 * — each invocation computes a 4×4 block of C, loading 4 values of A and 4 of B per step of K and
 * doing 16 FMAs, with no workgroup memory or barriers (barriers are expensive on Mesa's
 * llvmpipe/lavapipe, see ../shared/notes/webgpu.md). Transposes are index changes; reads past the
 * edge are clamped and their results not written, so any size is safe. Where B can be read as
 * vec4 rows (not transposed, `n % 4 = 0`, 16-byte aligned) a vec4 variant computes 8×8 blocks
 * instead. Where B is transposed (A·Bᵀ: every Linear forward `x·Wᵀ`, attention scores `Q·Kᵀ`,
 * backward products such as `dC·Bᵀ`), rows of op(A) and of B both run along K, and the dot4
 * variant computes 16×16 blocks of vec4 dot products (vec4 loads when 16-byte aligned, else four
 * scalar loads and a scalar tail). On lavapipe here (`deno task bench`, 1024³, a shared, busy
 * machine): vec4 10–18 GFLOP/s, dot4 on A·Bᵀ 14–17 (7 with k % 4 ≠ 0), block4 2–6, tiled
 * 1.6–3.1; the WebGPU peers tfjs-backend-webgpu and jax-js 4–8. Block sizes for dot4 measured at
 * 512³ / 1024³ A·Bᵀ with vec4 loads (GFLOP/s, one noisy run each): 4×4 6 / 8, 4×8 8 / 10, 8×8
 * 8 / 13, 8×16 9 / 15, 16×16 10 / 17; vec4 accumulators (one FMA per element pair, summed at the
 * end) instead of scalar `dot`s were no faster and need 4× the registers.
 *
 * GPU-shaped (`tiled`): the classic workgroup-memory recipe — a workgroup of 16×16 invocations
 * owns a 64×64 tile of C and steps through K 16 at a time, staging a 64×16 slice of op(A) and a
 * 16×64 slice of op(B) in `var<workgroup>` arrays between two `workgroupBarrier()`s; each
 * invocation then accumulates a 4×4 register block from workgroup memory. This is the shape
 * that wins on GPUs; on llvmpipe/lavapipe every barrier is a coroutine switch and it loses (see
 * above). It has been checked for correctness on lavapipe only, not yet timed on a GPU.
 *
 * @module
 */

import type { MatmulSpec } from "../../backend.ts";
import { bindingsWgsl, ENTRY_WGSL, grid, paramsWgsl, WORKGROUP } from "../_wgsl.ts";
import type { KernelInfo } from "../cache.ts";
import { textureMatmulApplies, textureMatmulSizes } from "./matmul_texture.ts";

/** Rows and columns of C per invocation. */
const BLOCK = 4;

/** Invocations per workgroup of the vec4 kernel. */
const WG_V4 = 64;

/**
 * The launch of every variant: one unit (an invocation, or a workgroup with `perWorkgroup` 1)
 * per `block` of C, params `[batch, m, n, k, offsetA, offsetB, strideA, strideB, blocksM,
 * blocksN]`.
 */
function matmulLaunch(
  spec: MatmulSpec,
  key: string,
  code: string,
  shape: { workgroupSize: number; block: [number, number]; perWorkgroup: number },
): KernelInfo {
  const bm = Math.ceil(spec.m / shape.block[0]), bn = Math.ceil(spec.n / shape.block[1]);
  const units = spec.batch * bm * bn;
  return {
    key,
    code,
    workgroupSize: shape.workgroupSize,
    dispatch: grid(units, shape.perWorkgroup),
    params: Uint32Array.from([
      spec.batch,
      spec.m,
      spec.n,
      spec.k,
      spec.offsetA,
      spec.offsetB,
      spec.strideA,
      spec.strideB,
      bm,
      bn,
    ]),
    outDType: "f32",
    n: spec.m * spec.n === 0 ? 0 : units,
  };
}

/** Rows of C per invocation in the vec4 kernel (each row: 2 vec4 = 8 columns). */
const ROWS_V4 = 8;

/** Whether the vec4 kernel applies: B read as rows of vec4 (not transposed, 16-byte aligned). */
export function vec4Applies(spec: MatmulSpec): boolean {
  return !spec.transB && spec.n % 4 === 0 && spec.offsetB % 4 === 0 &&
    (spec.batch === 1 || spec.strideB % 4 === 0);
}

/**
 * The vec4 variant: each invocation computes an 8×8 block of C (8 rows × 2 vec4 columns), B
 * loaded as vec4 rows and A one scalar per row and step of K, 16 vec4 FMAs per step; adjacent
 * invocations take adjacent column blocks. No workgroup memory or barriers — the CPU-driver
 * shape that suits llvmpipe/lavapipe (../shared/notes/webgpu.md).
 */
function matmulVec4Kernel(spec: MatmulSpec): KernelInfo {
  const aAt = spec.transA ? "a0 + p * m + row" : "a0 + row * k + p";
  const rows = Array.from({ length: ROWS_V4 }, (_, i) => i);
  const code = /* wgsl */ `
${paramsWgsl("integer parameters")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // result
@group(0) @binding(2) var<storage, read> in0: array<f32>; // A
@group(0) @binding(3) var<storage, read> in1: array<vec4<f32>>; // B as rows of vec4
fn loadA(a0: u32, row: u32, p: u32, m: u32, k: u32) -> f32 { return in0[${aAt}]; }
@compute @workgroup_size(${WG_V4})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG_V4}u;
  let m = param(1); let n = param(2); let k = param(3);
  let bm = param(8); let bn = param(9);
  if (i >= param(0) * bm * bn) { return; }
  let b = i / (bm * bn);
  let r0 = ((i / bn) % bm) * ${ROWS_V4}u;
  let q0 = (i % bn) * 2u; // first vec4 column
  let n4 = n / 4u;
  let q1 = min(q0 + 1u, n4 - 1u);
  let a0 = param(4) + b * param(6);
  let b4 = (param(5) + b * param(7)) / 4u;
  ${rows.map((j) => `let ra${j} = min(r0 + ${j}u, m - 1u);`).join("\n  ")}
  ${rows.map((j) => `var lo${j} = vec4<f32>(); var hi${j} = vec4<f32>();`).join("\n  ")}
  for (var p = 0u; p < k; p++) {
    let bl = in1[b4 + p * n4 + q0];
    let bh = in1[b4 + p * n4 + q1];
    ${
    rows.map((j) =>
      `{ let av = vec4<f32>(loadA(a0, ra${j}, p, m, k)); lo${j} = fma(av, bl, lo${j}); hi${j} = fma(av, bh, hi${j}); }`
    ).join("\n    ")
  }
  }
  let base = b * m * n + q0 * 4u;
  let both = q0 + 1u < n4;
  ${
    rows.map((j) =>
      `if (r0 + ${j}u < m) { let o = base + (r0 + ${j}u) * n; out[o] = lo${j}.x; out[o + 1u] = lo${j}.y; out[o + 2u] = lo${j}.z; out[o + 3u] = lo${j}.w; if (both) { out[o + 4u] = hi${j}.x; out[o + 5u] = hi${j}.y; out[o + 6u] = hi${j}.z; out[o + 7u] = hi${j}.w; } }`
    ).join("\n  ")
  }
}`;
  return matmulLaunch(spec, `matmul:v4x8:${spec.transA}`, code, {
    workgroupSize: WG_V4,
    block: [ROWS_V4, 8],
    perWorkgroup: WG_V4,
  });
}

/** Rows of C per invocation in the dot4 kernel. */
const ROWS_D4 = 16;
/** Columns of C per invocation in the dot4 kernel. */
const COLS_D4 = 16;
/** Invocations per workgroup of the dot4 kernel. */
const WG_D4 = 64;

/**
 * Whether the dot4 kernel applies: B stored `[n, k]` — transposed, or a single row or column,
 * where both layouts coincide.
 *
 * @param spec The matmul to run.
 * @returns Whether rows of B run along K in storage.
 *
 * @example A·Bᵀ, and a matrix-vector product
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { dot4Applies } from "./matmul.ts";
 * const spec = { batch: 1, m: 8, n: 8, k: 8, transA: false, transB: true,
 *   offsetA: 0, offsetB: 0, strideA: 0, strideB: 0 };
 * ok(dot4Applies(spec));
 * ok(dot4Applies({ ...spec, transB: false, n: 1 }));
 * ok(!dot4Applies({ ...spec, transB: false }));
 * ```
 */
export function dot4Applies(spec: MatmulSpec): boolean {
  return spec.transB || spec.n === 1 || spec.k === 1;
}

/**
 * Whether the dot4 kernel can read op(A) and B as vec4 runs along K straight from storage: A not
 * transposed, `k > 0` (no empty vec4 binding), and `k`, the offsets and the batch strides
 * multiples of 4. Otherwise it builds each vec4 from four scalar loads and finishes `k % 4` with
 * a scalar tail.
 */
function dot4Aligned(spec: MatmulSpec): boolean {
  return !spec.transA && spec.k > 0 && spec.k % 4 === 0 && spec.offsetA % 4 === 0 &&
    spec.offsetB % 4 === 0 &&
    (spec.batch === 1 || (spec.strideA % 4 === 0 && spec.strideB % 4 === 0));
}

/**
 * The dot4 variant, for `C = op(A) · Bᵀ` with B stored `[n, k]` ({@linkcode dot4Applies}), so
 * rows of B — and rows of op(A) when A is not transposed — run along K in storage. Per
 * invocation: a 16×16 block of C, stepping K by 4 with one vec4 of each of its 16 rows of op(A)
 * and 16 rows of B, 256 `dot`s into scalar accumulators per step; adjacent invocations take
 * adjacent column blocks. Aligned specs ({@linkcode dot4Aligned}) bind A and B as
 * `array<vec4<f32>>`; the rest build each vec4 from four scalar loads and add a scalar tail for
 * `k % 4`. No workgroup memory or barriers; 256 accumulators spill on llvmpipe and still win.
 */
function matmulDot4Kernel(spec: MatmulSpec): KernelInfo {
  const aligned = dot4Aligned(spec);
  const rs = Array.from({ length: ROWS_D4 }, (_, i) => i);
  const cs = Array.from({ length: COLS_D4 }, (_, i) => i);
  const pairs = rs.flatMap((j) => cs.map((q) => [j, q]));
  const acc = pairs.map(([j, q]) => `c${j}_${q} += dot(va${j}, vb${q});`).join("\n    ");
  // Row j of op(A) and row q of B start at `ao{j}`, `bo{q}` (in vec4 units when aligned).
  const head = aligned
    ? /* wgsl */ `
@group(0) @binding(2) var<storage, read> in0: array<vec4<f32>>; // A [m, k] as rows of vec4
@group(0) @binding(3) var<storage, read> in1: array<vec4<f32>>; // B [n, k] as rows of vec4`
    : /* wgsl */ `
@group(0) @binding(2) var<storage, read> in0: array<f32>; // A ([k, m] if transposed)
@group(0) @binding(3) var<storage, read> in1: array<f32>; // B [n, k]
fn load4(o: u32) -> vec4<f32> { return vec4<f32>(in1[o], in1[o + 1u], in1[o + 2u], in1[o + 3u]); }`;
  // Element p of op(A)'s row j (ao{j} includes the row; `da` is the step between elements).
  const aStep = spec.transA ? "m" : "1u";
  const loadA4 = (j: number) =>
    `vec4<f32>(in0[ao${j} + p * da], in0[ao${j} + (p + 1u) * da], ` +
    `in0[ao${j} + (p + 2u) * da], in0[ao${j} + (p + 3u) * da])`;
  const loop = aligned
    ? /* wgsl */ `
  for (var p = 0u; p < kv; p++) {
    ${rs.map((j) => `let va${j} = in0[ao${j} + p];`).join(" ")}
    ${cs.map((q) => `let vb${q} = in1[bo${q} + p];`).join(" ")}
    ${acc}
  }`
    : /* wgsl */ `
  let da = ${aStep}; // step between elements of a row of op(A)
  var p = 0u;
  for (; p + 4u <= k; p += 4u) {
    ${rs.map((j) => `let va${j} = ${loadA4(j)};`).join("\n    ")}
    ${cs.map((q) => `let vb${q} = load4(bo${q} + p);`).join(" ")}
    ${acc}
  }
  for (; p < k; p++) {
    ${rs.map((j) => `let sa${j} = in0[ao${j} + p * da];`).join(" ")}
    ${cs.map((q) => `let sb${q} = in1[bo${q} + p];`).join(" ")}
    ${pairs.map(([j, q]) => `c${j}_${q} = fma(sa${j}, sb${q}, c${j}_${q});`).join("\n    ")}
  }`;
  const unit = aligned ? " / 4u" : "";
  const aRow = spec.transA ? "" : ` * kv`; // row r of op(A) starts at r·k, or at r if A is [k, m]
  const code = /* wgsl */ `
${paramsWgsl("integer parameters")}
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // result${head}
@compute @workgroup_size(${WG_D4})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG_D4}u;
  let m = param(1); let n = param(2); let k = param(3);
  let bm = param(8); let bn = param(9);
  if (i >= param(0) * bm * bn) { return; }
  let b = i / (bm * bn);
  let r0 = ((i / bn) % bm) * ${ROWS_D4}u;
  let c0 = (i % bn) * ${COLS_D4}u;
  let kv = k${unit}; // row length of A and B in loaded units
  let a0 = (param(4) + b * param(6))${unit};
  let b0 = (param(5) + b * param(7))${unit};
  // Clamp edge rows/columns to valid ones; their results are discarded below.
  ${rs.map((j) => `let ao${j} = a0 + min(r0 + ${j}u, m - 1u)${aRow};`).join(" ")}
  ${cs.map((q) => `let bo${q} = b0 + min(c0 + ${q}u, n - 1u) * kv;`).join(" ")}
  ${pairs.map(([j, q]) => `var c${j}_${q} = 0.0;`).join(" ")}${loop}
  let base = b * m * n;
  ${
    rs.map((j) =>
      `if (r0 + ${j}u < m) { let o = base + (r0 + ${j}u) * n + c0; ${
        cs.map((q) => `if (c0 + ${q}u < n) { out[o + ${q}u] = c${j}_${q}; }`).join(" ")
      } }`
    ).join("\n  ")
  }
}`;
  return matmulLaunch(
    spec,
    `matmul:dot4:${ROWS_D4}x${COLS_D4}:${aligned ? "vec4" : "scalar"}:${spec.transA}`,
    code,
    {
      workgroupSize: WG_D4,
      block: [ROWS_D4, COLS_D4],
      perWorkgroup: WG_D4,
    },
  );
}

/**
 * Which matmul kernel: `auto` (chosen by adapter), one of the CPU-driver-shaped kernels
 * (`texture`: operands packed into storage textures, 16×16 blocks, only where
 * {@linkcode textureMatmulApplies}, see ./matmul_texture.ts; `block4`: 4×4 scalar blocks, any
 * spec; `vec4`: 8×8 blocks with B read as vec4, only where {@linkcode vec4Applies}; `dot4`:
 * 16×16 blocks of vec4 dot products along K, only where {@linkcode dot4Applies}), or the
 * GPU-shaped `tiled` (workgroup-memory tiles, any spec).
 */
export type MatmulVariant = "auto" | "texture" | "block4" | "vec4" | "dot4" | "tiled";

/**
 * Multiply-adds (`batch·m·n·k`) below which `auto` keeps a CPU driver on the single-pass buffer
 * kernels: the texture variant's two packing dispatches and 16×16 blocks do not pay for tiny
 * products (a matrix-vector step of generation, a small test).
 */
export const TEXTURE_MIN_MACS = 1 << 18;

/** Options for {@linkcode matmulKernel}. */
export interface MatmulKernelOptions {
  /**
   * Whether the adapter is a CPU implementation (llvmpipe, lavapipe, SwiftShader): `auto` then
   * takes the CPU-driver-shaped kernels (`vec4` where it applies, else `dot4` where it applies
   * — a transposed B —, else `block4`), otherwise `tiled`.
   * @default {false}
   */
  cpuDriver?: boolean;
  /**
   * The device's `maxTextureDimension2D`, which bounds the texture variant; 0 never picks it.
   * @default {0}
   */
  maxTextureDimension?: number;
}

/**
 * The concrete kernel `variant` stands for on `spec`: `auto` resolved by adapter kind (see
 * {@linkcode MatmulKernelOptions}); a forced `vec4` or `dot4` that does not apply is an error.
 *
 * @param spec The matmul to run.
 * @param variant The requested variant.
 * @param options The adapter kind that decides `auto`.
 * @returns `texture`, `block4`, `vec4`, `dot4` or `tiled`.
 *
 * @example Resolving `auto`
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { resolveMatmulVariant } from "./matmul.ts";
 * const spec = { batch: 1, m: 8, n: 8, k: 8, transA: false, transB: false,
 *   offsetA: 0, offsetB: 0, strideA: 0, strideB: 0 };
 * equal(resolveMatmulVariant(spec, "auto", { cpuDriver: true }), "vec4");
 * equal(resolveMatmulVariant({ ...spec, transB: true }, "auto", { cpuDriver: true }), "dot4");
 * equal(resolveMatmulVariant({ ...spec, n: 6 }, "auto", { cpuDriver: true }), "block4");
 * equal(resolveMatmulVariant(spec, "auto"), "tiled");
 * const big = { ...spec, m: 256, n: 256, k: 256 };
 * equal(resolveMatmulVariant(big, "auto", { cpuDriver: true, maxTextureDimension: 8192 }), "texture");
 * ```
 */
export function resolveMatmulVariant(
  spec: MatmulSpec,
  variant: MatmulVariant,
  options: MatmulKernelOptions = {},
): Exclude<MatmulVariant, "auto"> {
  const vec4 = vec4Applies(spec) && spec.k > 0;
  switch (variant) {
    case "auto":
      if (!options.cpuDriver) return "tiled";
      if (
        spec.batch * spec.m * spec.n * spec.k >= TEXTURE_MIN_MACS &&
        textureMatmulApplies(spec, options.maxTextureDimension ?? 0)
      ) return "texture";
      return vec4 ? "vec4" : dot4Applies(spec) ? "dot4" : "block4";
    case "texture":
      if (!textureMatmulApplies(spec, options.maxTextureDimension ?? 0)) {
        const { a, b } = textureMatmulSizes(spec);
        throw new Error(
          `Cannot use the texture matmul kernel for 'batch=${spec.batch}, m=${spec.m}, ` +
            `n=${spec.n}, k=${spec.k}': its packed operands (${a.join("×")} and ${b.join("×")} ` +
            `texels) must be non-empty and fit maxTextureDimension2D ` +
            `${options.maxTextureDimension ?? 0}`,
        );
      }
      return "texture";
    case "vec4":
      if (!vec4) {
        throw new Error(
          `Cannot use the vec4 matmul kernel for 'transB=${spec.transB}, n=${spec.n}, ` +
            `k=${spec.k}, offsetB=${spec.offsetB}, strideB=${spec.strideB}': expected B not ` +
            "transposed, n, offsetB and strideB multiples of 4, and k > 0",
        );
      }
      return "vec4";
    case "dot4":
      if (!dot4Applies(spec)) {
        throw new Error(
          `Cannot use the dot4 matmul kernel for 'transB=${spec.transB}, n=${spec.n}, ` +
            `k=${spec.k}': expected B transposed (stored [n, k]), n = 1 or k = 1`,
        );
      }
      return "dot4";
    case "block4":
    case "tiled":
      return variant;
    default:
      throw new Error(
        `Cannot choose matmul variant '${variant satisfies never}': expected 'auto', ` +
          "'texture', 'block4', 'vec4', 'dot4' or 'tiled'",
      );
  }
}

/**
 * The launcher: the kernel for `spec` in `variant`. Every variant takes the params
 * `[batch, m, n, k, offsetA, offsetB, strideA, strideB, blocksM, blocksN]` (blocks of C rows
 * and columns per invocation, or per workgroup for `tiled`) and the bindings of `bindingsWgsl`.
 *
 * @param spec The matmul to run.
 * @param variant Which kernel; `auto` is decided by `options.cpuDriver`.
 * @param options The adapter kind.
 * @returns The kernel as data.
 *
 * @example The GPU-shaped kernel for a transposed B
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { matmulKernel } from "./matmul.ts";
 * const spec = { batch: 2, m: 65, n: 3, k: 17, transA: false, transB: true,
 *   offsetA: 0, offsetB: 0, strideA: 65 * 17, strideB: 0 };
 * const kernel = matmulKernel(spec, "tiled");
 * equal(kernel.key, "matmul:tiled64x64x16:false:true");
 * equal(kernel.dispatch[0], 2 * 2 * 1); // batch × row tiles × column tiles
 * ```
 */
export function matmulKernel(
  spec: MatmulSpec,
  variant: MatmulVariant = "auto",
  options: MatmulKernelOptions = {},
): KernelInfo {
  const chosen = resolveMatmulVariant(spec, variant, options);
  switch (chosen) {
    case "vec4":
      return matmulVec4Kernel(spec);
    case "block4":
      return matmulBlock4Kernel(spec);
    case "dot4":
      return matmulDot4Kernel(spec);
    case "tiled":
      return matmulTiledKernel(spec);
    case "texture":
      throw new Error(
        "Cannot launch the texture matmul as one kernel: it is three dispatches (see " +
          "packKernels and textureMatmulKernel in ./matmul_texture.ts), run by the backend",
      );
    default:
      throw new Error(`Cannot launch matmul variant '${chosen satisfies never}'`);
  }
}

function matmulBlock4Kernel(spec: MatmulSpec): KernelInfo {
  // Element (row, p) of op(A) and (p, col) of op(B) for the given storage layouts.
  const aAt = spec.transA ? "a0 + p * m + row" : "a0 + row * k + p"; // A stored [k, m] if transA
  const bAt = spec.transB ? "b0 + col * k + p" : "b0 + p * n + col"; // B stored [n, k] if transB
  const rows = Array.from({ length: BLOCK }, (_, i) => i);
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32", "f32"])}
fn loadA(a0: u32, row: u32, p: u32, m: u32, k: u32) -> f32 { return in0[${aAt}]; }
fn loadB(b0: u32, p: u32, col: u32, n: u32, k: u32) -> f32 { return in1[${bAt}]; }
${ENTRY_WGSL}
  let m = param(1); let n = param(2); let k = param(3);
  let bm = param(8); let bn = param(9);
  if (i >= param(0) * bm * bn) { return; }
  let b = i / (bm * bn);
  let r0 = ((i / bn) % bm) * ${BLOCK}u;
  let c0 = (i % bn) * ${BLOCK}u;
  let a0 = param(4) + b * param(6);
  let b0 = param(5) + b * param(7);
  // Clamp edge rows/columns to valid ones; their results are discarded below.
  ${
    rows.map((j) => `let ra${j} = min(r0 + ${j}u, m - 1u); let cb${j} = min(c0 + ${j}u, n - 1u);`)
      .join("\n  ")
  }
  var acc: array<vec4<f32>, ${BLOCK}>;
  for (var p = 0u; p < k; p++) {
    let bv = vec4<f32>(${rows.map((j) => `loadB(b0, p, cb${j}, n, k)`).join(", ")});
    ${rows.map((j) => `acc[${j}] += loadA(a0, ra${j}, p, m, k) * bv;`).join("\n    ")}
  }
  let base = b * m * n;
  for (var j = 0u; j < ${BLOCK}u; j++) {
    let row = r0 + j;
    if (row >= m) { break; }
    for (var q = 0u; q < ${BLOCK}u; q++) {
      if (c0 + q < n) { out[base + row * n + c0 + q] = acc[j][q]; }
    }
  }
}`;
  return matmulLaunch(spec, `matmul:block${BLOCK}:${spec.transA}:${spec.transB}`, code, {
    workgroupSize: WORKGROUP,
    block: [BLOCK, BLOCK],
    perWorkgroup: WORKGROUP,
  });
}

/** Rows and columns of C per workgroup of the tiled kernel. */
const TILE = 64;
/** Steps of K staged in workgroup memory per barrier pair. */
const TILE_K = 16;
/** Invocations per workgroup side (16×16 = 256, the default `maxComputeInvocationsPerWorkgroup`). */
const SIDE = TILE / BLOCK;

/**
 * The GPU-shaped variant: workgroup-memory tiles.
 *
 * Per workgroup (16×16 invocations): one 64×64 tile of C for one batch entry; the flat workgroup
 * index (x + y·nx, so more than 65535 tiles spill into y) gives (batch, tile row, tile column).
 * Per step of 16 along K, all 256 invocations stage op(A)[64 rows, 16] and op(B)[16, 64 columns]
 * in workgroup memory, 4 + 4 elements each, with adjacent invocations on adjacent addresses of the
 * stored layout (coalesced for both transposes); elements past m, n or k are stored as 0, so the
 * partial last step and edge tiles need no other case. After a barrier each invocation does
 * 16 × (4 loads of A, 4 of B, 16 FMAs), then a second barrier guards the next overwrite.
 *
 * Per thread: a 4×4 block of C at rows `lid.y + 16j` and columns `lid.x + 16q` (strided, so a row
 * of invocations reads 16 consecutive words of the B tile and one broadcast word of the A tile,
 * and writes 16 consecutive words of C).
 *
 * Shared memory: 2 × 16 × 64 f32 = 8 KiB (the WebGPU default limit
 * `maxComputeWorkgroupStorageSize` is 16 KiB). Limits: 256 invocations per workgroup and
 * workgroup size 16 in x and y (defaults allow 256); `batch · ⌈m/64⌉ · ⌈n/64⌉` workgroups, at
 * most 65535² (`grid`); offsets in u32 words, so each operand below 2³² elements.
 */
function matmulTiledKernel(spec: MatmulSpec): KernelInfo {
  const aAt = spec.transA ? "a0 + p * m + row" : "a0 + row * k + p"; // A stored [k, m] if transA
  const bAt = spec.transB ? "b0 + col * k + p" : "b0 + p * n + col"; // B stored [n, k] if transB
  // Which element of the tile invocation slot `e` (0 … 1023) loads: the fast index follows the
  // stored layout (p for A stored [m, k], row for A stored [k, m]; col for B [k, n], p for B [n, k]).
  const aSlot = spec.transA
    ? `let ar = e % ${TILE}u; let ap = e / ${TILE}u;`
    : `let ar = e / ${TILE_K}u; let ap = e % ${TILE_K}u;`;
  const bSlot = spec.transB
    ? `let bc = e / ${TILE_K}u; let bp = e % ${TILE_K}u;`
    : `let bc = e % ${TILE}u; let bp = e / ${TILE}u;`;
  const loads = (TILE * TILE_K) / (SIDE * SIDE); // elements of each tile per invocation
  const js = Array.from({ length: BLOCK }, (_, j) => j);
  const code = /* wgsl */ `
${bindingsWgsl("f32", ["f32", "f32"])}
// op(A)[row0 + r, p0 + kk] at tileA[kk * ${TILE} + r] (rows contiguous, read as broadcasts)
var<workgroup> tileA: array<f32, ${TILE * TILE_K}>;
// op(B)[p0 + kk, col0 + c] at tileB[kk * ${TILE} + c]
var<workgroup> tileB: array<f32, ${TILE * TILE_K}>;
@compute @workgroup_size(${SIDE}, ${SIDE})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let m = param(1); let n = param(2); let k = param(3);
  let tm = param(8); let tn = param(9);
  // Uniform per workgroup (builtins and read-only storage), so the barriers below stay legal.
  let w = wid.x + wid.y * nwg.x;
  if (w >= param(0) * tm * tn) { return; }
  let b = w / (tm * tn);
  let row0 = ((w / tn) % tm) * ${TILE}u;
  let col0 = (w % tn) * ${TILE}u;
  let a0 = param(4) + b * param(6);
  let b0 = param(5) + b * param(7);
  var acc: array<vec4<f32>, ${BLOCK}>;
  for (var p0 = 0u; p0 < k; p0 += ${TILE_K}u) {
    for (var l = 0u; l < ${loads}u; l++) {
      let e = li + l * ${SIDE * SIDE}u;
      {
        ${aSlot}
        let row = row0 + ar; let p = p0 + ap;
        var v = 0.0;
        if (row < m && p < k) { v = in0[${aAt}]; }
        tileA[ap * ${TILE}u + ar] = v;
      }
      {
        ${bSlot}
        let col = col0 + bc; let p = p0 + bp;
        var v = 0.0;
        if (col < n && p < k) { v = in1[${bAt}]; }
        tileB[bp * ${TILE}u + bc] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      let t = kk * ${TILE}u;
      let bv = vec4<f32>(${js.map((q) => `tileB[t + lid.x + ${q * SIDE}u]`).join(", ")});
      ${
    js.map((j) => `acc[${j}] = fma(vec4<f32>(tileA[t + lid.y + ${j * SIDE}u]), bv, acc[${j}]);`)
      .join("\n      ")
  }
    }
    workgroupBarrier();
  }
  let base = b * m * n;
  for (var j = 0u; j < ${BLOCK}u; j++) {
    let row = row0 + lid.y + j * ${SIDE}u;
    if (row >= m) { break; }
    for (var q = 0u; q < ${BLOCK}u; q++) {
      let col = col0 + lid.x + q * ${SIDE}u;
      if (col < n) { out[base + row * n + col] = acc[j][q]; }
    }
  }
}`;
  return matmulLaunch(
    spec,
    `matmul:tiled${TILE}x${TILE}x${TILE_K}:${spec.transA}:${spec.transB}`,
    code,
    {
      workgroupSize: SIDE * SIDE,
      block: [TILE, TILE],
      perWorkgroup: 1, // one workgroup per tile
    },
  );
}
