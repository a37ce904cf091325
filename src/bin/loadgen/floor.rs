//! The kernel's share of a call, measured without the server (issue 7): the least CPU any media
//! server with one UDP socket per call spends on a call's packets on this machine.
//!
//! `calls` socket pairs on loopback. A "phone" thread sends one 172-byte RTP-sized datagram per
//! call every 20 ms and drains what comes back. A "server" thread does only what the media
//! engine's I/O does for an IVR call: every 20 ms, for each call, one `recvmmsg` (the same
//! [`RecvBatch`] the engine uses) and one `send_to`. Its CPU time (the thread's own clock, so the
//! phone thread is not counted) over the window, per call, is the floor that the per-call CPU
//! targets compare with. On loopback the sender's system call also carries the delivery into the
//! receiving socket and the receiver's wake-up, as it does for the server in the bench.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::runtime::udp::{RecvBatch, BATCH};

pub struct Args {
    pub calls: usize,
    pub duration: Duration,
}

const FRAME: Duration = Duration::from_millis(20);
const PACKET: usize = 172;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn pair() -> anyhow::Result<(UdpSocket, UdpSocket)> {
    let server = UdpSocket::bind("127.0.0.1:0")?;
    let phone = UdpSocket::bind("127.0.0.1:0")?;
    server.set_nonblocking(true)?;
    phone.set_nonblocking(true)?;
    server.connect(phone.local_addr()?)?;
    phone.connect(server.local_addr()?)?;
    Ok((server, phone))
}

/// Sleeps to the next 20 ms tick after `tick`, returning it.
fn next_tick(tick: Instant) -> Instant {
    let next = tick + FRAME;
    let now = Instant::now();
    if next > now {
        std::thread::sleep(next - now);
    }
    next
}

pub fn run(a: Args) -> anyhow::Result<serde_json::Value> {
    let mut servers = Vec::with_capacity(a.calls);
    let mut phones = Vec::with_capacity(a.calls);
    for _ in 0..a.calls {
        let (s, p) = pair()?;
        servers.push(s);
        phones.push(p);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let phone_stop = stop.clone();
    let phone = std::thread::spawn(move || {
        let pkt = [0x80u8; PACKET];
        let mut buf = [0u8; 2048];
        let mut tick = Instant::now();
        while !phone_stop.load(Ordering::Relaxed) {
            for p in &phones {
                let _ = p.send(&pkt);
                while p.recv(&mut buf).is_ok() {}
            }
            tick = next_tick(tick);
        }
    });
    let server = std::thread::spawn(move || {
        let mut batch = RecvBatch::new();
        let pkt = [0x80u8; PACKET];
        let (mut received, mut sent) = (0u64, 0u64);
        let started = Instant::now();
        let cpu0 = thread_cpu();
        let mut tick = Instant::now();
        while started.elapsed() < a.duration {
            for s in &servers {
                let fd = s.as_raw_fd();
                loop {
                    let n = batch.recv(fd);
                    received += n as u64;
                    if n < BATCH {
                        break;
                    }
                }
                if s.send(&pkt).is_ok() {
                    sent += 1;
                }
            }
            tick = next_tick(tick);
        }
        (thread_cpu() - cpu0, started.elapsed(), received, sent)
    });
    let (cpu, window, received, sent) = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
    stop.store(true, Ordering::Relaxed);
    let _ = phone.join();
    let pct_core = 100.0 * cpu.as_secs_f64() / window.as_secs_f64();
    let calls = a.calls.max(1) as f64;
    let packets = (received + sent).max(1) as f64;
    Ok(serde_json::json!({
        "mode": "floor",
        "calls": a.calls,
        "window_s": window.as_secs_f64(),
        "received": received,
        "sent": sent,
        "server_thread_cpu_pct_core": pct_core,
        "cpu_pct_core_per_call": pct_core / calls,
        "cpu_us_per_packet": cpu.as_secs_f64() * 1e6 / packets,
    }))
}
