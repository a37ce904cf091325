//! `GET /api/calls/{call_id}/recording`: the call's WAV, for the API token and for supervisors
//! logged in on the dashboard (who review calls); each fetch is logged with who fetched it. An
//! agent's console session is refused with 403.
//!
//! The file is found through the call's record, never from the URL: the id only selects a
//! record, and the record's file name must be a recording name under `<data>/recordings/`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{error, same};
use crate::runtime::retention::recording_path;
use crate::runtime::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/api/calls/{call_id}/recording", get(recording))
}

enum Caller {
    Admin,
    Supervisor(String),
    Agent,
    Nobody,
}

fn who(shared: &Shared, headers: &HeaderMap) -> Caller {
    let Some(given) = super::session::bearer(headers) else {
        return Caller::Nobody;
    };
    if same(given.as_bytes(), shared.api_token.as_bytes()) {
        return Caller::Admin;
    }
    if let Some(id) = shared.dashboard.supervisor(given) {
        return Caller::Supervisor(id);
    }
    if shared
        .agent_sessions
        .who(given, std::time::Instant::now())
        .is_some()
    {
        Caller::Agent
    } else {
        Caller::Nobody
    }
}

async fn recording(
    State(shared): State<Arc<Shared>>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let by = match who(&shared, &headers) {
        Caller::Admin => "api".to_string(),
        Caller::Supervisor(id) => format!("supervisor:{id}"),
        Caller::Agent => {
            return error(
                StatusCode::FORBIDDEN,
                "recordings are for supervisors and the API",
            )
        }
        Caller::Nobody => {
            return error(
                StatusCode::UNAUTHORIZED,
                "this route needs `Authorization: Bearer <token>`: the API token or a supervisor's login",
            )
        }
    };
    let store = shared.cdr_store.clone();
    let id = call_id.clone();
    let rec = match tokio::task::spawn_blocking(move || store.get(&id)).await {
        Ok(Ok(Some(rec))) => rec,
        Ok(Ok(None)) => return error(StatusCode::NOT_FOUND, "no call with this id"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading a call");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the call store is unavailable",
            );
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let dir = shared.config.recordings_dir();
    let Some(path) = rec
        .recording
        .as_deref()
        .and_then(|n| recording_path(&dir, n))
    else {
        return error(StatusCode::NOT_FOUND, "this call has no recording");
    };
    // Streamed in 64 KiB chunks: a 2 h recording is about 230 MB and need not sit in memory.
    let (file, len) = match tokio::fs::File::open(&path).await {
        Ok(f) => {
            let len = f.metadata().await.map(|m| m.len()).ok();
            (f, len)
        }
        Err(_) => return error(StatusCode::NOT_FOUND, "the recording is not on disk"),
    };
    tracing::info!(%call_id, %by, "recording fetched");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("recording.wav")
        .to_string();
    let chunks = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(chunks).into_response();
    let h = resp.headers_mut();
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("audio/wav"),
    );
    if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
