/**
 * The FP8 codecs in WGSL, for GPU-side quantisation: `f32 → code` with round-to-nearest-even
 * and saturating or non-saturating overflow, exactly as `format.ts` defines them (checked bit
 * for bit against it in tests/fp8/wgsl_test.ts), and a quantise kernel with per-1×128-tile scales.
 *
 * Algorithm (per element, integer arithmetic on the float32 bits): split sign, exponent and
 * significand; pick the FP8 exponent (clamped to the subnormal exponent `1 − bias`); shift the
 * 24-bit significand right to the FP8 last place and round the shifted-out bits to nearest,
 * ties to even (a carry into the exponent field is the correct next binade); overflow past the
 * largest finite code saturates or becomes inf/NaN. One invocation per element, no workgroup
 * memory.
 *
 * @module
 */

import { acquireGpu } from "../backend/webgpu/device.ts";
import type { Fp8Format } from "./format.ts";

/** WGSL source of `fn encode(x: f32) -> u32` for `format`. */
export function encodeFnWgsl(format: Fp8Format, saturate: boolean): string {
  const overflow = saturate ? format.maxCode : (format.infCode ?? format.nanCode);
  return /* wgsl */ `
fn encode(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 31u) << 7u;
  let expField = (bits >> 23u) & 0xffu;
  let frac = bits & 0x7fffffu;
  if (expField == 0xffu) {
    return sign | select(${overflow}u, ${format.nanCode}u, frac != 0u); // inf or NaN
  }
  if (expField == 0u) { return sign; } // ±0 and float32 subnormals
  let sig = frac | 0x800000u;
  let e = i32(expField) - 127;
  let eOut = max(e, ${1 - format.bias}); // subnormal exponent 1 − bias
  let shift = u32(${23 - format.manBits} + (eOut - e));
  if (shift > 24u) { return sign; } // below half the smallest subnormal
  var q = sig >> shift;
  let rest = sig - (q << shift);
  let half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (q & 1u) == 1u)) { q = q + 1u; } // nearest, ties to even
  let mag = (u32(eOut + ${format.bias - 1}) << ${format.manBits}u) + q;
  return sign | select(mag, ${overflow}u, mag > ${format.maxCode}u);
}`;
}

/**
 * WGSL of the quantise kernel: `codes[i] = encode(x[i] / scales[tile(i)])` for a row-major
 * `[rows, cols]` input with one scale per 1×`tile` tile (`tile = cols` gives per-row, a single
 * scale with rows = 1 and tile = n gives per-tensor).
 */
export function quantizeKernelWgsl(format: Fp8Format, saturate: boolean): string {
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> params: array<u32>; // n, cols, tile, tilesPerRow
@group(0) @binding(1) var<storage, read_write> codes: array<u32>; // one FP8 code per word
@group(0) @binding(2) var<storage, read> x: array<f32>; // values [rows, cols]
@group(0) @binding(3) var<storage, read> scales: array<f32>; // [rows, tilesPerRow]
${encodeFnWgsl(format, saturate)}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= params[0]) { return; }
  let row = i / params[1];
  let col = i % params[1];
  let s = scales[row * params[3] + col / params[2]];
  codes[i] = encode(x[i] / s);
}`;
}

/** A device and compiled quantise pipelines, reused across calls. */
export class GpuFp8Quantizer {
  readonly device: GPUDevice;
  readonly description: string;
  #pipelines = new Map<string, GPUComputePipeline>();

  constructor(device: GPUDevice, description: string) {
    this.device = device;
    this.description = description;
  }

  /** Acquire an adapter (throws naming the fix when there is none). */
  static async create(): Promise<GpuFp8Quantizer> {
    const ctx = await acquireGpu();
    return new GpuFp8Quantizer(ctx.device, ctx.description);
  }

  /**
   * Quantise `x` (`[rows, cols]`) with one scale per 1×`tile` tile on the GPU; returns the codes.
   */
  async quantize(
    x: Float32Array,
    shape: readonly [number, number],
    scales: Float32Array,
    options: { format: Fp8Format; saturate?: boolean; tile?: number },
  ): Promise<Uint8Array> {
    const [rows, cols] = shape;
    const tile = options.tile ?? 128, saturate = options.saturate ?? true;
    const tilesPerRow = Math.ceil(cols / tile);
    if (scales.length !== rows * tilesPerRow) {
      throw new RangeError(
        `Cannot quantize [${rows}, ${cols}] with ${scales.length} scales: expected ${
          rows * tilesPerRow
        }`,
      );
    }
    const key = `${options.format.name}:${saturate}`;
    let pipeline = this.#pipelines.get(key);
    if (pipeline === undefined) {
      const module = this.device.createShaderModule({
        code: quantizeKernelWgsl(options.format, saturate),
      });
      pipeline = this.device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      this.#pipelines.set(key, pipeline);
    }
    const n = rows * cols;
    const upload = (data: ArrayBufferView, usage: number) => {
      const b = this.device.createBuffer({
        size: Math.max(16, Math.ceil(data.byteLength / 4) * 4),
        usage,
        mappedAtCreation: true,
      });
      new Uint8Array(b.getMappedRange()).set(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
      b.unmap();
      return b;
    };
    const S = GPUBufferUsage.STORAGE;
    const params = upload(Uint32Array.from([n, cols, tile, tilesPerRow]), S);
    const xb = upload(x, S), sb = upload(scales, S);
    const out = this.device.createBuffer({
      size: Math.max(16, n * 4),
      usage: S | GPUBufferUsage.COPY_SRC,
    });
    const staging = this.device.createBuffer({
      size: Math.max(16, n * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const bind = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [params, out, xb, sb].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    const groups = Math.ceil(n / 256), y = Math.ceil(groups / 65535);
    pass.dispatchWorkgroups(Math.ceil(groups / y), y);
    pass.end();
    enc.copyBufferToBuffer(out, 0, staging, 0, Math.max(16, n * 4));
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const codes = Uint8Array.from(new Uint32Array(staging.getMappedRange().slice(0, n * 4)));
    staging.unmap();
    for (const b of [params, xb, sb, out, staging]) b.destroy();
    return codes;
  }
}
