/**
 * Loading the PyTorch golden fixtures of tests/fixtures/nn/ (written by make_nn.py) and
 * checking a module's forward and gradients against one case, on the f32 cpu backend and on the
 * float64 cpu backend, each within the tolerance recorded in the fixture's `meta`.
 *
 * @module
 */

import { strictEqual } from "node:assert/strict";
import { getBackend, withBackend } from "../../lib/backend/mod.ts";
import { mul, sum, type Tensor, tensor } from "../../lib/tensor/mod.ts";
import { assertAllClose, F64, gradOf } from "../_utils.ts";

/** Tolerances of one precision. */
export interface Tolerance {
  atol: number;
  rtol: number;
}

/** One case: named inputs, upstream gradient `dy`, expected `y` and input gradients. */
export interface FixtureCase {
  name: string;
  shapes: Record<string, number[]>;
  inputs: Record<string, number[]>;
  dy: number[];
  y: number[];
  grads: Record<string, number[]>;
  [extra: string]: unknown;
}

/** A fixture file. */
export interface Fixture {
  meta: {
    generator: string;
    reference: string;
    seed: number;
    tolerance: Record<string, Tolerance>;
  };
  kind: string;
  cases: FixtureCase[];
}

/** Read `tests/fixtures/nn/<name>.json`. */
export function loadFixture(name: string): Fixture {
  const url = new URL(`../fixtures/nn/${name}.json`, import.meta.url);
  return JSON.parse(Deno.readTextFileSync(url)) as Fixture;
}

/**
 * Run `fn` on the case's inputs (as leaves with gradients), backpropagate `L = Σ y ⊙ dy`, and
 * compare `y` and every input gradient with the fixture, on f32 and on float64.
 */
export function checkFixtureCase(
  fixture: Fixture,
  c: FixtureCase,
  fn: (inputs: Record<string, Tensor>) => Tensor,
): void {
  const precisions = [["f32", getBackend()], ["f64", F64]] as const;
  for (const [precision, backend] of precisions) {
    const tol = fixture.meta.tolerance[precision];
    withBackend(backend, () => {
      const inputs: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(c.inputs)) {
        inputs[k] = tensor(v, { shape: c.shapes[k], requiresGrad: true });
      }
      const y = fn(inputs);
      const where = `${fixture.kind}/${c.name} (${precision})`;
      strictEqual(y.shape.join(","), c.shapes.y.join(","), `${where}: output shape`);
      assertAllClose(y, c.y, { ...tol, message: `${where}: y` });
      sum(mul(y, tensor(c.dy, { shape: c.shapes.y }))).backward();
      for (const [k, g] of Object.entries(c.grads)) {
        assertAllClose(gradOf(inputs[k]), g, { ...tol, message: `${where}: d${k}` });
      }
    });
  }
}
