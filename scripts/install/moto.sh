#!/usr/bin/env bash
# Prints the path of a `moto_server` binary (last line of stdout): a local AWS API (S3, Cloud Map) for tests.
# Installed into its own virtualenv in the tools cache, version pinned.
set -euo pipefail
VERSION="5.2.5"
TOOLS="${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}"
target="$TOOLS/moto/$VERSION"
if [ -x "$target/bin/moto_server" ]; then echo "$target/bin/moto_server"; exit 0; fi
echo "installing moto[server] $VERSION into $target" >&2
mkdir -p "$TOOLS/moto"
tmp="$(mktemp -d "$TOOLS/moto/.tmp.XXXXXX")"
python3 -m venv "$tmp" >&2 || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
"$tmp/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$VERSION" >&2
rm -rf "$target"; mv "$tmp" "$target"
# A virtualenv records its own path; recreate the launchers after the move.
python3 -m venv --upgrade "$target" >&2
sed -i "1s|.*|#!$target/bin/python3|" "$target/bin/moto_server"
echo "$target/bin/moto_server"
