/**
 * Run identity: what a run's id covers besides its resolved config and data — the content of the
 * source files that compute it, and the backend's numerics.
 *
 * The source files are found by walking the import graph from this package's own files
 * (`import.meta.url`), never from the working directory or `.git`: the static imports of
 * `lib/runner/run.ts` (the code that executes a run), plus the static graph of the chosen
 * backend's module, which `lib/backend/mod.ts` loads with a dynamic `import()`. Type-only imports
 * are left out (they cannot change a number), and so are the runner's {@linkcode BOOKKEEPING}
 * modules and files no run reaches: the README, notebooks, the report code, the CLI. So the id is the same from the repository root, from
 * `notebooks/` (the Deno kernel's working directory) and from a copy without `.git`; it changes
 * with any edit to the code of a file that computes the run, committed or not — but not with an
 * edit to its comments or layout: a module is hashed as its {@linkcode codeText}.
 *
 * `config.json` stores the components ({@linkcode RunIdentity}: resolved config, data hash,
 * backend, and per-file hashes), so when an id changes {@linkcode identityChanges} can say what
 * changed: the config fields, or the code files.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { BackendName } from "../backend/mod.ts";
import { canonicalJson, sha256Hex } from "../dsl/hash.ts";
import { codeText } from "./code_text.ts";

/** The source files that compute runs on one backend, with their content hashes. */
export interface CodeIdentity {
  /** SHA-256 of the canonical JSON of {@linkcode CodeIdentity.files}. */
  hash: string;
  /**
   * Path relative to the package root (`lib/train/trainer.ts`) → SHA-256 of the module's code
   * without comments and layout ({@linkcode codeText}; a data file: its text, line endings
   * normalised to `\n`). Bare imports (`npm:`, import-map names) are listed as
   * `import:<specifier>` → the specifier itself.
   */
  files: Record<string, string>;
}

/** The package root: the directory holding `lib/` (and `deno.json`). */
export const PACKAGE_ROOT: URL = new URL("../../", import.meta.url);

/** The module of each backend, the root of its part of the graph. */
const BACKEND_MODULES: Readonly<Record<BackendName, URL>> = {
  cpu: new URL("../backend/cpu.ts", import.meta.url),
  wasm: new URL("../backend/wasm.ts", import.meta.url),
  webgpu: new URL("../backend/webgpu.ts", import.meta.url),
};

/** The code that executes a run (its static imports are the rest of the graph). */
const RUN_MODULE = new URL("./run.ts", import.meta.url);

/**
 * The runner's bookkeeping, which computes no number: executing a run in the store, its files,
 * locks and checks, progress, errors, this module. `run.ts` keeps the computation and imports
 * none of it but the error type; should it import any, it is left out of the walk (not hashed,
 * not followed), so fixing a message there does not invalidate finished runs.
 */
export const BOOKKEEPING: readonly string[] = [
  "lib/runner/check.ts",
  "lib/runner/code_text.ts",
  "lib/runner/execute.ts",
  "lib/runner/identity.ts",
  "lib/runner/lock.ts",
  "lib/runner/progress.ts",
  "lib/runner/store.ts",
  "lib/runner/usage.ts",
];

// `import … from "x"`, `export … from "x"` (statements start a line in formatted code, so
// imports inside JSDoc examples, which start with ` * `, are not followed).
const FROM = /^(import|export)(\s+type)?\s+([\w$*\s{},]*?)\s*from\s*["']([^"'\n]+)["']/gm;
const SIDE_EFFECT = /^import\s*["']([^"'\n]+)["']/gm;
// `new URL("./worker.ts", import.meta.url)`: worker scripts and files read at run time.
const URL_REF = /new URL\(\s*["'](\.{1,2}\/[^"'\n]+)["']\s*,\s*import\.meta\.url\s*\)/g;

/**
 * The relative specifiers a module's source refers to (static imports and re-exports, except
 * type-only ones, and `new URL("./x", import.meta.url)`), and its bare ones (`npm:…`, import-map
 * names; `node:` built-ins come with the Deno version and are left out).
 *
 * @param source A TypeScript module's text.
 * @returns Relative and bare specifiers, in order of appearance.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { moduleReferences } from "./identity.ts";
 * const src = [
 *   'import type { A } from "./a.ts";',
 *   'import { type B, c } from "./c.ts";',
 *   'export * from "./d.ts";',
 *   'import { marked } from "marked";',
 *   ' * import { x } from "./doc-example.ts";',
 *   'const w = new URL("./worker.ts", import.meta.url);',
 * ].join("\n");
 * deepStrictEqual(moduleReferences(src), { relative: ["./c.ts", "./d.ts", "./worker.ts"], bare: ["marked"] });
 * ```
 */
export function moduleReferences(source: string): { relative: string[]; bare: string[] } {
  const relative: string[] = [], bare: string[] = [];
  const add = (spec: string) => {
    if (spec.startsWith("./") || spec.startsWith("../")) relative.push(spec);
    else if (!spec.startsWith("node:")) bare.push(spec);
  };
  for (const m of source.matchAll(FROM)) {
    if (m[2] !== undefined) continue; // `import type` / `export type`
    const names = m[3].trim();
    if (names.startsWith("{") && !names.includes("*")) {
      const items = names.slice(1, names.lastIndexOf("}")).split(",").map((s) => s.trim())
        .filter((s) => s !== "");
      if (items.length > 0 && items.every((s) => s.startsWith("type "))) continue;
    }
    add(m[4]);
  }
  for (const m of source.matchAll(SIDE_EFFECT)) add(m[1]);
  for (const m of source.matchAll(URL_REF)) add(m[1]);
  return { relative, bare };
}

/** Text with `\r\n` line endings as `\n`, so a checkout's line-ending setting does not matter. */
function normalise(text: string): string {
  return text.replaceAll("\r\n", "\n");
}

async function readSource(url: URL): Promise<string> {
  if (url.protocol !== "file:") {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.text();
  }
  return await Deno.readTextFile(url);
}

function displayPath(url: URL): string {
  return url.href.startsWith(PACKAGE_ROOT.href)
    ? url.href.slice(PACKAGE_ROOT.href.length)
    : url.href;
}

/**
 * Walk the import graph from `roots` (see {@linkcode moduleReferences}) and hash every file.
 *
 * @param roots Module URLs to start from.
 * @returns Path → SHA-256 of the text, plus `import:<specifier>` entries for bare imports.
 * @throws When a file cannot be read (the message names it and the permission it needs).
 *
 * @example Hashes are per file; the walk follows relative imports
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { sourceHashes } from "./identity.ts";
 * const files = await sourceHashes([new URL("../train/optim.ts", import.meta.url)]);
 * ok(files["lib/train/optim.ts"].length === 64 && files["lib/tensor/mod.ts"] !== undefined);
 * ```
 */
export async function sourceHashes(roots: readonly URL[]): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const seen = new Set<string>();
  const queue = roots.map((r) => new URL(r.href));
  while (queue.length > 0) {
    const url = queue.pop() as URL;
    if (seen.has(url.href)) continue;
    seen.add(url.href);
    if (BOOKKEEPING.includes(displayPath(url))) continue;
    let text: string;
    try {
      text = normalise(await readSource(url));
    } catch (e) {
      const path = url.protocol === "file:" ? url.pathname : url.href;
      throw new Error(
        `Cannot compute the run identity: reading source file '${path}' failed ` +
          `(${(e as Error).message}); the runner hashes the code that computes a run and needs ` +
          `read access to the package's lib/ (e.g. --allow-read=${PACKAGE_ROOT.pathname})`,
      );
    }
    const isCode = /\.[cm]?[jt]sx?$/.test(url.pathname);
    // code without comments and layout (a doc edit or a reflow keeps the id); data files whole
    files[displayPath(url)] = await sha256HexAsync(isCode ? codeText(text) : text);
    if (!isCode) continue; // a data file: hashed, not parsed
    const refs = moduleReferences(text);
    for (const spec of refs.relative) queue.push(new URL(spec, url));
    for (const spec of refs.bare) files[`import:${spec}`] = spec;
  }
  return Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function sha256HexAsync(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const codeCache = new Map<BackendName, Promise<CodeIdentity>>();

/**
 * The source files that compute a run on backend `name`, hashed (computed once per process).
 *
 * @param name The backend kind (its module joins the graph).
 * @returns The per-file hashes and their combined hash.
 *
 * @example The trainer computes runs; the README and the report code do not
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { codeIdentity } from "./identity.ts";
 * const code = await codeIdentity("cpu");
 * ok("lib/train/trainer.ts" in code.files && "lib/backend/cpu.ts" in code.files);
 * ok(!("README.md" in code.files) && !("lib/report/html.ts" in code.files));
 * ```
 */
export function codeIdentity(name: BackendName): Promise<CodeIdentity> {
  let cached = codeCache.get(name);
  if (cached === undefined) {
    cached = sourceHashes([RUN_MODULE, BACKEND_MODULES[name]]).then((files) => ({
      hash: sha256Hex(canonicalJson(files)),
      files,
    }));
    cached.catch(() => codeCache.delete(name));
    codeCache.set(name, cached);
  }
  return cached;
}

/**
 * The backend's numerics as they enter a run id: its kind and device (`description`). Two
 * backends with the same string give the same numbers for the same run.
 *
 * @param backend The backend a run trains on.
 * @returns The string stored in the id.
 */
export function backendNumerics(backend: Backend): string {
  return backend.description;
}

/** What a run's id covers, stored in `config.json` so a changed id can be explained. */
export interface RunIdentity {
  model: unknown;
  data: unknown;
  dataHash: string | null;
  train: unknown;
  seed: number;
  /** {@linkcode backendNumerics}. */
  backend: string;
  code: CodeIdentity;
}

function flatten(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) out.set(prefix, "{}");
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, JSON.stringify(value) ?? "undefined");
  }
}

/**
 * What differs between a stored identity and a new one, one phrase per change: config fields
 * (`train.lr 0.003 → 0.001`), the backend, the data, or the code files that changed, appeared
 * or disappeared. An identity from an older store (without components) says so.
 *
 * @param before The identity in `config.json` (or `undefined` when the store predates it).
 * @param after The identity of the run about to execute.
 * @returns The changes (empty when the ids differ for no visible reason).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { identityChanges } from "./identity.ts";
 * const code = { hash: "h1", files: { "lib/a.ts": "1", "lib/b.ts": "2" } };
 * const a = { model: { dModel: 64 }, data: {}, dataHash: "d", train: { lr: 0.003 }, seed: 0, backend: "cpu", code };
 * const b = { ...a, train: { lr: 0.001 }, code: { hash: "h2", files: { "lib/a.ts": "9", "lib/b.ts": "2" } } };
 * deepStrictEqual(identityChanges(a, b), ["train.lr 0.003 → 0.001", "code: lib/a.ts changed"]);
 * ```
 */
export function identityChanges(before: RunIdentity | undefined, after: RunIdentity): string[] {
  if (before === undefined || typeof before !== "object" || before.code?.files === undefined) {
    return ["the stored run predates run identities with components (written by an older ablate)"];
  }
  const changes: string[] = [];
  const config = (id: RunIdentity) => {
    const out = new Map<string, string>();
    flatten(
      {
        model: id.model,
        data: id.data,
        dataHash: id.dataHash,
        train: id.train,
        seed: id.seed,
        backend: id.backend,
      },
      "",
      out,
    );
    return out;
  };
  const [a, b] = [config(before), config(after)];
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const [x, y] = [a.get(key) ?? "(unset)", b.get(key) ?? "(unset)"];
    if (x !== y) changes.push(`${key} ${x} → ${y}`);
  }
  const [fa, fb] = [before.code.files, after.code.files];
  const files = [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort();
  const changed = files.filter((f) => f in fa && f in fb && fa[f] !== fb[f]);
  const added = files.filter((f) => !(f in fa));
  const removed = files.filter((f) => !(f in fb));
  const list = (xs: string[]) =>
    xs.length <= 6 ? xs.join(", ") : `${xs.slice(0, 6).join(", ")} and ${xs.length - 6} more`;
  if (changed.length > 0) changes.push(`code: ${list(changed)} changed`);
  if (added.length > 0) changes.push(`code: ${list(added)} added`);
  if (removed.length > 0) changes.push(`code: ${list(removed)} no longer used`);
  return changes;
}

/**
 * The commit of the checkout this package lives in, read from the `.git` beside the package
 * root (never the working directory), or `null` without one (a tarball, no read access).
 * Informational only: stored in `config.json`, never part of a run id.
 *
 * @returns The 40-hex commit, or `null`.
 */
export async function packageCommit(): Promise<string | null> {
  try {
    let git = new URL(".git", PACKAGE_ROOT);
    const stat = await Deno.stat(git);
    if (stat.isFile) {
      // a worktree: `.git` holds "gitdir: <path>"
      const line = (await Deno.readTextFile(git)).trim();
      if (!line.startsWith("gitdir: ")) return null;
      git = new URL(`file://${line.slice(8)}`);
    }
    const dir = git.href.endsWith("/") ? git : new URL(`${git.href}/`);
    const head = (await Deno.readTextFile(new URL("HEAD", dir))).trim();
    if (!head.startsWith("ref: ")) return /^[0-9a-f]{40}$/.test(head) ? head : null;
    const ref = head.slice(5);
    let common = dir;
    try {
      const c = (await Deno.readTextFile(new URL("commondir", dir))).trim();
      common = new URL(c.endsWith("/") ? c : `${c}/`, dir);
    } catch { /* not a worktree */ }
    for (const base of [dir, common]) {
      try {
        return (await Deno.readTextFile(new URL(ref, base))).trim();
      } catch { /* packed */ }
    }
    const packed = await Deno.readTextFile(new URL("packed-refs", common));
    return packed.split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0] ?? null;
  } catch {
    return null;
  }
}
