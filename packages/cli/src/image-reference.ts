import { BerthError } from "@berth/core";

/** Image references as Docker prints them; anything else never reaches the engine. */
const IMAGE_REFERENCE =
  /^[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

export function validateImageReference(image: unknown): string {
  if (typeof image !== "string" || !IMAGE_REFERENCE.test(image) || image.includes("..")) {
    throw new BerthError(
      "INVALID_SOURCE",
      `Invalid image reference ${JSON.stringify(String(image).slice(0, 80))}: use name[:tag], e.g. myorg/web:1.2.`,
      { details: { value: image } },
    );
  }
  return image;
}
