//! switchboard — a voice and IVR gateway for contact centres.
//!
//! The crate is split the way quinn and str0m split theirs: protocol logic that never touches a
//! socket or a clock, driven by a thin async shell.
//!
//! * [`time`] — monotonic time as data; every pure module takes `now` as an argument.
//! * [`sip`] — PURE. SIP messages (parsed with `rsip`, compact headers expanded first), RFC 3261
//!   transactions with their timers as data, dialogs, and SDP offer/answer.
//! * [`media`] — PURE. RTP packets, G.711, RFC 4733 and in-band (Goertzel) DTMF, WAV prompts paced at
//!   20 ms, recording buffers.
//! * [`ivr`] — PURE. The flow file model, its checker (`file:line:column` diagnostics), and the
//!   interpreter that the server, `switchboard simulate` and the flows' `tests:` all share.
//! * [`call`] — PURE. One call's controller: pairs a SIP dialog, an RTP session and an IVR
//!   interpreter, and says what the runtime should do next.
//! * [`auth`] — accounts (CSV), argon2 PIN hashes and the lockout ledger (SQLite).
//! * [`cdr`] — call detail records in SQLite, closed as `interrupted` after a crash.
//! * [`config`] — the server configuration and its embedded defaults.
//! * [`runtime`] — ALL I/O: UDP/TCP SIP transports, RTP sockets, one task per call, flow reload.
//! * [`http`] — axum: health, call records.
//!
//! Directions: pure modules import neither tokio, sockets, axum nor rusqlite; `sip` and `media` do
//! not know each other (SDP crosses as text, `call` pairs them); nothing imports `http` or `main`.

pub mod acd;
pub mod auth;
pub mod call;
pub mod cdr;
pub mod config;
pub mod http;
pub mod ivr;
pub mod media;
pub mod rtc;
pub mod runtime;
pub mod sip;
pub mod time;
