#!/usr/bin/env bash
# `npm test`: installs what the tests need (npm packages from the lockfile, the Temporal CLI, etcd, moto,
# the Kubernetes control plane binaries, Chromium for the UI test), then runs every test with real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "# installing npm packages from the lockfile"
  # Exactly the committed lockfile, never a silent re-resolve: a lockfile npm ci refuses is a bug to fix.
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/install/all.sh
if [ "$#" -eq 0 ]; then
  echo "# typecheck (tsc) and lint (eslint: floating promises, the workflow sandbox)"
  npx tsc --noEmit -p tsconfig.json
  npx eslint --max-warnings=0 .
fi
exec node --import tsx test/run.ts "$@"
