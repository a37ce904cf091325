#!/usr/bin/env python3
"""An independent SIP caller (PJSIP's pjsua2) for end-to-end tests: it talks and it listens.

    scripts/pjsua2-caller.py 127.0.0.1:5060 --number 7400 --caller +5511987650000 \
        --play /abs/caller-440.wav --expect-hz 660 [--digits 4321#] [--dtmf-after 4] \
        [--hangup-after 20 | --timeout 90] [--out heard.wav]

It calls NUMBER from CALLER over UDP offering G.711 only, loops the --play WAV into the call (a tone
the far end can recognise), records everything it hears, optionally sends --digits as RFC 4733
events --dtmf-after seconds after the answer, then either hangs up itself after --hangup-after
seconds or waits (up to --timeout) for the server's BYE. It passes when:

  * the call was answered and RTP flowed both ways;
  * with --expect-hz F: in at least --min-windows 100 ms windows of what it heard, the F Hz tone
    is louder than --min-dbfs and carries more than half of the window's energy (so it is the
    loudest thing in it: not a prompt, not music on hold, not silence);
  * without --hangup-after: the server ended the call with a BYE.

Exit status 0 on success, 1 on a failed check, 2 on bad usage or a missing pjsua2.
"""

import argparse
import math
import os
import struct
import sys
import tempfile
import time
import wave

try:
    import pjsua2 as pj
except ImportError:
    print("pjsua2-caller: the pjsua2 module is missing (pip install pjsua2-python)", file=sys.stderr)
    sys.exit(2)

WINDOW_MS = 100


class Caller(pj.Call):
    """pjsua2 calls these from libHandleEvents on the main thread (threadCnt = 0)."""

    def __init__(self, account, play_path, record_path):
        super().__init__(account)
        self.play_path = play_path
        self.record_path = record_path
        self.player = None
        self.recorder = None
        self.confirmed_at = None
        self.disconnected = False
        self.last_code = None
        self.last_reason = ""
        self.remote_bye = False
        self.rx_packets = 0
        self.tx_packets = 0

    def onCallState(self, prm):
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.last_code = info.lastStatusCode
            self.last_reason = info.lastReason

    def onCallTsxState(self, prm):
        # A BYE we receive (role UAS) means the far end ended the call.
        try:
            tsx = prm.e.body.tsxState.tsx
            if tsx.method == "BYE" and tsx.role == pj.PJSIP_ROLE_UAS:
                self.remote_bye = True
        except AttributeError:
            pass

    def onCallMediaState(self, prm):
        info = self.getInfo()
        for i, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            audio = self.getAudioMedia(i)
            if self.recorder is None:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.record_path)
                audio.startTransmit(self.recorder)
            if self.player is None and self.play_path:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(self.play_path)  # loops by default
                self.player.startTransmit(audio)

    def sample_stats(self):
        # Stream stats vanish with the stream, so sample them while the call is up.
        if self.disconnected or not self.hasMedia():
            return
        try:
            stat = self.getStreamStat(0)
            self.rx_packets = max(self.rx_packets, stat.rtcp.rxStat.pkt)
            self.tx_packets = max(self.tx_packets, stat.rtcp.txStat.pkt)
        except pj.Error:
            pass


def read_mono(path):
    with wave.open(path, "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        data = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit samples, got {8 * width}-bit")
    return rate, struct.unpack(f"<{len(data) // 2}h", data)[::channels]


def tone_windows(samples, rate, hz):
    """Per 100 ms window: (level in dBFS, share of the window's energy at hz), by Goertzel."""
    n = rate * WINDOW_MS // 1000
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    out = []
    for start in range(0, len(samples) - n + 1, n):
        s1 = s2 = 0.0
        energy = 0.0
        for x in samples[start : start + n]:
            s1, s2 = x + coeff * s1 - s2, s1
            energy += x * x
        power = s1 * s1 + s2 * s2 - coeff * s1 * s2
        # A pure sine of any phase gives power ≈ (A·n/2)² and energy ≈ A²·n/2, so share ≈ 1.
        share = 2 * power / (n * energy) if energy > 0 else 0.0
        rms = math.sqrt(energy / n)
        dbfs = 20 * math.log10(rms / 32768) if rms > 0 else -120.0
        out.append((dbfs, share))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("server", help="the server's SIP address, host:port")
    parser.add_argument("--number", required=True, help="number to dial")
    parser.add_argument("--caller", default="+12125550123", help="our number, the From user")
    parser.add_argument("--play", help="16-bit PCM WAV looped into the call")
    parser.add_argument("--digits", default="", help="keys to send as RFC 4733 events")
    parser.add_argument("--dtmf-after", type=float, default=4.0, help="seconds after answer to send them")
    parser.add_argument("--hangup-after", type=float, help="hang up ourselves this many seconds after the answer")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the server's BYE")
    parser.add_argument("--expect-hz", type=float, help="a tone that must dominate part of what we hear")
    parser.add_argument("--min-windows", type=int, default=10, help="100 ms windows the tone must win (10)")
    parser.add_argument("--min-dbfs", type=float, default=-40.0, help="how loud the tone must be (-40 dBFS)")
    parser.add_argument("--out", help="keep what was heard in this WAV (default: a temp file, deleted on success)")
    parser.add_argument("--log-level", type=int, default=1, help="PJSIP console log level (0-6)")
    args = parser.parse_args()
    if ":" not in args.server:
        parser.error("server must be host:port")
    if args.play and not os.path.isfile(args.play):
        parser.error(f"--play {args.play}: no such file")

    out = args.out or os.path.join(tempfile.mkdtemp(prefix="switchboard-caller-"), "heard.wav")
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    # Callbacks on this thread only: Python objects must not be touched from PJSIP's own threads.
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "switchboard-pjsua2-caller"
    cfg.logConfig.level = args.log_level
    cfg.logConfig.consoleLevel = args.log_level
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0  # no echo canceller: it would eat the far end's steady tone
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()  # no sound card on a CI machine; the recorder is our ear

    for codec in ep.codecEnum2():
        keep = codec.codecId.startswith(("PCMU/", "PCMA/"))
        ep.codecSetPriority(codec.codecId, 200 if codec.codecId.startswith("PCMU/") else (100 if keep else 0))

    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.caller}@127.0.0.1"
    acfg.regConfig.registerOnAdd = False
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = pj.Account()
    account.create(acfg)

    call = Caller(account, args.play, out)
    failures = []
    dtmf_sent = False
    we_hung_up = False
    started = time.monotonic()
    print(f"calling {args.number} at {args.server} as {args.caller}", flush=True)
    try:
        call.makeCall(f"sip:{args.number}@{args.server}", pj.CallOpParam(True))
        deadline = started + args.timeout
        while not call.disconnected and time.monotonic() < deadline:
            ep.libHandleEvents(10)
            if call.confirmed_at is None:
                continue
            call.sample_stats()
            since = time.monotonic() - call.confirmed_at
            if args.digits and not dtmf_sent and since >= args.dtmf_after:
                prm = pj.CallSendDtmfParam()
                prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
                prm.digits = args.digits
                call.sendDtmf(prm)
                dtmf_sent = True
                print(f"sent {len(args.digits)} digit(s) as RFC 4733 events at {since:.1f} s", flush=True)
            if args.hangup_after is not None and since >= args.hangup_after:
                break
        if not call.disconnected:
            if args.hangup_after is None:
                failures.append(f"the server did not end the call within {args.timeout:.0f} s")
            we_hung_up = True
            call.hangup(pj.CallOpParam(True))
            end = time.monotonic() + 5
            while not call.disconnected and time.monotonic() < end:
                ep.libHandleEvents(10)
    finally:
        # Players and recorders must go before the library does; dropping the recorder writes the
        # WAV header.
        call.player = None
        call.recorder = None
        connected_for = (time.monotonic() - call.confirmed_at) if call.confirmed_at else 0.0
        answered_after = (call.confirmed_at - started) if call.confirmed_at else None
        result = {k: getattr(call, k) for k in ("last_code", "last_reason", "remote_bye", "rx_packets", "tx_packets")}
        del call
        account.shutdown()
        ep.libDestroy()

    if answered_after is None:
        failures.append(f"the call was not answered (last status {result['last_code']} {result['last_reason']})")
    else:
        print(f"answered after {answered_after:.2f} s, connected for {connected_for:.2f} s")
        print(f"RTP packets: received {result['rx_packets']}, sent {result['tx_packets']}")
        if result["rx_packets"] == 0:
            failures.append("no RTP received from the server")
        if result["tx_packets"] == 0:
            failures.append("no RTP sent to the server")
        if args.digits and not dtmf_sent:
            failures.append("the call ended before the digits could be sent")
        if not we_hung_up and not result["remote_bye"]:
            failures.append(f"the call did not end with the server's BYE ({result['last_code']} {result['last_reason']})")
        if args.expect_hz:
            if not os.path.exists(out):
                failures.append("nothing was recorded")
            else:
                rate, samples = read_mono(out)
                wins = tone_windows(samples, rate, args.expect_hz)
                won = [i for i, (db, share) in enumerate(wins) if db > args.min_dbfs and share > 0.5]
                loud = sum(1 for db, _ in wins if db > args.min_dbfs)
                first = f", first at {won[0] * WINDOW_MS / 1000:.1f} s" if won else ""
                print(
                    f"heard {len(samples) / rate:.1f} s: {loud} of {len(wins)} windows above {args.min_dbfs:.0f} dBFS, "
                    f"{len(won)} dominated by {args.expect_hz:g} Hz{first} ({out})"
                )
                if len(won) < args.min_windows:
                    best = max((share for db, share in wins if db > args.min_dbfs), default=0.0)
                    failures.append(
                        f"the {args.expect_hz:g} Hz tone dominated only {len(won)} windows of {WINDOW_MS} ms "
                        f"(need {args.min_windows}; best share of a loud window {best:.2f})"
                    )

    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        if os.path.exists(out):
            print(f"heard audio kept in {out}", file=sys.stderr)
        return 1
    print("PASS: answered, media both ways" + (f", heard the {args.expect_hz:g} Hz tone" if args.expect_hz else ""))
    if not args.out:
        os.remove(out)
        os.rmdir(os.path.dirname(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
