/** Subprocess of the lock tests: take the lock at the path given, print `HELD`, wait forever. */
import { RunLock } from "../../lib/runner/lock.ts";

await RunLock.acquire(Deno.args[0], "held/x/seed-0");
console.log("HELD");
setInterval(() => {}, 1000);
