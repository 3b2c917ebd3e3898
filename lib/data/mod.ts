/**
 * Data: the embedded Brown corpus with a fixed held-out split, byte and BPE tokenizers, seeded
 * resumable batches of next-token windows, and synthetic tasks with checkable answers.
 *
 * ```ts
 * import { brown, ByteTokenizer, RandomBatches, sequentialBatches } from "./mod.ts";
 * const corpus = await brown(), tok = new ByteTokenizer(); // corpus.hash names text + split
 * const train = new RandomBatches(tok.encode(corpus.train), { batch: 16, seqLen: 128, seed: 0 });
 * const { inputs, targets } = train.next(); // Int32Array [16, 128] each; train.state() resumes
 * const val = [...sequentialBatches(tok.encode(corpus.val), { batch: 16, seqLen: 128 })]; // fixed
 * ```
 *
 * @module
 */

export * from "./brown.ts";
export * from "./tokenizer.ts";
export * from "./batches.ts";
export * from "./synthetic.ts";
