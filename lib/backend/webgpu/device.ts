/**
 * Adapter and device acquisition, with a message that names the fix when there is none.
 *
 * @module
 */

/** The adapter and device a WebGPU backend runs on. */
export interface GpuContext {
  adapter: GPUAdapter;
  device: GPUDevice;
  /** e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  description: string;
  /** Mesa's CPU drivers (llvmpipe/lavapipe) or another fallback adapter. */
  isCpuFallback: boolean;
}

/** The error thrown when no adapter exists. */
export const NO_ADAPTER_MESSAGE = "Cannot use the WebGPU backend: no GPU adapter was found " +
  "(navigator.gpu.requestAdapter() returned null). Install a driver (on Debian: " +
  "apt-get install -y mesa-vulkan-drivers) or choose another backend with --backend cpu";

/** Request a high-performance adapter and a device with its full limits. */
export async function acquireGpu(): Promise<GpuContext> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error(NO_ADAPTER_MESSAGE);
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (adapter === null) throw new Error(NO_ADAPTER_MESSAGE);
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      maxTextureDimension2D: limits.maxTextureDimension2D,
    },
  });
  const info = adapter.info;
  const description = info.description || `${info.vendor} ${info.device}`.trim() ||
    "unknown adapter";
  const isCpuFallback = isCpuAdapter(info);
  return { adapter, device, description, isCpuFallback };
}

/**
 * Whether an adapter is a CPU implementation of WebGPU rather than a GPU: a fallback adapter, or
 * one whose vendor, architecture, device or description names Mesa's llvmpipe/lavapipe or
 * Google's SwiftShader. Such adapters want the CPU-driver-shaped matmul kernels (workgroup
 * barriers are expensive there, see shared/notes/webgpu.md).
 *
 * @param info The adapter's `GPUAdapter.info`.
 * @returns `true` for a CPU implementation.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isCpuAdapter } from "./device.ts";
 * const info = { vendor: "mesa", architecture: "", device: "", isFallbackAdapter: false,
 *   description: "llvmpipe (LLVM 15.0.6, 256 bits)" } as unknown as GPUAdapterInfo;
 * equal(isCpuAdapter(info), true);
 * equal(isCpuAdapter({ ...info, description: "NVIDIA H200" } as GPUAdapterInfo), false);
 * ```
 */
export function isCpuAdapter(info: GPUAdapterInfo): boolean {
  if (info.isFallbackAdapter === true) return true;
  const names = [info.vendor, info.architecture, info.device, info.description].join(" ");
  return /llvmpipe|lavapipe|swiftshader/i.test(names);
}
