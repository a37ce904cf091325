#!/usr/bin/env bash
# Where the server's CPU goes under one bench section (issue 7: a profile before and after each
# change). Runs `scripts/bench --only SECTION` at one size (nothing is appended to BENCHMARKS.md
# when run through here: the bench's own file is restored), attaches `perf record` to the server
# in the middle of the measured window and prints the split by object and the top symbols.
#
#   scripts/bench-data/profile.sh ivr 200          # or: bridge 100, rtc 50
#   OUT=/tmp/prof scripts/bench-data/profile.sh ivr 1000
#
# Needs perf (apt-get install linux-perf) and root (or kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
section=${1:?section: ivr, bridge or rtc}
size=${2:?size}
OUT=${OUT:-$(mktemp -d -t switchboard-profile.XXXXXX)}
mkdir -p "$OUT"
case $section in
    ivr) args=(--sizes "$size"); marker="== ivr:" ;;
    bridge) args=(--bridge-sizes "$size"); marker="== bridge:" ;;
    rtc) args=(--rtc-sizes "$size"); marker="== rtc bridge:" ;;
    *) echo "profile: unknown section $section" >&2; exit 2 ;;
esac
cp BENCHMARKS.md "$OUT/BENCHMARKS.md.keep"
restore() { cp "$OUT/BENCHMARKS.md.keep" BENCHMARKS.md; }
trap restore EXIT
scripts/bench --only "$section" "${args[@]}" >"$OUT/bench.log" 2>&1 &
bench=$!
# The section starts, its calls ramp up (200/s) and settle; then 8 s of the measured window.
until grep -q -- "$marker" "$OUT/bench.log" 2>/dev/null; do
    kill -0 $bench 2>/dev/null || { cat "$OUT/bench.log"; exit 1; }
    sleep 0.5
done
sleep $((size / 200 + 3))
pid=$(pgrep -n -f "switchboard run --config /tmp/switchboard-bench")
perf record -q -F 999 -g -p "$pid" -o "$OUT/perf.data" -- sleep 8 >/dev/null 2>&1
wait $bench || true
grep '^{"mode"' "$OUT/bench.log" || true
echo "== by object"
perf report -i "$OUT/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -8
echo "== top symbols"
perf report -i "$OUT/perf.data" --no-children --sort sym -g none --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -25
echo "== perf data: $OUT/perf.data"
