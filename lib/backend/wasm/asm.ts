/**
 * A tiny WebAssembly assembler: the kernels of the wasm backend are emitted as bytes directly
 * from TypeScript (as jax-js does), so there is no toolchain, no build step and no committed
 * binary — the source is the build. Only what the kernels use is encoded.
 *
 * Ref: WebAssembly Core Specification 2.0 §5 (binary format), SIMD and relaxed-SIMD proposals.
 *
 * @module
 */

/** Value types. */
export const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
/** A value type byte. */
export type ValType = typeof I32 | typeof F32 | typeof V128;

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (32-bit range). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  let more = true;
  n |= 0;
  while (more) {
    let byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) more = false;
    else byte |= 0x80;
    out.push(byte);
  }
  return out;
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...uleb(b.length), ...b];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** A function body under construction: locals and an instruction stream. */
export class Func {
  readonly params: ValType[];
  readonly code: number[] = [];
  #locals: ValType[] = [];

  constructor(params: ValType[]) {
    this.params = params;
  }

  /** Declare a local of `type`; returns its index. */
  local(type: ValType): number {
    this.#locals.push(type);
    return this.params.length + this.#locals.length - 1;
  }

  /** Append raw bytes. */
  emit(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  get(i: number): this {
    return this.emit(0x20, ...uleb(i));
  }
  set(i: number): this {
    return this.emit(0x21, ...uleb(i));
  }
  tee(i: number): this {
    return this.emit(0x22, ...uleb(i));
  }
  i32(v: number): this {
    return this.emit(0x41, ...sleb(v));
  }
  f32(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return this.emit(0x43, ...b);
  }
  /** `block` with no result. */
  block(): this {
    return this.emit(0x02, 0x40);
  }
  /** `loop` with no result. */
  loop(): this {
    return this.emit(0x03, 0x40);
  }
  /** `if` with no result. */
  if(): this {
    return this.emit(0x04, 0x40);
  }
  else(): this {
    return this.emit(0x05);
  }
  end(): this {
    return this.emit(0x0b);
  }
  br(depth: number): this {
    return this.emit(0x0c, ...uleb(depth));
  }
  brIf(depth: number): this {
    return this.emit(0x0d, ...uleb(depth));
  }
  /** A memory op with alignment log2 `align` and constant `offset`. */
  mem(op: number, align: number, offset = 0): this {
    return this.emit(op, ...uleb(align), ...uleb(offset));
  }
  /** A SIMD (0xfd-prefixed) op. */
  simd(op: number, ...imm: number[]): this {
    return this.emit(0xfd, ...uleb(op), ...imm);
  }
  /** A SIMD memory op. */
  simdMem(op: number, align: number, offset = 0): this {
    return this.emit(0xfd, ...uleb(op), ...uleb(align), ...uleb(offset));
  }

  /** The encoded body: locals then code then `end`. */
  encode(): number[] {
    const groups: number[][] = this.#locals.map((t) => [1, t]);
    const body = [...vec(groups), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/** Opcodes used by the kernels. */
export const OP = {
  i32Load: 0x28,
  f32Load: 0x2a,
  i32Store: 0x36,
  f32Store: 0x38,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GeU: 0x4f,
  i32GtU: 0x4b,
  i32LeU: 0x4d,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32Shl: 0x74,
  i32ShrU: 0x76,
  f32Add: 0x92,
  f32Sub: 0x93,
  f32Mul: 0x94,
  f32Div: 0x95,
  f32Min: 0x96,
  f32Max: 0x97,
  select: 0x1b,
  drop: 0x1a,
} as const;

/** SIMD opcodes (after the 0xfd prefix). */
export const SIMD = {
  v128Load: 0x00,
  v128Load32Splat: 0x09,
  v128Store: 0x0b,
  f32x4Splat: 0x13,
  f32x4ExtractLane: 0x1f,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  f32x4Min: 0xe8,
  f32x4Max: 0xe9,
  f32x4RelaxedMadd: 0x105,
} as const;

interface FuncDef {
  name: string;
  params: ValType[];
  results: ValType[];
  func: Func;
}

/** A module importing one memory (`env.memory`) and exporting functions. */
export class ModuleBuilder {
  #funcs: FuncDef[] = [];
  #memory: { min: number; max: number; shared: boolean };

  constructor(memory: { min: number; max: number; shared: boolean }) {
    this.#memory = memory;
  }

  /** Add an exported function; `build` fills its body. */
  func(name: string, params: ValType[], results: ValType[], build: (f: Func) => void): void {
    const func = new Func(params);
    build(func);
    this.#funcs.push({ name, params, results, func });
  }

  /** The module bytes. */
  build(): Uint8Array<ArrayBuffer> {
    const types = this.#funcs.map((
      f,
    ) => [0x60, ...vec(f.params.map((p) => [p])), ...vec(f.results.map((r) => [r]))]);
    const { min, max, shared } = this.#memory;
    const limits = [shared ? 0x03 : 0x01, ...uleb(min), ...uleb(max)];
    const imports = vec([[...name("env"), ...name("memory"), 0x02, ...limits]]);
    const funcs = vec(this.#funcs.map((_, i) => uleb(i)));
    const exports = vec(this.#funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]));
    const code = vec(this.#funcs.map((f) => f.func.encode()));
    return new Uint8Array([
      0x00,
      0x61,
      0x73,
      0x6d,
      0x01,
      0x00,
      0x00,
      0x00,
      ...section(1, vec(types)),
      ...section(2, imports),
      ...section(3, funcs),
      ...section(7, exports),
      ...section(10, code),
    ]);
  }
}
