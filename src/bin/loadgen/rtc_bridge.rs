//! `loadgen rtc-bridge`: SIP callers bridged to WebRTC agents through the server. N agents sign
//! in at the console as the browser page does (`POST /api/agent/login`, the `/agent/ws`
//! WebSocket, `state: available`) and answer each `ring` with a WebRTC peer of the server's own
//! stack (`switchboard::rtc::RtcTestPeer`, the offering side, as the page is): `answer` carries
//! the offer, `answer_sdp` the server's answer, then ICE and DTLS-SRTP. The callers are
//! `loadgen bridge`'s SIP callers, and both ends send the same tagged 20 ms PCMU, so loss,
//! misrouting and the latency the server adds are measured the same way each side.
//!
//! The agents' WebRTC stack runs in this process, beside the callers: its CPU is the load
//! generator's, not the server's (the server is measured from /proc/PID/stat).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::rtc::{RtcConfig, RtcEvent, RtcTestPeer};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::bridge::{
    agent_user, now_us, report, run_callers, tagged_frame, Args, Heard, Tally, EPOCH,
};
use super::sip::Ua;
use super::stats::udp_drops;

/// Sign-ins at once: each costs the server an argon2 hash.
const LOGINS_AT_ONCE: usize = 4;
/// How long every agent has to sign in and become available.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the callers wait for every call to hear its agent: a WebRTC answer adds ICE and
/// DTLS to the SIP bridge's set-up.
const SETTLE: Duration = Duration::from_secs(60);
/// How long an agent's call may outlive the callers' hang-up.
const END_GRACE: Duration = Duration::from_secs(15);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The caller's index from a ring's `caller` (`+1777` and seven digits, as `loadgen bridge`
/// dials), whatever surrounds it (a bare number or a SIP URI).
fn caller_index(caller: &str) -> Option<u32> {
    let at = caller.find("+1777")?;
    let digits: String = caller
        .get(at + 5..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.len() != 7 {
        return None;
    }
    digits.parse().ok()
}

/// What one agent did over the run.
#[derive(Default)]
struct AgentResult {
    heard: Tally,
    legs: u64,
    failures: BTreeMap<String, u64>,
}

impl AgentResult {
    fn fail(&mut self, what: impl Into<String>) {
        *self.failures.entry(what.into()).or_default() += 1;
    }
}

/// The call an agent is on: from the ring until the server ends it.
struct Call {
    call_id: String,
    index: u32,
    peer: RtcTestPeer,
    /// The peer's ICE and DTLS are up: frames go out from here on.
    connected: bool,
    seq: u32,
    heard: Heard,
}

async fn sign_in(
    client: &reqwest::Client,
    http: SocketAddr,
    id: &str,
    password: &str,
) -> Result<(String, Ws), String> {
    let resp = client
        .post(format!("http://{http}/api/agent/login"))
        .json(&json!({"agent": id, "password": password}))
        .send()
        .await
        .map_err(|e| format!("login: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body["error"].as_str().unwrap_or_default();
        return Err(format!("login answered {} {why}", status.as_u16()));
    }
    let token = body["token"]
        .as_str()
        .ok_or("login answer without a token")?
        .to_string();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{http}/agent/ws?token={token}"))
            .await
            .map_err(|e| format!("console WebSocket: {e}"))?;
    wait_for(&mut ws, "hello").await?;
    send(&mut ws, json!({"type": "state", "state": "available"})).await?;
    loop {
        let m = wait_for(&mut ws, "state").await?;
        if m["state"] == "available" {
            return Ok((token, ws));
        }
    }
}

async fn send(ws: &mut Ws, v: Value) -> Result<(), String> {
    ws.send(Message::text(v.to_string()))
        .await
        .map_err(|e| format!("console WebSocket send: {e}"))
}

/// The next message of `kind` (others are skipped), within 10 s.
async fn wait_for(ws: &mut Ws, kind: &str) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("no {kind} on the console WebSocket within 10 s"))?;
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == kind {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Close(f))) => {
                return Err(format!(
                    "console WebSocket closed by the server ({})",
                    f.map(|f| f.code.to_string()).unwrap_or_default()
                ))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("console WebSocket: {e}")),
            None => return Err("console WebSocket ended".into()),
        }
    }
}

/// The next event of the call's peer; never, with no call.
async fn peer_event(call: &mut Option<Call>) -> Option<RtcEvent> {
    match call {
        Some(c) => c.peer.recv().await,
        None => std::future::pending().await,
    }
}

/// Ends the call: what it heard is counted, the peer hung up.
async fn finish(call: &mut Option<Call>, out: &mut AgentResult) {
    if let Some(c) = call.take() {
        out.heard.add(&c.heard);
        out.legs += 1;
        c.peer.close().await;
    }
}

/// One console agent: signs in (reporting on `ready`), answers every ring with a WebRTC peer and
/// talks until the server ends the call; after `stop`, finishes its call and signs out.
async fn agent(
    client: reqwest::Client,
    http: SocketAddr,
    id: String,
    password: String,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) -> AgentResult {
    let mut out = AgentResult::default();
    let signed_in = {
        let _permit = gate.acquire().await;
        sign_in(&client, http, &id, &password).await
    };
    let (token, mut ws) = match signed_in {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(format!("agent sign-in: {e}")));
            return out;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut call: Option<Call> = None;
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        if give_up.is_some() && call.is_none() {
            break;
        }
        let sending = call.as_ref().is_some_and(|c| c.connected);
        tokio::select! {
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        out.fail("the console WebSocket closed during the run");
                        break;
                    }
                    Some(Ok(_)) => continue,
                };
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                on_message(&mut ws, &v, &mut call, &mut out, give_up.is_some()).await;
            }
            ev = peer_event(&mut call) => match ev {
                Some(RtcEvent::Connected) => {
                    if let Some(c) = call.as_mut() {
                        c.connected = true;
                    }
                }
                Some(RtcEvent::Audio { payload, .. }) => {
                    if let Some(c) = call.as_mut() {
                        c.heard.frame(c.index, &payload);
                    }
                }
                Some(RtcEvent::Dtmf(_)) => {}
                // The server closed the leg (it ends it with the call): `call_ended` may follow.
                Some(RtcEvent::Closed) | None => finish(&mut call, &mut out).await,
            },
            _ = tick.tick(), if sending => {
                if let Some(c) = call.as_mut() {
                    let frame = tagged_frame(c.index, c.seq, now_us());
                    c.seq = c.seq.wrapping_add(1);
                    match c.peer.send_pcmu(&frame) {
                        Ok(()) | Err(switchboard::rtc::RtcError::Closed) => {}
                        Err(e) => out.fail(format!("agent's peer: {e}")),
                    }
                }
            }
            _ = stop.changed(), if give_up.is_none() => {
                give_up = Some(tokio::time::Instant::now() + END_GRACE);
            }
            _ = tokio::time::sleep_until(give_up.unwrap_or_else(tokio::time::Instant::now)), if give_up.is_some() => {
                out.fail("agent's call still up 15 s after the callers hung up");
                finish(&mut call, &mut out).await;
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    let _ = client
        .post(format!("http://{http}/api/agent/logout"))
        .bearer_auth(&token)
        .send()
        .await;
    out
}

/// One console message, as the page handles it.
async fn on_message(
    ws: &mut Ws,
    v: &Value,
    call: &mut Option<Call>,
    out: &mut AgentResult,
    stopping: bool,
) {
    let call_id = v["call_id"].as_str().unwrap_or_default();
    let ours = call.as_ref().is_some_and(|c| c.call_id == call_id);
    match v["type"].as_str().unwrap_or_default() {
        "ring" => {
            if call.is_some() {
                out.fail("rung while on a call");
                return;
            }
            let Some(index) = v["caller"].as_str().and_then(caller_index) else {
                out.fail("ring from an unknown caller");
                let _ = send(ws, json!({"type": "decline", "call_id": call_id})).await;
                return;
            };
            let (peer, offer) = match RtcTestPeer::offer(&RtcConfig::default()).await {
                Ok(p) => p,
                Err(e) => return out.fail(format!("agent's offer: {e}")),
            };
            if let Err(e) = send(
                ws,
                json!({"type": "answer", "call_id": call_id, "sdp": offer}),
            )
            .await
            {
                return out.fail(e);
            }
            *call = Some(Call {
                call_id: call_id.to_string(),
                index,
                peer,
                connected: false,
                seq: 0,
                heard: Heard::default(),
            });
        }
        "answer_sdp" if ours => {
            let sdp = v["sdp"].as_str().unwrap_or_default();
            if let Some(c) = call.as_mut() {
                if let Err(e) = c.peer.accept_answer(sdp).await {
                    out.fail(format!("the server's answer: {e}"));
                    finish(call, out).await;
                }
            }
        }
        "call_ended" if ours => finish(call, out).await,
        "ring_cancelled" if ours => {
            if !stopping {
                let why = v["reason"].as_str().unwrap_or_default();
                out.fail(format!("ring cancelled: {why}"));
            }
            finish(call, out).await;
        }
        "error" => out.fail(format!(
            "console error: {}",
            v["message"].as_str().unwrap_or_default()
        )),
        _ => {}
    }
}

pub async fn run(ua: Arc<Ua>, a: Args, http: SocketAddr) -> anyhow::Result<Value> {
    LazyLock::force(&EPOCH);
    let drops0 = udp_drops(&a.drop_ports);
    let rss_before_sign_in = a.pid.and_then(super::stats::rss_kib);
    let client = reqwest::Client::new();
    let gate = Arc::new(Semaphore::new(LOGINS_AT_ONCE));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut agents = tokio::task::JoinSet::new();
    for k in 0..a.agents {
        agents.spawn(agent(
            client.clone(),
            http,
            agent_user(&a.agent_prefix, k),
            a.agent_password.clone(),
            gate.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(ready_tx);
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + SIGN_IN_TIMEOUT;
    let mut reported = 0;
    while reported < a.agents {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => *failures.entry(e).or_default() += 1,
            Ok(None) | Err(_) => {
                *failures
                    .entry("agent not signed in in time".into())
                    .or_default() += (a.agents - reported) as u64;
                break;
            }
        }
        reported += 1;
    }

    // Per-call memory is counted from here: each sign-in's argon2 check leaves the server's
    // allocator with memory that no call uses.
    let idle_rss = a.pid.and_then(super::stats::rss_kib);
    let mut phase = run_callers(&ua, &a, SETTLE).await;

    let _ = stop_tx.send(true);
    let mut at_agents = Tally::default();
    let mut legs = 0;
    while let Some(r) = agents.join_next().await {
        match r {
            Ok(o) => {
                for (k, v) in o.failures {
                    *failures.entry(k).or_default() += v;
                }
                legs += o.legs;
                at_agents.merge(o.heard);
            }
            Err(e) => *failures.entry(format!("agent task: {e}")).or_default() += 1,
        }
    }
    if legs < phase.calls_bridged_total {
        *failures
            .entry("a bridged call never ended at its agent".into())
            .or_default() += phase.calls_bridged_total - legs;
    }
    for (k, v) in failures {
        *phase.failures.entry(k).or_default() += v;
    }
    let mut v = report("rtc-bridge", &a, phase, at_agents, idle_rss, drops0);
    v["agent_legs"] = json!(legs);
    v["server_rss_before_sign_in_kib"] = json!(rss_before_sign_in);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_names_its_caller_by_number_or_uri() {
        assert_eq!(caller_index("+17770000042"), Some(42));
        assert_eq!(caller_index("sip:+17770001234@127.0.0.1"), Some(1234));
        assert_eq!(caller_index("+1777123"), None, "too short");
        assert_eq!(caller_index("+15550000042"), None, "not one of ours");
    }
}
