/**
 * The WebGPU backend for a test file, or `null` where no adapter exists (the file's tests then
 * skip; the reason is printed once, naming the fix).
 *
 * @module
 */
import type { WebGpuBackend } from "../lib/backend/webgpu.ts";

/**
 * Acquire a WebGPU backend for tests; on failure print `<what> skipped: <reason>`.
 *
 * @param what The tests that need it, for the skip message.
 * @returns The backend, or `null`.
 */
export async function webgpuForTests(what: string): Promise<WebGpuBackend | null> {
  try {
    const { createWebGpuBackend } = await import("../lib/backend/webgpu.ts");
    return await createWebGpuBackend();
  } catch (e) {
    console.log(`${what} skipped: ${(e as Error).message}`);
    return null;
  }
}
