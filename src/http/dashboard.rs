//! The supervisors' dashboard: login, the page and its assets, the guard on the board and report
//! routes, and `/dashboard/ws`, which pushes the live board with today's figures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cdr::report::{Interval, ReportQuery};
use crate::runtime::acd_task::{AcdCmd, Board};
use crate::runtime::Shared;

use super::error;
use super::session::{bearer, cross_origin, same_origin, verify, Sessions};

/// Today's figures are recomputed from the call store at most this often, whatever the number
/// of dashboards open.
const TODAY_TTL: Duration = Duration::from_secs(2);

/// Supervisors' sessions and the cache of today's figures.
pub struct DashboardState {
    sessions: Sessions,
    /// time-zone offset (minutes) → (computed at, figures)
    today: tokio::sync::Mutex<HashMap<i32, (Instant, Today)>>,
}

impl DashboardState {
    /// Supervisors' sign-ins last `session_lifetime`.
    pub fn new(session_lifetime: Duration) -> Self {
        DashboardState {
            sessions: Sessions::new(session_lifetime, super::MAX_SESSIONS),
            today: Default::default(),
        }
    }
}

/// Today's totals (all queues) and each queue's, from the call records.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Today {
    /// The local date these figures are for, `YYYY-MM-DD`.
    pub date: String,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub abandoned_within_5s: u64,
    pub timed_out: u64,
    pub service_level: Option<f64>,
    pub asa_ms: Option<u64>,
    pub avg_wait_ms: Option<u64>,
    pub max_wait_ms: Option<u64>,
    pub queues: Vec<QueueToday>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueToday {
    pub name: String,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub service_level: Option<f64>,
    pub service_level_target_ms: Option<u64>,
}

pub async fn page() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("assets/dashboard.html"),
    )
}

pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboard.js"),
    )
}

pub async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/dashboard.css"),
    )
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
    supervisor: String,
    password: String,
}

pub async fn login(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(l): Json<Login>,
) -> Response {
    let sup = shared
        .config
        .supervisors
        .iter()
        .find(|s| s.id == l.supervisor)
        .cloned();
    let checked = verify(&shared, peer.ip(), sup, |s| &s.password_hash, l.password).await;
    let sup = match checked {
        Ok(Some(sup)) => sup,
        Err(refused) => return refused,
        Ok(None) => {
            tracing::info!(supervisor = %l.supervisor.chars().take(64).collect::<String>(), "dashboard login refused");
            return error(
                StatusCode::UNAUTHORIZED,
                "unknown supervisor or wrong password",
            );
        }
    };
    let token = shared.dashboard.sessions.start(&sup.id, Instant::now());
    tracing::info!(supervisor = %sup.id, "dashboard login");
    Json(serde_json::json!({
        "token": token,
        "expires_in_s": shared.dashboard.sessions.ttl().as_secs(),
        "supervisor": { "id": sup.id, "name": sup.name },
    }))
    .into_response()
}

pub async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(t) = bearer(&headers) {
        shared.dashboard.sessions.end(t);
    }
    StatusCode::NO_CONTENT.into_response()
}

impl DashboardState {
    /// The supervisor a live session token belongs to.
    pub(crate) fn supervisor(&self, token: &str) -> Option<String> {
        self.sessions.who(token, Instant::now())
    }
}

/// The API token or a supervisor's session; agents' console sessions are not enough.
fn authorized(shared: &Shared, token: &str) -> bool {
    super::same(token.as_bytes(), shared.api_token.as_bytes())
        || shared.dashboard.supervisor(token).is_some()
}

/// Guards the board and report routes.
pub async fn require_supervisor(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    match bearer(req.headers()) {
        Some(t) if authorized(&shared, t) => next.run(req).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "invalid or expired token"),
        None => error(
            StatusCode::UNAUTHORIZED,
            "this route needs `Authorization: Bearer <token>`: the API token or a supervisor's login",
        ),
    }
}

#[derive(Deserialize)]
pub struct WsParams {
    token: Option<String>,
    /// The browser's offset from UTC in minutes (east positive), so "today" is its day.
    tz_offset_minutes: Option<i32>,
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
    if token.is_empty() || !authorized(&shared, &token) {
        return error(StatusCode::UNAUTHORIZED, "log in first (token)");
    }
    let tz = p.tz_offset_minutes.unwrap_or(0);
    if tz.abs() > 14 * 60 {
        return error(
            StatusCode::BAD_REQUEST,
            "`tz_offset_minutes` must be within ±840",
        );
    }
    upgrade.on_upgrade(move |socket| session(shared, token, tz, socket))
}

async fn session(shared: Arc<Shared>, token: String, tz: i32, mut socket: WebSocket) {
    let mut board_rx = shared.board.subscribe();
    // The ACD task publishes only changes; a new watcher starts from a snapshot of now.
    let mut first = fresh_board(&shared).await;
    let mut today = today_for(&shared, tz).await;
    let mut refresh = tokio::time::interval(TODAY_TTL);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut send_now = true;
    loop {
        if send_now {
            let board = match first.take() {
                Some(b) => b,
                None => board_rx.borrow_and_update().clone(),
            };
            let msg = serde_json::json!({
                "type": "board",
                "queues": board.queues,
                "agents": board.agents,
                "today": today,
                "server_time": Utc::now().to_rfc3339(),
            });
            if socket
                .send(Message::Text(msg.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            send_now = false;
        }
        tokio::select! {
            changed = board_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                send_now = true;
            }
            _ = refresh.tick() => {
                if !authorized(&shared, &token) {
                    let _ = socket.send(Message::Close(Some(CloseFrame {
                        code: 4001,
                        reason: "login expired".into(),
                    }))).await;
                    return;
                }
                let fresh = today_for(&shared, tz).await;
                if fresh.is_some() && fresh != today {
                    today = fresh;
                    send_now = true;
                }
            }
            inc = socket.recv() => match inc {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                // The page sends nothing but pings; anything else is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn fresh_board(shared: &Shared) -> Option<Board> {
    let acd = shared.acd.as_ref()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    acd.send(AcdCmd::Snapshot { reply: tx }).ok()?;
    let (queues, agents) = rx.await.ok()?;
    Some(Board { queues, agents })
}

/// Today's figures for the offset, from the cache or computed off the async threads.
async fn today_for(shared: &Arc<Shared>, tz: i32) -> Option<Today> {
    let mut cache = shared.dashboard.today.lock().await;
    if let Some((at, t)) = cache.get(&tz) {
        if at.elapsed() < TODAY_TTL {
            return Some(t.clone());
        }
    }
    let s = shared.clone();
    let computed = tokio::task::spawn_blocking(move || compute_today(&s, tz, Utc::now())).await;
    match computed {
        Ok(Ok(t)) => {
            if cache.len() >= 32 {
                cache.clear();
            }
            cache.insert(tz, (Instant::now(), t.clone()));
            Some(t)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "dashboard: today's figures");
            cache.get(&tz).map(|(_, t)| t.clone())
        }
        Err(_) => None,
    }
}

/// The start of the local day containing `now`, in UTC, and that day's date.
fn local_midnight(now: DateTime<Utc>, tz: i32) -> (DateTime<Utc>, String) {
    let offset = chrono::Duration::minutes(i64::from(tz));
    let local = (now + offset).date_naive();
    let start = local
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc() - offset)
        .unwrap_or(now);
    (start, local.format("%Y-%m-%d").to_string())
}

fn compute_today(shared: &Shared, tz: i32, now: DateTime<Utc>) -> Result<Today, String> {
    let (from, date) = local_midnight(now, tz);
    let q = ReportQuery {
        from,
        to: now,
        interval: Interval::Day,
        queue: None,
        agent: None,
        dialed: None,
        country: None,
        tz_offset_minutes: tz,
    };
    q.validate().map_err(|e| e.to_string())?;
    let mut records = shared
        .cdr_store
        .for_report(from, now)
        .map_err(|e| e.to_string())?;
    // A call still waiting is on the live board; counted here it would read as a service-level
    // failure the moment it arrives. It joins today's figures when it ends.
    records.retain(|r| r.ended_at.is_some());
    let report = crate::cdr::report::compute(&records, &[], &q, &shared.config.queue_targets());
    Ok(today_from(&report, date))
}

fn today_from(report: &crate::cdr::report::Report, date: String) -> Today {
    let t = &report.totals;
    let mut queues: Vec<QueueToday> = Vec::new();
    for r in &report.rows {
        let Some(name) = &r.queue else { continue };
        match queues.iter_mut().find(|q| &q.name == name) {
            // One day interval gives one row per queue; a second would be the next day's.
            Some(_) => {}
            None => queues.push(QueueToday {
                name: name.clone(),
                offered: r.offered,
                answered: r.answered,
                abandoned: r.abandoned,
                service_level: r.service_level,
                service_level_target_ms: r.service_level_target_ms,
            }),
        }
    }
    Today {
        date,
        offered: t.offered,
        answered: t.answered,
        abandoned: t.abandoned,
        abandoned_within_5s: t.abandoned_within_5s,
        timed_out: t.timed_out,
        service_level: t.service_level,
        asa_ms: t.asa_ms,
        avg_wait_ms: t.avg_wait_ms,
        max_wait_ms: t.max_wait_ms,
        queues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_starts_at_local_midnight() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T01:30:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let (start, date) = local_midnight(now, 0);
        assert_eq!(start.to_rfc3339(), "2026-11-23T00:00:00+00:00");
        assert_eq!(date, "2026-11-23");
        // 01:30 UTC is 22:30 the day before in São Paulo (UTC−03:00).
        let (start, date) = local_midnight(now, -180);
        assert_eq!(start.to_rfc3339(), "2026-11-22T03:00:00+00:00");
        assert_eq!(date, "2026-11-22");
    }
}
