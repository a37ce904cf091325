//! Webhooks: call and agent events POSTed as JSON to the customer's systems.
//!
//! A call only ever pushes onto a bounded in-memory queue ([`Webhooks::emit`]); when the queue is
//! full the OLDEST event is dropped (counted and logged), so a dead CRM can never slow a call.
//! One task drains the queue and runs each delivery in its own task, with retries on an
//! exponential back-off ([`RetryPolicy`]); a semaphore bounds how many are in flight.
//!
//! Each POST carries `X-Switchboard-Event`, `X-Switchboard-Delivery` (the same on every retry of
//! one event to one URL, so receivers can de-duplicate) and
//! `X-Switchboard-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::{watch, Notify, Semaphore};

use super::metrics::DeliveryResult;
use super::Shared;

/// Events waiting to be sent beyond this are dropped oldest first.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Deliveries (including their back-off waits) in flight at once.
const IN_FLIGHT: usize = 256;
/// A receiver that takes longer than this is treated as failed for that attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which events a hook wants: `events: all` or a list of names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EventFilter {
    All(AllWord),
    Only(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllWord {
    All,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter::All(AllWord::All)
    }
}

impl EventFilter {
    pub fn wants(&self, kind: &str) -> bool {
        match self {
            EventFilter::All(_) => true,
            EventFilter::Only(list) => list.iter().any(|e| e == kind || e == "all"),
        }
    }
}

/// The names `events:` may list, for the config check.
pub const EVENT_TYPES: &[&str] = &[
    "call.started",
    "call.queued",
    "call.answered",
    "call.ended",
    "survey.bad",
    "agent.state",
];

/// One entry of `webhooks:` in the config file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
    #[serde(default)]
    pub events: EventFilter,
    /// Attempts in all, the first included (default 6).
    pub max_attempts: Option<u32>,
    /// The first retry's delay (default `1s`); each next one is 4× longer, at most 60 s.
    pub backoff: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl WebhookConfig {
    /// What is wrong with this entry, for the config loader.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            out.push(format!(
                "webhooks: url `{}` must start with http:// or https://",
                self.url
            ));
        }
        if self.secret.is_empty() {
            out.push(format!("webhooks: `{}` needs a non-empty secret", self.url));
        }
        if let EventFilter::Only(list) = &self.events {
            for e in list {
                if e != "all" && !EVENT_TYPES.contains(&e.as_str()) {
                    out.push(format!(
                        "webhooks: unknown event `{e}` (known: all, {})",
                        EVENT_TYPES.join(", ")
                    ));
                }
            }
        }
        if self.max_attempts == Some(0) {
            out.push("webhooks: max_attempts must be at least 1".into());
        }
        if let Some(b) = &self.backoff {
            if crate::config::parse_duration(b).is_none() {
                out.push(format!("webhooks: bad backoff duration `{b}`"));
            }
        }
        out
    }

    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            first: self
                .backoff
                .as_deref()
                .and_then(crate::config::parse_duration)
                .unwrap_or(Duration::from_secs(1)),
            cap: Duration::from_secs(60),
            max_attempts: self.max_attempts.unwrap_or(6).max(1),
        }
    }
}

/// When to try again. Pure: the schedule is data, tested without waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

/// What one attempt's answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    GiveUp,
}

impl RetryPolicy {
    /// The wait before attempt `failures + 1`, after `failures` failed attempts; `None` when
    /// there are no attempts left.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        if failures == 0 || failures >= self.max_attempts {
            return None;
        }
        let factor = 4u32.checked_pow(failures - 1).unwrap_or(u32::MAX);
        Some(self.first.saturating_mul(factor).min(self.cap))
    }

    /// The times of every attempt for a receiver that never answers 2xx, starting at `start`.
    pub fn schedule(&self, start: crate::time::Instant) -> Vec<crate::time::Instant> {
        let mut at = vec![start];
        let mut now = start;
        let mut failures = 1;
        while let Some(d) = self.delay_after(failures) {
            now += d;
            at.push(now);
            failures += 1;
        }
        at
    }
}

/// 2xx delivered; 408, 429 and 5xx (and no answer, `None`) are tried again; other 4xx mean the
/// receiver will never take it.
pub fn classify(status: Option<u16>) -> AttemptOutcome {
    match status {
        Some(200..=299) => AttemptOutcome::Delivered,
        Some(408) | Some(429) => AttemptOutcome::Retry,
        Some(400..=499) => AttemptOutcome::GiveUp,
        _ => AttemptOutcome::Retry,
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over the exact body bytes.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + bytes.len() * 2);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn random_id() -> String {
    let n: u128 = rand::random();
    format!("{n:032x}")
}

/// One event as it is queued: already serialised, so a call pays for it once.
#[derive(Clone, Debug)]
struct Event {
    kind: String,
    id: String,
    body: Arc<Vec<u8>>,
}

/// The handle in [`Shared`]: `emit` never blocks and never fails.
#[derive(Default)]
pub struct Webhooks {
    queue: Mutex<VecDeque<Event>>,
    notify: Notify,
    enabled: bool,
    capacity: usize,
    /// Drops not yet moved into the metrics (the delivery task does that).
    drops: std::sync::atomic::AtomicU64,
    /// Events queued plus deliveries under way (retries included): 0 when all is sent.
    busy: std::sync::atomic::AtomicUsize,
}

impl Webhooks {
    pub fn new(hooks: &[WebhookConfig]) -> Webhooks {
        Webhooks {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            enabled: !hooks.is_empty(),
            capacity: QUEUE_CAPACITY,
            drops: Default::default(),
            busy: Default::default(),
        }
    }

    /// Events not yet delivered (queued, being sent or waiting to retry).
    pub fn pending(&self) -> usize {
        self.busy.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// At shutdown: waits up to `limit` for every queued event to be delivered (or given up);
    /// the number still pending.
    pub async fn flush(&self, limit: std::time::Duration) -> usize {
        let until = tokio::time::Instant::now() + limit;
        while self.pending() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.pending()
    }

    /// Queue `{id, type, at, data}` for every hook that wants `kind`. `data` must hold no
    /// secrets: it goes to another company's server.
    pub fn emit(&self, kind: &str, data: serde_json::Value) {
        if !self.enabled {
            return;
        }
        let id = random_id();
        let body = serde_json::json!({
            "id": id,
            "type": kind,
            "at": crate::cdr::format_ts(&chrono::Utc::now()),
            "data": data,
        });
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, event = kind, "webhook event cannot be serialised");
                return;
            }
        };
        let ev = Event {
            kind: kind.to_string(),
            id,
            body: Arc::new(body),
        };
        let dropped = {
            let Ok(mut q) = self.queue.lock() else { return };
            let dropped = if q.len() >= self.capacity.max(1) {
                q.pop_front()
            } else {
                None
            };
            q.push_back(ev);
            self.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            dropped
        };
        if let Some(d) = dropped {
            self.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(event = %d.kind, id = %d.id, "webhook queue full: dropped the oldest event");
            self.drops
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Event> {
        self.queue.lock().ok()?.pop_front()
    }
}

/// Drain the queue until `stop`.
pub fn spawn(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    if shared.config.webhooks.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            let drops = shared
                .webhooks
                .drops
                .swap(0, std::sync::atomic::Ordering::Relaxed);
            shared.metrics.webhooks_add(DeliveryResult::Dropped, drops);
            while let Some(ev) = shared.webhooks.pop() {
                for hook in shared
                    .config
                    .webhooks
                    .iter()
                    .filter(|h| h.events.wants(&ev.kind))
                {
                    let permit = tokio::select! {
                        p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    let shared = shared.clone();
                    let hook = hook.clone();
                    let ev = ev.clone();
                    shared
                        .webhooks
                        .busy
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::spawn(async move {
                        deliver(&shared, &hook, &ev).await;
                        shared
                            .webhooks
                            .busy
                            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        drop(permit);
                    });
                }
                // The event itself has left the queue (its deliveries count on their own).
                shared
                    .webhooks
                    .busy
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
            tokio::select! {
                _ = shared.webhooks.notify.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}

async fn deliver(shared: &Shared, hook: &WebhookConfig, ev: &Event) {
    let policy = hook.policy();
    let delivery = random_id();
    let sig = signature(hook.secret.as_bytes(), &ev.body);
    let mut failures = 0u32;
    loop {
        let resp = shared
            .http_client
            .post(&hook.url)
            .timeout(ATTEMPT_TIMEOUT)
            .header("content-type", "application/json")
            .header("x-switchboard-event", &ev.kind)
            .header("x-switchboard-delivery", &delivery)
            .header("x-switchboard-signature", &sig)
            .body(ev.body.as_ref().clone())
            .send()
            .await;
        let status = resp.as_ref().ok().map(|r| r.status().as_u16());
        let outcome = classify(status);
        match outcome {
            AttemptOutcome::Delivered => {
                shared.metrics.webhook(DeliveryResult::Delivered);
                return;
            }
            AttemptOutcome::GiveUp => {
                shared.metrics.webhook(DeliveryResult::Failed);
                tracing::error!(url = %hook.url, event = %ev.kind, status = ?status, "webhook refused; not retried");
                return;
            }
            AttemptOutcome::Retry => {}
        }
        failures += 1;
        let why = match &resp {
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        match policy.delay_after(failures) {
            Some(d) => {
                shared.metrics.webhook(DeliveryResult::Retried);
                tracing::warn!(url = %hook.url, event = %ev.kind, attempt = failures, error = %why, retry_in = ?d, "webhook failed; will retry");
                tokio::time::sleep(d).await;
            }
            None => {
                shared.metrics.webhook(DeliveryResult::Failed);
                tracing::error!(url = %hook.url, event = %ev.kind, attempts = failures, error = %why, "webhook given up");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cret",
        //   b"{\"type\":\"call.ended\"}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(b"s3cret", br#"{"type":"call.ended"}"#),
            "sha256=10fb28422dd110b22b9a78e1ecbc839161b16422b62177735d12c95c237940e9"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn back_off_grows_four_fold_up_to_a_minute_then_stops() {
        let p = RetryPolicy {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_attempts: 6,
        };
        let t0 = Instant::from_millis(1_000);
        let at: Vec<u64> = p
            .schedule(t0)
            .iter()
            .map(|t| t.saturating_since(t0).as_millis() as u64)
            .collect();
        // Attempts at 0, then after 1 s, 4 s, 16 s, 60 s (capped), 60 s.
        assert_eq!(at, vec![0, 1_000, 5_000, 21_000, 81_000, 141_000]);
        assert_eq!(p.delay_after(6), None);
        let once = RetryPolicy {
            max_attempts: 1,
            ..p
        };
        assert_eq!(once.schedule(t0).len(), 1);
    }

    #[test]
    fn only_2xx_delivers_and_most_4xx_are_final() {
        assert_eq!(classify(Some(204)), AttemptOutcome::Delivered);
        assert_eq!(classify(Some(500)), AttemptOutcome::Retry);
        assert_eq!(classify(Some(503)), AttemptOutcome::Retry);
        assert_eq!(classify(Some(408)), AttemptOutcome::Retry);
        assert_eq!(classify(Some(429)), AttemptOutcome::Retry);
        assert_eq!(classify(None), AttemptOutcome::Retry);
        assert_eq!(classify(Some(404)), AttemptOutcome::GiveUp);
        assert_eq!(classify(Some(401)), AttemptOutcome::GiveUp);
        assert_eq!(classify(Some(301)), AttemptOutcome::Retry);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_event_not_the_new_one() {
        let w = Webhooks {
            capacity: 2,
            ..Webhooks::new(&[hook(EventFilter::default())])
        };
        w.emit("call.started", serde_json::json!({ "n": 1 }));
        w.emit("call.started", serde_json::json!({ "n": 2 }));
        w.emit("call.started", serde_json::json!({ "n": 3 }));
        let mut seen = Vec::new();
        while let Some(e) = w.pop() {
            let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_default();
            assert_eq!(v["type"], "call.started");
            assert!(v["at"].as_str().is_some_and(|s| s.ends_with('Z')));
            seen.push(v["data"]["n"].as_i64().unwrap_or(0));
        }
        assert_eq!(seen, vec![2, 3]);
    }

    fn hook(events: EventFilter) -> WebhookConfig {
        WebhookConfig {
            url: "http://127.0.0.1:9/hook".into(),
            secret: "topsecret".into(),
            events,
            max_attempts: None,
            backoff: None,
        }
    }

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("switchboard.yaml");
        std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
        crate::config::Config::load(Some(&path), &Default::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_config_file_takes_webhooks_and_metrics_and_refuses_mistakes() {
        let c = load(
            "webhooks:\n  - url: http://crm.example/h\n    secret: s1\n    events: all\n  - url: https://b.example/h\n    secret: s2\n    events: [survey.bad]\n    max_attempts: 3\n    backoff: 500ms\nmetrics:\n  public: true\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.webhooks.len(), 2);
        assert!(c.webhooks[0].events.wants("call.started"));
        assert!(!c.webhooks[1].events.wants("call.started"));
        assert_eq!(
            c.webhooks[1].policy().delay_after(1),
            Some(Duration::from_millis(500))
        );
        assert_eq!(c.webhooks[1].policy().max_attempts, 3);
        assert!(c.metrics_public);
        assert!(!load("max_calls: 5\n")
            .map(|c| c.metrics_public)
            .unwrap_or(true));

        let e = load("webhooks:\n  - url: http://x/h\n    secret: s\n    events: [call.endd]\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("call.endd"), "{e}");
        let e = load("webhooks:\n  - url: http://x/h\n    secret: s\n    retries: 3\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("retries"), "{e}");
        assert!(!e.contains("secret: s"), "{e}");
    }

    #[test]
    fn filters_and_config_checks() {
        let only = EventFilter::Only(vec!["call.ended".into(), "survey.bad".into()]);
        assert!(only.wants("survey.bad"));
        assert!(!only.wants("call.started"));
        assert!(EventFilter::default().wants("agent.state"));
        let mut h = hook(EventFilter::Only(vec!["call.ende".into()]));
        h.url = "ftp://x".into();
        let p = h.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|m| m.contains("call.ende")));
        assert!(!format!("{h:?}").contains("topsecret"));
        assert_eq!(hook(EventFilter::default()).policy().max_attempts, 6);
    }
}
