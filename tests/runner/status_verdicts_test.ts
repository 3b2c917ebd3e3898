/**
 * `deno task experiments --status` ends with the claims' verdicts over what the store holds
 * (lib/report/claims.ts `verdictLines`).
 */

import { ok, strictEqual } from "node:assert/strict";
import { brown, experiment, model } from "../../lib/dsl/mod.ts";
import { main } from "../../lib/runner/cli.ts";
import type { Reporter } from "../../lib/runner/progress.ts";
import { writeSyntheticStore } from "../report/_store.ts";

const tiny = experiment({
  name: "tiny",
  base: model({ vocab: "bytes", dModel: 16, layers: 1, heads: 2, seqLen: 16 }),
  vary: { mha: {} },
  data: brown(),
  train: { tokens: 4096, batch: 4, lr: 3e-3, budgets: { small: { tokens: 1024 } } },
  seeds: [0],
});

Deno.test("main() --status lists the runs, then one verdict line per claim from the store", async () => {
  // the synthetic attention store: Δ valLoss +0.1 at both seeds, KV ratio 0.5
  const root = await writeSyntheticStore("attention", ["mha", "mla"]);
  try {
    const lines: string[] = [];
    const reporter: Reporter = {
      log: (l) => void lines.push(l),
      runStart: () => {},
      step: () => {},
      runEnd: () => {},
    };
    strictEqual(
      await main(["--status", "--out", root, "--backend", "cpu"], [tiny], { reporter }),
      0,
    );
    // the run's state first (its wording is the runner's), then the claims
    const state = lines.findIndex((l) => l.includes("tiny/mha/seed-0"));
    ok(state >= 0 && state < lines.findIndex((l) => l.startsWith("claim ")), lines.join("\n"));
    const claims = lines.filter((l) => l.startsWith("claim "));
    strictEqual(claims.length, 6, lines.join("\n"));
    ok(
      claims[0].endsWith(
        "attention: MLA's KV cache is a small fraction of MHA's — 0.500 ± 0.000 (n = 2, 10k tokens): holds",
      ),
      claims[0],
    );
    ok(
      /MLA matches or beats MHA in quality — 0\.1000 ± 0\.0000 \(n = 2, 10k tokens\): contradicted$/
        .test(claims[1]),
      claims[1],
    );
    ok(claims[4].endsWith("— not run"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
