/**
 * Subprocess entry for the kill-and-resume test: execute the RunPlan in the JSON file given as
 * the first argument, storing under the second, printing one line per step.
 */
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { type Reporter, SILENT } from "../../lib/runner/progress.ts";
import { executeRun } from "../../lib/runner/execute.ts";
import type { RunPlan } from "../../lib/runner/run.ts";

const [planPath, root] = Deno.args;
const plan = JSON.parse(await Deno.readTextFile(planPath)) as RunPlan;
const reporter: Reporter = { ...SILENT, step: (m) => console.log(`step ${m.step}`) };
await executeRun(plan, {
  root,
  backend: new CpuBackend(),
  backendReason: "test",
  reporter,
  index: 1,
  count: 1,
});
