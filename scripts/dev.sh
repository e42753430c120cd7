#!/usr/bin/env bash
# `npm run dev`: installs what is missing, then starts the whole system (see scripts/dev.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "# installing npm packages from the lockfile"
  # Exactly the committed lockfile, never a silent re-resolve: a lockfile npm ci refuses is a bug to fix.
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/install/all.sh
exec node --import tsx scripts/dev.ts "$@"
