//! Sign-in sessions for the agent console and the supervisors' dashboard: random bearer tokens
//! that expire, end on logout, and are capped in number. In memory only, so a restart signs
//! everyone out. Also the checks every sign-in and browser WebSocket shares: same-origin
//! upgrades and the per-source failure limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use crate::runtime::Shared;

/// Sessions kept at most per kind; beyond it the one closest to expiry goes first.
pub const MAX_SESSIONS: usize = 1000;

/// token → (who, expiry).
pub struct Sessions {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Sessions {
            ttl,
            max: max.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `who`; expired ones are forgotten first.
    pub fn start(&self, who: &str, now: Instant) -> String {
        let token = new_token();
        let mut map = self.lock();
        map.retain(|_, (_, exp)| *exp > now);
        while map.len() >= self.max {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(t, _)| t.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(token.clone(), (who.to_string(), now + self.ttl));
        token
    }

    /// Who a live session belongs to.
    pub fn who(&self, token: &str, now: Instant) -> Option<String> {
        self.lock()
            .get(token)
            .filter(|(_, exp)| *exp > now)
            .map(|(who, _)| who.clone())
    }

    /// Ends a session; false when there was none.
    pub fn end(&self, token: &str) -> bool {
        self.lock().remove(token).is_some()
    }
}

fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..36), 36).unwrap_or('x'))
        .collect()
}

/// `Authorization: Bearer <token>`, trimmed.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// A browser always sends `Origin` on a WebSocket upgrade and applies no CORS to it: the origin
/// must name this server, so another site open in the user's browser cannot ride their session.
/// Clients that send no `Origin` are not browsers and pass.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (origin.to_str(), text(header::HOST)) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|h| h.eq_ignore_ascii_case(host))
}

/// The 403 for a WebSocket upgrade from another site.
pub fn cross_origin() -> Response {
    super::error(StatusCode::FORBIDDEN, "cross-origin WebSocket refused")
}

/// Checks a sign-in's password against `found`'s hash (off the async threads; an unknown id
/// costs the same time). Sign-ins count in the same per-source limiter as wrong PINs and REGISTER
/// passwords: `Err` is the 429 for a blocked address, whose password is not even checked;
/// `Ok(None)` a wrong id or password, already counted against `ip`.
pub async fn verify<T: Send + 'static>(
    shared: &Shared,
    ip: IpAddr,
    found: Option<T>,
    hash: fn(&T) -> &str,
    password: String,
) -> Result<Option<T>, Response> {
    if let Some(refused) = blocked(shared, ip) {
        return Err(refused);
    }
    let checked = tokio::task::spawn_blocking(move || {
        let ok = match &found {
            Some(f) => crate::auth::verify_password(hash(f), &password),
            None => {
                crate::auth::verify_unknown_user(&password);
                false
            }
        };
        found.filter(|_| ok)
    })
    .await
    .unwrap_or(None);
    if checked.is_none() && shared.auth_limiter.failed(ip, shared.clock.now()) {
        tracing::warn!(source = %ip, "failed sign-ins: source blocked");
    }
    Ok(checked)
}

fn blocked(shared: &Shared, ip: IpAddr) -> Option<Response> {
    if !shared.auth_limiter.is_blocked(ip, shared.clock.now()) {
        return None;
    }
    shared.auth_limiter.refused();
    Some(super::error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed sign-ins from this address; try again later",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_expires_ends_on_logout_and_the_oldest_goes_beyond_the_cap() {
        let t0 = Instant::now();
        let s = Sessions::new(Duration::from_secs(60), 2);
        let a = s.start("ana", t0);
        assert_eq!(
            s.who(&a, t0 + Duration::from_secs(59)).as_deref(),
            Some("ana")
        );
        assert_eq!(s.who(&a, t0 + Duration::from_secs(60)), None);
        assert_eq!(s.who("not-a-token", t0), None);

        let b = s.start("bo", t0 + Duration::from_secs(1));
        assert!(s.end(&b));
        assert!(!s.end(&b));
        assert_eq!(s.who(&b, t0 + Duration::from_secs(2)), None);

        let c = s.start("cy", t0 + Duration::from_secs(2));
        let d = s.start("di", t0 + Duration::from_secs(3));
        let e = s.start("ed", t0 + Duration::from_secs(4));
        let now = t0 + Duration::from_secs(5);
        assert_eq!(
            s.who(&c, now),
            None,
            "the oldest of three goes with a cap of two"
        );
        assert_eq!(s.who(&d, now).as_deref(), Some("di"));
        assert_eq!(s.who(&e, now).as_deref(), Some("ed"));
        assert_ne!(d, e);
        assert_eq!(d.len(), 40);
    }

    #[test]
    fn only_this_servers_origin_may_open_a_websocket() {
        let with_host = |host: Option<&str>, origin: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(host) = host {
                h.insert(header::HOST, host.parse().expect("host"));
            }
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().expect("origin"));
            }
            h
        };
        let h = |origin| with_host(Some("sb.example:8080"), origin);
        assert!(same_origin(&h(None)));
        assert!(same_origin(&h(Some("http://sb.example:8080"))));
        assert!(same_origin(&h(Some("https://SB.example:8080"))));
        assert!(!same_origin(&h(Some("https://evil.example"))));
        assert!(!same_origin(&h(Some("http://sb.example:8081"))));
        assert!(!same_origin(&h(Some("http://sb.example:8080.evil"))));
        assert!(!same_origin(&h(Some("null"))));
        assert!(!same_origin(&with_host(
            None,
            Some("http://sb.example:8080")
        )));
    }
}
