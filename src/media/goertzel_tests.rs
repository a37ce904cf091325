use super::*;
use crate::media::g711::Law;
use crate::media::testutil::{
    g711_round_trip, prompt_files, synthetic_music, synthetic_speech, white_noise, Rng,
};

const KEYPAD: &str = "123A456B789C*0#D";
/// -20 dBFS per tone.
const LEVEL: i16 = 3277;

fn silence(ms: u32) -> Vec<i16> {
    vec![0; (ms * 8) as usize]
}

/// Feeds `pcm` in irregular chunks, as packets of varying size would arrive.
fn detect(pcm: &[i16], seed: u64) -> Vec<char> {
    let mut det = InbandDetector::new();
    let mut rng = Rng::new(seed);
    let mut digits = Vec::new();
    let mut rest = pcm;
    while !rest.is_empty() {
        let n = (1 + rng.below(400)).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        digits.extend(det.push(chunk));
        rest = tail;
    }
    digits
}

fn dial(keys: &str, tone_ms: u32, gap_ms: u32, lead_in_ms: u32) -> Vec<i16> {
    let mut pcm = silence(lead_in_ms);
    for k in keys.chars() {
        pcm.extend(tone(k, tone_ms, LEVEL));
        pcm.extend(silence(gap_ms));
    }
    pcm
}

#[test]
fn all_sixteen_keys_survive_g711_at_minus_20_dbfs_with_50ms_tones_and_gaps() {
    for law in [Law::Mu, Law::A] {
        // Different lead-ins put the tone edges at every offset within a 10 ms hop.
        for lead_in in [0, 3, 7, 11, 14] {
            let pcm = g711_round_trip(law, &dial(KEYPAD, 50, 50, lead_in));
            let got: String = detect(&pcm, u64::from(lead_in)).into_iter().collect();
            assert_eq!(got, KEYPAD, "{law:?}, lead-in {lead_in} ms");
        }
    }
}

#[test]
fn repeated_key_with_gaps_counts_every_press() {
    let pcm = g711_round_trip(Law::Mu, &dial("5555", 50, 50, 5));
    assert_eq!(detect(&pcm, 1), vec!['5'; 4]);
}

#[test]
fn a_held_key_is_one_digit() {
    let mut pcm = tone('9', 2000, LEVEL);
    pcm.extend(silence(100));
    assert_eq!(detect(&pcm, 2), vec!['9']);
}

#[test]
fn a_key_change_without_gap_reports_both() {
    let mut pcm = tone('1', 60, LEVEL);
    pcm.extend(tone('2', 60, LEVEL));
    assert_eq!(detect(&pcm, 3), vec!['1', '2']);
}

#[test]
fn a_40ms_tone_is_enough_and_a_20ms_blip_is_not() {
    for offset in 0..10 {
        let mut pcm = silence(offset);
        pcm.extend(tone('#', 40, LEVEL));
        pcm.extend(silence(60));
        assert_eq!(
            detect(&pcm, 4),
            vec!['#'],
            "40 ms tone at offset {offset} ms"
        );
        let mut blip = silence(offset);
        blip.extend(tone('#', 20, LEVEL));
        blip.extend(silence(60));
        assert!(
            detect(&blip, 5).is_empty(),
            "20 ms blip at offset {offset} ms"
        );
    }
}

/// A tone whose high group is `db` louder (positive) or quieter (negative) than its low group.
fn twisted(db: f32) -> Vec<i16> {
    let high = 10f32.powf(db / 20.0);
    (0..800)
        .map(|i| {
            let t = i as f32 / 8000.0 * 2.0 * std::f32::consts::PI;
            (2000.0 * ((770.0 * t).sin() + high * (1336.0 * t).sin())) as i16
        })
        .collect()
}

#[test]
fn twist_beyond_q24_limits_is_rejected() {
    assert_eq!(detect(&twisted(0.0), 6), vec!['5']);
    assert_eq!(
        detect(&twisted(3.0), 6),
        vec!['5'],
        "3 dB reverse twist is allowed"
    );
    assert_eq!(
        detect(&twisted(-7.0), 6),
        vec!['5'],
        "7 dB normal twist is allowed"
    );
    assert!(
        detect(&twisted(6.0), 6).is_empty(),
        "6 dB reverse twist is too much"
    );
    assert!(
        detect(&twisted(-11.0), 6).is_empty(),
        "11 dB normal twist is too much"
    );
}

/// Key '6' (770 + 1477 Hz) with both frequencies scaled by `factor`.
fn detuned(factor: f32) -> Vec<i16> {
    (0..480)
        .map(|i| {
            let t = i as f32 / 8000.0 * 2.0 * std::f32::consts::PI * factor;
            (f32::from(LEVEL) * ((770.0 * t).sin() + (1477.0 * t).sin())) as i16
        })
        .collect()
}

#[test]
fn frequency_tolerance_follows_q24() {
    for factor in [0.985, 0.99, 1.0, 1.01, 1.015] {
        assert_eq!(detect(&detuned(factor), 10), vec!['6'], "off by {factor}");
    }
    for factor in [0.965, 1.035] {
        assert!(detect(&detuned(factor), 10).is_empty(), "off by {factor}");
    }
}

#[test]
fn a_digit_under_moderate_noise_is_still_heard() {
    let tones = dial("0", 80, 40, 20);
    let noise = white_noise(tones.len(), 600.0, 7);
    let mixed: Vec<i16> = tones
        .iter()
        .zip(&noise)
        .map(|(a, b)| a.saturating_add(*b))
        .collect();
    assert_eq!(detect(&g711_round_trip(Law::A, &mixed), 8), vec!['0']);
}

#[test]
fn speech_music_and_noise_never_dial() {
    for seed in 0..6 {
        for peak in [4000.0, 16000.0, 30000.0] {
            let speech = g711_round_trip(Law::Mu, &synthetic_speech(20.0, peak, seed));
            assert!(
                detect(&speech, seed).is_empty(),
                "speech seed {seed} peak {peak}"
            );
        }
        let music = g711_round_trip(Law::A, &synthetic_music(20.0, 20000.0, seed));
        assert!(detect(&music, seed).is_empty(), "music seed {seed}");
        let noise = white_noise(8000 * 10, 10000.0 + 3000.0 * seed as f32, seed);
        assert!(detect(&noise, seed).is_empty(), "noise seed {seed}");
    }
}

#[test]
fn the_shipped_prompts_never_dial() {
    // sounds/ is the project's espeak-ng prompts and music on hold; they play while callers press
    // keys, and an echo of them must not be taken for a digit.
    for (path, pcm) in prompt_files() {
        for law in [Law::Mu, Law::A] {
            let digits = detect(&g711_round_trip(law, &pcm), 9);
            assert!(digits.is_empty(), "{} dialled {digits:?}", path.display());
        }
    }
}

#[test]
fn tone_has_the_requested_length_and_level() {
    let t = tone('D', 50, LEVEL);
    assert_eq!(t.len(), 400);
    let peak = t.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 6000 && peak <= 2 * LEVEL as u16, "peak {peak}");
    assert!(tone('x', 50, LEVEL).is_empty());
    assert_eq!(tone('d', 50, LEVEL), t);
}

#[test]
fn the_loudness_floor_is_where_it_was_with_the_quiet_window_shortcut() {
    // -38 dBFS per tone (peak 400) is the quietest a key may be; the shortcut that skips the
    // filters for quiet windows must not move that line, and must not let quieter ones through.
    for (amplitude, heard) in [(420, true), (480, true), (380, false), (200, false)] {
        let mut pcm = silence(60);
        for k in "159#".chars() {
            pcm.extend(tone(k, 60, amplitude));
            pcm.extend(silence(60));
        }
        let got: String = detect(&pcm, 11).into_iter().collect();
        assert_eq!(
            got,
            if heard { "159#" } else { "" },
            "tones of peak {amplitude}"
        );
    }
}
