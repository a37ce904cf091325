//! Signals for tests: deterministic noise, synthetic speech and music, G.711 round trips.

use super::g711::{self, Law};
use super::SAMPLE_RATE;
use std::f32::consts::PI;

/// xorshift64*: deterministic, so a failing test fails the same way every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

fn to_i16(v: f32) -> i16 {
    v.round().clamp(-32768.0, 32767.0) as i16
}

pub fn white_noise(samples: usize, amplitude: f32, seed: u64) -> Vec<i16> {
    let mut rng = Rng::new(seed);
    (0..samples)
        .map(|_| to_i16(rng.range(-amplitude, amplitude)))
        .collect()
}

/// Two-pole resonator, the building block of a formant synthesiser.
struct Resonator {
    a1: f32,
    a2: f32,
    gain: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn new() -> Self {
        Resonator {
            a1: 0.0,
            a2: 0.0,
            gain: 0.0,
            y1: 0.0,
            y2: 0.0,
        }
    }
    fn tune(&mut self, freq: f32, bandwidth: f32) {
        let r = (-PI * bandwidth / SAMPLE_RATE as f32).exp();
        self.a1 = 2.0 * r * (2.0 * PI * freq / SAMPLE_RATE as f32).cos();
        self.a2 = -r * r;
        self.gain = 1.0 - r;
    }
    fn run(&mut self, x: f32) -> f32 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Formant-synthesised babble, like espeak-ng's output: a glottal pulse train whose pitch glides
/// between 85 and 260 Hz through three formant filters moving between vowels, with fricative noise
/// bursts and pauses between syllables. Peaks near `peak`.
pub fn synthetic_speech(seconds: f32, peak: f32, seed: u64) -> Vec<i16> {
    const VOWELS: [[f32; 3]; 6] = [
        [730.0, 1090.0, 2440.0],
        [270.0, 2290.0, 3010.0],
        [300.0, 870.0, 2240.0],
        [530.0, 1840.0, 2480.0],
        [570.0, 840.0, 2410.0],
        [660.0, 1720.0, 2410.0],
    ];
    let mut rng = Rng::new(seed);
    let n = (seconds * SAMPLE_RATE as f32) as usize;
    let mut out = Vec::with_capacity(n);
    let mut formants = [Resonator::new(), Resonator::new(), Resonator::new()];
    let mut phase = 0.0f32;
    let mut raw = Vec::with_capacity(n);
    while raw.len() < n {
        let syllable = (rng.range(0.12, 0.3) * SAMPLE_RATE as f32) as usize;
        let from = VOWELS[rng.below(VOWELS.len())];
        let to = VOWELS[rng.below(VOWELS.len())];
        let (f0_from, f0_to) = (rng.range(85.0, 260.0), rng.range(85.0, 260.0));
        let fricative = rng.unit() < 0.3;
        for i in 0..syllable {
            let t = i as f32 / syllable as f32;
            for (k, res) in formants.iter_mut().enumerate() {
                res.tune(from[k] + (to[k] - from[k]) * t, 60.0 + 40.0 * k as f32);
            }
            let f0 = f0_from + (f0_to - f0_from) * t;
            phase += f0 / SAMPLE_RATE as f32;
            // Sawtooth: every harmonic present, falling 6 dB per octave like a glottal source.
            let source = if fricative && t < 0.3 {
                rng.range(-1.0, 1.0) * 0.5
            } else {
                2.0 * (phase - phase.floor()) - 1.0
            };
            let envelope = (PI * t).sin();
            let y: f32 = formants.iter_mut().map(|r| r.run(source)).sum();
            raw.push(y * envelope);
        }
        let pause = (rng.range(0.0, 0.15) * SAMPLE_RATE as f32) as usize;
        raw.extend(std::iter::repeat_n(0.0, pause));
    }
    raw.truncate(n);
    let max = raw.iter().fold(1e-9f32, |m, v| m.max(v.abs()));
    out.extend(raw.iter().map(|v| to_i16(v / max * peak)));
    out
}

/// Chords of notes with a few harmonics each, like music on hold.
pub fn synthetic_music(seconds: f32, peak: f32, seed: u64) -> Vec<i16> {
    let mut rng = Rng::new(seed);
    let n = (seconds * SAMPLE_RATE as f32) as usize;
    let mut raw = Vec::with_capacity(n);
    while raw.len() < n {
        let root = rng.below(24) as f32 + 48.0;
        let notes: Vec<f32> = [0.0, 4.0, 7.0, 12.0]
            .iter()
            .map(|step| 440.0 * 2f32.powf((root + step - 69.0) / 12.0))
            .collect();
        let len = (rng.range(0.2, 0.6) * SAMPLE_RATE as f32) as usize;
        for i in 0..len {
            let t = i as f32 / SAMPLE_RATE as f32;
            let decay = (-3.0 * t).exp();
            let v: f32 = notes
                .iter()
                .flat_map(|f| (1..=4).map(move |h| (f, h as f32)))
                .map(|(f, h)| (2.0 * PI * f * h * t).sin() / h)
                .sum();
            raw.push(v * decay);
        }
    }
    raw.truncate(n);
    let max = raw.iter().fold(1e-9f32, |m, v| m.max(v.abs()));
    raw.iter().map(|v| to_i16(v / max * peak)).collect()
}

/// What the far end hears after the audio crossed a G.711 link.
pub fn g711_round_trip(law: Law, pcm: &[i16]) -> Vec<i16> {
    pcm.iter()
        .map(|&s| g711::decode(law, g711::encode(law, s)))
        .collect()
}

/// Every WAV under the project's `sounds/` (or `$SWITCHBOARD_TEST_SOUNDS`), decoded to 8 kHz.
pub fn prompt_files() -> Vec<(std::path::PathBuf, Vec<i16>)> {
    let root = std::env::var_os("SWITCHBOARD_TEST_SOUNDS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds"));
    let mut stack = vec![root];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "wav") {
                if let Ok(file) = std::fs::File::open(&path) {
                    if let Ok((pcm, _)) = super::wav::decode_wav(std::io::BufReader::new(file)) {
                        found.push((path, pcm));
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}
