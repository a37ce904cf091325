#!/usr/bin/env bash
# Installs what the browser tests need: Debian's chromium (never a downloaded browser build) and
# the node packages from package-lock.json. Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "== installing chromium (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
  echo "node 20+ is required" >&2
  exit 1
fi
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci (scripts/browser)"
  npm ci --no-audit --no-fund --loglevel=error
fi
