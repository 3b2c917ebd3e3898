/**
 * A small PNG reader for tests (8-bit grayscale/RGB/RGBA, non-interlaced — what headless
 * Chromium writes): the pixels as luminance, for "is this screenshot blank?" checks.
 *
 * @module
 */

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** A decoded image: `luma[y * width + x]` in 0..255. */
export interface LumaImage {
  width: number;
  height: number;
  luma: Float64Array;
}

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decode a PNG file's bytes to luminance; throws on formats it does not read. */
export async function decodePng(bytes: Uint8Array): Promise<LumaImage> {
  if (!SIGNATURE.every((b, i) => bytes[i] === b)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8, width = 0, height = 0, depth = 0, colour = 0, interlace = 0;
  const idat: Uint8Array[] = [];
  while (pos < bytes.length) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(pos + 8);
      height = view.getUint32(pos + 12);
      depth = data[8];
      colour = data[9];
      interlace = data[12];
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + length;
  }
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[colour];
  if (depth !== 8 || channels === undefined || interlace !== 0) {
    throw new Error(
      `unsupported PNG: depth ${depth}, colour type ${colour}, interlace ${interlace}`,
    );
  }
  const joined = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  let o = 0;
  for (const d of idat) joined.set(d, (o += d.length) - d.length);
  const raw = await inflate(joined);
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? row[x - channels] : 0;
      const b = up[x];
      const c = x >= channels ? up[x - channels] : 0;
      const pred = filter === 0
        ? 0
        : filter === 1
        ? a
        : filter === 2
        ? b
        : filter === 3
        ? (a + b) >> 1
        : paeth(a, b, c);
      row[x] = (src[x] + pred) & 255;
    }
  }
  const luma = new Float64Array(width * height);
  for (let i = 0; i < width * height; i++) {
    const p = i * channels;
    luma[i] = channels >= 3
      ? 0.299 * pixels[p] + 0.587 * pixels[p + 1] + 0.114 * pixels[p + 2]
      : pixels[p];
  }
  return { width, height, luma };
}

/** Variance of the luminance (0 for a blank image). */
export function lumaVariance(image: LumaImage): number {
  let mean = 0;
  for (const v of image.luma) mean += v;
  mean /= image.luma.length;
  let s = 0;
  for (const v of image.luma) s += (v - mean) ** 2;
  return s / image.luma.length;
}
