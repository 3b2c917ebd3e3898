/**
 * Rendering Vega-Lite specs to SVG headlessly: Vega-Lite compiles the spec to Vega, and a Vega
 * `View` with no renderer (`renderer: "none"`) writes the scene graph as SVG markup. No browser,
 * no canvas: text widths are estimated, which is fine for reports.
 *
 * Vega's SVG writer escapes text and attribute values, so names from the store cannot inject
 * markup into the SVG.
 *
 * @module
 */

import * as vega from "vega";
import { compile } from "vega-lite";
import type { VegaLiteSpec } from "./vega_lite.ts";

/**
 * Compile a Vega-Lite spec to a Vega spec (throws with Vega-Lite's message on a bad spec).
 *
 * @param spec The Vega-Lite spec.
 * @returns The Vega spec.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { compileSpec } from "./render.ts";
 * const vg = compileSpec({ data: { values: [{ a: 1 }] }, mark: "point", encoding: { x: { field: "a", type: "quantitative" } } });
 * assertEquals(Array.isArray(vg.marks), true);
 * ```
 */
export function compileSpec(spec: VegaLiteSpec): vega.Spec {
  return compile(spec).spec;
}

/**
 * Render a Vega-Lite spec to a standalone SVG document (white background).
 *
 * @param spec The Vega-Lite spec, with its data inline.
 * @returns SVG markup starting with `<svg`.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { renderSvg } from "./render.ts";
 * const svg = await renderSvg({
 *   data: { values: [{ v: "a", y: 1 }, { v: "b", y: 2 }] },
 *   mark: "bar",
 *   encoding: { x: { field: "v", type: "nominal" }, y: { field: "y", type: "quantitative" } },
 * });
 * assertEquals(svg.match(/aria-roledescription="bar"/g)?.length, 2);
 * ```
 */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const view = new vega.View(vega.parse(compileSpec(spec)), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
