//! The integration-test softphone and server harness.
//!
//! Everything here is written against the wire, not against `switchboard`'s modules: SIP is built
//! and parsed as text, G.711 and RFC 4733 are encoded by hand, and the server is the real binary on
//! loopback ports. A bug in the server's SIP or media code therefore cannot also hide in the client.
//!
//! * [`server`] — spawn `switchboard run` with a test's own flows/accounts, wait for /healthz, logs,
//!   kill -9 and restart; HTTP helpers for the call records.
//! * [`phone`] — the softphone: INVITE/ACK/BYE/CANCEL/INFO/OPTIONS/REGISTER over UDP or TCP, RTP.
//! * [`agent`] — an agent on the console: login, WebSocket, a WebRTC peer with a test tone.
//! * [`prompts`] — which prompts the caller heard, and RTP continuity.
//! * [`ws`] — a browser page's WebSocket (with or without `Origin`) and its close code.
//! * [`g711`], [`dtmf`], [`rtp`], [`sipmsg`], [`link`] — the pieces.

// Each test binary uses a different subset of the harness.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod crm;
pub mod deskphone;
pub mod dtmf;
pub mod g711;
pub mod http;
pub mod link;
pub mod ops;
pub mod phone;
pub mod prompts;
pub mod registrar;
pub mod reports;
pub mod rtp;
pub mod server;
pub mod sipmsg;
pub mod talk;
pub mod trunk;
pub mod ws;

pub use phone::Phone;
pub use prompts::{check_continuity, heard_prompts, Heard, PromptSet};
pub use server::{english_prompts, http_get_json, wait_call_record, Account, Server, ServerOpts};

use std::time::Duration;

/// The merchant the spec's examples use.
pub const CALLER: &str = "+5511987650000";

/// A flow on `number` that plays `main-menu` (5 s to press 1) and then `goodbye`: the smallest
/// call that answers, plays audio and ends with a record.
pub fn menu_flow(name: &str, number: &str) -> String {
    format!(
        r##"
flow: {name}
numbers: ["{number}"]
language: en
start: menu
steps:
  menu:
    menu:
      prompt: main-menu
      options: {{ "1": goodbye }}
      timeout: 5s
      retries: 1
    on_timeout: goodbye
    on_invalid: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##
    )
}

/// A flow on `number` that puts the caller straight into `queue` (2 minutes at most).
pub fn queue_flow(name: &str, number: &str, queue: &str) -> String {
    queue_flow_then(name, number, queue, "hangup", "")
}

/// [`queue_flow`] whose caller, after two minutes, keeps their place as a queued callback.
pub fn queue_callback_flow(name: &str, number: &str, queue: &str) -> String {
    let keep_place = format!("  keep-place:\n    callback: {queue}\n    next: hangup\n");
    queue_flow_then(name, number, queue, "keep-place", &keep_place)
}

/// [`queue_flow`] with `on_timeout` going to `then`, and `more` steps after the queue's.
fn queue_flow_then(name: &str, number: &str, queue: &str, then: &str, more: &str) -> String {
    format!(
        r##"
flow: {name}
numbers: ["{number}"]
language: en
start: {queue}
steps:
  {queue}:
    queue: {{ name: {queue}, timeout: 2m }}
    on_timeout: {then}
{more}"##
    )
}

/// Generous bound for anything a call test waits on; prompts are a few seconds each.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Names of the steps a record went through (`ivr_path`).
pub fn ivr_path(record: &serde_json::Value) -> Vec<String> {
    record
        .get("ivr_path")
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A string field of a record, "" when absent or null.
pub fn field<'a>(record: &'a serde_json::Value, name: &str) -> &'a str {
    record.get(name).and_then(|v| v.as_str()).unwrap_or("")
}

/// `Result<T, String>` from the harness, unwrapped with the message printed as written (newlines
/// and all) rather than Debug-escaped.
pub trait Must<T> {
    fn must(self) -> T;
}

impl<T> Must<T> for Result<T, String> {
    #[track_caller]
    fn must(self) -> T {
        match self {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Asserts the record went through `expected` steps in order, allowing only the built-in `hangup`
/// after them (whether the server lists it is its choice).
#[track_caller]
pub fn assert_path(record: &serde_json::Value, expected: &[&str]) {
    let path = ivr_path(record);
    let trimmed: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "hangup")
        .collect();
    assert_eq!(trimmed, expected, "ivr_path of {record}");
}
