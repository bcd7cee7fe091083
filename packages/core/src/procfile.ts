import { BerthError } from "./errors.js";
import { validateProcessType } from "./validation.js";

/**
 * Parses a Procfile: `type: command` per line, the first `:` separates, `#` comments and blank lines are
 * ignored. Errors name the line.
 */
export function parseProcfile(text: string, file = "Procfile"): Record<string, string> {
  const processTypes: Record<string, string> = {};
  const seenOn = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((raw, position) => {
    const lineNumber = position + 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const separator = line.indexOf(":");
    const fail = (why: string): never => {
      throw new BerthError("PROCFILE_INVALID", `${file} line ${lineNumber}: ${why}`, {
        details: { file, line: lineNumber },
      });
    };
    if (separator === -1) fail(`expected "type: command", got ${JSON.stringify(line)}.`);
    const type = line.slice(0, separator).trim();
    const command = line.slice(separator + 1).trim();
    try {
      validateProcessType(type);
    } catch (error) {
      fail((error as Error).message);
    }
    if (command === "") fail(`process type ${type} has no command.`);
    const earlier = seenOn.get(type);
    if (earlier !== undefined) fail(`process type ${type} is already defined on line ${earlier}.`);
    seenOn.set(type, lineNumber);
    processTypes[type] = command;
  });
  return processTypes;
}
