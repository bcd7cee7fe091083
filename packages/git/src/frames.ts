import type { Socket } from "node:net";

/** Largest frame accepted on the Berth socket; ref update lists and output chunks are far smaller. */
const MAX_FRAME = 4 * 1024 * 1024;

export type Frame = { type: string } & Record<string, unknown>;

/** Newline-delimited JSON frames on a socket: the Berth socket's whole protocol. */
export function onFrames(socket: Socket, onFrame: (frame: Frame) => void, onInvalid: () => void): void {
  let buffered = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buffered += chunk;
    if (buffered.length > MAX_FRAME) {
      onInvalid();
      return;
    }
    let end = buffered.indexOf("\n");
    while (end !== -1) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      let frame: unknown;
      try {
        frame = JSON.parse(line);
      } catch {
        onInvalid();
        return;
      }
      if (typeof frame !== "object" || frame === null || typeof (frame as Frame).type !== "string") {
        onInvalid();
        return;
      }
      onFrame(frame as Frame);
      end = buffered.indexOf("\n");
    }
  });
}

export function sendFrame(socket: Socket, frame: Frame): void {
  if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(frame)}\n`);
}
