#!/usr/bin/env python3
"""An independent caller (PJSIP's pjsua2) that checks a running switchboard end to end.

    pip install pjsua2-python
    scripts/test-pjsua2.py 127.0.0.1:5060 [--number 1000] [--digits 1] [--out heard.wav]

It calls the hello line (ivr-flows/hello.yaml, number 1000) from +12125550123 over UDP with G.711
only, records everything it hears to a WAV, sends "1" as RFC 4733 (RFC 2833) events once the menu
has had time to start, and waits for the server to end the call. It passes when:

  * the call was answered (200 OK, INVITE dialog confirmed);
  * RTP flowed both ways and what it heard is not silence, both before and after the digit
    (the reply to "1" is you-are-calling-from and the caller's digits);
  * the server hung up by itself with a BYE after the goodbye prompt, within --timeout seconds.

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
    print("test-pjsua2: the pjsua2 module is missing (pip install pjsua2-python)", file=sys.stderr)
    sys.exit(2)

FRAME_MS = 20
SILENCE_DBFS = -50.0  # frames quieter than this count as silence (G.711 idle noise is far below)


class Caller(pj.Call):
    """Keeps what the checks need; pjsua2 calls these from libHandleEvents on the main thread."""

    def __init__(self, account, recorder_path):
        super().__init__(account)
        self.recorder_path = recorder_path
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
        # A BYE we receive (role UAS) means the server ended the call itself.
        try:
            tsx = prm.e.body.tsxState.tsx
            if tsx.method == "BYE" and tsx.role == pj.PJSIP_ROLE_UAS:
                self.remote_bye = True
        except AttributeError:
            pass

    def onCallMediaState(self, prm):
        info = self.getInfo()
        for i, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE and self.recorder is None:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.recorder_path)
                self.getAudioMedia(i).startTransmit(self.recorder)

    def sample_stats(self):
        # Stream stats vanish with the stream, so sample them while the call is up.
        try:
            stat = self.getStreamStat(0)
            self.rx_packets = max(self.rx_packets, stat.rtcp.rxStat.pkt)
            self.tx_packets = max(self.tx_packets, stat.rtcp.txStat.pkt)
        except pj.Error:
            pass


class Result:
    """What the checks read, copied out of the call before PJSIP is torn down."""

    def __init__(self, call):
        for name in ("last_code", "last_reason", "remote_bye", "rx_packets", "tx_packets"):
            setattr(self, name, getattr(call, name))


def frames_dbfs(path, start_s=0.0, end_s=None):
    """Level of each 20 ms frame of a 16-bit mono WAV between start_s and end_s."""
    with wave.open(path, "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        data = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit samples, got {8 * width}-bit")
    samples = struct.unpack(f"<{len(data) // 2}h", data)[::channels]
    per_frame = rate * FRAME_MS // 1000
    first = int(start_s * rate)
    last = len(samples) if end_s is None else min(len(samples), int(end_s * rate))
    levels = []
    for i in range(first, last - per_frame + 1, per_frame):
        chunk = samples[i : i + per_frame]
        rms = math.sqrt(sum(s * s for s in chunk) / len(chunk))
        levels.append(20 * math.log10(rms / 32768) if rms > 0 else -120.0)
    return levels, len(samples) / rate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("server", help="the server's SIP address, host:port")
    parser.add_argument("--number", default="1000", help="number to dial (default 1000, the hello flow)")
    parser.add_argument("--caller", default="+12125550123", help="our number, the From user")
    parser.add_argument("--digits", default="1", help="keys to send as RFC 4733 events (default 1)")
    parser.add_argument("--dtmf-after", type=float, default=4.0, help="seconds after answer to send them")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server's BYE")
    parser.add_argument("--out", help="keep what was heard in this WAV (default: a temp file, deleted on success)")
    parser.add_argument(
        "--no-remote-hangup", action="store_true", help="hang up ourselves at --timeout instead of expecting the server to"
    )
    parser.add_argument("--log-level", type=int, default=1, help="PJSIP console log level (0-6)")
    args = parser.parse_args()
    if ":" not in args.server:
        parser.error("server must be host:port")

    out = args.out or os.path.join(tempfile.mkdtemp(prefix="switchboard-pjsua2-"), "heard.wav")
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    # Callbacks on this thread only: Python objects must not be touched from PJSIP's own threads.
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "switchboard-test-pjsua2"
    cfg.logConfig.level = args.log_level
    cfg.logConfig.consoleLevel = args.log_level
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()  # no sound card on a CI machine; the recorder is our ear

    # Offer only G.711, as the server's contract supports (PCMU, PCMA) + telephone-event.
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

    call = Caller(account, out)
    failures = []
    dtmf_sent_at = None
    started = time.monotonic()
    try:
        call.makeCall(f"sip:{args.number}@{args.server}", pj.CallOpParam(True))
        deadline = started + args.timeout
        while not call.disconnected and time.monotonic() < deadline:
            ep.libHandleEvents(10)
            if call.confirmed_at is not None:
                call.sample_stats()
                if dtmf_sent_at is None and time.monotonic() - call.confirmed_at >= args.dtmf_after and args.digits:
                    prm = pj.CallSendDtmfParam()
                    prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
                    prm.digits = args.digits
                    call.sendDtmf(prm)
                    dtmf_sent_at = time.monotonic()
        if not call.disconnected:
            if not args.no_remote_hangup:
                failures.append(f"the server did not end the call within {args.timeout:.0f} s")
            call.hangup(pj.CallOpParam(True))
            end = time.monotonic() + 5
            while not call.disconnected and time.monotonic() < end:
                ep.libHandleEvents(10)
    finally:
        call.recorder = None  # closes the WAV (writes its header) before we read it
        connected_for = (time.monotonic() - call.confirmed_at) if call.confirmed_at else 0.0
        confirmed_after = (call.confirmed_at - started) if call.confirmed_at else None
        dtmf_offset = (dtmf_sent_at - call.confirmed_at) if dtmf_sent_at and call.confirmed_at else None
        result = Result(call)
        # PJSIP objects must go before the library does, or their destructors assert.
        del call
        account.shutdown()
        ep.libDestroy()
    call = result

    if confirmed_after is None:
        failures.append(f"the call was not answered (last status {call.last_code} {call.last_reason})")
    else:
        print(f"answered after {confirmed_after:.2f} s, connected for {connected_for:.2f} s")
        if call.rx_packets == 0:
            failures.append("no RTP received from the server")
        if call.tx_packets == 0:
            failures.append("no RTP sent to the server")
        print(f"RTP packets: received {call.rx_packets}, sent {call.tx_packets}")
        if args.digits and dtmf_offset is None:
            failures.append("the call ended before the digits could be sent")
        if not os.path.exists(out):
            failures.append("nothing was recorded")
        else:
            levels, seconds = frames_dbfs(out)
            loud = [lv for lv in levels if lv > SILENCE_DBFS]
            print(f"heard {seconds:.2f} s, {len(loud)} of {len(levels)} frames above {SILENCE_DBFS:.0f} dBFS ({out})")
            if len(loud) < 25:  # half a second of sound at least
                failures.append("what we heard is silence")
            if dtmf_offset is not None:
                after, _ = frames_dbfs(out, start_s=dtmf_offset)
                if sum(1 for lv in after if lv > SILENCE_DBFS) < 25:
                    failures.append(f"no answer was heard after sending {args.digits!r}")
        if not args.no_remote_hangup and not call.remote_bye:
            failures.append(f"the call did not end with the server's BYE (last status {call.last_code} {call.last_reason})")

    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        if os.path.exists(out):
            print(f"heard audio kept in {out}", file=sys.stderr)
        return 1
    print("ok: answered, media both ways, not silent, answered the digits, server hung up cleanly")
    if not args.out:
        os.remove(out)
        os.rmdir(os.path.dirname(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
