# Sourced by the test scripts: `port` prints a loopback port that is free for both UDP and TCP
# and lies below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768+ on Debian),
# so a socket that some process binds to port 0 between our probe and our bind cannot take it.
# (CI once lost a run to exactly that: sipp's REGISTER port, picked from the ephemeral range,
# was taken by the time sipp bound it — "Unable to bind main socket, errno = 98".)
port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(21000, 32000)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p))
    except OSError:
        continue
    u.close(); t.close()
    print(p)
    break
else:
    raise SystemExit("no free port in 21000-32000")
PY
}
