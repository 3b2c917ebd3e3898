/**
 * The one `Backend` interface every device implements (cpu reference, wasm, webgpu).
 *
 * The interface is kernel-shaped: a backend owns opaque {@linkcode Storage} handles and runs
 * kernels on them. It knows nothing about autograd, views or broadcasting rules beyond what a
 * kernel needs: strided inputs for elementwise kernels (a stride of 0 broadcasts), contiguous
 * inputs (plus an element offset) for everything else. `lib/tensor` turns user-level ops into
 * these calls, so a new backend never touches `lib/tensor`.
 *
 * Shape conventions used below: reductions and gathers see their input as `[outer, size, inner]`
 * (row-major, reducing or indexing the middle axis); row kernels (softmax, cross-entropy, top-k)
 * see `[rows, cols]` and work along `cols`.
 *
 * @module
 */

/** Element types a tensor can hold. `u8` stores packed FP8 codes and byte data. */
export type DType = "f32" | "i32" | "u8";

/** Host arrays a backend reads and writes. A float64 CPU backend returns `Float64Array` for `f32`. */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** An opaque buffer owned by a backend. */
export interface Storage {
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
}

/** A strided window onto a storage: element `(i0, i1, …)` is at `offset + Σ i_k * strides[k]`. */
export interface View {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/** Elementwise functions of one `f32` argument. */
export type UnaryOp =
  | "copy"
  | "neg"
  | "abs"
  | "sign"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "reciprocal"
  | "square"
  | "sin"
  | "cos"
  | "tanh"
  | "sigmoid"
  | "relu"
  | "silu"
  | "gelu"
  | "floor"
  | "round";

/**
 * Elementwise functions of two arguments. Comparisons return `f32` 1/0.
 * `siluBackward` and `geluBackward` take `(x, dy)` and return `dy * f'(x)`.
 */
export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "maximum"
  | "minimum"
  | "eq"
  | "ne"
  | "lt"
  | "le"
  | "gt"
  | "ge"
  | "siluBackward"
  | "geluBackward";

/** Reductions over the middle axis of `[outer, size, inner]`. `argmax` returns `i32`. */
export type ReduceOp = "sum" | "max" | "min" | "argmax";

/** Binary ops whose result is a comparison mask rather than arithmetic. */
export const COMPARISON_OPS: ReadonlySet<BinaryOp> = new Set(["eq", "ne", "lt", "le", "gt", "ge"]);

/**
 * A batched matmul `C[b] = op(A[b]) · op(B[b])`, `C: [batch, m, n]` contiguous.
 *
 * `A[b]` starts at `offsetA + b * strideA` and is `[m, k]` row-major, or `[k, m]` when `transA`;
 * `B[b]` starts at `offsetB + b * strideB` and is `[k, n]`, or `[n, k]` when `transB`.
 * A stride of 0 reuses one matrix for every batch entry.
 */
export interface MatmulSpec {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  offsetA: number;
  offsetB: number;
  strideA: number;
  strideB: number;
}

/** Result of the fused cross-entropy forward kernel. */
export interface CrossEntropyResult {
  /** `f32 [rows]`: `lse - logits[target]`, 0 where the target is ignored. */
  loss: Storage;
  /** `f32 [rows]`: `log Σ exp(logits)`, saved for the backward kernel. */
  lse: Storage;
}

/** Result of the top-k kernel: values sorted descending, ties broken by lower index. */
export interface TopKResult {
  values: Storage;
  indices: Storage;
}

/** Options shared by the fused cross-entropy kernels. */
export interface CrossEntropySpec {
  rows: number;
  cols: number;
  /** Targets equal to this contribute no loss and no gradient. */
  ignoreIndex: number;
}

/**
 * Hyperparameters of one fused AdamW step ({@linkcode Backend.adamwUpdate}): the optimizer's
 * settings plus this step's bias corrections.
 */
export interface AdamWHyperparams {
  /** Learning rate. */
  lr: number;
  /** First-moment decay β1. */
  beta1: number;
  /** Second-moment decay β2. */
  beta2: number;
  /** Added to `sqrt(v̂)`. */
  eps: number;
  /** Decoupled weight decay λ (0 for none). */
  weightDecay: number;
  /** First-moment bias correction `1 − β1ᵗ`. */
  c1: number;
  /** Second-moment bias correction `1 − β2ᵗ`. */
  c2: number;
}

/**
 * Sizes of a fused causal attention ({@linkcode Backend.attention}): `batch` independent
 * problems (batch × heads), each `softmax(q kᵀ · scale + M) v` with `q: [t, d]`, `k: [s, d]`,
 * `v: [s, dv]`, `s ≥ t`, and query `i` seeing keys `j ≤ s − t + i`. Storages are contiguous:
 * `q: [batch, t, d]`, `k: [batch / group, s, d]`, `v: [batch / group, s, dv]`,
 * `out: [batch, t, dv]`, `lse: [batch, t]`.
 */
export interface AttentionSpec {
  /** Query problems (batch × query heads). */
  batch: number;
  /** Query problems per key/value problem: problem `b` reads keys and values `⌊b / group⌋` (GQA). */
  group: number;
  /** `T`, queries per problem. */
  t: number;
  /** `S`, keys per problem (`≥ t`). */
  s: number;
  /** Query and key width. */
  d: number;
  /** Value width. */
  dv: number;
  /** Multiplier of `q kᵀ` before the softmax. */
  scale: number;
}

/** Result of the fused attention forward kernel. */
export interface AttentionResult {
  /** `f32 [batch, t, dv]`: the attention output. */
  out: Storage;
  /** `f32 [batch, t]`: `log Σ_j exp(s_ij)` per query row, saved for the backward kernels. */
  lse: Storage;
}

/** Result of the fused attention backward kernels. */
export interface AttentionGrads {
  /** `f32 [batch, t, d]`. */
  dq: Storage;
  /** `f32 [batch / group, s, d]` (summed over the group). */
  dk: Storage;
  /** `f32 [batch / group, s, dv]` (summed over the group). */
  dv: Storage;
}

/**
 * Sizes of the fused RMSNorm kernels ({@linkcode Backend.rmsNorm}): `x: f32 [rows, cols]`
 * contiguous, normalised along `cols`, gain `weight: f32 [cols]`.
 */
export interface RmsNormSpec {
  /** Rows normalised independently. */
  rows: number;
  /** Features per row (the normalised axis). */
  cols: number;
  /** Added to `mean(x²)` before the square root. */
  eps: number;
}

/** Result of the fused RMSNorm forward kernel. */
export interface RmsNormResult {
  /** `f32 [rows, cols]`: `(x · rstd) · weight`. */
  y: Storage;
  /** `f32 [rows]`: `rstd = 1 / sqrt(mean(x²) + eps)`, saved for the backward kernel. */
  rstd: Storage;
}

/** Result of the fused RMSNorm backward kernel. */
export interface RmsNormGrads {
  /** `f32 [rows, cols]`. */
  dx: Storage;
  /** `f32 [cols]`: `Σ_rows dy ⊙ x · rstd`. */
  dweight: Storage;
}

/**
 * Sizes of the fused rotary embedding ({@linkcode Backend.rope}): `x: f32 [B, T, H, d]`
 * contiguous with `d = 2 · half` (adjacent pairs `(x[2j], x[2j+1])`), tables
 * `cos, sin: f32 [T, half]` contiguous.
 */
export interface RopeSpec {
  /** `B · T · H`: rows of `d` elements. */
  rows: number;
  /** `H`, rows per position. */
  heads: number;
  /** `T`, positions (rows of the tables); row `r` is at position `⌊r / H⌋ mod T`. */
  positions: number;
  /** `d / 2`, pairs per row. */
  half: number;
  /** Rotate by `−angle` (the transpose: the backward of the forward rotation). */
  inverse: boolean;
}

/** Result of the fused SwiGLU gate backward kernel. */
export interface SwigluGrads {
  /** `dout ⊙ b ⊙ silu'(a)`. */
  da: Storage;
  /** `dout ⊙ silu(a)`. */
  db: Storage;
}

/**
 * The FP8 blocks of a contiguous `f32 [rows, cols]` matrix ({@linkcode Backend.fp8Quantize}):
 * one scale per `1 × tileSize` tile (`tile`), per `tileSize × tileSize` block (`block`), per
 * `tileSize × 1` column tile (`column`) or for the whole matrix (`tensor`), edge blocks partial, the scales row-major over the grid of blocks
 * (`lib/fp8/scaling.ts`, `scaleBlockShape` and `scaleGridShape`, defines them). Codes are the
 * `lib/fp8/format.ts` encodings, one per `u8` element.
 */
export interface Fp8BlockSpec {
  /** `R`, rows of the matrix. */
  rows: number;
  /** `C`, columns of the matrix. */
  cols: number;
  /** Values per scale: the whole matrix, a `1 × tileSize` tile, a `tileSize` square or a `tileSize × 1` column. */
  granularity: "tensor" | "tile" | "block" | "column";
  /** Tile and block edge (V3: 128). */
  tileSize: number;
  /** The encoding of the codes. */
  format: "e4m3" | "e5m2";
}

/**
 * An online FP8 quantisation ({@linkcode Backend.fp8Quantize}): per block
 * `scale = fp32(max(amax, amaxFloor) / format.max)` (rounded up to a power of two with
 * `powerOfTwo`), then `code = encode(fp32(x / scale))` with round to nearest, ties to even
 * (`lib/fp8/scaling.ts`, `quantizeFp8`).
 */
export interface Fp8QuantizeSpec extends Fp8BlockSpec {
  /** Values past `±max` saturate (training casts); otherwise they become NaN (E4M3) or ±inf. */
  saturate: boolean;
  /** Lower bound on amax, so an all-zero block gets a finite scale (V3: 1e-4). */
  amaxFloor: number;
  /** Round every scale up to a power of two ("ue8m0"). */
  powerOfTwo: boolean;
}

/** FP8 codes and their scales: what {@linkcode Backend.fp8Quantize} returns and {@linkcode Backend.fp8Matmul} multiplies. */
export interface Fp8Storages {
  /** `u8 [rows, cols]`: one FP8 code per value. */
  codes: Storage;
  /** `f32` over the grid of blocks, row-major: `value = decode(code) · scale`. */
  scales: Storage;
}

/**
 * The simulated FP8 GEMM `C[m, n] = A[m, k] · B[k, n]` of DeepSeek-V3 §3.3.2
 * ({@linkcode Backend.fp8Matmul}, `lib/fp8/gemm.ts` defines it): products of the decoded codes
 * summed in a limited accumulator of `accumulatorBits` mantissa bits (rounded after every add),
 * promoted every `promotionInterval` elements of K into an FP32 accumulator
 * `acc ← fp32(acc + fp32(s · fp32(sa · sb)))` with the operands' scales for that stretch of K.
 * Both operands are quantised row-major matrices: `a` is `[m, k]`, `b` is `[k, n]`.
 */
export interface Fp8MatmulSpec {
  /** Rows of A and C. */
  m: number;
  /** Columns of B and C. */
  n: number;
  /** The inner dimension. */
  k: number;
  /** A's blocks (`rows = m`, `cols = k`). */
  a: Fp8BlockSpec;
  /** B's blocks (`rows = k`, `cols = n`). */
  b: Fp8BlockSpec;
  /** Mantissa bits of the limited accumulator (V3 measured about 14). */
  accumulatorBits: number;
  /** Round the limited accumulator toward zero (`truncate`) or to nearest, ties to even. */
  accumulatorRounding: "nearest" | "truncate";
  /** `N_C`, elements of K per promotion; `Infinity` never promotes. */
  promotionInterval: number;
}

/**
 * The kernels a device provides. All storages passed in belong to this backend.
 * Kernels return fresh storages unless documented as in-place.
 */
export interface Backend {
  /** Short name: `cpu`, `wasm`, `webgpu`. */
  readonly name: string;
  /** Human-readable description of the device (adapter, threads, precision), stored with runs. */
  readonly description: string;
  /** Whether {@linkcode Backend.readSync} works. */
  readonly canReadSync: boolean;

  /** A new storage from host data (converted to `dtype`). */
  upload(dtype: DType, data: ArrayLike<number>): Storage;
  /** A new storage of `size` elements, all `value`. */
  fill(dtype: DType, size: number, value: number): Storage;
  /** Copy a storage to the host. */
  read(storage: Storage): Promise<HostArray>;
  /** Copy a storage to the host synchronously; throws on backends that cannot. */
  readSync(storage: Storage): HostArray;
  /** Give a storage back (pooling backends reuse it). Using it afterwards is an error. */
  release(storage: Storage): void;

  /** Materialise a strided view contiguously (any dtype). */
  copy(x: View): Storage;
  /** In place: write `src` (strided) into the strided window `dst` of the same shape. */
  assign(dst: View, src: View): void;
  /** Convert dtype: float to int truncates toward zero; to `u8` wraps modulo 256. */
  cast(x: View, dtype: DType): Storage;
  /** Elementwise `op(x)` over the view's shape (f32). */
  unary(op: UnaryOp, x: View): Storage;
  /** Elementwise `op(a, b)`; both views already have `shape` (broadcast dims have stride 0). */
  binary(op: BinaryOp, a: View, b: View, shape: readonly number[]): Storage;
  /** Elementwise `cond != 0 ? a : b` over `shape`, views already broadcast. */
  where(cond: View, a: View, b: View, shape: readonly number[]): Storage;
  /** Reduce the middle axis of a contiguous `[outer, size, inner]` array to `[outer, inner]`. */
  reduce(op: ReduceOp, x: Storage, outer: number, size: number, inner: number): Storage;
  /** Batched matmul, see {@linkcode MatmulSpec}. */
  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage;
  /** Softmax (or log-softmax) along the rows of a contiguous `[rows, cols]` array. */
  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage;
  /** Fused cross-entropy of `f32 [rows, cols]` logits against `i32 [rows]` targets. */
  crossEntropy(logits: Storage, targets: Storage, spec: CrossEntropySpec): CrossEntropyResult;
  /** `dlogits = dloss[r] * (softmax(logits) - onehot(target))`, zero rows where ignored. */
  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    lse: Storage,
    dloss: Storage,
    spec: CrossEntropySpec,
  ): Storage;
  /**
   * `out[o, j, i] = x[o, index[j], i]` for `x: [outer, size, inner]`, `index: i32 [n]`.
   * Indices outside `[0, size)` are an error on backends that can check (cpu) and read 0 otherwise.
   */
  indexSelect(x: Storage, index: Storage, outer: number, size: number, inner: number): Storage;
  /** `out = zeros([outer, size, inner]); out[o, index[j], i] += src[o, j, i]` (the transpose of indexSelect). */
  indexAdd(index: Storage, src: Storage, outer: number, size: number, inner: number): Storage;
  /** `out[o, j, i] = x[o, index[o, j, i], i]` for `x: [outer, size, inner]`, `index: i32 [outer, k, inner]`. */
  gather(
    x: Storage,
    index: Storage,
    outer: number,
    size: number,
    inner: number,
    k: number,
  ): Storage;
  /** `out = zeros([outer, size, inner]); out[o, index[o, j, i], i] += src[o, j, i]` (the transpose of gather). */
  scatterAdd(
    index: Storage,
    src: Storage,
    outer: number,
    size: number,
    inner: number,
    k: number,
  ): Storage;
  /** The `k` largest entries of each row of a contiguous `[rows, cols]` array. */
  topk(x: Storage, rows: number, cols: number, k: number): TopKResult;
  /**
   * FP8 quantisation of the contiguous `f32 [rows, cols]` storage `x` with scales from each
   * block's current amax, see {@linkcode Fp8QuantizeSpec}, or with the given `scales` (one per
   * block, as delayed scaling takes them from past steps; the result then holds that storage
   * itself). Every backend gives the codes and scales of `lib/fp8/scaling.ts` bit for bit
   * (WebGPU where its division is correctly rounded, as on Mesa's lavapipe;
   * tests/backend/fp8_test.ts).
   */
  fp8Quantize(x: Storage, spec: Fp8QuantizeSpec, scales?: Storage): Fp8Storages;
  /** `f32 [rows, cols]`: `decode(code) · scale` of each code and its block's scale. */
  fp8Dequantize(codes: Storage, scales: Storage, spec: Fp8BlockSpec): Storage;
  /**
   * The simulated FP8 GEMM with a limited, promoted accumulator, see {@linkcode Fp8MatmulSpec}:
   * `f32 [m, n]` from A's and B's codes and scales.
   */
  fp8Matmul(a: Fp8Storages, b: Fp8Storages, spec: Fp8MatmulSpec): Storage;
  /**
   * Optional fused AdamW step, in place on the distinct contiguous `f32` storages `param`, `m`
   * and `v` (elements `[0, n)`, `n` the size of `grad`'s shape), reading the gradient through its
   * strided view: `m = m·β1 + g·(1−β1)`; `v = v·β2 + (g·g)·(1−β2)`;
   * `param = param·(1 − lr·λ) − lr · (m / c1) / (sqrt(v / c2) + ε)`, evaluated in that order
   * with f32 constants, so it matches the composed ops of `AdamW.step()` to float32 rounding.
   * Recorded like any other kernel (no extra submit or read). Backends without it get the
   * composed path.
   */
  adamwUpdate?(
    param: Storage,
    grad: View,
    m: Storage,
    v: Storage,
    h: AdamWHyperparams,
  ): void;
  /**
   * Optional fused causal attention forward (FlashAttention: online softmax, the `[t, s]` score
   * matrix is never stored), see {@linkcode AttentionSpec}. Backends without it get the composed
   * path (matmul, mask, softmax, matmul).
   */
  attention?(q: Storage, k: Storage, v: Storage, spec: AttentionSpec): AttentionResult;
  /**
   * Optional fused causal attention backward (FlashAttention-2: `D_i = Σ dO_i ⊙ O_i`, scores
   * recomputed from `lse`; `dq` per query row, `dk`/`dv` per key row, no atomics). Present
   * exactly when {@linkcode Backend.attention} is.
   */
  attentionBackward?(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    dout: Storage,
    spec: AttentionSpec,
  ): AttentionGrads;
  /**
   * Optional fused RMSNorm forward along the rows of `x`, see {@linkcode RmsNormSpec}:
   * `rstd = 1 / sqrt(Σ x² / cols + eps)`, `y = (x · rstd) · weight`, the composed ops' order, so
   * it matches them to float32 rounding. Backends without it get the composed path.
   */
  rmsNorm?(x: Storage, weight: Storage, spec: RmsNormSpec): RmsNormResult;
  /**
   * Optional fused RMSNorm backward from the forward's `rstd`: with `g = dy ⊙ weight`,
   * `dx = rstd · (g − x · rstd² · Σ_cols(g ⊙ x) / cols)` and `dweight = Σ_rows dy ⊙ x · rstd`
   * (reduced without atomics). Present exactly when {@linkcode Backend.rmsNorm} is.
   */
  rmsNormBackward?(
    x: Storage,
    weight: Storage,
    rstd: Storage,
    dy: Storage,
    spec: RmsNormSpec,
  ): RmsNormGrads;
  /**
   * Optional fused SwiGLU gate `out = silu(a) ⊙ b` over the first `n` elements of the contiguous
   * `f32` storages `a` and `b` (`a = x W1`, `b = x W3`). Backends without it get the composed
   * path (`mul(silu(a), b)`).
   */
  swiglu?(a: Storage, b: Storage, n: number): Storage;
  /**
   * Optional fused SwiGLU gate backward, both gradients in one kernel:
   * `da = dout ⊙ b ⊙ silu'(a)` and `db = dout ⊙ silu(a)`. Present exactly when
   * {@linkcode Backend.swiglu} is.
   */
  swigluBackward?(a: Storage, b: Storage, dout: Storage, n: number): SwigluGrads;
  /**
   * Optional fused rotary embedding, see {@linkcode RopeSpec}: with `c = cos[t, j]`,
   * `s = sin[t, j]`, `out[.., 2j] = re · c − im · s`, `out[.., 2j+1] = re · s + im · c`
   * (`re, im = x[.., 2j], x[.., 2j+1]`); `inverse` gives `re · c + im · s`, `−re · s + im · c`,
   * the backward (`dx = rope(dy, inverse)`). Backends without it get the composed path
   * (slices, `mul`, `sub`/`add`, `concat`).
   */
  rope?(x: Storage, cos: Storage, sin: Storage, spec: RopeSpec): Storage;
}
