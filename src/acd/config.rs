//! Queues and agents as the server config declares them, and [`validate`] for `switchboard check`.
//!
//! The lead's config loader deserializes the YAML into these structs (serde, unknown keys refused,
//! durations written like `20s`, `10m`, `1m30s`); `validate` then finds what serde cannot see:
//! references between entries, cycles and out-of-range numbers.

use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Proficiency is 1 (can handle it) to 5 (expert), as in the flow files' `skills:` needs.
pub const MIN_PROFICIENCY: u8 = 1;
pub const MAX_PROFICIENCY: u8 = 5;

/// One queue. Every field but `name` has a default a contact centre would expect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// Service-level target: a call answered within it counts as "in service level".
    #[serde(default = "default_service_level", deserialize_with = "duration")]
    pub service_level: Duration,
    /// The longest a call may wait here before it overflows (if `overflow` is set) or times out.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_wait: Option<Duration>,
    /// Waiting calls (including one ringing an agent) beyond which new calls are refused.
    #[serde(default)]
    pub max_size: Option<usize>,
    /// Another queue that takes the calls this one cannot (full, or `max_wait` reached).
    #[serde(default)]
    pub overflow: Option<String>,
    /// Prompt played on hold; `None` means the default `moh`.
    #[serde(default)]
    pub music: Option<String>,
    /// How often the caller hears their position; `None` means every 30 s.
    #[serde(default, deserialize_with = "opt_duration")]
    pub announce_every: Option<Duration>,
    #[serde(default = "default_wrap_up", deserialize_with = "duration")]
    pub wrap_up: Duration,
    #[serde(default = "default_ring_timeout", deserialize_with = "duration")]
    pub ring_timeout: Duration,
    /// Steps that widen the match for a call that has waited long.
    #[serde(default)]
    pub relax: Vec<Relax>,
    /// A DTMF key the caller may press to leave the queue (the flow then follows `on_timeout`).
    /// YAML reads a bare `0` as a number, so digits are accepted quoted or not.
    #[serde(default, deserialize_with = "opt_key")]
    pub exit_key: Option<char>,
    /// Record the conversation with the agent (caller left, agent right).
    #[serde(default)]
    pub record: bool,
}

/// After waiting `after`, every skill need drops to at most `level` (0 means "no longer needed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relax {
    #[serde(deserialize_with = "duration")]
    pub after: Duration,
    pub level: u8,
}

/// One agent. `password_hash` is an argon2 PHC string; Debug never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    #[serde(default)]
    pub queues: Vec<String>,
    /// A desk phone or softphone the agent registers (see README "Agents on SIP phones").
    #[serde(default)]
    pub sip: Option<SipPhone>,
}

/// An agent's SIP login: the user their phone registers as and `md5(user:realm:password)`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipPhone {
    pub user: String,
    pub ha1: String,
}

impl fmt::Debug for SipPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipPhone")
            .field("user", &self.user)
            .field("ha1", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("skills", &self.skills)
            .field("queues", &self.queues)
            .field("sip", &self.sip)
            .finish()
    }
}

pub const DEFAULT_MUSIC: &str = "moh";
pub const DEFAULT_ANNOUNCE_EVERY: Duration = Duration::from_secs(30);

fn default_service_level() -> Duration {
    Duration::from_secs(20)
}
fn default_wrap_up() -> Duration {
    Duration::from_secs(10)
}
fn default_ring_timeout() -> Duration {
    Duration::from_secs(15)
}

impl QueueConfig {
    /// A queue with every default, for code (and tests) that build configs without YAML.
    pub fn new(name: impl Into<String>) -> Self {
        QueueConfig {
            name: name.into(),
            service_level: default_service_level(),
            max_wait: None,
            max_size: None,
            overflow: None,
            music: None,
            announce_every: None,
            wrap_up: default_wrap_up(),
            ring_timeout: default_ring_timeout(),
            relax: Vec::new(),
            exit_key: None,
            record: false,
        }
    }

    pub fn music(&self) -> &str {
        self.music.as_deref().unwrap_or(DEFAULT_MUSIC)
    }

    pub fn announce_every(&self) -> Duration {
        self.announce_every.unwrap_or(DEFAULT_ANNOUNCE_EVERY)
    }
}

/// Parses `500ms`, `20s`, `10m`, `2h` and sums such as `1m30s`. `None` for anything else,
/// including overflow, so a typo never becomes a surprising number.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let (n, tail) = rest.split_at(digits);
        let n: u64 = n.parse().ok()?;
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = tail;
    }
    Some(total)
}

/// serde `deserialize_with` for a duration written as a string.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration; write it like 20s, 500ms, 10m or 1m30s"
        ))
    })
}

/// serde `deserialize_with` for an optional duration (absent or `null` is `None`).
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    parse_duration(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration; write it like 20s, 500ms, 10m or 1m30s"
        ))
    })
}

/// serde `deserialize_with` for a phone key: `"#"`, `"*"`, `"5"` or a bare `5`.
pub fn opt_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<char>, D::Error> {
    struct KeyVisitor;
    impl<'de> serde::de::Visitor<'de> for KeyVisitor {
        type Value = Option<char>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("one phone key: 0-9, * or #")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            u32::try_from(v)
                .ok()
                .filter(|v| *v < 10)
                .and_then(|v| char::from_digit(v, 10))
                .map(Some)
                .ok_or_else(|| E::custom(format!("exit_key {v} is not one phone key")))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            let v = u64::try_from(v)
                .map_err(|_| E::custom(format!("exit_key {v} is not one phone key")))?;
            self.visit_u64(v)
        }
        fn visit_char<E: serde::de::Error>(self, v: char) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Some(c)),
                _ => Err(E::custom(format!("exit_key `{v}` is not one phone key"))),
            }
        }
    }
    d.deserialize_option(KeyVisitor)
}

fn proficiency_ok(level: u8) -> bool {
    (MIN_PROFICIENCY..=MAX_PROFICIENCY).contains(&level)
}

/// Every problem in the queues and agents, as plain sentences; empty when all is well.
pub fn validate(queues: &[QueueConfig], agents: &[AgentConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for q in queues {
        if q.name.trim().is_empty() {
            out.push("a queue has an empty name".to_string());
        } else if !names.insert(q.name.as_str()) {
            out.push(format!("queue `{}` is defined twice", q.name));
        }
    }
    for q in queues {
        validate_queue(q, &names, &mut out);
    }
    out.extend(overflow_cycles(queues));

    let mut ids = BTreeSet::new();
    for a in agents {
        if a.id.trim().is_empty() {
            out.push(format!("agent `{}` has an empty id", a.name));
        } else if !ids.insert(a.id.as_str()) {
            out.push(format!("agent id `{}` is used twice", a.id));
        }
        validate_agent(a, &names, &mut out);
    }
    out
}

fn validate_queue(q: &QueueConfig, names: &BTreeSet<&str>, out: &mut Vec<String>) {
    let n = &q.name;
    if let Some(to) = &q.overflow {
        if to == n {
            out.push(format!("queue `{n}` overflows into itself"));
        } else if !names.contains(to.as_str()) {
            out.push(format!(
                "queue `{n}` overflows into `{to}`, which is not a queue"
            ));
        }
    }
    if q.ring_timeout.is_zero() {
        out.push(format!(
            "queue `{n}`: ring_timeout is 0, so no agent could ever answer"
        ));
    }
    if q.max_size == Some(0) {
        out.push(format!("queue `{n}`: max_size 0 would refuse every call"));
    }
    if q.max_wait.is_some_and(|d| d.is_zero()) {
        out.push(format!(
            "queue `{n}`: max_wait 0 would send every call away at once"
        ));
    }
    if q.announce_every.is_some_and(|d| d.is_zero()) {
        out.push(format!(
            "queue `{n}`: announce_every 0 would announce without pause; leave it out for the 30s default"
        ));
    }
    if q.music.as_deref().is_some_and(|m| m.trim().is_empty()) {
        out.push(format!("queue `{n}`: music is empty"));
    }
    for r in &q.relax {
        if r.level > MAX_PROFICIENCY {
            out.push(format!(
                "queue `{n}`: relax level {} is outside 0-5",
                r.level
            ));
        }
    }
    if let Some(k) = q.exit_key {
        if !(k.is_ascii_digit() || k == '*' || k == '#') {
            out.push(format!(
                "queue `{n}`: exit_key `{k}` is not a phone key (0-9, * or #)"
            ));
        }
    }
}

fn validate_agent(a: &AgentConfig, queues: &BTreeSet<&str>, out: &mut Vec<String>) {
    let id = &a.id;
    if a.name.trim().is_empty() {
        out.push(format!("agent `{id}` has no name"));
    }
    // The message never repeats the value: a misplaced password would otherwise reach the logs.
    if !is_argon2_phc(&a.password_hash) {
        out.push(format!(
            "agent `{id}`: password_hash is not an argon2 hash (make one with `switchboard pin-hash`)"
        ));
    }
    for (skill, level) in &a.skills {
        if skill.trim().is_empty() {
            out.push(format!("agent `{id}` has a skill with an empty name"));
        }
        if !proficiency_ok(*level) {
            out.push(format!(
                "agent `{id}`: proficiency {level} for `{skill}` is outside 1-5"
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for q in &a.queues {
        if !queues.contains(q.as_str()) {
            out.push(format!("agent `{id}` serves `{q}`, which is not a queue"));
        } else if !seen.insert(q.as_str()) {
            out.push(format!("agent `{id}` lists queue `{q}` twice"));
        }
    }
}

fn is_argon2_phc(s: &str) -> bool {
    argon2::password_hash::PasswordHash::new(s)
        .is_ok_and(|h| argon2::Algorithm::try_from(h.algorithm).is_ok() && h.hash.is_some())
}

/// One message per distinct overflow cycle longer than a self-loop (reported separately).
fn overflow_cycles(queues: &[QueueConfig]) -> Vec<String> {
    let next: BTreeMap<&str, &str> = queues
        .iter()
        .filter_map(|q| Some((q.name.as_str(), q.overflow.as_deref()?)))
        .filter(|(from, to)| from != to)
        .collect();
    let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
    let mut out = Vec::new();
    for start in next.keys() {
        let mut path: Vec<&str> = vec![start];
        let mut at = *start;
        while let Some(&to) = next.get(at) {
            if let Some(pos) = path.iter().position(|p| *p == to) {
                let mut cycle: Vec<&str> = path.get(pos..).unwrap_or_default().to_vec();
                // Rotate so the same cycle found from another start is reported once.
                if let Some(min) = cycle.iter().enumerate().min_by_key(|(_, n)| **n) {
                    let m = min.0;
                    cycle.rotate_left(m);
                }
                if reported.insert(cycle.clone()) {
                    let mut shown = cycle.join("` → `");
                    if let Some(first) = cycle.first() {
                        shown = format!("{shown}` → `{first}");
                    }
                    out.push(format!(
                        "queues overflow in a circle: `{shown}`; a call would never leave it"
                    ));
                }
                break;
            }
            path.push(to);
            at = to;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$XdRSdwytpfVp2RT+xpn5iw$rm9sQw1qltLLpKnWkanJCprsEv9RfP0mNPEbWd1H1O4";

    fn agent(id: &str, queues: &[&str], skills: &[(&str, u8)]) -> AgentConfig {
        AgentConfig {
            id: id.into(),
            name: format!("Agent {id}"),
            password_hash: HASH.into(),
            skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            sip: None,
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        queues: Vec<QueueConfig>,
        agents: Vec<AgentConfig>,
    }

    #[test]
    fn yaml_with_durations_and_defaults_loads() {
        let yaml = r#"
queues:
  - name: billing
    service_level: 30s
    max_wait: 10m
    max_size: 50
    overflow: general
    music: jazz
    relax: [{ after: 1m, level: 1 }, { after: 1m30s, level: 0 }]
    exit_key: "*"
  - name: general
agents:
  - id: ana
    name: Ana Souza
    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$XdRSdwytpfVp2RT+xpn5iw$rm9sQw1qltLLpKnWkanJCprsEv9RfP0mNPEbWd1H1O4"
    skills: { billing: 4, portuguese: 5 }
    queues: [billing, general]
"#;
        let s: Section = serde_saphyr::from_str(yaml).expect("valid yaml");
        let [billing, general] = s.queues.as_slice() else {
            panic!("two queues expected");
        };
        assert_eq!(billing.service_level, Duration::from_secs(30));
        assert_eq!(billing.max_wait, Some(Duration::from_secs(600)));
        assert_eq!(billing.max_size, Some(50));
        assert_eq!(billing.music(), "jazz");
        assert_eq!(billing.exit_key, Some('*'));
        assert_eq!(
            billing.relax.get(1),
            Some(&Relax {
                after: Duration::from_secs(90),
                level: 0
            })
        );
        assert_eq!(general, &QueueConfig::new("general"));
        assert_eq!(general.music(), "moh");
        assert_eq!(general.announce_every(), Duration::from_secs(30));
        assert_eq!(general.wrap_up, Duration::from_secs(10));
        assert_eq!(general.ring_timeout, Duration::from_secs(15));
        assert_eq!(general.service_level, Duration::from_secs(20));
        assert_eq!(
            s.agents.first().and_then(|a| a.skills.get("billing")),
            Some(&4)
        );
        assert!(validate(&s.queues, &s.agents).is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        let typo = "queues: [{ name: a, max_wiat: 10m }]\nagents: []\n";
        let err = serde_saphyr::from_str::<Section>(typo)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("max_wiat")),
            "{err:?}"
        );
        let bad = "queues: [{ name: a, wrap_up: 10 minutes }]\nagents: []\n";
        let err = serde_saphyr::from_str::<Section>(bad)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("not a duration")),
            "{err:?}"
        );
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        let keys = "queues: [{ name: a, exit_key: 0 }, { name: b, exit_key: \"#\" }, { name: c }]\nagents: []\n";
        let s: Section = serde_saphyr::from_str(keys).expect("keys");
        let got: Vec<_> = s.queues.iter().map(|q| q.exit_key).collect();
        assert_eq!(got, [Some('0'), Some('#'), None]);
        let two = "queues: [{ name: a, exit_key: \"12\" }]\nagents: []\n";
        assert!(serde_saphyr::from_str::<Section>(two).is_err());
        assert_eq!(parse_duration(" 5s "), Some(Duration::from_secs(5)));
        for nonsense in ["", "s", "10", "10x", "-5s", "5 s", "99999999999999999999h"] {
            assert_eq!(parse_duration(nonsense), None, "{nonsense:?}");
        }
    }

    #[test]
    fn validate_names_every_mistake() {
        let mut a = QueueConfig::new("a");
        a.overflow = Some("nowhere".into());
        a.relax.push(Relax {
            after: Duration::from_secs(60),
            level: 6,
        });
        a.exit_key = Some('x');
        let mut b = QueueConfig::new("b");
        b.overflow = Some("c".into());
        let mut c = QueueConfig::new("c");
        c.overflow = Some("b".into());
        let mut d = QueueConfig::new("d");
        d.overflow = Some("d".into());
        d.ring_timeout = Duration::ZERO;
        d.max_size = Some(0);
        let dup = QueueConfig::new("a");
        let mut bad_hash = agent("bob", &["b"], &[]);
        bad_hash.password_hash = "hunter2".into();
        let agents = vec![
            agent("ana", &["a", "ghost"], &[("billing", 0), ("spanish", 6)]),
            agent("ana", &["a"], &[("billing", 3)]),
            bad_hash,
        ];
        let msgs = validate(&[a, b, c, d, dup], &agents);
        let all = msgs.join("\n");
        for expected in [
            "queue `a` is defined twice",
            "`a` overflows into `nowhere`, which is not a queue",
            "relax level 6 is outside 0-5",
            "exit_key `x` is not a phone key",
            "overflow in a circle: `b` → `c` → `b`",
            "queue `d` overflows into itself",
            "ring_timeout is 0",
            "max_size 0",
            "proficiency 0 for `billing` is outside 1-5",
            "proficiency 6 for `spanish` is outside 1-5",
            "agent `ana` serves `ghost`, which is not a queue",
            "agent id `ana` is used twice",
            "agent `bob`: password_hash is not an argon2 hash",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(
            msgs.iter().filter(|m| m.contains("circle")).count(),
            1,
            "one cycle, reported once:\n{all}"
        );
        assert!(!all.contains("hunter2"), "a secret leaked:\n{all}");
    }

    #[test]
    fn debug_never_shows_the_password_hash() {
        let a = agent("ana", &[], &[]);
        let shown = format!("{a:?}");
        assert!(shown.contains("ana"));
        assert!(!shown.contains("argon2"), "{shown}");
    }
}
