#!/usr/bin/env python3
"""Writes a pcap of RFC 4733 telephone-events for sipp's `play_pcap_audio`.

The pcaps that ship with sipp (/usr/share/sip-tester/dtmf_2833_*.pcap) hold one fixed digit each;
an IVR test needs a whole PIN followed by a menu choice, with realistic timing, so we make our own.

    make_dtmf_pcap.py "4321#,,,2" out.pcap

Each key becomes one event sent as a phone does: a packet every 20 ms while the key is held (marker
bit on the first, the RTP timestamp fixed at the event's start, the duration growing), then the end
packet three times (same sequence number, as RFC 4733 section 2.5.1.4 recommends against loss).
A ',' adds one second of silence (no packets), like the pause key on a phone. sipp replays packets
at the pcap's own timestamps and only rewrites addresses and ports, so the timing here is what the
server sees.
"""

import argparse
import struct
import sys

EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
CLOCK = 8000  # telephone-event/8000
PTIME_MS = 20
PAUSE_MS = 1000


def rtp_events(keys, payload_type, tone_ms, gap_ms, volume, ssrc, first_seq, first_ts, lead_ms):
    """Yield (send_time_ms, rtp_packet_bytes) for the key string."""
    seq = first_seq
    now_ms = lead_ms
    for key in keys:
        if key == ",":
            now_ms += PAUSE_MS
            continue
        event = EVENTS[key.upper()]
        start_ts = (first_ts + now_ms * CLOCK // 1000) & 0xFFFFFFFF
        steps = max(1, tone_ms // PTIME_MS)
        for i in range(1, steps + 1):
            end = i == steps
            duration = i * PTIME_MS * CLOCK // 1000
            marker = 0x80 if i == 1 else 0
            header = struct.pack(">BBHII", 0x80, marker | payload_type, seq & 0xFFFF, start_ts, ssrc)
            body = struct.pack(">BBH", event, (0x80 if end else 0) | (volume & 0x3F), duration)
            send_at = now_ms + i * PTIME_MS
            for _ in range(3 if end else 1):
                yield send_at, header + body
            seq += 1
        now_ms += steps * PTIME_MS + gap_ms


def ip_checksum(header):
    total = sum(struct.unpack(">10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(payload, src_port, dst_port, ident):
    """Ethernet + IPv4 + UDP around an RTP packet (UDP checksum 0 = none, allowed over IPv4)."""
    src_ip = bytes([127, 0, 0, 1])
    dst_ip = bytes([127, 0, 0, 1])
    udp = struct.pack(">HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack(">H", ip_checksum(ip)) + ip[12:]
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp


def write_pcap(path, packets, src_port, dst_port, epoch=1_700_000_000):
    with open(path, "wb") as f:
        # classic pcap, microsecond timestamps, Ethernet link type
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ident, (at_ms, rtp) in enumerate(packets):
            data = frame(rtp, src_port, dst_port, ident)
            # Repeated end packets go out 1 ms apart in the same 20 ms slot, as phones send them.
            secs, usec = divmod(at_ms * 1000, 1_000_000)
            f.write(struct.pack("<IIII", epoch + secs, usec, len(data), len(data)))
            f.write(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("keys", help="keys to send: 0-9 * # A-D, ',' for a one-second pause")
    parser.add_argument("output", help="pcap file to write")
    parser.add_argument("--payload-type", type=int, default=101, help="RTP payload type (default 101)")
    parser.add_argument("--tone-ms", type=int, default=160, help="how long each key is held (default 160)")
    parser.add_argument("--gap-ms", type=int, default=140, help="silence between keys (default 140)")
    parser.add_argument("--volume", type=int, default=10, help="event volume, -dBm0 (default 10)")
    parser.add_argument("--lead-ms", type=int, default=0, help="silence before the first key")
    parser.add_argument("--ssrc", type=lambda s: int(s, 0), default=0x5B0A7D11)
    args = parser.parse_args(argv)

    bad = [k for k in args.keys if k != "," and k.upper() not in EVENTS]
    if bad or not args.keys:
        parser.error(f"keys must be 0-9 * # A-D or ',' (got {''.join(bad) or 'nothing'})")
    if not 96 <= args.payload_type <= 127:
        parser.error("a dynamic payload type is 96-127")
    if args.tone_ms < PTIME_MS or args.gap_ms < 40:
        parser.error(f"--tone-ms must be >= {PTIME_MS} and --gap-ms >= 40 so keys stay distinct")

    packets = list(
        rtp_events(args.keys, args.payload_type, args.tone_ms, args.gap_ms, args.volume, args.ssrc, 1000, 160000, args.lead_ms)
    )
    # Stagger the repeated end packets by 1 ms each so every packet has its own send time.
    staggered = []
    last = None
    for at_ms, rtp in packets:
        if last is not None and at_ms <= last:
            at_ms = last + 1
        staggered.append((at_ms, rtp))
        last = at_ms
    write_pcap(args.output, staggered, 49170, 6000)
    keys = args.keys.replace(",", "")
    total_ms = staggered[-1][0] if staggered else 0
    print(f"{args.output}: {len(keys)} keys, {len(staggered)} packets, {total_ms} ms, payload type {args.payload_type}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
