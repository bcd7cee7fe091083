/**
 * The little of a Dockerfile the builder reads itself, before and after the engine does: which base images
 * it starts from, and the order of its EXPOSE words. Not a full parser: parser directives, continuations
 * and comments are handled; anything with a variable is left to the engine.
 */

export interface Instruction {
  /** Upper-cased: `FROM`, `EXPOSE`. */
  keyword: string;
  words: string[];
}

export function parseInstructions(dockerfile: string): Instruction[] {
  const lines = dockerfile.replace(/\r\n?/g, "\n").split("\n");
  let escape = "\\";
  for (const line of lines) {
    const directive = /^#\s*([a-z]+)\s*=\s*(\S+)\s*$/i.exec(line.trim());
    if (!directive) break;
    if (directive[1]?.toLowerCase() === "escape" && (directive[2] === "`" || directive[2] === "\\")) {
      escape = directive[2];
    }
  }
  const logical: string[] = [];
  let pending = "";
  for (const raw of lines) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) continue;
    // Blank lines inside a continuation are skipped, as the engine's parser does.
    if (pending && line.trim() === "") continue;
    if (line.endsWith(escape)) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(pending + line);
    pending = "";
  }
  if (pending) logical.push(pending);
  return logical
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .map((line) => {
      const [keyword = "", ...words] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), words };
    });
}

/**
 * The words of every EXPOSE of the last stage, in order. The engine keeps exposed ports as a map and sorts
 * the words of each EXPOSE in the history, so the order a user wrote lives only here.
 */
export function exposeWords(instructions: Instruction[]): string[] {
  let words: string[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") words = [];
    else if (instruction.keyword === "EXPOSE") {
      words.push(...instruction.words.filter((word) => !word.includes("$")));
    }
  }
  return words;
}

/** Images the stages start from: not `scratch`, not an earlier stage, not one named through a variable. */
export function baseImages(instructions: Instruction[]): string[] {
  const stages = new Set<string>();
  const images: string[] = [];
  for (const { keyword, words } of instructions) {
    if (keyword !== "FROM") continue;
    const [image, as, stage] = words.filter((word) => !word.startsWith("--"));
    if (image === undefined) continue;
    const fromImage =
      !image.includes("$") && image.toLowerCase() !== "scratch" && !stages.has(image.toLowerCase());
    if (fromImage && !images.includes(image)) images.push(image);
    // Only later stages can refer to this one by name.
    if (as?.toUpperCase() === "AS" && stage) stages.add(stage.toLowerCase());
  }
  return images;
}
