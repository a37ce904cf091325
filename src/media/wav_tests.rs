use super::*;
use crate::media::testutil::Rng;

fn hound_file(rate: u32, channels: u16, bits: u16, float: bool, frames: &[Vec<f32>]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut cursor = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for frame in frames {
        for &v in frame {
            // `v` is in the i16 range; scale to the file's own.
            match (float, bits) {
                (true, _) => w.write_sample(v / 32768.0).unwrap(),
                (false, 8) => w.write_sample((v / 256.0).round() as i8).unwrap(),
                (false, 16) => w.write_sample(v.round() as i16).unwrap(),
                (false, 24) => w.write_sample((v * 256.0).round() as i32).unwrap(),
                (false, _) => w.write_sample((v * 65536.0).round() as i32).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
    cursor.into_inner()
}

fn sine(freq: f32, rate: u32, seconds: f32, amplitude: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n)
        .map(|i| amplitude * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
        .collect()
}

fn rms(x: &[i16]) -> f32 {
    (x.iter().map(|&s| f32::from(s).powi(2)).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Amplitude of the `freq` component, by correlation with a sine and a cosine.
fn amplitude_at(x: &[i16], freq: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq / 8000.0;
    let (mut s, mut c) = (0.0f32, 0.0f32);
    for (i, &v) in x.iter().enumerate() {
        s += f32::from(v) * (w * i as f32).sin();
        c += f32::from(v) * (w * i as f32).cos();
    }
    2.0 * (s * s + c * c).sqrt() / x.len() as f32
}

#[test]
fn native_prompt_comes_back_unchanged() {
    let pcm: Vec<i16> = (0..8000)
        .map(|i| ((i * 97) % 20000 - 10000) as i16)
        .collect();
    let bytes = encode_wav(&pcm, 1).unwrap();
    let (back, info) = decode_wav(&bytes[..]).unwrap();
    assert_eq!(back, pcm);
    assert!(info.is_native());
    assert_eq!(info.to_string(), "8000 Hz mono 16-bit PCM");
}

#[test]
fn stereo_recording_is_interleaved_and_downmixes_to_the_average() {
    let pcm = [1000, 3000, -200, 200, 32767, 32767];
    let bytes = encode_wav(&pcm, 2).unwrap();
    let raw = hound::WavReader::new(&bytes[..]).unwrap();
    assert_eq!(raw.spec().channels, 2);
    assert_eq!(raw.duration(), 3);
    let (mono, info) = decode_wav(&bytes[..]).unwrap();
    assert_eq!(mono, vec![2000, 0, 32767]);
    assert_eq!(info.channels, 2);
    assert!(!info.is_native());
    assert!(encode_wav(&pcm[..5], 2).is_err(), "half a frame");
    assert!(encode_wav(&pcm, 3).is_err());
}

#[test]
fn every_sample_format_converts_to_the_same_audio() {
    let tone = sine(440.0, 8000, 0.25, 12000.0);
    let frames: Vec<Vec<f32>> = tone.iter().map(|&v| vec![v]).collect();
    for (bits, float, tolerance) in [
        (8, false, 130),
        (16, false, 1),
        (24, false, 1),
        (32, false, 1),
        (32, true, 1),
    ] {
        let (pcm, info) = decode_wav(&hound_file(8000, 1, bits, float, &frames)[..]).unwrap();
        assert_eq!((info.bits, info.float), (bits, float));
        assert_eq!(pcm.len(), tone.len());
        for (a, b) in pcm.iter().zip(&tone) {
            assert!(
                (f32::from(*a) - b).abs() <= tolerance as f32,
                "{bits}-bit float={float}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn cd_quality_stereo_is_resampled_without_aliasing() {
    // Left: 1 kHz speech-band tone. Right: 6 kHz, which a naive decimator would fold to 2 kHz.
    let left = sine(1000.0, 44_100, 1.0, 10000.0);
    let right = sine(6000.0, 44_100, 1.0, 10000.0);
    let frames: Vec<Vec<f32>> = left.iter().zip(&right).map(|(l, r)| vec![*l, *r]).collect();
    let bytes = hound_file(44_100, 2, 16, false, &frames);
    let (pcm, info) = decode_wav(&bytes[..]).unwrap();
    assert_eq!(info.to_string(), "44100 Hz stereo 16-bit PCM");
    assert_eq!(pcm.len(), 8000);
    let inner = &pcm[400..7600];
    // The downmix halves each tone; the 1 kHz half must survive at 5000, the alias must not.
    let kept = amplitude_at(inner, 1000.0);
    assert!((kept - 5000.0).abs() < 150.0, "1 kHz amplitude {kept}");
    let alias = amplitude_at(inner, 2000.0);
    assert!(alias < 50.0, "6 kHz folded to 2 kHz at amplitude {alias}");
    assert!(
        (rms(inner) - 5000.0 / 2f32.sqrt()).abs() < 150.0,
        "nothing else leaked in"
    );
}

#[test]
fn common_rates_land_on_8khz_with_the_right_length_and_pitch() {
    for rate in [6000, 11_025, 16_000, 22_050, 32_000, 48_000, 44_101] {
        let frames: Vec<Vec<f32>> = sine(700.0, rate, 0.5, 8000.0)
            .into_iter()
            .map(|v| vec![v])
            .collect();
        let (pcm, info) = decode_wav(&hound_file(rate, 1, 16, false, &frames)[..]).unwrap();
        assert_eq!(info.sample_rate, rate);
        assert!(
            (pcm.len() as i64 - 4000).abs() <= 1,
            "{rate} Hz gave {} samples",
            pcm.len()
        );
        let a = amplitude_at(&pcm[200..3800], 700.0);
        assert!(
            (a - 8000.0).abs() < 250.0,
            "{rate} Hz: 700 Hz amplitude {a}"
        );
    }
}

#[test]
fn bad_files_are_errors_not_panics() {
    assert!(matches!(
        decode_wav(&b"RIFF....WAVEjunk"[..]),
        Err(WavError::Read(_))
    ));
    assert!(matches!(decode_wav(&[][..]), Err(WavError::Read(_))));
    // A header that claims 700 s of 8 kHz audio is refused before anything is read.
    let mut long = encode_wav(&[0; 8], 1).unwrap();
    let data_len = 8000u32 * 2 * 700;
    let at = long.windows(4).position(|w| w == b"data").unwrap() + 4;
    long[at..at + 4].copy_from_slice(&data_len.to_le_bytes());
    assert!(matches!(
        decode_wav(&long[..]),
        Err(WavError::TooLong { seconds: 700 })
    ));
    // Five minutes at 192 kHz is within the time limit but too many samples to hold.
    let mut big = hound_file(192_000, 1, 16, false, &[vec![0.0]]);
    let data_len = 192_000u32 * 2 * 300;
    let at = big.windows(4).position(|w| w == b"data").unwrap() + 4;
    big[at..at + 4].copy_from_slice(&data_len.to_le_bytes());
    let r = decode_wav(&big[..]);
    assert!(
        matches!(r, Err(WavError::TooLarge { frames: 57_600_000 })),
        "{r:?}"
    );
    // A truncated data chunk is an error, not a silently shortened prompt.
    let short = encode_wav(&[5; 100], 1).unwrap();
    assert!(matches!(
        decode_wav(&short[..short.len() - 10]),
        Err(WavError::Read(_))
    ));
    // A rate we will not resample from.
    let frames = vec![vec![0.0f32]; 10];
    let slow = hound_file(1000, 1, 16, false, &frames);
    assert!(matches!(
        decode_wav(&slow[..]),
        Err(WavError::Unsupported(_))
    ));
}

#[test]
fn corrupted_headers_never_panic() {
    let frames: Vec<Vec<f32>> = (0..64)
        .map(|i| vec![i as f32 * 100.0, -(i as f32)])
        .collect();
    let good = hound_file(16_000, 2, 24, false, &frames);
    let mut rng = Rng::new(42);
    for _ in 0..3000 {
        let mut bad = good.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(60);
            bad[at] = rng.next_u64() as u8;
        }
        if let Ok((pcm, info)) = decode_wav(&bad[..]) {
            // Whatever the header now says, the output is bounded by what the file holds.
            assert!(pcm.len() <= good.len() * 8, "{info}: {} samples", pcm.len());
        }
    }
}
