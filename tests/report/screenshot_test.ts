/**
 * The HTML report in a real browser: headless Chromium (Debian's `chromium`) loads
 * `report/index.html` written from a synthetic store, and its screenshot is not blank and its DOM
 * holds every chart the report announced. Skips with a message where Chromium is absent; CI
 * installs it.
 */
import { ok, strictEqual } from "node:assert/strict";
import { writeReport } from "../../lib/report/html.ts";
import { decodePng, lumaVariance } from "../_png.ts";
import { writeSyntheticStore } from "./_store.ts";

const CHROMIUM = "/usr/bin/chromium";

async function chromiumReason(): Promise<string | null> {
  try {
    const out = await new Deno.Command(CHROMIUM, { args: ["--version"], stdout: "piped" })
      .output();
    return out.success ? null : `${CHROMIUM} --version failed`;
  } catch (e) {
    return `${CHROMIUM} not runnable (apt-get install -y chromium): ${(e as Error).message}`;
  }
}
const reason = await chromiumReason();
if (reason !== null) console.log(`Browser screenshot tests skipped: ${reason}`);

async function chromium(args: string[], profile: string): Promise<Deno.CommandOutput> {
  return await new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--hide-scrollbars",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test({
  name:
    "report/index.html in headless Chromium: a non-blank screenshot with every chart on the page",
  ignore: reason !== null,
  fn: async () => {
    const store = await writeSyntheticStore();
    const out = `${store}-report`;
    try {
      const written = await writeReport(store, out);
      ok(written.svgs.length >= 5, `charts written: ${written.svgs.length}`);
      const url = `file://${Deno.cwd()}/${out}/index.html`;
      const png = `${Deno.cwd()}/${out}/screenshot.png`;
      const profile = `${Deno.cwd()}/${out}/.chromium`;
      const shot = await chromium(["--window-size=1280,2000", `--screenshot=${png}`, url], profile);
      strictEqual(shot.success, true, new TextDecoder().decode(shot.stderr));
      const image = await decodePng(await Deno.readFile(png));
      strictEqual(image.width, 1280);
      const variance = lumaVariance(image);
      ok(variance > 100, `screenshot luminance variance ${variance.toFixed(1)} (blank ≈ 0)`);
      // The DOM after load: every chart file the report wrote is on the page as an inline SVG.
      const dom = new TextDecoder().decode(
        (await chromium(["--dump-dom", url], profile)).stdout,
      );
      const figures = [...dom.matchAll(/<svg\b/g)].length;
      ok(
        figures >= written.svgs.length,
        `${figures} SVGs on the page, ${written.svgs.length} charts`,
      );
      for (const file of written.svgs) {
        const name = file.split("/").pop() as string;
        ok(dom.includes(name.replace(/\.svg$/, "")), `chart ${name} is on the page`);
      }
    } finally {
      await Deno.remove(store, { recursive: true }).catch(() => {});
      await Deno.remove(out, { recursive: true }).catch(() => {});
    }
  },
});
