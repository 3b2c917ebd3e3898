import { ok, rejects, strictEqual } from "node:assert/strict";
import { hostName, lockPath, RunLock, RunLockedError } from "../../lib/runner/lock.ts";

async function tempDir(): Promise<string> {
  await Deno.mkdir(".test-tmp", { recursive: true });
  return await Deno.makeTempDir({ dir: ".test-tmp", prefix: "lock_" });
}

Deno.test("RunLock: a live holder in another process blocks; once it is killed -9 the lock is taken at once", async () => {
  const dir = await tempDir();
  const path = lockPath(dir, { experiment: "e", variant: "v", seed: 0 });
  const child = new Deno.Command("deno", {
    args: [
      "run",
      "--quiet",
      "--allow-read=.",
      "--allow-write=.test-tmp",
      "--allow-sys=hostname",
      new URL("./_lock_holder.ts", import.meta.url).pathname,
      path,
    ],
    stdout: "piped",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("HELD")) text += (await reader.read()).value ?? "";
    await rejects(RunLock.acquire(path, "e/v/seed-0"), (e: Error) => {
      ok(e instanceof RunLockedError);
      strictEqual(e.owner?.pid, child.pid);
      ok(e.message.startsWith(`e/v/seed-0 is being trained by pid ${child.pid} on ${hostName()}`));
      ok(e.message.includes("never trained twice"));
      return true;
    });
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;
    const started = performance.now();
    const lock = await RunLock.acquire(path, "e/v/seed-0"); // no waiting for a stale heartbeat
    ok(performance.now() - started < 5000);
    strictEqual((await RunLock.owner(path))?.pid, Deno.pid);
    await lock.release();
    strictEqual(await RunLock.owner(path), null);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunLock: another host's lock is taken over only when its heartbeat is older than staleSeconds", async () => {
  const dir = await tempDir();
  const path = `${dir}/x.lock`;
  try {
    const write = (ageSeconds: number) =>
      Deno.writeTextFile(
        path,
        JSON.stringify({
          pid: 1,
          host: "another-node",
          token: "t",
          started: new Date(0).toISOString(),
          heartbeat: new Date(Date.now() - ageSeconds * 1000).toISOString(),
        }),
      );
    await write(10);
    await rejects(RunLock.acquire(path, "x", { staleSeconds: 60 }), /pid 1 on another-node/);
    await write(120);
    const lock = await RunLock.acquire(path, "x", { staleSeconds: 60 });
    strictEqual((await RunLock.owner(path))?.host, hostName());
    // a holder whose lock was taken over stops at its next heartbeat
    const taken = JSON.parse(await Deno.readTextFile(path));
    await Deno.writeTextFile(path, JSON.stringify({ ...taken, token: "other", pid: 2 }));
    await rejects(lock.beat(true), /Lost the lock .* to pid 2/);
    await lock.release();
    ok(await Deno.stat(path).then(() => true), "a lock that is no longer ours is left in place");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunLock: with reclaimOwn, a lock this process holds from an unfinished execution is taken back; without, it blocks", async () => {
  const dir = await tempDir();
  const path = `${dir}/x.lock`;
  try {
    const stranded = await RunLock.acquire(path, "x"); // never released, like an interrupted cell
    await rejects(RunLock.acquire(path, "x"), RunLockedError);
    const again = await RunLock.acquire(path, "x", { reclaimOwn: true });
    strictEqual((await RunLock.owner(path))?.token, again.owner.token);
    await stranded.release(); // late cleanup of the old one must not drop the new lock
    strictEqual((await RunLock.owner(path))?.token, again.owner.token);
    await again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
