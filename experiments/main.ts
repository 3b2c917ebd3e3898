/**
 * `deno task experiments`: run the ablation suite (see `--help`).
 *
 * @module
 */

import { main } from "../lib/runner/cli.ts";
import { EXPERIMENTS } from "./mod.ts";

if (import.meta.main) Deno.exit(await main(Deno.args, EXPERIMENTS, { scriptUrl: import.meta.url }));
