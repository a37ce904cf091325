//! The caller's time in a queue, as the controller sees it: music on hold in a loop, the position
//! announced every so often, the exit key, then either an agent (the audio is bridged) or the
//! flow's `on_timeout`. Routing itself — who gets the call — is the ACD's business.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{CallController, Command, Event};
use crate::cdr::{CallEvent, Disposition};
use crate::time::Instant;

/// What the agent's screen shows when the call rings: who, what they did in the IVR, and what
/// the CRM said. Never a PIN (the interpreter never keeps one).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScreenPop {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    pub flow: String,
    pub language: String,
    pub account: Option<BTreeMap<String, String>>,
    pub ivr_path: Vec<String>,
    pub digits: BTreeMap<String, String>,
    pub vars: BTreeMap<String, String>,
}

#[derive(Debug)]
enum Stage {
    /// Sent to the ACD, no answer yet.
    Asking,
    Waiting,
    Connected {
        agent: String,
        since: Instant,
    },
}

#[derive(Debug)]
pub(super) struct Queueing {
    name: String,
    stage: Stage,
    enqueued: Instant,
    music: Option<PathBuf>,
    /// The play id of what is playing for the queue (music or announcement).
    playing: Option<u64>,
    announcing: bool,
    announce_every: Option<Duration>,
    next_announce: Option<Instant>,
    position: Option<usize>,
    exit_key: Option<char>,
    on_hold: bool,
}

impl CallController {
    pub(super) fn own_id(&mut self) -> u64 {
        self.next_own_id += 1;
        self.next_own_id
    }

    fn queue_event(&mut self, now: Instant, kind: &str, detail: serde_json::Value) {
        let at = self.wall(now);
        self.record.events.push(CallEvent {
            at,
            kind: kind.to_string(),
            detail,
        });
    }

    fn screen_pop(&self) -> ScreenPop {
        let vars = self.interp.vars();
        let mut account = BTreeMap::new();
        let mut digits = BTreeMap::new();
        let mut crm = BTreeMap::new();
        for (k, v) in vars {
            if let Some(f) = k.strip_prefix("account.") {
                account.insert(f.to_string(), v.clone());
            } else if let Some(f) = k.strip_prefix("digits.") {
                digits.insert(f.to_string(), v.clone());
            } else if let Some(f) = k.strip_prefix("vars.") {
                crm.insert(f.to_string(), v.clone());
            }
        }
        ScreenPop {
            call_id: self.record.call_id.clone(),
            caller: self.record.from.clone(),
            dialed: self.record.to.clone(),
            flow: self.record.flow.clone().unwrap_or_default(),
            language: vars.get("language").cloned().unwrap_or_default(),
            account: (!account.is_empty()).then_some(account),
            ivr_path: self.interp.path().to_vec(),
            digits,
            vars: crm,
        }
    }

    pub(super) fn start_queueing(
        &mut self,
        now: Instant,
        name: &str,
        priority: i64,
        skills: BTreeMap<String, u8>,
        timeout: Option<Duration>,
    ) {
        self.sync_ivr_state();
        let wall = self.wall(now);
        self.record.queue = Some(name.to_string());
        self.record.priority = Some(priority);
        self.record.enqueued_at = Some(wall);
        self.queue_event(
            now,
            "queue",
            serde_json::json!({ "queue": name, "priority": priority }),
        );
        self.queueing = Some(Queueing {
            name: name.to_string(),
            stage: Stage::Asking,
            enqueued: now,
            music: None,
            playing: None,
            announcing: false,
            announce_every: None,
            next_announce: None,
            position: None,
            exit_key: None,
            on_hold: false,
        });
        let pop = Box::new(self.screen_pop());
        self.commands.push_back(Command::Enqueue {
            queue: name.to_string(),
            priority,
            skills,
            timeout,
            pop,
        });
        self.commands
            .push_back(Command::CdrUpdate(Box::new(self.record.clone())));
    }

    /// The ACD took the call: music starts, announcements are scheduled.
    pub fn enqueued(
        &mut self,
        now: Instant,
        music: Option<PathBuf>,
        announce_every: Option<Duration>,
        exit_key: Option<char>,
    ) {
        let Some(q) = self.queueing.as_mut() else {
            return;
        };
        if !matches!(q.stage, Stage::Asking) {
            return;
        }
        q.stage = Stage::Waiting;
        q.music = music;
        q.announce_every = announce_every;
        q.next_announce = announce_every.map(|d| now + d);
        q.exit_key = exit_key;
        self.play_music();
    }

    fn play_music(&mut self) {
        let id = self.own_id();
        let Some(q) = self.queueing.as_mut() else {
            return;
        };
        q.announcing = false;
        match q.music.clone() {
            Some(m) => {
                q.playing = Some(id);
                self.commands.push_back(Command::Play {
                    id,
                    prompts: vec![m],
                });
            }
            None => q.playing = None,
        }
    }

    fn stop_queue_audio(&mut self) {
        if let Some(q) = self.queueing.as_mut() {
            if q.playing.take().is_some() {
                self.commands.push_back(Command::StopPlayback);
            }
        }
    }

    /// Where the caller stands; announced at the next announcement time.
    pub fn queue_position(&mut self, position: usize) {
        if let Some(q) = self.queueing.as_mut() {
            q.position = Some(position);
        }
    }

    pub(super) fn queue_timeout_at(&self) -> Option<Instant> {
        let q = self.queueing.as_ref()?;
        match q.stage {
            Stage::Waiting => q.next_announce,
            _ => None,
        }
    }

    pub(super) fn queue_handle_timeout(&mut self, now: Instant) {
        let Some(q) = self.queueing.as_mut() else {
            return;
        };
        let due = matches!(q.stage, Stage::Waiting) && q.next_announce.is_some_and(|t| now >= t);
        if !due {
            return;
        }
        q.next_announce = q.announce_every.map(|d| now + d);
        let Some(position) = q.position else {
            return;
        };
        let language = self
            .interp
            .vars()
            .get("language")
            .cloned()
            .unwrap_or_else(|| "en".into());
        let mut prompts = Vec::new();
        let mut names = vec!["queue-position".to_string()];
        if position < 100 {
            names.push(format!("numbers/{position}"));
        } else {
            names.extend(position.to_string().chars().map(|c| format!("digits/{c}")));
        }
        for n in &names {
            if let Some(f) = self.prompts.resolve(&language, n) {
                prompts.push(f.path.clone());
            }
        }
        if prompts.is_empty() {
            return;
        }
        self.stop_queue_audio();
        let id = self.own_id();
        if let Some(q) = self.queueing.as_mut() {
            q.announcing = true;
            q.playing = Some(id);
        }
        self.commands.push_back(Command::Play { id, prompts });
    }

    pub(super) fn own_playback_done(&mut self, _now: Instant, id: u64, interrupted: bool) {
        let Some(q) = self.queueing.as_ref() else {
            return;
        };
        if q.playing != Some(id) || interrupted {
            return;
        }
        let waiting = matches!(q.stage, Stage::Waiting) || q.on_hold;
        if waiting {
            // Music loops; after an announcement the music comes back.
            self.play_music();
        }
    }

    pub(super) fn queue_digit(&mut self, now: Instant, digit: char) {
        let Some(q) = self.queueing.as_ref() else {
            return;
        };
        if matches!(q.stage, Stage::Waiting) && q.exit_key == Some(digit) {
            self.queue_event(
                now,
                "queue_exit",
                serde_json::json!({ "key": digit.to_string() }),
            );
            self.commands.push_back(Command::LeaveQueue);
            self.leave_queue_to_flow(now);
        }
    }

    fn leave_queue_to_flow(&mut self, now: Instant) {
        self.stop_queue_audio();
        self.queueing = None;
        self.interp
            .handle(now, Event::QueueResult { timed_out: true });
        self.pump(now);
    }

    /// The ACD gave up (the flow's timeout, the queue's max wait, no room): on_timeout.
    pub fn queue_timeout(&mut self, now: Instant, reason: &str) {
        if self.queueing.is_none() {
            return;
        }
        self.queue_event(
            now,
            "queue_timeout",
            serde_json::json!({ "reason": reason }),
        );
        self.leave_queue_to_flow(now);
    }

    /// Moved to another queue (overflow or transfer): the record follows.
    pub fn requeued(&mut self, now: Instant, queue: &str, why: &str) {
        if self.queueing.is_none() {
            return;
        }
        self.queue_event(now, why, serde_json::json!({ "queue": queue }));
        self.move_to_queue(queue);
    }

    /// The agent handed the call on (to `queue`, to `agent` in it if named): their leg ends, a
    /// `transfer` event says from whom to where, and the caller waits again with the same context.
    pub fn transferred(
        &mut self,
        now: Instant,
        from_agent: &str,
        queue: &str,
        agent: Option<&str>,
    ) {
        if self.queueing.is_none() || self.is_ended() {
            return;
        }
        self.close_leg(now, "transfer");
        let mut detail = serde_json::json!({ "from_agent": from_agent, "to_queue": queue });
        if let (Some(a), Some(o)) = (agent, detail.as_object_mut()) {
            o.insert("to_agent".into(), a.into());
        }
        self.queue_event(now, "transfer", detail);
        self.move_to_queue(queue);
    }

    /// Ends the connected agent's leg, if any, and makes `talk_ms` the sum over every leg so a
    /// transferred call's talk is neither lost nor counted twice.
    pub(super) fn close_leg(&mut self, now: Instant, ended_by: &str) {
        let Some(Stage::Connected { agent, since }) = self.queueing.as_ref().map(|q| &q.stage)
        else {
            return;
        };
        let (agent, since) = (agent.clone(), *since);
        let talk_ms = now.saturating_since(since).as_millis() as i64;
        let detail = serde_json::json!({
            "agent_id": agent,
            "answered_at": crate::cdr::format_ts(&self.wall(since)),
            "ended_at": crate::cdr::format_ts(&self.wall(now)),
            "talk_ms": talk_ms,
            "ended_by": ended_by,
        });
        self.queue_event(now, crate::cdr::CallLeg::EVENT, detail);
        self.record.talk_ms = Some(self.record.legs().iter().map(|l| l.talk_ms).sum());
    }

    fn move_to_queue(&mut self, queue: &str) {
        let was_connected = matches!(
            self.queueing.as_ref().map(|q| &q.stage),
            Some(Stage::Connected { .. })
        );
        let Some(q) = self.queueing.as_mut() else {
            return;
        };
        q.name = queue.to_string();
        if was_connected {
            q.stage = Stage::Waiting;
            q.on_hold = false;
            self.commands.push_back(Command::Unbridge);
        }
        self.record.queue = Some(queue.to_string());
        if was_connected {
            self.play_music();
        }
        self.commands
            .push_back(Command::CdrUpdate(Box::new(self.record.clone())));
    }

    /// An agent answered: stop the music and bridge.
    pub fn agent_connected(&mut self, now: Instant, agent_id: &str) {
        let Some(q) = self.queueing.as_ref() else {
            return;
        };
        let enqueued = q.enqueued;
        let first = self.record.agent_answered_at.is_none();
        self.stop_queue_audio();
        if let Some(q) = self.queueing.as_mut() {
            q.stage = Stage::Connected {
                agent: agent_id.to_string(),
                since: now,
            };
        }
        let wall = self.wall(now);
        self.record.agent_id = Some(agent_id.to_string());
        if first {
            self.record.agent_answered_at = Some(wall);
            self.record.wait_ms = Some(now.saturating_since(enqueued).as_millis() as i64);
        }
        self.queue_event(
            now,
            "agent_answered",
            serde_json::json!({ "agent": agent_id }),
        );
        self.commands.push_back(Command::Bridge {
            agent_id: agent_id.to_string(),
        });
        self.commands
            .push_back(Command::CdrUpdate(Box::new(self.record.clone())));
    }

    /// The runtime started recording the conversation into `file` (relative to the recordings
    /// directory): the record links it from now on, so even a crash leaves the link.
    pub fn call_recording_started(&mut self, now: Instant, file: &str) {
        if self.record.recording.as_deref() == Some(file) {
            return;
        }
        self.record.recording = Some(file.to_string());
        self.queue_event(now, "recording", serde_json::json!({ "file": file }));
        self.commands
            .push_back(Command::CdrUpdate(Box::new(self.record.clone())));
    }

    /// The agent put the caller on hold or took them off it.
    pub fn hold(&mut self, now: Instant, on: bool) {
        let Some(q) = self.queueing.as_mut() else {
            return;
        };
        if !matches!(q.stage, Stage::Connected { .. }) || q.on_hold == on {
            return;
        }
        q.on_hold = on;
        self.queue_event(now, "hold", serde_json::json!({ "on": on }));
        self.commands.push_back(Command::Hold(on));
        if on {
            self.play_music();
        } else {
            self.stop_queue_audio();
        }
    }

    /// The agent hung up: the caller is sent a BYE.
    pub fn agent_hung_up(&mut self, now: Instant) {
        let connected = matches!(
            self.queueing.as_ref().map(|q| &q.stage),
            Some(Stage::Connected { .. })
        );
        if !connected || self.is_ended() {
            return;
        }
        if self.interp.continues_after_agent() {
            // The flow goes on (a survey): the caller stays, the agent's audio goes.
            self.close_leg(now, "agent");
            self.queueing = None;
            self.commands.push_back(Command::Unbridge);
            self.queue_event(now, "agent_hung_up", serde_json::json!({}));
            self.interp.handle(now, Event::AgentHungUp);
            self.pump(now);
            return;
        }
        self.commands.push_back(Command::Hangup);
        self.finish(now, Disposition::Completed, crate::cdr::HangupBy::Agent);
    }

    /// The caller hung up while queued: abandoned, or a finished conversation.
    pub(super) fn queue_caller_left(&mut self, now: Instant) -> Option<Disposition> {
        let q = self.queueing.as_ref()?;
        match q.stage {
            Stage::Asking | Stage::Waiting => {
                self.queue_event(now, "abandoned", serde_json::json!({ "queue": q.name }));
                self.commands.push_back(Command::LeaveQueue);
                Some(Disposition::Abandoned)
            }
            Stage::Connected { .. } => {
                self.commands.push_back(Command::EndAgentLeg);
                Some(Disposition::Completed)
            }
        }
    }

    pub fn in_queue(&self) -> Option<&str> {
        self.queueing.as_ref().map(|q| q.name.as_str())
    }

    pub fn bridged_agent(&self) -> Option<&str> {
        match self.queueing.as_ref().map(|q| &q.stage) {
            Some(Stage::Connected { agent, .. }) => Some(agent.as_str()),
            _ => None,
        }
    }
}
