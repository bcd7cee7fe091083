#!/usr/bin/env bash
# Writes the page from the environment it was started with, then serves it on $PORT.
set -euo pipefail
printf 'greeting=%s dir=%s user=%s vendor=%s\n' "${GREETING:-unset}" "$(basename "$PWD")" "$(id -un)" "${VENDOR_HOME:-none}" > index.html
echo "serving on $PORT"
exec httpd -f -p "$PORT" -h .
