import { describe, expect, it } from "vitest";
import { isSlugIgnored, parseSlugIgnore } from "./slug.js";

describe(".slugignore", () => {
  const ignore = parseSlugIgnore("# docs\n*.psd\n/tmp\nspec/\ndocs/**/*.pdf\n\n!keep.psd\n");

  it("matches globs anywhere, anchored paths at the root and directory-only patterns", () => {
    expect(isSlugIgnored(ignore, "art/logo.psd", false)).toBe(true);
    expect(isSlugIgnored(ignore, "tmp", true)).toBe(true);
    expect(isSlugIgnored(ignore, "tmp/cache/file", false)).toBe(true);
    expect(isSlugIgnored(ignore, "lib/tmp", true)).toBe(false);
    expect(isSlugIgnored(ignore, "spec", true)).toBe(true);
    expect(isSlugIgnored(ignore, "spec/models/user_spec.rb", false)).toBe(true);
    expect(isSlugIgnored(ignore, "spec", false)).toBe(false);
    expect(isSlugIgnored(ignore, "docs/a/b/guide.pdf", false)).toBe(true);
    expect(isSlugIgnored(ignore, "docs/guide.pdf", false)).toBe(true);
    expect(isSlugIgnored(ignore, "app.rb", false)).toBe(false);
  });

  it("has no negation, as on Heroku", () => {
    expect(isSlugIgnored(ignore, "keep.psd", false)).toBe(true);
  });
});
