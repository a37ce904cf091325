//! Counters since start for `GET /metrics`. Every call site does one Relaxed atomic add: a scrape
//! may see a call counted in `calls_total` a moment before its RTP packets, which Prometheus
//! tolerates, and nothing on the media path ever waits for a lock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::cdr::Disposition;

/// SIP methods counted separately; anything else lands in `other`.
pub const SIP_METHODS: &[&str] = &[
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "other",
];

/// Results of webhook delivery attempts, as `switchboard_webhook_deliveries_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    /// A 2xx answer.
    Delivered,
    /// One failed attempt that will be tried again.
    Retried,
    /// Given up: a final 4xx, or out of attempts.
    Failed,
    /// Thrown away unsent because the queue was full.
    Dropped,
}

impl DeliveryResult {
    pub const ALL: &'static [DeliveryResult] = &[
        DeliveryResult::Delivered,
        DeliveryResult::Retried,
        DeliveryResult::Failed,
        DeliveryResult::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Retried => "retried",
            DeliveryResult::Failed => "failed",
            DeliveryResult::Dropped => "dropped",
        }
    }

    fn index(self) -> usize {
        match self {
            DeliveryResult::Delivered => 0,
            DeliveryResult::Retried => 1,
            DeliveryResult::Failed => 2,
            DeliveryResult::Dropped => 3,
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    calls: Vec<AtomicU64>,
    sip: Vec<AtomicU64>,
    webhooks: [AtomicU64; 4],
    rtp_in: AtomicU64,
    rtp_out: AtomicU64,
    rtp_lost: AtomicU64,
    /// The trunk registration: 0 off, 1 trying, 2 registered, 3 failed.
    trunk_registration: AtomicU8,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            calls: Disposition::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            sip: SIP_METHODS.iter().map(|_| AtomicU64::new(0)).collect(),
            webhooks: Default::default(),
            rtp_in: AtomicU64::new(0),
            rtp_out: AtomicU64::new(0),
            rtp_lost: AtomicU64::new(0),
            trunk_registration: AtomicU8::new(0),
        }
    }
}

fn add(c: Option<&AtomicU64>, n: u64) {
    if let Some(c) = c {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// A point-in-time copy for rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub calls: Vec<(&'static str, u64)>,
    pub sip: Vec<(&'static str, u64)>,
    pub webhooks: Vec<(&'static str, u64)>,
    pub rtp_in: u64,
    pub rtp_out: u64,
    pub rtp_lost: u64,
    /// `off`, `trying`, `registered` or `failed`.
    pub trunk_registration: &'static str,
}

impl Metrics {
    /// A call's record was closed with this disposition (none counts as `failed`).
    pub fn call_ended(&self, disposition: Option<Disposition>) {
        let d = disposition.unwrap_or(Disposition::Failed);
        let i = Disposition::ALL.iter().position(|x| *x == d);
        add(i.and_then(|i| self.calls.get(i)), 1);
    }

    /// A call's RTP session closed: its totals are added once.
    pub fn rtp(&self, packets_in: u64, packets_out: u64, lost: u64) {
        self.rtp_in.fetch_add(packets_in, Ordering::Relaxed);
        self.rtp_out.fetch_add(packets_out, Ordering::Relaxed);
        self.rtp_lost.fetch_add(lost, Ordering::Relaxed);
    }

    /// A SIP request arrived (before any call work).
    pub fn sip_request(&self, method: &str) {
        let i = SIP_METHODS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(method))
            .unwrap_or(SIP_METHODS.len() - 1);
        add(self.sip.get(i), 1);
    }

    pub fn webhook(&self, result: DeliveryResult) {
        self.webhooks_add(result, 1);
    }

    pub fn webhooks_add(&self, result: DeliveryResult, n: u64) {
        add(self.webhooks.get(result.index()), n);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            calls: Disposition::ALL
                .iter()
                .zip(&self.calls)
                .map(|(d, c)| (d.as_str(), load(c)))
                .collect(),
            sip: SIP_METHODS
                .iter()
                .zip(&self.sip)
                .map(|(m, c)| (*m, load(c)))
                .collect(),
            webhooks: DeliveryResult::ALL
                .iter()
                .map(|r| (r.as_str(), self.webhooks.get(r.index()).map_or(0, load)))
                .collect(),
            rtp_in: load(&self.rtp_in),
            rtp_out: load(&self.rtp_out),
            rtp_lost: load(&self.rtp_lost),
            trunk_registration: self.trunk_registration(),
        }
    }

    /// The trunk registration changed (`None`: registration is off).
    pub fn set_trunk_registration(&self, state: Option<crate::sip::register_client::RegState>) {
        use crate::sip::register_client::RegState;
        let v = match state {
            None => 0,
            Some(RegState::Trying) => 1,
            Some(RegState::Registered) => 2,
            Some(RegState::Failed) => 3,
        };
        self.trunk_registration.store(v, Ordering::Relaxed);
    }

    /// `off`, `trying`, `registered` or `failed`, for `/healthz`.
    pub fn trunk_registration(&self) -> &'static str {
        match self.trunk_registration.load(Ordering::Relaxed) {
            1 => "trying",
            2 => "registered",
            3 => "failed",
            _ => "off",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(v: &[(&str, u64)], k: &str) -> u64 {
        v.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, c)| *c)
            .unwrap_or(99)
    }

    #[test]
    fn counts_land_under_their_own_label() {
        let m = Metrics::default();
        m.call_ended(Some(Disposition::Completed));
        m.call_ended(Some(Disposition::Completed));
        m.call_ended(Some(Disposition::Abandoned));
        m.call_ended(None);
        m.sip_request("INVITE");
        m.sip_request("bye");
        m.sip_request("SUBSCRIBE");
        m.rtp(10, 12, 1);
        m.rtp(5, 6, 2);
        m.webhook(DeliveryResult::Retried);
        m.webhook(DeliveryResult::Delivered);
        let s = m.snapshot();
        assert_eq!(get(&s.calls, "completed"), 2);
        assert_eq!(get(&s.calls, "abandoned"), 1);
        assert_eq!(get(&s.calls, "failed"), 1);
        assert_eq!(get(&s.calls, "voicemail"), 0);
        assert_eq!(s.calls.len(), Disposition::ALL.len());
        assert_eq!(get(&s.sip, "INVITE"), 1);
        assert_eq!(get(&s.sip, "BYE"), 1);
        assert_eq!(get(&s.sip, "other"), 1);
        assert_eq!((s.rtp_in, s.rtp_out, s.rtp_lost), (15, 18, 3));
        assert_eq!(get(&s.webhooks, "retried"), 1);
        assert_eq!(get(&s.webhooks, "delivered"), 1);
        assert_eq!(get(&s.webhooks, "dropped"), 0);
    }
}
