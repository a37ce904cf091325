//! The agent console: the page and its assets, login, and the WebSocket that carries rings,
//! answers and call control (the protocol is described in `assets/README.md`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::runtime::acd_task::{AcdCmd, AgentAction, AgentMsg};
use crate::runtime::Shared;

use super::error;
use super::session::{bearer, cross_origin, same_origin, verify};

/// How often an open console socket checks that its sign-in is still live (expiry, logout).
const SESSION_CHECK: Duration = Duration::from_secs(1);

pub async fn page() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("assets/agent.html"),
    )
}

pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/agent.js"),
    )
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/agent.css"))
}

pub async fn ring() -> Response {
    (
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_bytes!("assets/ring.wav").as_slice(),
    )
        .into_response()
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct Login {
    agent: String,
    password: String,
}

pub async fn login(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(l): Json<Login>,
) -> Response {
    if shared.acd.is_none() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no queues are configured on this server",
        );
    }
    let agent = shared
        .config
        .agents
        .iter()
        .find(|a| a.id == l.agent)
        .cloned();
    let checked = verify(&shared, peer.ip(), agent, |a| &a.password_hash, l.password).await;
    let agent = match checked {
        Ok(Some(agent)) => agent,
        Err(refused) => return refused,
        Ok(None) => {
            tracing::info!(agent = %l.agent.chars().take(64).collect::<String>(), "console login refused");
            return error(StatusCode::UNAUTHORIZED, "unknown agent or wrong password");
        }
    };
    let token = shared.agent_sessions.start(&agent.id, Instant::now());
    tracing::info!(agent = %agent.id, "console login");
    Json(serde_json::json!({
        "token": token,
        "expires_in_s": shared.agent_sessions.ttl().as_secs(),
        "agent": { "id": agent.id, "name": agent.name, "skills": agent.skills, "queues": agent.queues },
    }))
    .into_response()
}

/// Ends the console session in `Authorization: Bearer`; its open socket closes with 4001 within
/// a second. 204 whether or not the token was live, as for supervisors.
pub async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(t) = bearer(&headers) {
        if shared.agent_sessions.end(t) {
            tracing::info!("console logout");
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

fn agent_for(shared: &Shared, token: &str) -> Option<String> {
    shared.agent_sessions.who(token, Instant::now())
}

#[derive(Deserialize)]
pub struct WsParams {
    token: Option<String>,
}

pub async fn ws(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(p): Query<WsParams>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return cross_origin();
    }
    let token = p.token.unwrap_or_default();
    let agent = agent_for(&shared, &token);
    upgrade.on_upgrade(move |socket| async move {
        match agent {
            Some(agent) => session(shared, agent, token, socket).await,
            None => {
                let mut socket = socket;
                let _ = socket.send(expired()).await;
            }
        }
    })
}

/// Close 4001: the page drops its token and shows the sign-in form.
fn expired() -> Message {
    Message::Close(Some(CloseFrame {
        code: 4001,
        reason: "login expired".into(),
    }))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromAgent {
    State {
        state: String,
    },
    WrapUpDone,
    Answer {
        call_id: String,
        sdp: String,
    },
    Decline {
        call_id: String,
    },
    Hangup {
        call_id: String,
    },
    Hold {
        call_id: String,
        on: bool,
    },
    Mute {
        call_id: String,
        on: bool,
    },
    Dtmf {
        call_id: String,
        digit: String,
    },
    Transfer {
        call_id: String,
        queue: Option<String>,
        agent: Option<String>,
    },
}

static SESSIONS: AtomicU64 = AtomicU64::new(1);

async fn session(shared: Arc<Shared>, agent_id: String, token: String, mut socket: WebSocket) {
    let Some(acd) = shared.acd.clone() else {
        return;
    };
    let session = SESSIONS.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<AgentMsg>();
    let hello = {
        let agent = shared.config.agents.iter().find(|a| a.id == agent_id);
        serde_json::json!({
            "type": "hello",
            "agent": agent.map(|a| serde_json::json!({
                "id": a.id, "name": a.name, "skills": a.skills, "queues": a.queues })),
            "state": "away",
            "since_ms": 0,
            "ice_servers": shared.rtc.stun.iter().map(|s| serde_json::json!({"urls": s})).collect::<Vec<_>>(),
        })
    };
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let _ = acd.send(AcdCmd::Login {
        agent_id: agent_id.clone(),
        session,
        tx,
    });
    let mut check = tokio::time::interval(SESSION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => {
                // Expired or logged out: the socket goes with the sign-in, like a dropped one.
                if agent_for(&shared, &token).is_none() {
                    tracing::info!(agent = %agent_id, "console session ended: closing its socket");
                    let _ = socket.send(expired()).await;
                    break;
                }
            }
            out = rx.recv() => {
                let Some(msg) = out else { break };
                let replaced = matches!(msg, AgentMsg::Replaced);
                let text = serde_json::to_string(&msg).unwrap_or_default();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
                if replaced {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 4002, reason: "logged in elsewhere".into() }))).await;
                    return;
                }
            }
            inc = socket.recv() => {
                let text = match inc {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) | Some(Ok(Message::Binary(_))) => continue,
                    _ => break,
                };
                if text.len() > 64 * 1024 {
                    break;
                }
                match serde_json::from_str::<FromAgent>(&text) {
                    Ok(m) => handle(&acd, &agent_id, m),
                    Err(e) => {
                        let err = AgentMsg::Error { message: format!("bad message: {e}") };
                        let _ = socket.send(Message::Text(serde_json::to_string(&err).unwrap_or_default().into())).await;
                    }
                }
            }
        }
    }
    // The socket dropped (reload, network): the agent is made unavailable and a call ringing them
    // is offered to someone else. A reload logs in again and gets `hello`.
    let _ = acd.send(AcdCmd::Logout { agent_id, session });
}

fn handle(acd: &mpsc::UnboundedSender<AcdCmd>, agent_id: &str, m: FromAgent) {
    let agent_id = agent_id.to_string();
    let cmd = match m {
        FromAgent::State { state } => AcdCmd::SetState {
            agent_id,
            available: state == "available",
        },
        FromAgent::WrapUpDone => AcdCmd::WrapUpDone { agent_id },
        FromAgent::Answer { call_id, sdp } => AcdCmd::Answer {
            agent_id,
            call_id,
            sdp,
        },
        FromAgent::Decline { call_id } => AcdCmd::Decline { agent_id, call_id },
        FromAgent::Hangup { call_id } => AcdCmd::ToCall {
            agent_id,
            call_id,
            msg: AgentAction::Hangup,
        },
        FromAgent::Hold { call_id, on } => AcdCmd::ToCall {
            agent_id,
            call_id,
            msg: AgentAction::Hold(on),
        },
        FromAgent::Mute { call_id, on } => {
            tracing::info!(agent = %agent_id, call_id, muted = on, "agent mute");
            return;
        }
        FromAgent::Dtmf { call_id, digit } => match digit.chars().next() {
            Some(d) => AcdCmd::ToCall {
                agent_id,
                call_id,
                msg: AgentAction::Dtmf(d),
            },
            None => return,
        },
        FromAgent::Transfer {
            call_id,
            queue,
            agent,
        } => AcdCmd::Transfer {
            agent_id,
            call_id,
            queue,
            agent,
        },
    };
    let _ = acd.send(cmd);
}

async fn snapshot(
    shared: &Shared,
) -> Option<(
    Vec<crate::acd::QueueSnapshot>,
    Vec<crate::acd::AgentSnapshot>,
)> {
    let acd = shared.acd.as_ref()?;
    let (tx, rx) = oneshot::channel();
    acd.send(AcdCmd::Snapshot { reply: tx }).ok()?;
    rx.await.ok()
}

pub async fn queues(State(shared): State<Arc<Shared>>) -> Response {
    match snapshot(&shared).await {
        Some((q, _)) => Json(q).into_response(),
        None => Json(Vec::<serde_json::Value>::new()).into_response(),
    }
}

pub async fn agents(State(shared): State<Arc<Shared>>) -> Response {
    match snapshot(&shared).await {
        Some((_, a)) => Json(a).into_response(),
        None => Json(Vec::<serde_json::Value>::new()).into_response(),
    }
}
