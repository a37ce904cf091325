//! Prompt playback, cut into 20 ms frames for the RTP clock.
//!
//! Prompts are shared, immutable sample buffers (`Arc<[i16]>`), loaded once and played by any
//! number of calls without copying. Each `play` is one item with an id; its prompts play back to
//! back and the item reports its id when its last sample has gone out.

use super::FRAME_SAMPLES;
use std::collections::VecDeque;
use std::sync::Arc;

/// One decoded prompt: 8 kHz mono samples.
pub type Samples = Arc<[i16]>;

/// What one frame held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Some prompt audio is in the frame (false: pure silence).
    pub audio: bool,
    /// The item whose last samples are in this frame.
    pub finished: Option<u64>,
}

#[derive(Debug)]
struct Item {
    id: u64,
    prompts: Vec<Samples>,
    prompt: usize,
    pos: usize,
}

/// A queue of items to play; silence when there is none.
#[derive(Debug, Default)]
pub struct Player {
    queue: VecDeque<Item>,
}

impl Player {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `prompts` as one item after everything already queued.
    pub fn play(&mut self, id: u64, prompts: Vec<Samples>) {
        self.queue.push_back(Item {
            id,
            prompts,
            prompt: 0,
            pos: 0,
        });
    }

    /// Barge-in: drops the playing item and everything queued, returning their ids in order.
    pub fn stop(&mut self) -> Vec<u64> {
        self.queue.drain(..).map(|item| item.id).collect()
    }

    /// The id of the item playing now, if any.
    pub fn current(&self) -> Option<u64> {
        self.queue.front().map(|item| item.id)
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Fills `out` with the next 20 ms. The last frame of a prompt is padded with silence rather
    /// than run into the next prompt, so every prompt starts on a frame boundary; at most one item
    /// finishes per frame (an item with no samples at all takes a silent frame of its own).
    pub fn next_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> FrameInfo {
        out.fill(0);
        let Some(item) = self.queue.front_mut() else {
            return FrameInfo::default();
        };
        let mut filled = 0;
        while filled < FRAME_SAMPLES {
            let Some(prompt) = item.prompts.get(item.prompt) else {
                break;
            };
            let rest = prompt.get(item.pos..).unwrap_or(&[]);
            let n = rest.len().min(FRAME_SAMPLES - filled);
            if let (Some(dst), Some(src)) = (out.get_mut(filled..filled + n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            filled += n;
            item.pos += n;
            if item.pos >= prompt.len() {
                item.prompt += 1;
                item.pos = 0;
                // Every prompt starts on a frame boundary (at most 20 ms of silence between two),
                // so a prompt's frames are the same whatever played before it.
                if n > 0 {
                    break;
                }
            }
        }
        let mut info = FrameInfo {
            audio: filled > 0,
            finished: None,
        };
        if item.prompt >= item.prompts.len() {
            info.finished = Some(item.id);
            self.queue.pop_front();
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(start: i16, len: usize) -> Samples {
        (0..len)
            .map(|i| start + i as i16)
            .collect::<Vec<_>>()
            .into()
    }

    fn frames(p: &mut Player, n: usize) -> Vec<([i16; FRAME_SAMPLES], FrameInfo)> {
        (0..n)
            .map(|_| {
                let mut f = [7; FRAME_SAMPLES];
                let info = p.next_frame(&mut f);
                (f, info)
            })
            .collect()
    }

    #[test]
    fn prompts_of_one_item_each_start_on_a_frame_boundary_and_the_end_is_padded() {
        let mut p = Player::new();
        p.play(9, vec![prompt(1, 100), prompt(1000, 100)]);
        let out = frames(&mut p, 3);
        // Frame 1: all of the first prompt, then silence: the next prompt waits for its own frame
        // so its frames are identical wherever it is played.
        assert_eq!(out[0].0[99], 100);
        assert!(out[0].0[100..].iter().all(|&s| s == 0));
        assert_eq!(
            out[0].1,
            FrameInfo {
                audio: true,
                finished: None
            }
        );
        // Frame 2: the second prompt from its first sample, then silence; the item is done.
        assert_eq!(out[1].0[0], 1000);
        assert_eq!(out[1].0[99], 1099);
        assert!(out[1].0[100..].iter().all(|&s| s == 0));
        assert_eq!(
            out[1].1,
            FrameInfo {
                audio: true,
                finished: Some(9)
            }
        );
        assert_eq!(out[2].1, FrameInfo::default());
        assert!(out[2].0.iter().all(|&s| s == 0), "idle is silence");
        assert!(p.is_idle());
    }

    #[test]
    fn items_play_in_order_each_from_a_frame_boundary() {
        let mut p = Player::new();
        p.play(1, vec![prompt(1, 160)]);
        p.play(2, vec![prompt(500, 10)]);
        assert_eq!(p.current(), Some(1));
        let out = frames(&mut p, 2);
        assert_eq!(
            out[0].1.finished,
            Some(1),
            "an exact frame ends the item in that frame"
        );
        assert_eq!(out[1].0[0], 500);
        assert_eq!(out[1].1.finished, Some(2));
    }

    #[test]
    fn empty_items_still_finish() {
        let mut p = Player::new();
        p.play(1, vec![]);
        p.play(2, vec![prompt(0, 0), prompt(5, 3)]);
        let out = frames(&mut p, 2);
        assert_eq!(
            out[0].1,
            FrameInfo {
                audio: false,
                finished: Some(1)
            }
        );
        assert_eq!(
            out[1].1,
            FrameInfo {
                audio: true,
                finished: Some(2)
            }
        );
        assert_eq!(out[1].0[..4], [5, 6, 7, 0]);
    }

    #[test]
    fn stop_drops_everything_and_names_it() {
        let mut p = Player::new();
        p.play(1, vec![prompt(1, 1000)]);
        p.play(2, vec![prompt(1, 1000)]);
        frames(&mut p, 1);
        assert_eq!(p.stop(), vec![1, 2]);
        assert!(p.is_idle());
        let out = frames(&mut p, 1);
        assert_eq!(out[0].1, FrameInfo::default());
        assert!(p.stop().is_empty());
    }
}
