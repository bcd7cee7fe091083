import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Builds a small image from a Dockerfile given as text (no context), through the docker CLI. */
export async function buildImage(tag: string, dockerfile: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile("docker", ["build", "-q", "-t", tag, "-"], (error) =>
      error ? reject(error) : resolve(),
    );
    child.stdin?.end(dockerfile);
  });
}

export async function removeImage(tag: string): Promise<void> {
  await run("docker", ["image", "rm", "-f", tag]).catch(() => undefined);
}

/** The Procfile commands the tests run inside `berth/busybox`. */
export const commands = {
  web: 'mkdir -p /tmp/www && printf "%s" "$BODY" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www',
  worker: "exec sleep 100000",
  failing: "exit 1",
};

export const testImageDockerfile = `FROM berth/busybox:latest
CMD ["sh", "-c", "echo image-default; exec sleep 100000"]
`;
