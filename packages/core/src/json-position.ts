/**
 * Where a JSON text stops being valid, as an offset: Node 20's `JSON.parse` errors often carry no position,
 * and users need the line of their mistake. A small validating scanner, run only after `JSON.parse` failed.
 */
export function jsonErrorOffset(text: string): number {
  let position = 0;
  const fail = (): never => {
    throw position;
  };
  const space = () => {
    while (position < text.length && " \t\n\r".includes(text[position] as string)) position += 1;
  };
  const literal = (word: string) => {
    if (text.startsWith(word, position)) position += word.length;
    else fail();
  };
  const string = () => {
    position += 1;
    while (position < text.length) {
      const character = text[position] as string;
      if (character === '"') {
        position += 1;
        return;
      }
      if (character < " ") fail();
      if (character === "\\") {
        position += 1;
        const escape = text[position];
        if (escape === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(position + 1, position + 5))) fail();
          position += 4;
        } else if (escape === undefined || !'"\\/bfnrt'.includes(escape)) fail();
      }
      position += 1;
    }
    fail();
  };
  const number = () => {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(position));
    if (!match || match[0] === "" || match[0] === "-") fail();
    position += (match as RegExpExecArray)[0].length;
  };
  const value = (): void => {
    space();
    const character = text[position];
    if (character === "{") {
      position += 1;
      space();
      if (text[position] === "}") {
        position += 1;
        return;
      }
      for (;;) {
        space();
        if (text[position] !== '"') fail();
        string();
        space();
        if (text[position] !== ":") fail();
        position += 1;
        value();
        space();
        if (text[position] === ",") {
          position += 1;
          continue;
        }
        if (text[position] === "}") {
          position += 1;
          return;
        }
        fail();
      }
    }
    if (character === "[") {
      position += 1;
      space();
      if (text[position] === "]") {
        position += 1;
        return;
      }
      for (;;) {
        value();
        space();
        if (text[position] === ",") {
          position += 1;
          continue;
        }
        if (text[position] === "]") {
          position += 1;
          return;
        }
        fail();
      }
    }
    if (character === '"') string();
    else if (character === "t") literal("true");
    else if (character === "f") literal("false");
    else if (character === "n") literal("null");
    else number();
  };
  try {
    value();
    space();
    if (position < text.length) fail();
  } catch (offset) {
    if (typeof offset === "number") return offset;
    throw offset;
  }
  return position;
}
