/**
 * Shape arithmetic: sizes, row-major strides, broadcasting and axis normalisation, with errors
 * that name the op and both shapes.
 *
 * @module
 */

/** A tensor shape. */
export type Shape = readonly number[];

/** Format a shape as `[2, 3]` for error messages. */
export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Number of elements of `shape` (1 for a scalar). */
export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/** Throw unless every dimension is a non-negative integer. */
export function checkShape(shape: Shape, op: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(
        `Cannot ${op} with shape ${formatShape(shape)}: dimensions must be non-negative integers`,
      );
    }
  }
}

/** The broadcast shape of `a` and `b` (NumPy rules), or an error naming both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `Cannot ${op} shapes ${formatShape(a)} and ${formatShape(b)}: ` +
          `dimension ${i} is ${da} vs ${db} and neither is 1`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalise a possibly negative axis for a tensor of `rank`. */
export function normalizeAxis(axis: number, rank: number, op: string): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1)) {
    throw new Error(`Cannot ${op} along axis ${axis}: expected an integer in [${-rank}, ${rank})`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Normalise a list of axes (default: all), sorted and without duplicates. */
export function normalizeAxes(
  axes: number | readonly number[] | undefined,
  rank: number,
  op: string,
): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === "number" ? [axes] : axes;
  const out = list.map((a) => normalizeAxis(a, rank, op));
  if (new Set(out).size !== out.length) {
    throw new Error(`Cannot ${op} along axes [${list.join(", ")}]: an axis is repeated`);
  }
  return out.sort((x, y) => x - y);
}
