//! WAV prompts in, WAV recordings out.
//!
//! Prompts come from users, so [`decode_wav`] accepts what audio tools commonly write — 8/16/24/32
//! bit integer or 32-bit float, any channel count up to 8, any rate — and converts it to what the
//! media path plays: 8 kHz mono 16-bit. [`WavInfo`] keeps the original format so that
//! `switchboard check` can say what was converted.

use super::SAMPLE_RATE;
use std::fmt;
use std::io::{Cursor, Read};
use thiserror::Error;

/// Longest file accepted, so that one stray hour-long WAV cannot eat the server's memory.
pub const MAX_SECONDS: u32 = 600;
/// Most sample frames accepted whatever the rate: ten minutes at 48 kHz, about 115 MB while
/// converting, so a 384 kHz file cannot get around [`MAX_SECONDS`]' intent.
pub const MAX_FRAMES: u64 = MAX_SECONDS as u64 * 48_000;
const MAX_CHANNELS: u16 = 8;
const MIN_RATE: u32 = 4000;
const MAX_RATE: u32 = 384_000;

#[derive(Debug, Error)]
pub enum WavError {
    #[error("not a readable WAV file: {0}")]
    Read(hound::Error),
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("WAV is {seconds} s long, the limit is {MAX_SECONDS} s")]
    TooLong { seconds: u64 },
    #[error("WAV has {frames} samples per channel, the limit is {MAX_FRAMES}")]
    TooLarge { frames: u64 },
    #[error("cannot write WAV: {0}")]
    Write(String),
}

/// The format a WAV file had before conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits: u16,
    pub float: bool,
}

impl WavInfo {
    /// True if the file was already 8 kHz mono 16-bit PCM and nothing was converted.
    pub fn is_native(&self) -> bool {
        self.sample_rate == SAMPLE_RATE && self.channels == 1 && self.bits == 16 && !self.float
    }
}

impl fmt::Display for WavInfo {
    /// "44100 Hz stereo 24-bit PCM", for messages like "converted from ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channels = match self.channels {
            1 => "mono".to_string(),
            2 => "stereo".to_string(),
            n => format!("{n}-channel"),
        };
        let kind = if self.float { "float" } else { "PCM" };
        write!(
            f,
            "{} Hz {channels} {}-bit {kind}",
            self.sample_rate, self.bits
        )
    }
}

/// Reads a WAV file and returns it as 8 kHz mono 16-bit samples, with its original format.
///
/// Channels are averaged; other rates are resampled with a Blackman-windowed sinc filter cut off
/// at 90% of the lower Nyquist frequency, so 44.1 kHz music does not alias into the phone band.
pub fn decode_wav<R: Read>(r: R) -> Result<(Vec<i16>, WavInfo), WavError> {
    let mut reader = hound::WavReader::new(r).map_err(WavError::Read)?;
    let spec = reader.spec();
    let info = WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits: spec.bits_per_sample,
        float: spec.sample_format == hound::SampleFormat::Float,
    };
    if !(1..=MAX_CHANNELS).contains(&info.channels) {
        return Err(WavError::Unsupported(format!("{} channels", info.channels)));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&info.sample_rate) {
        return Err(WavError::Unsupported(format!("{} Hz", info.sample_rate)));
    }
    let frames = u64::from(reader.duration());
    if frames > u64::from(MAX_SECONDS) * u64::from(info.sample_rate) {
        return Err(WavError::TooLong {
            seconds: frames / u64::from(info.sample_rate),
        });
    }
    if frames > MAX_FRAMES {
        return Err(WavError::TooLarge { frames });
    }
    // Scale every format to the i16 range, in f32 so that mixing and filtering do not clip.
    let mono = if info.float {
        if info.bits != 32 {
            return Err(WavError::Unsupported(format!("{}-bit float", info.bits)));
        }
        downmix(
            reader.samples::<f32>().map(|s| s.map(|v| v * 32768.0)),
            info.channels,
        )?
    } else {
        let scale = match info.bits {
            8 => 256.0,
            16 => 1.0,
            24 => 1.0 / 256.0,
            32 => 1.0 / 65536.0,
            n => return Err(WavError::Unsupported(format!("{n}-bit integer"))),
        };
        downmix(
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)),
            info.channels,
        )?
    };
    let pcm = if info.sample_rate == SAMPLE_RATE {
        mono
    } else {
        resample(&mono, info.sample_rate, SAMPLE_RATE)
    };
    Ok((pcm.into_iter().map(to_i16).collect(), info))
}

fn downmix<I>(samples: I, channels: u16) -> Result<Vec<f32>, WavError>
where
    I: Iterator<Item = Result<f32, hound::Error>> + ExactSizeIterator,
{
    let n = usize::from(channels);
    let mut out = Vec::with_capacity(samples.len() / n);
    let (mut sum, mut count) = (0.0f32, 0usize);
    for s in samples {
        sum += s.map_err(WavError::Read)?;
        count += 1;
        if count == n {
            out.push(sum / n as f32);
            sum = 0.0;
            count = 0;
        }
    }
    Ok(out)
}

fn to_i16(v: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is what a corrupt float sample should become.
    v.round() as i16
}

/// Zero crossings of the sinc on each side: enough for ~70 dB stopband with a Blackman window.
const ZERO_CROSSINGS: f64 = 12.0;
/// Fraction of the lower Nyquist frequency that passes; the rest is the transition band.
const PASSBAND: f64 = 0.9;
/// Above this many distinct filter phases the position is rounded to the nearest of them.
const MAX_PHASES: u64 = 1024;

/// Windowed-sinc resampling between any two rates, with a precomputed polyphase table.
fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    let g = gcd(from, to).max(1);
    let (up, down) = (u64::from(to / g), u64::from(from / g));
    if x.is_empty() || up == 0 || down == 0 {
        return Vec::new();
    }
    // Cut-off in cycles per input sample, below both the input and the output Nyquist frequency.
    let cutoff = 0.5 * PASSBAND * f64::from(from.min(to)) / f64::from(from);
    let half = (ZERO_CROSSINGS / (2.0 * cutoff)).ceil() as usize;
    let taps = 2 * half;
    let phases = up.min(MAX_PHASES);
    let mut table = vec![0f32; phases as usize * taps];
    for (p, row) in table.chunks_mut(taps).enumerate() {
        let frac = p as f64 / phases as f64;
        // Tap j weighs input i - half + 1 + j for an output at position i + frac.
        let weights: Vec<f64> = (0..taps)
            .map(|j| kernel(frac + half as f64 - 1.0 - j as f64, cutoff, half as f64))
            .collect();
        let sum: f64 = weights.iter().sum();
        // Each phase sums to one, so a constant input stays constant whatever the ratio.
        for (w, v) in row.iter_mut().zip(&weights) {
            *w = (v / sum) as f32;
        }
    }
    let out_len = (x.len() as u64 * up).div_ceil(down);
    let mut out = Vec::with_capacity(out_len as usize);
    for n in 0..out_len {
        let pos = n * down;
        let mut i = (pos / up) as usize;
        let mut p = ((pos % up) * phases + up / 2) / up;
        if p == phases {
            p = 0;
            i += 1;
        }
        let row = table
            .get(p as usize * taps..(p as usize + 1) * taps)
            .unwrap_or(&[]);
        let first = i as isize + 1 - half as isize;
        let acc: f32 = row
            .iter()
            .enumerate()
            .filter_map(|(j, w)| {
                let k = usize::try_from(first + j as isize).ok()?;
                x.get(k).map(|s| s * w)
            })
            .sum();
        out.push(acc);
    }
    out
}

fn kernel(d: f64, cutoff: f64, half: f64) -> f64 {
    use std::f64::consts::PI;
    let x = d / half;
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let window = 0.42 + 0.5 * (PI * x).cos() + 0.08 * (2.0 * PI * x).cos();
    let arg = 2.0 * cutoff * d;
    let sinc = if arg.abs() < 1e-12 {
        1.0
    } else {
        (PI * arg).sin() / (PI * arg)
    };
    sinc * window
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Writes 8 kHz 16-bit PCM, `channels` (1 or 2) interleaved, as a complete WAV file.
pub fn encode_wav(pcm: &[i16], channels: u16) -> Result<Vec<u8>, WavError> {
    if !(1..=2).contains(&channels) {
        return Err(WavError::Write(format!(
            "{channels} channels, expected 1 or 2"
        )));
    }
    if pcm.len() % usize::from(channels) != 0 {
        return Err(WavError::Write("samples do not fill the last frame".into()));
    }
    let spec = hound::WavSpec {
        channels,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    let write = |cursor: &mut Cursor<Vec<u8>>| -> Result<(), hound::Error> {
        let mut w = hound::WavWriter::new(cursor, spec)?;
        for &s in pcm {
            w.write_sample(s)?;
        }
        w.finalize()
    };
    write(&mut cursor).map_err(|e| WavError::Write(e.to_string()))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
#[path = "wav_tests.rs"]
mod tests;
