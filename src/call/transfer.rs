//! A flow's `transfer` step as the controller sees it: a B2BUA bridge. The runtime dials the
//! target (through the trunk for a number, straight to the host for a SIP URI); the caller hears
//! music while it rings; on answer the audio is bridged both ways until either side hangs up.
//! A target that cannot be reached (busy, no answer, no trunk) ends the flow the way the step's
//! table says: hang up, disposition `failed`.

use std::path::PathBuf;

use super::{CallController, Command, Event};
use crate::cdr::{Disposition, HangupBy};
use crate::time::Instant;

#[derive(Debug)]
pub(super) struct Transferring {
    target: String,
    music: Option<PathBuf>,
    /// The play id of the music while it rings.
    playing: Option<u64>,
    answered: Option<Instant>,
}

impl CallController {
    pub(super) fn start_transfer(&mut self, now: Instant, step: &str, target: String) {
        self.event(
            now,
            "transfer",
            serde_json::json!({ "step": step, "target": target }),
        );
        self.transfer = Some(Transferring {
            target: target.clone(),
            music: None,
            playing: None,
            answered: None,
        });
        self.commands.push_back(Command::Dial { target });
    }

    /// The target's leg is placed: the caller hears `music` (looped) while it rings.
    pub fn transfer_dialling(&mut self, music: Option<PathBuf>) {
        if let Some(t) = self.transfer.as_mut() {
            t.music = music;
        }
        self.play_transfer_music();
    }

    fn play_transfer_music(&mut self) {
        let id = self.own_id();
        let Some(t) = self.transfer.as_mut().filter(|t| t.answered.is_none()) else {
            return;
        };
        if let Some(m) = t.music.clone() {
            t.playing = Some(id);
            self.commands.push_back(Command::Play {
                id,
                prompts: vec![m],
            });
        }
    }

    fn stop_transfer_music(&mut self) {
        if let Some(t) = self.transfer.as_mut() {
            if t.playing.take().is_some() {
                self.commands.push_back(Command::StopPlayback);
            }
        }
    }

    /// The music while it rings ended: again. `true` when the play id was the transfer's.
    pub(super) fn transfer_playback_done(&mut self, id: u64) -> bool {
        if self.transfer.as_ref().is_none_or(|t| t.playing != Some(id)) {
            return false;
        }
        self.play_transfer_music();
        true
    }

    /// The target answered: bridge.
    pub fn transfer_answered(&mut self, now: Instant) {
        if self.transfer.as_ref().is_none_or(|t| t.answered.is_some()) || self.is_ended() {
            return;
        }
        self.stop_transfer_music();
        if let Some(t) = self.transfer.as_mut() {
            t.answered = Some(now);
        }
        self.commands.push_back(Command::BridgeTransfer);
        self.commands
            .push_back(Command::CdrUpdate(Box::new(self.record.clone())));
    }

    /// The target could not be reached (`status`: the SIP final status, `None` when no request
    /// could be sent): the step ends the call.
    pub fn transfer_failed(&mut self, now: Instant, status: Option<u16>, reason: &str) {
        let Some(t) = self.transfer.as_ref().filter(|t| t.answered.is_none()) else {
            return;
        };
        if self.is_ended() {
            return;
        }
        let target = t.target.clone();
        self.stop_transfer_music();
        self.transfer = None;
        self.transfer_failed = true;
        self.event(
            now,
            "transfer_failed",
            serde_json::json!({ "target": target, "status": status, "reason": reason }),
        );
        self.interp
            .handle(now, Event::QueueResult { timed_out: true });
        self.pump(now);
    }

    /// The target hung up the bridged call: the caller gets a BYE.
    pub fn transfer_ended(&mut self, now: Instant) {
        if self.is_ended() || self.transfer.as_ref().is_none_or(|t| t.answered.is_none()) {
            return;
        }
        self.commands.push_back(Command::Hangup);
        self.finish(now, Disposition::Transferred, HangupBy::Agent);
    }

    /// The caller hung up during the transfer: `transferred` once bridged, `abandoned` while
    /// it still rang.
    pub(super) fn transfer_caller_left(&self) -> Option<Disposition> {
        let t = self.transfer.as_ref()?;
        Some(if t.answered.is_some() {
            Disposition::Transferred
        } else {
            Disposition::Abandoned
        })
    }

    /// The call ends: the target's leg goes too, and an answered one becomes a `leg` in the record.
    pub(super) fn close_transfer_leg(&mut self, now: Instant, ended_by: HangupBy) {
        let Some(t) = self.transfer.take() else {
            return;
        };
        self.commands.push_back(Command::EndTransferLeg);
        let Some(since) = t.answered else {
            return;
        };
        let talk_ms = now.saturating_since(since).as_millis() as i64;
        let ended_by = match ended_by {
            HangupBy::Agent => "target",
            other => other.as_str(),
        };
        let detail = serde_json::json!({
            "target": t.target,
            "sip_status": 200,
            "answered_at": crate::cdr::format_ts(&self.wall(since)),
            "ended_at": crate::cdr::format_ts(&self.wall(now)),
            "talk_ms": talk_ms,
            "ended_by": ended_by,
        });
        self.event(now, crate::cdr::CallLeg::EVENT, detail);
        self.record.talk_ms = Some(self.record.legs().iter().map(|l| l.talk_ms).sum());
    }

    pub(super) fn is_transferred(&self) -> bool {
        self.transfer.as_ref().is_some_and(|t| t.answered.is_some())
    }
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
