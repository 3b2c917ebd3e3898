/**
 * Tensors with reverse-mode autograd on a pluggable backend.
 *
 * ```ts
 * import { crossEntropy, matmul, randn, Rng, tensor } from "./mod.ts";
 * const rng = new Rng(0);
 * const w = randn([4, 3], { rng, std: 0.1, requiresGrad: true });
 * const loss = crossEntropy(matmul(randn([2, 4], { rng }), w), tensor([0, 2], { dtype: "i32" }));
 * loss.backward(); // w.grad now holds dloss/dw, shape [4, 3]
 * ```
 *
 * @module
 */

export { type NestedArray, Tensor, tidy, TidyScope } from "./tensor.ts";
export {
  type BackwardFn,
  isGradEnabled,
  type Node,
  noGrad,
  record,
  recordNonDifferentiable,
} from "./autograd.ts";
export { checkDType, type DType, DTYPES } from "./dtype.ts";
export { broadcastShapes, contiguousStrides, formatShape, type Shape, shapeSize } from "./shape.ts";
export { Rng, type RngState } from "./random.ts";
export { type TensorLike } from "./ops/_util.ts";
export * from "./ops/creation.ts";
export * from "./ops/elementwise.ts";
export * from "./ops/movement.ts";
export * from "./ops/reduce.ts";
export * from "./ops/matmul.ts";
export * from "./ops/nn.ts";
export * from "./ops/attention.ts";
export * from "./ops/rope.ts";
export {
  type DecodedSafetensors,
  decodeSafetensors,
  type DecodeSafetensorsOptions,
  encodeSafetensors,
  type EncodeSafetensorsOptions,
  loadSafetensors,
  type NamedTensors,
  SAFETENSORS_DTYPES,
  type SafetensorsDType,
  saveSafetensors,
} from "./safetensors.ts";
