/**
 * The WGSL FP8 codecs agree with the reference (`format.ts`) bit for bit: every code's value,
 * every midpoint between neighbours and its float32 neighbours, overflow, specials and random
 * values, for both formats and both overflow modes. Skips with a message without an adapter.
 */
import { deepStrictEqual } from "node:assert/strict";
import { decodeTable, E4M3, E5M2, encodeFp8, type Fp8Format } from "../../lib/fp8/format.ts";
import { GpuFp8Quantizer } from "../../lib/fp8/wgsl.ts";
import { Rng } from "../../lib/tensor/random.ts";

let gpu: GpuFp8Quantizer | null = null;
let reason = "";
try {
  gpu = await GpuFp8Quantizer.create();
} catch (e) {
  reason = (e as Error).message;
}
if (gpu === null) console.log(`WebGPU FP8 codec tests skipped: ${reason}`);

function nextUp(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
  u[0] += x >= 0 ? 1 : -1;
  return f[0];
}

function probeValues(format: Fp8Format): Float32Array {
  const values: number[] = [0, -0, Infinity, -Infinity, NaN, 1e-30, -1e-30, 1e30, -1e30];
  const table = Array.from(decodeTable(format)).filter((v) => Number.isFinite(v)).sort((a, b) =>
    a - b
  );
  for (let i = 0; i < table.length; i++) {
    const v = table[i];
    values.push(v, nextUp(v), -nextUp(-v));
    if (i + 1 < table.length) {
      const mid = Math.fround((v + table[i + 1]) / 2);
      values.push(mid, nextUp(mid), -nextUp(-mid));
    }
  }
  for (const big of [format.max * 1.03, format.max * 1.07, format.max * 1.2, format.max * 2]) {
    values.push(big, -big);
  }
  const rng = new Rng(7);
  for (let i = 0; i < 20_000; i++) {
    values.push(rng.normal(0, format.max / 8) * Math.exp(rng.normal(0, 4)));
  }
  return Float32Array.from(values);
}

for (const format of [E4M3, E5M2]) {
  for (const saturate of [true, false]) {
    Deno.test({
      name: `WGSL ${format.name} encoder equals format.ts bit for bit (saturate: ${saturate})`,
      ignore: gpu === null,
      fn: async () => {
        const x = probeValues(format);
        const codes = await (gpu as GpuFp8Quantizer).quantize(
          x,
          [1, x.length],
          new Float32Array([1]),
          {
            format,
            saturate,
            tile: x.length,
          },
        );
        const want = Array.from(x, (v) => encodeFp8(v, format, { saturate }));
        const bad = want.findIndex((c, i) => c !== codes[i]);
        deepStrictEqual(
          bad,
          -1,
          bad < 0 ? "" : `x = ${x[bad]}: gpu ${codes[bad]} vs cpu ${want[bad]}`,
        );
      },
    });
  }
}
