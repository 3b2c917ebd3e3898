/**
 * Studies: suite entries that are not "train one model per variant × seed" — the R1 pipeline
 * (several stages feeding each other) or the parallelism simulator (no training at all). They
 * share the suite's doors: `deno task experiments --only NAME`, `--list`, `--budget`, the
 * results store under `<out>/<name>/`, the reporter and the chosen backend.
 *
 * A study owns its directory and must keep it resumable: skip work whose results are already on
 * disk, write every file through a temp file + rename ({@linkcode writeJsonAtomic}).
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { Experiment } from "../dsl/experiment.ts";
import type { Reporter } from "./progress.ts";

/** What the runner hands a study. */
export interface StudyContext {
  /** `small` (the quick look) or `full` (the documented setting). */
  readonly budget: "small" | "full";
  /** The study's directory in the results store, `<out>/<name>`; it writes only below it. */
  readonly dir: string;
  /** The variants picked by `--only name/variant`, or `undefined` for all. */
  readonly variants: readonly string[] | undefined;
  readonly backend: Backend;
  /** Why this backend was chosen (printed at the start, stored with results). */
  readonly backendReason: string;
  readonly reporter: Reporter;
  /** The hash of the source files that compute runs (`identity.ts`), for provenance. */
  readonly codeVersion: string;
}

/** A suite entry run by its own code rather than expanded into training runs. */
export interface Study {
  readonly kind: "study";
  /** The name used by `--only` and as the store directory. */
  readonly name: string;
  /** One line for `--list`. */
  readonly description: string;
  /** Names `--only name/variant` accepts (stages, schedules...). */
  readonly variants: readonly string[];
  readonly seeds: readonly number[];
  /** Do (or resume) the work; throws on failure. */
  run(context: StudyContext): Promise<void>;
}

/** One entry of the suite: a DSL experiment or a study. */
export type SuiteEntry = Experiment | Study;

const NAME = /^[A-Za-z][A-Za-z0-9._-]*$/;

/** Declare a study, checking its names. */
export function study(spec: Omit<Study, "kind">): Study {
  if (!NAME.test(spec.name)) {
    throw new TypeError(
      `study name '${spec.name}' is invalid: expected letters, digits, ., _ and - starting with a letter`,
    );
  }
  for (const v of spec.variants) {
    if (!NAME.test(v)) {
      throw new TypeError(
        `study '${spec.name}': variant name '${v}' is invalid: expected letters, digits, ., _ and - starting with a letter`,
      );
    }
  }
  if (new Set(spec.variants).size !== spec.variants.length) {
    throw new TypeError(`study '${spec.name}': variant names repeat (${spec.variants.join(", ")})`);
  }
  return { kind: "study", ...spec };
}

/** Whether a suite entry is a {@linkcode Study}. */
export function isStudy(entry: SuiteEntry): entry is Study {
  return (entry as Partial<Study>).kind === "study";
}

/** The store's file helpers, for studies (atomic writes create their directory). */
export { exists, readMetrics, writeJsonAtomic, writeTextAtomic } from "./store.ts";
