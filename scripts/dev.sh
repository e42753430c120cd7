#!/usr/bin/env bash
# `npm run dev`: installs what the dev stack is missing, then starts the whole system (see scripts/dev.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "# installing npm packages from the lockfile"
  # Exactly the committed lockfile, never a silent re-resolve: a lockfile npm ci refuses is a bug to fix.
  npm ci --no-audit --no-fund --loglevel=error
fi
# Only what this stack starts: etcd, the Temporal CLI (dev server) or, with `--temporal cluster`, the Temporal
# server built from Go modules and PostgreSQL, and the Kubernetes control plane unless `--no-kube` or $KUBECONFIG.
# Chromium, Temporal's time-skipping test server and moto are for the tests (`npm test` installs them).
shape=dev kube=yes prev=
for arg in "$@"; do
  case "$arg" in
    --no-kube) kube=no ;;
    --temporal=*) shape="${arg#--temporal=}" ;;
  esac
  if [ "$prev" = --temporal ]; then shape="$arg"; fi
  prev="$arg"
done
if [ -n "${KUBECONFIG:-}" ]; then kube=no; fi
tools=(etcd)
if [ "$shape" = cluster ]; then tools+=(temporal-server postgres); else tools+=(temporal); fi
if [ "$kube" = yes ]; then tools+=(kube); fi
for tool in "${tools[@]}"; do
  bash "scripts/install/$tool.sh" >/dev/null
done
exec node --import tsx scripts/dev.ts "$@"
