import { deepStrictEqual, rejects, throws } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { loadBackend } from "../../lib/backend/mod.ts";
import type { View } from "../../lib/backend/backend.ts";

const cpu = new CpuBackend();
const view = (storage: View["storage"], shape: number[], strides: number[], offset = 0): View => ({
  storage,
  shape,
  strides,
  offset,
});

Deno.test("CpuBackend.copy() materialises strided and broadcast views", () => {
  const s = cpu.upload("f32", [0, 1, 2, 3, 4, 5]);
  // Transpose of a [2, 3] matrix.
  deepStrictEqual(Array.from(cpu.readSync(cpu.copy(view(s, [3, 2], [1, 3])))), [0, 3, 1, 4, 2, 5]);
  // Broadcast a row (stride 0) with an offset.
  deepStrictEqual(Array.from(cpu.readSync(cpu.copy(view(s, [2, 2], [0, 1], 4)))), [4, 5, 4, 5]);
});

Deno.test("CpuBackend.assign() writes into a strided window in place", () => {
  const dst = cpu.fill("f32", 6, 0);
  const src = cpu.upload("f32", [7, 8]);
  cpu.assign(view(dst, [2], [3], 1), view(src, [2], [1]));
  deepStrictEqual(Array.from(cpu.readSync(dst)), [0, 7, 0, 0, 8, 0]);
});

Deno.test("CpuBackend.matmul() honours offsets, batch strides and transposes", () => {
  const a = cpu.upload("f32", [9, 1, 2, 3, 4]); // A = [[1, 2], [3, 4]] at offset 1
  const b = cpu.upload("f32", [1, 0, 0, 1, 2, 0, 0, 2]); // two identities (×1, ×2)
  const c = cpu.matmul(a, b, {
    batch: 2,
    m: 2,
    n: 2,
    k: 2,
    transA: true,
    transB: false,
    offsetA: 1,
    offsetB: 0,
    strideA: 0,
    strideB: 4,
  });
  deepStrictEqual(Array.from(cpu.readSync(c)), [1, 3, 2, 4, 2, 6, 4, 8]);
});

Deno.test("CpuBackend: released storages and foreign storages fail loudly", () => {
  const s = cpu.upload("f32", [1]);
  cpu.release(s);
  throws(() => cpu.readSync(s), /Cannot use a released cpu storage/);
  throws(() => cpu.readSync({ size: 1, dtype: "f32" }), /storage from another backend/);
});

Deno.test("float64 mode stores f32 tensors as Float64Array", () => {
  const f64 = new CpuBackend({ float64: true });
  const s = f64.upload("f32", [0.1]);
  deepStrictEqual(f64.readSync(s)[0], 0.1);
  deepStrictEqual(cpu.readSync(cpu.upload("f32", [0.1]))[0], Math.fround(0.1));
});

Deno.test("loadBackend() names the available backends for an unknown one", async () => {
  deepStrictEqual((await loadBackend("cpu")).name, "cpu");
  await rejects(
    // deno-lint-ignore no-explicit-any
    () => loadBackend("tpu" as any),
    /Cannot load backend 'tpu': available backends are 'cpu', 'webgpu', 'wasm'/,
  );
});
