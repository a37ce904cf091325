//! `GET /metrics`: Prometheus text exposition format 0.0.4, written by hand. Needs the API token
//! like `/api`, unless the config says `metrics: { public: true }`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::acd::{AgentSnapshot, AgentState, QueueSnapshot};
use crate::runtime::metrics::MetricsSnapshot;
use crate::runtime::Shared;

pub fn router() -> Router<Arc<Shared>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !shared.config.metrics_public {
        let given = super::session::bearer(&headers);
        if !given.is_some_and(|t| super::same(t.as_bytes(), shared.api_token.as_bytes())) {
            return super::error(
                StatusCode::UNAUTHORIZED,
                "this route needs `Authorization: Bearer <token>` (or `metrics: { public: true }`)",
            );
        }
    }
    let (queues, agents) = snapshot(&shared).await.unwrap_or_default();
    let mut body = render(
        shared.active_calls(),
        &shared.metrics.snapshot(),
        &queues,
        &agents,
    );
    body.push_str(&render_cdr(shared.cdr.stats()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn snapshot(shared: &Shared) -> Option<(Vec<QueueSnapshot>, Vec<AgentSnapshot>)> {
    let acd = shared.acd.as_ref()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    acd.send(crate::runtime::acd_task::AcdCmd::Snapshot { reply: tx })
        .ok()?;
    rx.await.ok()
}

/// Label values escaped as the format requires: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

const AGENT_STATES: &[AgentState] = &[
    AgentState::LoggedOut,
    AgentState::Available,
    AgentState::Away,
    AgentState::Ringing,
    AgentState::OnCall,
    AgentState::WrapUp,
];

fn state_name(s: AgentState) -> &'static str {
    match s {
        AgentState::LoggedOut => "logged_out",
        AgentState::Available => "available",
        AgentState::Away => "away",
        AgentState::Ringing => "ringing",
        AgentState::OnCall => "on_call",
        AgentState::WrapUp => "wrap_up",
    }
}

/// The whole exposition. Pure, so tests read it without a server.
pub fn render(
    active: usize,
    m: &MetricsSnapshot,
    queues: &[QueueSnapshot],
    agents: &[AgentSnapshot],
) -> String {
    let mut o = String::new();
    head(
        &mut o,
        "switchboard_active_calls",
        "gauge",
        "Calls in progress.",
    );
    let _ = writeln!(o, "switchboard_active_calls {active}");

    head(
        &mut o,
        "switchboard_trunk_registered",
        "gauge",
        "1 while the SIP trunk registration is current (trunk.register), else 0.",
    );
    let registered = u8::from(m.trunk_registration == "registered");
    let _ = writeln!(o, "switchboard_trunk_registered {registered}");

    head(
        &mut o,
        "switchboard_calls_total",
        "counter",
        "Calls ended since start, by disposition.",
    );
    for (d, n) in &m.calls {
        let _ = writeln!(o, "switchboard_calls_total{{disposition=\"{d}\"}} {n}");
    }

    head(
        &mut o,
        "switchboard_queue_waiting",
        "gauge",
        "Calls waiting in each queue.",
    );
    for q in queues {
        let _ = writeln!(
            o,
            "switchboard_queue_waiting{{queue=\"{}\"}} {}",
            label(&q.name),
            q.waiting
        );
    }
    head(
        &mut o,
        "switchboard_queue_longest_wait_seconds",
        "gauge",
        "The longest current wait in each queue.",
    );
    for q in queues {
        let _ = writeln!(
            o,
            "switchboard_queue_longest_wait_seconds{{queue=\"{}\"}} {:.3}",
            label(&q.name),
            q.longest_wait_ms as f64 / 1000.0
        );
    }

    head(&mut o, "switchboard_agents", "gauge", "Agents by state.");
    for s in AGENT_STATES {
        let n = agents.iter().filter(|a| a.state == *s).count();
        let _ = writeln!(o, "switchboard_agents{{state=\"{}\"}} {n}", state_name(*s));
    }

    head(
        &mut o,
        "switchboard_rtp_packets_total",
        "counter",
        "RTP packets of ended calls, by direction.",
    );
    let _ = writeln!(
        o,
        "switchboard_rtp_packets_total{{direction=\"in\"}} {}",
        m.rtp_in
    );
    let _ = writeln!(
        o,
        "switchboard_rtp_packets_total{{direction=\"out\"}} {}",
        m.rtp_out
    );
    head(
        &mut o,
        "switchboard_rtp_packets_lost_total",
        "counter",
        "RTP packets missing from callers' sequence numbers, of ended calls.",
    );
    let _ = writeln!(o, "switchboard_rtp_packets_lost_total {}", m.rtp_lost);

    head(
        &mut o,
        "switchboard_webhook_deliveries_total",
        "counter",
        "Webhook delivery attempts and drops, by result.",
    );
    for (r, n) in &m.webhooks {
        let _ = writeln!(
            o,
            "switchboard_webhook_deliveries_total{{result=\"{r}\"}} {n}"
        );
    }

    head(
        &mut o,
        "switchboard_sip_requests_total",
        "counter",
        "SIP requests received, by method.",
    );
    for (meth, n) in &m.sip {
        let _ = writeln!(o, "switchboard_sip_requests_total{{method=\"{meth}\"}} {n}");
    }
    o
}

/// The call-record writer: records waiting for the database, failed writes, records lost.
pub fn render_cdr(s: crate::cdr::WriterStats) -> String {
    let mut o = String::new();
    head(
        &mut o,
        "switchboard_cdr_queue",
        "gauge",
        "Call records kept in memory until the database takes them again.",
    );
    let _ = writeln!(o, "switchboard_cdr_queue {}", s.pending);
    head(
        &mut o,
        "switchboard_cdr_write_failures_total",
        "counter",
        "Call record writes the database refused (each retry counts).",
    );
    let _ = writeln!(o, "switchboard_cdr_write_failures_total {}", s.failures);
    head(
        &mut o,
        "switchboard_cdr_records_lost_total",
        "counter",
        "Call records dropped because the in-memory queue was full.",
    );
    let _ = writeln!(o, "switchboard_cdr_records_lost_total {}", s.lost);
    head(
        &mut o,
        "switchboard_cdr_store_failing",
        "gauge",
        "1 while the database refuses call record writes, labelled with why.",
    );
    for reason in crate::cdr::CdrError::REASONS {
        let on = u8::from(s.failing == Some(reason));
        let _ = writeln!(
            o,
            "switchboard_cdr_store_failing{{reason=\"{reason}\"}} {on}"
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::metrics::Metrics;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn exposition_has_help_type_and_every_series() {
        let m = Metrics::default();
        m.call_ended(Some(crate::cdr::Disposition::Completed));
        m.sip_request("INVITE");
        m.rtp(100, 120, 3);
        let q = QueueSnapshot {
            name: "sup\"port".into(),
            waiting: 2,
            callbacks: 0,
            longest_wait_ms: 1500,
            estimated_wait_ms: None,
            agents: Default::default(),
            service_level_ms: 20_000,
            entered: 0,
            answered: 0,
            answered_within_service_level: 0,
            abandoned: 0,
            timed_out: 0,
            average_handle_ms: None,
        };
        let a = AgentSnapshot {
            id: "ana".into(),
            name: "Ana".into(),
            state: AgentState::OnCall,
            since_ms_ago: 0,
            call_id: None,
            wrap_up_left_ms: None,
            queues: vec![],
            skills: Default::default(),
        };
        let t = render(3, &m.snapshot(), &[q], &[a]);
        assert_eq!(value(&t, "switchboard_active_calls"), Some(3.0));
        assert_eq!(
            value(&t, "switchboard_calls_total{disposition=\"completed\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "switchboard_queue_waiting{queue=\"sup\\\"port\"}"),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                "switchboard_queue_longest_wait_seconds{queue=\"sup\\\"port\"}"
            ),
            Some(1.5)
        );
        assert_eq!(
            value(&t, "switchboard_agents{state=\"on_call\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "switchboard_agents{state=\"available\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "switchboard_rtp_packets_total{direction=\"out\"}"),
            Some(120.0)
        );
        assert_eq!(value(&t, "switchboard_rtp_packets_lost_total"), Some(3.0));
        assert_eq!(value(&t, "switchboard_trunk_registered"), Some(0.0));
        m.set_trunk_registration(Some(crate::sip::register_client::RegState::Registered));
        let registered = render(0, &m.snapshot(), &[], &[]);
        assert_eq!(
            value(&registered, "switchboard_trunk_registered"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "switchboard_sip_requests_total{method=\"INVITE\"}"),
            Some(1.0)
        );
        for name in [
            "switchboard_active_calls",
            "switchboard_calls_total",
            "switchboard_queue_waiting",
            "switchboard_agents",
            "switchboard_webhook_deliveries_total",
            "switchboard_trunk_registered",
        ] {
            assert!(t.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(t.contains(&format!("# HELP {name} ")), "{name}");
        }
        let cdr = render_cdr(crate::cdr::WriterStats {
            pending: 7,
            failures: 3,
            lost: 0,
            failing: Some("disk_full"),
        });
        assert_eq!(value(&cdr, "switchboard_cdr_queue"), Some(7.0));
        for (reason, on) in [("disk_full", 1.0), ("locked", 0.0), ("error", 0.0)] {
            let series = format!("switchboard_cdr_store_failing{{reason=\"{reason}\"}}");
            assert_eq!(value(&cdr, &series), Some(on), "{cdr}");
        }
        assert_eq!(
            value(&cdr, "switchboard_cdr_write_failures_total"),
            Some(3.0)
        );
        assert_eq!(value(&cdr, "switchboard_cdr_records_lost_total"), Some(0.0));
        assert!(cdr.contains("# TYPE switchboard_cdr_queue gauge"), "{cdr}");
        // Every sample line is `name{labels} value`.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = l.rsplit_once(' ').unwrap_or(("", "x"));
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
