/**
 * Experiments from JSON text. `JSON.parse` silently keeps the last of two equal keys, so a
 * variant written twice in a config file would quietly replace the first; {@linkcode parseJson}
 * rejects a repeated key with the path where it repeats, then the experiment is checked like one
 * typed in TypeScript.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import { type Experiment, validateExperiment } from "./experiment.ts";

/**
 * Parse JSON, rejecting any object that repeats a key.
 *
 * @param text JSON text.
 * @param source What the text is (a file name), for the messages. @default {"JSON"}
 * @returns The parsed value.
 * @throws {ConfigError} naming the path and the lines of a repeated key; a `SyntaxError` naming
 *   `source` for invalid JSON.
 *
 * @example A variant declared twice
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { parseJson } from "./json.ts";
 * throws(() => parseJson('{"vary": {"mla": {},\n "mla": {"dModel": 32}}}', "x.json"), {
 *   message: 'Cannot set vary.mla to {"dModel":32}: expected a key not already in vary ' +
 *     "(x.json repeats it on line 2; line 1 has the first, which JSON would silently drop)",
 * });
 * ```
 */
export function parseJson(text: string, source = "JSON"): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Cannot parse ${source}: ${(e as Error).message}`);
  }
  checkKeys(text, value, source);
  return value;
}

/** Walk the (valid) text with the parsed value beside it, tracking paths and lines. */
function checkKeys(text: string, root: unknown, source: string): void {
  let i = 0, line = 1;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) {
      if (text[i] === "\n") line++;
      i++;
    }
  };
  const str = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string, parsed: unknown): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const seen = new Map<string, number>();
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      while (true) {
        ws();
        const keyLine = line;
        const key = str();
        const at = path === "" ? key : `${path}.${key}`;
        const first = seen.get(key);
        if (first !== undefined) {
          const last = (parsed as Record<string, unknown>)[key];
          throw new ConfigError({
            path: at,
            value: last,
            allowed: `a key not already in ${path === "" ? "the top level" : path} (${source} ` +
              `repeats it on line ${keyLine}; line ${first} has the first, which JSON would ` +
              `silently drop)`,
          });
        }
        seen.set(key, keyLine);
        ws();
        i++; // :
        value(at, (parsed as Record<string, unknown>)[key]);
        ws();
        if (text[i++] === "}") return;
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (let k = 0;; k++) {
        value(`${path}[${k}]`, (parsed as unknown[])[k]);
        ws();
        if (text[i++] === "]") return;
      }
    } else if (c === '"') {
      str();
    } else {
      while (i < text.length && !/[\s,\]}]/.test(text[i])) i++;
    }
  };
  value("", root);
}

/**
 * Declare an experiment from JSON text (e.g. a config file): keys may not repeat, then
 * everything is checked as by `experiment()`.
 *
 * @param text The experiment as JSON (`JSON.stringify(exp)` gives one).
 * @param source The file name, for messages. @default {"JSON"}
 * @returns The frozen experiment.
 * @throws {ConfigError} naming the path, the value and what is allowed.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { experiment, model } from "./mod.ts";
 * import { experimentFromJson } from "./json.ts";
 * const base = model({ vocab: "bytes", dModel: 32, layers: 1, heads: 2, seqLen: 16 });
 * const exp = experiment({ name: "x", base, vary: { a: {} }, train: { tokens: 4096, batch: 4, lr: 1e-3 } });
 * strictEqual(experimentFromJson(JSON.stringify(exp)).name, "x");
 * ```
 */
export function experimentFromJson(text: string, source = "JSON"): Experiment {
  return validateExperiment(parseJson(text, source));
}
