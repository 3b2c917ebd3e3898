/**
 * Per-run locks, so two runners on one store (two terminals, a notebook and the CLI, Slurm
 * tasks) never train the same run.
 *
 * A run's lock file, `<store>/.locks/<experiment>/<variant>/seed-<n>.lock` (outside the run's
 * directory, which may be moved aside while locked), is created exclusively (`O_CREAT | O_EXCL`)
 * and holds its owner
 * (`pid`, `host`, a random `token`) and a `heartbeat` time the owner refreshes while it trains.
 * The owner also holds an advisory lock (`flock`) on the file, which the kernel drops when the
 * process dies, however it dies. A second runner that finds the file:
 *
 * - same host, `flock` free: the owner is dead (killed, crashed) — the lock is taken over at once;
 * - `flock` held: the owner is alive — the run is skipped with a message naming the owner;
 * - another host (a shared filesystem whose `flock` does not reach across nodes): the lock is
 *   taken over only when its heartbeat is older than `staleSeconds`.
 *
 * A takeover rewrites the file in place (the path never disappears) and is checked again after
 * a moment; an owner checks at every heartbeat that the file still holds its token, and stops
 * if it was taken over. With `reclaimOwn` (inside the Deno Jupyter kernel, where cells run one at
 * a time), a lock this process still holds from an execution that never finished — a cell
 * interrupted mid-training, whose `finally` never ran — is taken back by the next execution.
 *
 * @module
 */

/** What `run.lock` holds. */
export interface LockOwner {
  pid: number;
  host: string;
  /** Random id of this acquisition. */
  token: string;
  /** ISO time the lock was taken. */
  started: string;
  /** ISO time of the owner's last sign of life. */
  heartbeat: string;
}

/** Options of {@linkcode RunLock.acquire}. */
export interface LockOptions {
  /** A lock from another host is taken over when its heartbeat is older than this. @default {300} */
  staleSeconds?: number;
  /** {@linkcode RunLock.beat} rewrites the heartbeat at most this often. @default {15} */
  beatSeconds?: number;
  /**
   * Take back a lock this process holds from an earlier execution (see the module doc); without
   * it such a lock blocks like any other. @default {false}
   */
  reclaimOwn?: boolean;
}

/** Thrown when another live runner holds a run's lock. */
export class RunLockedError extends Error {
  override name = "RunLockedError";
  /** The lock's owner, as read from the file (`null` while it was being written). */
  readonly owner: LockOwner | null;
  constructor(label: string, owner: LockOwner | null) {
    const who = owner === null
      ? "another runner (it is writing the lock now)"
      : `pid ${owner.pid} on ${owner.host}, last heartbeat ${
        Math.round((Date.now() - Date.parse(owner.heartbeat)) / 1000)
      } s ago`;
    super(
      `${label} is being trained by ${who}: skipped here, so the run is never trained twice; ` +
        `rerun when that runner has finished (a dead runner's lock is taken over automatically)`,
    );
    this.owner = owner;
  }
}

/**
 * The lock file of run `(experiment, variant, seed)` in the store at `root`.
 *
 * @param root The store.
 * @param run The run's names.
 * @returns `<root>/.locks/<experiment>/<variant>/seed-<n>.lock`.
 */
export function lockPath(
  root: string,
  run: { experiment: string; variant: string; seed: number },
): string {
  return `${root}/.locks/${run.experiment}/${run.variant}/seed-${run.seed}.lock`;
}

/** This machine's name (`Deno.hostname()` needs `--allow-sys=hostname`). */
export function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as LockOwner;
    return typeof o.pid === "number" && typeof o.host === "string" &&
        typeof o.token === "string" && typeof o.heartbeat === "string"
      ? o
      : null;
  } catch {
    return null;
  }
}

async function readAll(file: Deno.FsFile): Promise<string> {
  await file.seek(0, Deno.SeekMode.Start);
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  while (true) {
    const n = await file.read(buf);
    if (n === null || n === 0) break;
    chunks.push(buf.slice(0, n));
  }
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return new TextDecoder().decode(all);
}

async function writeAll(file: Deno.FsFile, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  for (let written = 0; written < bytes.length;) {
    written += await file.write(bytes.subarray(written));
  }
}

async function tryFlock(file: Deno.FsFile): Promise<boolean> {
  try {
    return await file.tryLock(true);
  } catch {
    return true; // a filesystem without advisory locks: the heartbeat decides alone
  }
}

/** The locks this process holds, by path. */
const HELD = new Map<string, RunLock>();

/** A held run lock: refresh it with {@linkcode RunLock.beat}, drop it with {@linkcode RunLock.release}. */
export class RunLock {
  readonly path: string;
  readonly owner: LockOwner;
  #file: Deno.FsFile;
  #beatMs: number;
  #lastBeat = Date.now();
  #released = false;

  /** Use {@linkcode RunLock.acquire}. */
  constructor(path: string, file: Deno.FsFile, owner: LockOwner, beatMs: number) {
    this.path = path;
    this.#file = file;
    this.owner = owner;
    this.#beatMs = beatMs;
  }

  /**
   * Take the lock at `path` (its directory is created if missing).
   *
   * @param path The lock file (see {@linkcode lockPath}).
   * @param label The run's name, for the error.
   * @param options Staleness and heartbeat intervals.
   * @returns The held lock.
   * @throws {RunLockedError} when a live runner holds it.
   *
   * @example A second acquisition fails while the first is held
   * ```ts
   * import { rejects } from "node:assert/strict";
   * import { RunLock, RunLockedError } from "./lock.ts";
   * await Deno.mkdir(".test-tmp", { recursive: true });
   * const dir = await Deno.makeTempDir({ dir: ".test-tmp" });
   * const lock = await RunLock.acquire(`${dir}/a.lock`, "x/a/seed-0");
   * await rejects(RunLock.acquire(`${dir}/a.lock`, "x/a/seed-0"), RunLockedError);
   * await lock.release();
   * await (await RunLock.acquire(`${dir}/a.lock`, "x/a/seed-0")).release();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  static async acquire(path: string, label: string, options: LockOptions = {}): Promise<RunLock> {
    const staleMs = (options.staleSeconds ?? 300) * 1000;
    const beatMs = (options.beatSeconds ?? 15) * 1000;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const now = () => new Date().toISOString();
    const mine = (): LockOwner => ({
      pid: Deno.pid,
      host: hostName(),
      token: crypto.randomUUID(),
      started: now(),
      heartbeat: now(),
    });
    for (let attempt = 0; attempt < 5; attempt++) {
      // 1) a new lock
      let file: Deno.FsFile | null = null;
      try {
        file = await Deno.open(path, { read: true, write: true, createNew: true });
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      if (file !== null) {
        if (!(await tryFlock(file))) {
          file.close(); // someone opened it between our create and lock: look again
          continue;
        }
        const owner = mine();
        await writeAll(file, JSON.stringify(owner) + "\n");
        return RunLock.#held(new RunLock(path, file, owner, beatMs));
      }
      // 2) an existing lock: alive, dead or stale?
      try {
        file = await Deno.open(path, { read: true, write: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // released meanwhile
        throw e;
      }
      const flocked = await tryFlock(file);
      const holder = parseOwner(await readAll(file));
      if (!flocked) {
        file.close();
        const stranded = HELD.get(path);
        if (
          options.reclaimOwn && stranded !== undefined && holder?.token === stranded.owner.token
        ) {
          // ours, from an execution of this process that was interrupted: take it back
          await stranded.release();
          continue;
        }
        throw new RunLockedError(label, holder);
      }
      const stat = await file.stat();
      const beat = holder === null ? (stat.mtime?.getTime() ?? 0) : Date.parse(holder.heartbeat);
      const age = Date.now() - beat;
      const sameHost = holder !== null && holder.host === hostName();
      // Same host with the flock free: the owner is dead. Unreadable content on a fresh file: the
      // creator is between its create and its write.
      const dead = holder === null ? age > 10_000 : sameHost || age > staleMs;
      if (!dead) {
        await file.unlock().catch(() => {});
        file.close();
        throw new RunLockedError(label, holder);
      }
      const owner = mine();
      await writeAll(file, JSON.stringify(owner) + "\n");
      if (!sameHost) {
        // Across hosts the flock may not be shared: make sure no other taker overwrote ours.
        await new Promise((r) => setTimeout(r, 200));
        const now = parseOwner(await readAll(file));
        if (now?.token !== owner.token) {
          await file.unlock().catch(() => {});
          file.close();
          throw new RunLockedError(label, now);
        }
      }
      return RunLock.#held(new RunLock(path, file, owner, beatMs));
    }
    throw new RunLockedError(label, null);
  }

  /**
   * Refresh the heartbeat (at most every `beatSeconds`), checking the lock is still ours.
   *
   * @param force Refresh now, whatever the interval.
   * @throws When another runner took the lock over (this one must stop).
   */
  async beat(force = false): Promise<void> {
    if (this.#released || (!force && Date.now() - this.#lastBeat < this.#beatMs)) return;
    this.#lastBeat = Date.now();
    const now = parseOwner(await readAll(this.#file));
    if (now !== null && now.token !== this.owner.token) {
      throw new Error(
        `Lost the lock '${this.path}' to pid ${now.pid} on ${now.host}: this runner stops so ` +
          `the run is not trained twice (its heartbeat was older than the stale limit)`,
      );
    }
    await writeAll(
      this.#file,
      JSON.stringify({ ...this.owner, heartbeat: new Date().toISOString() }) + "\n",
    );
  }

  static #held(lock: RunLock): RunLock {
    HELD.set(lock.path, lock);
    return lock;
  }

  /** Remove the lock file and drop the advisory lock. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    if (HELD.get(this.path) === this) HELD.delete(this.path);
    try {
      const now = parseOwner(await readAll(this.#file));
      if (now === null || now.token === this.owner.token) await Deno.remove(this.path);
    } catch { /* already gone */ }
    await this.#file.unlock().catch(() => {});
    this.#file.close();
  }

  /**
   * The owner recorded in a lock file, or `null` when there is none.
   *
   * @param path The lock file.
   * @returns The owner (for `--status`).
   */
  static async owner(path: string): Promise<LockOwner | null> {
    try {
      return parseOwner(await Deno.readTextFile(path));
    } catch {
      return null;
    }
  }
}
