#!/usr/bin/env bash
# Prints the folder holding PostgreSQL's server programs (`initdb`, `postgres`; last line of stdout), for the
# private PostgreSQL the Temporal cluster shape runs on. Order: $BROKERFLOW_POSTGRES_BIN_DIR, an `initdb` on PATH,
# the newest /usr/lib/postgresql/<major>/bin, and else Debian's `postgresql` package (its system service is kept
# off: brokerflow starts its own server, on a dynamic loopback port, in a data folder of its own).
set -euo pipefail

usable() { [ -x "$1/initdb" ] && [ -x "$1/postgres" ]; }

if [ -n "${BROKERFLOW_POSTGRES_BIN_DIR:-}" ]; then
  usable "$BROKERFLOW_POSTGRES_BIN_DIR" \
    || { echo "BROKERFLOW_POSTGRES_BIN_DIR=$BROKERFLOW_POSTGRES_BIN_DIR holds no initdb and postgres" >&2; exit 1; }
  echo "$BROKERFLOW_POSTGRES_BIN_DIR"; exit 0
fi

find_existing() {
  local initdb dir
  if initdb=$(command -v initdb 2>/dev/null); then
    dir=$(dirname "$(readlink -f "$initdb")")
    if usable "$dir"; then echo "$dir"; return 0; fi
  fi
  # Debian keeps the server programs off PATH, one folder per major version; take the newest.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if usable "$dir"; then echo "$dir"; return 0; fi
  done
  return 1
}

if find_existing; then exit 0; fi

command -v apt-get >/dev/null 2>&1 \
  || { echo "no PostgreSQL server found and no apt-get: install PostgreSQL 12+ or set BROKERFLOW_POSTGRES_BIN_DIR" >&2; exit 1; }
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing Debian's postgresql" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
# The package creates and starts a system cluster on port 5432; brokerflow does not use it.
($sudo systemctl disable --now postgresql >/dev/null 2>&1 || true)
find_existing || { echo "postgresql was installed but no initdb/postgres was found under /usr/lib/postgresql" >&2; exit 1; }
