/**
 * Helpers shared by the bench sections: best-of timing and the rows of a table comparing
 * implementations against the first one.
 *
 * @module
 */

/** Best (minimum) milliseconds of the async `fn` over `reps` runs after one warm-up. */
export async function bestMs(fn: () => void | Promise<void>, reps: number): Promise<number> {
  await fn();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/** One implementation of a comparison: its name, why it cannot run (`null`: it can), its run. */
export type Impl = [name: string, why: string | null, run: () => Promise<number>];

/**
 * Run each implementation (one that cannot run or throws gets a line saying so) and print one
 * Markdown row per implementation, `| label | name | ms | ratio |`, the ratio its ms over the
 * first implementation's.
 */
export async function printComparison(label: string, impls: readonly Impl[]): Promise<void> {
  const rows: [string, number | string][] = [];
  for (const [name, why, run] of impls) {
    if (why !== null) {
      rows.push([name, `not available: ${why}`]);
      continue;
    }
    try {
      rows.push([name, await run()]);
    } catch (e) {
      rows.push([name, `failed: ${(e as Error).message.split("\n")[0]}`]);
    }
  }
  const ours = rows[0][1];
  for (const [name, ms] of rows) {
    if (typeof ms === "string") {
      console.log(`| ${label} | ${name} | ${ms} | |`);
      continue;
    }
    const ratio = typeof ours === "number" ? `${(ms / ours).toFixed(2)}×` : "";
    console.log(`| ${label} | ${name} | ${ms.toFixed(1)} | ${ratio} |`);
  }
}
