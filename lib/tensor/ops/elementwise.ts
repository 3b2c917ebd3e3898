/**
 * Elementwise ops with NumPy broadcasting, their gradients, `where` and `cast`.
 *
 * Gradients of broadcast operands are summed back to the operand's shape. Comparisons return
 * `f32` masks of 1/0 that carry no gradient (their derivative is 0 almost everywhere); `sign`,
 * `floor`, `round` and casts to integer types are non-differentiable: a gradient that reaches
 * them is an error rather than a silent zero.
 *
 * @module
 */

import type { BinaryOp, UnaryOp } from "../../backend/backend.ts";
import { record, recordNonDifferentiable } from "../autograd.ts";
import { checkDType, type DType } from "../dtype.ts";
import { broadcastShapes } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import {
  asTensors,
  broadcastView,
  checkSameBackend,
  sumToShape,
  type TensorLike,
  wrap,
} from "./_util.ts";

function unary(op: UnaryOp, x: Tensor): Tensor {
  checkDType(x.dtype, ["f32"], `apply '${op}' to`);
  return wrap(x, x.backend.unary(op, x.view), x.shape);
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, name: string): Tensor {
  if (a.dtype !== b.dtype) {
    throw new TypeError(
      `Cannot ${name} tensors of dtypes '${a.dtype}' and '${b.dtype}': cast one with cast()`,
    );
  }
  const shape = broadcastShapes(a.shape, b.shape, name);
  const va = broadcastView(a, shape), vb = broadcastView(b, shape);
  try {
    return wrap(a, a.backend.binary(op, va.view, vb.view, shape), shape);
  } finally {
    va.dispose();
    vb.dispose();
  }
}

/** `-x`. */
export function neg(x: Tensor): Tensor {
  return record(unary("neg", x), "neg", [x], (dy) => [neg(dy)]);
}

/** `|x|`; the gradient at 0 is 0. */
export function abs(x: Tensor): Tensor {
  return record(unary("abs", x), "abs", [x], (dy) => [mul(dy, unary("sign", x))]);
}

/** `sign(x)` in {-1, 0, 1}; not differentiable. */
export function sign(x: Tensor): Tensor {
  return recordNonDifferentiable(unary("sign", x), "sign", [x]);
}

/** `floor(x)`; not differentiable. */
export function floor(x: Tensor): Tensor {
  return recordNonDifferentiable(unary("floor", x), "floor", [x]);
}

/** Round half to even; not differentiable. */
export function round(x: Tensor): Tensor {
  return recordNonDifferentiable(unary("round", x), "round", [x]);
}

/** `eˣ`. */
export function exp(x: Tensor): Tensor {
  const y = unary("exp", x);
  return record(y, "exp", [x], (dy) => [mul(dy, y)]);
}

/** Natural logarithm. */
export function log(x: Tensor): Tensor {
  return record(unary("log", x), "log", [x], (dy) => [div(dy, x)]);
}

/** `√x`. */
export function sqrt(x: Tensor): Tensor {
  const y = unary("sqrt", x);
  return record(y, "sqrt", [x], (dy) => [div(dy, mul(y, 2))]);
}

/** `1/√x`. */
export function rsqrt(x: Tensor): Tensor {
  const y = unary("rsqrt", x);
  // d/dx x^(-1/2) = -1/2 · y³
  return record(y, "rsqrt", [x], (dy) => [mul(dy, mul(mul(y, mul(y, y)), -0.5))]);
}

/** `1/x`. */
export function reciprocal(x: Tensor): Tensor {
  const y = unary("reciprocal", x);
  return record(y, "reciprocal", [x], (dy) => [neg(mul(dy, mul(y, y)))]);
}

/** `x²`. */
export function square(x: Tensor): Tensor {
  return record(unary("square", x), "square", [x], (dy) => [mul(dy, mul(x, 2))]);
}

/** `sin x`. */
export function sin(x: Tensor): Tensor {
  return record(unary("sin", x), "sin", [x], (dy) => [mul(dy, unary("cos", x))]);
}

/** `cos x`. */
export function cos(x: Tensor): Tensor {
  return record(unary("cos", x), "cos", [x], (dy) => [neg(mul(dy, unary("sin", x)))]);
}

/** `tanh x`. */
export function tanh(x: Tensor): Tensor {
  const y = unary("tanh", x);
  return record(y, "tanh", [x], (dy) => [mul(dy, sub(1, mul(y, y)))]);
}

/** Logistic sigmoid `1 / (1 + e^-x)`. */
export function sigmoid(x: Tensor): Tensor {
  const y = unary("sigmoid", x);
  return record(y, "sigmoid", [x], (dy) => [mul(dy, mul(y, sub(1, y)))]);
}

/** `max(x, 0)`; the gradient at 0 is 0. */
export function relu(x: Tensor): Tensor {
  return record(unary("relu", x), "relu", [x], (dy) => [mul(dy, gt(x, 0))]);
}

/** SiLU (swish) `x · σ(x)`. */
export function silu(x: Tensor): Tensor {
  return record(unary("silu", x), "silu", [x], (dy) => [binaryRaw("siluBackward", x, dy, "silu")]);
}

/** GELU with the exact erf form, as PyTorch's default `F.gelu`. */
export function gelu(x: Tensor): Tensor {
  return record(unary("gelu", x), "gelu", [x], (dy) => [binaryRaw("geluBackward", x, dy, "gelu")]);
}

/**
 * `a + b` with broadcasting.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { add, tensor } from "../mod.ts";
 * const y = add(tensor([[1], [2]]), tensor([10, 20, 30]));
 * deepStrictEqual(y.shape, [2, 3]);
 * deepStrictEqual(Array.from(y.dataSync()), [11, 21, 31, 12, 22, 32]);
 * ```
 */
export function add(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "add");
  return record(binaryRaw("add", x, y, "add"), "add", [x, y], (dy) => [
    sumToShape(dy, x.shape),
    sumToShape(dy, y.shape),
  ]);
}

/** `a - b` with broadcasting. */
export function sub(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "subtract");
  return record(binaryRaw("sub", x, y, "subtract"), "sub", [x, y], (dy) => [
    sumToShape(dy, x.shape),
    y.requiresGrad ? sumToShape(neg(dy), y.shape) : null,
  ]);
}

/** `a * b` with broadcasting. */
export function mul(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "multiply");
  return record(binaryRaw("mul", x, y, "multiply"), "mul", [x, y], (dy) => [
    x.requiresGrad ? sumToShape(mul(dy, y), x.shape) : null,
    y.requiresGrad ? sumToShape(mul(dy, x), y.shape) : null,
  ]);
}

/** `a / b` with broadcasting (integer division truncates for `i32`). */
export function div(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "divide");
  const out = binaryRaw("div", x, y, "divide");
  return record(out, "div", [x, y], (dy) => [
    x.requiresGrad ? sumToShape(div(dy, y), x.shape) : null,
    y.requiresGrad ? sumToShape(neg(mul(dy, div(out, y))), y.shape) : null,
  ]);
}

/** `a ** b` with broadcasting. The exponent's gradient uses `log a` (NaN for a < 0). */
export function pow(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "raise");
  checkDType(x.dtype, ["f32"], "raise");
  const out = binaryRaw("pow", x, y, "raise");
  return record(out, "pow", [x, y], (dy) => [
    x.requiresGrad
      ? sumToShape(mul(dy, mul(y, binaryRaw("pow", x, sub(y, 1), "raise"))), x.shape)
      : null,
    y.requiresGrad ? sumToShape(mul(dy, mul(out, log(x))), y.shape) : null,
  ]);
}

/** Elementwise maximum; at ties each operand gets half the gradient. */
export function maximum(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "take the maximum of");
  const out = binaryRaw("maximum", x, y, "take the maximum of");
  return record(out, "maximum", [x, y], (dy) => {
    const wx = add(gt(x, y), mul(eq(x, y), 0.5));
    return [sumToShape(mul(dy, wx), x.shape), sumToShape(mul(dy, sub(1, wx)), y.shape)];
  });
}

/** Elementwise minimum; at ties each operand gets half the gradient. */
export function minimum(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "take the minimum of");
  const out = binaryRaw("minimum", x, y, "take the minimum of");
  return record(out, "minimum", [x, y], (dy) => {
    const wx = add(lt(x, y), mul(eq(x, y), 0.5));
    return [sumToShape(mul(dy, wx), x.shape), sumToShape(mul(dy, sub(1, wx)), y.shape)];
  });
}

function compare(op: BinaryOp, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "compare");
  return binaryRaw(op, x, y, "compare");
}

/** `a == b` as an f32 mask (no gradient). */
export function eq(a: TensorLike, b: TensorLike): Tensor {
  return compare("eq", a, b);
}
/** `a != b` as an f32 mask (no gradient). */
export function ne(a: TensorLike, b: TensorLike): Tensor {
  return compare("ne", a, b);
}
/** `a < b` as an f32 mask (no gradient). */
export function lt(a: TensorLike, b: TensorLike): Tensor {
  return compare("lt", a, b);
}
/** `a <= b` as an f32 mask (no gradient). */
export function le(a: TensorLike, b: TensorLike): Tensor {
  return compare("le", a, b);
}
/** `a > b` as an f32 mask (no gradient). */
export function gt(a: TensorLike, b: TensorLike): Tensor {
  return compare("gt", a, b);
}
/** `a >= b` as an f32 mask (no gradient). */
export function ge(a: TensorLike, b: TensorLike): Tensor {
  return compare("ge", a, b);
}

/**
 * `cond ? a : b` elementwise with broadcasting; `cond` is any dtype (nonzero is true).
 *
 * @example Mask out negatives
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { gt, tensor, where } from "../mod.ts";
 * const x = tensor([-1, 2, -3]);
 * deepStrictEqual(Array.from(where(gt(x, 0), x, 0).dataSync()), [0, 2, 0]);
 * ```
 */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = asTensors(a, b, "select with where()");
  checkSameBackend("select with where()", [cond, x]);
  if (x.dtype !== y.dtype) {
    throw new TypeError(
      `Cannot select with where() between dtypes '${x.dtype}' and '${y.dtype}': cast one with cast()`,
    );
  }
  const shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, "where"), y.shape, "where");
  const [vc, vx, vy] = [
    broadcastView(cond, shape),
    broadcastView(x, shape),
    broadcastView(y, shape),
  ];
  const out = wrap(x, x.backend.where(vc.view, vx.view, vy.view, shape), shape);
  for (const v of [vc, vx, vy]) v.dispose();
  return record(out, "where", [x, y], (dy) => {
    const zero = 0;
    return [
      x.requiresGrad ? sumToShape(where(cond, dy, zero), x.shape) : null,
      y.requiresGrad ? sumToShape(where(cond, zero, dy), y.shape) : null,
    ];
  });
}

/**
 * Convert to `dtype`. Float to integer truncates toward zero and is not differentiable; integer to
 * float passes gradients back to the (non-differentiable) integer source.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = wrap(x, x.backend.cast(x.view, dtype), x.shape);
  if (dtype !== "f32") return recordNonDifferentiable(out, `cast to ${dtype}`, [x]);
  return record(out, "cast", [x], (dy) => [dy]);
}
