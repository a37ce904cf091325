//! In-band DTMF: digits that a carrier sends as audio instead of RFC 4733 events.
//!
//! Goertzel filters measure the eight DTMF frequencies over 20 ms windows taken every 10 ms. A
//! window votes for a key when one row and one column tone stand out: both loud enough, each well
//! above the other tones of its group, their levels within the ITU-T Q.24 twist limits, and
//! together holding most of the window's energy (speech and music spread theirs over many
//! harmonics, which is what keeps them from dialling) and steady across the window. Two
//! consecutive votes for the same key make a digit; since windows overlap by half, any tone of
//! 40 ms or more fills two windows, while a 20 ms blip fills at most one.
//! The same key is reported again only after two windows without it.

use super::{FRAME_SAMPLES, SAMPLE_RATE};

const WINDOW: usize = FRAME_SAMPLES;
const HOP: usize = WINDOW / 2;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// A 20 ms window is selective to about ±1%; Q.24 wants tones off by up to 1.5% accepted, so
/// each frequency is measured at three points and the best one counts.
const PROBES: [f32; 3] = [0.985, 1.0, 1.015];
/// Quietest tone accepted, as a peak amplitude: about -38 dBFS, below any real signalling level.
const MIN_AMPLITUDE: f32 = 400.0;
/// The high group may be up to 4 dB louder than the low group (reverse twist)...
const MAX_REVERSE_TWIST: f32 = 2.512; // 10^(4/10)
/// ...or up to 8 dB quieter (normal twist).
const MAX_NORMAL_TWIST: f32 = 6.310; // 10^(8/10)
/// Each winning tone must beat the others of its group by 8 dB.
const GROUP_MARGIN: f32 = 6.310;
/// The two tones must hold this share of the window's energy. Real DTMF within tolerance holds
/// over 0.87 even after G.711; the most tonal speech and music windows measured (the shipped
/// espeak-ng prompts, synthetic vowels and chords) peak below 0.7.
const MIN_CONCENTRATION: f32 = 0.78;
/// The quieter half of a window must hold this share of the louder half's energy: the tone
/// covers at least ~17 of the window's 20 ms.
const MIN_HALF_RATIO: f32 = 0.65;
/// Votes in a row that make a digit, and misses in a row that end it.
const ON_WINDOWS: u32 = 2;
const OFF_WINDOWS: u32 = 2;

/// Detects DTMF digits in a stream of 8 kHz samples, pushed in chunks of any size.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    pending: Vec<i16>,
    /// Goertzel coefficients: for each DTMF frequency, probes at -1.5%, 0 and +1.5%.
    coeffs: [[f32; PROBES.len()]; 8],
    candidate: Option<char>,
    votes: u32,
    active: Option<char>,
    misses: u32,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    pub fn new() -> Self {
        let mut coeffs = [[0.0; PROBES.len()]; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            for (probe, k) in c.iter_mut().zip(PROBES) {
                *probe = 2.0 * (2.0 * std::f32::consts::PI * f * k / SAMPLE_RATE as f32).cos();
            }
        }
        InbandDetector {
            pending: Vec::with_capacity(WINDOW + FRAME_SAMPLES),
            coeffs,
            candidate: None,
            votes: 0,
            active: None,
            misses: 0,
        }
    }

    /// Feeds samples; returns the digits that became certain within them, in order.
    pub fn push(&mut self, pcm: &[i16]) -> Vec<char> {
        let mut digits = Vec::new();
        for chunk in pcm.chunks(HOP) {
            self.pending.extend_from_slice(chunk);
            while let Some(window) = self.pending.get(..WINDOW) {
                let vote = self.classify(window);
                digits.extend(self.step(vote));
                self.pending.drain(..HOP);
            }
        }
        digits
    }

    /// Forgets any tone in progress, e.g. when the audio source changes.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.candidate = None;
        self.votes = 0;
        self.active = None;
        self.misses = 0;
    }

    fn step(&mut self, vote: Option<char>) -> Option<char> {
        if vote.is_some() && vote == self.candidate {
            self.votes = self.votes.saturating_add(1);
        } else {
            self.candidate = vote;
            self.votes = u32::from(vote.is_some());
        }
        if vote.is_some() && vote == self.active {
            self.misses = 0;
            return None;
        }
        self.misses = self.misses.saturating_add(1);
        if self.misses >= OFF_WINDOWS {
            self.active = None;
        }
        if self.votes >= ON_WINDOWS {
            self.active = vote;
            self.misses = 0;
            return vote;
        }
        None
    }

    fn classify(&self, window: &[i16]) -> Option<char> {
        let (first, second) = window.split_at(window.len() / 2);
        let (e1, e2) = (energy(first), energy(second));
        let total = e1 + e2;
        // A window the tone only partly covers has a quiet half; ignoring those is what rejects a
        // 20 ms blip, which would otherwise show in two overlapping windows.
        let steady = e1.min(e2) >= MIN_HALF_RATIO * e1.max(e2);
        let min_energy = MIN_AMPLITUDE * MIN_AMPLITUDE * WINDOW as f32 / 2.0;
        // The 24 filters below are most of an IVR call's CPU; most windows (a caller listening,
        // the line's hiss) are decided without them. Cauchy–Schwarz bounds any filter's output
        // by twice the window's energy, so a window under half the loudness floor cannot hold a
        // tone that passes `loud` (the margin covers rounding): the answer is the same, sooner.
        if !steady || total * 2.0 * 1.001 < min_energy {
            return None;
        }
        let mut power = [0.0f32; 8];
        for (p, probes) in power.iter_mut().zip(self.coeffs.iter()) {
            *p = probes
                .iter()
                .map(|&c| goertzel_energy(window, c))
                .fold(0.0, f32::max);
        }
        let (rows, cols) = power.split_at(4);
        let (r, row) = strongest(rows)?;
        let (c, col) = strongest(cols)?;
        let loud = row >= min_energy && col >= min_energy;
        let twist_ok = col <= row * MAX_REVERSE_TWIST && row <= col * MAX_NORMAL_TWIST;
        let stands_out = |group: &[f32], best: usize, level: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &p)| i == best || p * GROUP_MARGIN <= level)
        };
        let concentrated = row + col >= MIN_CONCENTRATION * total;
        if loud && twist_ok && concentrated && stands_out(rows, r, row) && stands_out(cols, c, col)
        {
            KEYS.get(r).and_then(|k| k.get(c)).copied()
        } else {
            None
        }
    }
}

/// Energy of the window's component at the filter's frequency, scaled so that a sine of amplitude
/// A gives A²·N/2 — the same units as the window's total energy Σx².
fn goertzel_energy(window: &[i16], coeff: f32) -> f32 {
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in window {
        let s0 = f32::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * mag2 / window.len() as f32
}

fn energy(x: &[i16]) -> f32 {
    x.iter().map(|&s| f32::from(s) * f32::from(s)).sum()
}

fn strongest(group: &[f32]) -> Option<(usize, f32)> {
    group
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// A DTMF tone: the key's row and column sines, each of peak `amplitude` (so -20 dBFS per tone is
/// 3277), for `ms` milliseconds at 8 kHz. An unknown key gives no samples.
pub fn tone(digit: char, ms: u32, amplitude: i16) -> Vec<i16> {
    let d = digit.to_ascii_uppercase();
    let Some((r, c)) = KEYS
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&k| k == d).map(|c| (r, c)))
    else {
        return Vec::new();
    };
    let (Some(&fr), Some(&fc)) = (ROWS.get(r), COLS.get(c)) else {
        return Vec::new();
    };
    let n = u64::from(ms) * u64::from(SAMPLE_RATE) / 1000;
    let w = 2.0 * std::f64::consts::PI / f64::from(SAMPLE_RATE);
    let a = f64::from(amplitude);
    (0..n)
        .map(|i| {
            let t = i as f64 * w;
            let v = a * ((f64::from(fr) * t).sin() + (f64::from(fc) * t).sin());
            v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

#[cfg(test)]
#[path = "goertzel_tests.rs"]
mod tests;
