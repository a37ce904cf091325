#!/usr/bin/env python3
"""Writes what `loadgen bridge` and `loadgen rtc-bridge` need into a directory: switchboard.yaml (BASE's settings plus a
queue `bench` and AGENTS agents lgagent0.. with SIP phones whose password is PASSWORD) and
flows/bench-bridge.yaml (number 3002 straight into the queue).

    bridge-setup.py OUT_DIR BASE_YAML AGENTS PASSWORD PASSWORD_HASH [OTHER_QUEUES [SKILLS]]

PASSWORD_HASH is the agents' console password hash (`switchboard password-hash` of PASSWORD):
`loadgen rtc-bridge` signs the same agents in at the console to answer over WebRTC. OTHER_QUEUES (comma-separated) are declared too for other flows served by
the same server (scripts/soak: the shipped flows' queues), with one stand-in agent who never logs
in and has SKILLS (`billing:2,portuguese:1`) so those flows' skill needs check out."""
import hashlib
import os
import sys

out, base, agents, password, pw_hash = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
others = [q for q in (sys.argv[6] if len(sys.argv) > 6 else "").split(",") if q]
skills = [k.replace(":", ": ") for k in (sys.argv[7] if len(sys.argv) > 7 else "").split(",") if k]
os.makedirs(os.path.join(out, "flows"), exist_ok=True)
realm = "switchboard"
lines = [open(base).read().rstrip("\n"), "",
         "# loadgen bridge: one queue, agents on SIP phones (scripts/bench-data/bridge-setup.py).",
         "queues:",
         "  - name: bench",
         "    wrap_up: 1s",
         "    ring_timeout: 10s",
         "    announce_every: 600s"]
lines += [f"  - name: {q}" for q in others] + ["agents:"]
for k in range(agents):
    user = f"lgagent{k}"
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    lines += [f"  - id: {user}", f"    name: Load agent {k}", f"    password_hash: \"{pw_hash}\"",
              "    queues: [bench]", f"    sip: {{ user: {user}, ha1: \"{ha1}\" }}"]
if others:
    lines += ["  - id: standin", "    name: Stand-in", f"    password_hash: \"{pw_hash}\"",
              f"    queues: [{', '.join(others)}]", f"    skills: {{ {', '.join(skills)} }}"]
open(os.path.join(out, "switchboard.yaml"), "w").write("\n".join(lines) + "\n")
open(os.path.join(out, "flows", "bench-bridge.yaml"), "w").write("""\
# loadgen bridge: every call waits in queue `bench` until a SIP agent answers.
flow: bench-bridge
numbers: ["3002"]
language: en
start: queue
steps:
  queue:
    queue: { name: bench, timeout: 2m }
    on_timeout: hangup
""")
