//! Server configuration: an optional YAML file, then command-line flags, over embedded defaults.
//!
//! `switchboard run` with no file and no flags must work on a fresh checkout, so every field has a
//! default that points at the shipped `ivr-flows/` and `sounds/` and keeps data under `./data/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod supervisors;
pub mod trunk;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration, resolved.
#[derive(Clone, Debug)]
pub struct Config {
    pub sip_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub rtp_ports: (u16, u16),
    /// Address put in SDP and Contact; defaults to the SIP listen IP.
    pub public_ip: Option<std::net::IpAddr>,
    pub data_dir: PathBuf,
    pub flows_dir: PathBuf,
    pub sounds_dir: PathBuf,
    pub accounts: PathBuf,
    pub lockout_max_failures: u32,
    pub lockout_window: Duration,
    pub lockout_lock_for: Duration,
    /// Calls beyond this get 503 with Retry-After.
    pub max_calls: usize,
    /// Detect DTMF sent as audio tones as well as RFC 4733 events.
    pub inband_dtmf: bool,
    /// SIP messages per second accepted from one IP address (twice that in a burst); more are
    /// dropped unread. A trunk carrying many calls from one address needs this raised.
    pub sip_rate_per_source: u32,
    /// How often the flows directory is checked for edits.
    pub reload_interval: Duration,
    /// Queues and the agents who serve them; none means `queue` steps follow `on_timeout`.
    pub queues: Vec<crate::acd::QueueConfig>,
    pub agents: Vec<crate::acd::AgentConfig>,
    /// WebRTC for browser agents: addresses for ICE, optional STUN.
    pub rtc: crate::rtc::RtcConfig,
    /// Digest realm agents' SIP phones register in (`sip.realm`); their HA1 is computed with it.
    pub sip_realm: String,
    /// Where the configuration came from, for messages.
    pub source: Option<PathBuf>,
    /// `webhooks:` — where call and agent events are POSTed.
    pub webhooks: Vec<crate::runtime::webhooks::WebhookConfig>,
    /// `metrics.public: true` lets `/metrics` be scraped without the API token.
    pub metrics_public: bool,
    /// Who may open the dashboard (see `config/supervisors.rs`).
    pub supervisors: Vec<supervisors::SupervisorConfig>,
    /// `security:` failed-authentication limits per source address.
    pub security: crate::auth::SecurityPolicy,
    /// `sip.trunk_allow`: sources allowed to send INVITEs; empty = everyone (labs only).
    pub trunk_allow: crate::sip::allowlist::AllowList,
    /// `shutdown.drain_timeout`: how long calls in progress may go on after SIGTERM.
    pub drain_timeout: Duration,
    /// Call recordings older than this are deleted; `None` keeps them.
    pub recording_retention: Option<Duration>,
    /// The longest call recording; the rest of a longer conversation is not recorded.
    pub recording_max: Duration,
    /// `database:` / `--database`: `postgres://…`, `sqlite:PATH` or a path; none = the SQLite
    /// file in the data directory.
    pub database: Option<crate::cdr::DatabaseUrl>,
    /// The click-to-call widget and callbacks.
    pub widget: crate::acd::callback::WidgetConfig,
    /// `trunk:` — where callbacks and flow transfers are dialled out; none = they cannot be.
    pub trunk: Option<trunk::TrunkConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip_listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            rtp_ports: (20000, 20999),
            public_ip: None,
            data_dir: PathBuf::from("data"),
            flows_dir: PathBuf::from("ivr-flows"),
            sounds_dir: PathBuf::from("sounds"),
            accounts: PathBuf::from("ivr-flows/accounts.csv"),
            lockout_max_failures: 5,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_lock_for: Duration::from_secs(15 * 60),
            max_calls: 1000,
            inband_dtmf: true,
            sip_rate_per_source: 200,
            reload_interval: Duration::from_secs(1),
            queues: Vec::new(),
            agents: Vec::new(),
            rtc: crate::rtc::RtcConfig::default(),
            sip_realm: "switchboard".to_string(),
            source: None,
            webhooks: Vec::new(),
            metrics_public: false,
            supervisors: Vec::new(),
            security: crate::auth::SecurityPolicy::default(),
            trunk_allow: crate::sip::allowlist::AllowList::default(),
            drain_timeout: Duration::from_secs(30),
            recording_retention: None,
            recording_max: Duration::from_secs(2 * 3600),
            database: None,
            widget: crate::acd::callback::WidgetConfig::default(),
            trunk: None,
        }
    }
}

/// The file format. Every key optional; unknown keys are errors, as in flow files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    sip: Option<SipSection>,
    http: Option<HttpSection>,
    rtp: Option<RtpSection>,
    data_dir: Option<PathBuf>,
    flows_dir: Option<PathBuf>,
    sounds_dir: Option<PathBuf>,
    accounts: Option<PathBuf>,
    lockout: Option<LockoutSection>,
    max_calls: Option<usize>,
    inband_dtmf: Option<bool>,
    queues: Option<Vec<crate::acd::QueueConfig>>,
    agents: Option<Vec<crate::acd::AgentConfig>>,
    rtc: Option<RtcSection>,
    webhooks: Option<Vec<crate::runtime::webhooks::WebhookConfig>>,
    metrics: Option<MetricsSection>,
    supervisors: Option<Vec<supervisors::SupervisorConfig>>,
    security: Option<SecuritySection>,
    shutdown: Option<ShutdownSection>,
    recordings: Option<RecordingsSection>,
    database: Option<crate::cdr::DatabaseUrl>,
    widget: Option<crate::acd::callback::WidgetConfig>,
    trunk: Option<trunk::TrunkConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    public: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecuritySection {
    auth_failures: Option<u32>,
    window: Option<String>,
    block_for: Option<String>,
    session_lifetime: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShutdownSection {
    drain_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingsSection {
    /// `30d`, `12h`, ...; absent keeps recordings for ever.
    retention: Option<String>,
    /// `2h` by default.
    max_length: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RtcSection {
    /// Address the WebRTC legs bind and offer as host candidates.
    bind_ip: Option<String>,
    /// The public address to announce when the server sits behind 1:1 NAT.
    public_ip: Option<String>,
    /// `stun:host:port`
    stun: Option<String>,
    /// `40000-40999`
    ports: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SipSection {
    listen: Option<String>,
    public_ip: Option<String>,
    rate_per_source: Option<u32>,
    trunk_allow: Option<Vec<String>>,
    realm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RtpSection {
    ports: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockoutSection {
    max_failures: Option<u32>,
    window: Option<String>,
    lock_for: Option<String>,
}

/// Command-line overrides, applied after the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub sip: Option<String>,
    pub http: Option<String>,
    pub rtp_ports: Option<String>,
    pub data: Option<PathBuf>,
    pub flows: Option<PathBuf>,
    pub sounds: Option<PathBuf>,
    pub accounts: Option<PathBuf>,
    pub database: Option<crate::cdr::DatabaseUrl>,
}

impl Config {
    /// Defaults, then the file (if any), then the flags. Relative paths in the file are taken
    /// relative to the current directory, like the flags, so `switchboard run` from the repo works.
    pub fn load(file: Option<&Path>, ov: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let mut accounts_set = false;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let fc: FileConfig = serde_saphyr::from_str(&text).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                ConfigError::Syntax {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: first_line(&e.to_string()),
                }
            })?;
            cfg.apply_file(fc, &mut accounts_set)?;
            cfg.source = Some(path.to_path_buf());
        }
        if let Some(s) = &ov.sip {
            cfg.sip_listen = parse_addr("--sip", s)?;
        }
        if let Some(s) = &ov.http {
            cfg.http_listen = parse_addr("--http", s)?;
        }
        if let Some(s) = &ov.rtp_ports {
            cfg.rtp_ports = parse_port_range(s)?;
        }
        if let Some(p) = &ov.data {
            cfg.data_dir = p.clone();
        }
        if let Some(p) = &ov.flows {
            cfg.flows_dir = p.clone();
            if !accounts_set {
                // The accounts file lives beside the flows unless said otherwise.
                cfg.accounts = p.join("accounts.csv");
            }
        }
        if let Some(p) = &ov.sounds {
            cfg.sounds_dir = p.clone();
        }
        if let Some(p) = &ov.accounts {
            cfg.accounts = p.clone();
        }
        if let Some(d) = &ov.database {
            cfg.database = Some(d.clone());
        }
        Ok(cfg)
    }

    fn apply_file(&mut self, fc: FileConfig, accounts_set: &mut bool) -> Result<(), ConfigError> {
        if let Some(sip) = fc.sip {
            if let Some(l) = sip.listen {
                self.sip_listen = parse_addr("sip.listen", &l)?;
            }
            if let Some(realm) = sip.realm {
                self.sip_realm = realm;
            }
            if let Some(r) = sip.rate_per_source {
                self.sip_rate_per_source = r.max(1);
            }
            if let Some(list) = sip.trunk_allow {
                self.trunk_allow = crate::sip::allowlist::AllowList::parse(&list)
                    .map_err(|e| ConfigError::Invalid(format!("sip.trunk_allow: {e}")))?;
            }
            if let Some(ip) = sip.public_ip {
                self.public_ip = Some(ip.parse().map_err(|_| {
                    ConfigError::Invalid(format!("sip.public_ip: `{ip}` is not an IP address"))
                })?);
            }
        }
        if let Some(http) = fc.http {
            if let Some(l) = http.listen {
                self.http_listen = parse_addr("http.listen", &l)?;
            }
        }
        if let Some(rtp) = fc.rtp {
            if let Some(p) = rtp.ports {
                self.rtp_ports = parse_port_range(&p)?;
            }
        }
        if let Some(p) = fc.data_dir {
            self.data_dir = p;
        }
        if let Some(d) = fc.database {
            self.database = Some(d);
        }
        if let Some(p) = fc.flows_dir {
            self.flows_dir = p.clone();
            self.accounts = p.join("accounts.csv");
        }
        if let Some(p) = fc.sounds_dir {
            self.sounds_dir = p;
        }
        if let Some(p) = fc.accounts {
            self.accounts = p;
            *accounts_set = true;
        }
        if let Some(l) = fc.lockout {
            if let Some(n) = l.max_failures {
                if n == 0 {
                    return Err(ConfigError::Invalid(
                        "lockout.max_failures must be at least 1".into(),
                    ));
                }
                self.lockout_max_failures = n;
            }
            if let Some(w) = l.window {
                self.lockout_window = parse_duration(&w).ok_or_else(|| {
                    ConfigError::Invalid(format!("lockout.window: bad duration `{w}`"))
                })?;
            }
            if let Some(w) = l.lock_for {
                self.lockout_lock_for = parse_duration(&w).ok_or_else(|| {
                    ConfigError::Invalid(format!("lockout.lock_for: bad duration `{w}`"))
                })?;
            }
        }
        self.apply_security(fc.security, fc.shutdown)?;
        if let Some(n) = fc.max_calls {
            self.max_calls = n;
        }
        if let Some(b) = fc.inband_dtmf {
            self.inband_dtmf = b;
        }
        if let Some(q) = fc.queues {
            self.queues = q;
        }
        if let Some(a) = fc.agents {
            self.agents = a;
        }
        if let Some(r) = fc.rtc {
            let ip = |what: &str, v: &str| -> Result<std::net::IpAddr, ConfigError> {
                v.parse().map_err(|_| {
                    ConfigError::Invalid(format!("rtc.{what}: `{v}` is not an IP address"))
                })
            };
            if let Some(v) = r.bind_ip {
                self.rtc.bind_ip = ip("bind_ip", &v)?;
            }
            if let Some(v) = r.public_ip {
                self.rtc.public_ip = Some(ip("public_ip", &v)?);
            }
            self.rtc.stun = r.stun;
            if let Some(p) = r.ports {
                self.rtc.port_range = Some(parse_port_range(&p)?);
            }
        }
        if let Some(w) = fc.webhooks {
            let problems: Vec<String> = w.iter().flat_map(|h| h.problems()).collect();
            if !problems.is_empty() {
                return Err(ConfigError::Invalid(problems.join("\n")));
            }
            self.webhooks = w;
        }
        if let Some(m) = fc.metrics {
            self.metrics_public = m.public.unwrap_or(false);
        }
        if let Some(s) = fc.supervisors {
            self.supervisors = s;
        }
        let mut problems = crate::acd::validate(&self.queues, &self.agents);
        problems.extend(supervisors::validate(&self.supervisors));
        if let Some(r) = fc.recordings {
            if let Some(v) = r.retention {
                self.recording_retention = Some(parse_days(&v).ok_or_else(|| {
                    ConfigError::Invalid(format!("recordings.retention: bad duration `{v}`"))
                })?);
            }
            if let Some(v) = r.max_length {
                self.recording_max = parse_duration(&v).ok_or_else(|| {
                    ConfigError::Invalid(format!("recordings.max_length: bad duration `{v}`"))
                })?;
            }
        }
        if let Some(w) = fc.widget {
            self.widget = w;
        }
        let names: Vec<String> = self.queues.iter().map(|q| q.name.clone()).collect();
        problems.extend(self.widget.problems(&names));
        if let Some(t) = fc.trunk {
            problems.extend(t.problems());
            self.trunk = Some(t);
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems.join("\n")));
        }
        Ok(())
    }

    fn apply_security(
        &mut self,
        sec: Option<SecuritySection>,
        shutdown: Option<ShutdownSection>,
    ) -> Result<(), ConfigError> {
        let dur = |key: &str, v: &str| {
            parse_duration(v)
                .ok_or_else(|| ConfigError::Invalid(format!("{key}: bad duration `{v}`")))
        };
        if let Some(s) = sec {
            if let Some(n) = s.auth_failures {
                if n == 0 {
                    return Err(ConfigError::Invalid(
                        "security.auth_failures must be at least 1".into(),
                    ));
                }
                self.security.auth_failures = n;
            }
            if let Some(w) = s.window {
                self.security.window = dur("security.window", &w)?;
            }
            if let Some(w) = s.block_for {
                self.security.block_for = dur("security.block_for", &w)?;
            }
            if let Some(w) = s.session_lifetime {
                let d = dur("security.session_lifetime", &w)?;
                if d.is_zero() {
                    return Err(ConfigError::Invalid(
                        "security.session_lifetime must be longer than 0s".into(),
                    ));
                }
                self.security.session_lifetime = d;
            }
        }
        if let Some(t) = shutdown.and_then(|s| s.drain_timeout) {
            self.drain_timeout = dur("shutdown.drain_timeout", &t)?;
        }
        Ok(())
    }

    /// The queues flows may name, and the skills agents have for each, for `check`. `None`
    /// when no queues are configured: `queue` steps are then not routed and not checked.
    pub fn queue_infos(&self) -> Option<Vec<crate::ivr::QueueInfo>> {
        if self.queues.is_empty() {
            return None;
        }
        Some(
            self.queues
                .iter()
                .map(|q| {
                    let mut skills: Vec<String> = self
                        .agents
                        .iter()
                        .filter(|a| a.queues.contains(&q.name))
                        .flat_map(|a| a.skills.keys().cloned())
                        .collect();
                    skills.sort();
                    skills.dedup();
                    crate::ivr::QueueInfo {
                        name: q.name.clone(),
                        skills,
                    }
                })
                .collect(),
        )
    }

    /// Each queue's service-level target, for reports.
    pub fn queue_targets(&self) -> crate::cdr::report::QueueTargets {
        let mut t = crate::cdr::report::QueueTargets::default();
        for q in &self.queues {
            t.service_level.insert(q.name.clone(), q.service_level);
        }
        t
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("switchboard.db")
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "{what}: `{s}` is not an address like 127.0.0.1:5060"
        ))
    })
}

/// `20000-20999`; at least two ports (RTP uses even ports, one per call leg).
pub fn parse_port_range(s: &str) -> Result<(u16, u16), ConfigError> {
    let bad = || ConfigError::Invalid(format!("rtp ports: `{s}` is not a range like 20000-20999"));
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b <= a {
        return Err(bad());
    }
    Ok((a, b))
}

/// `500ms`, `6s`, `15m`, `2h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// [`parse_duration`] plus days (`30d`), for retention periods.
pub fn parse_days(s: &str) -> Option<Duration> {
    match s.trim().strip_suffix('d') {
        Some(n) => Some(Duration::from_secs(
            n.parse::<u64>().ok()?.checked_mul(86_400)?,
        )),
        None => parse_duration(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_no_flags_gives_the_documented_defaults() {
        let c = Config::load(None, &Overrides::default()).expect("defaults");
        assert_eq!(c.sip_listen.to_string(), "127.0.0.1:5060");
        assert_eq!(c.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.rtp_ports, (20000, 20999));
        assert_eq!(c.db_path(), PathBuf::from("data/switchboard.db"));
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("sb.yaml");
        std::fs::write(
            &f,
            "sip:\n  listen: 127.0.0.1:5070\nlockout:\n  max_failures: 3\n",
        )
        .expect("w");
        let ov = Overrides {
            sip: Some("127.0.0.1:5080".into()),
            flows: Some("/tmp/flows".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&f), &ov).expect("load");
        assert_eq!(c.sip_listen.port(), 5080);
        assert_eq!(c.lockout_max_failures, 3);
        assert_eq!(c.accounts, PathBuf::from("/tmp/flows/accounts.csv"));

        std::fs::write(&f, "sip:\n  listn: 127.0.0.1:5070\n").expect("w");
        let err = Config::load(Some(&f), &Overrides::default()).expect_err("typo refused");
        let msg = err.to_string();
        assert!(msg.contains("sb.yaml:2:"), "{msg}");
    }

    #[test]
    fn durations_and_port_ranges() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("fast"), None);
        assert!(parse_port_range("20000-20999").is_ok());
        assert!(parse_port_range("300-200").is_err());
    }

    #[test]
    fn recording_keys_read_days_and_queues_opt_in() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("sb.yaml");
        std::fs::write(
            &f,
            "recordings:\n  retention: 30d\n  max_length: 1h\nqueues:\n  - name: sales\n    record: true\n  - name: support\n",
        )
        .expect("w");
        let c = Config::load(Some(&f), &Overrides::default()).expect("loads");
        assert_eq!(
            c.recording_retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(c.recording_max, Duration::from_secs(3600));
        assert!(c.queues[0].record && !c.queues[1].record);
        let d = Config::load(None, &Overrides::default()).expect("defaults");
        assert_eq!(d.recording_retention, None, "kept unless configured");
        std::fs::write(&f, "recordings:\n  retention: soon\n").expect("w");
        assert!(Config::load(Some(&f), &Overrides::default()).is_err());
    }
}
