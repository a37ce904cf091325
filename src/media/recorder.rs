//! The two-channel call recording: what the caller says on the left, what the caller hears (the
//! agent, or the music while on hold) on the right, kept in step on the session's 20 ms send grid.
//!
//! Every send slot appends exactly one frame to each channel, so both channels always have the
//! same length and a lost or late packet leaves 20 ms of silence rather than shifting one side
//! against the other. The caller's frames wait in a short queue between slots; a burst beyond
//! [`CALLER_DEPTH`] drops the oldest, so jitter cannot build up into a lasting delay.

use super::FRAME_SAMPLES;
use std::collections::VecDeque;

/// Caller samples held between send slots: enough for ordinary jitter (and 30 ms packets), short
/// enough that the channels never drift more than 80 ms apart.
const CALLER_DEPTH: usize = 4 * FRAME_SAMPLES;

#[derive(Debug)]
pub struct StereoRecorder {
    /// Interleaved left (caller) / right (what the caller hears) samples.
    samples: Vec<i16>,
    /// Most frames per channel.
    max_frames: usize,
    frames: usize,
    caller: VecDeque<i16>,
}

impl StereoRecorder {
    /// `max_samples` is per channel at 8 kHz (2 h is 57 600 000).
    pub fn new(max_samples: usize) -> Self {
        StereoRecorder {
            samples: Vec::with_capacity(
                max_samples
                    .min(60 * super::SAMPLE_RATE as usize)
                    .saturating_mul(2),
            ),
            max_frames: max_samples / FRAME_SAMPLES,
            frames: 0,
            caller: VecDeque::with_capacity(CALLER_DEPTH),
        }
    }

    /// One received packet of the caller's decoded audio.
    pub fn caller_audio(&mut self, pcm: &[i16]) {
        if self.is_full() {
            return;
        }
        self.caller.extend(pcm.iter().copied());
        let excess = self.caller.len().saturating_sub(CALLER_DEPTH);
        self.caller.drain(..excess);
    }

    /// One send slot went by; `heard` is the frame sent to the caller in it (`None`: silence).
    /// Returns true once the recording is full.
    pub fn slot(&mut self, heard: Option<&[i16]>) -> bool {
        if self.is_full() {
            return true;
        }
        for i in 0..FRAME_SAMPLES {
            let l = self.caller.pop_front().unwrap_or(0);
            let r = heard.and_then(|h| h.get(i)).copied().unwrap_or(0);
            self.samples.push(l);
            self.samples.push(r);
        }
        self.frames += 1;
        self.is_full()
    }

    pub fn is_full(&self) -> bool {
        self.frames >= self.max_frames
    }

    /// Length per channel, in samples.
    pub fn len(&self) -> usize {
        self.frames * FRAME_SAMPLES
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// The interleaved stereo samples, ready for a 2-channel WAV.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }
}
