#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager from Go modules, once per version.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging
# modules (k8s.io/api, k8s.io/apiserver, ...) with local paths. So we build it
# from a scratch module that requires k8s.io/kubernetes vX.Y.Z and replaces
# every staging module with its published v0.Y.Z, as read from that version's
# own go.mod. Everything is fetched through the Go module proxy and verified
# against the checksum database.
#
# Binaries are cached outside the repository:
#   ${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}/kubernetes/<version>/
# The last line on stdout is that directory; progress goes to stderr.
#
# Environment:
#   BROKERFLOW_KUBE_VERSION  Kubernetes version to build (default below)
#   BROKERFLOW_TOOLS_DIR     cache root (default $HOME/.cache/brokerflow/tools)
#   GOFLAGS                  passed to go; -p=2 is added unless it sets -p
set -euo pipefail

KUBE_VERSION="${BROKERFLOW_KUBE_VERSION:-v1.34.10}"
TOOLS_DIR="${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}"
BIN_DIR="$TOOLS_DIR/kubernetes/$KUBE_VERSION"
BINARIES=(kube-apiserver kube-controller-manager)

log() { printf 'kube.sh: %s\n' "$*" >&2; }
die() { printf 'kube.sh: error: %s\n' "$*" >&2; exit 1; }

cached() {
  [[ -f "$BIN_DIR/.complete" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}

# Fast path: no go, no network, no lock.
if cached; then
  printf '%s\n' "$BIN_DIR"
  exit 0
fi

[[ "$KUBE_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] \
  || die "BROKERFLOW_KUBE_VERSION must look like v1.34.10, got '$KUBE_VERSION'"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

command -v go >/dev/null 2>&1 \
  || die "go is not on PATH; install Go >= 1.24 (https://go.dev/doc/install or apt-get install golang) and rerun"

mkdir -p "$TOOLS_DIR/kubernetes"

# One build at a time per version (parallel test runs may call this together).
LOCK="$TOOLS_DIR/kubernetes/.$KUBE_VERSION.lock"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$LOCK"
  if ! flock -n 9; then
    log "another build of $KUBE_VERSION is running; waiting for it"
    flock 9
  fi
  if cached; then
    printf '%s\n' "$BIN_DIR"
    exit 0
  fi
fi

# At most two packages compiled at once keeps memory use sane on small machines.
case " ${GOFLAGS:-} " in
  *" -p="*) ;;
  *) export GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=2" ;;
esac
export GO111MODULE=on
# Never build with a workspace or vendor dir that happens to be around.
export GOWORK=off

BUILD_DIR="$TOOLS_DIR/kubernetes/.build-$KUBE_VERSION"
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"

started=$(date +%s)
log "building Kubernetes $KUBE_VERSION (staging modules $STAGING_VERSION) in $BUILD_DIR"
log "the first build takes minutes (about 3.5 on 2 cores, 2 GB of memory); later runs use the cache"

log "downloading k8s.io/kubernetes@$KUBE_VERSION through the module proxy"
download_json=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION") \
  || die "go mod download k8s.io/kubernetes@$KUBE_VERSION failed: $download_json"
upstream_gomod=$(printf '%s\n' "$download_json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[[ -n "$upstream_gomod" && -f "$upstream_gomod" ]] \
  || die "could not find the go.mod of k8s.io/kubernetes@$KUBE_VERSION in: $download_json"

go_directive=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_gomod" | head -n1)
godebug_line=$(grep -E '^godebug ' "$upstream_gomod" | head -n1 || true)
# Lines such as "	k8s.io/api => ./staging/src/k8s.io/api"
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*$#\1#p' "$upstream_gomod")
(( ${#staging[@]} > 0 )) || die "no staging replace directives found in $upstream_gomod"
log "${#staging[@]} staging modules to pin at $STAGING_VERSION"

{
  printf 'module brokerflow.local/kubebuild\n\n'
  printf 'go %s\n\n' "${go_directive:-1.24.0}"
  [[ -n "$godebug_line" ]] && printf '%s\n\n' "$godebug_line"
  printf 'require k8s.io/kubernetes %s\n\n' "$KUBE_VERSION"
  printf 'replace (\n'
  for m in "${staging[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"; done
  printf ')\n'
} > go.mod

# A tools file so that `go mod tidy` resolves every package the commands need.
cat > tools.go <<'EOF'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
EOF

log "resolving dependencies (go mod tidy)"
go mod tidy >&2

# Version information as the upstream build sets it (hack/lib/version.sh). The build date is the
# release's publication time from the module proxy, so that rebuilding gives identical binaries.
upstream_info=$(printf '%s\n' "$download_json" | sed -n 's/^[[:space:]]*"Info": "\(.*\)",\{0,1\}$/\1/p')
build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$upstream_info" 2>/dev/null || true)
[[ -n "$build_date" ]] || build_date="1970-01-01T00:00:00Z"
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

out_dir="$BUILD_DIR/bin"
mkdir -p "$out_dir"
for b in "${BINARIES[@]}"; do
  log "go build $b"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out_dir/$b" "k8s.io/kubernetes/cmd/$b" >&2
done

"$out_dir/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"

# Publish atomically: move the finished directory into place.
rm -rf "$BIN_DIR"
mkdir -p "$BIN_DIR"
for b in "${BINARIES[@]}"; do mv "$out_dir/$b" "$BIN_DIR/$b"; done
cp go.mod go.sum "$BIN_DIR/"
elapsed=$(( $(date +%s) - started ))
printf 'version=%s\nstaging=%s\ngo=%s\nbuild_seconds=%s\nbuilt_at=%s\n' \
  "$KUBE_VERSION" "$STAGING_VERSION" "$(go env GOVERSION)" "$elapsed" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$BIN_DIR/.complete"
cd /
rm -rf "$BUILD_DIR"
log "built Kubernetes $KUBE_VERSION in ${elapsed}s"
printf '%s\n' "$BIN_DIR"
