//! Loopback tests: a test peer (the browser's side of the stack) and a leg talk over real UDP on
//! 127.0.0.1. Every wait is bounded by a deadline; nothing sleeps to synchronise.

use super::*;
use std::time::Duration;
use tokio::time::{timeout, Instant};

const DEADLINE: Duration = Duration::from_secs(15);
const CHROME_OFFER: &str = include_str!("testdata/chrome_offer.sdp");

/// SDP wants CRLF; the fixture is kept with plain newlines so it diffs and reads well.
fn crlf(sdp: &str) -> String {
    sdp.lines()
        .map(|l| format!("{}\r\n", l.trim_end()))
        .collect()
}

/// Frame `i` of a recognisable pattern: every frame differs from its neighbours, so a lost,
/// duplicated or reordered frame shows.
fn frame(i: usize, salt: u8) -> Vec<u8> {
    (0..160)
        .map(|j| (i as u8).wrapping_mul(31) ^ (j as u8).wrapping_add(salt))
        .collect()
}

/// The next event other than audio, within the deadline.
async fn next_signal(next: impl AsyncFnMut() -> Option<RtcEvent>) -> Option<RtcEvent> {
    let mut next = next;
    timeout(DEADLINE, async {
        loop {
            match next().await {
                Some(RtcEvent::Audio { .. }) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("no event before the deadline")
}

async fn connected_pair() -> (RtcTestPeer, RtcLeg) {
    // Set up on other tasks, as the server does: these futures must be Send.
    let (browser, offer) = tokio::spawn(async { RtcTestPeer::offer(&RtcConfig::default()).await })
        .await
        .expect("offer task")
        .expect("offer");
    let (leg, answer) =
        tokio::spawn(async move { RtcLeg::answer(&RtcConfig::default(), &offer).await })
            .await
            .expect("answer task")
            .expect("answer");
    complete_pair(browser, leg, &answer).await
}

/// Hands the browser the leg's answer and waits until both ends report `Connected`.
async fn complete_pair(
    mut browser: RtcTestPeer,
    mut leg: RtcLeg,
    answer: &str,
) -> (RtcTestPeer, RtcLeg) {
    browser.accept_answer(answer).await.expect("accept answer");
    assert_eq!(
        next_signal(async || leg.recv().await).await,
        Some(RtcEvent::Connected)
    );
    assert_eq!(
        next_signal(async || browser.recv().await).await,
        Some(RtcEvent::Connected)
    );
    (browser, leg)
}

/// Frames each way, paced at 20 ms as the bridge paces them.
const FRAMES: usize = 50;

/// Sends [`FRAMES`] frames each way at once and collects what arrives at each end, until all are
/// in or the deadline passes.
async fn exchange(
    browser: &mut RtcTestPeer,
    leg: &mut RtcLeg,
) -> (Vec<(Vec<u8>, u32)>, Vec<(Vec<u8>, u32)>) {
    let (mut at_browser, mut at_leg) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let end = Instant::now() + DEADLINE;
    let mut sent = 0;
    while at_browser.len() < FRAMES || at_leg.len() < FRAMES {
        tokio::select! {
            _ = tick.tick(), if sent < FRAMES => {
                leg.send_pcmu(&frame(sent, LEG_SALT)).expect("leg queues a frame");
                browser.send_pcmu(&frame(sent, BROWSER_SALT)).expect("browser queues a frame");
                sent += 1;
            }
            ev = leg.recv() => match ev {
                Some(RtcEvent::Audio { payload, timestamp }) => at_leg.push((payload, timestamp)),
                other => panic!("leg: unexpected {other:?} during audio"),
            },
            ev = browser.recv() => match ev {
                Some(RtcEvent::Audio { payload, timestamp }) => at_browser.push((payload, timestamp)),
                other => panic!("browser: unexpected {other:?} during audio"),
            },
            _ = tokio::time::sleep_until(end) => break,
        }
    }
    (at_browser, at_leg)
}

const LEG_SALT: u8 = 0x55;
const BROWSER_SALT: u8 = 0xA3;

fn assert_stream_intact(got: &[(Vec<u8>, u32)], salt: u8) {
    let payloads: Vec<Vec<u8>> = got.iter().map(|(p, _)| p.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..FRAMES).map(|i| frame(i, salt)).collect();
    assert_eq!(payloads, expected, "audio bytes differ from what was sent");
    for pair in got.windows(2) {
        assert_eq!(
            pair[1].1.wrapping_sub(pair[0].1),
            160,
            "RTP timestamps must advance one 20 ms frame per packet"
        );
    }
}

// On the multi-threaded runtime the server uses, so the stack's tasks really run in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_crosses_both_ways_byte_exact_with_contiguous_timestamps() {
    let (mut browser, mut leg) = connected_pair().await;
    let (at_browser, at_leg) = exchange(&mut browser, &mut leg).await;
    assert_stream_intact(&at_browser, LEG_SALT);
    assert_stream_intact(&at_leg, BROWSER_SALT);
    leg.close().await;
    browser.close().await;
}

#[tokio::test]
async fn closing_the_leg_hangs_up_the_browser() {
    let (mut browser, leg) = connected_pair().await;
    // On another task, as the bridge will: the leg and its futures must be Send.
    tokio::spawn(leg.close()).await.expect("close task");
    assert_eq!(
        next_signal(async || browser.recv().await).await,
        Some(RtcEvent::Closed)
    );
    assert_eq!(browser.recv().await, None, "nothing after Closed");
    assert!(matches!(
        browser.send_pcmu(&frame(0, 0)),
        Err(RtcError::Closed)
    ));
}

#[tokio::test]
async fn closing_the_browser_hangs_up_the_leg() {
    let (browser, mut leg) = connected_pair().await;
    // The leg waits on its own task, as in the bridge (which needs RtcLeg::recv to be Send).
    let leg_side = tokio::spawn(async move {
        let first = timeout(DEADLINE, async {
            loop {
                match leg.recv().await {
                    Some(RtcEvent::Audio { .. }) => continue,
                    other => return other,
                }
            }
        })
        .await
        .expect("no event before the deadline");
        (first, leg.recv().await)
    });
    browser.close().await;
    let (first, after) = leg_side.await.expect("leg task");
    assert_eq!(first, Some(RtcEvent::Closed));
    assert_eq!(after, None, "nothing after Closed");
}

#[tokio::test]
async fn keys_pressed_in_the_browser_arrive_once_each() {
    let (browser, mut leg) = connected_pair().await;
    for key in ['5', '#', '5'] {
        browser.send_dtmf(key).await.expect("send key");
        assert_eq!(
            next_signal(async || leg.recv().await).await,
            Some(RtcEvent::Dtmf(key))
        );
    }
    leg.close().await;
}

#[tokio::test]
async fn frames_that_are_not_pcmu_sized_are_refused() {
    let (browser, leg) = connected_pair().await;
    assert!(matches!(leg.send_pcmu(&[]), Err(RtcError::BadFrame(0))));
    let too_long = vec![0xFF; MAX_FRAME_BYTES + 1];
    assert!(matches!(
        browser.send_pcmu(&too_long),
        Err(RtcError::BadFrame(n)) if n == MAX_FRAME_BYTES + 1
    ));
    assert!(matches!(
        browser.send_dtmf('x').await,
        Err(RtcError::BadDigit('x'))
    ));
    leg.close().await;
}

#[tokio::test]
async fn chrome_offer_is_answered_with_pcmu_dtls_and_host_candidates() {
    let (leg, answer) = RtcLeg::answer(&RtcConfig::default(), &crlf(CHROME_OFFER))
        .await
        .expect("Chrome's offer is answerable");
    let lines: Vec<&str> = answer.lines().collect();
    let m_audio = lines
        .iter()
        .find(|l| l.starts_with("m=audio "))
        .expect("an audio section");
    let formats: Vec<&str> = m_audio.split(' ').skip(3).collect();
    assert_eq!(formats.first(), Some(&"0"), "PCMU first: {m_audio}");
    assert!(
        formats.iter().all(|f| *f == "0" || *f == "126"),
        "only PCMU and telephone-event/8000 are accepted: {m_audio}"
    );
    assert!(lines.contains(&"a=rtpmap:0 PCMU/8000"));
    assert!(lines.contains(&"a=rtpmap:126 telephone-event/8000"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("a=fingerprint:sha-256 ")));
    assert!(
        lines.contains(&"a=setup:active") || lines.contains(&"a=setup:passive"),
        "an answer to actpass picks a DTLS role"
    );
    assert!(lines.contains(&"a=sendrecv"), "two-way audio");
    assert!(lines.contains(&"a=rtcp-mux"));
    assert!(lines.contains(&"a=mid:0"));
    assert!(lines.iter().any(|l| l.starts_with("a=group:BUNDLE 0")));
    assert!(
        lines.iter().any(|l| l.starts_with("a=candidate:")
            && l.contains(" 127.0.0.1 ")
            && l.contains(" typ host")),
        "the answer carries our host candidate: {answer}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("a=ice-ufrag:"))
            && lines.iter().any(|l| l.starts_with("a=ice-pwd:"))
    );
    leg.close().await;
}

#[tokio::test]
async fn an_offer_with_only_opus_has_no_common_codec() {
    let opus_only: String = crlf(CHROME_OFFER)
        .lines()
        .filter(|l| !l.starts_with("a=rtpmap:") || l.starts_with("a=rtpmap:111 "))
        .map(|l| {
            if l.starts_with("m=audio ") {
                "m=audio 50000 UDP/TLS/RTP/SAVPF 111\r\n".to_owned()
            } else {
                format!("{l}\r\n")
            }
        })
        .collect();
    let result = tokio::spawn(async move {
        RtcLeg::answer(&RtcConfig::default(), &opus_only)
            .await
            .map(|_| ())
    })
    .await
    .expect("answer task");
    assert!(matches!(result, Err(RtcError::NoCommonCodec)), "{result:?}");
}

#[tokio::test]
async fn malformed_offers_are_errors_not_panics() {
    let cfg = RtcConfig::default();
    let half = &CHROME_OFFER[..CHROME_OFFER.len() / 3];
    let cases: Vec<String> = vec![
        String::new(),
        "hello".to_owned(),
        "v=0\r\no=broken\r\n".to_owned(),
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio notaport RTP/AVP 0\r\n"
            .to_owned(),
        "\u{0}\u{ff}\u{7f}=\r\n\r\n".to_owned(),
        crlf(half),
        "v=0\r\n".repeat(MAX_SDP_BYTES),
    ];
    for sdp in &cases {
        let result = RtcLeg::answer(&cfg, sdp).await;
        assert!(
            result.is_err(),
            "accepted malformed offer {:?}",
            sdp.get(..40)
        );
    }
    let (mut browser, _) = RtcTestPeer::offer(&cfg).await.expect("offer");
    assert!(browser.accept_answer("v=0\r\nnonsense").await.is_err());
}

#[tokio::test]
async fn port_range_and_public_address_shape_the_candidates() {
    let cfg = RtcConfig {
        public_ip: Some("203.0.113.7".parse().expect("ip")),
        port_range: Some((47100, 47199)),
        ..RtcConfig::default()
    };
    let (leg, answer) = RtcLeg::answer(&cfg, &crlf(CHROME_OFFER))
        .await
        .expect("answer");
    let candidates: Vec<Vec<&str>> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .map(|l| l.split(' ').collect())
        .collect();
    assert!(!candidates.is_empty(), "{answer}");
    for c in &candidates {
        assert_eq!(
            c.get(4),
            Some(&"203.0.113.7"),
            "public address advertised: {c:?}"
        );
        let port: u16 = c.get(5).and_then(|p| p.parse().ok()).expect("port");
        assert!(
            (47100..=47199).contains(&port),
            "port {port} outside the range"
        );
    }
    leg.close().await;
}

/// User + system CPU this process has used, from /proc (Linux), in clock ticks of 10 ms.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU cost of one bridged call: a leg and its browser stand-in exchanging 20 ms PCMU both
/// ways for 20 s. Run on demand (it takes 20 s of wall time):
/// `cargo test --lib rtc::tests::cpu_of_one_bridged_leg -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn cpu_of_one_bridged_leg() {
    const SECONDS: u64 = 20;
    let (mut browser, mut leg) = connected_pair().await;
    let before = cpu_ticks().expect("/proc/self/stat");
    let start = Instant::now();
    let end = start + Duration::from_secs(SECONDS);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut sent, mut at_leg, mut at_browser) = (0usize, 0usize, 0usize);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if Instant::now() >= end { break; }
                leg.send_pcmu(&frame(sent, LEG_SALT)).expect("leg queues");
                browser.send_pcmu(&frame(sent, BROWSER_SALT)).expect("browser queues");
                sent += 1;
            }
            Some(RtcEvent::Audio { .. }) = leg.recv() => at_leg += 1,
            Some(RtcEvent::Audio { .. }) = browser.recv() => at_browser += 1,
        }
    }
    let used = cpu_ticks().expect("/proc/self/stat") - before;
    let wall = start.elapsed().as_secs_f64();
    // Both ends run in this process; one leg is half of it.
    let per_leg = used as f64 * 10.0 / 1000.0 / wall / 2.0 * 100.0;
    eprintln!(
        "sent {sent} frames each way, leg got {at_leg}, browser got {at_browser}; \
         {used} ticks of CPU in {wall:.1} s = {per_leg:.2} % of a core per leg"
    );
    assert!(
        at_leg * 10 >= sent * 9 && at_browser * 10 >= sent * 9,
        "audio was lost"
    );
    leg.close().await;
    browser.close().await;
}

/// Resident memory of this process, from /proc (Linux), in KiB.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What each stage of a leg's life adds to resident memory, per connection (a leg and its
/// browser stand-in are two connections in this process). Run on demand:
/// `cargo test --lib rtc::tests::memory_of_bridged_legs -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn memory_of_bridged_legs() {
    const PAIRS: usize = 40;
    // As the server runs (runtime::memory): blocks of 1 MiB and more are mapped, not pooled.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    // Warm up: the first connection builds shared state (thread-locals, lazily built tables).
    let (b, l) = connected_pair().await;
    b.close().await;
    l.close().await;
    let base = rss_kib().expect("/proc/self/status");
    let mut offers = Vec::new();
    for _ in 0..PAIRS {
        offers.push(
            RtcTestPeer::offer(&RtcConfig::default())
                .await
                .expect("offer"),
        );
    }
    let offered = rss_kib().expect("rss");
    let mut pairs = Vec::new();
    for (browser, offer) in offers {
        let (leg, answer) = RtcLeg::answer(&RtcConfig::default(), &offer)
            .await
            .expect("answer");
        pairs.push((browser, leg, answer));
    }
    let answered = rss_kib().expect("rss");
    let mut connected = Vec::new();
    for (browser, leg, answer) in pairs {
        connected.push(complete_pair(browser, leg, &answer).await);
    }
    let up = rss_kib().expect("rss");
    for i in 0..50 {
        for (browser, leg) in &connected {
            leg.send_pcmu(&frame(i, LEG_SALT)).expect("leg queues");
            browser
                .send_pcmu(&frame(i, BROWSER_SALT))
                .expect("browser queues");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (browser, leg) in &mut connected {
            while let Ok(Some(_)) = timeout(Duration::ZERO, leg.recv()).await {}
            while let Ok(Some(_)) = timeout(Duration::ZERO, browser.recv()).await {}
        }
    }
    let talked = rss_kib().expect("rss");
    let per = |a: u64, b: u64| (b as f64 - a as f64) / PAIRS as f64;
    eprintln!(
        "KiB per connection: offer {:.1}, answer {:.1}, connect (both) {:.1}, 1 s of audio (both) {:.1}; total per pair {:.1}",
        per(base, offered),
        per(offered, answered),
        per(answered, up) / 2.0,
        per(up, talked) / 2.0,
        per(base, talked)
    );
    for (browser, leg) in connected {
        browser.close().await;
        leg.close().await;
    }
}
