#!/usr/bin/env bash
# Tests the peer scripts themselves against fake_switchboard.py, without building the server:
# they must pass against a peer that behaves as the contract says, fail against one that does not,
# and the pcap's digits must arrive as 4321#2.
#
#   scripts/selftest/selftest.sh
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d -t switchboard-selftest.XXXXXX)
FAKE_PID=
passed=0
failed=0

cleanup() {
    [[ -n "$FAKE_PID" ]] && kill "$FAKE_PID" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT

start_fake() { # port, extra args...
    local port=$1
    shift
    cleanup
    python3 "$HERE/fake_switchboard.py" --listen "127.0.0.1:$port" --sounds "$ROOT/sounds" \
        --events "$WORK/events-$port.jsonl" "$@" >"$WORK/fake-$port.log" 2>&1 &
    FAKE_PID=$!
    for _ in $(seq 50); do # until it answers OPTIONS-sized UDP... a bound TCP port is enough
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "fake server did not start" >&2
    exit 2
}

check() { # description, command...
    local what=$1
    shift
    if "$@" >"$WORK/check.log" 2>&1; then
        echo "ok    $what"
        passed=$((passed + 1))
    else
        echo "FAIL  $what"
        sed 's/^/      /' "$WORK/check.log" | tail -n 15
        failed=$((failed + 1))
    fi
}

fails() { ! "$@"; }

port=$((25000 + RANDOM % 5000))

start_fake "$port"
check "test-sipp.sh passes against a well-behaved server" \
    env SIPP_LOG_DIR="$WORK/sipp-good" "$ROOT/scripts/test-sipp.sh" "127.0.0.1:$port"
check "the pcap's RFC 4733 digits arrive as 4321#2" \
    grep -q '"event": "bye", .*"digits": "4321#2"' "$WORK/events-$port.jsonl"
check "ACKs of 404 and 487 carry the INVITE's branch" \
    fails grep -q 'ack-branch-mismatch' "$WORK/events-$port.jsonl"

if python3 -c "import pjsua2" 2>/dev/null; then
    check "test-pjsua2.py passes against the hello line" \
        python3 "$ROOT/scripts/test-pjsua2.py" "127.0.0.1:$port" --log-level 0
    check "test-pjsua2.py fails when the number is not answered" \
        fails python3 "$ROOT/scripts/test-pjsua2.py" "127.0.0.1:$port" --number 4444 --log-level 0
else
    echo "skip  test-pjsua2.py (pip install pjsua2-python)"
fi

# A server that answers at once and claims every number: CANCEL and 404 scenarios must notice.
bad=$((port + 1))
start_fake "$bad" --answer-delay 0 --numbers 7000 4040404
SIPP_LOG_DIR="$WORK/sipp-bad" "$ROOT/scripts/test-sipp.sh" "127.0.0.1:$bad" >"$WORK/sipp-bad.out" 2>&1
bad_rc=$?
check "test-sipp.sh exits non-zero against a server that answers unknown numbers at once" \
    test "$bad_rc" -ne 0
check "…because the 404 and CANCEL scenarios failed, while OPTIONS still passed" \
    bash -c "grep -q '^FAIL  unknown-did' '$WORK/sipp-bad.out' && grep -q '^FAIL  cancel-while-ringing' '$WORK/sipp-bad.out' \
        && grep -q '^ok    options-udp' '$WORK/sipp-bad.out'"

echo "$passed passed, $failed failed"
((failed == 0)) || { echo "work files kept in $WORK" >&2; exit 1; }
rm -rf "$WORK"
