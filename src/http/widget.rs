//! The click-to-call widget for customers' web sites (`/widget.js`), its endpoints, and the CRM
//! callback API. The widget's endpoints answer cross-origin requests only from the configured
//! origins, and every client address gets `widget.rate_per_minute` calls and callback posts.
//! The message protocol for browser calls is in `assets/WIDGET.md`.
// The early-return `Err` is the finished HTTP answer, made at most once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use crate::acd::callback::{validate_request, CallbackError};
use crate::runtime::acd_task::AcdCmd;
use crate::runtime::callbacks::{Refused, Submit};
use crate::runtime::widget_call::{self, StartError};
use crate::runtime::Shared;

use super::error;

/// Bodies larger than this are refused before parsing.
const MAX_BODY: usize = 16 * 1024;
/// Client addresses remembered by the rate limiter; beyond it, idle ones are forgotten.
const MAX_CLIENTS: usize = 50_000;

pub fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let limiter = Arc::new(Limiter::new(shared.config.widget.rate_per_minute));
    let api = Router::new()
        .route("/api/callbacks", post(api_callback))
        .route_layer(axum::middleware::from_fn_with_state(
            shared,
            super::require_token,
        ));
    Router::new()
        .route("/widget.js", get(script))
        .route(
            "/api/widget/callback",
            post(widget_callback).options(preflight),
        )
        .route("/api/widget/call", post(widget_call).options(preflight))
        .route("/api/widget/call/{id}/events", get(widget_call_events))
        .route(
            "/api/widget/call/{id}",
            delete(widget_call_hangup).options(preflight),
        )
        .layer(Extension(limiter))
        .merge(api)
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/widget.js"),
    )
        .into_response()
}

/// Per-address token buckets: `rate` tokens a minute, bursts up to `rate`.
pub struct Limiter {
    rate: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate: u32) -> Limiter {
        Limiter {
            rate: rate.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when the address has used its share.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let per_sec = f64::from(self.rate) / 60.0;
        let cap = f64::from(self.rate);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_CLIENTS && !b.contains_key(&ip) {
            b.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec < cap
            });
        }
        let (tokens, at) = b.entry(ip).or_insert((cap, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_sec))
        }
    }
}

/// The allowed `Origin`, `None` for requests without one (not from a browser page), or the 403.
fn allowed_origin(shared: &Shared, headers: &HeaderMap) -> Result<Option<HeaderValue>, Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let text = origin.to_str().unwrap_or("");
    let cfg = &shared.config.widget;
    let same = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| {
            text.strip_prefix("http://")
                .or_else(|| text.strip_prefix("https://"))
                == Some(host)
        });
    if same || cfg.allowed_origins.iter().any(|o| o == text) {
        Ok(Some(origin.clone()))
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            "this site is not allowed to use the widget (see widget.allowed_origins)",
        ))
    }
}

fn with_cors(mut resp: Response, origin: &Option<HeaderValue>) -> Response {
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
    }
    resp
}

async fn preflight(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let origin = match allowed_origin(&shared, &headers) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    with_cors(resp, &origin)
}

/// Origin, then rate limit: what every widget request passes before its body is looked at.
fn gate(
    shared: &Shared,
    limiter: &Limiter,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Option<HeaderValue>, Response> {
    let origin = allowed_origin(shared, headers)?;
    if let Err(wait) = limiter.check(peer.ip(), Instant::now()) {
        let secs = wait.as_secs().max(1);
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this address; try again shortly",
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(with_cors(resp, &origin));
    }
    Ok(origin)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    number: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    queue: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes, example: &str) -> Result<T, Response> {
    if body.len() > MAX_BODY {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is too large",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let msg = format!("the body must be JSON like {example}: {e}");
        error(StatusCode::BAD_REQUEST, &msg)
    })
}

const CALLBACK_EXAMPLE: &str = r#"{"number": "+55…", "note": "…"}"#;

fn unprocessable(field: &str, message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(serde_json::json!({ "error": message, "field": field })),
    )
        .into_response()
}

/// Validates and queues a callback; the answer the API and the widget share.
async fn queue_callback(shared: &Shared, b: CallbackBody, queue: Option<String>) -> Response {
    let cfg = &shared.config.widget;
    let number = match validate_request(&b.number, &b.note, &cfg.callback_prefixes) {
        Ok(n) => n,
        Err(e) => {
            let field = match e {
                CallbackError::NoteTooLong => "note",
                CallbackError::UnknownQueue => "queue",
                _ => "number",
            };
            return unprocessable(field, &e.to_string());
        }
    };
    let Some(queue) = queue.or_else(|| cfg.callback_queue.clone()) else {
        return unprocessable(
            "queue",
            "queue: name a queue (no widget.callback_queue is configured)",
        );
    };
    let Some(acd) = shared.acd.as_ref() else {
        return unprocessable("queue", "queue: no queues are configured on this server");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let submit = Submit {
        number,
        queue,
        note: b.note,
        priority: 0,
        keep_place_of: None,
        reply: Some(tx),
    };
    if acd.send(AcdCmd::Callback(submit)).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the queue service is stopped",
        );
    }
    match rx.await {
        Ok(Ok(accepted)) => (StatusCode::CREATED, Json(accepted)).into_response(),
        Ok(Err(Refused::UnknownQueue)) => unprocessable("queue", "queue: no such queue"),
        Ok(Err(e @ Refused::QueueFull)) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            r
        }
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the queue service is stopped",
        ),
    }
}

/// `POST /api/callbacks` (token): a CRM or web form of the centre's own.
async fn api_callback(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<CallbackBody>(&body, CALLBACK_EXAMPLE) {
        Ok(mut b) => {
            let queue = b.queue.take();
            queue_callback(&shared, b, queue).await
        }
        Err(r) => r,
    }
}

/// `POST /api/widget/callback`: the widget's form; always to `widget.callback_queue`.
async fn widget_callback(
    State(shared): State<Arc<Shared>>,
    Extension(limiter): Extension<Arc<Limiter>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let origin = match gate(&shared, &limiter, &headers, peer) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let resp = match parse::<CallbackBody>(&body, CALLBACK_EXAMPLE) {
        Ok(b) if b.queue.is_some() => unprocessable(
            "queue",
            "queue: the widget's callbacks always go to the configured queue",
        ),
        Ok(b) => match shared.config.widget.callback_queue.clone() {
            Some(q) => queue_callback(&shared, b, Some(q)).await,
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "callbacks are not enabled on this server",
            ),
        },
        Err(r) => r,
    };
    with_cors(resp, &origin)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    flow: String,
    #[serde(default)]
    sdp: String,
}

/// `POST /api/widget/call`: a browser call into a flow. The answer carries our SDP and where to
/// follow the call; the browser caller then walks the flow like a phone caller.
async fn widget_call(
    State(shared): State<Arc<Shared>>,
    Extension(limiter): Extension<Arc<Limiter>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let origin = match gate(&shared, &limiter, &headers, peer) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let resp = match parse::<CallBody>(&body, CALL_EXAMPLE) {
        Ok(b) if !shared.config.widget.flows.contains(&b.flow) => error(
            StatusCode::FORBIDDEN,
            "this flow is not open to the widget (see widget.flows)",
        ),
        Ok(b) if b.sdp.trim().is_empty() => error(
            StatusCode::BAD_REQUEST,
            "sdp: the browser's SDP offer is required",
        ),
        Ok(b) => match widget_call::start(shared.clone(), &b.flow, &b.sdp, peer.ip()).await {
            Ok(started) => Json(serde_json::json!({
                "call_id": started.id,
                "sdp": started.sdp,
                "events": format!("/api/widget/call/{}/events", started.id),
            }))
            .into_response(),
            Err(e @ StartError::Busy) => {
                let mut r = error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
                r
            }
            Err(e @ StartError::Offer(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
            Err(e @ StartError::NoFlow) => error(StatusCode::NOT_FOUND, &e.to_string()),
            Err(e @ StartError::NoGateway) => {
                error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
            }
        },
        Err(r) => r,
    };
    with_cors(resp, &origin)
}

const CALL_EXAMPLE: &str = r#"{"flow": "main", "sdp": "v=0…"}"#;

fn unknown_call() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such call: it has ended, or the id is wrong",
    )
}

/// `GET /api/widget/call/{id}/events`: the call's states as server-sent events (`state` events
/// with JSON data), from its state now until it ends.
async fn widget_call_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let origin = match allowed_origin(&shared, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(rx) = shared.widget_calls.subscribe(&id) else {
        return with_cors(unknown_call(), &origin);
    };
    // First the state now, then each change; after `ended` (or when the call is gone) the
    // stream ends.
    let stream =
        futures_util::stream::unfold((rx, true, false), |(mut rx, first, done)| async move {
            if done {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                // The call is gone; its last state was sent already unless it never ended.
                let last = rx.borrow().clone();
                if last.is_ended() {
                    return None;
                }
            }
            let phase = rx.borrow_and_update().clone();
            let ended = phase.is_ended();
            let data = serde_json::to_string(&phase).unwrap_or_default();
            let ev: Result<Event, std::convert::Infallible> =
                Ok(Event::default().event("state").data(data));
            Some((ev, (rx, false, ended)))
        });
    let resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    with_cors(resp, &origin)
}

/// `DELETE /api/widget/call/{id}`: the page hangs up.
async fn widget_call_hangup(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let origin = match allowed_origin(&shared, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let resp = if shared.widget_calls.hangup(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        unknown_call()
    };
    with_cors(resp, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_the_rate_then_says_how_long_to_wait() {
        let l = Limiter::new(3);
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(a, t0), Ok(()));
        }
        let wait = l.check(a, t0).err();
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(19) && w <= Duration::from_secs(20)),
            "{wait:?}"
        );
        assert_eq!(l.check(b, t0), Ok(()), "another address has its own share");
        assert_eq!(l.check(a, t0 + Duration::from_secs(20)), Ok(()));
    }
}
