/**
 * The safetensors checkpoint format: encode, decode, save (atomically) and load.
 *
 * Layout: an 8-byte little-endian u64 `N`, then `N` bytes of UTF-8 JSON padded with spaces to a
 * multiple of 8, then the little-endian data buffer. The header maps each tensor name to
 * `{ dtype, shape, data_offsets: [begin, end] }` (offsets into the data buffer) and may hold
 * `"__metadata__": { string: string }`. Tensors lie back to back in the buffer with no gap or
 * overlap; the writer orders them by dtype (widest first, so each is aligned) and then by name,
 * as the reference implementation does.
 *
 * Dtypes: `F32`, `I32` and `U8` map to `f32`, `i32` and `u8` both ways. On read, `F16`, `BF16`
 * and `F64` become `f32`, and `F8_E4M3` / `F8_E5M2` stay raw codes in a `u8` tensor whose
 * original dtype is reported in {@linkcode DecodedSafetensors.dtypes}.
 *
 * Ref: https://github.com/huggingface/safetensors (format description in README.md)
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import { getBackend } from "../backend/mod.ts";
import type { DType } from "./dtype.ts";
import { formatShape, type Shape } from "./shape.ts";
import { Tensor } from "./tensor.ts";

/** The safetensors dtypes this module reads (the first three it also writes). */
export type SafetensorsDType =
  | "F32"
  | "I32"
  | "U8"
  | "F16"
  | "BF16"
  | "F64"
  | "F8_E4M3"
  | "F8_E5M2";

/** Every supported safetensors dtype, for validation messages. */
export const SAFETENSORS_DTYPES: readonly SafetensorsDType[] = [
  "F32",
  "I32",
  "U8",
  "F16",
  "BF16",
  "F64",
  "F8_E4M3",
  "F8_E5M2",
];

/** Bytes per element of each safetensors dtype. */
const ITEM_SIZE: Record<SafetensorsDType, number> = {
  F32: 4,
  I32: 4,
  U8: 1,
  F16: 2,
  BF16: 2,
  F64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/**
 * Writer order, largest first: the position of each dtype in the reference implementation's
 * `Dtype` enum (which it sorts descending), so files match its layout.
 */
const WRITE_RANK: Record<SafetensorsDType, number> = {
  U8: 0,
  F8_E5M2: 1,
  F8_E4M3: 2,
  F16: 3,
  BF16: 4,
  I32: 5,
  F32: 6,
  F64: 7,
};

/** The key of the metadata entry in the header. */
const METADATA_KEY = "__metadata__";

/** Whether this host stores typed arrays little-endian (the file is always little-endian). */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Tensors by name, as a plain object or a `Map`. */
export type NamedTensors = Record<string, Tensor> | Map<string, Tensor>;

/** Options for {@linkcode encodeSafetensors} and {@linkcode saveSafetensors}. */
export interface EncodeSafetensorsOptions {
  /**
   * Store some `u8` tensors as FP8 codes: name → `"F8_E4M3"` or `"F8_E5M2"` (default: every
   * tensor is stored as its own dtype).
   */
  fp8?: Record<string, "F8_E4M3" | "F8_E5M2">;
}

/** Options for {@linkcode decodeSafetensors} and {@linkcode loadSafetensors}. */
export interface DecodeSafetensorsOptions {
  /** Backend to create the tensors on (default: the current backend, see `setBackend`). */
  backend?: Backend;
}

/** The contents of a safetensors file. */
export interface DecodedSafetensors {
  /** Tensors by name, in file order. */
  tensors: Map<string, Tensor>;
  /** The `__metadata__` entry (empty when absent). */
  metadata: Record<string, string>;
  /** The dtype each tensor had in the file, e.g. `"BF16"` for a tensor now `f32`. */
  dtypes: Map<string, SafetensorsDType>;
}

/** One parsed and validated header entry: where a tensor's bytes lie in the data buffer. */
export interface SafetensorsEntry {
  /** Tensor name. */
  name: string;
  /** Dtype in the file. */
  dtype: SafetensorsDType;
  /** Shape. */
  shape: number[];
  /** First byte, relative to the data buffer. */
  begin: number;
  /** One past the last byte, relative to the data buffer. */
  end: number;
}

type Entry = SafetensorsEntry;

/** A validated safetensors header, see {@linkcode decodeSafetensorsHeader}. */
export interface SafetensorsHeader {
  /** The tensors, in header order. */
  entries: SafetensorsEntry[];
  /** The `__metadata__` entry (empty when absent). */
  metadata: Record<string, string>;
  /** File offset of the data buffer: `8 + header length`. */
  dataStart: number;
}

function fail(message: string): never {
  throw new Error(`Cannot decode safetensors: ${message}`);
}

function storedDType(dtype: DType): SafetensorsDType {
  switch (dtype) {
    case "f32":
      return "F32";
    case "i32":
      return "I32";
    case "u8":
      return "U8";
    default:
      return dtype satisfies never;
  }
}

function entriesOf(tensors: NamedTensors): [string, Tensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/** Reverse the bytes of each `size`-byte element in place (for big-endian hosts). */
function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/** The element bytes of `host` in little-endian order, as `dtype`. */
function hostBytes(host: ArrayLike<number>, dtype: SafetensorsDType): Uint8Array {
  let array: Float32Array | Int32Array | Uint8Array;
  if (dtype === "F32") array = host instanceof Float32Array ? host : Float32Array.from(host);
  else if (dtype === "I32") array = host instanceof Int32Array ? host : Int32Array.from(host);
  else array = host instanceof Uint8Array ? host : Uint8Array.from(host);
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (HOST_LITTLE_ENDIAN) return bytes;
  const copy = bytes.slice();
  swapBytes(copy, ITEM_SIZE[dtype]);
  return copy;
}

/**
 * Serialize tensors (and optional string metadata) to the bytes of a safetensors file.
 *
 * @param tensors Tensors by name (any backend, any layout); `"__metadata__"` is reserved.
 * @param metadata String key/value pairs for the header's `__metadata__` entry.
 * @param options FP8 dtype tags for `u8` tensors holding FP8 codes.
 * @returns The file bytes: length prefix, padded JSON header, data buffer.
 *
 * @example Round trip through bytes
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "./mod.ts";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = await encodeSafetensors({ w: tensor([[1, 2], [3, 4]]) }, { step: "10" });
 * const { tensors, metadata } = decodeSafetensors(bytes);
 * deepStrictEqual(await tensors.get("w")?.toList(), [[1, 2], [3, 4]]);
 * deepStrictEqual(metadata, { step: "10" });
 * ```
 */
export async function encodeSafetensors(
  tensors: NamedTensors,
  metadata: Record<string, string> = {},
  options: EncodeSafetensorsOptions = {},
): Promise<Uint8Array> {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new TypeError(
        `Cannot encode safetensors: metadata value of '${key}' is ${typeof value}, expected a string`,
      );
    }
  }
  const fp8 = new Map(Object.entries(options.fp8 ?? {}));
  const items = entriesOf(tensors).map(([name, t]) => {
    if (name === METADATA_KEY) {
      throw new Error(`Cannot encode safetensors: tensor name '${METADATA_KEY}' is reserved`);
    }
    if (!(t instanceof Tensor)) {
      throw new TypeError(`Cannot encode safetensors: '${name}' is not a Tensor`);
    }
    let dtype = storedDType(t.dtype);
    const tag = fp8.get(name);
    if (tag !== undefined) {
      if (t.dtype !== "u8" || (tag !== "F8_E4M3" && tag !== "F8_E5M2")) {
        throw new TypeError(
          `Cannot encode safetensors: cannot store tensor '${name}' of dtype '${t.dtype}' as ` +
            `'${tag}': FP8 needs a 'u8' tensor of codes and 'F8_E4M3' or 'F8_E5M2'`,
        );
      }
      dtype = tag;
      fp8.delete(name);
    }
    return { name, t, dtype };
  });
  if (fp8.size > 0) {
    throw new Error(
      `Cannot encode safetensors: fp8 names tensor '${[...fp8.keys()][0]}', which is not given`,
    );
  }
  items.sort((a, b) =>
    WRITE_RANK[b.dtype] - WRITE_RANK[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );

  const chunks: Uint8Array[] = [];
  const fields: string[] = [];
  if (Object.keys(metadata).length > 0) {
    fields.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const { name, t, dtype } of items) {
    const bytes = hostBytes(await t.data(), dtype);
    chunks.push(bytes);
    const info = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    fields.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(`{${fields.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let pos = 8 + headerLength;
  for (const chunk of chunks) {
    out.set(chunk, pos);
    pos += chunk.length;
  }
  return out;
}

/**
 * Throw on a repeated key in any object of `json` (which is known to be valid JSON), since
 * `JSON.parse` silently keeps the last one.
 */
function checkDuplicateKeys(json: string): void {
  interface Frame {
    object: boolean;
    keys: Set<string>;
    expectKey: boolean;
    depth: number;
  }
  const stack: Frame[] = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    const top = stack.at(-1);
    if (c === "{" || c === "[") {
      stack.push({ object: c === "{", keys: new Set(), expectKey: c === "{", depth: stack.length });
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      if (top?.object) top.expectKey = true;
    } else if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === "\\" ? 2 : 1;
      if (top?.object && top.expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          fail(
            top.depth === 0
              ? `duplicate tensor name '${key}' in the header`
              : `duplicate key '${key}' in the header`,
          );
        }
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    }
  }
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function parseEntry(name: string, raw: unknown): Entry {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    fail(`header entry of tensor '${name}' is ${JSON.stringify(raw)}, expected an object`);
  }
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== "string") {
    fail(`tensor '${name}' has dtype ${JSON.stringify(dtype)}, expected a string`);
  }
  if (!(SAFETENSORS_DTYPES as readonly string[]).includes(dtype)) {
    fail(
      `tensor '${name}' has unsupported dtype '${dtype}': supported are ${
        SAFETENSORS_DTYPES.join(", ")
      }`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    fail(
      `tensor '${name}' has shape ${
        JSON.stringify(shape)
      }, expected an array of non-negative integers`,
    );
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) ||
    offsets[0] > offsets[1]
  ) {
    fail(
      `tensor '${name}' has data_offsets ${
        JSON.stringify(offsets)
      }, expected [begin, end] with 0 <= begin <= end`,
    );
  }
  return { name, dtype: dtype as SafetensorsDType, shape, begin: offsets[0], end: offsets[1] };
}

function parseMetadata(raw: unknown): Record<string, string> {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    fail(`'${METADATA_KEY}' is ${JSON.stringify(raw)}, expected an object of strings`);
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  for (const [key, value] of entries) {
    if (typeof value !== "string") {
      fail(`metadata value of '${key}' is ${JSON.stringify(value)}, expected a string`);
    }
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

/** Check that the entries tile `[0, size)` exactly: in range, no overlap, no gap. */
function checkLayout(entries: Entry[], size: number): void {
  for (const e of entries) {
    if (e.end > size) {
      fail(
        `tensor '${e.name}' has data_offsets [${e.begin}, ${e.end}] beyond the data buffer of ` +
          `${size} bytes (truncated file?)`,
      );
    }
    const elements = e.shape.reduce((a, b) => a * b, 1);
    if (elements * ITEM_SIZE[e.dtype] !== e.end - e.begin) {
      fail(
        `tensor '${e.name}' of shape ${formatShape(e.shape)} and dtype '${e.dtype}' needs ` +
          `${elements * ITEM_SIZE[e.dtype]} bytes, but data_offsets [${e.begin}, ${e.end}] ` +
          `hold ${e.end - e.begin}`,
      );
    }
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0, previous: Entry | null = null;
  for (const e of sorted) {
    if (previous !== null && e.begin < position) {
      fail(
        `tensors '${previous.name}' [${previous.begin}, ${previous.end}] and '${e.name}' ` +
          `[${e.begin}, ${e.end}] overlap in the data buffer`,
      );
    }
    if (e.begin > position) {
      fail(`bytes [${position}, ${e.begin}) of the data buffer belong to no tensor`);
    }
    position = e.end;
    previous = e;
  }
  if (position !== size) {
    fail(`bytes [${position}, ${size}) of the data buffer belong to no tensor`);
  }
}

let halfTable: Float32Array | null = null;

/** f32 value of every f16 bit pattern (IEEE 754 binary16, incl. subnormals, ±inf, NaN). */
function halfToFloatTable(): Float32Array {
  if (halfTable !== null) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24; // subnormal: m · 2⁻¹⁴ / 2¹⁰
    else if (exponent === 31) table[h] = mantissa === 0 ? sign * Infinity : NaN;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

/**
 * Host values of one tensor's bytes in host byte order: F32 and U8 data share `bytes` when it
 * is not copied (then it must start at offset 0 of its buffer), the other dtypes are new arrays.
 */
function hostValues(
  bytes: Uint8Array,
  dtype: SafetensorsDType,
  copyBytes = true,
): Float32Array | Int32Array | Uint8Array {
  const copy = copyBytes || !HOST_LITTLE_ENDIAN || bytes.byteOffset !== 0 ? bytes.slice() : bytes;
  if (!HOST_LITTLE_ENDIAN) swapBytes(copy, ITEM_SIZE[dtype]);
  const n = copy.length / ITEM_SIZE[dtype];
  switch (dtype) {
    case "F32":
      return new Float32Array(copy.buffer, 0, n);
    case "I32":
      return new Int32Array(copy.buffer, 0, n);
    case "U8":
    case "F8_E4M3":
    case "F8_E5M2":
      return copy;
    case "F64":
      return Float32Array.from(new Float64Array(copy.buffer, 0, n));
    case "BF16": {
      // bf16 is the top half of an f32: shift the bits up (exact for every pattern).
      const halves = new Uint16Array(copy.buffer, 0, n);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = halves[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case "F16": {
      const halves = new Uint16Array(copy.buffer, 0, n);
      const table = halfToFloatTable();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[halves[i]];
      return out;
    }
    default:
      return dtype satisfies never;
  }
}

/** Options for {@linkcode decodeSafetensorsData}. */
export interface DecodeSafetensorsDataOptions {
  /**
   * Copy the bytes first. Without a copy, F32, I32 and 8-bit data are views of `bytes` (which
   * must then start at offset 0 of its buffer, as a fresh read buffer does).
   * @default {true}
   */
  copy?: boolean;
}

/**
 * The values of one tensor's raw bytes: `F32`, `F16`, `BF16` and `F64` as `Float32Array`, `I32`
 * as `Int32Array`, `U8` and FP8 codes as `Uint8Array`.
 *
 * @param bytes Exactly the tensor's bytes, little-endian.
 * @param dtype Their dtype in the file.
 * @param options Whether to copy first.
 * @returns The host values.
 *
 * @example BF16 is the top half of an f32
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeSafetensorsData } from "./safetensors.ts";
 * deepStrictEqual(decodeSafetensorsData(new Uint8Array([0x80, 0x3f]), "BF16"), new Float32Array([1]));
 * ```
 */
export function decodeSafetensorsData(
  bytes: Uint8Array,
  dtype: SafetensorsDType,
  options: DecodeSafetensorsDataOptions = {},
): Float32Array | Int32Array | Uint8Array {
  const size = ITEM_SIZE[dtype];
  if (size === undefined) {
    throw new Error(
      `Cannot decode safetensors data of dtype '${dtype}': supported are ${
        SAFETENSORS_DTYPES.join(", ")
      }`,
    );
  }
  if (bytes.length % size !== 0) {
    throw new Error(
      `Cannot decode ${bytes.length} bytes as '${dtype}': expected a multiple of ${size}`,
    );
  }
  return hostValues(bytes, dtype, options.copy ?? true);
}

/**
 * Bytes per element of a safetensors dtype.
 *
 * @param dtype The dtype.
 * @returns 1, 2, 4 or 8.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { safetensorsItemSize } from "./safetensors.ts";
 * strictEqual(safetensorsItemSize("BF16"), 2);
 * ```
 */
export function safetensorsItemSize(dtype: SafetensorsDType): number {
  return ITEM_SIZE[dtype];
}

/** The header of a safetensors file on disk, see {@linkcode readSafetensorsHeader}. */
export interface SafetensorsFileHeader extends SafetensorsHeader {
  /** The file's size in bytes. */
  fileSize: number;
}

/**
 * Read and validate only the header of a safetensors file (the tensors' bytes stay on disk).
 * Needs `--allow-read`.
 *
 * @param path The file.
 * @returns The entries, the metadata, where the data starts and the file size.
 *
 * @example
 * ```ts ignore
 * const { entries, dataStart } = await readSafetensorsHeader("model.safetensors");
 * ```
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsFileHeader> {
  const file = await Deno.open(path, { read: true });
  try {
    const fileSize = (await file.stat()).size;
    const prefix = new Uint8Array(Math.min(8, fileSize));
    await readFull(file, prefix);
    let bytes = prefix;
    if (fileSize >= 8) {
      const declared = new DataView(prefix.buffer).getBigUint64(0, true);
      if (declared <= BigInt(fileSize - 8)) {
        bytes = new Uint8Array(8 + Number(declared));
        bytes.set(prefix);
        await readFull(file, bytes.subarray(8));
      }
    }
    return { ...decodeSafetensorsHeader(bytes, fileSize), fileSize };
  } catch (e) {
    throw new Error(`Cannot load '${path}': ${(e as Error).message}`, { cause: e });
  } finally {
    file.close();
  }
}

/** Fill `into` from the file's current position (a short file is an error). */
async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<void> {
  for (let at = 0; at < into.length;) {
    const n = await file.read(into.subarray(at));
    if (n === null) throw new Error(`file ended ${into.length - at} bytes early (truncated?)`);
    at += n;
  }
}

function tensorDType(dtype: SafetensorsDType): DType {
  switch (dtype) {
    case "F32":
    case "F16":
    case "BF16":
    case "F64":
      return "f32";
    case "I32":
      return "i32";
    case "U8":
    case "F8_E4M3":
    case "F8_E5M2":
      return "u8";
    default:
      return dtype satisfies never;
  }
}

/**
 * Parse and validate a safetensors header from the start of a file: the length prefix, the
 * JSON (no duplicate names) and the layout (the tensors tile the data buffer exactly). Reading a
 * large checkpoint, pass only the first `8 + N` bytes and the file size, then read each tensor's
 * bytes at `dataStart + begin` (see `lib/models/hf_checkpoint.ts`).
 *
 * @param prefix The first bytes of the file: at least the length prefix and the header.
 * @param fileSize The size of the whole file in bytes (default: `prefix.length`).
 * @returns The entries, the metadata and where the data buffer starts.
 *
 * @example Where the tensors lie
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { tensor } from "./mod.ts";
 * import { decodeSafetensorsHeader, encodeSafetensors } from "./safetensors.ts";
 * const bytes = await encodeSafetensors({ a: tensor([1, 2]), b: tensor([3]) });
 * const { entries, dataStart } = decodeSafetensorsHeader(bytes);
 * deepStrictEqual(entries.map((e) => [e.name, e.begin, e.end]), [["a", 0, 8], ["b", 8, 12]]);
 * deepStrictEqual(bytes.length, dataStart + 12);
 * ```
 */
export function decodeSafetensorsHeader(
  prefix: Uint8Array,
  fileSize: number = prefix.length,
): SafetensorsHeader {
  const bytes = prefix;
  if (bytes.length < 8) {
    fail(`file of ${bytes.length} bytes is truncated: expected at least the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(fileSize - 8)) {
    fail(
      `header length ${declared} is larger than the ${fileSize - 8} bytes after the ` +
        `length prefix (truncated or not a safetensors file?)`,
    );
  }
  const headerLength = Number(declared);
  if (bytes.length < 8 + headerLength) {
    fail(`header of ${headerLength} bytes is cut off: only ${bytes.length - 8} were given`);
  }
  let json: string;
  try {
    json = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail(`header of ${headerLength} bytes is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail(`header is ${json.trim().slice(0, 40)}, expected a JSON object`);
  }
  checkDuplicateKeys(json);

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(raw);
    else entries.push(parseEntry(name, raw));
  }
  const dataStart = 8 + headerLength;
  checkLayout(entries, fileSize - dataStart);
  return { entries, metadata, dataStart };
}

/**
 * Parse the bytes of a safetensors file into tensors, validating the whole layout first: a
 * truncated or corrupt file is a clear error, never garbage.
 *
 * @param bytes The complete file.
 * @param options The backend to create the tensors on.
 * @returns The tensors, the metadata and each tensor's dtype in the file.
 *
 * @example Decode a BF16 tensor (converted to f32)
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeSafetensors } from "./safetensors.ts";
 * const header = '{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}  ';
 * const bytes = new Uint8Array(8 + header.length + 4);
 * bytes[0] = header.length;
 * bytes.set(new TextEncoder().encode(header), 8);
 * bytes.set([0x80, 0x3f, 0x00, 0xc0], 8 + header.length); // 1.0, -2.0
 * const { tensors, dtypes } = decodeSafetensors(bytes);
 * deepStrictEqual(await tensors.get("x")?.toList(), [1, -2]);
 * deepStrictEqual(dtypes.get("x"), "BF16");
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  options: DecodeSafetensorsOptions = {},
): DecodedSafetensors {
  const { entries, metadata, dataStart } = decodeSafetensorsHeader(bytes);
  const backend = options.backend ?? getBackend();
  const tensors = new Map<string, Tensor>();
  const dtypes = new Map<string, SafetensorsDType>();
  for (const e of entries) {
    const data = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    const storage = backend.upload(tensorDType(e.dtype), hostValues(data, e.dtype));
    tensors.set(e.name, Tensor.fromStorage(backend, storage, e.shape as Shape));
    dtypes.set(e.name, e.dtype);
  }
  return { tensors, metadata, dtypes };
}

/**
 * Write tensors to a safetensors file atomically: the bytes go to a temporary file in the same
 * directory, which is flushed to disk and then renamed over `path`. Needs `--allow-write`.
 *
 * @param path The file to create or replace.
 * @param tensors Tensors by name.
 * @param metadata String key/value pairs for the header's `__metadata__` entry.
 * @param options FP8 dtype tags for `u8` tensors holding FP8 codes.
 * @returns A promise that resolves once the file is in place.
 *
 * @example Save and load a checkpoint
 * ```ts ignore
 * import { tensor } from "./mod.ts";
 * import { loadSafetensors, saveSafetensors } from "./safetensors.ts";
 * await saveSafetensors("model.safetensors", { "lm_head.weight": tensor([[1, 2]]) });
 * const { tensors } = await loadSafetensors("model.safetensors");
 * ```
 */
export async function saveSafetensors(
  path: string,
  tensors: NamedTensors,
  metadata: Record<string, string> = {},
  options: EncodeSafetensorsOptions = {},
): Promise<void> {
  const bytes = await encodeSafetensors(tensors, metadata, options);
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    const file = await Deno.open(temporary, { write: true, createNew: true });
    try {
      for (let written = 0; written < bytes.length;) {
        written += await file.write(bytes.subarray(written));
      }
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (e) {
    await Deno.remove(temporary).catch(() => {});
    throw new Error(`Cannot save safetensors to '${path}': ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Read and decode a safetensors file (see {@linkcode decodeSafetensors}). Needs `--allow-read`.
 *
 * @param path The file to read.
 * @param options The backend to create the tensors on.
 * @returns The tensors, the metadata and each tensor's dtype in the file.
 *
 * @example Load a checkpoint onto the current backend
 * ```ts ignore
 * import { loadSafetensors } from "./safetensors.ts";
 * const { tensors, metadata } = await loadSafetensors("runs/x/checkpoint/model.safetensors");
 * ```
 */
export async function loadSafetensors(
  path: string,
  options: DecodeSafetensorsOptions = {},
): Promise<DecodedSafetensors> {
  const bytes = await Deno.readFile(path);
  try {
    return decodeSafetensors(bytes, options);
  } catch (e) {
    throw new Error(`Cannot load '${path}': ${(e as Error).message}`, { cause: e });
  }
}
