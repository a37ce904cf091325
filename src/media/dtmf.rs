//! RFC 4733 telephone-events: the DTMF digits a phone sends as RTP packets of their own.
//!
//! A phone sends each key press as a burst of packets that all carry the RTP timestamp of the
//! moment the key went down: updates with a growing duration while the key is held, then the end
//! packet, usually three times. Any of them may be lost, repeated or reordered, so the receiver
//! keys events on that timestamp and reports each digit once, at the first packet it sees.

use thiserror::Error;

/// Why a telephone-event payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    #[error("telephone-event payload too short: {0} bytes, need 4")]
    TooShort(usize),
}

/// One RFC 4733 event report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc4733Event {
    /// 0-9, 10 = `*`, 11 = `#`, 12-15 = A-D; other values are non-DTMF events.
    pub event: u8,
    /// Set on the final packets of the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Length so far, in RTP timestamp units (samples at 8 kHz).
    pub duration: u16,
}

/// Reads the event report at the start of a telephone-event payload.
pub fn parse_event(payload: &[u8]) -> Result<Rfc4733Event, DtmfError> {
    match payload {
        [event, flags, d0, d1, ..] => Ok(Rfc4733Event {
            event: *event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([*d0, *d1]),
        }),
        _ => Err(DtmfError::TooShort(payload.len())),
    }
}

const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// The key an event code stands for, or `None` for non-DTMF events (flash, tones, ...).
pub fn event_to_digit(e: u8) -> Option<char> {
    DIGITS.get(usize::from(e)).copied()
}

/// The event code of a key: `0-9 * # A-D` (lowercase `a-d` accepted).
pub fn digit_to_event(d: char) -> Option<u8> {
    let d = d.to_ascii_uppercase();
    DIGITS
        .iter()
        .position(|&c| c == d)
        .and_then(|i| u8::try_from(i).ok())
}

/// How many recent events to remember: enough to recognise a straggler from a press or two ago.
const REMEMBERED: usize = 16;
/// A duration this close to the 16-bit limit means the sender may continue the same key press in
/// a new segment with a new timestamp (RFC 4733 §2.5.1.3, keys held for over 8 seconds).
const SEGMENT_FULL: u16 = 0xF000;

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    end: bool,
    duration: u16,
}

/// Turns a stream of telephone-event payloads into one digit per key press.
#[derive(Debug, Clone, Default)]
pub struct Rfc4733Receiver {
    seen: [Option<u32>; REMEMBERED],
    next_slot: usize,
    current: Option<Current>,
}

impl Rfc4733Receiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one packet; returns the digit if this packet starts a key press we had not seen.
    pub fn on_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        let e = parse_event(payload).ok()?;
        if self.seen.contains(&Some(rtp_timestamp)) {
            if let Some(cur) = self
                .current
                .as_mut()
                .filter(|c| c.timestamp == rtp_timestamp)
            {
                cur.end |= e.end;
                cur.duration = cur.duration.max(e.duration);
            }
            return None;
        }
        let continues = self.current.is_some_and(|c| {
            let gap = rtp_timestamp.wrapping_sub(c.timestamp);
            !c.end
                && c.event == e.event
                && c.duration >= SEGMENT_FULL
                && gap >= u32::from(c.duration)
                && gap <= u32::from(c.duration) + 1600
        });
        if let Some(slot) = self.seen.get_mut(self.next_slot) {
            *slot = Some(rtp_timestamp);
        }
        self.next_slot = (self.next_slot + 1) % REMEMBERED;
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            event: e.event,
            end: e.end,
            duration: e.duration,
        });
        if continues {
            return None;
        }
        event_to_digit(e.event)
    }
}

/// The payloads a phone sends for one key press of `duration_ms`: an update every 20 ms, then
/// three end packets. Used by tests, and by anything that sends DTMF out (all share one RTP
/// timestamp; the marker bit goes on the first). An unknown digit gives no packets.
pub fn event_payloads(digit: char, duration_ms: u32) -> Vec<Vec<u8>> {
    const VOLUME: u8 = 10;
    let Some(event) = digit_to_event(digit) else {
        return Vec::new();
    };
    let total = u16::try_from(duration_ms.saturating_mul(8)).unwrap_or(u16::MAX);
    let packet = |end: bool, duration: u16| {
        let [d0, d1] = duration.to_be_bytes();
        vec![event, if end { 0x80 | VOLUME } else { VOLUME }, d0, d1]
    };
    let mut out: Vec<Vec<u8>> = (1..)
        .map(|k: u32| k.saturating_mul(160))
        .take_while(|&d| d < u32::from(total))
        .map(|d| packet(false, u16::try_from(d).unwrap_or(u16::MAX)))
        .collect();
    out.extend((0..3).map(|_| packet(true, total)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_codes_cover_the_whole_keypad_both_ways() {
        for (i, c) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(digit_to_event(c), Some(i as u8));
            assert_eq!(event_to_digit(i as u8), Some(c));
        }
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None, "flash is not a digit");
    }

    #[test]
    fn event_fields_are_read_from_the_wire_layout() {
        let e = parse_event(&[11, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            Rfc4733Event {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(parse_event(&[1, 2, 3]), Err(DtmfError::TooShort(3)));
    }

    #[test]
    fn a_phone_burst_is_what_rfc_4733_describes() {
        let p = event_payloads('5', 100);
        // 20, 40, 60, 80 ms updates, then three ends at 100 ms = 800 samples.
        assert_eq!(p.len(), 7);
        let events: Vec<_> = p.iter().map(|b| parse_event(b).unwrap()).collect();
        assert!(events.iter().all(|e| e.event == 5));
        assert_eq!(events[0].duration, 160);
        assert!(!events[3].end && events[3].duration == 640);
        assert!(events[4..].iter().all(|e| e.end && e.duration == 800));
        assert!(event_payloads('?', 100).is_empty());
    }

    #[test]
    fn three_end_packets_and_retransmissions_give_one_digit() {
        let mut rx = Rfc4733Receiver::new();
        let mut digits = Vec::new();
        for p in event_payloads('7', 120) {
            digits.extend(rx.on_packet(8000, &p));
            // Every packet arrives twice, as some gateways retransmit.
            digits.extend(rx.on_packet(8000, &p));
        }
        assert_eq!(digits, vec!['7']);
    }

    #[test]
    fn the_digit_is_reported_at_the_first_packet() {
        let mut rx = Rfc4733Receiver::new();
        let p = event_payloads('#', 200);
        assert_eq!(rx.on_packet(1234, &p[0]), Some('#'));
        assert!(p[1..].iter().all(|b| rx.on_packet(1234, b).is_none()));
    }

    #[test]
    fn same_key_twice_is_two_digits_and_late_packets_are_not() {
        let mut rx = Rfc4733Receiver::new();
        let first = event_payloads('1', 100);
        let second = event_payloads('1', 100);
        let mut digits = Vec::new();
        // The first press's end packets are reordered to after the second press began.
        for p in &first[..2] {
            digits.extend(rx.on_packet(16_000, p));
        }
        digits.extend(rx.on_packet(20_000, &second[0]));
        for p in &first[2..] {
            digits.extend(rx.on_packet(16_000, p));
        }
        for p in &second[1..] {
            digits.extend(rx.on_packet(20_000, p));
        }
        assert_eq!(digits, vec!['1', '1']);
    }

    #[test]
    fn only_end_packets_surviving_still_give_the_digit() {
        let mut rx = Rfc4733Receiver::new();
        let p = event_payloads('D', 60);
        assert_eq!(rx.on_packet(0, p.last().unwrap()), Some('D'));
        assert_eq!(rx.on_packet(0, &p[0]), None);
    }

    #[test]
    fn a_key_held_past_one_segment_is_still_one_digit() {
        let mut rx = Rfc4733Receiver::new();
        assert_eq!(rx.on_packet(100, &[4, 10, 0xFF, 0xFF]), Some('4'));
        // The sender starts a new segment with a timestamp one full duration later.
        assert_eq!(rx.on_packet(100 + 0xFFFF, &[4, 10, 0x00, 0xA0]), None);
        assert_eq!(rx.on_packet(100 + 0xFFFF, &[4, 0x8A, 0x01, 0x40]), None);
        // But after it ended, a press at any later timestamp is new.
        assert_eq!(rx.on_packet(300_000, &[4, 10, 0, 160]), Some('4'));
    }

    #[test]
    fn junk_and_non_dtmf_events_give_nothing() {
        let mut rx = Rfc4733Receiver::new();
        assert_eq!(rx.on_packet(5, &[1, 2]), None);
        assert_eq!(rx.on_packet(6, &[16, 10, 0, 160]), None);
        assert_eq!(rx.on_packet(7, &[9, 10, 0, 160]), Some('9'));
    }
}
