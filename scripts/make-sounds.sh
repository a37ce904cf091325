#!/usr/bin/env bash
# Regenerates every prompt WAV from sounds/prompts.tsv, plus the language-neutral beep and
# music on hold. The WAVs are committed so that the server, CI and `switchboard check` never need
# espeak-ng; run this only after editing the table (or to change the voice settings below).
#
#   scripts/make-sounds.sh            # rebuild everything under sounds/
#   scripts/make-sounds.sh --check    # rebuild into a temp dir and report prompts over the limit
#
# Needs: espeak-ng (voices en-us and pt-br) and sox.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOUNDS="$ROOT/sounds"
TABLE="$SOUNDS/prompts.tsv"
SPEED=${SPEED:-150}          # words per minute: clear on a phone without dragging; a row may override
MAX_SECONDS=${MAX_SECONDS:-4} # tests play every prompt; long ones slow them all down
PEAK_DB=-3

CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make-sounds: $tool is not installed" >&2; exit 1; }
done
[[ -f "$TABLE" ]] || { echo "make-sounds: $TABLE not found" >&2; exit 1; }

voice_for() {
    case "$1" in
        en) echo en-us ;;
        pt-BR) echo pt-br ;;
        *) return 1 ;;
    esac
}

# Build into a scratch tree and swap it in at the end, so a failed run never leaves a half-updated
# sounds/ and prompts removed from the table do not linger as orphan WAVs.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/out"
mkdir -p "$OUT"

# -R: repeatable dither, so regenerating unchanged prompts gives byte-identical files (clean diffs).
SOX=(sox -R -V1)
FORMAT=(-r 8000 -c 1 -b 16 -e signed-integer)

too_long=()
count=0
line_no=0
while IFS=$'\t' read -r lang name text wpm || [[ -n "${lang:-}" ]]; do
    line_no=$((line_no + 1))
    [[ -z "${lang// /}" || "$lang" == \#* ]] && continue
    if [[ -z "${name:-}" || -z "${text:-}" ]]; then
        echo "make-sounds: $TABLE:$line_no: expected language<TAB>name<TAB>text" >&2
        exit 1
    fi
    voice=$(voice_for "$lang") || { echo "make-sounds: $TABLE:$line_no: unknown language '$lang'" >&2; exit 1; }
    if [[ ! "$name" =~ ^[a-z0-9][a-z0-9/-]*$ || "$name" == *..* ]]; then
        echo "make-sounds: $TABLE:$line_no: bad prompt name '$name'" >&2
        exit 1
    fi

    wpm=${wpm:-$SPEED}
    if [[ ! "$wpm" =~ ^[0-9]+$ ]] || ((wpm < 80 || wpm > 260)); then
        echo "make-sounds: $TABLE:$line_no: words per minute must be 80-260, got '$wpm'" >&2
        exit 1
    fi

    dest="$OUT/$lang/$name.wav"
    mkdir -p "$(dirname "$dest")"
    raw="$WORK/raw.wav"
    # --stdin keeps texts that start with '-' from being read as options.
    printf '%s' "$text" | espeak-ng -v "$voice" -s "$wpm" --stdin -w "$raw"
    # Trim silence at both ends (the reverse trick; the fade-out is a fade-in while reversed, as the
    # length is unknown until then), short fades against clicks, telephone band,
    # then resample and normalise the peak last so resampling cannot push it past the target.
    "${SOX[@]}" "$raw" "${FORMAT[@]}" "$dest" \
        silence 1 0.01 0.1% reverse silence 1 0.01 0.1% fade t 0.02 reverse fade t 0.005 \
        highpass 120 rate -v 8000 norm "$PEAK_DB"

    secs=$(soxi -D "$dest")
    if awk -v s="$secs" -v m="$MAX_SECONDS" 'BEGIN { exit !(s > m) }'; then
        too_long+=("$lang/$name (${secs}s)")
    fi
    count=$((count + 1))
done <"$TABLE"

# A short 1 kHz tone before voicemail recording, as callers expect.
"${SOX[@]}" -n "${FORMAT[@]}" "$OUT/beep.wav" synth 0.3 sine 1000 fade t 0.01 0.3 0.01 norm "$PEAK_DB"

# Music on hold: a gentle I-vi-IV-V progression (C Am F G), twice round, plucked arpeggios over soft
# pads. 8 bars of 2.5 s = 20 s; the last chord resolves into the first, so the loop is seamless.
chords=("C3 E3 G3 C4 E4 G4 E4 C4" "A2 C3 E3 A3 C4 E4 C4 A3" "F2 A2 C3 F3 A3 C4 A3 F3" "G2 B2 D3 G3 B3 D4 B3 G3")
pads=("C3 E3 G3" "A2 C3 E3" "F2 A2 C3" "G2 B2 D3")
bar=2.5
note=0.3125
moh_parts=()
i=0
for _ in 1 2; do
    for c in 0 1 2 3; do
        arp="$WORK/arp-$i.wav"
        notes=()
        j=0
        for n in ${chords[$c]}; do
            f="$WORK/n-$i-$j.wav"
            "${SOX[@]}" -n "${FORMAT[@]}" "$f" synth "$note" pluck "$n" fade t 0 "$note" 0.05 vol 0.5
            notes+=("$f")
            j=$((j + 1))
        done
        "${SOX[@]}" "${notes[@]}" "$arp"
        read -r p1 p2 p3 <<<"${pads[$c]}"
        pad="$WORK/pad-$i.wav"
        "${SOX[@]}" -n -r 8000 -c 3 -b 16 -e signed-integer "$pad" synth "$bar" sine "$p1" sine "$p2" sine "$p3" \
            remix - fade t 0.3 "$bar" 0.3 vol 0.25
        mix="$WORK/bar-$i.wav"
        "${SOX[@]}" -m "$arp" "$pad" "${FORMAT[@]}" "$mix"
        moh_parts+=("$mix")
        i=$((i + 1))
    done
done
"${SOX[@]}" "${moh_parts[@]}" "${FORMAT[@]}" "$OUT/moh.wav" sinc -2400 reverb 30 50 60 norm -6

if ((${#too_long[@]})); then
    echo "make-sounds: prompts longer than ${MAX_SECONDS}s (shorten the text in prompts.tsv):" >&2
    printf '  %s\n' "${too_long[@]}" >&2
    exit 1
fi

if ((CHECK_ONLY)); then
    echo "make-sounds: $count prompts OK (check only, sounds/ untouched)"
    exit 0
fi

# Swap in: replace the per-language trees and the neutral files, leave prompts.tsv and anything
# else an admin added at the top level alone.
for lang_dir in "$OUT"/*/; do
    lang=$(basename "$lang_dir")
    rm -rf "${SOUNDS:?}/$lang"
    cp -r "$lang_dir" "$SOUNDS/$lang"
done
cp "$OUT/beep.wav" "$OUT/moh.wav" "$SOUNDS/"
echo "make-sounds: wrote $count prompts, beep.wav and moh.wav under sounds/"
