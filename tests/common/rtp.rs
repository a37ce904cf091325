//! The softphone's media leg: one UDP socket, a thread that keeps every packet it receives, and a
//! thread that sends a packet every 20 ms (silence unless the test queued audio or key presses), so
//! a server doing symmetric RTP latches on to us as a real phone would make it.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::dtmf;
use super::g711::Law;

pub const FRAME: usize = 160;
const PTIME: Duration = Duration::from_millis(20);

/// One packet as it arrived.
#[derive(Clone, Debug)]
pub struct RxPacket {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub pt: u8,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub at: Instant,
    pub from: SocketAddr,
}

pub fn parse_rtp(buf: &[u8], at: Instant, from: SocketAddr) -> Option<RxPacket> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    let pt = buf[1] & 0x7F;
    // RTCP shares the version bits; its packet types 200-204 read as PT 72-76 here.
    if (72..=76).contains(&pt) {
        return None;
    }
    let cc = usize::from(buf[0] & 0x0F);
    let mut start = 12 + 4 * cc;
    if buf[0] & 0x10 != 0 {
        let ext = buf.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = buf.len();
    if buf[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*buf.last()?))?;
    }
    Some(RxPacket {
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        marker: buf[1] & 0x80 != 0,
        pt,
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: buf.get(start..end)?.to_vec(),
        at,
        from,
    })
}

pub fn build_rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.push(0x80);
    out.push(if marker { 0x80 } else { 0 } | (pt & 0x7F));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What the sender puts in one 20 ms slot.
#[derive(Clone, Debug)]
enum Slot {
    Audio(Vec<u8>),
    /// A telephone-event packet; `first` starts a new event (marker bit, new event timestamp).
    Event {
        payload: [u8; 4],
        first: bool,
    },
}

/// A packet we sent, for the self-tests and for timing assertions (e.g. barge-in latency).
#[derive(Clone, Debug)]
pub struct TxRecord {
    pub seq: u16,
    pub ts: u32,
    pub pt: u8,
    pub marker: bool,
    pub payload: Vec<u8>,
    pub at: Instant,
}

struct Shared {
    stop: AtomicBool,
    received: Mutex<Vec<RxPacket>>,
    sent: Mutex<Vec<TxRecord>>,
    queue: Mutex<VecDeque<Slot>>,
    remote: Mutex<Option<SocketAddr>>,
    law: Mutex<Law>,
    dtmf_pt: Mutex<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not turn every later lock into a second, confusing panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct RtpEndpoint {
    socket: UdpSocket,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl RtpEndpoint {
    pub fn bind() -> std::io::Result<RtpEndpoint> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            received: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            remote: Mutex::new(None),
            law: Mutex::new(Law::Mu),
            dtmf_pt: Mutex::new(101),
        });
        let rx_sock = socket.try_clone()?;
        let rx_shared = shared.clone();
        let rx = std::thread::spawn(move || receive_loop(rx_sock, rx_shared));
        Ok(RtpEndpoint {
            socket,
            shared,
            threads: vec![rx],
        })
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Starts sending to `remote` every 20 ms with `law` (and `dtmf_pt` for key presses).
    pub fn start_sending(&mut self, remote: SocketAddr, law: Law, dtmf_pt: Option<u8>) {
        *lock(&self.shared.remote) = Some(remote);
        *lock(&self.shared.law) = law;
        if let Some(pt) = dtmf_pt {
            *lock(&self.shared.dtmf_pt) = pt;
        }
        let already = self.threads.len() > 1;
        if already {
            return;
        }
        if let Ok(sock) = self.socket.try_clone() {
            let shared = self.shared.clone();
            self.threads
                .push(std::thread::spawn(move || send_loop(sock, shared)));
        }
    }

    /// Stops sending (the call is over) but keeps the packets already received.
    pub fn stop_sending(&self) {
        *lock(&self.shared.remote) = None;
    }

    pub fn received(&self) -> Vec<RxPacket> {
        lock(&self.shared.received).clone()
    }

    pub fn received_count(&self) -> usize {
        lock(&self.shared.received).len()
    }

    pub fn sent(&self) -> Vec<TxRecord> {
        lock(&self.shared.sent).clone()
    }

    /// Queues key presses as RFC 4733 events: `press_ms` per key, then `gap_ms` of silence.
    pub fn queue_rfc4733(&self, digits: &str, press_ms: u32, gap_ms: u32) -> Result<(), String> {
        let silence = vec![lock(&self.shared.law).silence_byte(); FRAME];
        let mut q = lock(&self.shared.queue);
        for d in digits.chars() {
            let payloads = dtmf::key_press_payloads(d, press_ms)
                .ok_or_else(|| format!("{d:?} is not a key"))?;
            for (i, p) in payloads.into_iter().enumerate() {
                q.push_back(Slot::Event {
                    payload: p,
                    first: i == 0,
                });
            }
            for _ in 0..gap_ms.div_ceil(20) {
                q.push_back(Slot::Audio(silence.clone()));
            }
        }
        Ok(())
    }

    /// Queues 8 kHz samples as audio frames in the current law.
    pub fn queue_pcm(&self, pcm: &[i16]) {
        let law = *lock(&self.shared.law);
        let mut q = lock(&self.shared.queue);
        for chunk in pcm.chunks(FRAME) {
            let mut frame = law.encode_all(chunk);
            frame.resize(FRAME, law.silence_byte());
            q.push_back(Slot::Audio(frame));
        }
    }

    /// Blocks until everything queued has been sent (bounded).
    pub fn wait_queue_drained(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if lock(&self.shared.queue).is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err("queued RTP was not sent in time (is the call up?)".into())
    }
}

impl Drop for RtpEndpoint {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn receive_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = [0u8; 2048];
    while !shared.stop.load(Ordering::SeqCst) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(p) = parse_rtp(&buf[..n], Instant::now(), from) {
                    lock(&shared.received).push(p);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // ICMP port unreachable from a server that already closed its port: keep listening.
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn send_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let ssrc: u32 = rand::random();
    let mut seq: u16 = rand::random();
    let ts0: u32 = rand::random();
    let start = Instant::now();
    let mut slot: u32 = 0;
    let mut event_ts = ts0;
    let mut first_audio = true;
    while !shared.stop.load(Ordering::SeqCst) {
        // Pace from the start time, not from the previous send, so the clock does not drift.
        let due = start + PTIME * slot;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let ts = ts0.wrapping_add(slot.wrapping_mul(FRAME as u32));
        slot = slot.wrapping_add(1);
        let Some(remote) = *lock(&shared.remote) else {
            continue;
        };
        let law = *lock(&shared.law);
        let dtmf_pt = *lock(&shared.dtmf_pt);
        let next = lock(&shared.queue).pop_front();
        let (pt, marker, pkt_ts, payload) = match next {
            Some(Slot::Event { payload, first }) => {
                if first {
                    event_ts = ts;
                }
                (dtmf_pt, first, event_ts, payload.to_vec())
            }
            Some(Slot::Audio(frame)) => {
                let m = std::mem::take(&mut first_audio);
                (law.payload_type(), m, ts, frame)
            }
            None => {
                let m = std::mem::take(&mut first_audio);
                (law.payload_type(), m, ts, vec![law.silence_byte(); FRAME])
            }
        };
        let pkt = build_rtp(pt, marker, seq, pkt_ts, ssrc, &payload);
        let _ = sock.send_to(&pkt, remote);
        lock(&shared.sent).push(TxRecord {
            seq,
            ts: pkt_ts,
            pt,
            marker,
            payload,
            at: Instant::now(),
        });
        seq = seq.wrapping_add(1);
    }
}
