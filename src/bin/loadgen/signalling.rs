//! `loadgen signalling`: calls at a fixed rate, each INVITE → 200 → ACK → BYE → 200, measuring
//! set-up latency (INVITE sent → 200 received) and counting every call that did not complete.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::UdpSocket;

use super::sip::Ua;
use super::stats::{percentile, udp_drops, Probe};

pub struct Args {
    pub rate: f64,
    pub duration: Duration,
    pub did: String,
    pub hold: Duration,
    pub pid: Option<u32>,
    pub drop_ports: Vec<(u16, u16)>,
}

pub async fn run(ua: Arc<Ua>, a: Args) -> anyhow::Result<Value> {
    // The offers name one shared media port that nobody reads from but a drain: signalling is
    // what is measured, and the server's RTP (if any) must not bounce as ICMP errors.
    let sink = UdpSocket::bind("127.0.0.1:0").await?;
    let sink_port = sink.local_addr()?.port();
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while sink.recv_from(&mut buf).await.is_ok() {}
    });

    let total = (a.rate * a.duration.as_secs_f64()).round().max(1.0) as u64;
    let drops0 = udp_drops(&a.drop_ports);
    let probe = Probe::start(a.pid);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut launched = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    while launched < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * a.rate) as u64).min(total);
        while launched < due {
            launched += 1;
            let ua = ua.clone();
            let did = a.did.clone();
            let hold = a.hold;
            let from = format!("+1555{launched:07}");
            tasks.spawn(async move {
                let mut d = ua.invite(&did, &from, sink_port).await?;
                let setup = d.setup;
                if !hold.is_zero() {
                    tokio::time::sleep(hold).await;
                }
                ua.bye(&mut d, &from).await?;
                Ok::<Duration, super::sip::CallError>(setup)
            });
        }
    }
    let launch_s = started.elapsed().as_secs_f64();
    let mut setups: Vec<u64> = Vec::with_capacity(total as usize);
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(setup)) => setups.push(setup.as_micros() as u64),
            Ok(Err(e)) => *failures.entry(e.to_string()).or_default() += 1,
            Err(e) => *failures.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let probe = probe.finish();
    drain.abort();
    let failed: u64 = failures.values().sum();
    let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
    Ok(json!({
        "mode": "signalling",
        "rate_target": a.rate,
        "calls": total,
        "completed": setups.len(),
        "failed": failed,
        "failures": failures,
        "offered_cps": total as f64 / launch_s.max(1e-3),
        "completed_cps": setups.len() as f64 / elapsed.max(1e-3),
        "setup_ms_p50": ms(percentile(&mut setups, 50.0)),
        "setup_ms_p99": ms(percentile(&mut setups, 99.0)),
        "setup_ms_max": ms(percentile(&mut setups, 100.0)),
        "udp_drops": udp_drops(&a.drop_ports).saturating_sub(drops0),
        "server": probe,
    }))
}
