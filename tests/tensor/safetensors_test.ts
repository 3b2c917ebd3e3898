import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import * as T from "../../lib/tensor/mod.ts";
import { Rng } from "../../lib/tensor/random.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  saveSafetensors,
} from "../../lib/tensor/safetensors.ts";

const encoder = new TextEncoder();

/**
 * A safetensors file built by hand from the spec, independent of the encoder: the u64 length
 * prefix (little-endian), `header` padded with spaces to `headerLength`, then `data`.
 */
function fileBytes(header: string, data: ArrayLike<number>, headerLength?: number): Uint8Array {
  const json = encoder.encode(header);
  const n = headerLength ?? Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + data.length);
  let length = n;
  for (let i = 0; i < 8; i++, length = Math.floor(length / 256)) out[i] = length % 256;
  out.fill(0x20, 8, 8 + n);
  out.set(json, 8);
  out.set(data, 8 + n);
  return out;
}

/** The little-endian bytes of 16-bit patterns. */
function u16Bytes(patterns: number[]): number[] {
  return patterns.flatMap((p) => [p & 0xff, p >> 8]);
}

function decodeError(bytes: Uint8Array, pattern: RegExp): void {
  throws(() => decodeSafetensors(bytes), (e: Error) => {
    ok(e.message.startsWith("Cannot decode safetensors: "), e.message);
    ok(pattern.test(e.message), `${e.message} does not match ${pattern}`);
    return true;
  });
}

function entry(dtype: string, shape: number[], begin: number, end: number): string {
  return JSON.stringify({ dtype, shape, data_offsets: [begin, end] });
}

Deno.test("encodeSafetensors() / decodeSafetensors() round-trip every dtype and shape", async () => {
  const inputs = new Map<string, T.Tensor>([
    ["model.embed_tokens.weight", T.tensor([[1.5, -2.25, 3], [1e-30, 3e38, -0]])],
    ["ids", T.tensor([-2147483648, -1, 0, 2147483647], { dtype: "i32" })],
    ["codes", T.tensor([0, 1, 127, 128, 200, 255, 7, 9], { dtype: "u8", shape: [2, 2, 2] })],
    ["scalar", T.tensor(0.1)],
    ["empty", T.zeros([0, 3])],
    ["empty_u8", T.zeros([0], { dtype: "u8" })],
    ["odd_u8", T.tensor([1, 2, 3], { dtype: "u8" })],
    ["z_after_odd", T.tensor([4.5])],
  ]);
  const metadata = { format: "pt", step: "100", "ünïcode": '✓ "quoted"' };
  const bytes = await encodeSafetensors(inputs, metadata);
  const { tensors, metadata: meta, dtypes } = decodeSafetensors(bytes);
  deepStrictEqual(meta, metadata);
  deepStrictEqual([...tensors.keys()].sort(), [...inputs.keys()].sort());
  for (const [name, t] of inputs) {
    const back = tensors.get(name);
    ok(back !== undefined, name);
    deepStrictEqual(back.shape, t.shape, name);
    strictEqual(back.dtype, t.dtype, name);
    deepStrictEqual(back.dataSync(), t.dataSync(), name);
    strictEqual(dtypes.get(name), { f32: "F32", i32: "I32", u8: "U8" }[t.dtype]);
  }
  strictEqual(Object.is(tensors.get("model.embed_tokens.weight")?.dataSync()[5], -0), true);
  // A Record encodes to the same bytes as a Map.
  deepStrictEqual(await encodeSafetensors(Object.fromEntries(inputs), metadata), bytes);
});

Deno.test("encodeSafetensors() writes the spec layout: padded header, sorted, aligned", async () => {
  const bytes = await encodeSafetensors({
    b: T.tensor([1], { dtype: "u8" }),
    a: T.tensor([2], { dtype: "i32" }),
    c: T.tensor([1]),
  });
  // F32 before I32 before U8 (the reference writer's order), then by name.
  const header = '{"c":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
    '"a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},' +
    '"b":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}}';
  deepStrictEqual(bytes, fileBytes(header, [0, 0, 0x80, 0x3f, 2, 0, 0, 0, 1]));
  strictEqual((bytes.length - 9) % 8, 0);
  // Empty metadata is omitted; present metadata comes first.
  const withMeta = await encodeSafetensors({ x: T.tensor(1) }, { k: "v" });
  deepStrictEqual(
    withMeta,
    fileBytes(
      '{"__metadata__":{"k":"v"},"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}',
      [0, 0, 0x80, 0x3f],
    ),
  );
});

Deno.test("encodeSafetensors() writes a non-contiguous view in logical order", async () => {
  const x = T.transpose(T.reshape(T.arange(6), [2, 3]));
  const { tensors } = decodeSafetensors(await encodeSafetensors({ x }));
  deepStrictEqual(await tensors.get("x")?.toList(), [[0, 3], [1, 4], [2, 5]]);
});

Deno.test("decodeSafetensors() reads a hand-built file (independent of the encoder)", async () => {
  // Tensors listed out of buffer order, metadata last, header padded with spaces to 256 bytes.
  const header = '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[12,28]},' +
    '"ids":{"dtype":"I32","shape":[3],"data_offsets":[0,12]},' +
    '"mask":{"dtype":"U8","shape":[2],"data_offsets":[28,30]},' +
    '"__metadata__":{"format":"pt"}}';
  const data = [
    ...[0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0, 0], // i32 1, -1, 256
    ...[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0x20, 0x41, 0, 0, 0xc0, 0x7f], // 1, -2, 10, NaN
    ...[0, 255],
  ];
  const { tensors, metadata, dtypes } = decodeSafetensors(fileBytes(header, data, 256));
  deepStrictEqual(metadata, { format: "pt" });
  deepStrictEqual([...tensors.keys()], ["w", "ids", "mask"]);
  deepStrictEqual(await tensors.get("ids")?.toList(), [1, -1, 256]);
  strictEqual(tensors.get("ids")?.dtype, "i32");
  deepStrictEqual(await tensors.get("w")?.toList(), [[1, -2], [10, NaN]]);
  deepStrictEqual(await tensors.get("mask")?.toList(), [0, 255]);
  strictEqual(tensors.get("mask")?.dtype, "u8");
  deepStrictEqual([...dtypes.values()], ["F32", "I32", "U8"]);
});

Deno.test("decodeSafetensors() converts BF16 bit patterns to f32 exactly", () => {
  const patterns = [0x3f80, 0xc000, 0x0001, 0x8001, 0x7f80, 0xff80, 0x7fc0, 0x8000, 0x7f7f];
  const header = `{"x":${entry("BF16", [patterns.length], 0, 2 * patterns.length)}}`;
  const { tensors, dtypes } = decodeSafetensors(fileBytes(header, u16Bytes(patterns)));
  const x = tensors.get("x");
  ok(x !== undefined);
  strictEqual(x.dtype, "f32");
  strictEqual(dtypes.get("x"), "BF16");
  const v = Array.from(x.dataSync());
  deepStrictEqual(v.slice(0, 7), [1, -2, 2 ** -133, -(2 ** -133), Infinity, -Infinity, NaN]);
  strictEqual(Object.is(v[7], -0), true);
  strictEqual(v[8], (1 + 127 / 128) * 2 ** 127); // largest finite bf16
});

Deno.test("decodeSafetensors() converts F16 bit patterns to f32 incl. subnormals", () => {
  const patterns = [0x3c00, 0xc000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000];
  const header = `{"x":${entry("F16", [2, 5], 0, 2 * patterns.length)}}`;
  const { tensors, dtypes } = decodeSafetensors(fileBytes(header, u16Bytes(patterns)));
  strictEqual(dtypes.get("x"), "F16");
  const v = Array.from(tensors.get("x")?.dataSync() ?? []);
  deepStrictEqual(v.slice(0, 9), [
    1,
    -2,
    2 ** -24, // smallest subnormal
    1023 * 2 ** -24, // largest subnormal
    2 ** -14, // smallest normal
    65504, // largest finite
    Infinity,
    -Infinity,
    NaN,
  ]);
  strictEqual(Object.is(v[9], -0), true);
});

Deno.test("decodeSafetensors() rounds F64 to f32", () => {
  const values = new Float64Array([1 / 3, -1e300, 2 ** -1074, 0.5]);
  const header = `{"x":${entry("F64", [4], 0, 32)}}`;
  const { tensors, dtypes } = decodeSafetensors(
    fileBytes(header, new Uint8Array(values.buffer)),
  );
  strictEqual(dtypes.get("x"), "F64");
  deepStrictEqual(Array.from(tensors.get("x")?.dataSync() ?? []), [
    Math.fround(1 / 3),
    -Infinity,
    0,
    0.5,
  ]);
});

Deno.test("decodeSafetensors() keeps FP8 codes as u8 and reports their dtype", async () => {
  const header = `{"a":${entry("F8_E4M3", [3], 0, 3)},"b":${entry("F8_E5M2", [1], 3, 4)}}`;
  const { tensors, dtypes } = decodeSafetensors(fileBytes(header, [0x38, 0x7f, 0xff, 0x3c]));
  strictEqual(tensors.get("a")?.dtype, "u8");
  deepStrictEqual(await tensors.get("a")?.toList(), [0x38, 0x7f, 0xff]);
  deepStrictEqual(await tensors.get("b")?.toList(), [0x3c]);
  deepStrictEqual(Object.fromEntries(dtypes), { a: "F8_E4M3", b: "F8_E5M2" });
  // ... and writes them back under their FP8 dtype when asked.
  const again = await encodeSafetensors(tensors, {}, {
    fp8: { a: "F8_E4M3", b: "F8_E5M2" },
  });
  deepStrictEqual(decodeSafetensors(again).dtypes, dtypes);
  await rejects(
    encodeSafetensors({ x: T.tensor([1]) }, {}, { fp8: { x: "F8_E4M3" } }),
    /Cannot encode safetensors: cannot store tensor 'x' of dtype 'f32' as 'F8_E4M3'/,
  );
  await rejects(
    encodeSafetensors({ x: T.tensor([1]) }, {}, { fp8: { y: "F8_E4M3" } }),
    /fp8 names tensor 'y', which is not given/,
  );
});

Deno.test("decodeSafetensors() creates tensors on the given backend", () => {
  const backend = new CpuBackend({ float64: true });
  const header = `{"x":${entry("F32", [1], 0, 4)}}`;
  const { tensors } = decodeSafetensors(fileBytes(header, [0, 0, 0x80, 0x3f]), { backend });
  strictEqual(tensors.get("x")?.backend, backend);
});

Deno.test("decodeSafetensors() rejects unsupported dtypes naming tensor, dtype and the list", () => {
  const header = `{"step":${entry("I64", [1], 0, 8)}}`;
  decodeError(
    fileBytes(header, new Uint8Array(8)),
    /tensor 'step' has unsupported dtype 'I64': supported are F32, I32, U8, F16, BF16, F64, F8_E4M3, F8_E5M2$/,
  );
});

Deno.test("decodeSafetensors() rejects truncated files and bad header lengths", () => {
  decodeError(new Uint8Array(0), /file of 0 bytes is truncated/);
  decodeError(new Uint8Array([8, 0, 0]), /file of 3 bytes is truncated/);
  const good = fileBytes(`{"x":${entry("F32", [2], 0, 8)}}`, new Uint8Array(8));
  decodeError(good.subarray(0, 20), /header length 56 is larger than the 12 bytes after/);
  const huge = good.slice();
  huge.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
  decodeError(huge, /header length 18446744073709551615 is larger than the 64 bytes/);
  decodeError(
    good.subarray(0, good.length - 1),
    /tensor 'x' has data_offsets \[0, 8\] beyond the data buffer of 7 bytes \(truncated file\?\)/,
  );
});

Deno.test("decodeSafetensors() rejects invalid JSON, UTF-8 and header structure", () => {
  decodeError(fileBytes('{"x": {', []), /header is not valid JSON/);
  decodeError(fileBytes("", [], 0), /header is not valid JSON/);
  const bad = fileBytes('{"x":1}', []);
  bad[10] = 0xff;
  decodeError(bad, /header of 8 bytes is not valid UTF-8/);
  decodeError(fileBytes("[1, 2]", []), /header is \[1, 2\], expected a JSON object/);
  decodeError(fileBytes('{"x":[]}', []), /header entry of tensor 'x' is \[\], expected an object/);
  decodeError(
    fileBytes(`{"x":${entry("F32", [-1], 0, 0)}}`, []),
    /tensor 'x' has shape \[-1\], expected an array of non-negative integers/,
  );
  decodeError(
    fileBytes('{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}}', []),
    /tensor 'x' has shape \[1.5\]/,
  );
  decodeError(
    fileBytes(`{"x":${entry("F32", [1], 4, 0)}}`, new Uint8Array(4)),
    /tensor 'x' has data_offsets \[4,0\], expected \[begin, end\] with 0 <= begin <= end/,
  );
  decodeError(
    fileBytes('{"x":{"dtype":"F32","shape":[1]}}', new Uint8Array(4)),
    /tensor 'x' has data_offsets undefined/,
  );
  decodeError(
    fileBytes('{"x":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)),
    /tensor 'x' has dtype 7, expected a string/,
  );
});

Deno.test("decodeSafetensors() rejects duplicate names and non-string metadata", () => {
  const x = entry("F32", [1], 0, 4);
  decodeError(
    fileBytes(`{"x":${x},"x":${x}}`, new Uint8Array(4)),
    /duplicate tensor name 'x' in the header/,
  );
  // Escaped spellings of the same name are the same name.
  decodeError(
    fileBytes(`{"x":${x}, "\\u0078" :${x}}`, new Uint8Array(4)),
    /duplicate tensor name 'x'/,
  );
  decodeError(
    fileBytes('{"x":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
    /duplicate key 'dtype' in the header/,
  );
  decodeError(
    fileBytes(`{"__metadata__":{"step":10},"x":${x}}`, new Uint8Array(4)),
    /metadata value of 'step' is 10, expected a string/,
  );
  decodeError(
    fileBytes(`{"__metadata__":["a"],"x":${x}}`, new Uint8Array(4)),
    /'__metadata__' is \["a"\], expected an object of strings/,
  );
  // Names that only look like keys (inside strings, arrays) are not duplicates.
  const { tensors, metadata } = decodeSafetensors(
    fileBytes(`{"__metadata__":{"a":"x","b":"{\\"x\\":1,\\"x\\":2}"},"x":${x}}`, [0, 0, 0, 0]),
  );
  deepStrictEqual(metadata, { a: "x", b: '{"x":1,"x":2}' });
  strictEqual(tensors.size, 1);
  // A null metadata entry (allowed by the reference reader) is empty metadata.
  deepStrictEqual(
    decodeSafetensors(fileBytes(`{"__metadata__":null,"x":${x}}`, [0, 0, 0, 0])).metadata,
    {},
  );
});

Deno.test("decodeSafetensors() rejects bad layouts: overlap, gaps, trailing bytes, sizes", () => {
  decodeError(
    fileBytes(`{"a":${entry("F32", [2], 0, 8)},"b":${entry("F32", [1], 4, 8)}}`, new Uint8Array(8)),
    /tensors 'a' \[0, 8\] and 'b' \[4, 8\] overlap in the data buffer/,
  );
  decodeError(
    fileBytes(`{"a":${entry("F32", [2], 0, 8)},"e":${entry("F32", [0], 4, 4)}}`, new Uint8Array(8)),
    /tensors 'a' \[0, 8\] and 'e' \[4, 4\] overlap/,
  );
  decodeError(
    fileBytes(
      `{"a":${entry("F32", [1], 0, 4)},"b":${entry("F32", [1], 8, 12)}}`,
      new Uint8Array(12),
    ),
    /bytes \[4, 8\) of the data buffer belong to no tensor/,
  );
  decodeError(
    fileBytes(`{"a":${entry("F32", [1], 4, 8)}}`, new Uint8Array(8)),
    /bytes \[0, 4\) of the data buffer belong to no tensor/,
  );
  decodeError(
    fileBytes(`{"a":${entry("F32", [1], 0, 4)}}`, new Uint8Array(6)),
    /bytes \[4, 6\) of the data buffer belong to no tensor/,
  );
  decodeError(
    fileBytes(`{"a":${entry("F32", [2, 3], 0, 20)}}`, new Uint8Array(20)),
    /tensor 'a' of shape \[2, 3\] and dtype 'F32' needs 24 bytes, but data_offsets \[0, 20\] hold 20/,
  );
  decodeError(
    fileBytes(`{"a":${entry("BF16", [3], 0, 4)}}`, new Uint8Array(4)),
    /tensor 'a' of shape \[3\] and dtype 'BF16' needs 6 bytes/,
  );
  decodeError(
    fileBytes(`{"a":${entry("F32", [1], 0, 4)}}`, new Uint8Array(2)),
    /data_offsets \[0, 4\] beyond the data buffer of 2 bytes/,
  );
  // Zero-size tensors at a boundary are fine, and an empty file of tensors is valid.
  const { tensors } = decodeSafetensors(
    fileBytes(`{"e":${entry("F32", [0], 4, 4)},"a":${entry("F32", [1], 0, 4)}}`, [0, 0, 0, 0]),
  );
  deepStrictEqual(tensors.get("e")?.shape, [0]);
  strictEqual(decodeSafetensors(fileBytes("{}", [])).tensors.size, 0);
});

Deno.test("decodeSafetensors() of randomly corrupted files decodes or fails clearly", async () => {
  const rng = new Rng(7);
  const good = await encodeSafetensors({
    w: T.tensor([[1, 2], [3, 4]]),
    ids: T.tensor([5, 6], { dtype: "i32" }),
    b: T.tensor([1, 2, 3], { dtype: "u8" }),
  }, { step: "3" });
  let failures = 0;
  for (let trial = 0; trial < 500; trial++) {
    const bytes = good.slice();
    const flips = 1 + rng.int(3);
    for (let k = 0; k < flips; k++) bytes[rng.int(bytes.length)] = rng.int(256);
    const cut = rng.float() < 0.2 ? rng.int(bytes.length) : bytes.length;
    try {
      decodeSafetensors(bytes.subarray(0, cut));
    } catch (e) {
      ok(e instanceof Error && e.message.startsWith("Cannot decode safetensors: "), String(e));
      failures++;
    }
  }
  ok(failures > 100, `only ${failures} corrupt files were rejected`);
});

Deno.test("encodeSafetensors() rejects non-string metadata and the reserved name", async () => {
  await rejects(
    encodeSafetensors({ x: T.tensor([1]) }, { step: 3 as unknown as string }),
    /Cannot encode safetensors: metadata value of 'step' is number, expected a string/,
  );
  await rejects(
    encodeSafetensors({ __metadata__: T.tensor([1]) }),
    /Cannot encode safetensors: tensor name '__metadata__' is reserved/,
  );
});

/** File tests write under `.test-tmp/` in the repository, the only place the test task may write. */
const TEST_TMP = ".test-tmp";

Deno.test({
  name: "saveSafetensors() / loadSafetensors() write atomically and read back",
  async fn() {
    await Deno.mkdir(TEST_TMP, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: TEST_TMP, prefix: "safetensors_test_" });
    try {
      const path = `${dir}/model.safetensors`;
      await saveSafetensors(path, { x: T.tensor([1, 2]) }, { step: "1" });
      await saveSafetensors(path, { y: T.tensor([3], { dtype: "i32" }) }, { step: "2" });
      const { tensors, metadata } = await loadSafetensors(path);
      deepStrictEqual([...tensors.keys()], ["y"]);
      deepStrictEqual(await tensors.get("y")?.toList(), [3]);
      deepStrictEqual(metadata, { step: "2" });
      const names = [];
      for await (const e of Deno.readDir(dir)) names.push(e.name);
      deepStrictEqual(names, ["model.safetensors"]); // no temporary file left behind
      await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
      await rejects(
        loadSafetensors(path),
        /Cannot load '.*model.safetensors': Cannot decode safetensors: file of 3 bytes/,
      );
      await rejects(
        saveSafetensors(`${dir}/missing/model.safetensors`, { x: T.tensor([1]) }),
        /Cannot save safetensors to '.*missing\/model.safetensors'/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
