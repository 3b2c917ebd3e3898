/**
 * The command line's error type, shared by the CLI and the executors.
 *
 * @module
 */

/** An error in the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
