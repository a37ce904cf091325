//! The media engine on real loopback sockets: what a caller's phone receives and what reaches the
//! call's task. No timing is asserted (that is `scripts/bench`'s job): each wait is bounded only
//! so a broken engine fails instead of hanging.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::*;
use crate::media::{rtp, Law, MediaEvent, SessionConfig};
use crate::runtime::outbound::LegPacket;

const WAIT: Duration = Duration::from_secs(10);

fn engine(threads: usize) -> (MediaEngine, Clock) {
    let clock = Clock::new();
    (MediaEngine::start(clock, threads).expect("threads"), clock)
}

fn loopback() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// A call's socket attached to the engine, and the caller's phone it sends to.
fn call(engine: &MediaEngine, clock: Clock, ssrc: u32) -> (MediaHandle, UdpSocket) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_nonblocking(true).expect("nonblocking");
    let phone = loopback();
    let cfg = SessionConfig {
        law: Law::Mu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
        ssrc,
        initial_seq: 100,
        initial_timestamp: 1000,
        remote: Some(phone.local_addr().expect("addr")),
        inband_dtmf: false,
    };
    let media = engine.attach(sock);
    *media.session() = Some(RtpSession::new(cfg, clock.now()));
    (media, phone)
}

fn addr(media: &MediaHandle) -> SocketAddr {
    media.socket.local_addr().expect("addr")
}

/// The next RTP packet the phone gets: (ssrc, seq, timestamp, payload type).
fn next_packet(phone: &UdpSocket) -> (u32, u16, u32, u8) {
    let mut buf = [0u8; 2048];
    let (n, _) = phone.recv_from(&mut buf).expect("a frame within the wait");
    let p = rtp::parse(&buf[..n]).expect("RTP");
    (p.ssrc, p.sequence, p.timestamp, p.payload_type)
}

/// Waits until `cond` holds, checking every 10 ms, for at most [`WAIT`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(std::time::Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_call_on_one_thread_gets_one_frame_per_tick_in_order() {
    let (engine, clock) = engine(1);
    let calls: Vec<_> = (0..20).map(|i| call(&engine, clock, 7000 + i)).collect();
    for (i, (_, phone)) in calls.iter().enumerate() {
        let mut last: Option<(u16, u32)> = None;
        for _ in 0..10 {
            let (ssrc, seq, ts, pt) = next_packet(phone);
            assert_eq!(ssrc, 7000 + i as u32, "each phone hears its own call");
            assert_eq!(pt, 0, "PCMU audio (silence)");
            if let Some((s, t)) = last {
                assert_eq!(seq, s.wrapping_add(1), "no frame skipped or repeated");
                assert_eq!(ts, t.wrapping_add(160), "one 20 ms frame per packet");
            }
            last = Some((seq, ts));
        }
    }
    assert_eq!(engine.loads(), vec![20]);
}

#[test]
fn a_key_from_the_phone_wakes_the_call_and_is_heard_once() {
    let (engine, clock) = engine(1);
    let (media, phone) = call(&engine, clock, 1);
    let to = addr(&media);
    let mut pkt = Vec::new();
    // RFC 4733 event 5: two updates and the end packet, repeated as phones do.
    for (i, (end, dur)) in [(false, 160u16), (false, 320), (true, 480), (true, 480)]
        .into_iter()
        .enumerate()
    {
        let flags = if end { 0x80 } else { 0 } | 10;
        let d = dur.to_be_bytes();
        rtp::write(
            101,
            i == 0,
            1 + i as u16,
            8000,
            99,
            &[5, flags, d[0], d[1]],
            &mut pkt,
        );
        phone.send_to(&pkt, to).expect("send");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(WAIT, media.wake.notified())
            .await
            .expect("the call's task is woken");
    });
    let mut digits = Vec::new();
    eventually("the end packets are read", || {
        let mut s = media.session();
        let s = s.as_mut().expect("session");
        while let Some(ev) = s.poll_event() {
            if let MediaEvent::Digit { digit, .. } = ev {
                digits.push(digit);
            }
        }
        s.stats().received >= 4
    });
    assert_eq!(digits, vec!['5']);
    // Symmetric RTP: the frames now go where the key came from (the same phone socket).
    let (ssrc, ..) = next_packet(&phone);
    assert_eq!(ssrc, 1);
}

#[test]
fn a_bridged_call_is_left_to_its_task() {
    let (engine, clock) = engine(1);
    let (media, phone) = call(&engine, clock, 2);
    next_packet(&phone);
    media.session().as_mut().expect("session").start_bridge();
    // Whatever the engine sent before the bridge; then nothing more comes from it.
    phone
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    while phone.recv_from(&mut buf).is_ok() {}
    let mut pkt = Vec::new();
    rtp::write(0, true, 1, 160, 99, &[0xFF; 160], &mut pkt);
    phone.send_to(&pkt, addr(&media)).expect("send");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        phone.recv_from(&mut buf).is_err(),
        "the engine sent to a bridged call's caller"
    );
    // The caller's frame waits in the socket for the call's task.
    let (n, _) = media
        .socket
        .recv_from(&mut buf)
        .expect("the caller's frame was left in the socket");
    assert_eq!(n, pkt.len());
}

#[test]
fn an_ended_call_is_forgotten_and_its_port_freed() {
    let (engine, clock) = engine(2);
    let calls: Vec<_> = (0..4).map(|i| call(&engine, clock, i)).collect();
    assert_eq!(engine.loads(), vec![2, 2], "calls spread over the threads");
    let port = addr(&calls[0].0);
    drop(calls);
    eventually("the engine lets go of the calls", || {
        engine.loads() == vec![0, 0]
    });
    eventually("the port can be bound again", || {
        UdpSocket::bind(port).is_ok()
    });
}

/// A SIP agent's leg as the media thread sees it: µ-law in and out, keys as RFC 4733 (pt 101).
struct AgentLeg {
    socket: UdpSocket,
    phone: SocketAddr,
}

impl RelayLeg for AgentLeg {
    fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    fn read<'a>(&self, bytes: &'a [u8], _conv: &'a mut Vec<u8>) -> Option<LegPacket<'a>> {
        let p = rtp::parse(bytes).ok()?;
        match p.payload_type {
            0 => Some(LegPacket::Audio(p.payload)),
            101 => p.payload.first().map(|_| LegPacket::Dtmf('7')),
            _ => None,
        }
    }

    fn send_frame(&self, frame: &[u8]) {
        let mut pkt = Vec::new();
        rtp::write(0, false, 1, 160, 0xA6E, frame, &mut pkt);
        let _ = self.socket.send_to(&pkt, self.phone);
    }
}

/// The first audio packet whose payload starts with `tag`, skipping silence; its payload type.
fn heard(sock: &UdpSocket, tag: u8) -> u8 {
    let mut buf = [0u8; 2048];
    loop {
        let (n, _) = sock
            .recv_from(&mut buf)
            .expect("the tagged frame within the wait");
        let p = rtp::parse(&buf[..n]).expect("RTP");
        if p.payload.first() == Some(&tag) {
            return p.payload_type;
        }
    }
}

#[test]
fn a_call_bridged_to_a_sip_agent_is_relayed_both_ways_by_the_media_thread() {
    let (engine, clock) = engine(1);
    let (media, caller) = call(&engine, clock, 3);
    let desk = loopback();
    let leg_socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    leg_socket.set_nonblocking(true).expect("nonblocking");
    let leg_addr = leg_socket.local_addr().expect("addr");
    // Stale audio from before the bridge is dropped, not relayed late.
    let mut pkt = Vec::new();
    rtp::write(0, false, 1, 160, 9, &[0x11; 160], &mut pkt);
    desk.send_to(&pkt, leg_addr).expect("send");
    std::thread::sleep(Duration::from_millis(50));
    media.session().as_mut().expect("session").start_bridge();
    media.set_relay(Some(Arc::new(AgentLeg {
        socket: leg_socket,
        phone: desk.local_addr().expect("addr"),
    })));
    assert!(media.is_relayed());
    assert!(!media.task_drives(media.session().as_ref().expect("session")));
    // Caller → agent: the caller's frame reaches the desk phone.
    for seq in 0..5u16 {
        rtp::write(
            0,
            seq == 0,
            seq,
            160 * u32::from(seq),
            5,
            &[0x22; 160],
            &mut pkt,
        );
        caller.send_to(&pkt, addr(&media)).expect("send");
    }
    assert_eq!(heard(&desk, 0x22), 0);
    // Agent → caller: the desk phone's frame reaches the caller, and not the stale one.
    rtp::write(0, true, 2, 320, 9, &[0x33; 160], &mut pkt);
    desk.send_to(&pkt, leg_addr).expect("send");
    let mut buf = [0u8; 2048];
    loop {
        let (n, _) = caller
            .recv_from(&mut buf)
            .expect("the agent's frame within the wait");
        let p = rtp::parse(&buf[..n]).expect("RTP");
        assert_ne!(p.payload.first(), Some(&0x11), "stale audio relayed");
        if p.payload.first() == Some(&0x33) {
            break;
        }
    }
    // The agent's key goes to the caller as RFC 4733.
    rtp::write(101, true, 3, 480, 9, &[7, 0x80, 0, 160], &mut pkt);
    desk.send_to(&pkt, leg_addr).expect("send");
    loop {
        let (n, _) = caller.recv_from(&mut buf).expect("the key within the wait");
        if rtp::parse(&buf[..n]).expect("RTP").payload_type == 101 {
            break;
        }
    }
    // Taken back by the call's task: the thread stops reading the caller's socket.
    media.set_relay(None);
    assert!(media.task_drives(media.session().as_ref().expect("session")));
    std::thread::sleep(Duration::from_millis(50));
    caller.send_to(&pkt, addr(&media)).expect("send");
    std::thread::sleep(Duration::from_millis(100));
    let (n, _) = media
        .socket
        .recv_from(&mut buf)
        .expect("the caller's datagram waits for the task");
    assert_eq!(n, pkt.len());
}
