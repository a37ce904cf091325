//! The agent console: the page and its assets, login, and the WebSocket that carries rings,
//! answers and call control (the protocol is described in `assets/README.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::runtime::acd_task::{AcdCmd, AgentAction, AgentMsg};
use crate::runtime::Shared;

use super::error;

/// How long a console login lasts without a new login.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

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

pub async fn login(State(shared): State<Arc<Shared>>, Json(l): Json<Login>) -> Response {
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
    let password = l.password;
    let ok = {
        let agent = agent.clone();
        tokio::task::spawn_blocking(move || match &agent {
            Some(a) => crate::auth::verify_password(&a.password_hash, &password),
            None => {
                crate::auth::verify_unknown_user(&password);
                false
            }
        })
        .await
        .unwrap_or(false)
    };
    let Some(agent) = agent.filter(|_| ok) else {
        tracing::info!(agent = %l.agent, "console login refused");
        return error(StatusCode::UNAUTHORIZED, "unknown agent or wrong password");
    };
    let token = new_token();
    {
        let mut tokens = shared
            .agent_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (_, exp)| *exp > now);
        tokens.insert(token.clone(), (agent.id.clone(), now + SESSION_TTL));
    }
    tracing::info!(agent = %agent.id, "console login");
    Json(serde_json::json!({
        "token": token,
        "agent": { "id": agent.id, "name": agent.name, "skills": agent.skills, "queues": agent.queues },
    }))
    .into_response()
}

fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..36), 36).unwrap_or('x'))
        .collect()
}

fn agent_for(shared: &Shared, token: &str) -> Option<String> {
    let tokens = shared
        .agent_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    tokens
        .get(token)
        .filter(|(_, exp)| *exp > Instant::now())
        .map(|(a, _)| a.clone())
}

#[derive(Deserialize)]
pub struct WsParams {
    token: Option<String>,
}

pub async fn ws(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<WsParams>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let agent = p.token.as_deref().and_then(|t| agent_for(&shared, t));
    upgrade.on_upgrade(move |socket| async move {
        match agent {
            Some(agent) => session(shared, agent, socket).await,
            None => {
                let mut socket = socket;
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 4001,
                        reason: "login expired".into(),
                    })))
                    .await;
            }
        }
    })
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

async fn session(shared: Arc<Shared>, agent_id: String, mut socket: WebSocket) {
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
    loop {
        tokio::select! {
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
