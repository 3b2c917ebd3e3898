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
  #consts = new Map<string, number>();
  #prologue: number[] = [];

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
  /** `v128.const` with four f32 lanes equal to `v`. */
  f32x4(v: number): this {
    const b = new Uint8Array(new Float32Array([v, v, v, v]).buffer);
    return this.emit(0xfd, ...uleb(SIMD.v128Const), ...b);
  }
  /**
   * Push a v128 constant held in a local that the function's prologue sets once: V8 rebuilds a
   * `v128.const` from immediates at every use, so constants inside hot loops go through locals.
   */
  constF32x4(v: number): this {
    return this.#constLocal("f", v);
  }
  /** {@linkcode Func.constF32x4} for four i32 lanes. */
  constI32x4(v: number): this {
    return this.#constLocal("i", v);
  }
  #constLocal(kind: "f" | "i", v: number): this {
    const key = `${kind}${v}`;
    let local = this.#consts.get(key);
    if (local === undefined) {
      local = this.local(V128);
      this.#consts.set(key, local);
      const lanes = kind === "f" ? new Float32Array([v, v, v, v]) : new Int32Array([v, v, v, v]);
      this.#prologue.push(0xfd, ...uleb(SIMD.v128Const), ...new Uint8Array(lanes.buffer));
      this.#prologue.push(0x21, ...uleb(local));
    }
    return this.get(local);
  }
  /** `v128.const` with four i32 lanes equal to `v`. */
  i32x4(v: number): this {
    const b = new Uint8Array(new Int32Array([v, v, v, v]).buffer);
    return this.emit(0xfd, ...uleb(SIMD.v128Const), ...b);
  }
  /** `memory.fill` (bulk memory): `[dst, value, bytes]` on the stack. */
  memoryFill(): this {
    return this.emit(0xfc, 0x0b, 0x00);
  }
  /** `memory.copy` (bulk memory): `[dst, src, bytes]` on the stack. */
  memoryCopy(): this {
    return this.emit(0xfc, 0x0a, 0x00, 0x00);
  }
  /** `i += step` for an i32 local. */
  inc(i: number, step = 1): this {
    return this.get(i).i32(step).emit(OP.i32Add).set(i);
  }
  /**
   * `for (; i < end; i += step) body()` over i32 locals (`end` a local index); the loop is
   * skipped when `i + step > end` at the start of an iteration, so a vector loop leaves the
   * tail to a following scalar loop.
   */
  forStep(i: number, end: number, step: number, body: () => void): this {
    this.block().loop();
    this.get(i).i32(step).emit(OP.i32Add).get(end).emit(OP.i32GtS).brIf(1);
    body();
    this.inc(i, step);
    return this.br(0).end().end();
  }
  /** A SIMD memory op. */
  simdMem(op: number, align: number, offset = 0): this {
    return this.emit(0xfd, ...uleb(op), ...uleb(align), ...uleb(offset));
  }

  /** The encoded body: locals then code then `end`. */
  encode(): number[] {
    const groups: number[][] = this.#locals.map((t) => [1, t]);
    const body = [...vec(groups), ...this.#prologue, ...this.code, 0x0b];
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
  i32GtS: 0x4a,
  i32GeU: 0x4f,
  i32GtU: 0x4b,
  i32LeU: 0x4d,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32Shl: 0x74,
  i32ShrU: 0x76,
  i32DivU: 0x6e,
  f32Sqrt: 0x91,
  f32Neg: 0x8c,
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
  v128Const: 0x0c,
  i32x4Splat: 0x11,
  f32x4Eq: 0x41,
  f32x4Ne: 0x42,
  f32x4Lt: 0x43,
  f32x4Gt: 0x44,
  f32x4Le: 0x45,
  f32x4Ge: 0x46,
  v128And: 0x4e,
  v128AndNot: 0x4f,
  v128Or: 0x50,
  v128Bitselect: 0x52,
  f32x4Nearest: 0x6a,
  i32x4Shl: 0xab,
  i32x4Add: 0xae,
  f32x4Abs: 0xe0,
  f32x4Neg: 0xe1,
  f32x4Sqrt: 0xe3,
  f32x4Pmin: 0xea,
  f32x4Pmax: 0xeb,
  i32x4TruncSatF32x4S: 0xf8,
  f32x4ConvertI32x4S: 0xfa,
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
