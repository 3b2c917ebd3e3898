import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { loadModel, saveModel } from "../../lib/models/checkpoint.ts";
import { Decoder, tinyConfig } from "../../lib/models/decoder.ts";
import { Rng } from "../../lib/tensor/mod.ts";
import { generate } from "../../lib/models/generate.ts";
import { readCheckpointFiles } from "../../lib/models/hf_checkpoint.ts";
import {
  formatInspect,
  headerParameterCount,
  inspectCheckpoint,
  inspectMain,
} from "../../lib/models/inspect.ts";

const FIXTURES = "tests/fixtures/models/hf";
const CASES = ["v3_f32", "v3_bf16_sharded", "v3_fp8_sharded", "v2_lite", "v2_group_limited_f16"];

Deno.test("inspectCheckpoint() counts parameters from the headers as the model counts them", async () => {
  for (const name of CASES) {
    const dir = `${FIXTURES}/${name}`;
    const report = await inspectCheckpoint(dir);
    const model = await loadModel(dir);
    deepStrictEqual(report.parameters, model.countParameters(), name);
    strictEqual(report.kvBytesPerToken, model.kvBytesPerToken(), name);
    strictEqual(report.greedy, null);
    const files = await readCheckpointFiles(dir);
    deepStrictEqual(headerParameterCount(model.config, files), report.parameters);
  }
  const fp8 = await inspectCheckpoint(`${FIXTURES}/v3_fp8_sharded`);
  deepStrictEqual(fp8.dtypes.map((d) => d.dtype), ["F8_E4M3", "BF16", "F32"]);
  strictEqual(fp8.dtypes[0].tensors, 73);
});

Deno.test("deno task inspect runs with --allow-read only and prints the greedy tokens generate() gives", async () => {
  const dir = `${FIXTURES}/v2_lite`;
  const out = await new Deno.Command("deno", {
    args: [
      "run",
      "--allow-read",
      "lib/models/inspect.ts",
      dir,
      "--prompt",
      "3,1,4",
      "--tokens",
      "5",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  const model = await loadModel(dir);
  const tokens = generate(model, [3, 1, 4], { maxNewTokens: 5 }).tokens;
  ok(text.includes(`greedy      [3, 1, 4] → [${tokens.join(", ")}]`), text);
  const report = await inspectCheckpoint(dir);
  const counts = formatInspect(report).find((l) => l.startsWith("parameters"));
  ok(counts !== undefined && text.includes(counts), text);
  ok(text.includes("softmax, greedy, not renormalised × 1"), text);
  ok(text.includes("BF16"), text);
  const bad = await new Deno.Command("deno", {
    args: ["run", "--allow-read", "lib/models/inspect.ts", dir, "--tokens", "1.5"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  strictEqual(bad.code, 2);
  ok(new TextDecoder().decode(bad.stderr).includes("Cannot inspect with --tokens '1.5'"));
});

Deno.test("inspectMain() reports bad usage with exit code 2 and a missing directory with 1", async () => {
  const errors: string[] = [];
  const error = (l: string) => errors.push(l);
  strictEqual(await inspectMain([], { error }), 2);
  ok(errors[0].startsWith("Cannot inspect: expected one checkpoint directory, got 0"));
  strictEqual(await inspectMain([`${FIXTURES}/v2_lite`, "--fp8", "e5m2"], { error }), 2);
  ok(errors[1].includes("Cannot inspect with --fp8 'e5m2'"));
  strictEqual(await inspectMain([`${FIXTURES}/v2_lite`, "--prompt", "1,x"], { error }), 2);
  strictEqual(await inspectMain([`${FIXTURES}/nowhere`, "--tokens", "0"], { error }), 1);
  ok(errors[3].includes("has no config.json"), errors[3]);
});

Deno.test("inspectCheckpoint() reads ablate's own checkpoints too (GQA + MTP, config in config.json)", async () => {
  await Deno.mkdir(".test-tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: ".test-tmp", prefix: "models-inspect-" });
  try {
    const config = tinyConfig({
      heads: 4,
      attention: { kind: "gqa", kvHeads: 2 },
      mtp: { depth: 1, lambda: 0.3 },
    });
    const model = new Decoder(config, new Rng(0));
    await saveModel(dir, model);
    const report = await inspectCheckpoint(dir, { prompt: [1, 2], tokens: 3 });
    strictEqual(report.configSource, "config.json#ablate");
    deepStrictEqual(report.parameters, model.countParameters());
    strictEqual(report.kvBytesPerToken, model.kvBytesPerToken());
    deepStrictEqual(report.greedy?.tokens, generate(model, [1, 2], { maxNewTokens: 3 }).tokens);
    ok(formatInspect(report).some((l) => l.startsWith("attention   GQA: 2 key/value heads of 4")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
