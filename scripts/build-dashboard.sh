#!/usr/bin/env bash
# Builds the web dashboard that meshai-server serves at "/": the TypeScript client (clients/typescript, generated from
# the protos) and the dashboard (clients/dashboard, which installs that client as a packed npm package). Uses the
# committed lockfiles (npm ci); each folder is only reinstalled when its manifests changed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "npm (Node.js >= 20.19) is required to build the dashboard" >&2; exit 1; }
for dir in clients/typescript clients/dashboard; do
  marker="$dir/node_modules/.package-lock.json"
  if [[ ! -f $marker || $dir/package-lock.json -nt $marker || $dir/package.json -nt $marker ]]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
(cd clients/typescript && npm run build --silent >/dev/null)
(cd clients/dashboard && npm run build --silent | grep -E '^first load' || true)
