#!/usr/bin/env bash
# `npm run dev`: installs what is missing, then starts the whole system (see scripts/dev.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "# installing npm packages from the lockfile"
  # npm ci refuses a lockfile whose optional platform packages the registry does not serve (such as @swc/core's
  # builds for other systems); npm install then installs the same locked versions without changing the lockfile.
  npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error
fi
bash scripts/install/all.sh
exec node --import tsx scripts/dev.ts "$@"
