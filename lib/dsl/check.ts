/**
 * Field readers for options and configs read from code or JSON, with {@linkcode ConfigError}s
 * that name the path, the value and what is allowed: the DSL's resolvers use them, and so does
 * any other package that validates its options the same way (the R1 pipeline, `lib/rl`). One
 * reader serves both modes:
 * - lenient (builders): a missing field takes its default;
 * - strict (JSON validators): a missing field is an error unless the type marks it optional.
 *
 * @example An unknown key names the closest allowed one
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkKeys } from "./check.ts";
 * throws(() => checkKeys({ grup: 4 }, ["group", "lr"], "grpo"), /grpo\.grup.*"group"/s);
 * ```
 *
 * @module
 */

import { closestName, ConfigError } from "./errors.ts";

/** A plain JSON-like object. */
export type Obj = Record<string, unknown>;

/** Throw a {@linkcode ConfigError}. */
export function fail(path: string, value: unknown, allowed: string, suggestion?: string): never {
  throw new ConfigError({ path, value, allowed, suggestion });
}

/** Whether `value` is a plain object (not an array, not null). */
export function isObj(value: unknown): value is Obj {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `value` as a plain object, or a ConfigError at `path`. */
export function asObj(value: unknown, path: string, what = "an object"): Obj {
  if (!isObj(value)) fail(path, value, what);
  return value;
}

/** Quote names for messages: `"a", "b", "c"`. */
export function quoteAll(names: readonly string[]): string {
  return names.map((n) => JSON.stringify(n)).join(", ");
}

/** Fail on the first key of `obj` (with a defined value) that is not in `allowed`. */
export function checkKeys(obj: Obj, allowed: readonly string[], path: string): void {
  for (const [key, value] of Object.entries(obj)) {
    if (value === undefined || allowed.includes(key)) continue;
    throw new ConfigError({
      path: join(path, key),
      value,
      allowed: `a key among ${quoteAll(allowed)}`,
      suggestion: closestName(key, allowed),
      unknownKey: true,
    });
  }
}

/**
 * `obj` with deprecated keys under their new names (`{ old: "new" }`), so a `config.json` saved
 * before a rename still loads; a key written both ways is an error.
 */
export function renameKeys(obj: Obj, path: string, renamed: Readonly<Record<string, string>>): Obj {
  let out = obj;
  for (const [old, now] of Object.entries(renamed)) {
    if (obj[old] === undefined) continue;
    if (obj[now] !== undefined) {
      fail(join(path, old), obj[old], `"${now}" alone (its name since the rename), not both`);
    }
    if (out === obj) out = { ...obj };
    out[now] = obj[old];
    delete out[old];
  }
  return out;
}

/** `path.key`, or `key` at the root. */
export function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Bounds of a number field. */
export interface NumberRule {
  /** Require an integer. */
  int?: boolean;
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Inclusive upper bound. */
  max?: number;
}

/** `allowed` text of a rule: `an integer >= 1`, `a number > 0`. */
export function describe(rule: NumberRule): string {
  const parts = [rule.int ? "an integer" : "a finite number"];
  if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
  if (rule.above !== undefined) parts.push(`> ${rule.above}`);
  if (rule.max !== undefined) parts.push(`${rule.min === undefined ? "" : "and "}<= ${rule.max}`);
  return parts.join(" ");
}

/** Check `value` against `rule` at `path`. */
export function checkNumber(value: unknown, rule: NumberRule, path: string): number {
  const ok = typeof value === "number" && Number.isFinite(value) &&
    (!rule.int || Number.isSafeInteger(value)) &&
    (rule.min === undefined || value >= rule.min) &&
    (rule.above === undefined || value > rule.above) &&
    (rule.max === undefined || value <= rule.max);
  if (!ok) fail(path, value, describe(rule));
  return value as number;
}

/**
 * Reads the fields of one object at one path. `strict` makes every field without `optional`
 * required; otherwise a missing field takes the default given to the reader.
 */
export class Fields {
  /** The object read. */
  readonly obj: Obj;
  /** Its path. */
  readonly path: string;
  /** Whether missing fields are errors. */
  readonly strict: boolean;

  /** Read `obj` at `path`, checking its keys against `keys`. */
  constructor(obj: Obj, path: string, strict: boolean, keys: readonly string[]) {
    this.obj = obj;
    this.path = path;
    this.strict = strict;
    checkKeys(obj, keys, path);
  }

  /** Path of `key`. */
  at(key: string): string {
    return join(this.path, key);
  }

  /** Whether `key` holds a defined value. */
  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  /** The raw value of `key`, or the default (a thunk so it may depend on other fields). */
  raw<T>(key: string, def: (() => T) | undefined, allowed: string, optional = false): unknown {
    const v = this.obj[key];
    if (v !== undefined) return v;
    if (def === undefined || (this.strict && !optional)) fail(this.at(key), undefined, allowed);
    return def();
  }

  /** A number field. */
  num(key: string, rule: NumberRule, def?: () => number, optional = false): number {
    return checkNumber(this.raw(key, def, describe(rule), optional), rule, this.at(key));
  }

  /** A string field from a fixed set. */
  oneOf<T extends string>(key: string, options: readonly T[], def?: () => T, optional = false): T {
    const allowed = `one of ${quoteAll(options)}`;
    const v = this.raw(key, def, allowed, optional);
    if (typeof v !== "string" || !(options as readonly string[]).includes(v)) {
      fail(this.at(key), v, allowed, typeof v === "string" ? closestName(v, options) : undefined);
    }
    return v as T;
  }

  /** A boolean field. */
  bool(key: string, def?: () => boolean, optional = false): boolean {
    const v = this.raw(key, def, "true or false", optional);
    if (typeof v !== "boolean") fail(this.at(key), v, "true or false");
    return v;
  }

  /** A non-empty string field matching `pattern`. */
  str(key: string, pattern: RegExp, allowed: string, def?: () => string): string {
    const v = this.raw(key, def, allowed);
    if (typeof v !== "string" || !pattern.test(v)) fail(this.at(key), v, allowed);
    return v;
  }
}

/** Deep-freeze plain objects and arrays. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Deep copy of JSON-like data (plain objects and arrays; other values as they are). */
export function deepCopy<T>(value: T): T {
  if (Array.isArray(value)) return value.map(deepCopy) as T;
  if (isObj(value)) {
    const out: Obj = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = deepCopy(v);
    return out as T;
  }
  return value;
}

/** {@linkcode closestName} for a value that may not be a string. */
export function closestNameOf(value: unknown, names: readonly string[]): string | undefined {
  return typeof value === "string" ? closestName(value, names) : undefined;
}
