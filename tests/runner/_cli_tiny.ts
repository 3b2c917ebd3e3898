/** Worker entry for the `--jobs` test: the CLI over the test's tiny experiment. */
import { main } from "../../lib/runner/cli.ts";
import { tiny } from "./cli_test.ts";

if (import.meta.main) Deno.exit(await main(Deno.args, [tiny], { scriptUrl: import.meta.url }));
