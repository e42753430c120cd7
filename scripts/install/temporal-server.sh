#!/usr/bin/env bash
# Build the Temporal server (`temporal-server`) and its SQL schema tool (`temporal-sql-tool`) from Go modules,
# once per version: the shape users run in production (separate frontend/history/matching/worker services on a
# SQL database), as opposed to the single-process dev server the Temporal CLI embeds.
#
# go.temporal.io/server has no replace directives, so its commands build with `go install module@version`;
# everything is fetched through the Go module proxy and verified against the checksum database.
#
# Binaries are cached outside the repository:
#   ${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}/temporal-server/<version>/
# Output (stdout), one `key=value` per line, the last line being the directory:
#   bin=<dir>/temporal-server
#   sql_tool=<dir>/temporal-sql-tool
#   schema=<module source>/schema         (the SQL schema files the tool applies, from the module cache)
#   <dir>
# Progress goes to stderr.
#
# Environment:
#   BROKERFLOW_TEMPORAL_SERVER_VERSION  server version to build (default below)
#   BROKERFLOW_TOOLS_DIR                cache root (default $HOME/.cache/brokerflow/tools)
#   GOFLAGS                             passed to go; -p=2 is added unless it sets -p
set -euo pipefail

# v1.30.8 is the newest release whose go.mod asks for a Go the 1.26 toolchain satisfies without downloading
# another toolchain (go 1.25.14); later 1.30.x/1.31.x ask for go 1.26.10.
VERSION="${BROKERFLOW_TEMPORAL_SERVER_VERSION:-v1.30.8}"
TOOLS_DIR="${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}"
BIN_DIR="$TOOLS_DIR/temporal-server/$VERSION"
MODULE="go.temporal.io/server"

log() { printf 'temporal-server.sh: %s\n' "$*" >&2; }
die() { printf 'temporal-server.sh: error: %s\n' "$*" >&2; exit 1; }

[[ "$VERSION" =~ ^v1\.[0-9]+\.[0-9]+$ ]] \
  || die "BROKERFLOW_TEMPORAL_SERVER_VERSION must look like v1.30.8, got '$VERSION'"

cached() {
  [[ -f "$BIN_DIR/.complete" && -x "$BIN_DIR/temporal-server" && -x "$BIN_DIR/temporal-sql-tool" ]] || return 1
  local schema
  schema=$(sed -n 's/^schema=//p' "$BIN_DIR/.complete")
  [[ -n "$schema" && -f "$schema/postgresql/v12/temporal/schema.sql" ]]
}

print_paths() {
  printf 'bin=%s\n' "$BIN_DIR/temporal-server"
  printf 'sql_tool=%s\n' "$BIN_DIR/temporal-sql-tool"
  printf 'schema=%s\n' "$(sed -n 's/^schema=//p' "$BIN_DIR/.complete")"
  printf '%s\n' "$BIN_DIR"
}

# Fast path: no go, no network, no lock.
if cached; then print_paths; exit 0; fi

command -v go >/dev/null 2>&1 \
  || die "go is not on PATH; install Go >= 1.25 (https://go.dev/doc/install or apt-get install golang) and rerun"

mkdir -p "$TOOLS_DIR/temporal-server"

# One build at a time per version (parallel test runs may call this together).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS_DIR/temporal-server/.$VERSION.lock"
  if ! flock -n 9; then
    log "another build of $VERSION is running; waiting for it"
    flock 9
  fi
  if cached; then print_paths; exit 0; fi
fi

case " ${GOFLAGS:-} " in
  *" -p="*) ;;
  *) export GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=2" ;;
esac
export GO111MODULE=on GOWORK=off CGO_ENABLED=0

started=$(date +%s)
log "building the Temporal server $VERSION (first build takes many minutes on 2 cores; later runs use the cache)"

# The module source in the module cache holds the schema files (schema/postgresql/v12/{temporal,visibility}).
download_json=$(cd / && go mod download -json "$MODULE@$VERSION") \
  || die "go mod download $MODULE@$VERSION failed: $download_json"
module_dir=$(printf '%s\n' "$download_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[[ -n "$module_dir" && -f "$module_dir/schema/postgresql/v12/temporal/schema.sql" ]] \
  || die "no PostgreSQL schema found in the module source of $MODULE@$VERSION: $download_json"

build_dir="$TOOLS_DIR/temporal-server/.build-$VERSION"
rm -rf "$build_dir"
mkdir -p "$build_dir"
# The server reports its version from a constant in the module, so no -X flags are needed.
log "go install $MODULE/cmd/server and $MODULE/cmd/tools/sql"
(cd / && GOBIN="$build_dir" go install -trimpath -ldflags "-s -w" \
  "$MODULE/cmd/server@$VERSION" "$MODULE/cmd/tools/sql@$VERSION") >&2
[[ -x "$build_dir/server" && -x "$build_dir/sql" ]] || die "go install did not produce server and sql in $build_dir"
mv "$build_dir/server" "$build_dir/temporal-server"
mv "$build_dir/sql" "$build_dir/temporal-sql-tool"
"$build_dir/temporal-server" --version >&2 || die "the built temporal-server does not run"

# Publish: move the finished binaries into place, then mark the directory complete.
rm -rf "$BIN_DIR"
mkdir -p "$BIN_DIR"
mv "$build_dir/temporal-server" "$build_dir/temporal-sql-tool" "$BIN_DIR/"
rm -rf "$build_dir"
elapsed=$(( $(date +%s) - started ))
printf 'version=%s\ngo=%s\nschema=%s\nbuild_seconds=%s\nbuilt_at=%s\n' \
  "$VERSION" "$(go env GOVERSION)" "$module_dir/schema" "$elapsed" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$BIN_DIR/.complete"
log "built the Temporal server $VERSION in ${elapsed}s"
print_paths
