//! The media clock (issue 7): one thread per core carries the media of every call that is not
//! bridged — prompts, menus, digit collection, music on hold — on one shared timer instead of a
//! timer and a task wake-up per call per frame.
//!
//! Every 20 ms a thread serves each of its calls once. For each it reads whatever reached the
//! call's RTP socket since the last time (one `recvmmsg`, never blocking), feeds it to the call's
//! [`RtpSession`], sends the frame that is due, and wakes the call's task only when the session
//! has something for it (a digit, a prompt that ended). So a call in the IVR costs no timer, no
//! task wake-up and no readiness event per frame: two system calls per 20 ms, one to read and one
//! to send.
//!
//! Why not `sendmmsg` as well: it batches datagrams of one socket, and each call has its own RTP
//! port (its peer latches onto it: symmetric RTP), so a tick's frames leave from as many sockets
//! as there are calls. One `recvmmsg` per call does pay: it reads every queued datagram and
//! tells that the socket is empty in one call, where `recv_from` needs one more to see
//! `WouldBlock`.
//!
//! A thread serves a quarter of its calls every 5 ms, each call always in the same quarter, so
//! its work and the frames it sends are spread over the period instead of leaving in one burst.
//! The tick is nominal: sessions are told the tick's planned time, not the time the thread woke,
//! so each tick sends exactly one frame per call and the receiver's gap error is only the
//! thread's wake-up jitter. Ticks missed by more than a frame (a stalled machine) are skipped;
//! each session then sends what it owes within its burst limit.
//!
//! A bridged call relays frames on arrival (waiting for a tick would add up to 20 ms each way),
//! so while [`RtpSession::is_bridged`] the engine leaves the call alone and the call's task
//! reads and sends itself (`call_task`). Both sides take the session's lock, so neither acts on a
//! session the other is driving.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::media::RtpSession;
use crate::time::Instant;

use super::clock::Clock;

const FRAME: Duration = Duration::from_millis(20);

/// One call's media as both its task and the engine see it.
pub struct CallMedia {
    session: Mutex<Option<RtpSession>>,
    /// The call's RTP socket (non-blocking).
    pub socket: UdpSocket,
    /// Woken by the engine when the session has an event ([`RtpSession::poll_event`]).
    pub wake: tokio::sync::Notify,
    closed: AtomicBool,
}

impl CallMedia {
    /// The session, locked: never held across an `.await`.
    pub fn session(&self) -> MutexGuard<'_, Option<RtpSession>> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One tick for this call, if the engine drives it (answered and not bridged).
    fn tick(&self, now: Instant, batch: &mut RecvBatch) {
        let mut guard = self.session();
        let Some(s) = guard.as_mut().filter(|s| !s.is_bridged()) else {
            return;
        };
        let fd = self.socket.as_raw_fd();
        loop {
            let n = batch.recv(fd);
            for i in 0..n {
                if let Some((from, bytes)) = batch.datagram(i) {
                    s.on_datagram(now, from, bytes);
                }
            }
            if n < BATCH {
                break;
            }
        }
        while let Some(tx) = s.poll_transmit(now) {
            let _ = self.socket.send_to(tx.bytes, tx.to);
        }
        if s.has_event() {
            self.wake.notify_one();
        }
    }
}

/// A call task's hold on its media. Dropping it (the call ended) lets the engine forget the call
/// at its next tick, which closes the socket.
pub struct MediaHandle(Arc<CallMedia>);

impl std::ops::Deref for MediaHandle {
    type Target = CallMedia;
    fn deref(&self) -> &CallMedia {
        &self.0
    }
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

impl MediaHandle {
    /// The socket registered with tokio for the call task's own reads while bridged. Dropping
    /// the result takes it out of the reactor again.
    pub fn register_reads(&self) -> std::io::Result<AsyncFd<RtpFd>> {
        // SAFETY: the descriptor is the call's socket, owned by the `CallMedia` that the `RtpFd`
        // keeps alive (an `Arc`), so it stays open and the same for the `AsyncFd`'s lifetime.
        unsafe { AsyncFd::register_with_interest(RtpFd(self.0.clone()), Interest::READABLE) }
            .map_err(std::io::Error::from)
    }
}

/// A call's RTP socket for `AsyncFd`: registered with tokio only while the call's task drives the
/// session, so the reactor is not woken by datagrams the engine reads.
pub struct RtpFd(Arc<CallMedia>);

impl RtpFd {
    pub fn socket(&self) -> &UdpSocket {
        &self.0.socket
    }
}

impl AsRawFd for RtpFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.socket.as_raw_fd()
    }
}

struct Worker {
    state: Mutex<WorkerState>,
    wake: Condvar,
    /// Calls handed to this worker and not yet forgotten: new calls go to the least loaded.
    load: AtomicUsize,
}

#[derive(Default)]
struct WorkerState {
    incoming: Vec<Arc<CallMedia>>,
    stop: bool,
}

impl Worker {
    fn state(&self) -> MutexGuard<'_, WorkerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The media threads. Dropping the engine stops them.
pub struct MediaEngine {
    workers: Vec<Arc<Worker>>,
}

impl MediaEngine {
    /// Starts `threads` media threads (at least one), idle until a call is attached.
    pub fn start(clock: Clock, threads: usize) -> std::io::Result<Self> {
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let w = Arc::new(Worker {
                state: Mutex::new(WorkerState::default()),
                wake: Condvar::new(),
                load: AtomicUsize::new(0),
            });
            let mine = w.clone();
            std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || run(&mine, clock))?;
            workers.push(w);
        }
        Ok(MediaEngine { workers })
    }

    /// One thread per core.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Hands a call's RTP socket (non-blocking) to the least loaded thread. The session is set
    /// once the call is answered ([`CallMedia::session`]).
    pub fn attach(&self, socket: UdpSocket) -> MediaHandle {
        let media = Arc::new(CallMedia {
            session: Mutex::new(None),
            socket,
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
        });
        if let Some(w) = self
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
        {
            w.load.fetch_add(1, Ordering::Relaxed);
            w.state().incoming.push(media.clone());
            w.wake.notify_one();
        }
        MediaHandle(media)
    }

    /// Calls each thread carries now (ended calls are forgotten at the next tick).
    pub fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        for w in &self.workers {
            w.state().stop = true;
            w.wake.notify_one();
        }
    }
}

/// One media thread: parked while it has no call, else one pass over a quarter of its calls every
/// 5 ms. Each call stays in its quarter, so each is served once per 20 ms; spreading the calls
/// over the period keeps a thread's bursts (and what a receiver gets at once) a quarter as big.
fn run(worker: &Worker, clock: Clock) {
    precise_sleeps();
    let mut buckets: [Vec<Arc<CallMedia>>; BUCKETS] = Default::default();
    let mut batch = RecvBatch::new();
    let mut tick: Option<(Instant, usize)> = None;
    loop {
        {
            let mut st = worker.state();
            loop {
                if st.stop {
                    return;
                }
                for c in st.incoming.drain(..) {
                    if let Some(b) = buckets.iter_mut().min_by_key(|b| b.len()) {
                        b.push(c);
                    }
                }
                if buckets.iter().any(|b| !b.is_empty()) {
                    break;
                }
                tick = None;
                st = worker.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        let (planned, bucket) = match tick {
            Some((t, b)) => (t + FRAME / BUCKETS as u32, (b + 1) % BUCKETS),
            None => (clock.now(), 0),
        };
        let now = clock.now();
        if planned > now {
            std::thread::sleep(planned - now);
        }
        // Late by a frame or more (a stalled machine): go on from now rather than catch up.
        let woke = clock.now();
        let t = if woke - planned >= FRAME {
            woke
        } else {
            planned
        };
        tick = Some((t, bucket));
        let Some(calls) = buckets.get_mut(bucket) else {
            continue;
        };
        let before = calls.len();
        calls.retain(|c| !c.closed.load(Ordering::Acquire));
        worker
            .load
            .fetch_sub(before - calls.len(), Ordering::Relaxed);
        for c in calls.iter() {
            c.tick(t, &mut batch);
        }
    }
}

/// The 20 ms period is served in this many slices.
const BUCKETS: usize = 4;

/// The kernel's default 50 µs timer slack would be most of a media thread's wake-up jitter.
fn precise_sleeps() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only sets this thread's timer slack (in ns); no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

/// Datagrams read by one `recvmmsg`.
pub const BATCH: usize = 8;
/// Bigger than any RTP packet we take; a longer datagram is dropped as truncated.
const DATAGRAM: usize = 2048;

/// Buffers for one `recvmmsg`, reused for every call and tick (`loadgen floor` reads the same way).
pub struct RecvBatch {
    bufs: Vec<[u8; DATAGRAM]>,
    // SAFETY of use: plain C structs, all-zero is a valid value.
    addrs: Vec<libc::sockaddr_storage>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        RecvBatch {
            bufs: vec![[0u8; DATAGRAM]; BATCH],
            // SAFETY: sockaddr_storage is a plain C struct for which all-zero is valid.
            addrs: vec![unsafe { std::mem::zeroed::<libc::sockaddr_storage>() }; BATCH],
            lens: [0; BATCH],
            truncated: [false; BATCH],
        }
    }

    /// Reads up to [`BATCH`] queued datagrams without blocking: how many were read (0 when none
    /// was waiting or the read failed).
    pub fn recv(&mut self, fd: RawFd) -> usize {
        let mut iovs: [libc::iovec; BATCH] = std::array::from_fn(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        });
        for (iov, buf) in iovs.iter_mut().zip(self.bufs.iter_mut()) {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = DATAGRAM;
        }
        // SAFETY: mmsghdr is a plain C struct for which all-zero is valid (null pointers, 0
        // lengths); every field the kernel reads is set below.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for ((m, iov), addr) in msgs.iter_mut().zip(iovs.iter_mut()).zip(&mut self.addrs) {
            m.msg_hdr.msg_name = std::ptr::from_mut(addr).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = std::ptr::from_mut(iov);
            m.msg_hdr.msg_iovlen = 1;
        }
        // A port-unreachable from an earlier send is reported once, by the next read; the
        // datagrams behind it are then read by trying again.
        for _ in 0..2 {
            // SAFETY: `msgs` holds BATCH headers, each pointing at one iovec over a live buffer
            // of DATAGRAM bytes and at a sockaddr_storage with its size; all outlive the call.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc > 0 {
                let n = usize::try_from(rc).unwrap_or(0).min(BATCH);
                for (i, m) in msgs.iter().enumerate().take(n) {
                    self.lens[i] = m.msg_len as usize;
                    self.truncated[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                }
                return n;
            }
            let err = std::io::Error::last_os_error();
            if rc == 0 || err.raw_os_error() != Some(libc::ECONNREFUSED) {
                return 0;
            }
        }
        0
    }

    /// The `i`th datagram of the last read and who sent it.
    pub fn datagram(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if *self.truncated.get(i)? {
            return None;
        }
        let from = socket_addr(self.addrs.get(i)?)?;
        let bytes = self.bufs.get(i)?.get(..*self.lens.get(i)?)?;
        Some((from, bytes))
    }
}

fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in here (family AF_INET); sockaddr_storage is
            // large and aligned enough for any socket address.
            let a = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6 (family AF_INET6).
            let a = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "media_engine_tests.rs"]
mod tests;
