//! HTTP: health and call detail records (JSON). Admin routes need `Authorization: Bearer <token>`;
//! the token comes from `SWITCHBOARD_API_TOKEN` or the file `<data>/api-token` made at first start.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::cdr::CallQuery;
use crate::runtime::Shared;

mod agent;
mod dashboard;
mod metrics;

pub use dashboard::DashboardState;
mod recording;
mod session;
mod widget;

pub use session::{Sessions, MAX_SESSIONS};

pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/calls", get(list_calls))
        .route("/api/calls/{call_id}", get(get_call))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ));
    // The board and the reports: the API token or a supervisor's login.
    let supervised = Router::new()
        .route("/api/reports", get(reports))
        .route("/api/queues", get(agent::queues))
        .route("/api/agents", get(agent::agents))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            dashboard::require_supervisor,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/agent", get(agent::page))
        .route("/agent/agent.js", get(agent::script))
        .route("/agent/agent.css", get(agent::style))
        .route("/agent/ring.wav", get(agent::ring))
        .route("/agent/ws", get(agent::ws))
        .route("/api/agent/login", axum::routing::post(agent::login))
        .route("/api/agent/logout", axum::routing::post(agent::logout))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/dashboard.js", get(dashboard::script))
        .route("/dashboard/dashboard.css", get(dashboard::style))
        .route("/dashboard/ws", get(dashboard::ws))
        .route(
            "/api/supervisor/login",
            axum::routing::post(dashboard::login),
        )
        .route(
            "/api/supervisor/logout",
            axum::routing::post(dashboard::logout),
        )
        .merge(api)
        .merge(metrics::router())
        .merge(supervised)
        .merge(recording::routes())
        .merge(widget::router(shared.clone()))
        .with_state(shared)
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Constant-time comparison so the token cannot be guessed byte by byte from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match session::bearer(req.headers()) {
        Some(t) if same(t.as_bytes(), shared.api_token.as_bytes()) => next.run(req).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "invalid token"),
        None => error(
            StatusCode::UNAUTHORIZED,
            "this route needs `Authorization: Bearer <token>` (see data/api-token)",
        ),
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let sip = shared.sip_up.load(Ordering::Relaxed);
    let s = shared.clone();
    let readable = tokio::task::spawn_blocking(move || s.cdr_store.ping().is_ok())
        .await
        .unwrap_or(false);
    let cdr = shared.cdr.stats();
    // Records waiting in memory mean the store refuses writes (a locked or full disk still
    // answers a read): the database is not fine until they are written.
    let db = readable && cdr.pending == 0;
    let draining = shared.draining.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "status": if draining { "draining" } else if sip && db { "ok" } else { "degraded" },
        "sip": sip,
        "database": db,
        "active_calls": shared.active_calls(),
        "cdr_queue": cdr.pending,
        "cdr_write_failures": cdr.failures,
        // Why the store refuses writes (`disk_full`, `read_only`, `locked`, …), null when fine.
        "cdr_error": cdr.failing,
        "auth_blocks": shared.auth_limiter.stats().blocks,
        "trunk_registration": shared.metrics.trunk_registration(),
    });
    let code = if sip && db && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
struct CallsParams {
    from: Option<String>,
    to: Option<String>,
    queue: Option<String>,
    limit: Option<usize>,
}

fn parse_time(
    name: &str,
    v: &Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    match v {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| Some(d.with_timezone(&chrono::Utc)))
            .map_err(|_| format!("`{name}` must be an RFC 3339 time like 2026-11-23T10:00:00Z")),
    }
}

async fn list_calls(State(shared): State<Arc<Shared>>, Query(p): Query<CallsParams>) -> Response {
    let from = match parse_time("from", &p.from) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let to = match parse_time("to", &p.to) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return error(
            StatusCode::BAD_REQUEST,
            "`limit` must be between 1 and 1000",
        );
    }
    let q = CallQuery {
        from,
        to,
        queue: p.queue,
        limit,
    };
    let store = shared.cdr_store.clone();
    match tokio::task::spawn_blocking(move || store.list(&q)).await {
        Ok(Ok(mut calls)) => {
            // The list is a summary; the events are on the single record.
            for c in &mut calls {
                c.events.clear();
            }
            Json(calls).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "listing calls");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the call store is unavailable",
            )
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

async fn get_call(State(shared): State<Arc<Shared>>, Path(call_id): Path<String>) -> Response {
    let store = shared.cdr_store.clone();
    let id = call_id.clone();
    match tokio::task::spawn_blocking(move || store.get(&id)).await {
        Ok(Ok(Some(rec))) => Json(rec.to_detail_json()).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no call with this id"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading a call");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the call store is unavailable",
            )
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

#[derive(Debug, Deserialize)]
struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
    dialed: Option<String>,
    country: Option<String>,
    tz_offset_minutes: Option<i32>,
}

/// Builds the report query from request parameters: today (UTC) up to now by default.
#[allow(clippy::too_many_arguments)]
pub fn report_query(
    from: Option<&str>,
    to: Option<&str>,
    interval: Option<&str>,
    queue: Option<String>,
    agent: Option<String>,
    dialed: Option<String>,
    country: Option<String>,
    tz_offset_minutes: Option<i32>,
) -> Result<crate::cdr::report::ReportQuery, String> {
    use crate::cdr::report::{Interval, ReportQuery};
    let now = chrono::Utc::now();
    let from = parse_time("from", &from.map(str::to_string))?.unwrap_or_else(|| {
        now.date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc())
            .unwrap_or(now)
    });
    let to = parse_time("to", &to.map(str::to_string))?
        .unwrap_or(now)
        .min(now);
    let interval = Interval::parse(interval.unwrap_or("15m")).map_err(|e| e.to_string())?;
    let country = match country.as_deref().filter(|c| !c.trim().is_empty()) {
        None => None,
        Some(c) => Some(crate::cdr::country::normalize(c).ok_or_else(|| {
            let shown: String = c.chars().take(32).collect();
            format!("country must be an ISO 3166 alpha-2 code such as BR or PT, not `{shown}`")
        })?),
    };
    let q = ReportQuery {
        from,
        to,
        interval,
        queue,
        agent,
        dialed,
        country,
        tz_offset_minutes: tz_offset_minutes.unwrap_or(0),
    };
    q.validate().map_err(|e| e.to_string())?;
    Ok(q)
}

async fn reports(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Query(p): Query<ReportParams>,
) -> Response {
    let q = match report_query(
        p.from.as_deref(),
        p.to.as_deref(),
        p.interval.as_deref(),
        p.queue,
        p.agent,
        p.dialed,
        p.country,
        p.tz_offset_minutes,
    ) {
        Ok(q) => q,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let store = shared.cdr_store.clone();
    let targets = shared.config.queue_targets();
    let (from, to) = (q.from, q.to);
    let computed = tokio::task::spawn_blocking(move || {
        let records = store.for_report(from, to)?;
        let states = store.agent_states(from, to)?;
        Ok::<_, crate::cdr::CdrError>(crate::cdr::report::compute(&records, &states, &q, &targets))
    })
    .await;
    let report = match computed {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "report");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the call store is unavailable",
            );
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::cdr::report::to_csv(&report),
        )
            .into_response()
    } else {
        Json(report).into_response()
    }
}
