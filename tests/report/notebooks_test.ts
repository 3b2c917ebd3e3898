/**
 * The notebooks are well-formed Deno-kernel notebooks, one per experiment of the suite (plus
 * an overview and the quick start), each with one import from the root mod.ts, running its
 * experiment through `runExperiments` and plotting through lib/report. (Executing them needs
 * Jupyter: see notebooks/README.md and notebooks_exec_test.ts.)
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { EXPERIMENTS } from "../../experiments/mod.ts";
import { isStudy } from "../../lib/runner/study.ts";

interface Notebook {
  nbformat: number;
  metadata: { kernelspec: { name: string } };
  cells: { cell_type: string; source: string[] }[];
}

async function load(name: string): Promise<Notebook> {
  return JSON.parse(await Deno.readTextFile(new URL(`../../notebooks/${name}`, import.meta.url)));
}

Deno.test("notebooks/: one Deno-kernel notebook per experiment, an overview and the quick start, one import each", async () => {
  const files: string[] = [];
  for await (const e of Deno.readDir(new URL("../../notebooks/", import.meta.url))) {
    if (e.name.endsWith(".ipynb")) files.push(e.name);
  }
  const expected = [
    ...EXPERIMENTS.map((e) => `${e.name.replaceAll("-", "_")}.ipynb`),
    "overview.ipynb",
    "quickstart.ipynb",
  ];
  deepStrictEqual(files.sort(), expected.sort());
  for (const file of files) {
    const nb = await load(file);
    strictEqual(nb.nbformat, 4, file);
    strictEqual(nb.metadata.kernelspec.name, "deno", file);
    const code = nb.cells.filter((c) => c.cell_type === "code").map((c) => c.source.join(""));
    const imports = code.join("\n").match(/^import [^;]*? from "[^"]+";$/gm) ?? [];
    deepStrictEqual(imports.length, 1, `${file}: one import (${imports.join("; ")})`);
    ok(imports[0].endsWith('from "../mod.ts";'), `${file}: imports the root mod.ts`);
    ok(!/\bmain\(/.test(code.join("\n")), `${file}: no argv strings for the CLI`);
  }
  for (const e of EXPERIMENTS) {
    const code = (await load(`${e.name.replaceAll("-", "_")}.ipynb`)).cells.map((c) =>
      c.source.join("")
    ).join("\n");
    ok(
      code.includes(`runExperiments(EXPERIMENTS, { only: ["${e.name}"]`),
      `${e.name}: runs its own experiment`,
    );
    if (isStudy(e)) continue; // a study plots its own files (its notebook is checked by running it)
    ok(code.includes("openResults"), `${e.name}: reads the results store`);
    ok(code.includes("r.plot("), `${e.name}: plots`);
  }
});

Deno.test("README's quick start is the quick-start notebook's first cell, verbatim", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```ts ignore\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  const cell = (await load("quickstart.ipynb")).cells.find((c) => c.cell_type === "code");
  strictEqual(block.trimEnd(), cell?.source.join("").trimEnd());
});
