/**
 * The runner: expand experiments into runs, train them resumably into the results store
 * (`runs/<experiment>/<variant>/seed-<n>/`), locally, in worker processes or on Slurm, and
 * report progress through a {@linkcode Reporter}.
 *
 * ```ts ignore
 * import { runExperiments } from "./mod.ts";
 * import { EXPERIMENTS } from "../../experiments/mod.ts";
 * const result = await runExperiments(EXPERIMENTS, { only: ["attention/mla"] });
 * console.log(result.runs.map((r) => `${r.label}: ${r.status} ${r.detail}`).join("\n"));
 * ```
 *
 * @module
 */

export {
  checkEntries,
  checkMemory,
  defaultReporter,
  defaultStore,
  inJupyter,
  planSuite,
  type PlanSuiteOptions,
  runExperiments,
  type RunExperimentsOptions,
  type RunExperimentsResult,
  RunsChangedError,
  selectRuns,
  type SuitePlan,
} from "./experiments.ts";
export {
  type DisplayFn,
  JupyterReporter,
  type JupyterReporterOptions,
} from "./jupyter_reporter.ts";
export {
  formatEta,
  type PlannedRun,
  type Reporter,
  type RunEndInfo,
  type RunStartInfo,
  type RunStatus,
  SILENT,
  TerminalReporter,
  type TerminalReporterOptions,
} from "./progress.ts";
export {
  type ComputeHooks,
  computeRun,
  planOf,
  runLabel,
  type RunPlan,
  type RunSummary,
} from "./run.ts";
export {
  type ExecuteOptions,
  executeRun,
  RunChangedError,
  type RunOutcome,
  type StoredConfig,
} from "./execute.ts";
export {
  backendNumerics,
  type CodeIdentity,
  codeIdentity,
  identityChanges,
  type RunIdentity,
} from "./identity.ts";
export { HELP, main } from "./cli.ts";
export {
  type CheckLine,
  checkRun,
  checkStore,
  type FailureRecord,
  type Manifest,
  type RunCheck,
  sealProblem,
} from "./check.ts";
export { lockPath, RunLock, RunLockedError } from "./lock.ts";
export { estimateMemory, type MemoryEstimate, parameterCount } from "./memory.ts";
export { isStudy, type Study, study, type StudyContext, type SuiteEntry } from "./study.ts";
export { UsageError } from "./usage.ts";
