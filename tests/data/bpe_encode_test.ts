/**
 * BPE encoding (lib/data/tokenizer.ts `BpeTokenizer.encode`) applies the lowest-ranked (earliest
 * learnt) merge present first, not the leftmost pair: checked on hand-made merge lists, and
 * against the textbook definition — apply merge 0 everywhere, then merge 1, … — on a trained
 * tokenizer and seeded random text.
 */
import { deepStrictEqual } from "node:assert/strict";
import { BpeTokenizer, splitChunks } from "../../lib/data/tokenizer.ts";
import { Rng } from "../../lib/tensor/mod.ts";

const [A, B, C, D] = [97, 98, 99, 100]; // "a" "b" "c" "d"

Deno.test("BpeTokenizer.encode() merges the lowest-ranked pair first, not the leftmost", () => {
  // merge 0: "bc" → 256, merge 1: "ab" → 257. In "abc" both pairs occur; "bc" has rank 0.
  const bpe = new BpeTokenizer([[B, C], [A, B]]);
  deepStrictEqual(Array.from(bpe.encode("abc")), [A, 256]); // leftmost-first would give [257, C]
  deepStrictEqual(Array.from(bpe.encode("abcab")), [A, 256, 257]);
  // merge 0: "cd", 1: "bc", 2: "ab", 3: "a" + "bc". In "abc", "bc" (rank 1) goes before "ab"
  // (rank 2), which leaves "a" + "bc" for merge 3; leftmost-first would stop at ["ab", "c"].
  const deeper = new BpeTokenizer([[C, D], [B, C], [A, B], [A, 257]]);
  deepStrictEqual(Array.from(deeper.encode("abc")), [259]);
  deepStrictEqual(Array.from(deeper.encode("abcd")), [258, 256]); // cd, then ab
});

/** Textbook BPE on one chunk: merge k replaces every non-overlapping pair, left to right. */
function applyMergesInOrder(bpe: BpeTokenizer, chunk: string): number[] {
  let ids = Array.from(new TextEncoder().encode(chunk));
  bpe.merges.forEach(([a, b], k) => {
    const out: number[] = [];
    for (let j = 0; j < ids.length; j++) {
      if (j + 1 < ids.length && ids[j] === a && ids[j + 1] === b) {
        out.push(256 + k);
        j++;
      } else out.push(ids[j]);
    }
    ids = out;
  });
  return ids;
}

Deno.test("BpeTokenizer.encode() equals applying the merges in training order", () => {
  const rng = new Rng(3);
  const letters = "abcde ";
  const sample = (n: number) =>
    Array.from({ length: n }, () => letters[rng.int(letters.length)]).join("");
  const bpe = BpeTokenizer.train(sample(4000), 300);
  deepStrictEqual(bpe.vocabSize, 300);
  const text = sample(2000);
  const want = splitChunks(text).flatMap((chunk) => applyMergesInOrder(bpe, chunk));
  deepStrictEqual(Array.from(bpe.encode(text)), want);
});
