//! One call's controller — PURE.
//!
//! It pairs the IVR interpreter with what the caller hears and what the record says. The runtime
//! feeds it what happened (answered, a digit, a prompt finished, the PIN was checked, the caller hung
//! up) with the time, and drains [`Command`]s: answer, play, stop, check this PIN, hang up, write the
//! record. It never sees a socket, so tests drive a whole call with virtual time.
//!
//! The call's wall-clock times (for the CDR and the `hours` step) are derived from the moment the
//! INVITE arrived plus monotonic time elapsed, so one clock reading per call is enough.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cdr::{AuthStatus, CallEvent, CallRecord, Direction, Disposition, HangupBy};
use crate::ivr::{
    AccountKey, Action, AuthState, CallInfo, EndReason, Event, Flow, Interpreter, Pin, PinOutcome,
    PromptIndex,
};
use crate::time::Instant;

mod queue;
mod transfer;
pub use queue::ScreenPop;

/// What the runtime must do next for this call.
#[derive(Debug)]
pub enum Command {
    /// Send 180 Ringing (the flow asked to ring before answering).
    Ring,
    /// Send 200 OK with the SDP answer; media starts.
    Answer,
    Play {
        id: u64,
        prompts: Vec<PathBuf>,
    },
    StopPlayback,
    StartRecording {
        id: u64,
        max: Duration,
        beep: bool,
    },
    /// Stop and write what was recorded; answer with [`CallController::recording_done`].
    StopRecording {
        id: u64,
    },
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
    /// Send BYE to the caller (the flow ended).
    Hangup,
    /// Put the caller in a queue (the ACD answers with `enqueued` or `queue_failed`).
    Enqueue {
        queue: String,
        priority: i64,
        skills: std::collections::BTreeMap<String, u8>,
        timeout: Option<Duration>,
        pop: Box<ScreenPop>,
    },
    /// Queue a callback to the caller's number that takes this call's place in line.
    Callback {
        queue: String,
        number: String,
    },
    /// Take the caller out of the queue (hung up, pressed the exit key).
    LeaveQueue,
    /// Start relaying audio between the caller and the agent who answered.
    Bridge {
        agent_id: String,
    },
    /// Stop relaying (transfer back to a queue).
    Unbridge,
    /// The agent put the caller on hold (true) or took them off (false): stop/resume the relay.
    Hold(bool),
    /// The caller hung up while talking to an agent: end the agent's leg.
    EndAgentLeg,
    /// A flow's `transfer`: dial the target (a number through the trunk, or a SIP URI); answer
    /// with `transfer_dialling`, then `transfer_answered` / `transfer_failed` / `transfer_ended`.
    Dial {
        target: String,
    },
    /// The transfer target answered: relay audio between the caller and it.
    BridgeTransfer,
    /// Hang up the transfer target's leg (CANCEL while ringing, BYE once answered).
    EndTransferLeg,
    /// Persist progress (an open record survives a crash and is closed as interrupted).
    CdrUpdate(Box<CallRecord>),
    /// The final record; the call is over once this is out.
    CdrFinish(Box<CallRecord>),
}

/// Play ids at and above this are the controller's own (music on hold, announcements); below
/// are the interpreter's.
const OWN_IDS: u64 = 1 << 48;

/// How long the flow waits for the ACK before starting anyway.
const START_WITHOUT_ACK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    Answered,
    Ended,
}

pub struct CallController {
    interp: Interpreter,
    prompts: Arc<PromptIndex>,
    queues_enabled: bool,
    queueing: Option<queue::Queueing>,
    next_own_id: u64,
    record: CallRecord,
    started: Instant,
    started_wall: DateTime<Utc>,
    phase: Phase,
    answer_at: Option<Instant>,
    /// The flow starts when the caller's ACK confirms the answer (or this long after the 200 OK
    /// if the ACK is slow), so the first prompt is not clipped while the phone opens its audio.
    start_at: Option<Instant>,
    recording: Option<(u64, Instant)>,
    voicemail: bool,
    /// The caller chose a callback: the call ends with disposition `callback`.
    callback_requested: bool,
    /// A `transfer` step's target being dialled or bridged.
    transfer: Option<transfer::Transferring>,
    /// A `transfer` step could not reach its target: the call ends `failed`.
    transfer_failed: bool,
    commands: VecDeque<Command>,
    path_len_written: usize,
}

/// Everything about the call known when the INVITE arrives.
pub struct NewCall {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub direction: Direction,
    pub started: Instant,
    pub started_wall: DateTime<Utc>,
    /// Whether `queue` steps are routed to agents (a server with queues configured) or, as
    /// before queues existed, follow `on_timeout` at once.
    pub queues_enabled: bool,
}

impl CallController {
    pub fn new(flow: Arc<Flow>, prompts: Arc<PromptIndex>, call: NewCall) -> CallController {
        let answer_delay = flow.answer_delay;
        let mut record = CallRecord::new(
            call.call_id.clone(),
            call.direction,
            call.from.clone(),
            call.to.clone(),
            call.started_wall,
        );
        record.flow = Some(flow.name.clone());
        let interp = Interpreter::new(
            flow,
            prompts.clone(),
            CallInfo {
                call_id: call.call_id,
                caller: call.from,
                dialed: call.to,
                started_wall: call.started_wall,
                started: call.started,
            },
        );
        let mut c = CallController {
            interp,
            prompts,
            queues_enabled: call.queues_enabled,
            queueing: None,
            next_own_id: OWN_IDS,
            record,
            started: call.started,
            started_wall: call.started_wall,
            phase: Phase::Ringing,
            answer_at: None,
            start_at: None,
            recording: None,
            voicemail: false,
            callback_requested: false,
            transfer: None,
            transfer_failed: false,
            commands: VecDeque::new(),
            path_len_written: 0,
        };
        c.commands
            .push_back(Command::CdrUpdate(Box::new(c.record.clone())));
        if answer_delay.is_zero() {
            c.answer(call.started);
        } else {
            c.commands.push_back(Command::Ring);
            c.answer_at = Some(call.started + answer_delay);
        }
        c
    }

    pub fn call_id(&self) -> &str {
        &self.record.call_id
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    fn wall(&self, now: Instant) -> DateTime<Utc> {
        let d = now.saturating_since(self.started);
        self.started_wall + chrono::Duration::from_std(d).unwrap_or_default()
    }

    fn answer(&mut self, now: Instant) {
        self.answer_at = None;
        self.phase = Phase::Answered;
        self.record.answered_at = Some(self.wall(now));
        self.commands.push_back(Command::Answer);
        self.start_at = Some(now + START_WITHOUT_ACK);
    }

    /// The caller's ACK arrived: the call is confirmed and the flow begins.
    pub fn confirmed(&mut self, now: Instant) {
        if self.phase == Phase::Answered && self.start_at.take().is_some() {
            self.interp.start(now);
            self.pump(now);
        }
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.interp.poll_timeout();
        for cand in [
            self.answer_at,
            self.start_at,
            self.recording.map(|(_, at)| at),
            self.queue_timeout_at(),
        ]
        .into_iter()
        .flatten()
        {
            t = Some(t.map_or(cand, |x| x.min(cand)));
        }
        if self.phase == Phase::Ended {
            return None;
        }
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        if let Some(at) = self.answer_at {
            if now >= at {
                self.answer(now);
            }
        }
        if let Some(at) = self.start_at {
            if now >= at {
                self.confirmed(now);
            }
        }
        if let Some((id, at)) = self.recording {
            if now >= at {
                self.recording = None;
                self.commands.push_back(Command::StopRecording { id });
            }
        }
        if self.phase == Phase::Answered {
            self.queue_handle_timeout(now);
            self.interp.handle_timeout(now);
            self.pump(now);
        }
    }

    /// A DTMF digit, whatever carried it (RFC 4733, in-band tone, SIP INFO).
    pub fn digit(&mut self, now: Instant, digit: char, source: &str) {
        if self.phase != Phase::Answered {
            return;
        }
        self.event(now, "digit", serde_json::json!({ "source": source }));
        if self.queueing.is_some() {
            self.queue_digit(now, digit);
            return;
        }
        self.interp.handle(now, Event::Digit(digit));
        self.pump(now);
    }

    pub fn playback_done(&mut self, now: Instant, id: u64, interrupted: bool) {
        if self.phase != Phase::Answered {
            return;
        }
        if id >= OWN_IDS {
            if !interrupted && self.transfer_playback_done(id) {
                return;
            }
            self.own_playback_done(now, id, interrupted);
            return;
        }
        self.interp
            .handle(now, Event::PlaybackDone { id, interrupted });
        self.pump(now);
    }

    pub fn pin_checked(&mut self, now: Instant, id: u64, outcome: PinOutcome) {
        if self.phase != Phase::Answered {
            return;
        }
        let result = match &outcome {
            PinOutcome::Ok { .. } => "ok",
            PinOutcome::Invalid => "invalid",
            PinOutcome::Locked => "locked",
        };
        self.event(now, "pin", serde_json::json!({ "result": result }));
        self.interp.handle(now, Event::PinChecked { id, outcome });
        self.pump(now);
    }

    pub fn lookup_done(
        &mut self,
        now: Instant,
        id: u64,
        result: Result<serde_json::Value, String>,
    ) {
        if self.phase != Phase::Answered {
            return;
        }
        let ok = result.is_ok();
        self.event(now, "lookup", serde_json::json!({ "ok": ok }));
        self.interp.handle(now, Event::LookupDone { id, result });
        self.pump(now);
    }

    /// A recording could not be written (a full disk): the record says which and why.
    pub fn recording_failed(&mut self, now: Instant, file: &str, error: &str) {
        self.event(
            now,
            "recording_failed",
            serde_json::json!({ "file": file, "error": error }),
        );
    }

    pub fn recording_done(&mut self, now: Instant, id: u64, file: Option<String>) {
        if self.phase != Phase::Answered {
            return;
        }
        if let Some(f) = &file {
            self.voicemail = true;
            self.record.recording = Some(f.clone());
        }
        self.interp.handle(now, Event::RecordingDone { id, file });
        self.pump(now);
    }

    /// The caller hung up (BYE) or cancelled before the answer (CANCEL).
    pub fn caller_hung_up(&mut self, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        let answered = self.phase == Phase::Answered;
        if let Some(disposition) = self
            .queue_caller_left(now)
            .or_else(|| self.transfer_caller_left())
        {
            self.finish(now, disposition, HangupBy::Caller);
            return;
        }
        if answered {
            self.interp.handle(now, Event::Hangup);
            // Whatever the interpreter asks now is moot: the caller is gone.
            while self.interp.poll_action().is_some() {}
        }
        let disposition = if !answered {
            Disposition::Abandoned
        } else {
            self.disposition_for(None)
        };
        self.finish(now, disposition, HangupBy::Caller);
    }

    /// The dialog failed under us (no ACK, transport error): end without a BYE exchange.
    pub fn failed(&mut self, now: Instant, why: &str) {
        if self.phase == Phase::Ended {
            return;
        }
        self.event(now, "error", serde_json::json!({ "reason": why }));
        self.finish(now, Disposition::Failed, HangupBy::System);
    }

    fn disposition_for(&self, reason: Option<&EndReason>) -> Disposition {
        match self.interp.auth() {
            AuthState::Failed | AuthState::Locked => return Disposition::AuthFailed,
            _ => {}
        }
        if self.voicemail {
            return Disposition::Voicemail;
        }
        if self.callback_requested {
            return Disposition::Callback;
        }
        if self.transfer_failed {
            return Disposition::Failed;
        }
        if self.is_transferred() {
            return Disposition::Transferred;
        }
        match reason {
            Some(EndReason::Error(_)) => Disposition::Failed,
            Some(EndReason::AuthFailed) => Disposition::AuthFailed,
            Some(EndReason::Voicemail) => Disposition::Voicemail,
            _ => Disposition::Completed,
        }
    }

    fn event(&mut self, now: Instant, kind: &str, detail: serde_json::Value) {
        let at = self.wall(now);
        self.record.events.push(CallEvent {
            at,
            kind: kind.to_string(),
            detail,
        });
    }

    fn sync_ivr_state(&mut self) {
        let path = self.interp.path();
        if path.len() != self.record.ivr_path.len() {
            self.record.ivr_path = path.to_vec();
        }
        self.record.account_id = self.interp.account_id().map(str::to_string);
        self.record.auth = match self.interp.auth() {
            AuthState::None => AuthStatus::None,
            AuthState::Ok => AuthStatus::Ok,
            AuthState::Failed => AuthStatus::Failed,
            AuthState::Locked => AuthStatus::Locked,
        };
    }

    /// Drain the interpreter's actions into runtime commands.
    fn pump(&mut self, now: Instant) {
        while let Some(action) = self.interp.poll_action() {
            match action {
                Action::StepEntered { step } => {
                    self.event(now, "step", serde_json::json!({ "step": step }));
                }
                Action::Play { id, prompts, .. } => {
                    let prompts = prompts.into_iter().map(|p| p.path).collect();
                    self.commands.push_back(Command::Play { id, prompts });
                }
                Action::StopPlayback => self.commands.push_back(Command::StopPlayback),
                Action::VerifyPin { id, key, pin } => {
                    self.commands.push_back(Command::VerifyPin { id, key, pin });
                }
                Action::Lookup {
                    id,
                    method,
                    url,
                    body,
                    timeout,
                } => self.commands.push_back(Command::Lookup {
                    id,
                    method,
                    url,
                    body,
                    timeout,
                }),
                Action::Record { id, max, beep } => {
                    self.recording = Some((id, now + max));
                    self.commands
                        .push_back(Command::StartRecording { id, max, beep });
                }
                Action::StopRecording => {
                    if let Some((id, _)) = self.recording.take() {
                        self.commands.push_back(Command::StopRecording { id });
                    }
                }
                Action::Queue {
                    step,
                    name,
                    priority,
                    skills,
                    timeout,
                } => {
                    if self.queues_enabled {
                        self.start_queueing(now, &name, priority, skills, timeout);
                    } else {
                        self.not_available(now, "queue", &step, &name);
                    }
                }
                Action::Callback { step, queue } => {
                    if self.queues_enabled {
                        self.request_callback(now, &step, queue);
                    } else {
                        self.not_available(now, "callback", &step, &queue);
                    }
                }
                Action::Transfer { step, target } => self.start_transfer(now, &step, target),
                Action::Survey { step, score, bad } => {
                    self.record.survey = Some(score);
                    self.event(
                        now,
                        "survey",
                        serde_json::json!({ "step": step, "score": score, "bad": bad }),
                    );
                }
                Action::Hangup { reason } => {
                    self.sync_ivr_state();
                    let disposition = self.disposition_for(Some(&reason));
                    self.commands.push_back(Command::Hangup);
                    self.finish(now, disposition, HangupBy::System);
                    return;
                }
            }
        }
        self.sync_ivr_state();
        if self.record.ivr_path.len() != self.path_len_written {
            self.path_len_written = self.record.ivr_path.len();
            self.commands
                .push_back(Command::CdrUpdate(Box::new(self.record.clone())));
        }
    }

    /// The caller asked to be called back: the runtime converts their place in line into a
    /// callback, and the flow goes on to the step's `next` (a goodbye).
    fn request_callback(&mut self, now: Instant, step: &str, queue: String) {
        self.callback_requested = true;
        self.record.queue = Some(queue.clone());
        self.event(
            now,
            "callback",
            serde_json::json!({ "step": step, "queue": queue }),
        );
        self.commands.push_back(Command::Callback {
            queue,
            number: self.record.from.clone(),
        });
        self.interp
            .handle(now, Event::QueueResult { timed_out: false });
    }

    /// The callback could not be queued (bad number, full queue): the record says so and the
    /// call's disposition is whatever the flow ends with.
    pub fn callback_refused(&mut self, now: Instant, why: &str) {
        self.callback_requested = false;
        self.event(
            now,
            "callback_refused",
            serde_json::json!({ "reason": why }),
        );
    }

    /// Queue and callback steps on a server without queues: the call goes on the way the flow
    /// says it goes when the queue gives up (`on_timeout`), or ends.
    fn not_available(&mut self, now: Instant, kind: &str, step: &str, target: &str) {
        tracing::warn!(call_id = %self.record.call_id, step, kind, target, "no queues are configured; following on_timeout");
        self.event(
            now,
            "not_available",
            serde_json::json!({ "kind": kind, "step": step, "target": target }),
        );
        self.interp
            .handle(now, Event::QueueResult { timed_out: true });
    }

    fn finish(&mut self, now: Instant, disposition: Disposition, by: HangupBy) {
        self.sync_ivr_state();
        self.phase = Phase::Ended;
        self.answer_at = None;
        self.start_at = None;
        self.close_leg(now, by.as_str());
        self.close_transfer_leg(now, by);
        self.queueing = None;
        if let Some((id, _)) = self.recording.take() {
            self.commands.push_back(Command::StopRecording { id });
        }
        self.record.ended_at = Some(self.wall(now));
        self.record.disposition = Some(disposition);
        self.record.hangup_by = Some(by);
        self.commands
            .push_back(Command::CdrFinish(Box::new(self.record.clone())));
    }

    pub fn started_wall(&self) -> DateTime<Utc> {
        self.started_wall
    }
}

#[cfg(test)]
mod survey_tests;
#[cfg(test)]
mod tests;
