/**
 * The wasm backend's heap: one shared `WebAssembly.Memory` carved into blocks by size class
 * (sizes of the form 4..7 · 2^e bytes, so at most 25% is wasted), with free lists for reuse and
 * growth on demand. Growing a shared memory never detaches existing views, so storages keep
 * their typed arrays across growth.
 *
 * @module
 */

const PAGE = 65536;

/** Round `bytes` up to its size class (multiple of 64 bytes). */
export function sizeClass(bytes: number): number {
  const b = Math.max(64, bytes);
  const e = Math.floor(Math.log2(b)) - 2;
  const unit = 2 ** Math.max(e, 4);
  return Math.ceil(b / unit) * unit;
}

/** A growable block allocator over a shared memory. */
export class WasmHeap {
  readonly memory: WebAssembly.Memory;
  readonly maxPages: number;
  #top: number;
  #free = new Map<number, number[]>();

  constructor(maxPages: number, initialPages = 256) {
    this.maxPages = maxPages;
    this.memory = new WebAssembly.Memory({
      initial: initialPages,
      maximum: maxPages,
      shared: true,
    });
    this.#top = 1024; // keep address 0 unused so a null pointer is never a live block
  }

  /** Allocate a block of at least `bytes`; returns its address. */
  alloc(bytes: number): number {
    const size = sizeClass(bytes);
    const reused = this.#free.get(size)?.pop();
    if (reused !== undefined) return reused;
    const ptr = this.#top;
    const end = ptr + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      const current = have / PAGE;
      if (current + pages > this.maxPages) {
        throw new RangeError(
          `Cannot allocate ${bytes} bytes on the wasm backend: the heap would exceed its maximum ` +
            `of ${(this.maxPages * PAGE) / 2 ** 20} MiB`,
        );
      }
      this.memory.grow(Math.max(pages, Math.min(current, 4096))); // grow geometrically
    }
    this.#top = end;
    return ptr;
  }

  /** Return a block obtained from `alloc(bytes)`. */
  free(ptr: number, bytes: number): void {
    const size = sizeClass(bytes);
    const list = this.#free.get(size);
    if (list) list.push(ptr);
    else this.#free.set(size, [ptr]);
  }

  /** Bytes reserved so far (high-water mark). */
  get used(): number {
    return this.#top;
  }
}
