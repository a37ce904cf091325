//! The contract between the interpreter and whoever drives it (the call controller, the
//! simulator): what comes in, what goes out.

use crate::time::Instant;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct CallInfo {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    pub started_wall: DateTime<Utc>,
    pub started: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthState {
    None,
    Ok,
    Failed,
    Locked,
}

impl AuthState {
    /// The CDR's `auth` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthState::None => "none",
            AuthState::Ok => "ok",
            AuthState::Failed => "failed",
            AuthState::Locked => "locked",
        }
    }
}

/// A PIN as typed. It prints as `****` everywhere, so it cannot leak through logs or Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    pub fn new(digits: impl Into<String>) -> Self {
        Pin(digits.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum PinOutcome {
    Ok {
        account_id: String,
        fields: BTreeMap<String, String>,
    },
    Invalid,
    Locked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountKey {
    Phone(String),
    Id(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptRef {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    Completed,
    AuthFailed,
    Voicemail,
    NoInput,
    /// The caller hung up (Event::Hangup); no Hangup action is emitted for it.
    CallerHangup,
    Error(String),
}

impl EndReason {
    /// The word used in test expectations and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::Completed => "completed",
            EndReason::AuthFailed => "auth_failed",
            EndReason::Voicemail => "voicemail",
            EndReason::NoInput => "no_input",
            EndReason::CallerHangup => "caller_hangup",
            EndReason::Error(_) => "error",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// From RFC 4733, in-band detection or SIP INFO: the interpreter does not care which.
    Digit(char),
    PlaybackDone {
        id: u64,
        interrupted: bool,
    },
    PinChecked {
        id: u64,
        outcome: PinOutcome,
    },
    LookupDone {
        id: u64,
        result: Result<serde_json::Value, String>,
    },
    RecordingDone {
        id: u64,
        file: Option<String>,
    },
    /// After Queue / Callback / Transfer. `timed_out: true` means it did not happen (or the
    /// queue gave up): a queue follows its `on_timeout`, a transfer hangs up (Action::Hangup).
    /// On a callback either value continues at `next`. `timed_out: false` on a queue or
    /// transfer means the caller is with someone else now: the flow ends without a Hangup.
    QueueResult {
        timed_out: bool,
    },
    /// The caller hung up: finish at once.
    Hangup,
    /// The agent hung up first: a queue step with `after_agent` continues there.
    AgentHungUp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    StepEntered {
        step: String,
    },
    Play {
        id: u64,
        prompts: Vec<PromptRef>,
        barge_in: bool,
    },
    StopPlayback,
    VerifyPin {
        id: u64,
        key: AccountKey,
        pin: Pin,
    },
    Lookup {
        id: u64,
        method: String,
        url: String,
        body: Option<String>,
        timeout: Duration,
    },
    /// Starts after its prompt; ends on silence, `max`, or StopRecording (the caller pressed #).
    Record {
        id: u64,
        max: Duration,
        beep: bool,
    },
    StopRecording,
    Queue {
        step: String,
        name: String,
        priority: i64,
        skills: BTreeMap<String, u8>,
        timeout: Option<Duration>,
    },
    Callback {
        step: String,
        queue: String,
    },
    Transfer {
        step: String,
        target: String,
    },
    Hangup {
        reason: EndReason,
    },
    /// A survey step took a score; `bad` when it is below the step's `bad_below`.
    Survey {
        step: String,
        score: i64,
        bad: bool,
    },
}
