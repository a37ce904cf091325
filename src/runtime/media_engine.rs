//! The media threads (issue 7): one thread per core carries the media of every call — prompts,
//! menus, digit collection, music on hold, and the relay of a call bridged to a SIP agent — on
//! one shared timer and one `epoll` set, instead of a timer, a task wake-up and a readiness event
//! per call per frame.
//!
//! Every 20 ms a thread serves each of its calls once. For each it reads whatever reached the
//! call's RTP socket since the last time (one `recvmmsg`, never blocking), feeds it to the call's
//! [`RtpSession`], sends the frame that is due, and wakes the call's task only when the session
//! has something for it (a digit, a prompt that ended). So a call in the IVR costs no timer, no
//! task wake-up and no readiness event per frame: two system calls per 20 ms, one to read and one
//! to send.
//!
//! A thread serves a quarter of its calls every 5 ms, each call always in the same quarter, so
//! its work and the frames it sends are spread over the period instead of leaving in one burst.
//! The tick is nominal: sessions are told the tick's planned time, not the time the thread woke,
//! so each tick sends exactly one frame per call and the receiver's gap error is only the
//! thread's wake-up jitter. Ticks missed by more than a frame (a stalled machine) are skipped;
//! each session then sends what it owes within its burst limit.
//!
//! A call bridged to a SIP agent is relayed on arrival (waiting for a tick would add up to 20 ms
//! each way): both RTP sockets are in the thread's `epoll` set, and a frame from either side goes
//! out to the other as soon as it is read, in the same thread. A call bridged to a browser or to a
//! transfer target is left to its task (`call_task`), which then reads the socket itself. Both
//! take the session's lock, and the session says who drives it ([`CallMedia::task_drives`]).
//!
//! Why not `sendmmsg`: it batches datagrams of one socket, and each call has its own RTP port (its
//! peer latches onto it: symmetric RTP), so a tick's frames leave from as many sockets as there
//! are calls. One `recvmmsg` per call does pay: it reads every queued datagram and tells that the
//! socket is empty in one call, where `recv_from` needs one more to see `WouldBlock`.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::media::RtpSession;
use crate::time::Instant;

use super::clock::Clock;
use super::outbound::LegPacket;
use super::udp::{RecvBatch, BATCH};

const FRAME: Duration = Duration::from_millis(20);

/// How long each of the agent's keys is held towards the caller.
pub const AGENT_DTMF: Duration = Duration::from_millis(100);

/// The other leg of a bridge that the media threads relay on arrival: a SIP agent's RTP leg.
pub trait RelayLeg: Send + Sync {
    fn socket(&self) -> &UdpSocket;
    /// One datagram from the leg's far end: its audio as µ-law (an A-law one's converted into
    /// `conv`), or a key.
    fn read<'a>(&self, bytes: &'a [u8], conv: &'a mut Vec<u8>) -> Option<LegPacket<'a>>;
    /// One µ-law frame towards the far end.
    fn send_frame(&self, frame: &[u8]);
}

/// One call's media as both its task and the media thread see it.
pub struct CallMedia {
    session: Mutex<Option<RtpSession>>,
    /// The call's RTP socket (non-blocking).
    pub socket: UdpSocket,
    /// Woken by the media thread when the session has an event ([`RtpSession::poll_event`]).
    pub wake: tokio::sync::Notify,
    closed: AtomicBool,
    /// Non-zero while the media thread relays the call to a SIP agent: that relay's number.
    /// Changed only with the session's lock held.
    relay: AtomicU64,
    worker: usize,
}

impl AsRef<UdpSocket> for CallMedia {
    fn as_ref(&self) -> &UdpSocket {
        &self.socket
    }
}

impl CallMedia {
    /// The session, locked: never held across an `.await`.
    pub fn session(&self) -> MutexGuard<'_, Option<RtpSession>> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the call's task reads and sends for `session` itself: bridged, but not relayed by
    /// the media thread. Ask with the session's lock held.
    pub fn task_drives(&self, session: &RtpSession) -> bool {
        session.is_bridged() && self.relay.load(Ordering::Acquire) == 0
    }

    /// One tick for this call: unless its task drives it, read (when not relayed: the relay
    /// reads on arrival), send what is due, and wake the task for events.
    fn tick(&self, now: Instant, batch: &mut RecvBatch) {
        let mut guard = self.session();
        let Some(s) = guard.as_mut() else {
            return;
        };
        if self.task_drives(s) {
            return;
        }
        if !s.is_bridged() {
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
        }
        while let Some(tx) = s.poll_transmit(now) {
            let _ = self.socket.send_to(tx.bytes, tx.to);
        }
        if s.has_event() {
            self.wake.notify_one();
        }
    }
}

/// A call task's hold on its media. Dropping it (the call ended) lets the media thread forget
/// the call at its next tick, which closes the socket.
pub struct MediaHandle {
    media: Arc<CallMedia>,
    engine: Arc<Shared>,
}

impl std::ops::Deref for MediaHandle {
    type Target = CallMedia;
    fn deref(&self) -> &CallMedia {
        &self.media
    }
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        self.media.relay.store(0, Ordering::Release);
        self.media.closed.store(true, Ordering::Release);
    }
}

impl MediaHandle {
    /// The shared media, for a tokio registration while the task drives it
    /// ([`super::udp::register_reads`]).
    pub fn shared(&self) -> &Arc<CallMedia> {
        &self.media
    }

    /// Whether the media thread relays the call to a SIP agent now.
    pub fn is_relayed(&self) -> bool {
        self.media.relay.load(Ordering::Acquire) != 0
    }

    /// Has the media thread relay the bridged call to `leg` (a SIP agent) on arrival both ways,
    /// or (`None`) stop: the session is then the task's (still bridged) or the thread's again.
    pub fn set_relay(&self, leg: Option<Arc<dyn RelayLeg>>) {
        let guard = self.media.session();
        match leg {
            Some(leg) => {
                let id = self.engine.next_relay.fetch_add(1, Ordering::Relaxed);
                self.media.relay.store(id, Ordering::Release);
                drop(guard);
                if let Some(w) = self.engine.workers.get(self.media.worker) {
                    w.state().relays.push((self.media.clone(), leg, id));
                    w.kick();
                }
            }
            None => {
                self.media.relay.store(0, Ordering::Release);
                drop(guard);
            }
        }
    }
}

struct Worker {
    state: Mutex<WorkerState>,
    /// An eventfd in the thread's epoll set: written to wake it for new work or to stop.
    kick: OwnedFd,
    /// Calls handed to this worker and not yet forgotten: new calls go to the least loaded.
    load: AtomicUsize,
}

#[derive(Default)]
struct WorkerState {
    incoming: Vec<Arc<CallMedia>>,
    relays: Vec<(Arc<CallMedia>, Arc<dyn RelayLeg>, u64)>,
    stop: bool,
}

impl Worker {
    fn state(&self) -> MutexGuard<'_, WorkerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kick(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
        let _ = unsafe {
            libc::write(
                self.kick.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

struct Shared {
    workers: Vec<Arc<Worker>>,
    next_relay: AtomicU64,
}

/// The media threads. Dropping the engine stops them.
pub struct MediaEngine {
    shared: Arc<Shared>,
}

fn cvt(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A new descriptor from a libc call that returns one.
fn owned(rc: libc::c_int) -> std::io::Result<OwnedFd> {
    // SAFETY: `rc` is a descriptor the kernel just returned to us and nothing else owns.
    cvt(rc).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

impl MediaEngine {
    /// Starts `threads` media threads (at least one), idle until a call is attached.
    pub fn start(clock: Clock, threads: usize) -> std::io::Result<Self> {
        let mut workers = Vec::new();
        let mut threads_io = Vec::new();
        for _ in 0..threads.max(1) {
            // SAFETY: plain system calls creating descriptors; no pointers.
            let kick = owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
            let io = ThreadIo::new(&kick)?;
            workers.push(Arc::new(Worker {
                state: Mutex::new(WorkerState::default()),
                kick,
                load: AtomicUsize::new(0),
            }));
            threads_io.push(io);
        }
        for (i, (w, io)) in workers.iter().zip(threads_io).enumerate() {
            let mine = w.clone();
            std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || run(&mine, io, clock))?;
        }
        Ok(MediaEngine {
            shared: Arc::new(Shared {
                workers,
                next_relay: AtomicU64::new(1),
            }),
        })
    }

    /// One thread per core.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Hands a call's RTP socket (non-blocking) to the least loaded thread. The session is set
    /// once the call is answered ([`CallMedia::session`]).
    pub fn attach(&self, socket: UdpSocket) -> MediaHandle {
        let workers = &self.shared.workers;
        let worker = (0..workers.len())
            .min_by_key(|&i| workers[i].load.load(Ordering::Relaxed))
            .unwrap_or(0);
        let media = Arc::new(CallMedia {
            session: Mutex::new(None),
            socket,
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            relay: AtomicU64::new(0),
            worker,
        });
        if let Some(w) = workers.get(worker) {
            w.load.fetch_add(1, Ordering::Relaxed);
            w.state().incoming.push(media.clone());
            w.kick();
        }
        MediaHandle {
            media,
            engine: self.shared.clone(),
        }
    }

    /// Calls each thread carries now (ended calls are forgotten at the next tick).
    pub fn loads(&self) -> Vec<usize> {
        self.shared
            .workers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        for w in &self.shared.workers {
            w.state().stop = true;
            w.kick();
        }
    }
}

/// Tokens in a thread's epoll set: its eventfd and timerfd, then two per relay.
const KICK: u64 = u64::MAX;
const TIMER: u64 = u64::MAX - 1;

/// A thread's epoll set and its slice timer.
struct ThreadIo {
    epoll: OwnedFd,
    timer: OwnedFd,
}

impl ThreadIo {
    fn new(kick: &OwnedFd) -> std::io::Result<Self> {
        // SAFETY: plain system calls creating descriptors; no pointers.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let timer = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        let io = ThreadIo { epoll, timer };
        io.add(kick.as_raw_fd(), KICK)?;
        io.add(io.timer.as_raw_fd(), TIMER)?;
        Ok(io)
    }

    fn add(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a live epoll_event; both descriptors are open.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    fn remove(&self, fd: RawFd) {
        // SAFETY: no event pointer is needed for EPOLL_CTL_DEL (Linux ≥ 2.6.9).
        let _ = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    /// Arms the slice timer to fire after `d` (at once for zero); `None` disarms it.
    fn arm(&self, d: Option<Duration>) {
        let value = match d {
            // A zero value would disarm: one nanosecond fires at once.
            Some(d) => libc::timespec {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(d.subsec_nanos().max(u32::from(d.is_zero()))),
            },
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a live itimerspec; the old value is not asked for.
        let _ = unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        };
    }

    /// Empties an eventfd or timerfd so it stops being readable.
    fn drain(fd: RawFd) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64.
        let _ = unsafe { libc::read(fd, std::ptr::from_mut(&mut v).cast(), 8) };
    }
}

/// A bridge the thread relays: the call, the agent's leg, and the relay's number.
struct Relay {
    media: Arc<CallMedia>,
    leg: Arc<dyn RelayLeg>,
    id: u64,
}

impl Relay {
    /// Still wanted: the call goes on and its task has not taken the session back.
    fn live(&self) -> bool {
        !self.media.closed.load(Ordering::Acquire)
            && self.media.relay.load(Ordering::Acquire) == self.id
    }

    /// The caller's datagrams: into the session, and each frame on to the agent.
    fn caller_readable(&self, clock: Clock, batch: &mut RecvBatch) {
        let mut guard = self.media.session();
        let Some(s) = guard.as_mut().filter(|_| self.live()) else {
            return;
        };
        let now = clock.now();
        loop {
            let n = batch.recv(self.media.socket.as_raw_fd());
            for i in 0..n {
                if let Some((from, bytes)) = batch.datagram(i) {
                    s.on_datagram(now, from, bytes);
                    if let Some(frame) = s.poll_bridged_audio() {
                        self.leg.send_frame(frame);
                    }
                }
            }
            if n < BATCH {
                break;
            }
        }
        if s.has_event() {
            self.media.wake.notify_one();
        }
    }

    /// The agent's datagrams: each frame on to the caller as it comes, keys as RFC 4733 or tones.
    fn agent_readable(&self, clock: Clock, batch: &mut RecvBatch, conv: &mut Vec<u8>) {
        let mut guard = self.media.session();
        let Some(s) = guard.as_mut().filter(|_| self.live()) else {
            return;
        };
        let now = clock.now();
        loop {
            let n = batch.recv(self.leg.socket().as_raw_fd());
            for i in 0..n {
                let Some((_, bytes)) = batch.datagram(i) else {
                    continue;
                };
                match self.leg.read(bytes, conv) {
                    Some(LegPacket::Audio(frame)) => {
                        if let Some(tx) = s.relay_to_caller(now, frame) {
                            let _ = self.media.socket.send_to(tx.bytes, tx.to);
                        }
                    }
                    Some(LegPacket::Dtmf(k)) => {
                        s.send_dtmf(k, AGENT_DTMF);
                    }
                    None => {}
                }
            }
            if n < BATCH {
                break;
            }
        }
    }
}

/// The 20 ms period is served in this many slices.
const BUCKETS: usize = 4;

/// One media thread: waits in `epoll` for its slice timer, a relayed socket or new work.
fn run(worker: &Worker, io: ThreadIo, clock: Clock) {
    precise_sleeps();
    let mut buckets: [Vec<Arc<CallMedia>>; BUCKETS] = Default::default();
    let mut relays: HashMap<u64, Relay> = HashMap::new();
    let mut batch = RecvBatch::new();
    let mut conv = Vec::with_capacity(160);
    // The next slice: when it is planned and which quarter it serves.
    let mut next: Option<(Instant, usize)> = None;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        {
            let mut st = worker.state();
            if st.stop {
                return;
            }
            for c in st.incoming.drain(..) {
                if let Some(b) = buckets.iter_mut().min_by_key(|b| b.len()) {
                    b.push(c);
                }
            }
            for (media, leg, id) in st.relays.drain(..) {
                add_relay(&io, &mut relays, Relay { media, leg, id });
            }
        }
        if next.is_none() && buckets.iter().any(|b| !b.is_empty()) {
            // The first call since idle: its slice now.
            next = Some((clock.now(), 0));
            io.arm(Some(Duration::ZERO));
        }
        // SAFETY: `events` is a live buffer of `events.len()` epoll_events.
        let n = unsafe {
            libc::epoll_wait(
                io.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                i32::try_from(events.len()).unwrap_or(64),
                -1,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        for ev in events.iter().take(n) {
            match ev.u64 {
                KICK => ThreadIo::drain(worker.kick.as_raw_fd()),
                TIMER => {
                    ThreadIo::drain(io.timer.as_raw_fd());
                    let Some((planned, bucket)) = next else {
                        continue;
                    };
                    // Late by a frame or more (a stalled machine): go on from now.
                    let woke = clock.now();
                    let t = if woke - planned >= FRAME {
                        woke
                    } else {
                        planned
                    };
                    if let Some(calls) = buckets.get_mut(bucket) {
                        serve(worker, calls, t, &mut batch);
                    }
                    relays.retain(|_, r| r.live() || !remove_relay(&io, r));
                    next = buckets.iter().any(|b| !b.is_empty()).then(|| {
                        let at = t + FRAME / BUCKETS as u32;
                        io.arm(Some(at - clock.now()));
                        (at, (bucket + 1) % BUCKETS)
                    });
                }
                token => {
                    let id = token >> 1;
                    let Some(r) = relays.get(&id) else {
                        continue;
                    };
                    if !r.live() {
                        // Its task took the call back: out of the set at once, or the unread
                        // socket would keep waking this thread.
                        if let Some(r) = relays.remove(&id) {
                            remove_relay(&io, &r);
                        }
                    } else if token & 1 == 0 {
                        r.caller_readable(clock, &mut batch);
                    } else {
                        r.agent_readable(clock, &mut batch, &mut conv);
                    }
                }
            }
        }
    }
}

/// Takes a relay's sockets out of the epoll set; true, for `retain`.
fn remove_relay(io: &ThreadIo, r: &Relay) -> bool {
    io.remove(r.media.socket.as_raw_fd());
    io.remove(r.leg.socket().as_raw_fd());
    true
}

/// One slice: forget ended calls, then one tick for each call in it.
fn serve(worker: &Worker, calls: &mut Vec<Arc<CallMedia>>, t: Instant, batch: &mut RecvBatch) {
    let before = calls.len();
    calls.retain(|c| !c.closed.load(Ordering::Acquire));
    worker
        .load
        .fetch_sub(before - calls.len(), Ordering::Relaxed);
    for c in calls.iter() {
        c.tick(t, batch);
    }
}

/// Puts a relay's two sockets in the epoll set, replacing the call's earlier relay if any. What
/// the agent sent before is stale (relayed now, it would be a lasting delay): dropped.
fn add_relay(io: &ThreadIo, relays: &mut HashMap<u64, Relay>, relay: Relay) {
    let old: Vec<u64> = relays
        .iter()
        .filter(|(_, r)| Arc::ptr_eq(&r.media, &relay.media))
        .map(|(id, _)| *id)
        .collect();
    for id in old {
        if let Some(r) = relays.remove(&id) {
            remove_relay(io, &r);
        }
    }
    if !relay.live() {
        return;
    }
    let mut buf = [0u8; 2048];
    while relay.leg.socket().recv_from(&mut buf).is_ok() {}
    let caller = io.add(relay.media.socket.as_raw_fd(), relay.id << 1);
    let agent = io.add(relay.leg.socket().as_raw_fd(), (relay.id << 1) | 1);
    if let Err(e) = caller.and(agent) {
        tracing::error!(error = %e, "a bridged call's sockets cannot be watched");
        remove_relay(io, &relay);
        return;
    }
    relays.insert(relay.id, relay);
}

/// The kernel's default 50 µs timer slack would be most of a media thread's wake-up jitter.
fn precise_sleeps() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only sets this thread's timer slack (in ns); no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
#[path = "media_engine_tests.rs"]
mod tests;
