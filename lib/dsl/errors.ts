/**
 * The one error type of the DSL: a config value that cannot be used, with where it sits (`path`),
 * what it was (`value`) and what would be accepted (`allowed`). The builders (`model()`,
 * `experiment()`) and the JSON validators throw the same errors, so a config typed in a notebook
 * and one read from `config.json` fail with the same message.
 *
 * @module
 */

/** Fields of a {@linkcode ConfigError}. */
export interface ConfigErrorInit {
  /** Dotted path of the offending value, e.g. `model.attention.kvLatentRank` or `seeds[2]`. */
  path: string;
  /** The offending value (`undefined` when it is missing). */
  value: unknown;
  /** What would be accepted, in words: `an integer >= 1`, `one of "mha", "gqa"`. */
  allowed: string;
  /**
   * A close match for a misspelt key or name, shown as `did you mean "dModel"?`.
   * @default {undefined}
   */
  suggestion?: string;
  /**
   * The key itself is not allowed (as opposed to its value).
   * @default {false}
   */
  unknownKey?: boolean;
}

/**
 * A config value that cannot be used.
 *
 * @example The message names the path, the value and what is allowed
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { ConfigError } from "./errors.ts";
 * const e = new ConfigError({ path: "model.heads", value: 3, allowed: "a divisor of dModel 128" });
 * deepStrictEqual(e.message, "Cannot set model.heads to 3: expected a divisor of dModel 128");
 * deepStrictEqual([e.path, e.value, e.allowed], ["model.heads", 3, "a divisor of dModel 128"]);
 * ```
 */
export class ConfigError extends Error {
  /** Dotted path of the offending value. */
  readonly path: string;
  /** The offending value (`undefined` when it is missing). */
  readonly value: unknown;
  /** What would be accepted. */
  readonly allowed: string;
  /** A close match for a misspelt key or name, or `undefined`. */
  readonly suggestion: string | undefined;

  /** @param init `path`, `value`, `allowed` and an optional `suggestion`. */
  constructor(init: ConfigErrorInit) {
    const { path, value, allowed, suggestion } = init;
    const hint = suggestion === undefined ? "" : ` (did you mean ${JSON.stringify(suggestion)}?)`;
    const what = value === undefined
      ? `Cannot leave ${path} unset`
      : `Cannot set ${init.unknownKey ? "unknown key " : ""}${path} to ${formatValue(value)}`;
    super(`${what}${hint}: expected ${allowed}`);
    this.name = "ConfigError";
    this.path = path;
    this.value = value;
    this.allowed = allowed;
    this.suggestion = suggestion;
  }
}

/**
 * A value as it appears in error messages: strings quoted, numbers and literals plain, arrays and
 * objects as JSON cut at 60 characters.
 *
 * @param value Any value.
 * @returns Its short display form.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { formatValue } from "./errors.ts";
 * deepStrictEqual([formatValue("mha"), formatValue(-1), formatValue([1, 2])], ['"mha"', "-1", "[1,2]"]);
 * ```
 */
export function formatValue(value: unknown): string {
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return String(value);
  }
  if (value === undefined || typeof value === "function" || typeof value === "symbol") {
    return String(value);
  }
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Optimal-string-alignment edit distance (insertions, deletions, substitutions and adjacent
 * transpositions each cost 1), case-insensitive.
 *
 * @param a First string.
 * @param b Second string.
 * @returns The number of edits from `a` to `b`.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { editDistance } from "./errors.ts";
 * deepStrictEqual([editDistance("dModle", "dModel"), editDistance("topk", "topK")], [1, 0]);
 * ```
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase(), t = b.toLowerCase();
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= t.length; j++) d[0][j] = j;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[s.length][t.length];
}

/**
 * The closest of `candidates` to `name`, if it is within a third of the longer length (at least
 * 1 edit); ties go to the first candidate.
 *
 * @param name A misspelt name.
 * @param candidates The names that exist.
 * @returns The suggestion, or `undefined` when nothing is close.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { closestName } from "./errors.ts";
 * deepStrictEqual(closestName("atention", ["attention", "ffn"]), "attention");
 * deepStrictEqual(closestName("xyz", ["attention", "ffn"]), undefined);
 * ```
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined, bestDistance = Infinity;
  for (const c of candidates) {
    const dist = editDistance(name, c);
    const limit = Math.max(1, Math.floor(Math.max(name.length, c.length) / 3));
    if (dist <= limit && dist < bestDistance) [best, bestDistance] = [c, dist];
  }
  return best;
}
