#!/usr/bin/env python3
"""Writes what `loadgen bridge` needs into a directory: switchboard.yaml (BASE's settings plus a
queue `bench` and AGENTS agents lgagent0.. with SIP phones whose password is PASSWORD) and
flows/bench-bridge.yaml (number 3002 straight into the queue).

    bridge-setup.py OUT_DIR BASE_YAML AGENTS PASSWORD PASSWORD_HASH

PASSWORD_HASH is the agents' console password hash (`switchboard password-hash`); nobody logs in
to a console here, the config only needs one."""
import hashlib
import os
import sys

out, base, agents, password, pw_hash = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
os.makedirs(os.path.join(out, "flows"), exist_ok=True)
realm = "switchboard"
lines = [open(base).read().rstrip("\n"), "",
         "# loadgen bridge: one queue, agents on SIP phones (scripts/bench-data/bridge-setup.py).",
         "queues:",
         "  - name: bench",
         "    wrap_up: 1s",
         "    ring_timeout: 10s",
         "    announce_every: 600s",
         "agents:"]
for k in range(agents):
    user = f"lgagent{k}"
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    lines += [f"  - id: {user}", f"    name: Load agent {k}", f"    password_hash: \"{pw_hash}\"",
              "    queues: [bench]", f"    sip: {{ user: {user}, ha1: \"{ha1}\" }}"]
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
