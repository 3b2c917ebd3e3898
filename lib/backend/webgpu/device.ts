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
    },
  });
  const info = adapter.info;
  const description = info.description || `${info.vendor} ${info.device}`.trim() ||
    "unknown adapter";
  const isCpuFallback = info.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader/i.test(description);
  return { adapter, device, description, isCpuFallback };
}
