import { appendFile, chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BerthError, validateAppName, validateBranchName } from "@berth/core";
import { PRE_RECEIVE_HOOK } from "./hook-script.js";
import { runGit } from "./run-git.js";

export const ZERO_REV = "0000000000000000000000000000000000000000";

/** One bare repository per app, `<root>/<app>.git`, each with Berth's pre-receive hook. */
export class Repositories {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** The repository directory of an app; the name is validated, so the path never leaves the root. */
  path(app: string): string {
    return join(this.root, `${validateAppName(app)}.git`);
  }

  async exists(app: string): Promise<boolean> {
    const info = await stat(join(this.path(app), "HEAD")).catch(() => undefined);
    return info?.isFile() === true;
  }

  /** Creates the bare repository when missing and (re)installs the hook; returns its directory. */
  async ensure(app: string, defaultBranch = "main"): Promise<string> {
    const directory = this.path(app);
    validateBranchName(defaultBranch);
    if (!(await this.exists(app))) {
      await mkdir(this.root, { recursive: true });
      // Built next to the final path and renamed into place, so a crash never leaves half a repository.
      const building = `${directory}.creating-${process.pid}-${Date.now().toString(36)}`;
      await runGit([
        "init",
        "--quiet",
        "--bare",
        "--template=",
        `--initial-branch=${defaultBranch}`,
        building,
      ]);
      // Constant settings, appended directly rather than with one `git config` process each: force pushes
      // deploy, the deploy branch's deletion is judged by Berth, and clones may be partial.
      await appendFile(
        join(building, "config"),
        "[receive]\n\tdenyNonFastForwards = false\n\tdenyDeleteCurrent = false\n[uploadpack]\n\tallowFilter = true\n",
      );
      await this.#installHook(building);
      try {
        await rename(building, directory);
      } catch (error) {
        await rm(building, { recursive: true, force: true });
        // Another push created it in the meantime: theirs is as good as ours.
        if (!(await this.exists(app))) throw error;
      }
      return directory;
    }
    await this.#installHook(directory);
    return directory;
  }

  async #installHook(directory: string): Promise<void> {
    const hooks = join(directory, "hooks");
    await mkdir(hooks, { recursive: true });
    const hook = join(hooks, "pre-receive");
    await writeFile(hook, PRE_RECEIVE_HOOK, { mode: 0o755 });
    await chmod(hook, 0o755);
  }

  async remove(app: string): Promise<void> {
    await rm(this.path(app), { recursive: true, force: true });
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.path(from);
    const target = this.path(to);
    if (!(await this.exists(from))) return;
    if (await this.exists(to)) {
      throw new BerthError(
        "APP_EXISTS",
        `A repository for ${to} already exists; remove it before renaming ${from}.`,
      );
    }
    await rename(source, target);
  }

  /** `refs/heads/main` → commit id, for every ref of the repository. */
  async refs(app: string): Promise<Map<string, string>> {
    const { stdout } = await runGit(["for-each-ref", "--format=%(objectname) %(refname)"], {
      cwd: this.path(app),
    });
    const refs = new Map<string, string>();
    for (const line of stdout.split("\n")) {
      const space = line.indexOf(" ");
      if (space > 0) refs.set(line.slice(space + 1), line.slice(0, space));
    }
    return refs;
  }

  /** Points HEAD at the deploy branch so that a clone checks it out. */
  async setHead(app: string, branch: string): Promise<void> {
    validateBranchName(branch);
    const head = await readFile(join(this.path(app), "HEAD"), "utf8").catch(() => "");
    if (head.trim() === `ref: refs/heads/${branch}`) return;
    await runGit(["symbolic-ref", "HEAD", `refs/heads/${branch}`], { cwd: this.path(app) });
  }
}
