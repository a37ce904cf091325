//! Which prompts a caller heard. The server sends each prompt G.711-encoded in 160-sample frames
//! that start at a frame boundary, so encoding the same WAV here gives the frames to look for.

use std::path::{Path, PathBuf};

use super::g711::Law;
use super::rtp::{RxPacket, FRAME};

/// How many consecutive frames must match before we say a prompt started: enough that two
/// different recordings can never be confused, few enough that a barged-in prompt still counts.
const FINGERPRINT_FRAMES: usize = 3;
/// A frame whose loudest sample is below this carries no speech worth fingerprinting. Quieter
/// frames (a breath, a click at the start of a prompt) are close enough to G.711 silence that
/// the one-step tolerance would match them against the silence the server sends between prompts.
const LOUD: i32 = 2000;

pub struct Prompt {
    pub name: String,
    pub path: PathBuf,
    pub pcm: Vec<i16>,
    /// Index of the first frame with real sound (prompts may start with a little silence).
    first_loud: usize,
    frames_mu: Vec<Vec<u8>>,
    frames_a: Vec<Vec<u8>>,
}

impl Prompt {
    pub fn load(name: &str, path: &Path) -> Prompt {
        let pcm = read_wav_8k_mono(path).unwrap_or_else(|e| panic!("prompt {name}: {e}"));
        let frames = |law: Law| -> Vec<Vec<u8>> {
            pcm.chunks(FRAME)
                .map(|c| {
                    let mut f = law.encode_all(c);
                    f.resize(FRAME, law.silence_byte());
                    f
                })
                .collect()
        };
        let first_loud = pcm
            .chunks(FRAME)
            .position(|c| c.iter().any(|&s| i32::from(s).abs() > LOUD))
            .unwrap_or_else(|| panic!("prompt {name} ({}) is silent", path.display()));
        Prompt {
            name: name.to_string(),
            path: path.to_path_buf(),
            first_loud,
            frames_mu: frames(Law::Mu),
            frames_a: frames(Law::A),
            pcm,
        }
    }

    pub fn total_frames(&self) -> usize {
        self.frames_mu.len()
    }

    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.pcm.len() as u64 / 8)
    }

    fn frames(&self, law: Law) -> &[Vec<u8>] {
        match law {
            Law::Mu => &self.frames_mu,
            Law::A => &self.frames_a,
        }
    }
}

pub fn read_wav_8k_mono(path: &Path) -> Result<Vec<i16>, String> {
    let reader = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = reader.spec();
    if spec.sample_rate != 8000 || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(format!(
            "{} is {} Hz, {} channel(s), {} bits; the tests expect the shipped 8 kHz mono 16-bit prompts",
            path.display(),
            spec.sample_rate,
            spec.channels,
            spec.bits_per_sample
        ));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One occurrence of a prompt in what the caller received.
#[derive(Clone, Debug)]
pub struct Heard {
    pub name: String,
    /// Index (in the received packets) of the first packet of the prompt.
    pub first_packet: usize,
    /// Index of the last packet that still carried this prompt's audio.
    pub last_packet: usize,
    /// Frames of the prompt the caller got, counting its silent head.
    pub frames: usize,
    pub total_frames: usize,
}

impl Heard {
    /// Played to its end, not cut short by barge-in or a hang-up.
    pub fn complete(&self) -> bool {
        self.frames >= self.total_frames
    }
}

/// A set of prompts, loaded once, to look for in a growing packet list.
pub struct PromptSet {
    pub prompts: Vec<Prompt>,
    rank_mu: [u8; 256],
    rank_a: [u8; 256],
}

impl PromptSet {
    pub fn load(list: &[(&str, PathBuf)]) -> PromptSet {
        PromptSet {
            prompts: list.iter().map(|(n, p)| Prompt::load(n, p)).collect(),
            rank_mu: Law::Mu.rank_table(),
            rank_a: Law::A.rank_table(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.iter().find(|p| p.name == name)
    }

    fn frame_matches(&self, law: Law, got: &[u8], want: &[u8]) -> bool {
        let rank = match law {
            Law::Mu => &self.rank_mu,
            Law::A => &self.rank_a,
        };
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(&g, &w)| rank[usize::from(g)].abs_diff(rank[usize::from(w)]) <= 1)
    }

    /// Every prompt occurrence, in the order the caller heard them.
    pub fn hear(&self, received: &[RxPacket]) -> Vec<Heard> {
        // Only audio frames count; the index maps back into `received`.
        let audio: Vec<(usize, Law, &[u8])> = received
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let law = Law::from_payload_type(p.pt)?;
                (p.payload.len() == FRAME).then_some((i, law, p.payload.as_slice()))
            })
            .collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < audio.len() {
            let mut best: Option<(usize, &Prompt)> = None;
            for prompt in &self.prompts {
                let n = self.run_length(&audio[i..], prompt, prompt.first_loud);
                let need = FINGERPRINT_FRAMES.min(prompt.total_frames() - prompt.first_loud);
                if n >= need && best.is_none_or(|(b, _)| n > b) {
                    best = Some((n, prompt));
                }
            }
            match best {
                Some((n, prompt)) => {
                    let first = i.saturating_sub(prompt.first_loud);
                    let last = i + n - 1;
                    out.push(Heard {
                        name: prompt.name.clone(),
                        first_packet: audio[first].0,
                        last_packet: audio[last].0,
                        frames: prompt.first_loud + n,
                        total_frames: prompt.total_frames(),
                    });
                    i += n;
                }
                None => i += 1,
            }
        }
        out
    }

    /// How many packets from the start of `audio` carry `prompt` from frame `from` on.
    fn run_length(&self, audio: &[(usize, Law, &[u8])], prompt: &Prompt, from: usize) -> usize {
        audio
            .iter()
            .zip(prompt.frames_mu.iter().skip(from).enumerate())
            .take_while(|((_, law, got), (j, _))| {
                self.frame_matches(*law, got, &prompt.frames(*law)[from + j])
            })
            .count()
    }

    pub fn names(&self, received: &[RxPacket]) -> Vec<String> {
        self.hear(received).into_iter().map(|h| h.name).collect()
    }
}

/// The prompts the caller heard, in order (a prompt played twice appears twice).
pub fn heard_prompts(received: &[RxPacket], prompts: &[(&str, PathBuf)]) -> Vec<String> {
    PromptSet::load(prompts).names(received)
}

/// Checks what a phone's jitter buffer relies on: every packet from the server follows the one
/// before with sequence +1 and timestamp +160, from the same source, across prompts and silence.
pub fn check_continuity(received: &[RxPacket]) -> Result<(), String> {
    for (i, w) in received.windows(2).enumerate() {
        let (a, b) = (&w[0], &w[1]);
        if Law::from_payload_type(a.pt).is_none() || Law::from_payload_type(b.pt).is_none() {
            continue;
        }
        if a.ssrc != b.ssrc {
            return Err(format!(
                "packet {}: SSRC changed from {:#x} to {:#x}",
                i + 1,
                a.ssrc,
                b.ssrc
            ));
        }
        if b.seq != a.seq.wrapping_add(1) {
            return Err(format!(
                "packet {}: sequence {} follows {} (lost or reordered)",
                i + 1,
                b.seq,
                a.seq
            ));
        }
        if b.ts != a.ts.wrapping_add(FRAME as u32) {
            return Err(format!(
                "packet {}: timestamp {} follows {} (expected +{FRAME})",
                i + 1,
                b.ts,
                a.ts
            ));
        }
    }
    Ok(())
}
