import { lstat, mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";

const SHARED_MEMORY = "/dev/shm";

/**
 * Where sources are extracted, best first. Writing a thousand small files to a journaled disk costs about as
 * much as the push itself, so a tmpfs is tried first when the machine has one; the disk directory under the
 * data dir is the fallback when the tmpfs is missing or full.
 */
export async function sourceWorkDirs(diskDir: string): Promise<string[]> {
  const memory = await privateSharedMemoryDir();
  return memory ? [memory, diskDir] : [diskDir];
}

/**
 * `/dev/shm/berth-git-<uid>`, mode 0700 and owned by us. /dev/shm is writable by every local user, so a
 * directory someone else made (or a symlink they planted) is never used.
 */
async function privateSharedMemoryDir(): Promise<string | undefined> {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  const shared = await stat(SHARED_MEMORY).catch(() => undefined);
  if (!shared?.isDirectory()) return undefined;
  const dir = join(SHARED_MEMORY, `berth-git-${uid}`);
  await mkdir(dir, { mode: 0o700 }).catch(() => undefined);
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory() || info.uid !== uid || (info.mode & 0o077) !== 0) return undefined;
  return dir;
}

/** Whether an extraction failed because its file system is full (then the next work dir is tried). */
export function isNoSpace(error: unknown): boolean {
  const text =
    error instanceof Error ? `${(error as NodeJS.ErrnoException).code ?? ""} ${error.message}` : "";
  return /ENOSPC|No space left on device/.test(text);
}

/** Sources older than this were left by a process that died mid-deploy; no build runs that long. */
const LEFTOVER_AGE_MS = 6 * 60 * 60 * 1000;

/**
 * Removes sources that a crashed or killed Berth process left behind (on a tmpfs they would hold memory until
 * the next reboot). Only Berth's own entry names, and only old ones: another live process may share the dir.
 */
export async function removeLeftovers(workDirs: string[], now = Date.now()): Promise<void> {
  for (const dir of workDirs) {
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const entry of entries) {
      if (!/^berth-(source|submodule)-[A-Za-z0-9]{6}$/.test(entry)) continue;
      const path = join(dir, entry);
      const info = await lstat(path).catch(() => undefined);
      if (info?.isDirectory() && now - info.mtimeMs > LEFTOVER_AGE_MS) {
        await rm(path, { recursive: true, force: true }).catch(() => undefined);
      }
    }
  }
}
