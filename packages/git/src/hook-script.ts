/**
 * The pre-receive hook installed in every app repository. It holds no paths or secrets: the Berth process that
 * starts `git receive-pack` puts the socket, a one-push secret and the node binary in the environment, so a push
 * that did not come through Berth (someone pushing to the directory by hand) is refused instead of deployed.
 */
export const PRE_RECEIVE_HOOK = `#!/bin/sh
# Installed by @berth/git: hands this push to the Berth process that started git receive-pack.
if [ -z "$BERTH_HOOK_SOCKET" ] || [ -z "$BERTH_HOOK_TOKEN" ] || [ -z "$BERTH_HOOK_SCRIPT" ]; then
  echo "This repository accepts pushes only through Berth." >&2
  exit 1
fi
exec "$BERTH_NODE" "$BERTH_HOOK_SCRIPT"
`;

/**
 * The hook's client, run by node (CommonJS so that no package.json around the data dir changes how it loads).
 * It sends the ref updates and the quarantine environment over the Berth socket, copies the deploy output to
 * stderr as it arrives (receive-pack relays it to the pusher as `remote:` lines) and exits with the verdict.
 */
export const HOOK_CLIENT_SOURCE = `"use strict";
const net = require("node:net");
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const updates = input.split("\\n").filter(Boolean).map((line) => {
    const [oldRev, newRev, ref] = line.split(" ");
    return { oldRev, newRev, ref };
  });
  const env = {};
  for (const name of ["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"]) {
    if (process.env[name]) env[name] = process.env[name];
  }
  const socket = net.connect(process.env.BERTH_HOOK_SOCKET);
  let buffered = "";
  let exitCode;
  socket.setEncoding("utf8");
  socket.on("connect", () => {
    socket.write(JSON.stringify({ type: "hook", token: process.env.BERTH_HOOK_TOKEN, updates, env }) + "\\n");
  });
  socket.on("data", (chunk) => {
    buffered += chunk;
    let end;
    while ((end = buffered.indexOf("\\n")) !== -1) {
      const frame = JSON.parse(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      if (frame.type === "output") process.stderr.write(frame.text);
      if (frame.type === "exit") exitCode = frame.code;
    }
  });
  socket.on("error", (error) => {
    process.stderr.write("Berth is not answering (" + error.message + "); nothing was deployed.\\n");
    process.exit(1);
  });
  socket.on("close", () => {
    if (exitCode === undefined) process.stderr.write("Berth closed the connection; nothing was deployed.\\n");
    process.exitCode = exitCode === undefined ? 1 : exitCode;
  });
});
`;
