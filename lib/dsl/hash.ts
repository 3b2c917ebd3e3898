/**
 * Content addressing for runs: canonical JSON (sorted keys, no whitespace) and a synchronous
 * SHA-256 in plain TypeScript, so ids can be computed inside synchronous code (`expand()`) and
 * in any runtime (Deno, a browser notebook) without `crypto.subtle`'s promise or `node:crypto`.
 *
 * Ref: FIPS 180-4 §6.2 (SHA-256); RFC 8785 for the idea of canonical JSON (numbers here use
 * ECMAScript's shortest round-trip form, which is what RFC 8785 prescribes).
 *
 * @module
 */

/**
 * JSON with object keys sorted (by UTF-16 code units) at every depth and no whitespace.
 * `undefined` object fields are dropped; `NaN`, `Infinity`, `undefined` array items, functions
 * and other non-JSON values are errors, since they would not survive a round trip.
 *
 * @param value JSON-like data.
 * @returns The canonical text.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { canonicalJson } from "./hash.ts";
 * deepStrictEqual(canonicalJson({ b: [1, { d: null, c: "x" }], a: 0.1 }), '{"a":0.1,"b":[1,{"c":"x","d":null}]}');
 * ```
 */
export function canonicalJson(value: unknown): string {
  return write(value, "$");
}

function write(value: unknown, path: string): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`Cannot hash ${value} at ${path}: not JSON`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map((v, i) => write(v, `${path}[${i}]`)).join(",")}]`;
  }
  if (typeof value === "object") {
    const keys = Object.keys(value).filter((k) =>
      (value as Record<string, unknown>)[k] !== undefined
    )
      .sort();
    const fields = keys.map((k) =>
      `${JSON.stringify(k)}:${write((value as Record<string, unknown>)[k], `${path}.${k}`)}`
    );
    return `{${fields.join(",")}}`;
  }
  throw new Error(`Cannot hash ${String(value)} at ${path}: not JSON`);
}

// Round constants: first 32 bits of the fractional parts of the cube roots of the first 64 primes.
const K = new Uint32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/**
 * SHA-256 of a string (as UTF-8) or of bytes, as 64 lowercase hex digits. Synchronous.
 *
 * @param data Text or bytes.
 * @returns The hex digest.
 *
 * @example FIPS 180-4 test vector "abc"
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { sha256Hex } from "./hash.ts";
 * deepStrictEqual(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
 * ```
 */
export function sha256Hex(data: string | Uint8Array): string {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  // 1) pad: 0x80, zeros, then the bit length as a 64-bit big-endian integer
  const blocks = Math.ceil((bytes.length + 9) / 64);
  const padded = new Uint8Array(blocks * 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  const bits = bytes.length * 8;
  view.setUint32(padded.length - 8, Math.floor(bits / 2 ** 32));
  view.setUint32(padded.length - 4, bits >>> 0);
  // 2) compress each 512-bit block
  const h = new Uint32Array([
    0x6a09e667,
    0xbb67ae85,
    0x3c6ef372,
    0xa54ff53a,
    0x510e527f,
    0x9b05688c,
    0x1f83d9ab,
    0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let t = 0; t < 16; t++) w[t] = view.getUint32(off + 4 * t);
    for (let t = 16; t < 64; t++) {
      const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
      const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let t = 0; t < 64; t++) {
      const t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
      const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  // 3) digest: the eight words big-endian
  return Array.from(h, (x) => x.toString(16).padStart(8, "0")).join("");
}
