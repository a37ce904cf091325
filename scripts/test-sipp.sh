#!/usr/bin/env bash
# Calls a running switchboard with sipp, an independent SIP implementation, and fails if any
# scenario fails:
#
#   scripts/test-sipp.sh 127.0.0.1:5060
#
# Scenarios (scripts/sipp/): OPTIONS over UDP and TCP, a call to a number nobody claims (404), a
# call cancelled while ringing (487), and a call that types a PIN and a menu choice as RFC 4733
# events. The server must run the shipped flows (7000 = merchant-support, which rings 1 s first).
#
# Environment: PIN_DID (default 7000) and UNKNOWN_DID (default 4040404) pick the numbers;
# SIPP_LOG_DIR keeps sipp's logs (default: a temp dir, printed on failure).
set -uo pipefail

if [[ $# -ne 1 || "$1" != *:* ]]; then
    echo "usage: $0 SERVER_SIP_ADDR   (host:port, e.g. 127.0.0.1:5060)" >&2
    exit 2
fi
SERVER=$1
HOST=${SERVER%:*}
PIN_DID=${PIN_DID:-7000}
UNKNOWN_DID=${UNKNOWN_DID:-4040404}
HERE=$(cd "$(dirname "$0")/sipp" && pwd)
LOG_DIR=${SIPP_LOG_DIR:-$(mktemp -d -t switchboard-sipp.XXXXXX)}
mkdir -p "$LOG_DIR"

command -v sipp >/dev/null || { echo "test-sipp: sipp is not installed (apt-get install sip-tester)" >&2; exit 2; }

# The pcap is committed; rebuild it only if someone deleted it.
if [[ ! -f "$HERE/pin_4321_menu_2.pcap" ]]; then
    python3 "$HERE/make_dtmf_pcap.py" "4321#,,,2" "$HERE/pin_4321_menu_2.pcap" >/dev/null || exit 2
fi

# A port pair per run so parallel runs and a server on 5060 never collide with sipp itself.
base=$((20000 + (RANDOM % 2000) * 4))
passed=0
failed=0
failures=()

run() {
    local name=$1 scenario=$2 service=$3 transport=$4 limit=$5
    local port=$((base++)) media=$((base + 4000))
    local log="$LOG_DIR/$name"
    # -m 1: one call; -timeout_error: a hang is a failure, not a pass; play_pcap_audio resolves the
    # pcap relative to the working directory, hence the cd.
    if (cd "$HERE" && timeout $((limit + 10)) sipp -sf "$scenario" -s "$service" -t "$transport" \
        -i "$HOST" -p "$port" -mi "$HOST" -mp "$media" -m 1 -l 1 -nostdin \
        -timeout "${limit}s" -timeout_error -recv_timeout 10000 \
        -trace_err -error_file "$log.errors.log" -trace_msg -message_file "$log.messages.log" \
        "$SERVER" >"$log.out" 2>&1); then
        echo "ok    $name"
        passed=$((passed + 1))
    else
        echo "FAIL  $name (logs: $log.*)"
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

run options-udp options.xml "$PIN_DID" u1 10
run options-tcp options.xml "$PIN_DID" t1 10
run unknown-did unknown_did.xml "$UNKNOWN_DID" u1 10
run cancel-while-ringing uac_cancel.xml "$PIN_DID" u1 15
run pin-and-menu-rfc4733 uac_pin.xml "$PIN_DID" u1 40

echo "$passed passed, $failed failed"
if ((failed)); then
    for name in "${failures[@]}"; do
        echo "--- $name: last lines of sipp's error log" >&2
        tail -n 20 "$LOG_DIR/$name.errors.log" 2>/dev/null >&2 || tail -n 20 "$LOG_DIR/$name.out" >&2
    done
    exit 1
fi
