/**
 * Facts a release needs from a built image: the ports it EXPOSEs, in the order the Dockerfile declares
 * them, and its default command, rendered for display.
 */

const EXPOSE_IN_HISTORY = /#\(nop\)\s+EXPOSE\s+(.*)$/;
const PORT_WORD = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i;

function portsOfWords(words: string[]): number[] {
  const ports: number[] = [];
  for (const word of words) {
    const match = PORT_WORD.exec(word);
    if (!match || (match[3] ?? "tcp").toLowerCase() !== "tcp") continue;
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    for (let port = first; port <= last && port - first < 65536; port += 1) ports.push(port);
  }
  return ports;
}

/**
 * TCP ports of the image config, the first being the web port. The engine reports them as a map, so the
 * order comes from the Dockerfile's own EXPOSE lines, then the image history (base images, oldest
 * first), then numbers for anything neither explains.
 */
export function exposedPorts(
  exposed: Record<string, unknown> | null | undefined,
  historyOldestFirst: Array<{ CreatedBy?: string }>,
  dockerfileWords: string[] = [],
): number[] {
  const declared = new Set<number>();
  for (const key of Object.keys(exposed ?? {})) {
    const [port, protocol = "tcp"] = key.split("/");
    const number = Number(port);
    if (protocol === "tcp" && Number.isInteger(number) && number >= 1 && number <= 65535)
      declared.add(number);
  }
  const ordered: number[] = [];
  const add = (port: number) => {
    if (declared.has(port) && !ordered.includes(port)) ordered.push(port);
  };
  for (const port of portsOfWords(dockerfileWords)) add(port);
  for (const entry of historyOldestFirst) {
    const words =
      EXPOSE_IN_HISTORY.exec(entry.CreatedBy ?? "")?.[1]
        ?.trim()
        .split(/\s+/) ?? [];
    for (const port of portsOfWords(words)) add(port);
  }
  // Ports nothing explains (a squashed or imported base image) follow, numerically.
  for (const port of [...declared].sort((left, right) => left - right)) add(port);
  return ordered;
}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one word for a POSIX shell: as is when safe, otherwise in single quotes. */
export function shellQuote(word: string): string {
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function words(value: string | string[] | null | undefined): string[] {
  if (value === null || value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * The image's default command as one shell line, for `ps` listings and release process types:
 * ENTRYPOINT then CMD, each word quoted; a shell-form command shows as the text the user wrote.
 * Undefined when the image has neither.
 */
export function renderDefaultCommand(
  entrypoint: string | string[] | null | undefined,
  command: string | string[] | null | undefined,
): string | undefined {
  const all = [...words(entrypoint), ...words(command)];
  if (all.length === 0) return undefined;
  if (all.length === 3 && (all[0] === "/bin/sh" || all[0] === "sh") && all[1] === "-c") return all[2];
  return all.map(shellQuote).join(" ");
}
