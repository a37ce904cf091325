#!/usr/bin/env bash
# The server's RSS before and after 80 console sign-ins (8 at a time): each password check is an
# argon2 hash with a 19 MiB block, which must not stay with the process (src/runtime/memory.rs).
# Usage: scripts/bench-data/signin-memory.sh [BIN]   (default: target/debug/switchboard)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/switchboard}
. "$ROOT/scripts/ports.sh"
W=$(mktemp -d); mkdir -p "$W/flows" "$W/data"; : > "$W/acc.csv"
H=$(echo "agent password 1" | "$BIN" password-hash)
{ echo "queues:"; echo "  - name: q"; echo "agents:"
  for i in $(seq 1 8); do echo "  - { id: a$i, name: A$i, password_hash: \"$H\", queues: [q] }"; done
} > "$W/c.yaml"
SIP=$(port); HTTP=$(port)
"$BIN" run --config "$W/c.yaml" --sip "127.0.0.1:$SIP" --http "127.0.0.1:$HTTP" --data "$W/data" \
  --flows "$W/flows" --sounds "$ROOT/sounds" --accounts "$W/acc.csv" > "$W/log" 2>&1 &
P=$!
trap 'kill $P 2>/dev/null || true; rm -rf "$W"' EXIT
sleep 2
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$P/status"; }
echo "idle: $(rss) KiB"
for _ in $(seq 10); do
  pids=()
  for i in $(seq 1 8); do
    curl -fs -o /dev/null -H 'Content-Type: application/json' \
      -d "{\"agent\":\"a$i\",\"password\":\"agent password 1\"}" "http://127.0.0.1:$HTTP/api/agent/login" &
    pids+=($!)
  done
  wait "${pids[@]}"
done
echo "after 80 sign-ins: $(rss) KiB"
