#!/usr/bin/env bash
# Installs every real dependency that tests and the dev stack start, each idempotently and cached.
set -euo pipefail
here="$(dirname "$0")"
for tool in temporal temporal-test-server etcd moto kube chromium; do
  bash "$here/$tool.sh" >/dev/null
done
