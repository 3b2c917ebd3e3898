import { equal, match, rejects } from "node:assert/strict";
import { escapeHtml, markdownToHtml, writeReport } from "../../lib/report/html.ts";
import { syntheticRuns, writeSealedRun, writeSyntheticStore } from "./_store.ts";

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
    match(html, /Runs left out/);
    match(html, /base\/seed-2: <strong>unfinished<\/strong> — not finished/);
    match(html, /model\.fp8\.granularity/); // what differs between variants
    // what the seeds mean and the scale, from the data (2 seeds of 10 steps here)
    match(html, /With 2 seeds <code>t = 12\.71<\/code>, so intervals are wide\./);
    match(html, /tiny scale \(2 seeds, at most 10 steps per run\)/);
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

Deno.test("writeReport() shows only sealed runs, lists failed, diverged and damaged ones with why, and never shows a missing value as 0", async () => {
  const root = `.test-tmp/report-faults-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const runs = syntheticRuns("faults", ["ok", "broken"]);
    const [ok0, ok1, broken0, broken1] = runs;
    ok0.summary.finalTrainLoss = null as never; // a summary that lacks it: shown as missing
    delete (ok0.summary.metrics as Record<string, number>).trainTokensPerSec;
    for (const run of runs) {
      await writeSealedRun(`${root}/faults/${run.variant}/seed-${run.seed}`, run);
    }
    // broken/seed-0: a torn line in the middle of a sealed log; broken/seed-1: diverged
    const dir0 = `${root}/faults/${broken0.variant}/seed-0`;
    const lines = (await Deno.readTextFile(`${dir0}/metrics.jsonl`)).split("\n");
    lines[4] = lines[4].slice(0, 7);
    await Deno.writeTextFile(`${dir0}/metrics.jsonl`, lines.join("\n"));
    await Deno.writeTextFile(
      `${root}/faults/${broken1.variant}/seed-1/failure.json`,
      JSON.stringify({
        id: "x",
        status: "diverged",
        step: 3,
        reason: "Training diverged at step 3",
      }),
    );
    const written = await writeReport(root, `${root}/report`);
    const html = await Deno.readTextFile(written.index);
    match(
      html,
      /broken\/seed-0: <strong>damaged<\/strong> — metrics.jsonl differs from the manifest \(line 5 is not valid JSON \(torn\)/,
    );
    match(html, /deno task experiments --check --only faults\/broken/);
    match(html, /broken\/seed-1: <strong>diverged<\/strong> — Training diverged at step 3/);
    equal(written.leftOut.length, 2);
    // only ok/seed-0 and ok/seed-1 count; the final train loss is ok1's alone, never 0
    match(html, /\(2 finished runs\)/);
    equal(/<td[^>]*>0\.0000/.test(html), false);
    match(html, new RegExp(ok1.summary.finalTrainLoss.toFixed(4).replace(".", "\\.")));
    equal(ok1.summary.metrics.trainTokensPerSec !== undefined, true);
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
