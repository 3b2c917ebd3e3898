import { equal, match, rejects } from "node:assert/strict";
import { escapeHtml, markdownToHtml, writeReport } from "../../lib/report/html.ts";
import { writeSyntheticStore } from "./_store.ts";

Deno.test("escapeHtml() escapes the five HTML-significant characters", () => {
  equal(
    escapeHtml(`<b a="1" c='2'>&</b>`),
    "&lt;b a=&quot;1&quot; c=&#39;2&#39;&gt;&amp;&lt;/b&gt;",
  );
});

Deno.test("markdownToHtml() renders GFM tables and shows raw HTML as text", () => {
  const html = markdownToHtml("| a | b |\n| - | - |\n| 1 | 2 |\n\n<script>alert(1)</script>\n");
  match(html, /<table>/);
  equal(html.includes("<script>"), false);
  match(html, /&lt;script&gt;/);
});

Deno.test("writeReport() writes index.html and one SVG per chart, atomically", async () => {
  const root = await writeSyntheticStore();
  const out = `${root}/report`;
  try {
    const written = await writeReport(root, out);
    equal(written.index, `${out}/index.html`);
    equal(written.svgs.length, 7);
    const files = [];
    for await (const e of Deno.readDir(out)) files.push(e.name);
    equal(files.length, 8); // no temp files left
    equal(files.every((f) => f === "index.html" || /^ablation-[\w-]+\.svg$/.test(f)), true);
    const html = await Deno.readTextFile(written.index);
    match(html, /^<!DOCTYPE html>/);
    equal(html.match(/<svg /g)?.length, 7);
    equal(html.includes("<script"), false);
    equal(/(src|href)="(https?:|\/\/)/.test(html), false); // self-contained
    match(html, /<table>/);
    match(html, /2\.0250 ± 0\.3177/);
    match(html, /Not finished \(left out\): base\/seed-2/);
    match(html, /model\.fp8\.granularity/); // what differs between variants
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeReport() escapes a malicious variant and experiment name everywhere", async () => {
  const evil = `<img src=x onerror=alert(1)>`;
  const root = await writeSyntheticStore(`x"&'<b>`, ["base", evil]);
  try {
    const written = await writeReport(root, `${root}/report`);
    const html = await Deno.readTextFile(written.index);
    equal(html.includes("<img"), false);
    equal(html.includes("<b>"), false);
    match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
    match(html, /<h2>x&quot;&amp;&#39;&lt;b&gt;<\/h2>/);
    for (const svg of written.svgs) {
      equal(svg.startsWith(`${root}/report/x____b_-`), true); // file names are slugs
      equal((await Deno.readTextFile(svg)).includes("<img"), false);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeReport() without results says where it looked and what to run", async () => {
  await rejects(
    writeReport(".test-tmp/no-store", ".test-tmp/no-report"),
    /No finished runs under '\.test-tmp\/no-store': produce results with 'deno task experiments --out \.test-tmp\/no-store'/,
  );
});
