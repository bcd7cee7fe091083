import { spawn } from "node:child_process";
import { connect } from "node:net";
import { onFrames, sendFrame } from "./frames.js";
import { gitEnvironment } from "./run-git.js";

/**
 * `berth-git-shell --socket PATH KEYNAME`: the forced command of an `authorized_keys` line (see
 * `authorizedKeysLine`). It relays SSH_ORIGINAL_COMMAND to the Berth process, which authorises the key and
 * answers either "run git receive-pack/upload-pack on this repository" or a Berth command's output.
 */
export function runShell(argv: string[], env: NodeJS.ProcessEnv): void {
  const usage = () => {
    process.stderr.write(
      "usage: berth-git-shell --socket PATH KEYNAME (as an authorized_keys forced command)\n",
    );
    process.exit(2);
  };
  const socketIndex = argv.indexOf("--socket");
  const socketPath = socketIndex === -1 ? undefined : argv[socketIndex + 1];
  const rest = argv.filter((_argument, index) => index !== socketIndex && index !== socketIndex + 1);
  const keyName = rest[0];
  if (!socketPath || !keyName || rest.length !== 1) {
    usage();
    return;
  }
  const command = env.SSH_ORIGINAL_COMMAND ?? "";
  const socket = connect(socketPath);
  let exitCode: number | undefined;
  socket.on("connect", () => sendFrame(socket, { type: "shell", key: keyName, command }));
  socket.on("error", (error) => {
    process.stderr.write(`Berth is not answering (${error.message}).\n`);
    process.exit(1);
  });
  onFrames(
    socket,
    (frame) => {
      if (frame.type === "stdout" && typeof frame.data === "string")
        process.stdout.write(Buffer.from(frame.data, "base64"));
      else if (frame.type === "stderr" && typeof frame.data === "string")
        process.stderr.write(Buffer.from(frame.data, "base64"));
      else if (frame.type === "exit") exitCode = Number(frame.code);
      else if (frame.type === "command") {
        process.stdin.on("data", (chunk: Buffer) =>
          sendFrame(socket, { type: "stdin", data: chunk.toString("base64") }),
        );
        process.stdin.on("end", () => sendFrame(socket, { type: "stdin-end" }));
      } else if (frame.type === "spawn") {
        const service = frame.service === "upload-pack" ? "upload-pack" : "receive-pack";
        const child = spawn("git", [service, String(frame.repoDir)], {
          env: gitEnvironment(frame.env as Record<string, string>),
          stdio: "inherit",
        });
        child.on("close", (code) => {
          sendFrame(socket, { type: "done" });
          socket.end();
          process.exitCode = code ?? 1;
        });
      }
    },
    () => {
      process.stderr.write("Berth sent something this shell does not understand.\n");
      process.exit(1);
    },
  );
  socket.on("close", () => {
    if (exitCode !== undefined) process.exit(exitCode);
  });
}
