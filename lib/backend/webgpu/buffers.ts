/**
 * The buffer pool: storage buffers are reused by size class (bytes rounded up to a multiple of
 * 256), so a training loop allocates nothing in steady state.
 *
 * A released buffer may be handed out again while earlier recorded commands still read it:
 * that is safe because every use is recorded into the same queue in program order.
 *
 * @module
 */

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Size class of a request in bytes (at least 256, a multiple of 256). */
export function sizeClass(bytes: number): number {
  return Math.max(256, Math.ceil(bytes / 256) * 256);
}

/** Storage buffers by size class. */
export class BufferPool {
  #device: GPUDevice;
  #free = new Map<number, GPUBuffer[]>();
  /** Buffers created so far (for tests and the bench). */
  created = 0;

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** A storage buffer of at least `bytes` (contents undefined). */
  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const reused = this.#free.get(size)?.pop();
    if (reused) return reused;
    this.created++;
    return this.#device.createBuffer({ size, usage: USAGE });
  }

  /** A new buffer holding `data` (mapped at creation: ordered before any later command). */
  create(data: ArrayBufferView): GPUBuffer {
    const size = sizeClass(data.byteLength);
    this.created++;
    const buffer = this.#device.createBuffer({ size, usage: USAGE, mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    buffer.unmap();
    return buffer;
  }

  /** Return a buffer for reuse. */
  release(buffer: GPUBuffer): void {
    const list = this.#free.get(buffer.size);
    if (list) list.push(buffer);
    else this.#free.set(buffer.size, [buffer]);
  }
}

/** Usage of the pooled textures: written by a packing pass, read as storage textures. */
const TEXTURE_USAGE = GPUTextureUsage.STORAGE_BINDING;

/** Free textures kept for reuse beyond which released ones are destroyed. */
const TEXTURE_POOL_BYTES = 256 * 1024 * 1024;

/**
 * `rgba32float` storage textures by size (the texture matmul's packed operands), reused like
 * buffers. Released textures beyond {@linkcode TEXTURE_POOL_BYTES} are queued for destruction,
 * which the owner performs after its next submit (a texture used by an unsubmitted command
 * must not be destroyed).
 */
export class TexturePool {
  #device: GPUDevice;
  #free = new Map<string, GPUTexture[]>();
  #freeBytes = 0;
  #doomed: GPUTexture[] = [];
  /** Textures created so far (for tests and the bench). */
  created = 0;

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** A texture `width × height` texels (contents undefined). */
  acquire(width: number, height: number): GPUTexture {
    const reused = this.#free.get(`${width}x${height}`)?.pop();
    if (reused) {
      this.#freeBytes -= width * height * 16;
      return reused;
    }
    this.created++;
    return this.#device.createTexture({
      size: [width, height],
      format: "rgba32float",
      usage: TEXTURE_USAGE,
    });
  }

  /** Return a texture for reuse (or for destruction after the next submit, past the cap). */
  release(texture: GPUTexture): void {
    const bytes = texture.width * texture.height * 16;
    if (this.#freeBytes + bytes > TEXTURE_POOL_BYTES) {
      this.#doomed.push(texture);
      return;
    }
    const key = `${texture.width}x${texture.height}`;
    const list = this.#free.get(key);
    if (list) list.push(texture);
    else this.#free.set(key, [texture]);
    this.#freeBytes += bytes;
  }

  /** Destroy the textures released past the cap; call after submitting their last use. */
  collect(): void {
    for (const t of this.#doomed) t.destroy();
    this.#doomed = [];
  }
}

/** Bytes of one uniform buffer of the parameter arena (WebGPU's minimum binding size limit). */
const ARENA_BYTES = 65536;

/** One arena buffer and its host staging copy. */
interface ArenaBuffer {
  buffer: GPUBuffer;
  data: Uint32Array<ArrayBuffer>;
  count: number;
}

/**
 * Kernel parameter blocks without a buffer per dispatch: blocks of `slotBytes` are staged on the
 * host in 64 KiB uniform buffers (each dispatch binds its slot by offset), written with one
 * `writeBuffer` per buffer just before the submit that reads them, and reused by the next batch
 * (queue order puts that batch's writes after this batch's reads).
 */
export class ParamArena {
  #device: GPUDevice;
  #slotBytes: number;
  #free: ArenaBuffer[] = [];
  #used: ArenaBuffer[] = [];
  /** Buffers created so far (for tests and the bench). */
  created = 0;

  /**
   * @param device The device.
   * @param slotBytes Bytes per parameter block: a multiple of 256 (the uniform offset alignment).
   */
  constructor(device: GPUDevice, slotBytes: number) {
    this.#device = device;
    this.#slotBytes = slotBytes;
  }

  /** Stage `params` in a free slot; returns the binding of that slot. */
  take(params: Uint32Array): GPUBufferBinding {
    let current = this.#used.at(-1);
    if (current === undefined || (current.count + 1) * this.#slotBytes > ARENA_BYTES) {
      current = this.#free.pop() ?? this.#create();
      current.count = 0;
      this.#used.push(current);
    }
    const slot = current.count++;
    current.data.set(params, (slot * this.#slotBytes) / 4);
    return { buffer: current.buffer, offset: slot * this.#slotBytes, size: this.#slotBytes };
  }

  /** Write the staged blocks; call right before submitting the commands that bind them. */
  upload(queue: GPUQueue): void {
    for (const u of this.#used) {
      queue.writeBuffer(u.buffer, 0, u.data, 0, (u.count * this.#slotBytes) / 4);
    }
  }

  /** After that submit: the buffers serve the next batch. */
  recycle(): void {
    this.#free.push(...this.#used);
    this.#used = [];
  }

  #create(): ArenaBuffer {
    this.created++;
    const buffer = this.#device.createBuffer({
      size: ARENA_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    return { buffer, data: new Uint32Array(ARENA_BYTES / 4), count: 0 };
  }
}
