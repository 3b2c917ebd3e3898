/**
 * The code of a TypeScript module without what cannot change a number: comments, and the layout
 * `deno fmt` chooses (line breaks, indentation, trailing commas). The run identity hashes this
 * text ({@linkcode "./identity.ts"}), so documenting a module or reformatting it at another line
 * width does not invalidate finished runs, while any change to its tokens does.
 *
 * A small lexer, not a parser: it tracks string, template (with `${…}` expressions, nested) and
 * regular-expression literals so that `//` or `/*` inside them is kept, and tells a regex from a
 * division by the token before it (as JavaScript's grammar does for the cases code here uses).
 * String and regex literals are copied byte for byte.
 *
 * @module
 */

/** Keywords after which `/` starts a regular expression rather than a division. */
const REGEX_AFTER_WORD = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "instanceof",
  "yield",
  "await",
]);

const isWord = (c: string) => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
/** Operator characters that would fuse into another operator if their space were dropped. */
const FUSING = "+-*/%&|^<>=!?.:";

/**
 * `source` with comments removed and whitespace reduced to the spaces the tokens need, trailing
 * commas before `)`, `]` and `}` dropped.
 *
 * @param source A TypeScript or JavaScript module.
 * @returns Its layout-free code text.
 *
 * @example Comments and layout go; tokens stay
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { codeText } from "./code_text.ts";
 * const a = "// a comment\nconst x = f(\n  1,\n  2,\n); const url = \"http://x\";";
 * const b = "const x = f(1, 2);\nconst url = \"http://x\"; // another";
 * strictEqual(codeText(a), codeText(b));
 * strictEqual(codeText(a), 'const x=f(1,2);const url="http://x";');
 * strictEqual(codeText("a = b / c / d;") === codeText("a = b / c / e;"), false);
 * ```
 */
export function codeText(source: string): string {
  let out = "";
  let i = 0;
  let pendingSpace = false;
  /** The last code token's kind, to tell a regex from a division. */
  let lastWord = "";
  let lastChar = "";
  /** Per open `${`: the brace depth inside that expression. */
  const templateDepths: number[] = [];
  const n = source.length;

  const emitCode = (text: string) => {
    const first = text[0];
    if (pendingSpace && out.length > 0) {
      const prev = out[out.length - 1];
      const bothWords = isWord(prev) && isWord(first);
      const fusing = FUSING.includes(prev) && FUSING.includes(first);
      if (bothWords || fusing) out += " ";
    }
    pendingSpace = false;
    if ((first === ")" || first === "]" || first === "}") && lastChar === ",") {
      out = out.slice(0, -1); // a trailing comma: layout, not code
    }
    out += text;
    lastChar = text[text.length - 1];
  };

  /** Copy a quoted literal starting at `i` (quote `q`), escapes included. */
  const copyQuoted = (q: string) => {
    let j = i + 1;
    while (j < n && source[j] !== q && source[j] !== "\n") j += source[j] === "\\" ? 2 : 1;
    emitCode(source.slice(i, j + 1));
    i = j + 1;
    lastWord = "";
  };

  /** Copy template text from `i` (just after a backtick or a closing `}`) up to the end or `${`. */
  const copyTemplate = () => {
    let j = i;
    while (j < n) {
      if (source[j] === "\\") {
        j += 2;
        continue;
      }
      if (source[j] === "`") {
        out += source.slice(i, j + 1);
        i = j + 1;
        lastChar = "`";
        lastWord = "";
        return;
      }
      if (source[j] === "$" && source[j + 1] === "{") {
        out += source.slice(i, j + 2);
        i = j + 2;
        templateDepths.push(0);
        lastChar = "{";
        lastWord = "";
        pendingSpace = false;
        return;
      }
      j++;
    }
    out += source.slice(i);
    i = n;
  };

  while (i < n) {
    const c = source[i];
    const next = source[i + 1];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      pendingSpace = true;
      i++;
    } else if (c === "/" && next === "/") {
      while (i < n && source[i] !== "\n") i++;
      pendingSpace = true;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
      pendingSpace = true;
    } else if (c === '"' || c === "'") {
      copyQuoted(c);
    } else if (c === "`") {
      emitCode("`");
      i++;
      copyTemplate();
    } else if (c === "/") {
      const regex = lastChar === ""
        ? true
        : isWord(lastChar)
        ? REGEX_AFTER_WORD.has(lastWord)
        : !")]}`'\"".includes(lastChar);
      if (!regex) {
        emitCode("/");
        i++;
        lastWord = "";
        continue;
      }
      let j = i + 1, inClass = false;
      while (j < n && source[j] !== "\n") {
        const d = source[j];
        if (d === "\\") {
          j += 2;
          continue;
        }
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) break;
        j++;
      }
      j++;
      while (j < n && /[a-z]/.test(source[j])) j++; // flags
      emitCode(source.slice(i, j));
      i = j;
      lastWord = "";
    } else if (isWord(c)) {
      let j = i + 1;
      while (j < n && isWord(source[j])) j++;
      const word = source.slice(i, j);
      emitCode(word);
      lastWord = word;
      i = j;
    } else {
      if (templateDepths.length > 0 && (c === "{" || c === "}")) {
        const top = templateDepths.length - 1;
        if (c === "{") templateDepths[top]++;
        else if (templateDepths[top] > 0) templateDepths[top]--;
        else {
          templateDepths.pop();
          emitCode("}");
          i++;
          copyTemplate();
          continue;
        }
      }
      emitCode(c);
      lastWord = "";
      i++;
    }
  }
  return out;
}
