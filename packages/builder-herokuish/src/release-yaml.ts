import { BerthError, validateConfigKey, validateProcessType } from "@berth/core";

/** What a buildpack's `bin/release` declares. */
export interface BuildpackRelease {
  defaultProcessTypes: Record<string, string>;
  configVars: Record<string, string>;
}

/**
 * Parses the YAML that `bin/release` prints. Buildpacks emit a small, fixed subset: top-level keys
 * (`addons`, `config_vars`, `default_process_types`) holding block mappings of scalars, `{}` / `[]`, and
 * `- item` lists. Scalars may be plain, 'single' or "double" quoted. Anything beyond that subset is rejected
 * with the line, rather than guessed at, so a release never carries a half-understood command.
 */
export function parseReleaseYaml(text: string, buildpack = "buildpack"): BuildpackRelease {
  const release: BuildpackRelease = { defaultProcessTypes: {}, configVars: {} };
  const fail = (lineNumber: number, why: string): never => {
    throw new BerthError("BUILD_FAILED", `bin/release of ${buildpack}, line ${lineNumber}: ${why}`, {
      details: { buildpack, line: lineNumber },
    });
  };
  let section: string | undefined;
  let sectionIndent = -1;
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((raw, position) => {
    const lineNumber = position + 1;
    // `--- {}` (an empty document) is what many buildpacks print when they declare nothing.
    const withoutComment = stripComment(raw).replace(/^---\s+(\{\s*\})?\s*$/, "");
    if (withoutComment.trim() === "" || /^(---|\.\.\.)\s*$/.test(withoutComment)) return;
    const indent = withoutComment.length - withoutComment.trimStart().length;
    const line = withoutComment.trim();
    if (raw.slice(0, indent).includes("\t")) fail(lineNumber, "tabs cannot indent YAML.");
    if (indent === 0 && line.startsWith("- ")) {
      // `key:` followed by an unindented `- item` list (addons); process types and config vars are never lists.
      if (section === "config_vars" || section === "default_process_types") {
        fail(lineNumber, `${section} must be a mapping, not a list.`);
      }
      return;
    }
    if (indent === 0) {
      const entry = splitEntry(line, lineNumber, fail);
      section = entry.key;
      sectionIndent = -1;
      const value = entry.value;
      if (value === "" || value === "{}" || value === "[]" || value === "~" || value === "null") return;
      if (section === "config_vars" || section === "default_process_types") {
        fail(lineNumber, `${section} must be a mapping of names to values.`);
      }
      return;
    }
    if (section === undefined) {
      fail(lineNumber, "indented line outside of any key.");
      return;
    }
    if (sectionIndent === -1) sectionIndent = indent;
    if (indent !== sectionIndent) fail(lineNumber, "nested values deeper than one level are not supported.");
    if (section !== "config_vars" && section !== "default_process_types") return;
    if (line.startsWith("- ")) fail(lineNumber, `${section} must be a mapping, not a list.`);
    const { key, value } = splitEntry(line, lineNumber, fail);
    const scalar = parseScalar(value, lineNumber, fail);
    if (section === "config_vars") {
      try {
        validateConfigKey(key);
      } catch (error) {
        fail(lineNumber, (error as Error).message);
      }
      release.configVars[key] = scalar;
    } else {
      try {
        validateProcessType(key);
      } catch (error) {
        fail(lineNumber, (error as Error).message);
      }
      if (scalar.trim() === "") fail(lineNumber, `process type ${key} has no command.`);
      if (scalar.includes("\n")) fail(lineNumber, `the command of ${key} spans several lines.`);
      release.defaultProcessTypes[key] = scalar;
    }
  });
  return release;
}

type Fail = (lineNumber: number, why: string) => never;

function splitEntry(line: string, lineNumber: number, fail: Fail): { key: string; value: string } {
  let key: string;
  let rest: string;
  if (line.startsWith('"') || line.startsWith("'")) {
    const end = closingQuote(line);
    if (end === -1) return fail(lineNumber, "unterminated quoted key.");
    key = parseScalar(line.slice(0, end + 1), lineNumber, fail);
    rest = line.slice(end + 1).trimStart();
    if (!rest.startsWith(":")) return fail(lineNumber, `expected "key: value", got ${JSON.stringify(line)}.`);
    rest = rest.slice(1);
  } else {
    const match = /^([^:]+?)\s*:(?:\s+|$)/.exec(line);
    if (!match?.[1]) return fail(lineNumber, `expected "key: value", got ${JSON.stringify(line)}.`);
    key = match[1];
    rest = line.slice(match[0].length);
  }
  return { key, value: rest.trim() };
}

function closingQuote(text: string): number {
  const quote = text[0];
  for (let index = 1; index < text.length; index += 1) {
    const character = text[index];
    if (quote === '"' && character === "\\") {
      index += 1;
      continue;
    }
    if (character === quote) {
      if (quote === "'" && text[index + 1] === "'") {
        index += 1;
        continue;
      }
      return index;
    }
  }
  return -1;
}

const DOUBLE_QUOTED_ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
};

function parseScalar(value: string, lineNumber: number, fail: Fail): string {
  if (value === "" || value === "~" || value === "null") return "";
  if (value.startsWith("'")) {
    if (closingQuote(value) !== value.length - 1)
      fail(lineNumber, "unterminated or trailing text after a quote.");
    return value.slice(1, -1).replace(/''/g, "'");
  }
  if (value.startsWith('"')) {
    if (closingQuote(value) !== value.length - 1)
      fail(lineNumber, "unterminated or trailing text after a quote.");
    return value.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)/g, (_match, escape: string) => {
      if (escape.length > 1) return String.fromCodePoint(Number.parseInt(escape.slice(1), 16));
      const replacement = DOUBLE_QUOTED_ESCAPES[escape];
      if (replacement === undefined) return fail(lineNumber, `unknown escape \\${escape}.`);
      return replacement;
    });
  }
  if (/^[|>]/.test(value)) fail(lineNumber, "block scalars (| and >) are not supported; quote the value.");
  if (/^[[{&*!%@`]/.test(value))
    fail(lineNumber, `unsupported YAML value ${JSON.stringify(value)}; quote it.`);
  return value;
}

/** Drops a ` #` comment outside quotes; `#` inside a plain scalar without a space before it stays. */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let index = 0; index < line.length; index += 1) {
    const character = line[index];
    if (quote) {
      if (quote === '"' && character === "\\") index += 1;
      else if (quote === "'" && character === "'" && line[index + 1] === "'") index += 1;
      else if (character === quote) quote = undefined;
      continue;
    }
    if ((character === '"' || character === "'") && (index === 0 || /[\s:]/.test(line[index - 1] ?? ""))) {
      quote = character;
    } else if (character === "#" && (index === 0 || /\s/.test(line[index - 1] ?? ""))) {
      return line.slice(0, index).trimEnd();
    }
  }
  return line;
}
