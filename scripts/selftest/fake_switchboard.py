#!/usr/bin/env python3
"""A stand-in for switchboard's SIP side, only to test the peer scripts themselves.

test-sipp.sh and test-pjsua2.py are meant to run against the real server; until it exists (and to
check a change to the scripts without building it) this answers them the way the contract says the
server will: OPTIONS 200 with Allow; INVITE to a claimed number rings, then answers with PCMU and
telephone-event and plays a WAV prompt; unknown numbers get 404; CANCEL while ringing gets 200 and
487; BYE 200. RFC 4733 digits it hears go to --events as JSON lines, so selftest.sh can check that
the pcap's digits really arrive. For the hello line (1000) it behaves like ivr-flows/hello.yaml:
"1" plays you-are-calling-from and hangs up with a BYE.

Loopback only, single-purpose, not a SIP implementation: no authentication, no forking, no
re-INVITE, no transaction timers beyond resending the final response to a retransmitted request.
"""

import argparse
import json
import random
import re
import socket
import struct
import threading
import time
import wave

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
LOCK = threading.Lock()


def ulaw(sample):
    """G.711 mu-law encode one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent = 7
    for exp in range(7, -1, -1):
        if sample & (0x4000 >> (7 - exp)):
            exponent = exp
            break
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def load_ulaw(path):
    with wave.open(path, "rb") as w:
        frames = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    return bytes(ulaw(s) for s in samples)


def parse(data):
    """Return (start_line, headers{lower-name: [values]}, body) or None."""
    try:
        text = data.decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        return lines[0], headers, body
    except ValueError:
        return None


class Call:
    def __init__(self, call_id):
        self.call_id = call_id
        self.state = "ringing"
        self.to_tag = f"{random.getrandbits(32):08x}"
        self.invite = None  # (start, headers, body, reply)
        self.last_invite_response = None
        self.remote_rtp = None
        self.digits = []
        self.seen_events = set()
        self.rtp_sock = None
        self.stop = threading.Event()
        self.prompt_queue = []


class Server:
    def __init__(self, args):
        self.args = args
        self.calls = {}
        self.events_file = open(args.events, "a", buffering=1) if args.events else None  # noqa: SIM115 (lives as long as the server)
        host, port = args.listen.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.host, self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((self.host, self.port))
        self.tcp.listen(8)
        self.prompts = {
            name: load_ulaw(f"{args.sounds}/en/{name}.wav")
            for name in ("welcome", "hello-menu", "you-are-calling-from", "goodbye")
        }

    def log(self, **event):
        event["t"] = round(time.time(), 3)
        line = json.dumps(event)
        print(line, flush=True)
        if self.events_file:
            self.events_file.write(line + "\n")

    # --- transport ---------------------------------------------------------------------------
    def serve(self):
        threading.Thread(target=self.serve_tcp, daemon=True).start()
        while True:
            data, addr = self.udp.recvfrom(65535)
            self.handle(data, lambda out, a=addr: self.udp.sendto(out.encode(), a), "UDP")

    def serve_tcp(self):
        while True:
            conn, _ = self.tcp.accept()
            threading.Thread(target=self.tcp_conn, args=(conn,), daemon=True).start()

    def tcp_conn(self, conn):
        buf = b""
        send = lambda out: conn.sendall(out.encode())
        while True:
            chunk = conn.recv(65535)
            if not chunk:
                return
            buf += chunk
            while b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^(content-length|l)\s*:\s*(\d+)", head)
                length = int(m.group(2)) if m else 0
                if len(rest) < length:
                    break
                self.handle(head + b"\r\n\r\n" + rest[:length], send, "TCP")
                buf = rest[length:]

    # --- SIP -----------------------------------------------------------------------------------
    def response(self, headers, code, reason, to_tag=None, extra=(), body=""):
        to = headers["to"][0]
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in headers.get("via", [])]
        lines += [f"From: {headers['from'][0]}", f"To: {to}", f"Call-ID: {headers['call-id'][0]}", f"CSeq: {headers['cseq'][0]}"]
        lines += list(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def handle(self, data, reply, transport):
        msg = parse(data)
        if not msg or not msg[0] or msg[0].startswith("SIP/2.0"):
            return
        start, h, body = msg
        method, uri = start.split(" ")[:2]
        if not all(k in h for k in ("via", "from", "to", "call-id", "cseq")):
            return
        call_id = h["call-id"][0]
        user = re.sub(r"^sips?:", "", uri).split("@")[0].split(";")[0]
        contact = f"Contact: <sip:switchboard@{self.host}:{self.port}>"
        if method == "OPTIONS":
            self.log(event="options", transport=transport)
            reply(self.response(h, 200, "OK", "opt", [f"Allow: {ALLOW}", "Accept: application/sdp"]))
        elif method == "INVITE":
            with LOCK:
                call = self.calls.get(call_id)
                if call is not None:  # retransmission: repeat what we last said
                    if call.last_invite_response:
                        reply(call.last_invite_response)
                    return
                call = self.calls[call_id] = Call(call_id)
            call.invite = (start, h, body, reply)
            if user not in self.args.numbers:
                self.log(event="rejected", call_id=call_id, dialed=user, code=404)
                call.state = "rejected"
                call.last_invite_response = self.response(h, 404, "Not Found", call.to_tag)
                reply(call.last_invite_response)
                return
            m = re.search(r"c=IN IP4 (\S+)", body)
            p = re.search(r"m=audio (\d+)", body)
            call.remote_rtp = (m.group(1), int(p.group(1))) if m and p else None
            caller = re.search(r"<?sips?:([^@>;]+)", h["from"][0])
            call.caller = caller.group(1) if caller else ""
            call.dialed = user
            call.contact = re.search(r"<?(sips?:[^>;]+)", h["contact"][0]).group(1) if "contact" in h else None
            call.reply = reply
            self.log(event="invite", call_id=call_id, dialed=user, caller=call.caller, transport=transport)
            reply(self.response(h, 100, "Trying"))
            call.last_invite_response = self.response(h, 180, "Ringing", call.to_tag, [contact])
            reply(call.last_invite_response)
            threading.Timer(self.args.answer_delay, self.answer, args=(call, contact)).start()
        elif method == "CANCEL":
            call = self.calls.get(call_id)
            if not call or call.invite is None:
                reply(self.response(h, 481, "Call/Transaction Does Not Exist"))
                return
            invite_branch = re.search(r"branch=([^;\s]+)", call.invite[1]["via"][0]).group(1)
            cancel_branch = re.search(r"branch=([^;\s]+)", h["via"][0]).group(1)
            if invite_branch != cancel_branch:
                self.log(event="cancel-mismatch", call_id=call_id)
                reply(self.response(h, 481, "Call/Transaction Does Not Exist"))
                return
            reply(self.response(h, 200, "OK", call.to_tag))
            with LOCK:
                if call.state == "ringing":
                    call.state = "cancelled"
                    call.last_invite_response = self.response(call.invite[1], 487, "Request Terminated", call.to_tag)
                    call.invite[3](call.last_invite_response)
                    self.log(event="cancelled", call_id=call_id)
        elif method == "ACK":
            call = self.calls.get(call_id)
            if call and call.state == "answered":
                call.state = "confirmed"
                self.log(event="ack", call_id=call_id)
                threading.Thread(target=self.media, args=(call,), daemon=True).start()
            elif call:
                # The ACK of a non-2xx answer belongs to the INVITE transaction (RFC 3261 17.1.1.3):
                # a different branch would not match it, and a real server would keep resending.
                branch = lambda hdrs: re.search(r"branch=([^;\s]+)", hdrs["via"][0]).group(1)
                matched = branch(h) == branch(call.invite[1])
                self.log(event="ack-final" if matched else "ack-branch-mismatch", call_id=call_id, state=call.state)
        elif method == "BYE":
            call = self.calls.get(call_id)
            reply(self.response(h, 200, "OK"))
            if call:
                call.stop.set()
                self.log(event="bye", call_id=call_id, by="caller", digits="".join(call.digits))
        elif method == "INFO":
            reply(self.response(h, 200, "OK"))
        else:
            reply(self.response(h, 405, "Method Not Allowed", extra=[f"Allow: {ALLOW}"]))

    def answer(self, call, contact):
        with LOCK:
            if call.state != "ringing":
                return
            call.state = "answered"
        call.rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        call.rtp_sock.bind((self.host, 0))
        port = call.rtp_sock.getsockname()[1]
        sdp = (
            f"v=0\r\no=switchboard 1 1 IN IP4 {self.host}\r\ns=switchboard\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
        )
        h = call.invite[1]
        call.last_invite_response = self.response(h, 200, "OK", call.to_tag, [contact, f"Allow: {ALLOW}"], sdp)
        call.invite[3](call.last_invite_response)
        self.log(event="answered", call_id=call.call_id, rtp_port=port)

    # --- media ---------------------------------------------------------------------------------
    def media(self, call):
        threading.Thread(target=self.rtp_in, args=(call,), daemon=True).start()
        call.prompt_queue = ["welcome", "hello-menu"] if call.dialed == "1000" else ["welcome"]
        seq, ts, ssrc = random.getrandbits(16), random.getrandbits(32), random.getrandbits(32)
        silence = bytes([0xFF]) * 160
        audio = b""
        next_send = time.monotonic()
        hangup_after_prompts = False
        while not call.stop.is_set():
            if not audio and call.prompt_queue:
                name = call.prompt_queue.pop(0)
                if name == "BYE":
                    hangup_after_prompts = True
                else:
                    audio = self.prompts[name]
                    self.log(event="play", call_id=call.call_id, prompt=name)
            elif not audio and hangup_after_prompts:
                self.send_bye(call)
                return
            frame, audio = (audio[:160].ljust(160, b"\xff"), audio[160:]) if audio else (silence, b"")
            if call.remote_rtp:
                pkt = struct.pack(">BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + frame
                call.rtp_sock.sendto(pkt, call.remote_rtp)
            seq, ts = seq + 1, ts + 160
            next_send += 0.02
            time.sleep(max(0.0, next_send - time.monotonic()))

    def rtp_in(self, call):
        call.rtp_sock.settimeout(0.2)
        while not call.stop.is_set():
            try:
                pkt, _ = call.rtp_sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(pkt) < 16 or (pkt[1] & 0x7F) != 101:
                continue
            ts = struct.unpack(">I", pkt[4:8])[0]
            event, flags = pkt[12], pkt[13]
            # one digit per event timestamp, counted at its end bit (RFC 4733 section 2.5.1.4)
            if flags & 0x80 and ts not in call.seen_events:
                call.seen_events.add(ts)
                digit = "0123456789*#ABCD"[event] if event < 16 else "?"
                call.digits.append(digit)
                self.log(event="digit", call_id=call.call_id, digit=digit)
                if call.dialed == "1000" and digit == "1":
                    call.prompt_queue[:] = ["you-are-calling-from", "goodbye", "BYE"]

    def send_bye(self, call):
        h = call.invite[1]
        frm, to = h["from"][0], h["to"][0] + f";tag={call.to_tag}"
        target = call.contact or re.sub(r"^[^ ]+ ", "", call.invite[0]).split(" ")[0]
        via_proto = "TCP" if "TCP" in h["via"][0].upper() else "UDP"
        bye = (
            f"BYE {target} SIP/2.0\r\nVia: SIP/2.0/{via_proto} {self.host}:{self.port};branch=z9hG4bK{random.getrandbits(40):x}\r\n"
            f"From: {to}\r\nTo: {frm}\r\nCall-ID: {call.call_id}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        call.reply(bye)
        call.stop.set()
        self.log(event="bye", call_id=call.call_id, by="system", digits="".join(call.digits))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:5090")
    parser.add_argument("--sounds", required=True, help="the repo's sounds/ folder")
    parser.add_argument("--numbers", nargs="+", default=["7000", "1000", "+551130000000"])
    parser.add_argument("--answer-delay", type=float, default=1.0)
    parser.add_argument("--events", help="append JSON lines of what happened here")
    args = parser.parse_args()
    Server(args).serve()


if __name__ == "__main__":
    main()
