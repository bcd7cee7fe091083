/**
 * `.slugignore`: Heroku's list of paths left out of the slug. One pattern per line, `#` comments and blank
 * lines ignored, gitignore-style globs (`*`, `?`, `**`, a leading `/` anchors to the app root, a trailing `/`
 * matches directories only); unlike `.gitignore`, there is no `!` negation.
 */
export type SlugIgnore = (path: string, isDirectory: boolean) => boolean;

export function parseSlugIgnore(text: string): SlugIgnore {
  const rules: Array<{ pattern: RegExp; directoryOnly: boolean }> = [];
  for (const raw of text.replace(/^\uFEFF/, "").split(/\r?\n/)) {
    let line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const directoryOnly = line.endsWith("/");
    if (directoryOnly) line = line.replace(/\/+$/, "");
    const anchored = line.startsWith("/") || line.slice(0, -1).includes("/");
    line = line.replace(/^\/+/, "");
    if (line === "") continue;
    const body = globToRegExp(line);
    rules.push({ pattern: new RegExp(anchored ? `^${body}$` : `(^|/)${body}$`), directoryOnly });
  }
  return (path, isDirectory) => {
    const relative = path.replace(/^\.?\/+/, "").replace(/\/+$/, "");
    return rules.some((rule) => (!rule.directoryOnly || isDirectory) && rule.pattern.test(relative));
  };
}

function globToRegExp(glob: string): string {
  let expression = "";
  for (let index = 0; index < glob.length; index += 1) {
    const character = glob[index] ?? "";
    if (character === "*") {
      if (glob[index + 1] === "*") {
        index += 1;
        if (glob[index + 1] === "/") {
          index += 1;
          expression += "(?:.*/)?";
        } else {
          expression += ".*";
        }
      } else {
        expression += "[^/]*";
      }
    } else if (character === "?") {
      expression += "[^/]";
    } else {
      expression += character.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  return expression;
}

/** True when `path` or one of its parent directories is ignored (a path under an ignored directory is gone too). */
export function isSlugIgnored(ignore: SlugIgnore, path: string, isDirectory: boolean): boolean {
  const parts = path
    .replace(/^\.?\/+/, "")
    .split("/")
    .filter(Boolean);
  for (let depth = 1; depth <= parts.length; depth += 1) {
    const prefix = parts.slice(0, depth).join("/");
    if (ignore(prefix, depth < parts.length || isDirectory)) return true;
  }
  return false;
}
