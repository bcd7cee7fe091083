import { isBerthError } from "@berth/core";
import { describe, expect, it } from "vitest";
import { buildpackName, parseBuildpackReference, parseBuildpacksFile } from "./buildpacks.js";

describe("buildpack references", () => {
  it("parses git URLs with refs, tarballs and directories", () => {
    expect(
      parseBuildpackReference("https://github.com/heroku/heroku-buildpack-nodejs.git#v250"),
    ).toMatchObject({
      url: "https://github.com/heroku/heroku-buildpack-nodejs.git",
      ref: "v250",
      kind: "git",
    });
    expect(parseBuildpackReference("file:///srv/buildpacks/static#main")).toMatchObject({
      kind: "git",
      ref: "main",
    });
    expect(parseBuildpackReference("git@github.com:org/pack.git")).toMatchObject({
      kind: "git",
      ref: undefined,
    });
    expect(parseBuildpackReference("https://example.com/packs/static.tgz")).toMatchObject({
      kind: "tarball",
    });
    expect(parseBuildpackReference("/srv/buildpacks/static")).toMatchObject({ kind: "directory" });
    expect(
      buildpackName(parseBuildpackReference("https://github.com/heroku/heroku-buildpack-nodejs.git#v250")),
    ).toBe("heroku-buildpack-nodejs");
    expect(buildpackName(parseBuildpackReference("git@github.com:org/pack.git"))).toBe("pack");
  });

  it("rejects what could reach git as an option or is not a URL", () => {
    for (const text of [
      "--upload-pack=touch /tmp/pwned",
      "https://example.com/x.git#--force",
      "https://example.com/x.git#a..b",
      "relative/dir",
      "heroku/nodejs",
      "ext::sh -c touch% /tmp/pwned",
      "https://example.com/x.tgz#v1",
      "",
    ]) {
      let failure: unknown;
      try {
        parseBuildpackReference(text);
      } catch (error) {
        failure = error;
      }
      expect(isBerthError(failure, "INVALID_SETTING"), text).toBe(true);
    }
  });

  it("reads .buildpacks files, skipping comments and blank lines", () => {
    const references = parseBuildpacksFile(
      "# first the deps\nhttps://example.com/vendor.git#v1\n\n  /srv/buildpacks/static  \n",
    );
    expect(references.map((reference) => reference.text)).toEqual([
      "https://example.com/vendor.git#v1",
      "/srv/buildpacks/static",
    ]);
  });
});
