//! What a phone sends when a key is pressed: RFC 4733 telephone-event payloads and in-band dual tones.

/// RFC 4733 §3.2 event code for a key, `None` for anything that is not on a keypad.
pub fn event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        _ => None,
    }
}

/// One telephone-event packet body (RFC 4733 §2.3): event, E bit, volume, duration in samples.
pub fn event_payload(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let [hi, lo] = duration.to_be_bytes();
    let flags = if end { 0x80 } else { 0x00 } | (volume & 0x3F);
    [event, flags, hi, lo]
}

/// A parsed telephone-event body, for the self-tests and for anyone checking what was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

pub fn parse_event(payload: &[u8]) -> Option<Event> {
    match payload {
        [event, flags, hi, lo] => Some(Event {
            event: *event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([*hi, *lo]),
        }),
        _ => None,
    }
}

/// The packets a desk phone sends for one key press lasting `duration_ms`, one per 20 ms: growing
/// durations while the key is down, then the final duration three times with the E bit (the
/// redundancy RFC 4733 §2.5.1.4 recommends, which a receiver must fold into one digit).
pub fn key_press_payloads(digit: char, duration_ms: u32) -> Option<Vec<[u8; 4]>> {
    let event = event_code(digit)?;
    let total_samples = duration_ms.max(20) * 8;
    let total = u16::try_from(total_samples).unwrap_or(u16::MAX);
    let mut out = Vec::new();
    let mut d: u32 = 160;
    while d < total_samples {
        out.push(event_payload(event, false, 10, d as u16));
        d += 160;
    }
    for _ in 0..3 {
        out.push(event_payload(event, true, 10, total));
    }
    Some(out)
}

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The (row, column) frequencies of a key in Hz.
pub fn key_frequencies(digit: char) -> Option<(f64, f64)> {
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k == digit {
                return Some((ROWS[r], COLS[c]));
            }
        }
    }
    None
}

/// 8 kHz samples of a DTMF key: both tones at `amplitude` each (so the sum peaks at twice that).
pub fn tone(digit: char, ms: u32, amplitude: f64) -> Option<Vec<i16>> {
    let (low, high) = key_frequencies(digit)?;
    let n = (ms * 8) as usize;
    let step = std::f64::consts::TAU / 8000.0;
    Some(
        (0..n)
            .map(|i| {
                let t = i as f64 * step;
                let v = amplitude * ((low * t).sin() + (high * t).sin());
                v.clamp(-32768.0, 32767.0) as i16
            })
            .collect(),
    )
}

/// Goertzel power of one frequency: the self-tests use it to prove the generated tones are right.
pub fn goertzel_power(samples: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The key whose row and column tones dominate `samples`, if any clearly does.
pub fn detect_key(samples: &[i16]) -> Option<char> {
    let rows: Vec<f64> = ROWS.iter().map(|&f| goertzel_power(samples, f)).collect();
    let cols: Vec<f64> = COLS.iter().map(|&f| goertzel_power(samples, f)).collect();
    let best = |v: &[f64]| -> Option<(usize, f64, f64)> {
        let (i, &max) = v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        let second = v
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, &p)| p)
            .fold(0.0f64, f64::max);
        Some((i, max, second))
    };
    let (r, rmax, rsecond) = best(&rows)?;
    let (c, cmax, csecond) = best(&cols)?;
    let energy: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    // Each tone must carry a real share of the energy and stand well clear of its neighbours.
    let n = samples.len() as f64;
    let strong = |p: f64| p * 2.0 / n > energy * 0.1;
    if strong(rmax) && strong(cmax) && rmax > 10.0 * rsecond && cmax > 10.0 * csecond {
        KEYPAD.get(r).and_then(|row| row.get(c)).copied()
    } else {
        None
    }
}
