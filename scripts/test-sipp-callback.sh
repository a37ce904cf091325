#!/usr/bin/env bash
# sipp as the customer's phone behind a trunk that challenges with 401: a second sipp is the
# agent's SIP phone. A callback is queued, the agent's phone rings and answers, the server dials
# the customer through the trunk with digest credentials (verified by sipp), RTP is echoed, the
# agent hangs up and the customer gets BYE; the call record is a completed `callback`.
# Usage: scripts/test-sipp-callback.sh   (SWITCHBOARD_BIN or CARGO_TARGET_DIR pick the binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${SWITCHBOARD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/switchboard}
[ -x "$BIN" ] || cargo build --locked
command -v sipp >/dev/null || { echo "test-sipp-callback: sipp is not installed" >&2; exit 2; }

WORK=$(mktemp -d -t switchboard-sipp-callback.XXXXXX)
mkdir -p "$WORK/flows"
: > "$WORK/flows/accounts.csv"
SIP_PW=sipp-agent-secret
TRUNK_USER=acme-centre
TRUNK_PW=sipp-trunk-secret
HASH=$(echo "console password 1" | "$BIN" password-hash)
HA1=$(echo "$SIP_PW" | "$BIN" sip-ha1 --user alice)
. "$ROOT/scripts/ports.sh"
SIP=$(port); HTTP=$(port); AGENT=$(port); REG=$(port); TRUNK=$(port)
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
widget:
  callback_prefixes: ["+55"]
  callback_retries: []
trunk:
  address: "127.0.0.1:$TRUNK"
  username: $TRUNK_USER
  password: $TRUNK_PW
  caller_ids: { "+55": "+551130000000" }
YAML

export SWITCHBOARD_API_TOKEN=sipp-callback-token
"$BIN" run --config "$WORK/config.yaml" --sip "127.0.0.1:$SIP" --http "127.0.0.1:$HTTP" \
  --rtp-ports 35000-35999 --data "$WORK/data" --flows "$WORK/flows" --sounds sounds \
  --accounts "$WORK/flows/accounts.csv" >"$WORK/server.log" 2>&1 &
SERVER=$!
AGENT_PID=
TRUNK_PID=
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null || true
  [ -n "$TRUNK_PID" ] && kill "$TRUNK_PID" 2>/dev/null || true
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
sipp -sf trunk_customer_uas.xml "${common[@]}" -p "$TRUNK" -mp 36100 -rtp_echo \
  -key trunk_user "$TRUNK_USER" -key trunk_pw "$TRUNK_PW" \
  -error_file "$WORK/trunk.errors.log" >"$WORK/trunk.out" 2>&1 &
TRUNK_PID=$!
sipp -sf agent_answer.xml "${common[@]}" -p "$AGENT" -mp 36000 -rtp_echo \
  -error_file "$WORK/answer.errors.log" "127.0.0.1:$SIP" >"$WORK/answer.out" 2>&1 &
AGENT_PID=$!
fail=0
sipp -sf agent_register.xml "${common[@]}" -s alice -p "$REG" -key agent_port "$AGENT" \
  -au alice -ap "$SIP_PW" -error_file "$WORK/register.errors.log" "127.0.0.1:$SIP" \
  >"$WORK/register.out" 2>&1 || { echo "FAIL  register (logs: $WORK)"; fail=1; }
cd "$ROOT"
curl -fs -H "Authorization: Bearer $SWITCHBOARD_API_TOKEN" -H 'Content-Type: application/json' \
  -d '{"number":"+5511912345678","queue":"billing","note":"sipp"}' \
  "http://127.0.0.1:$HTTP/api/callbacks" >/dev/null || { echo "FAIL  queue the callback"; fail=1; }
if wait "$AGENT_PID"; then echo "ok    sipp agent answered the callback, echoed RTP and hung up"; else echo "FAIL  agent (logs: $WORK)"; fail=1; fi
AGENT_PID=
if wait "$TRUNK_PID"; then echo "ok    sipp trunk challenged (401), verified the digest, answered and got BYE"; else echo "FAIL  trunk (logs: $WORK)"; fail=1; fi
TRUNK_PID=

for _ in $(seq 1 30); do
  calls=$(curl -fs -H "Authorization: Bearer $SWITCHBOARD_API_TOKEN" "http://127.0.0.1:$HTTP/api/calls?limit=10")
  echo "$calls" | grep -q '"completed"' && break
  sleep 0.2
done
python3 - "$calls" <<'PY' || fail=1
import json, sys
calls = [c for c in json.loads(sys.argv[1]) if c.get("direction") == "callback"]
assert calls, "no callback record"
c = calls[0]
print({k: c.get(k) for k in ("from", "to", "agent_id", "disposition", "hangup_by")})
assert c["from"] == "+551130000000", c
assert c["to"] == "+5511912345678", c
assert c["agent_id"] == "alice", c
assert c["disposition"] == "completed", c
PY
if grep -q "$TRUNK_PW" "$WORK/server.log"; then echo "FAIL  the trunk password is in the log"; fail=1; fi
if [ $fail != 0 ]; then
  for f in "$WORK"/*.errors.log; do echo "--- $f"; tail -n 20 "$f"; done >&2
  tail -n 30 "$WORK/server.log" >&2
  exit 1
fi
echo "sipp callback: passed"
