import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu.ts";
import { getBackend, withBackend } from "../../lib/backend/mod.ts";
import type { SwiGlu } from "../../lib/nn/ffn.ts";
import type { Linear } from "../../lib/nn/linear.ts";
import { countParameters } from "../../lib/nn/module.ts";
import {
  maxVio,
  Moe,
  MOE_CLASSIC,
  MOE_DEFAULTS,
  MOE_V3,
  type MoeConfig,
  type MoeOutput,
} from "../../lib/nn/moe.ts";
import {
  add,
  eq,
  mul,
  noGrad,
  randn,
  reshape,
  Rng,
  sum,
  type Tensor,
  tensor,
  unsqueeze,
  zeros,
} from "../../lib/tensor/mod.ts";
import { assertAllClose, checkOp, F64, gradOf, randomArray } from "../_utils.ts";
import { type FixtureCase, loadFixture } from "./_fixtures.ts";
import { webgpuForTests } from "../_gpu.ts";

/** Every `Linear` of `moe` by Hugging Face name (without `.weight`). */
function linears(moe: Moe): Record<string, Linear> {
  const out: Record<string, Linear> = { gate: moe.gate };
  const ffns: [string, SwiGlu][] = moe.experts.map((e, i) => [`experts.${i}`, e]);
  if (moe.sharedExperts) ffns.push(["shared_experts", moe.sharedExperts]);
  for (const [name, ffn] of ffns) {
    out[`${name}.gate_proj`] = ffn.gateProj;
    out[`${name}.up_proj`] = ffn.upProj;
    out[`${name}.down_proj`] = ffn.downProj;
  }
  return out;
}

/** Point each `<name>.weight` of `moe` at the tensor of that name (`x` is skipped). */
function setWeights(moe: Moe, weights: Record<string, Tensor>): void {
  const parts = linears(moe);
  for (const [name, t] of Object.entries(weights)) {
    if (name === "x") continue;
    const part = parts[name.replace(/\.weight$/, "")];
    if (part === undefined) throw new Error(`No part '${name}' to load into`);
    part.weight = t;
  }
}

/** Sorted chosen experts per token, flattened. */
function chosenSets(out: MoeOutput): number[] {
  const k = out.indices.shape[out.indices.rank - 1];
  const flat = Array.from(out.indices.dataSync());
  const sets: number[] = [];
  for (let t = 0; t < flat.length; t += k) sets.push(...flat.slice(t, t + k).sort((a, b) => a - b));
  return sets;
}

/**
 * A skewed router: tokens `x: [1, T, d]` share a direction `c`, and expert i's router row is
 * `e_i = (1 − 2i / (N_r − 1)) · skew · c + noise`: low-numbered experts win almost every token.
 */
function skewedSetup(config: MoeConfig, tokens: number, skew: number): { moe: Moe; x: Tensor } {
  const rng = new Rng(21);
  const moe = new Moe(config, rng);
  const d = config.dModel, nR = moe.config.routedExperts;
  const common = Array.from({ length: d }, () => rng.normal(0, 1));
  const x = tensor(
    Array.from({ length: tokens * d }, (_, i) => common[i % d] + rng.normal(0, 0.5)),
    { shape: [1, tokens, d] },
  );
  const w = Array.from(
    { length: nR * d },
    (_, i) => (1 - (2 * Math.floor(i / d)) / (nR - 1)) * skew * common[i % d] + rng.normal(0, 0.1),
  );
  moe.gate.weight = tensor(w, { shape: [nR, d], requiresGrad: true });
  return { moe, x };
}

interface MoeCase extends FixtureCase {
  config: MoeConfig;
  buffers: Record<string, number[]>;
  aux_loss: number | null;
  indices: number[];
  load: number[];
}

const fixture = loadFixture("moe");

const gpu: Backend | null = await webgpuForTests("Moe WebGPU test");

for (const c of fixture.cases as MoeCase[]) {
  Deno.test(`Moe.forward() matches dense PyTorch: y, L_bal, routing, grads (${c.name})`, () => {
    for (const [precision, backend] of [["f32", getBackend()], ["f64", F64]] as const) {
      const tol = fixture.meta.tolerance[precision];
      const where = `${c.name} (${precision})`;
      withBackend(backend, () => {
        const moe = new Moe(c.config, new Rng(0));
        const inputs: Record<string, Tensor> = {};
        for (const [k, v] of Object.entries(c.inputs)) {
          inputs[k] = tensor(v, { shape: c.shapes[k], requiresGrad: true });
        }
        setWeights(moe, inputs);
        const bias = c.buffers["gate.e_score_correction_bias"];
        moe.eScoreCorrectionBias.assign(tensor(bias));
        const out = moe.forward(inputs.x);
        deepStrictEqual(chosenSets(out), c.indices, `${where}: chosen experts`);
        deepStrictEqual(out.load, c.load, `${where}: load`);
        assertAllClose(out.y, c.y, { ...tol, message: `${where}: y` });
        strictEqual(out.auxLoss === null, c.aux_loss === null, `${where}: aux loss present`);
        if (out.auxLoss !== null && c.aux_loss !== null) {
          assertAllClose(out.auxLoss, c.aux_loss, { ...tol, message: `${where}: aux loss` });
        }
        const fit = sum(mul(out.y, tensor(c.dy, { shape: c.shapes.y })));
        (out.auxLoss ? add(fit, out.auxLoss) : fit).backward();
        for (const [k, g] of Object.entries(c.grads)) {
          // an expert no token chose takes no part in the graph: no gradient (PyTorch: zeros)
          const expert = /^experts\.(\d+)\./.exec(k);
          const unused = inputs[k].grad === null && expert !== null && out.load[+expert[1]] === 0;
          const got = unused ? new Array<number>(g.length).fill(0) : gradOf(inputs[k]);
          assertAllClose(got, g, { ...tol, message: `${where}: d${k}` });
        }
        strictEqual(moe.eScoreCorrectionBias.grad, null, `${where}: the bias gets no gradient`);
      });
    }
  });
}

Deno.test("Moe.forward() equals a dense loop over every expert (16 experts, 4 groups)", () => {
  const rng = new Rng(11);
  const moe = new Moe({
    dModel: 12,
    routedExperts: 16,
    topK: 4,
    expertHidden: 6,
    groups: 4,
    topkGroup: 2,
    sharedExperts: 2,
    initStd: 0.3,
  }, rng);
  moe.eScoreCorrectionBias.assign(randn([16], { rng, std: 0.2 }));
  const x = randn([3, 10, 12], { rng });
  const out = moe.forward(x);
  // dense: y = Σ_shared + Σ_e mask_e g_e FFN_e(u), every expert on every token
  const u = reshape(x, [30, 12]);
  const idx = reshape(out.indices, [30, 4]), g = reshape(out.gates, [30, 4]);
  let y = moe.sharedExperts?.forward(u) ?? zeros([30, 12]);
  moe.experts.forEach((expert, e) => {
    const gate = sum(mul(eq(idx, tensor(e, { dtype: "i32" })), g), -1); // g_e,t or 0: [N]
    y = add(y, mul(unsqueeze(gate, 1), expert.forward(u)));
  });
  assertAllClose(out.y, reshape(y, [3, 10, 12]), { atol: 1e-5 });
});

Deno.test("Moe.forward() runs each routed expert only on its own tokens: N K rows in all", () => {
  const rng = new Rng(3);
  const moe = new Moe({
    dModel: 8,
    routedExperts: 8,
    topK: 3,
    expertHidden: 4,
  }, rng);
  const rows = new Array<number>(8).fill(0);
  let sharedRows = 0;
  moe.experts.forEach((expert, e) => {
    const run = expert.forward.bind(expert);
    expert.forward = (x: Tensor) => {
      rows[e] += x.shape[0];
      return run(x);
    };
  });
  const shared = moe.sharedExperts;
  if (shared === null) throw new Error("Expected a shared expert");
  const runShared = shared.forward.bind(shared);
  shared.forward = (x: Tensor) => {
    sharedRows += x.shape[0];
    return runShared(x);
  };
  const out = moe.forward(randn([2, 20, 8], { rng }));
  strictEqual(rows.reduce((a, b) => a + b), 2 * 20 * 3, "routed rows = N K, not N N_r");
  deepStrictEqual(rows, out.load, "each expert sees exactly its load");
  strictEqual(sharedRows, 40, "the shared expert sees every token once");
});

Deno.test("Moe group-limited routing keeps ≤ topkGroup groups, the best by top-2 sum", () => {
  const rng = new Rng(5);
  const config = { dModel: 8, routedExperts: 16, topK: 4, expertHidden: 2, groups: 4 };
  const x = randn([1, 64, 8], { rng });
  const groupsUsed = (topkGroup: number): number[][] => {
    const moe = new Moe({ ...config, topkGroup, initStd: 0.5 }, new Rng(6));
    moe.eScoreCorrectionBias.assign(randn([16], { rng: new Rng(7), std: 0.1 }));
    const sets = chosenSets(moe.forward(x));
    const out: number[][] = [];
    for (let t = 0; t < 64; t++) {
      out.push([...new Set(sets.slice(4 * t, 4 * t + 4).map((e) => Math.floor(e / 4)))]);
    }
    return out;
  };
  ok(groupsUsed(4).some((g) => g.length > 2), "without the limit some tokens span > 2 groups");
  const limited = groupsUsed(2);
  ok(limited.every((g) => g.length <= 2), "with topkGroup 2 no token spans more than 2 groups");
  // the kept groups are those with the largest sum of top-2 biased scores
  const moe = new Moe({ ...config, topkGroup: 2, initStd: 0.5 }, new Rng(6));
  moe.eScoreCorrectionBias.assign(randn([16], { rng: new Rng(7), std: 0.1 }));
  const logits = noGrad(() => moe.gate.forward(reshape(x, [64, 8]))).dataSync();
  const b = moe.eScoreCorrectionBias.dataSync();
  for (let t = 0; t < 64; t++) {
    const score = (e: number) => 1 / (1 + Math.exp(-logits[t * 16 + e])) + b[e];
    const groupScore = [0, 1, 2, 3].map((g) => {
      const s = [0, 1, 2, 3].map((j) => score(4 * g + j)).sort((p, q) => q - p);
      return s[0] + s[1];
    });
    const best = [0, 1, 2, 3].sort((p, q) => groupScore[q] - groupScore[p]).slice(0, 2);
    ok(limited[t].every((g) => best.includes(g)), `token ${t} uses only its 2 best groups`);
  }
});

Deno.test("Moe aux-loss-free balancing lowers MaxVio on a skewed router; γ = 0 leaves it", () => {
  const run = (gamma: number, steps: number) => {
    const config: MoeConfig = {
      dModel: 8,
      routedExperts: 8,
      topK: 2,
      expertHidden: 2,
      sharedExperts: 0,
      alpha: 0,
      gamma,
    };
    const { moe, x } = skewedSetup(config, 128, 0.05);
    const history: number[] = [];
    for (let step = 0; step < steps; step++) {
      const out = noGrad(() => moe.forward(x));
      history.push(out.maxVio);
      moe.updateBias(out.load); // after the (here absent) optimizer step
    }
    return history;
  };
  const avg = (v: number[]) => v.reduce((a, b) => a + b) / v.length;
  const frozen = run(0, 50);
  ok(frozen[0] > 1.5, `the router starts skewed (MaxVio ${frozen[0].toFixed(2)})`);
  ok(frozen.every((v) => v === frozen[0]), "with γ = 0 MaxVio never changes");
  for (const [gamma, steps] of [[0.01, 60], [0.001, 300]]) { // V3's γ = 0.001 needs more steps
    const history = run(gamma, steps);
    const late = avg(history.slice(-20));
    ok(
      late < 0.3 * history[0],
      `γ = ${gamma}: MaxVio ${history[0].toFixed(2)} → ${late.toFixed(2)}`,
    );
  }
});

Deno.test("Moe.updateBias() adds γ sign(mean − load), re-centred on request; aux-free only", () => {
  const base = { dModel: 4, routedExperts: 4, topK: 1, groups: 1, topkGroup: 1, gamma: 0.5 };
  const moe = new Moe(base, new Rng(0));
  moe.updateBias([5, 0, 2, 1]); // mean 2
  assertAllClose(moe.eScoreCorrectionBias, [-0.5, 0.5, 0, 0.5]);
  const centred = new Moe({ ...base, biasRecenter: true }, new Rng(0));
  centred.updateBias([5, 0, 2, 1]);
  assertAllClose(centred.eScoreCorrectionBias, [-0.625, 0.375, -0.125, 0.375]);
  const lossOnly = new Moe({ ...base, balance: "aux-loss" }, new Rng(0));
  lossOnly.updateBias([5, 0, 2, 1]);
  assertAllClose(lossOnly.eScoreCorrectionBias, [0, 0, 0, 0]);
  // default: the load of forwards with gradients since the last update (not noGrad ones)
  const rng = new Rng(1);
  const x = randn([1, 6, 4], { rng });
  const auto = new Moe(base, new Rng(2)), manual = new Moe(base, new Rng(2));
  const { load } = auto.forward(x);
  noGrad(() => auto.forward(randn([1, 50, 4], { rng })));
  auto.updateBias();
  manual.updateBias(load);
  assertAllClose(auto.eScoreCorrectionBias, manual.eScoreCorrectionBias.dataSync());
  throws(() => auto.updateBias([1, 2]), /load of 2 experts: expected 4/);
});

Deno.test("Moe bias steers selection only: no gradient, gates from unbiased scores", () => {
  const rng = new Rng(8);
  const config = { dModel: 6, routedExperts: 6, topK: 2, expertHidden: 3, groups: 1 };
  const moe = new Moe({ ...config, topkGroup: 1, routeScale: 2.5, alpha: 0.01 }, rng);
  moe.eScoreCorrectionBias.assign(tensor([3, -3, 0, 0, 0, 0])); // expert 0 always, 1 never
  const x = randn([2, 5, 6], { rng });
  const out = moe.forward(x);
  strictEqual(out.load[0], 10);
  strictEqual(out.load[1], 0);
  // g = s / Σ_chosen s · 2.5 with s the unbiased sigmoid scores
  const logits = noGrad(() => moe.gate.forward(reshape(x, [10, 6]))).dataSync();
  const idx = out.indices.dataSync(), g = out.gates.dataSync();
  for (let t = 0; t < 10; t++) {
    const sg = [0, 1].map((j) => 1 / (1 + Math.exp(-logits[t * 6 + idx[t * 2 + j]])));
    const total = sg[0] + sg[1];
    assertAllClose([g[2 * t], g[2 * t + 1]], sg.map((v) => (2.5 * v) / total), { atol: 1e-6 });
  }
  const loss = add(sum(out.y), out.auxLoss ?? 0);
  loss.backward();
  strictEqual(moe.eScoreCorrectionBias.requiresGrad, false);
  strictEqual(moe.eScoreCorrectionBias.grad, null);
  ok(moe.gate.weight.grad !== null, "the router weight is trained through the gates");
  ok(![...moe.parameters().values()].includes(moe.eScoreCorrectionBias));
});

Deno.test("gradcheck: Moe y w.r.t. x, router and every expert weight (fixed routing)", () => {
  const config: MoeConfig = {
    dModel: 4,
    routedExperts: 4,
    topK: 2,
    expertHidden: 2,
    groups: 2,
    topkGroup: 1,
    sharedExperts: 1,
    routeScale: 1.5,
  };
  const names = [...new Moe(config, new Rng(0)).parameters().keys()];
  const shapes = [
    [2, 3, 4],
    ...[...new Moe(config, new Rng(0)).parameters().values()].map((t) => t.shape),
  ];
  checkOp(shapes, (x, ...weights) => {
    const moe = new Moe(config, new Rng(0));
    moe.eScoreCorrectionBias.assign(tensor([0.3, -0.2, 0.1, -0.4]));
    setWeights(moe, Object.fromEntries(names.map((n, i) => [n, weights[i]])));
    return moe.forward(x).y;
  });
});

Deno.test("gradcheck: Moe sequence-wise and batch balance losses w.r.t. x and router", () => {
  for (const extra of [{ score: "sigmoid", auxLossScope: "sequence" }, MOE_CLASSIC] as const) {
    const config: MoeConfig = {
      dModel: 4,
      routedExperts: 4,
      topK: 2,
      expertHidden: 2,
      alpha: 0.1,
      ...extra,
    };
    checkOp([[2, 3, 4], [4, 4]], (x, w) => {
      const moe = new Moe(config, new Rng(0));
      moe.gate.weight = w;
      const aux = moe.forward(x).auxLoss;
      if (aux === null) throw new Error("Expected a balance loss");
      return aux;
    });
  }
});

Deno.test("Moe balance loss equals α for uniform scores; null when off", () => {
  // zero router: s = 1/2 (sigmoid) for every expert, so P_i = 1/N_r and Σ f_i P_i = Σ f_i / N_r
  // = 1 whatever the routing (ties go to low indices: every token picks experts 0 and 1)
  const moe = new Moe({
    dModel: 4,
    routedExperts: 4,
    topK: 2,
    alpha: 0.5,
  }, new Rng(0));
  moe.gate.weight = zeros([4, 4]);
  assertAllClose(moe.forward(randn([3, 5, 4], { rng: new Rng(1) })).auxLoss ?? NaN, 0.5);
  const off = new Moe(
    { dModel: 4, routedExperts: 4, topK: 2, groups: 1, topkGroup: 1, alpha: 0 },
    new Rng(0),
  );
  strictEqual(off.forward(randn([1, 2, 4], { rng: new Rng(1) })).auxLoss, null);
  const none = new Moe({
    dModel: 4,
    routedExperts: 4,
    topK: 2,
    balance: "none",
  }, new Rng(0));
  strictEqual(none.forward(randn([1, 2, 4], { rng: new Rng(1) })).auxLoss, null);
});

Deno.test("Moe metrics: per-forward load and MaxVio, a global accumulator, and resetLoad()", () => {
  strictEqual(maxVio([2, 2, 2, 2]), 0);
  strictEqual(maxVio([8, 0, 0, 0]), 3);
  strictEqual(maxVio([0, 0]), 0);
  const rng = new Rng(4);
  const moe = new Moe({
    dModel: 8,
    routedExperts: 8,
    topK: 2,
    expertHidden: 2,
  }, rng);
  const a = moe.forward(randn([1, 9, 8], { rng })), b = moe.forward(randn([2, 4, 8], { rng }));
  strictEqual(a.maxVio, maxVio(a.load));
  deepStrictEqual(moe.loadTotal, a.load.map((v, i) => v + b.load[i]));
  strictEqual(moe.maxVioGlobal, maxVio(moe.loadTotal));
  moe.resetLoad();
  deepStrictEqual(moe.loadTotal, new Array(8).fill(0));
});

Deno.test("Moe.forwardAsync() equals forward(); a [T, d] input is one sequence", async () => {
  const rng = new Rng(9);
  const moe = new Moe({
    dModel: 8,
    routedExperts: 4,
    topK: 2,
    groups: 2,
    topkGroup: 1,
    expertHidden: 4,
  }, rng);
  const x = randn([7, 8], { rng });
  const sync = moe.forward(x), later = await moe.forwardAsync(x);
  assertAllClose(later.y, sync.y.dataSync());
  deepStrictEqual(sync.y.shape, [7, 8]);
  deepStrictEqual(sync.indices.shape, [7, 2]);
  deepStrictEqual(later.load, sync.load);
});

Deno.test({
  name: "Moe.forwardAsync() on WebGPU equals the cpu backend: y, routing, grads, bias update",
  ignore: gpu === null,
  fn: async () => {
    const config: MoeConfig = {
      dModel: 8,
      routedExperts: 8,
      topK: 2,
      expertHidden: 4,
      groups: 4,
      topkGroup: 2,
      alpha: 0.01,
      initStd: 0.5,
    };
    const run = (backend: Backend) =>
      withBackend(backend, async () => {
        const moe = new Moe(config, new Rng(0));
        moe.eScoreCorrectionBias.assign(tensor(randomArray(8, 3, 0.1)));
        const x = tensor(randomArray(2 * 6 * 8, 1), { shape: [2, 6, 8], requiresGrad: true });
        const out = await moe.forwardAsync(x);
        add(sum(out.y), out.auxLoss ?? 0).backward();
        moe.updateBias(out.load);
        return {
          y: await out.y.data(),
          dx: await gradOf(x).data(),
          dGate: await gradOf(moe.gate.weight).data(),
          bias: await moe.eScoreCorrectionBias.data(),
          load: out.load,
        };
      });
    const want = await run(new CpuBackend()), got = await run(gpu as Backend);
    deepStrictEqual(got.load, want.load);
    assertAllClose(got.y, want.y, { atol: 1e-5, rtol: 1e-4 });
    assertAllClose(got.dx, want.dx, { atol: 1e-5, rtol: 1e-4 });
    assertAllClose(got.dGate, want.dGate, { atol: 1e-5, rtol: 1e-4 });
    assertAllClose(got.bias, want.bias);
  },
});

Deno.test("Moe fills MOE_DEFAULTS (what a run resolves); MOE_V3 holds V3's sizes", () => {
  const small = new Moe({ dModel: 96, routedExperts: 8, topK: 2 }, new Rng(0)).config;
  deepStrictEqual(small, {
    dModel: 96,
    routedExperts: 8,
    sharedExperts: MOE_DEFAULTS.sharedExperts,
    topK: 2,
    expertHidden: 85, // round(8/3 · 96 / (2 + 1))
    score: "sigmoid",
    routeScale: 1,
    groups: 1,
    topkGroup: 1,
    groupScore: "top2-sum",
    normTopK: true,
    balance: "aux-free",
    gamma: 0.001,
    biasRecenter: false,
    alpha: 0.0001,
    auxLossScope: "sequence",
    initStd: 0.02,
  });
  const lossOnly = { dModel: 8, routedExperts: 4, topK: 2, balance: "aux-loss" } as const;
  strictEqual(new Moe(lossOnly, new Rng(0)).config.alpha, 0.01);
  strictEqual(new Moe({ ...lossOnly, balance: "none" }, new Rng(0)).config.alpha, 0);
  deepStrictEqual([MOE_V3.routedExperts, MOE_V3.topK, MOE_V3.routeScale, MOE_V3.groups], [
    256,
    8,
    2.5,
    8,
  ]);
});

Deno.test("Moe has Hugging Face names; shared experts merged into one FFN", () => {
  const moe = new Moe({
    dModel: 6,
    routedExperts: 2,
    topK: 1,
    expertHidden: 3,
    sharedExperts: 2,
  }, new Rng(0));
  const shapes = [...moe.parameters()].map(([k, t]) => [k, t.shape]);
  deepStrictEqual(shapes, [
    ["experts.0.gate_proj.weight", [3, 6]],
    ["experts.0.up_proj.weight", [3, 6]],
    ["experts.0.down_proj.weight", [6, 3]],
    ["experts.1.gate_proj.weight", [3, 6]],
    ["experts.1.up_proj.weight", [3, 6]],
    ["experts.1.down_proj.weight", [6, 3]],
    ["gate.weight", [2, 6]],
    ["shared_experts.gate_proj.weight", [6, 6]],
    ["shared_experts.up_proj.weight", [6, 6]],
    ["shared_experts.down_proj.weight", [6, 6]],
  ]);
  strictEqual(countParameters(moe), 2 * 54 + 12 + 108);
  deepStrictEqual([...moe.buffers()].map(([k, t]) => [k, t.shape]), [
    ["gate.e_score_correction_bias", [2]],
  ]);
  const again = new Moe(moe.config, new Rng(0));
  deepStrictEqual(again.gate.weight.dataSync(), moe.gate.weight.dataSync());
});

Deno.test("Moe rejects impossible configs, naming the values", () => {
  const base = { dModel: 8, expertHidden: 4 };
  throws(
    () => new Moe({ ...base, routedExperts: 8, topK: 9 }, new Rng(0)),
    /topK 9 > routedExperts 8/,
  );
  throws(
    () => new Moe({ ...base, routedExperts: 8, topK: 2, groups: 4, topkGroup: 5 }, new Rng(0)),
    /topkGroup 5 > groups 4/,
  );
  throws(
    () => new Moe({ ...base, routedExperts: 10, topK: 2, groups: 4, topkGroup: 2 }, new Rng(0)),
    /routedExperts 10 in groups 4/,
  );
  throws(
    () => new Moe({ ...base, routedExperts: 8, topK: 5, groups: 4, topkGroup: 2 }, new Rng(0)),
    /topK 5 > 4 experts reachable in topkGroup 2 groups of 2 experts/,
  );
  throws(
    () => new Moe({ ...base, routedExperts: 0, topK: 1 }, new Rng(0)),
    /routedExperts 0: expected a positive integer/,
  );
  throws(
    () =>
      new Moe(
        { ...base, routedExperts: 4, topK: 1, groups: 1, topkGroup: 1, gamma: -1 },
        new Rng(0),
      ),
    /gamma -1/,
  );
  const moe = new Moe({ ...base, routedExperts: 4, topK: 1 }, new Rng(0));
  throws(() => moe.forward(zeros([2, 5])), /input \[2, 5\]: expected \[\.\.\., T, 8\]/);
});

Deno.test("Moe normTopK: false gates with the raw softmax scores times routeScale (V2)", () => {
  const rng = new Rng(11);
  const config = {
    dModel: 8,
    routedExperts: 6,
    topK: 2,
    expertHidden: 4,
    groups: 1,
    topkGroup: 1,
  };
  const x = randn([1, 5, 8], { rng });
  const raw = new Moe({ ...config, score: "softmax", normTopK: false, routeScale: 3 }, rng);
  const { gates, indices } = raw.forward(x);
  const logits = noGrad(() => raw.gate.forward(reshape(x, [5, 8]))).dataSync();
  const idx = indices.dataSync(), g = gates.dataSync();
  for (let t = 0; t < 5; t++) {
    const row = Array.from(logits.slice(t * 6, t * 6 + 6));
    const z = row.reduce((s, v) => s + Math.exp(v), 0);
    for (let j = 0; j < 2; j++) {
      const e = idx[t * 2 + j];
      assertAllClose(g[t * 2 + j], (3 * Math.exp(row[e])) / z, { atol: 1e-6 });
    }
  }
  ok(Array.from(g).some((v, i) => i % 2 === 0 && Math.abs(v + g[i + 1] - 3) > 0.1));
  // the default renormalises: each token's gates sum to routeScale
  const norm = new Moe({ ...config, score: "softmax", routeScale: 3 }, new Rng(11));
  const gn = norm.forward(x).gates.dataSync();
  for (let t = 0; t < 5; t++) assertAllClose(gn[2 * t] + gn[2 * t + 1], 3, { atol: 1e-6 });
});

Deno.test("Moe groupScore 'max' keeps the groups with the largest score (V2 group-limited)", () => {
  // 4 experts in 2 groups; token scores (softmax of the logits below): group 0 holds one strong
  // expert, group 1 two medium ones. Top-2 sums prefer group 1, the max prefers group 0.
  const config = { dModel: 4, routedExperts: 4, topK: 1, expertHidden: 2, groups: 2 };
  const logits = [2.0, -4.0, 1.6, 1.6];
  const x = tensor([[logits]]); // [1, 1, 4]: the gate is the identity below
  const pick = (groupScore: "top2-sum" | "max") => {
    const moe = new Moe({ ...config, topkGroup: 1, score: "softmax", groupScore }, new Rng(0));
    moe.gate.weight.assign(tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]));
    return Array.from(moe.forward(x).indices.dataSync());
  };
  deepStrictEqual(pick("max"), [0]);
  deepStrictEqual(pick("top2-sum"), [2]);
  throws(
    () => new Moe({ ...config, topkGroup: 1, groupScore: "mean" as "max" }, new Rng(0)),
    /groupScore 'mean': expected 'top2-sum' or 'max'/,
  );
});
