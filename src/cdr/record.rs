//! The call detail record as users see it: field names and enum strings are the contract in
//! `interfaces.md`, and `Serialize` produces exactly the JSON of `GET /api/calls/{id}`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a closed set of snake_case strings once, so serde, SQLite and `as_str` cannot disagree.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!("unknown ", stringify!($name), " `{}`"), s
                    ))
                })
            }
        }
    };
}

string_enum!(
    /// Who placed the call and how it reached us.
    Direction { Inbound => "inbound", Outbound => "outbound", Callback => "callback", Webrtc => "webrtc" }
);
string_enum!(
    /// Outcome of the call's PIN step, if it had one.
    AuthStatus { None => "none", Ok => "ok", Failed => "failed", Locked => "locked" }
);
string_enum!(
    /// How the call ended; `Interrupted` is only ever set when a crash left the record open.
    Disposition {
        Completed => "completed",
        Abandoned => "abandoned",
        AuthFailed => "auth_failed",
        Rejected => "rejected",
        Failed => "failed",
        Voicemail => "voicemail",
        Transferred => "transferred",
        Callback => "callback",
        Interrupted => "interrupted",
    }
);
string_enum!(
    /// Which side ended the call.
    HangupBy { Caller => "caller", Agent => "agent", System => "system" }
);

/// Something that happened during the call (`kind` is "step", "prompt", "digit", "pin", "queue"…).
///
/// A `pin` event never carries the digits: the store strips `pin`/`digits`/`input` keys from
/// its detail as a last line of defence, whatever the caller of the store put there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    #[serde(with = "ts")]
    pub at: DateTime<Utc>,
    pub kind: String,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// One call, from the first INVITE to the last BYE. Times are kept to the millisecond, which is
/// also all the JSON shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub direction: Direction,
    pub from: String,
    /// The dialed number.
    pub to: String,
    /// ISO 3166-1 alpha-2 country of `to` when it is an E.164 number (`BR` for `+55…`); `None`
    /// for extensions and for records written before the field existed.
    #[serde(default)]
    pub country: Option<String>,
    pub flow: Option<String>,
    #[serde(with = "ts")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "ts_opt", default)]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(with = "ts_opt", default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ivr_path: Vec<String>,
    pub account_id: Option<String>,
    pub auth: AuthStatus,
    pub queue: Option<String>,
    pub priority: Option<i64>,
    #[serde(with = "ts_opt", default)]
    pub enqueued_at: Option<DateTime<Utc>>,
    pub agent_id: Option<String>,
    #[serde(with = "ts_opt", default)]
    pub agent_answered_at: Option<DateTime<Utc>>,
    pub wait_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub disposition: Option<Disposition>,
    pub hangup_by: Option<HangupBy>,
    pub recording: Option<String>,
    pub survey: Option<i64>,
    /// Loaded only for a single record (`CdrStore::get`); lists leave it empty and the JSON of an
    /// empty list omits the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<CallEvent>,
}

impl CallRecord {
    /// A record as it stands when the INVITE arrives: everything after that is still unknown.
    pub fn new(
        call_id: impl Into<String>,
        direction: Direction,
        from: impl Into<String>,
        to: impl Into<String>,
        started_at: DateTime<Utc>,
    ) -> Self {
        let to = to.into();
        CallRecord {
            call_id: call_id.into(),
            direction,
            from: from.into(),
            country: super::country::country_of(&to).map(str::to_owned),
            to,
            flow: None,
            started_at,
            answered_at: None,
            ended_at: None,
            ivr_path: Vec::new(),
            account_id: None,
            auth: AuthStatus::None,
            queue: None,
            priority: None,
            enqueued_at: None,
            agent_id: None,
            agent_answered_at: None,
            wait_ms: None,
            talk_ms: None,
            disposition: None,
            hangup_by: None,
            recording: None,
            survey: None,
            events: Vec::new(),
        }
    }

    /// The latest moment the record knows something happened; a crashed call is taken to have
    /// ended then.
    pub fn last_progress_at(&self) -> DateTime<Utc> {
        [
            self.answered_at,
            self.ended_at,
            self.enqueued_at,
            self.agent_answered_at,
        ]
        .into_iter()
        .flatten()
        .chain(self.events.iter().map(|e| e.at))
        .fold(self.started_at, DateTime::max)
    }
}

/// One agent's part of a call, from their answer to the moment they left it: a call that was
/// transferred has one per agent, in order. A flow's `transfer` step to a number or SIP URI
/// adds one for that target (`target` and `sip_status` set, no `agent_id`). Kept as a `leg`
/// event so every store persists it with the events, and listed apart by [`CallRecord::legs`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallLeg {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_id: String,
    /// The number or SIP URI a flow transferred the call to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The final SIP status of the target's answer (200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_status: Option<u16>,
    #[serde(with = "ts")]
    pub answered_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub ended_at: DateTime<Utc>,
    pub talk_ms: i64,
    /// "transfer", "caller", "agent" or "system".
    pub ended_by: String,
}

impl CallLeg {
    pub const EVENT: &'static str = "leg";
}

impl CallRecord {
    /// The agent legs, oldest first (empty when no agent answered or the events were not loaded).
    pub fn legs(&self) -> Vec<CallLeg> {
        self.events
            .iter()
            .filter(|e| e.kind == CallLeg::EVENT)
            .filter_map(|e| serde_json::from_value(e.detail.clone()).ok())
            .collect()
    }

    /// The JSON of `GET /api/calls/{id}`: the record plus its `legs`.
    pub fn to_detail_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            let legs = serde_json::to_value(self.legs()).unwrap_or_default();
            o.insert("legs".into(), legs);
        }
        v
    }
}

/// Filters for `GET /api/calls`: `from` inclusive, `to` exclusive, both on `started_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub queue: Option<String>,
    /// 0 means the default (100); anything above 1000 is cut to 1000.
    pub limit: usize,
}

impl CallQuery {
    pub const DEFAULT_LIMIT: usize = 100;
    pub const MAX_LIMIT: usize = 1000;

    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

impl Default for CallQuery {
    fn default() -> Self {
        CallQuery {
            from: None,
            to: None,
            queue: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// RFC 3339, UTC, milliseconds, `Z`: "2026-11-23T13:00:00.123Z".
pub fn format_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) mod ts {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ts(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) mod ts_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_ts(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
    }

    #[test]
    fn json_uses_contract_names_and_millisecond_utc_times() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 23, 13, 0, 0)
            .single()
            .map(|t| t + chrono::Duration::milliseconds(123))
            .unwrap_or_default();
        let mut rec = CallRecord::new("c1", Direction::Webrtc, "+5511", "+5512", t);
        rec.disposition = Some(Disposition::AuthFailed);
        rec.hangup_by = Some(HangupBy::System);
        rec.auth = AuthStatus::Locked;
        let v = serde_json::to_value(&rec).unwrap_or_default();
        assert_eq!(v["started_at"], "2026-11-23T13:00:00.123Z");
        assert_eq!(v["direction"], "webrtc");
        assert_eq!(v["disposition"], "auth_failed");
        assert_eq!(v["hangup_by"], "system");
        assert_eq!(v["auth"], "locked");
        // Unknown values stay as explicit nulls so API clients see a stable shape.
        assert!(v.get("answered_at").is_some_and(|x| x.is_null()));
        assert!(
            v.get("events").is_none(),
            "empty events are left out of lists"
        );
    }

    #[test]
    fn every_enum_string_round_trips_through_serde() {
        fn check<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug + Copy>(
            all: &[T],
            text: impl Fn(T) -> &'static str,
        ) {
            for &v in all {
                let json = serde_json::to_string(&v).unwrap_or_default();
                assert_eq!(json, format!("\"{}\"", text(v)));
                let back: Option<T> = serde_json::from_str(&json).ok();
                assert_eq!(back, Some(v));
            }
        }
        check(Direction::ALL, Direction::as_str);
        check(AuthStatus::ALL, AuthStatus::as_str);
        check(Disposition::ALL, Disposition::as_str);
        check(HangupBy::ALL, HangupBy::as_str);
        assert_eq!(Disposition::ALL.len(), 9);
        assert!(serde_json::from_str::<Direction>("\"sideways\"").is_err());
    }

    #[test]
    fn last_progress_is_the_latest_known_moment() {
        let mut rec = CallRecord::new("c", Direction::Inbound, "a", "b", at(1_000));
        assert_eq!(rec.last_progress_at(), at(1_000));
        rec.answered_at = Some(at(2_000));
        rec.events.push(CallEvent {
            at: at(5_000),
            kind: "step".into(),
            detail: serde_json::Value::Null,
        });
        rec.enqueued_at = Some(at(4_000));
        assert_eq!(rec.last_progress_at(), at(5_000));
    }

    #[test]
    fn legs_come_from_leg_events_and_show_in_the_detail_json() {
        let mut rec = CallRecord::new("c", Direction::Inbound, "a", "b", at(0));
        let leg = |agent: &str, from: i64, to: i64, by: &str| CallEvent {
            at: at(to),
            kind: "leg".into(),
            detail: serde_json::json!({
                "agent_id": agent, "answered_at": format_ts(&at(from)),
                "ended_at": format_ts(&at(to)), "talk_ms": to - from, "ended_by": by,
            }),
        };
        rec.events.push(leg("ana", 1_000, 4_000, "transfer"));
        rec.events.push(CallEvent {
            at: at(4_000),
            kind: "leg".into(),
            detail: serde_json::json!({ "garbage": true }),
        });
        rec.events.push(leg("bea", 6_000, 7_500, "caller"));
        let legs = rec.legs();
        assert_eq!(legs.len(), 2, "{legs:?}");
        assert_eq!(legs[0].agent_id, "ana");
        assert_eq!(legs[0].ended_by, "transfer");
        assert_eq!(legs[1].talk_ms, 1_500);
        let v = rec.to_detail_json();
        assert_eq!(v["legs"][1]["agent_id"], "bea");
        assert_eq!(v["legs"][0]["answered_at"], format_ts(&at(1_000)));
        assert_eq!(v["call_id"], "c");
    }

    #[test]
    fn query_limit_defaults_and_caps() {
        let q = |limit| CallQuery {
            limit,
            ..CallQuery::default()
        };
        assert_eq!(q(0).effective_limit(), 100);
        assert_eq!(q(7).effective_limit(), 7);
        assert_eq!(q(50_000).effective_limit(), 1000);
    }
}
