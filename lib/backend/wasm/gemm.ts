/**
 * The SGEMM driver shared by the main thread and the workers: splits a batched matmul among
 * `T` threads and runs thread `t`'s share with the packing and micro kernels of `kernels.ts`.
 *
 * Blocking (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication", 2008):
 * K in blocks of KC; for each, the thread packs its columns of op(B) once (`[panel][KC][8]`,
 * kept in its L2), then walks A in blocks of MC rows (packed `[block][KC][6]`, also L2) and
 * runs the 6×8 micro-kernel over every (row block, panel) pair; K blocks after the first
 * accumulate into C. Split among threads: whole batch entries when `batch ≥ T`, else the operand
 * that is larger to pack — the 8-column panels of B when `n > m`, the 6-row blocks of A
 * otherwise — so no thread packs the big operand whole (training's `[2048, 256] · [256, 683]`
 * splits A). Edge blocks go through a 6×8 scratch tile. Packing has vector fast paths for full
 * 8-column panels of untransposed B and full 6-row blocks of transposed A.
 *
 * @module
 */

import { type GemmExports, MR, NR } from "./kernels.ts";

/** K per block: 256 · 8 floats of B per panel fit in L1. */
export const KC = 256;
/** Rows of A per block (a multiple of MR): 120 · KC · 4 bytes = 120 KiB in L2. */
export const MC = MR * 20;

/** Integer fields of a job, in the order they are stored in the control block. */
export const JOB_FIELDS = [
  "a",
  "b",
  "c",
  "batch",
  "m",
  "n",
  "k",
  "transA",
  "transB",
  "strideA",
  "strideB",
  "scratch",
  "scratchPerThread",
] as const;

/** A batched matmul over byte addresses in the shared memory (see `MatmulSpec`). */
export type GemmJob = Record<(typeof JOB_FIELDS)[number], number>;

/** Scratch bytes one thread needs for a `[m, k] · [k, n]` product. */
export function scratchBytes(m: number, n: number, k: number): number {
  const kc = Math.max(1, Math.min(KC, k));
  const packedA = Math.min(MC, Math.ceil(m / MR) * MR) * kc * 4;
  const packedB = Math.ceil(n / NR) * NR * kc * 4;
  return packedA + packedB + MR * NR * 4 + 64;
}

function range(count: number, t: number, threads: number): [number, number] {
  return [Math.floor((count * t) / threads), Math.floor((count * (t + 1)) / threads)];
}

/** Run thread `t`'s share of `job` (of `threads`). `memory` is the shared memory. */
export function gemmPart(
  ex: GemmExports,
  memory: WebAssembly.Memory,
  job: GemmJob,
  t: number,
  threads: number,
): void {
  const { m, n, k, batch } = job;
  const panels = Math.ceil(n / NR), blocks = Math.ceil(m / MR);
  const kcMax = Math.max(1, Math.min(KC, k));
  const packA = job.scratch + t * job.scratchPerThread;
  const packB = packA + Math.min(MC, blocks * MR) * kcMax * 4;
  const tile = packB + panels * NR * kcMax * 4;
  // Byte strides of element (r, p) of op(A) and (p, j) of op(B).
  const [ars, aps] = job.transA ? [4, 4 * m] : [4 * k, 4];
  const [bps, bcs] = job.transB ? [4, 4 * k] : [4 * n, 4];
  const f32 = new Float32Array(memory.buffer);
  const mcBlocks = MC / MR;

  const share = (bi: number, p0: number, p1: number, r0: number, r1: number) => {
    if (p0 >= p1 || r0 >= r1) return;
    const aBase = job.a + bi * job.strideA * 4, bBase = job.b + bi * job.strideB * 4;
    const cBase = job.c + bi * m * n * 4;
    for (let k0 = 0; k0 < k || k0 === 0; k0 += KC) {
      const kc = Math.min(KC, k - k0);
      const add = k0 > 0;
      for (let panel = p0; panel < p1; panel++) {
        const col0 = panel * NR;
        const dst = packB + (panel - p0) * NR * kcMax * 4;
        ex.packB(bBase + col0 * bcs + k0 * bps, bps, bcs, kc, Math.min(NR, n - col0), dst);
      }
      for (let mb = r0; mb < r1; mb += mcBlocks) {
        const mbEnd = Math.min(r1, mb + mcBlocks);
        ex.packA(
          aBase + mb * MR * ars + k0 * aps,
          ars,
          aps,
          Math.min(m, mbEnd * MR) - mb * MR,
          kc,
          packA,
        );
        for (let panel = p0; panel < p1; panel++) {
          const col0 = panel * NR, cols = Math.min(NR, n - col0);
          const bp = packB + (panel - p0) * NR * kcMax * 4;
          for (let blk = mb; blk < mbEnd; blk++) {
            const row0 = blk * MR, rows = Math.min(MR, m - row0);
            const ap = packA + (blk - mb) * MR * kc * 4;
            if (rows === MR && cols === NR) {
              const c = cBase + (row0 * n + col0) * 4;
              if (add) ex.microAdd(ap, bp, c, n * 4, kc);
              else ex.micro(ap, bp, c, n * 4, kc);
            } else {
              ex.micro(ap, bp, tile, NR * 4, kc);
              for (let r = 0; r < rows; r++) {
                const d = (cBase >> 2) + (row0 + r) * n + col0, s = (tile >> 2) + r * NR;
                if (add) { for (let j = 0; j < cols; j++) f32[d + j] += f32[s + j]; }
                else for (let j = 0; j < cols; j++) f32[d + j] = f32[s + j];
              }
            }
          }
        }
      }
      if (k === 0) break;
    }
  };

  if (batch >= threads) {
    for (let bi = t; bi < batch; bi += threads) share(bi, 0, panels, 0, blocks);
  } else {
    // Each thread packs all of the operand it does not split: split the panels of B when B is
    // the larger operand (n > m) or A has too few row blocks, else the row blocks of A.
    const byPanels = panels >= threads && (n > m || blocks < threads);
    for (let bi = 0; bi < batch; bi++) {
      if (byPanels) {
        const [p0, p1] = range(panels, t, threads);
        share(bi, p0, p1, 0, blocks);
      } else {
        const [r0, r1] = range(blocks, t, threads);
        share(bi, 0, panels, r0, r1);
      }
    }
  }
}
