#!/usr/bin/env bash
# Prints the path of an etcd server binary (last line of stdout), installing Debian's etcd-server if none is found.
set -euo pipefail
if [ -n "${ETCD_BIN:-}" ]; then
  [ -x "$ETCD_BIN" ] || { echo "ETCD_BIN=$ETCD_BIN is not an executable file" >&2; exit 1; }
  echo "$ETCD_BIN"; exit 0
fi
if command -v etcd >/dev/null 2>&1; then command -v etcd; exit 0; fi
if [ -x /usr/bin/etcd ]; then echo /usr/bin/etcd; exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "no etcd found and no apt-get: install etcd 3.4+ and put it on PATH, or set ETCD_BIN" >&2; exit 1; }
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing Debian's etcd-server" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends etcd-server >&2
# The Debian package enables a system service; brokerflow starts its own etcd, so keep that one off.
($sudo systemctl disable --now etcd >/dev/null 2>&1 || true)
command -v etcd
