import { equal, match, ok } from "node:assert/strict";
import { reproductionCard, reproductionCards } from "../../lib/report/cards.ts";
import { CLAIMS, claimVerdicts } from "../../lib/report/claims.ts";
import { reportMain } from "../../lib/report/cli.ts";
import { writeReport } from "../../lib/report/html.ts";
import type { ExperimentResults, RunResult } from "../../lib/report/results.ts";
import { writeSyntheticStore } from "./_store.ts";

function run(variant: string, seed: number, valLoss: number, tokens: number, store: string) {
  return {
    experiment: "attention",
    variant,
    seed,
    dir: `${store}/attention/${variant}/seed-${seed}`,
    config: {
      budget: tokens > 100_000 ? "full" : "small",
      plan: { model: { dModel: 64, layers: 2, heads: 4, seqLen: 64 } },
    },
    steps: [],
    summary: {
      id: `${variant}-${seed}`,
      experiment: "attention",
      variant,
      seed,
      status: "done",
      steps: tokens / 1024,
      tokens,
      finalTrainLoss: valLoss,
      metrics: { valLoss, kvBytesPerToken: variant === "mla" ? 384 : 2048 },
      parameters: variant === "mla"
        ? { total: 126_432, activated: 126_432, mtp: 0 }
        : { total: 131_520, activated: 131_520, mtp: 0 },
      backend: "cpu",
      wallSeconds: 1,
    },
  } satisfies RunResult;
}

function store(root: string, tokens: number, diffs: number[]): ExperimentResults {
  const runs = diffs.flatMap((d, seed) => [
    run("mha", seed, 3 + seed / 10, tokens, root),
    run("mla", seed, 3 + seed / 10 + d, tokens, root),
  ]);
  return {
    experiment: "attention",
    dir: `${root}/attention`,
    variants: ["mha", "mla"],
    runs,
    incomplete: [],
  };
}

Deno.test("reproductionCard() holds the paper, our setting and number, verdict, what would change it, runs", () => {
  const results = [
    store("runs", 40_960, [-0.1, 0.05, -0.02]),
    store("runs-full", 2_000_000, [0.03, 0.02, 0.04]),
  ];
  const card = reproductionCard(claimVerdicts(results)[1]);
  match(card, /^### attention: MLA matches or beats MHA in quality\n/);
  match(card, /\| Paper \| DeepSeek-V2 \(arXiv:2405\.04434\) App\. D\.1 \|/);
  match(card, /\| Paper's number \| MLA outperforms MHA on benchmarks/);
  match(
    card,
    /\| Our setting \| mla vs mha; d\\_model 64, 2 layers, 4 heads, context 64; mla 126,432 parameters, mha 131,520 parameters; 2,000,000 training tokens per run \(1953\.125 steps\); seeds 0, 1, 2; budget full \|/,
  );
  match(card, /\| Ours \| Δ valLoss 0\.0300 ± 0\.0248 \(95% CI, paired over 3 seeds\) \|/);
  match(card, /\| Verdict \| \*\*contradicted\*\* \|/);
  match(card, /\| What would change it \| At 3 seeds the test detects \\\|effect\\\| ≥ 0\.\d{4}/);
  match(
    card,
    /\| Other budgets \| 41k tokens: Δ valLoss -0\.0233 ± 0\.\d{4} \(95% CI, paired over 3 seeds\) \|/,
  );
  match(
    card,
    /\| Runs \| `runs\/attention\/mla\/seed-\{0,1,2\}`, `runs\/attention\/mha\/seed-\{0,1,2\}`, `runs-full\/attention\/mla\/seed-\{0,1,2\}`, `runs-full\/attention\/mha\/seed-\{0,1,2\}` \|$/,
  );
});

Deno.test("reproductionCards() gives one card per claim, 'not run' ones saying what to run", () => {
  const cards = reproductionCards([store("runs", 40_960, [-0.1, 0.05, -0.02])]);
  equal(cards.split(/^### /m).length - 1, CLAIMS.length);
  match(cards, /\| Verdict \| \*\*holds\*\* \|/); // the KV-cache ratio: 384 / 2048 at every seed
  match(cards, /\| What would change it \| Run it: deno task experiments --only fp8 \|/);
});

Deno.test("writeReport() and reportMain --budgets put the verdicts and the cards in the report", async () => {
  const a = await writeSyntheticStore("attention", ["mha", "mla"]);
  const b = await writeSyntheticStore("attention", ["mha", "mla"]);
  try {
    await writeReport(a, `${a}/report`, { budgetStores: [b] });
    const html = await Deno.readTextFile(`${a}/report/index.html`);
    ok(html.includes("<h2>Reproduction cards</h2>"));
    // the synthetic store: Δ valLoss = +0.1 at every seed (contradicted), KV ratio 0.5 (holds)
    match(html, /<td>contradicted<\/td>/);
    match(html, /<td><strong>holds<\/strong><\/td>/);
    const lines: string[] = [];
    const code = await reportMain(
      ["--out", a, "--to", `${a}/report2`, "--budgets", `${b},`],
      { log: (l) => lines.push(l), error: (l) => lines.push(l) },
    );
    equal(code, 0, lines.join("\n"));
    ok((await Deno.readTextFile(`${a}/report2/index.html`)).includes("Reproduction cards"));
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});
