#!/usr/bin/env bash
# Prints the path of a Chromium binary (last line of stdout) for the Web UI browser test, installing Debian's
# `chromium` package if none is found. Playwright drives it through `executablePath`; no browser is downloaded
# from anywhere but the distribution's archive.
set -euo pipefail
if [ -n "${CHROMIUM_BIN:-}" ]; then
  [ -x "$CHROMIUM_BIN" ] || { echo "CHROMIUM_BIN=$CHROMIUM_BIN is not an executable file" >&2; exit 1; }
  echo "$CHROMIUM_BIN"; exit 0
fi
for candidate in chromium chromium-browser; do
  if command -v "$candidate" >/dev/null 2>&1; then command -v "$candidate"; exit 0; fi
done
if [ -x /usr/bin/chromium ]; then echo /usr/bin/chromium; exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "no chromium found and no apt-get: install Chromium and put it on PATH, or set CHROMIUM_BIN" >&2; exit 1; }
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing Debian's chromium" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2
command -v chromium
