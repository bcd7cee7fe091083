import { readFile } from "node:fs/promises";
import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base.ts";

/**
 * @berth/git's dist imports named exports from the CommonJS `ssh2` (`import { Server } from "ssh2"`), which
 * Node's ESM loader refuses (vitest does not notice). Until that package imports ssh2's default export, the
 * CLI bundles @berth/git and rewrites those imports so `berth daemon` runs under plain Node. A no-op once fixed.
 */
const ssh2DefaultImport = {
  name: "ssh2-default-import",
  setup(build: {
    onLoad: (
      options: { filter: RegExp },
      callback: (args: { path: string }) => Promise<{ contents: string; loader: "js" }>,
    ) => void;
  }) {
    build.onLoad({ filter: /packages[\\/]git[\\/]dist[\\/].*\.js$/ }, async (args) => {
      let counter = 0;
      const contents = (await readFile(args.path, "utf8")).replace(
        /^import \{([^}]*)\} from "ssh2";$/gm,
        (_line, names: string) => {
          counter += 1;
          const local = `ssh2Default${counter}`;
          return `import ${local} from "ssh2";\nconst {${names.replaceAll(" as ", ": ")}} = ${local};`;
        },
      );
      return { contents, loader: "js" };
    });
  },
};

export default defineConfig(
  packageBuild({
    entry: { index: "src/index.ts", bin: "src/bin.ts" },
    // Separate chunks keep the daemon and the Docker client out of the CLI's start-up.
    splitting: true,
    noExternal: ["@berth/git"],
    external: ["ssh2", "simple-git"],
    esbuildPlugins: [ssh2DefaultImport],
  }),
);
