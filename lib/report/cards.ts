/**
 * Reproduction cards: one per claim, everything a reader needs to judge it in one place — the
 * paper and section, the paper's number, our setting (model size, tokens, seeds, budget), our
 * number with its 95% interval, the verdict, what would change it (the power statement), the
 * other budgets measured, and the runs behind it (store paths).
 *
 * @module
 */

import { type Claim, claimVerdicts } from "./claims.ts";
import { escapeMarkdown, type ExperimentResults, formatNumber, type RunResult } from "./results.ts";
import {
  type ClaimPoint,
  type ClaimVerdict,
  formatClaimValue,
  formatTokens,
  powerText,
  type VerdictOptions,
  verdictText,
} from "./verdicts.ts";

function measureName(claim: Claim): string {
  return claim.measure === "difference"
    ? `Δ ${claim.metric}`
    : claim.measure === "relative"
    ? `relative Δ ${claim.metric}`
    : `${claim.metric} ratio`;
}

function pointText(claim: Claim, p: ClaimPoint): string {
  const m = p.measured, f = (x: number) => formatClaimValue(claim, x);
  return `${measureName(claim)} ${f(m.mean)}${m.halfWidth === null ? "" : ` ± ${f(m.halfWidth)}`}` +
    ` (95% CI, paired over ${m.n} seed${m.n === 1 ? "" : "s"})`;
}

function modelText(run: RunResult): string {
  const plan = run.config?.plan as { model?: Record<string, unknown> } | undefined;
  const m = plan?.model;
  if (m === undefined) return "";
  const parts: string[] = [];
  if (typeof m.dModel === "number") parts.push(`d_model ${m.dModel}`);
  if (typeof m.layers === "number") parts.push(`${m.layers} layers`);
  if (typeof m.heads === "number") parts.push(`${m.heads} heads`);
  if (typeof m.seqLen === "number") parts.push(`context ${m.seqLen}`);
  return parts.join(", ");
}

function paramsText(run: RunResult): string {
  const p = run.summary.parameters;
  if (p === undefined || typeof p.total !== "number") return "";
  const total = formatNumber(p.total, 0);
  return p.activated !== undefined && p.activated !== p.total
    ? `${total} parameters (${formatNumber(p.activated, 0)} activated)`
    : `${total} parameters`;
}

function budgetName(run: RunResult): string | null {
  const c = run.config as { budget?: unknown; plan?: { budget?: unknown } } | null;
  const b = c?.budget ?? c?.plan?.budget;
  return typeof b === "string" ? b : null;
}

/** `runs/attention/mla/seed-{0,1,2}`: the run directories of one variant at one budget. */
function runPaths(runs: readonly RunResult[]): string[] {
  const bySeedDir = new Map<string, number[]>();
  const single: string[] = [];
  for (const r of runs) {
    const m = /^(.*)\/seed-(\d+)$/.exec(r.dir);
    if (m === null) {
      single.push(r.dir);
      continue;
    }
    bySeedDir.set(m[1], [...(bySeedDir.get(m[1]) ?? []), Number(m[2])]);
  }
  return [
    ...[...bySeedDir].map(([dir, seeds]) =>
      seeds.length === 1 ? `${dir}/seed-${seeds[0]}` : `${dir}/seed-{${seeds.join(",")}}`
    ),
    ...single.filter((d) => d !== ""),
  ];
}

function settingText(claim: Claim, p: ClaimPoint): string {
  const v = p.pairs[0].variant, b = p.pairs[0].baseline;
  const parts: string[] = [`${claim.variant} vs ${claim.baseline}`];
  const model = modelText(b);
  if (model !== "") parts.push(model);
  const pv = paramsText(v), pb = paramsText(b);
  if (pv !== "" && pb !== "") parts.push(`${claim.variant} ${pv}, ${claim.baseline} ${pb}`);
  parts.push(
    `${formatNumber(p.tokens, 0)} training tokens per run (${v.summary.steps} steps)`,
    `seeds ${p.pairs.map((x) => x.seed).join(", ")}`,
  );
  const budget = budgetName(v);
  if (budget !== null) parts.push(`budget ${budget}`);
  return parts.join("; ");
}

/**
 * One claim's reproduction card as Markdown: a heading and a two-column table.
 *
 * @param v The claim's verdict (from `claimVerdicts`).
 * @returns Markdown.
 *
 * @example A claim that was not run still gets its card
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { claimVerdicts } from "./claims.ts";
 * import { reproductionCard } from "./cards.ts";
 * const card = reproductionCard(claimVerdicts([])[0]);
 * ok(card.includes("| Verdict | not run |"));
 * ```
 */
export function reproductionCard(v: ClaimVerdict): string {
  const { claim, at } = v;
  const rows: [string, string][] = [
    ["Paper", escapeMarkdown(claim.source)],
    ["Paper's number", escapeMarkdown(claim.paper)],
  ];
  if (at === null) {
    rows.push(
      ["Ours", `not run: no finished runs of ${escapeMarkdown(claim.experiment)}`],
      ["Verdict", "not run"],
      [
        "What would change it",
        escapeMarkdown(`Run it: deno task experiments --only ${claim.experiment}`),
      ],
    );
  } else {
    rows.push(
      ["Our setting", escapeMarkdown(settingText(claim, at))],
      ["Ours", escapeMarkdown(pointText(claim, at))],
      ["Verdict", `**${escapeMarkdown(verdictText(v))}**`],
      ["What would change it", escapeMarkdown(powerText(v))],
    );
    const others = v.points.filter((p) => p !== at);
    if (others.length > 0) {
      rows.push([
        "Other budgets",
        others.map((p) =>
          escapeMarkdown(`${formatTokens(p.tokens)} tokens: ${pointText(claim, p)}`)
        )
          .join("; "),
      ]);
    }
    const paths = v.points.flatMap((p) => [
      ...runPaths(p.pairs.map((x) => x.variant)),
      ...runPaths(p.pairs.map((x) => x.baseline)),
    ]);
    rows.push(["Runs", paths.map((d) => `\`${d.replaceAll("`", "'")}\``).join(", ") || "–"]);
  }
  // the first row (the paper) is the table's header
  const [head, ...rest] = rows.map(([k, x]) => `| ${k} | ${x} |`);
  return [
    `### ${escapeMarkdown(`${claim.experiment}: ${claim.statement}`)}`,
    "",
    head,
    "|---|---|",
    ...rest,
  ].join("\n");
}

/**
 * Every claim's reproduction card, from the results of any number of stores.
 *
 * @param results Experiment results (every budget found is used).
 * @param options Level and target power.
 * @returns Markdown: the cards, separated by blank lines.
 *
 * @example Six cards, one per claim
 * ```ts
 * import { assertEquals } from "../tensor/assert.ts";
 * import { reproductionCards } from "./cards.ts";
 * assertEquals(reproductionCards([]).split("\n### ").length, 6);
 * ```
 */
export function reproductionCards(
  results: readonly ExperimentResults[],
  options: VerdictOptions = {},
): string {
  return claimVerdicts(results, options).map(reproductionCard).join("\n\n");
}
