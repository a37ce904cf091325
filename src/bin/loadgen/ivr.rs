//! `loadgen ivr`: N concurrent calls to the bench IVR flow. Each call listens to the prompts
//! (recording every packet's arrival to measure pacing), sends its own 20 ms audio like a phone,
//! and types 1234 as RFC 4733 events; the call record's `ivr_path` then says whether all four
//! digits reached the flow (`ok`) or not (`wrong`, `lost`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::media::{dtmf, rtp};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::sip::{Incoming, Ua};
use super::stats::{percentile, udp_drops, Probe};

pub struct Args {
    pub calls: usize,
    pub duration: Duration,
    pub ramp_rate: f64,
    pub did: String,
    pub digits: String,
    pub http: SocketAddr,
    pub token: String,
    pub pid: Option<u32>,
    pub drop_ports: Vec<(u16, u16)>,
}

/// What one call heard.
struct Outcome {
    call_id: String,
    /// |inter-arrival − 20 ms| in µs for consecutive audio packets less than 200 ms apart (a
    /// longer gap is the silence between prompts, not jitter).
    gap_err_us: Vec<u64>,
    received: u64,
    lost: u64,
    /// Inter-arrival gaps under 10 ms, 10–30 ms, 30–50 ms and 50–200 ms: bursts and stalls
    /// tell apart what a percentile alone does not.
    gaps: [u64; 4],
}

/// Packets of `digits` (100 ms each, 120 ms apart) as a per-20 ms-tick schedule; None = audio.
fn digit_schedule(digits: &str) -> Vec<Option<(Vec<u8>, bool)>> {
    let mut out = Vec::new();
    for d in digits.chars() {
        let payloads = dtmf::event_payloads(d, 100);
        for (k, p) in payloads.into_iter().enumerate() {
            out.push(Some((p, k == 0)));
        }
        out.extend(std::iter::repeat_with(|| None).take(6));
    }
    out
}

async fn one_call(
    ua: Arc<Ua>,
    did: String,
    from: String,
    digits: String,
    established: Arc<AtomicUsize>,
    settled: Arc<AtomicUsize>,
    mut hangup: watch::Receiver<bool>,
) -> Result<Outcome, String> {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = sock.local_addr().map_err(|e| e.to_string())?.port();
    let invited = ua.invite(&did, &from, port).await;
    settled.fetch_add(1, Ordering::SeqCst);
    let mut d = invited.map_err(|e| e.to_string())?;
    established.fetch_add(1, Ordering::SeqCst);
    let remote = d.remote_rtp.ok_or("no remote RTP address")?;
    let schedule = digit_schedule(&digits);
    let ssrc: u32 = rand::random();
    let silence = [0xFFu8; 160];
    let mut pkt = Vec::with_capacity(200);
    let (mut seq, mut ts) = (rand::random::<u16>(), rand::random::<u32>());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Digits start 700 ms in: the prompt is playing, as when a caller types over it.
    let digits_from = 35usize;
    let mut n_tick = 0usize;
    let mut event_ts = 0u32;
    let mut buf = [0u8; 2048];
    let mut last: Option<Instant> = None;
    let mut gap_err_us = Vec::with_capacity(1024);
    let mut gaps = [0u64; 4];
    let (mut received, mut first_seq, mut max_seq) = (0u64, None::<i64>, 0i64);
    let mut seq_ext = (0i64, 0u16);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let slot = n_tick.checked_sub(digits_from).and_then(|i| schedule.get(i));
                match slot {
                    Some(Some((payload, marker))) => {
                        // Every packet of one key press carries the press's start timestamp.
                        if *marker {
                            event_ts = ts;
                        }
                        rtp::write(101, *marker, seq, event_ts, ssrc, payload, &mut pkt);
                    }
                    _ => rtp::write(0, n_tick == 0, seq, ts, ssrc, &silence, &mut pkt),
                }
                let _ = sock.send_to(&pkt, remote).await;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                n_tick += 1;
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, _)) = r else { continue };
                let now = Instant::now();
                let Some(Ok(p)) = buf.get(..n).map(rtp::parse) else { continue };
                if p.payload_type != 0 && p.payload_type != 8 {
                    continue;
                }
                received += 1;
                // Extend the 16-bit sequence to count losses across wrap-around.
                let (ext, prev) = seq_ext;
                let ext = if first_seq.is_none() { i64::from(p.sequence) } else {
                    let delta = i64::from(p.sequence.wrapping_sub(prev) as i16);
                    ext + delta
                };
                seq_ext = (ext, p.sequence);
                if first_seq.is_none() { first_seq = Some(ext); max_seq = ext; }
                max_seq = max_seq.max(ext);
                if let Some(l) = last {
                    let gap = now.duration_since(l).as_micros() as i64;
                    if gap < 200_000 {
                        gap_err_us.push((gap - 20_000).unsigned_abs());
                        let bucket = match gap { 0..10_000 => 0, 10_000..30_000 => 1, 30_000..50_000 => 2, _ => 3 };
                        if let Some(b) = gaps.get_mut(bucket) { *b += 1; }
                    }
                }
                last = Some(now);
            }
            m = d.rx.recv() => {
                if matches!(m, Some(Incoming::ServerBye) | None) {
                    d.server_hung_up = true;
                    break;
                }
            }
            _ = hangup.changed() => break,
        }
    }
    let expected = first_seq.map(|f| max_seq - f + 1).unwrap_or(0);
    let lost = (expected - received as i64).max(0) as u64;
    ua.bye(&mut d, &from).await.map_err(|e| e.to_string())?;
    Ok(Outcome {
        call_id: d.call_id,
        gap_err_us,
        received,
        lost,
        gaps,
    })
}

pub async fn run(ua: Arc<Ua>, a: Args) -> anyhow::Result<Value> {
    let established = Arc::new(AtomicUsize::new(0));
    let settled = Arc::new(AtomicUsize::new(0));
    let (hang_tx, hang_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let drops0 = udp_drops(&a.drop_ports);
    let idle_rss = a.pid.and_then(super::stats::rss_kib);
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / a.ramp_rate.max(1.0));
    for i in 0..a.calls {
        tasks.spawn(one_call(
            ua.clone(),
            a.did.clone(),
            format!("+1666{i:07}"),
            a.digits.clone(),
            established.clone(),
            settled.clone(),
            hang_rx.clone(),
        ));
        tokio::time::sleep_until((started + gap * (i as u32 + 1)).into()).await;
    }
    // Measure once every call is up (or has failed to come up).
    let wait_until = Instant::now() + Duration::from_secs(20);
    while settled.load(Ordering::SeqCst) < a.calls && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let up = established.load(Ordering::SeqCst);
    let probe = Probe::start(a.pid);
    tokio::time::sleep(a.duration).await;
    let probe = probe.finish();
    let _ = hang_tx.send(true);

    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(o)) => outcomes.push(o),
            Ok(Err(e)) => *failures.entry(e).or_default() += 1,
            Err(e) => *failures.entry(format!("task: {e}")).or_default() += 1,
        }
    }

    // Every finished call's record: did its four digits reach the flow?
    let client = reqwest::Client::new();
    let mut paths: BTreeMap<String, u64> = BTreeMap::new();
    let mut digit_failures = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    for o in &outcomes {
        let verdict = record_verdict(&client, a.http, &a.token, &o.call_id, deadline).await;
        if verdict != "ok" {
            digit_failures += 1;
        }
        *paths.entry(verdict).or_default() += 1;
    }

    let mut all: Vec<u64> = outcomes
        .iter()
        .flat_map(|o| o.gap_err_us.iter().copied())
        .collect();
    let mut per_stream: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| percentile(&mut o.gap_err_us.clone(), 99.0))
        .collect();
    let mut gaps = [0u64; 4];
    for o in &outcomes {
        for (t, g) in gaps.iter_mut().zip(o.gaps) {
            *t += g;
        }
    }
    let received: u64 = outcomes.iter().map(|o| o.received).sum();
    let lost: u64 = outcomes.iter().map(|o| o.lost).sum();
    let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
    let failed: u64 = failures.values().sum();
    let cpu_per_call = probe
        .server_cpu_pct_core
        .map(|c| if up > 0 { c / up as f64 } else { c });
    Ok(json!({
        "mode": "ivr",
        "calls": a.calls,
        "established": up,
        "failed": failed,
        "failures": failures,
        "calls_with_lost_digits": digit_failures,
        "record_verdicts": paths,
        "rtp_received": received,
        "gaps_lt10_10to30_30to50_50to200_ms": gaps,
        "rtp_lost": lost,
        "rtp_loss_pct": if received + lost > 0 { 100.0 * lost as f64 / (received + lost) as f64 } else { 0.0 },
        "jitter_ms_p99_all": ms(percentile(&mut all, 99.0)),
        "jitter_ms_p99_stream_median": ms(percentile(&mut per_stream, 50.0)),
        "jitter_ms_p99_stream_worst": ms(percentile(&mut per_stream, 100.0)),
        "server_cpu_pct_core_per_call": cpu_per_call,
        "server_rss_idle_kib": idle_rss,
        "server_rss_kib_per_call": match (probe.server_rss_kib, idle_rss) {
            (Some(r), Some(i)) if up > 0 => Some((r.saturating_sub(i)) as f64 / up as f64),
            _ => None,
        },
        "udp_drops": udp_drops(&a.drop_ports).saturating_sub(drops0),
        "server": probe,
    }))
}

/// `ok` when the record's ivr_path went through `ok`; else the path's verdict step, or why
/// there was no record.
async fn record_verdict(
    client: &reqwest::Client,
    http: SocketAddr,
    token: &str,
    call_id: &str,
    deadline: Instant,
) -> String {
    let url = format!("http://{http}/api/calls/{}", encode(call_id));
    loop {
        let got = client.get(&url).bearer_auth(token).send().await;
        if let Ok(r) = got {
            if r.status().is_success() {
                if let Ok(v) = r.json::<Value>().await {
                    if v.get("ended_at").is_some_and(Value::is_string) {
                        let path: Vec<&str> = v
                            .get("ivr_path")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        for verdict in ["ok", "wrong", "lost"] {
                            if path.contains(&verdict) {
                                return verdict.to_string();
                            }
                        }
                        return "no verdict step".into();
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return "no finished record".into();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_digit_is_a_full_event_then_a_pause() {
        let s = digit_schedule("12");
        let events: Vec<u8> = s.iter().flatten().map(|(p, _)| p[0]).collect();
        assert!(events.iter().take_while(|e| **e == 1).count() >= 5);
        assert!(events.contains(&2));
        assert_eq!(s.iter().flatten().filter(|(_, m)| *m).count(), 2);
        assert!(s.iter().any(Option::is_none));
    }
}
