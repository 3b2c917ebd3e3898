import { deepStrictEqual, throws } from "node:assert/strict";
import { Attention } from "../../lib/nn/attention.ts";
import { SwiGlu } from "../../lib/nn/ffn.ts";
import { Mtp, mtpAlignment, mtpLoss } from "../../lib/nn/mtp.ts";
import { RmsNorm } from "../../lib/nn/norm.ts";
import { add, concat, Rng, type Tensor, tensor } from "../../lib/tensor/mod.ts";
import { linear } from "../../lib/nn/linear.ts";
import type { AttentionForwardOptions } from "../../lib/nn/attention.ts";
import { assertAllClose, checkOp, F64 } from "../_utils.ts";
import { withBackend } from "../../lib/backend/mod.ts";

/** A minimal pre-norm block (the decoder's block is tested in tests/models/). */
class Block {
  norm1 = new RmsNorm({ dim: 8 });
  norm2 = new RmsNorm({ dim: 8 });
  attn: Attention;
  ffn: SwiGlu;
  constructor(rng: Rng) {
    this.attn = new Attention({ dModel: 8, heads: 2 }, rng);
    this.ffn = new SwiGlu({ dModel: 8, hidden: 12 }, rng);
  }
  forward(x: Tensor, options: AttentionForwardOptions = {}): { h: Tensor } {
    const u = add(x, this.attn.forward(this.norm1.forward(x), options));
    return { h: add(u, this.ffn.forward(this.norm2.forward(u))) };
  }
  parameters(): Map<string, Tensor> {
    return new Map([
      ...[...this.attn.parameters()].map(([k, v]) => [`self_attn.${k}`, v] as const),
      ...[...this.ffn.parameters()].map(([k, v]) => [`mlp.${k}`, v] as const),
    ]);
  }
}

Deno.test("mtpAlignment(): depth k embeds t_{i+k} and predicts t_{i+k+1}; ignored ids embed 0", () => {
  // inputs t_0..t_5 = 10..15, targets t_1..t_6 = 11..16
  const targets = tensor([[11, 12, 13, 14, 15, 16], [21, 22, -100, 24, 25, 26]], { dtype: "i32" });
  const d1 = mtpAlignment(targets, 1);
  deepStrictEqual(Array.from(d1.inputIds.dataSync()), [11, 12, 13, 14, 15, 21, 22, 0, 24, 25]);
  deepStrictEqual(Array.from(d1.labels.dataSync()), [12, 13, 14, 15, 16, 22, -100, 24, 25, 26]);
  const d3 = mtpAlignment(targets, 3);
  deepStrictEqual(d3.labels.shape, [2, 3]);
  deepStrictEqual(Array.from(d3.inputIds.dataSync()), [13, 14, 15, 0, 24, 25]);
  deepStrictEqual(Array.from(d3.labels.dataSync()), [14, 15, 16, 24, 25, 26]);
  throws(() => mtpAlignment(targets, 6), /Cannot align MTP depth 6 to targets \[2, 6\]/);
});

Deno.test("Mtp.forward() is eh_proj([enorm(e); hnorm(h)]) then the block; head after shared norm", () => {
  const rng = new Rng(0);
  const mtp = new Mtp({ dModel: 8 }, new Block(rng), rng);
  mtp.enorm.weight.assign(tensor(Array.from({ length: 8 }, (_, i) => 1 + i / 10)));
  const h = tensor(Array.from({ length: 24 }, () => rng.normal()), { shape: [1, 3, 8] });
  const e = tensor(Array.from({ length: 24 }, () => rng.normal()), { shape: [1, 3, 8] });
  const merged = linear(
    concat([mtp.enorm.forward(e), mtp.hnorm.forward(h)], -1),
    mtp.ehProj.weight,
  );
  const expected = mtp.block.forward(merged).h;
  assertAllClose(mtp.forward(h, e).h, expected, { atol: 1e-6 });
  // swapping the halves (the paper's order) gives a different result: the order matters
  const swapped = linear(
    concat([mtp.hnorm.forward(h), mtp.enorm.forward(e)], -1),
    mtp.ehProj.weight,
  );
  throws(() => assertAllClose(mtp.block.forward(swapped).h, expected, { atol: 1e-6 }));
  const head = tensor(Array.from({ length: 40 }, () => rng.normal()), { shape: [5, 8] });
  assertAllClose(mtp.logits(expected, head), linear(mtp.sharedHeadNorm.forward(expected), head));
  deepStrictEqual([...mtp.parameters().keys()], [
    "enorm.weight",
    "hnorm.weight",
    "eh_proj.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "shared_head.norm.weight",
  ]);
});

Deno.test("mtpLoss() is λ/D Σ L^k; Mtp.loss() is the mean CE of the shared head", () => {
  assertAllClose(mtpLoss([tensor(1), tensor(2), tensor(3)], { lambda: 0.3 }), 0.3 / 3 * 6);
  assertAllClose(mtpLoss([tensor(2)]), 0.3 * 2);
  throws(() => mtpLoss([]), /zero depths/);
  const rng = new Rng(1);
  const mtp = new Mtp({ dModel: 8 }, new Block(rng), rng);
  const h = tensor(Array.from({ length: 16 }, () => rng.normal()), { shape: [1, 2, 8] });
  const head = tensor(new Array(40).fill(0), { shape: [5, 8] }); // uniform logits
  assertAllClose(mtp.loss(h, head, tensor([[1, 4]], { dtype: "i32" })), Math.log(5), {
    atol: 1e-6,
  });
});

Deno.test("gradcheck: Mtp.forward() + logits w.r.t. h^{k-1}, the embeddings and the head", () => {
  const mtp = withBackend(F64, () => {
    const rng = new Rng(2);
    return new Mtp({ dModel: 8 }, new Block(rng), rng);
  });
  checkOp(
    [[1, 3, 8], [1, 3, 8], [5, 8]],
    (h, e, head) => mtp.logits(mtp.forward(h, e).h, head),
    { gradAtol: 1e-6, gradRtol: 1e-4 },
  );
});

Deno.test("Mtp rejects mismatched inputs, naming the shapes", () => {
  const rng = new Rng(3);
  const mtp = new Mtp({ dModel: 8 }, new Block(rng), rng);
  const h = tensor(new Array(24).fill(0), { shape: [1, 3, 8] });
  const e = tensor(new Array(16).fill(0), { shape: [1, 2, 8] });
  throws(() => mtp.forward(h, e), /h \[1, 3, 8\] and embeddings \[1, 2, 8\]/);
  throws(() => new Mtp({ dModel: 0 }, new Block(rng), rng), /dModel 0/);
});
