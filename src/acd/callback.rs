//! Queued callbacks and the click-to-call widget's settings — PURE.
//!
//! A callback is a queue entry like a call (see [`super::Acd::callback_enqueue`]); this module
//! holds what decides whether one may be made at all: the number's shape and the country
//! prefixes the centre agrees to dial, so the public form cannot be used to place costly calls.

use serde::Deserialize;
use std::time::Duration;

/// The longest note kept with a callback; longer ones are refused rather than cut.
pub const MAX_NOTE_CHARS: usize = 500;

/// Why a callback request was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error(
        "number: write it in international form, `+` then 8 to 15 digits, e.g. +5511912345678"
    )]
    NotE164,
    #[error("number: this country prefix is not accepted for callbacks")]
    PrefixNotAllowed,
    #[error("note: at most {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
    #[error("queue: no such queue")]
    UnknownQueue,
}

/// `+` then 8–15 digits, the first not 0. Spaces, dots, dashes and brackets that people type
/// are removed first; the normalised number is returned.
pub fn normalize_e164(raw: &str) -> Result<String, CallbackError> {
    if raw.len() > 64 {
        return Err(CallbackError::NotE164);
    }
    let mut out = String::with_capacity(16);
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '+' if i == 0 => out.push('+'),
            '0'..='9' => out.push(c),
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return Err(CallbackError::NotE164),
        }
    }
    let digits = out.strip_prefix('+').ok_or(CallbackError::NotE164)?;
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(CallbackError::NotE164);
    }
    Ok(out)
}

/// Checks the number (E.164 and one of `prefixes`; an empty list accepts none) and the note.
pub fn validate_request(
    number: &str,
    note: &str,
    prefixes: &[String],
) -> Result<String, CallbackError> {
    let number = normalize_e164(number)?;
    if !prefixes.iter().any(|p| number.starts_with(p.as_str())) {
        return Err(CallbackError::PrefixNotAllowed);
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(CallbackError::NoteTooLong);
    }
    Ok(number)
}

/// The `widget:` section of the server config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetConfig {
    /// Flows a widget may call by name.
    #[serde(default)]
    pub flows: Vec<String>,
    /// Exact origins (`https://shop.example`) allowed to use the widget's endpoints; empty means
    /// only pages served by this server.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Number prefixes callbacks may go to (`+55`); empty refuses every callback.
    #[serde(default)]
    pub callback_prefixes: Vec<String>,
    /// Widget calls and callback posts per client address per minute.
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// The queue for widget callbacks (and for `POST /api/callbacks` without a queue).
    #[serde(default)]
    pub callback_queue: Option<String>,
    /// Delays between dial attempts after no answer or busy; then the callback fails.
    #[serde(default = "default_retries", deserialize_with = "durations")]
    pub callback_retries: Vec<Duration>,
}

fn default_rate() -> u32 {
    10
}

fn default_retries() -> Vec<Duration> {
    vec![Duration::from_secs(120), Duration::from_secs(600)]
}

fn durations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| {
            super::parse_duration(t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{t}` is not a duration; write it like 2m or 30s"
                ))
            })
        })
        .collect()
}

impl Default for WidgetConfig {
    fn default() -> Self {
        WidgetConfig {
            flows: Vec::new(),
            allowed_origins: Vec::new(),
            callback_prefixes: Vec::new(),
            rate_per_minute: default_rate(),
            callback_queue: None,
            callback_retries: default_retries(),
        }
    }
}

impl WidgetConfig {
    /// Problems `switchboard check` reports, one sentence each.
    pub fn problems(&self, queues: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for o in &self.allowed_origins {
            if !valid_origin(o) {
                out.push(format!(
                    "widget.allowed_origins: `{o}` is not an origin; write scheme://host[:port] with no path, e.g. https://shop.example"
                ));
            }
        }
        for p in &self.callback_prefixes {
            let digits = p.strip_prefix('+').unwrap_or("");
            if digits.is_empty()
                || digits.len() > 6
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || digits.starts_with('0')
            {
                out.push(format!(
                    "widget.callback_prefixes: `{p}` is not a country prefix; write it like +55"
                ));
            }
        }
        if self.rate_per_minute == 0 {
            out.push("widget.rate_per_minute: must be at least 1".to_string());
        }
        if let Some(q) = &self.callback_queue {
            if !queues.iter().any(|n| n == q) {
                out.push(format!(
                    "widget.callback_queue: queue `{q}` is not defined under `queues:`"
                ));
            }
        }
        if self.callback_retries.len() > 10 {
            out.push("widget.callback_retries: at most 10 retries".to_string());
        }
        out
    }
}

/// `scheme://host[:port]`, http or https, nothing after the authority.
pub fn valid_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl super::Acd {
    /// The arrival time a callback converted from `call_id` would inherit: the call's own while
    /// it waits, or the one it had when it left (recently), with its priority.
    pub fn place_of(&self, call_id: &str) -> Option<(crate::time::Instant, i64)> {
        self.calls
            .get(call_id)
            .filter(|c| c.holds_place())
            .map(|c| (c.arrival, c.req.priority))
            .or_else(|| {
                self.departed
                    .iter()
                    .rev()
                    .find(|(d, _, _)| d == call_id)
                    .map(|(_, t, p)| (*t, *p))
            })
    }

    /// A stored callback re-entering after a restart, at the arrival it had (mapped onto this
    /// run's clock by the caller; entries from before this run's start share `Instant::ZERO`
    /// and are then ordered by id, which the store makes sortable by enqueue time).
    pub fn callback_restore(
        &mut self,
        now: crate::time::Instant,
        req: super::CallRequest,
        arrival: crate::time::Instant,
    ) -> Result<(), super::EnqueueError> {
        self.admit(now, req, arrival.min(now), true)
    }

    /// Whether `queue` (or its overflow chain) has room for one more entry.
    pub fn find_room_for(&self, queue: &str) -> Result<(), super::EnqueueError> {
        self.find_room(queue).map(|_| ())
    }

    /// Whether this queued entry is a callback (not a live call).
    pub fn is_callback(&self, call_id: &str) -> bool {
        self.calls.get(call_id).is_some_and(|c| c.callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> Vec<String> {
        vec!["+55".into(), "+351".into()]
    }

    #[test]
    fn e164_accepts_typed_formatting_and_refuses_bad_shapes() {
        assert_eq!(
            normalize_e164(" +55 (11) 91234-5678 ").as_deref(),
            Ok("+5511912345678")
        );
        for bad in [
            "5511912345678",     // no plus
            "+0511912345678",    // first digit 0
            "+5511",             // too short
            "+1234567890123456", // 16 digits
            "+55 11 9x",         // letters
            "+55+11912345678",   // second plus
            "",
        ] {
            assert_eq!(normalize_e164(bad), Err(CallbackError::NotE164), "{bad}");
        }
        assert!(
            normalize_e164("+12345678").is_ok(),
            "8 digits is the minimum"
        );
        assert!(
            normalize_e164("+123456789012345").is_ok(),
            "15 is the maximum"
        );
    }

    #[test]
    fn only_allowed_prefixes_can_be_called_back() {
        assert_eq!(
            validate_request("+351912345678", "", &prefixes()).as_deref(),
            Ok("+351912345678")
        );
        assert_eq!(
            validate_request("+882345678901", "", &prefixes()),
            Err(CallbackError::PrefixNotAllowed),
            "a premium international number is refused"
        );
        assert_eq!(
            validate_request("+5511912345678", "", &[]),
            Err(CallbackError::PrefixNotAllowed),
            "no prefixes configured means no callbacks"
        );
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            validate_request("+5511912345678", &long, &prefixes()),
            Err(CallbackError::NoteTooLong)
        );
        assert!(CallbackError::PrefixNotAllowed
            .to_string()
            .starts_with("number:"));
    }

    #[test]
    fn config_problems_name_the_key() {
        let cfg = WidgetConfig {
            allowed_origins: vec!["https://shop.example".into(), "shop.example/x".into()],
            callback_prefixes: vec!["+55".into(), "55".into()],
            callback_queue: Some("nope".into()),
            rate_per_minute: 0,
            ..WidgetConfig::default()
        };
        let p = cfg.problems(&["sales".into()]);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("shop.example/x"));
        assert!(p[1].contains("`55`"));
        assert!(p.iter().any(|m| m.contains("rate_per_minute")));
        assert!(p.iter().any(|m| m.contains("`nope`")));
        assert!(WidgetConfig::default().problems(&[]).is_empty());
    }

    mod ordering {
        use crate::acd::{Acd, AcdEvent, AgentConfig, CallRequest, QueueConfig};
        use crate::time::Instant;

        fn t(secs: u64) -> Instant {
            Instant::from_millis(secs * 1000)
        }

        fn req(id: &str) -> CallRequest {
            CallRequest {
                call_id: id.into(),
                queue: "q".into(),
                priority: 0,
                skills: Default::default(),
                timeout: None,
            }
        }

        fn acd() -> Acd {
            let ana = AgentConfig {
                id: "ana".into(),
                name: "Ana".into(),
                password_hash: String::new(),
                skills: Default::default(),
                queues: vec!["q".into()],
                sip: None,
            };
            Acd::new(vec![QueueConfig::new("q")], vec![ana])
        }

        /// Serves the queue with one agent, call after call, and returns the order served.
        fn served(acd: &mut Acd, from: u64) -> Vec<String> {
            acd.agent_login(t(from), "ana");
            acd.set_available(t(from), "ana");
            let mut order = Vec::new();
            let mut now = from;
            for _ in 0..10 {
                let offer = std::iter::from_fn(|| acd.poll_event()).find_map(|e| match e {
                    AcdEvent::Offer {
                        offer_id, call_id, ..
                    } => Some((offer_id, call_id)),
                    _ => None,
                });
                let Some((offer_id, call_id)) = offer else {
                    break;
                };
                now += 1;
                assert!(acd.offer_answered(t(now), offer_id));
                acd.call_finished(t(now), "ana");
                now += 60;
                acd.handle_timeout(t(now));
                order.push(call_id);
            }
            order
        }

        #[test]
        fn a_callback_submitted_between_two_calls_is_served_between_them() {
            let mut acd = acd();
            acd.enqueue(t(0), req("call-1")).ok();
            assert_eq!(acd.callback_enqueue(t(5), req("cb"), None), Ok(()));
            acd.enqueue(t(9), req("call-2")).ok();
            assert_eq!(acd.position("cb"), Some((2, None)));
            assert!(acd.is_callback("cb") && !acd.is_callback("call-1"));
            assert_eq!(served(&mut acd, 20), ["call-1", "cb", "call-2"]);
        }

        #[test]
        fn an_ivr_caller_converting_keeps_their_place() {
            let mut acd = acd();
            acd.enqueue(t(0), req("first")).ok();
            let mut vip = req("ivr-caller");
            vip.priority = 5;
            acd.enqueue(t(3), vip).ok();
            acd.enqueue(t(1), req("later")).ok();
            // The caller pressed the exit key and chose a callback at t=30.
            acd.leave(t(30), "ivr-caller");
            assert_eq!(acd.place_of("ivr-caller"), Some((t(3), 5)));
            acd.callback_enqueue(t(30), req("cb-ivr"), Some("ivr-caller"))
                .ok();
            assert_eq!(served(&mut acd, 40), ["cb-ivr", "first", "later"]);
        }

        #[test]
        fn restored_callbacks_keep_their_order_ahead_of_new_calls() {
            let mut acd = acd();
            // After a restart both come back at the origin; ids sort by enqueue time.
            acd.callback_restore(t(0), req("cb-0001"), Instant::ZERO)
                .ok();
            acd.enqueue(t(1), req("new-call")).ok();
            acd.callback_restore(t(1), req("cb-0000"), Instant::ZERO)
                .ok();
            assert_eq!(served(&mut acd, 5), ["cb-0000", "cb-0001", "new-call"]);
        }
    }
}
