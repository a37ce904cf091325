//! What a finished call tells the metrics and the webhooks, kept out of `call_task` so that its
//! edit stays one line.

use crate::cdr::CallRecord;
use crate::media::session::SessionStats;

use super::Shared;

/// The `data` of `call.ended`: the record's fields without its events, which may hold what the
/// caller typed; account ids are kept, PINs never reach a record in the first place.
pub fn call_ended_data(rec: &CallRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(rec).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("events");
    }
    v
}

/// The survey event the controller put on the record when the score was below `bad_below`.
pub fn bad_survey(rec: &CallRecord) -> Option<serde_json::Value> {
    let ev = rec.events.iter().rev().find(|e| {
        e.kind == "survey" && e.detail.get("bad") == Some(&serde_json::Value::Bool(true))
    })?;
    Some(serde_json::json!({
        "call_id": rec.call_id,
        "score": rec.survey.or_else(|| ev.detail.get("score").and_then(|s| s.as_i64())),
        "queue": rec.queue,
        "agent_id": rec.agent_id,
        "from": rec.from,
        "step": ev.detail.get("step"),
    }))
}

/// A record update mid-call: a bad rating is raised as soon as the flow moves past the survey,
/// once (`sent` remembers it for the call).
pub fn record_updated(shared: &Shared, rec: &CallRecord, sent: &mut bool) {
    if *sent {
        return;
    }
    if let Some(data) = bad_survey(rec) {
        *sent = true;
        shared.webhooks.emit("survey.bad", data);
    }
}

pub fn call_ended(shared: &Shared, rec: &CallRecord, rtp: Option<SessionStats>, sent: &mut bool) {
    shared.metrics.call_ended(rec.disposition);
    if let Some(s) = rtp {
        shared.metrics.rtp(s.received, s.sent, s.lost);
    }
    record_updated(shared, rec, sent);
    shared.webhooks.emit("call.ended", call_ended_data(rec));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdr::{CallEvent, Direction};

    #[test]
    fn call_ended_omits_events_and_bad_survey_needs_the_flag() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        let mut rec = CallRecord::new("c1", Direction::Inbound, "+5511", "100", t);
        rec.events.push(CallEvent {
            at: t,
            kind: "collect".into(),
            detail: serde_json::json!({ "value": "4242" }),
        });
        let d = call_ended_data(&rec);
        assert_eq!(d["call_id"], "c1");
        assert!(d.get("events").is_none());
        assert!(!d.to_string().contains("4242"));
        assert_eq!(bad_survey(&rec), None);
        rec.survey = Some(3);
        rec.events.push(CallEvent {
            at: t,
            kind: "survey".into(),
            detail: serde_json::json!({ "score": 3, "bad": false }),
        });
        assert_eq!(bad_survey(&rec), None);
        rec.survey = Some(1);
        rec.events.push(CallEvent {
            at: t,
            kind: "survey".into(),
            detail: serde_json::json!({ "score": 1, "bad": true, "step": "rate" }),
        });
        let b = bad_survey(&rec).unwrap_or_default();
        assert_eq!(b["score"], 1);
        assert_eq!(b["step"], "rate");
    }
}
