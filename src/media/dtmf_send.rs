//! DTMF towards the far end: RFC 4733 events on the negotiated telephone-event payload type, or,
//! when the peer did not offer one, the key's two tones mixed into the audio stream instead.
//!
//! The session asks once per 20 ms send slot what to put in it; while a key is being sent the
//! audio is suppressed (RFC 4733 §2.5.1.2) so the far end does not also hear the tone leak.

use super::dtmf::event_payloads;
use super::goertzel::tone;
use super::FRAME_SAMPLES;
use std::collections::VecDeque;

/// Queued keys beyond this are dropped: a stuck keypad must not grow memory.
const MAX_QUEUED: usize = 32;
/// Pause between in-band keys, so the far end's detector sees two presses.
const INBAND_GAP_MS: u32 = 60;
/// Per-tone peak of in-band DTMF: about -10 dBFS, loud enough for any detector, never clipping.
const INBAND_AMPLITUDE: i16 = 8000;
/// Key presses shorter than this are unreliable at the far end; longer ones hold the line.
const MIN_MS: u32 = 40;
const MAX_MS: u32 = 2000;

/// What one send slot carries while DTMF is being sent.
#[derive(Debug, PartialEq, Eq)]
pub enum DtmfSlot<'a> {
    /// A telephone-event payload. `first` marks the event's first packet (RTP marker bit);
    /// `start_ts` is the RTP timestamp every packet of the event carries.
    Event {
        payload: &'a [u8],
        first: bool,
        start_ts: u32,
    },
    /// One frame of tone (or the gap after one) to send as audio.
    Tone(&'a [i16]),
}

#[derive(Debug)]
enum Job {
    Events {
        payloads: VecDeque<Vec<u8>>,
        started: Option<u32>,
    },
    Samples(VecDeque<i16>),
}

#[derive(Debug, Default)]
pub struct DtmfSender {
    queue: VecDeque<Job>,
    current: Vec<u8>,
    frame: Vec<i16>,
}

impl DtmfSender {
    /// Queues one key press; false if the key is not DTMF or the queue is full.
    pub fn push(&mut self, digit: char, duration_ms: u32, rfc4733: bool) -> bool {
        if self.queue.len() >= MAX_QUEUED {
            return false;
        }
        let ms = duration_ms.clamp(MIN_MS, MAX_MS);
        let job = if rfc4733 {
            let payloads: VecDeque<Vec<u8>> = event_payloads(digit, ms).into();
            if payloads.is_empty() {
                return false;
            }
            Job::Events {
                payloads,
                started: None,
            }
        } else {
            let mut s = tone(digit, ms, INBAND_AMPLITUDE);
            if s.is_empty() {
                return false;
            }
            s.resize(s.len() + (INBAND_GAP_MS * 8) as usize, 0);
            // Whole frames only, so the next key starts on a frame boundary.
            let padded = s.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES;
            s.resize(padded, 0);
            Job::Samples(s.into())
        };
        self.queue.push_back(job);
        true
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// What the slot whose RTP timestamp is `ts` carries, if a key is being sent.
    pub fn next_slot(&mut self, ts: u32) -> Option<DtmfSlot<'_>> {
        loop {
            let job = self.queue.front_mut()?;
            match job {
                Job::Events { payloads, started } => {
                    let Some(p) = payloads.pop_front() else {
                        self.queue.pop_front();
                        continue;
                    };
                    let first = started.is_none();
                    let start_ts = *started.get_or_insert(ts);
                    self.current = p;
                    if payloads.is_empty() {
                        self.queue.pop_front();
                    }
                    return Some(DtmfSlot::Event {
                        payload: &self.current,
                        first,
                        start_ts,
                    });
                }
                Job::Samples(s) => {
                    if s.is_empty() {
                        self.queue.pop_front();
                        continue;
                    }
                    let n = FRAME_SAMPLES.min(s.len());
                    self.frame.clear();
                    self.frame.extend(s.drain(..n));
                    if s.is_empty() {
                        self.queue.pop_front();
                    }
                    return Some(DtmfSlot::Tone(&self.frame));
                }
            }
        }
    }
}
