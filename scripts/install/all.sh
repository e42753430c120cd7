#!/usr/bin/env bash
# Installs every real dependency the tests start (`npm test`), each idempotently and cached; `npm run dev`
# installs only what the dev stack starts (scripts/dev.sh).
set -euo pipefail
here="$(dirname "$0")"
for tool in temporal temporal-test-server etcd moto kube chromium; do
  bash "$here/$tool.sh" >/dev/null
done
