/** Worker entry for the `--jobs` test: the CLI over the tests' tiny experiment. */
import { main } from "../../lib/runner/cli.ts";
import { TINY_EXPERIMENT } from "../_fixtures.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args, [TINY_EXPERIMENT], { scriptUrl: import.meta.url }));
}
