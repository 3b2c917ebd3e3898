/**
 * The FP8 Backend operations (`fp8Quantize`, `fp8Dequantize`, `fp8Matmul`) on wasm and WebGPU
 * equal the cpu backend — which runs the `lib/fp8` definitions themselves — bit for bit: codes,
 * scales, dequantised values and the simulated GEMM, across granularities, formats, overflow
 * modes, power-of-two scales, odd sizes and special values; and the encoders agree with
 * `encodeFp8` on every code, every midpoint and its float32 neighbours. WebGPU cases skip with a
 * message without an adapter.
 */
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type {
  Backend,
  Fp8BlockSpec,
  Fp8MatmulSpec,
  Fp8Storages,
  HostArray,
} from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { createWasmBackend } from "../../lib/backend/wasm.ts";
import { decodeTable, E4M3, E5M2, encodeFp8, type Fp8Format } from "../../lib/fp8/format.ts";
import { fp8Matmul } from "../../lib/fp8/gemm.ts";
import { dequantizeFp8, quantizeFp8 } from "../../lib/fp8/scaling.ts";
import { Rng } from "../../lib/tensor/random.ts";
import { webgpuForTests } from "../_gpu.ts";

const cpu = new CpuBackend();
const wasm = await createWasmBackend({ threads: 1 });
// every op split between two threads, however small
const wasm2 = await createWasmBackend({ threads: 2, parallelMinElements: 1 });
const gpu = await webgpuForTests("WebGPU FP8 kernel tests");
const OTHERS: [string, Backend | null][] = [
  ["wasm", wasm],
  ["wasm on 2 threads", wasm2],
  ["webgpu", gpu],
];
globalThis.addEventListener("unload", () => wasm2.close());

/** The index of the first element where `got` and `want` differ as bits (`-1` if none). */
function firstDifference(got: HostArray, want: HostArray): number {
  if (got.length !== want.length) return Math.min(got.length, want.length);
  return Array.from(want).findIndex((v, i) => !Object.is(v, got[i]));
}

function assertBits(got: HostArray, want: HostArray, what: string): void {
  const bad = firstDifference(got, want);
  deepStrictEqual(bad, -1, bad < 0 ? "" : `${what}[${bad}]: ${got[bad]} vs cpu ${want[bad]}`);
}

/** Wide-ranged values with zeros, NaN, ±inf, a float32 subnormal and a constant tile. */
function testMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = Float32Array.from(
    { length: rows * cols },
    () => rng.normal() * Math.exp(rng.normal(0, 3)),
  );
  x.fill(0, 0, Math.min(cols, 130)); // an all-zero row start: the amax floor
  x[cols + 5] = NaN;
  x[cols + 7] = Infinity;
  x[2 * cols + 1] = -Infinity;
  x[3 * cols + 2] = 1e-42;
  return x;
}

for (const [name, backend] of OTHERS) {
  Deno.test({
    name: `${name}: fp8Quantize() and fp8Dequantize() equal the cpu backend bit for bit`,
    ignore: backend === null,
    fn: async () => {
      const b = backend as Backend;
      const rows = 259, cols = 300;
      const x = testMatrix(rows, cols, 3);
      // 128 and 7: blocks a multiple of 4 wide share a scale per 4 values in the SIMD kernels,
      // 7-wide ones do not
      for (
        const [granularity, tileSize] of [
          ["tile", 128],
          ["block", 128],
          ["column", 128],
          ["tensor", 128],
          ["tile", 7],
          ["block", 7],
        ] as const
      ) {
        for (const format of ["e4m3", "e5m2"] as const) {
          for (const [saturate, powerOfTwo] of [[true, false], [false, true]]) {
            const spec = {
              rows,
              cols,
              granularity,
              tileSize,
              format,
              saturate,
              amaxFloor: 1e-4,
              powerOfTwo,
            };
            const what =
              `${granularity} ${tileSize} ${format} saturate ${saturate} powerOfTwo ${powerOfTwo}`;
            const want = cpu.fp8Quantize(cpu.upload("f32", x), spec);
            const got = b.fp8Quantize(b.upload("f32", x), spec);
            assertBits(await b.read(got.scales), cpu.readSync(want.scales), `${what} scales`);
            assertBits(await b.read(got.codes), cpu.readSync(want.codes), `${what} codes`);
            assertBits(
              await b.read(b.fp8Dequantize(got.codes, got.scales, spec)),
              cpu.readSync(cpu.fp8Dequantize(want.codes, want.scales, spec)),
              `${what} values`,
            );
          }
        }
      }
    },
  });
}

Deno.test("cpu: fp8Quantize() is quantizeFp8 of lib/fp8/scaling.ts, also on a float64 backend", () => {
  const x = testMatrix(5, 300, 4);
  const want = quantizeFp8(x, [5, 300], { granularity: "tile" });
  for (const backend of [cpu, new CpuBackend({ float64: true })]) {
    const spec = {
      rows: 5,
      cols: 300,
      granularity: "tile",
      tileSize: 128,
      format: "e4m3",
      saturate: true,
      amaxFloor: 1e-4,
      powerOfTwo: false,
    } as const;
    const q = backend.fp8Quantize(backend.upload("f32", x), spec);
    deepStrictEqual(backend.readSync(q.codes), want.codes);
    deepStrictEqual(Float32Array.from(backend.readSync(q.scales)), want.scales);
    const values = backend.readSync(backend.fp8Dequantize(q.codes, q.scales, spec));
    deepStrictEqual(Float32Array.from(values), dequantizeFp8(want));
  }
});

function nextUp(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
  u[0] += x >= 0 ? 1 : -1;
  return f[0];
}

/** Every finite code's value, each midpoint between neighbours, their float32 neighbours. */
function probeValues(format: Fp8Format): Float32Array {
  const values: number[] = [0, -0, Infinity, -Infinity, NaN, 1e-30, -1e-30, 1e30, -1e30];
  const table = Array.from(decodeTable(format)).filter((v) => Number.isFinite(v))
    .sort((a, b) => a - b);
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

for (const [name, backend] of OTHERS) {
  for (const format of [E4M3, E5M2]) {
    Deno.test({
      name: `${name}: the ${format.name} encoder equals encodeFp8 bit for bit (given scale 1)`,
      ignore: backend === null,
      fn: async () => {
        const b = backend as Backend;
        const x = probeValues(format);
        for (const saturate of [true, false]) {
          const spec = {
            rows: 1,
            cols: x.length,
            granularity: "tensor",
            tileSize: 128,
            format: format.name,
            saturate,
            amaxFloor: 1e-4,
            powerOfTwo: false,
          } as const;
          const q = b.fp8Quantize(b.upload("f32", x), spec, b.upload("f32", [1]));
          const want = Uint8Array.from(x, (v) => encodeFp8(v, format, { saturate }));
          assertBits(await b.read(q.codes), want, `codes (saturate ${saturate}) of x = …`);
        }
      },
    });
  }
}

/** A quantised `[rows, cols]` operand on `backend`. */
function operand(backend: Backend, x: Float32Array, spec: Fp8BlockSpec): Fp8Storages {
  return backend.fp8Quantize(backend.upload("f32", x), {
    ...spec,
    saturate: true,
    amaxFloor: 1e-4,
    powerOfTwo: false,
  });
}

/**
 * The GEMM `[m, k] · [k, n]` of E4M3 tiles (A) by blocks (B), or per-tensor scales; a 14-bit
 * truncating accumulator promoted every 128 unless `options` says otherwise.
 */
function gemmSpec(
  [m, k, n]: [number, number, number],
  options: Partial<Fp8MatmulSpec> & {
    perTensor?: boolean;
    formatB?: "e4m3" | "e5m2";
    granularityB?: "block" | "column";
  } = {},
): Fp8MatmulSpec {
  const { perTensor = false, formatB = "e4m3", granularityB = "block", ...rest } = options;
  const block = (rows: number, cols: number, g: "tile" | "block" | "column") =>
    ({ rows, cols, granularity: perTensor ? "tensor" : g, tileSize: 128, format: "e4m3" }) as const;
  return {
    m,
    n,
    k,
    a: block(m, k, "tile"),
    b: { ...block(k, n, granularityB), format: formatB },
    accumulatorBits: 14,
    accumulatorRounding: "truncate",
    promotionInterval: 128,
    ...rest,
  };
}

for (const [name, backend] of OTHERS) {
  Deno.test({
    name:
      `${name}: fp8Matmul() equals the cpu backend bit for bit (accumulator width, rounding, promotion)`,
    ignore: backend === null,
    fn: async () => {
      const b = backend as Backend;
      const rng = new Rng(5);
      const [m, k, n] = [5, 384, 7];
      const xa = Float32Array.from({ length: m * k }, () => rng.normal() * Math.exp(rng.normal()));
      const xb = Float32Array.from({ length: k * n }, () => rng.normal());
      for (const accumulatorRounding of ["truncate", "nearest"] as const) {
        for (const accumulatorBits of [5, 14, 23]) {
          for (const promotionInterval of [32, 128, Infinity]) {
            for (
              const [formatB, granularityB] of [
                ["e4m3", "block"],
                ["e5m2", "block"],
                ["e4m3", "column"], // 128×1 tiles: Wgrad's activations (lib/fp8/linear.ts)
              ] as const
            ) {
              const spec = gemmSpec([m, k, n], {
                accumulatorRounding,
                accumulatorBits,
                promotionInterval,
                formatB,
                granularityB,
                perTensor: promotionInterval === Infinity, // never promoting: one scale along K
              });
              const run = (on: Backend) =>
                on.fp8Matmul(operand(on, xa, spec.a), operand(on, xb, spec.b), spec);
              assertBits(
                await b.read(run(b)),
                cpu.readSync(run(cpu)),
                `${accumulatorRounding} ${accumulatorBits} bits every ${promotionInterval} ×${formatB} ${granularityB}`,
              );
            }
          }
        }
      }
    },
  });
}

Deno.test("wasm: fp8Matmul() on 2 threads equals the cpu backend bit for bit: partial panels, NaN and infinite codes, 1 to 52 accumulator bits", () => {
  const [m, k, n] = [37, 300, 45]; // 45 columns: panels of 16, 16 and 13; K: 128, 128, 44
  const xa = testMatrix(m, k, 8).map((v) => (Number.isFinite(v) || Number.isNaN(v) ? v : 1e3));
  const rng = new Rng(9);
  const xb = Float32Array.from({ length: k * n }, () => rng.normal() * Math.exp(rng.normal()));
  [xb[3 * n + 10], xb[4 * n + 20], xb[5 * n + 30]] = [1e6, -1e6, NaN]; // inf, -inf, NaN codes
  for (const accumulatorRounding of ["truncate", "nearest"] as const) {
    for (const accumulatorBits of [1, 14, 52]) {
      for (const promotionInterval of [64, Infinity]) {
        const spec = gemmSpec([m, k, n], {
          accumulatorRounding,
          accumulatorBits,
          promotionInterval,
          formatB: "e5m2",
          granularityB: "column",
          perTensor: promotionInterval === Infinity,
        });
        const run = (on: Backend) => {
          // B with scales 1 and no saturation: past 57344 the codes are ±inf
          const ones = on.upload(
            "f32",
            new Array(promotionInterval === Infinity ? 1 : 3 * n).fill(1),
          );
          const b = on.fp8Quantize(on.upload("f32", xb), {
            ...spec.b,
            saturate: false,
            amaxFloor: 1e-4,
            powerOfTwo: false,
          }, ones);
          return on.fp8Matmul(operand(on, xa, spec.a), b, spec);
        };
        const want = cpu.readSync(run(cpu));
        const what = `${accumulatorRounding} ${accumulatorBits} bits every ${promotionInterval}`;
        ok(
          [Number.isNaN, (v: number) => v === Infinity, (v: number) => v === -Infinity, (
            v: number,
          ) => Number.isFinite(v) && v !== 0].every((p) => want.some(p)),
          `${what}: NaN, ±inf and finite results expected`,
        );
        assertBits(wasm2.readSync(run(wasm2)), want, what);
      }
    }
  }
});

Deno.test("cpu: fp8Matmul() is fp8Matmul of lib/fp8/gemm.ts", () => {
  const rng = new Rng(6);
  const xa = Float32Array.from({ length: 3 * 256 }, () => rng.normal());
  const xb = Float32Array.from({ length: 256 * 4 }, () => rng.normal());
  const spec = gemmSpec([3, 256, 4]);
  const want = fp8Matmul(
    quantizeFp8(xa, [3, 256]),
    quantizeFp8(xb, [256, 4], { granularity: "block" }),
  );
  const got = cpu.fp8Matmul(operand(cpu, xa, spec.a), operand(cpu, xb, spec.b), spec);
  deepStrictEqual(cpu.readSync(got), want);
});

Deno.test("fp8Matmul() names the mismatch: shapes, promotion across scale groups, WebGPU width", async () => {
  const base = gemmSpec([2, 256, 3]);
  const xa = new Float32Array(2 * 256).fill(1), xb = new Float32Array(256 * 3).fill(1);
  for (const backend of [wasm, ...(gpu ? [gpu] : [])]) {
    const [a, b] = [operand(backend, xa, base.a), operand(backend, xb, base.b)];
    throws(
      () => backend.fp8Matmul(a, b, { ...base, promotionInterval: 96 }),
      /Cannot promote every 96 elements of K: A's scales change every 128/,
    );
    throws(
      () => backend.fp8Matmul(a, b, { ...base, k: 255 }),
      /Cannot matmul FP8 shapes \[2, 256\] and \[256, 3\]/,
    );
  }
  if (gpu) {
    const [a, b] = [operand(gpu, xa, base.a), operand(gpu, xb, base.b)];
    throws(
      () => gpu.fp8Matmul(a, b, { ...base, accumulatorBits: 30 }),
      /Cannot simulate a 30-bit FP8 accumulator on webgpu: expected at most 23/,
    );
    const c = await gpu.read(gpu.fp8Matmul(a, b, base)); // Σ of 256 ones, through the scales
    ok(c.every((v) => Math.abs(v - 256) < 1e-3), `${c}`);
  }
});
