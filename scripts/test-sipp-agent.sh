#!/usr/bin/env bash
# sipp as an agent's SIP phone: it REGISTERs with digest credentials, receives the INVITE for a
# queued call, answers, echoes the caller's RTP for 3 s and hangs up; a second sipp is the caller.
# Starts its own server (queues + an agent with `sip:`), then checks the call record names the
# agent. Usage: scripts/test-sipp-agent.sh   (SWITCHBOARD_BIN or CARGO_TARGET_DIR pick the binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${SWITCHBOARD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/switchboard}
[ -x "$BIN" ] || cargo build --locked
command -v sipp >/dev/null || { echo "test-sipp-agent: sipp is not installed" >&2; exit 2; }

WORK=$(mktemp -d -t switchboard-sipp-agent.XXXXXX)
mkdir -p "$WORK/flows"
cat > "$WORK/flows/queue.yaml" <<'YAML'
flow: sipp-queue
numbers: ["7100"]
language: en
start: billing
steps:
  billing:
    queue: { name: billing, timeout: 1m }
    on_timeout: hangup
YAML
: > "$WORK/flows/accounts.csv"
SIP_PW=sipp-agent-secret
HASH=$(echo "console password 1" | "$BIN" password-hash)
HA1=$(echo "$SIP_PW" | "$BIN" sip-ha1 --user alice)
cat > "$WORK/config.yaml" <<YAML
queues:
  - name: billing
    wrap_up: 1s
    ring_timeout: 10s
agents:
  - id: alice
    name: Alice
    password_hash: "$HASH"
    queues: [billing]
    sip: { user: alice, ha1: "$HA1" }
YAML

. "$ROOT/scripts/ports.sh"
SIP=$(port); HTTP=$(port); AGENT=$(port); REG=$(port); CALLER=$(port)
export SWITCHBOARD_API_TOKEN=sipp-agent-token
"$BIN" run --config "$WORK/config.yaml" --sip "127.0.0.1:$SIP" --http "127.0.0.1:$HTTP" \
  --rtp-ports 33000-33999 --data "$WORK/data" --flows "$WORK/flows" --sounds sounds \
  --accounts "$WORK/flows/accounts.csv" >"$WORK/server.log" 2>&1 &
SERVER=$!
AGENT_PID=
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null || true
  kill $SERVER 2>/dev/null || true
  wait $SERVER 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

common=(-i 127.0.0.1 -mi 127.0.0.1 -m 1 -nostdin -timeout 40s -timeout_error -trace_err)
cd scripts/sipp
sipp -sf agent_answer.xml "${common[@]}" -p "$AGENT" -mp 34000 -rtp_echo \
  -error_file "$WORK/answer.errors.log" "127.0.0.1:$SIP" >"$WORK/answer.out" 2>&1 &
AGENT_PID=$!
fail=0
sipp -sf agent_register.xml "${common[@]}" -s alice -p "$REG" -key agent_port "$AGENT" \
  -au alice -ap "$SIP_PW" -error_file "$WORK/register.errors.log" "127.0.0.1:$SIP" \
  >"$WORK/register.out" 2>&1 || { echo "FAIL  register (logs: $WORK)"; fail=1; }
[ $fail = 0 ] && echo "ok    sipp registered as agent alice"
sipp -sf agent_caller.xml "${common[@]}" -s 7100 -p "$CALLER" -mp 34100 \
  -error_file "$WORK/caller.errors.log" "127.0.0.1:$SIP" >"$WORK/caller.out" 2>&1 \
  || { echo "FAIL  caller (logs: $WORK)"; fail=1; }
if wait "$AGENT_PID"; then echo "ok    sipp agent answered, echoed RTP and hung up"; else echo "FAIL  agent (logs: $WORK)"; fail=1; fi
AGENT_PID=
cd "$ROOT"

sleep 1
calls=$(curl -fs -H "Authorization: Bearer $SWITCHBOARD_API_TOKEN" "http://127.0.0.1:$HTTP/api/calls?limit=10")
python3 - "$calls" <<'PY' || fail=1
import json, sys
calls = [c for c in json.loads(sys.argv[1]) if c.get("to") == "7100"]
assert calls, "no record of the sipp call"
c = calls[0]
print({k: c.get(k) for k in ("agent_id", "talk_ms", "hangup_by", "disposition")})
assert c["agent_id"] == "alice", c
assert c["hangup_by"] == "agent", c
assert c["talk_ms"] >= 2000, c
PY
if [ $fail != 0 ]; then
  for f in "$WORK"/*.errors.log; do echo "--- $f"; tail -n 20 "$f"; done >&2
  tail -n 30 "$WORK/server.log" >&2
  exit 1
fi
echo "sipp agent: passed"
