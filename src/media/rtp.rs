//! RTP packets (RFC 3550): parsing what arrives on the media port and writing what we send.
//!
//! Parsing takes hostile input: every length is checked before it is used, so a short, truncated
//! or lying packet is an error, never a panic.

use thiserror::Error;

/// Fixed part of every RTP header.
pub const HEADER_LEN: usize = 12;

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("RTP packet too short: {0} bytes, the header needs 12")]
    TooShort(usize),
    #[error("not RTP version 2 (version {0})")]
    BadVersion(u8),
    #[error("RTP packet shorter than its CSRC list or header extension")]
    Truncated,
    #[error("RTP padding length {0} does not fit the packet")]
    BadPadding(u8),
}

/// One parsed RTP packet; the payload borrows from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Parses one RTP packet: version 2, skipping CSRCs and any header extension, removing padding.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let (&[b0, b1, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3], rest) =
        split_array(buf).ok_or(RtpError::TooShort(buf.len()))?;
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padded = b0 & 0x20 != 0;
    let extended = b0 & 0x10 != 0;
    let csrc_len = usize::from(b0 & 0x0F) * 4;
    let mut rest = rest.get(csrc_len..).ok_or(RtpError::Truncated)?;
    if extended {
        // 16-bit profile id, then the extension length in 32-bit words, then the words.
        let words = match rest {
            [_, _, l0, l1, ..] => usize::from(u16::from_be_bytes([*l0, *l1])),
            _ => return Err(RtpError::Truncated),
        };
        rest = rest.get(4 + words * 4..).ok_or(RtpError::Truncated)?;
    }
    if padded {
        // The last byte counts the padding bytes, itself included, so zero is malformed.
        let count = rest.last().copied().unwrap_or(0);
        let keep = rest
            .len()
            .checked_sub(usize::from(count))
            .filter(|_| count > 0)
            .ok_or(RtpError::BadPadding(count))?;
        rest = rest.get(..keep).ok_or(RtpError::BadPadding(count))?;
    }
    Ok(RtpPacket {
        payload_type: b1 & 0x7F,
        marker: b1 & 0x80 != 0,
        sequence: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
        payload: rest,
    })
}

fn split_array(buf: &[u8]) -> Option<(&[u8; HEADER_LEN], &[u8])> {
    let (head, rest) = buf.split_at_checked(HEADER_LEN)?;
    Some((head.try_into().ok()?, rest))
}

/// Writes a plain RTP packet (no CSRCs, extension or padding) into `out`, replacing its contents,
/// so one buffer can be reused for every packet of a call.
pub fn write(
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.reserve(HEADER_LEN + payload.len());
    out.push(0x80);
    out.push((pt & 0x7F) | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// True for RTCP (sender/receiver reports, SDES, BYE, APP: packet types 200..=204), which peers
/// may send to the RTP port when they multiplex (RFC 5761). We do not use RTCP, so the caller
/// drops these instead of counting them as malformed RTP.
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    match buf {
        [b0, b1, ..] => b0 >> 6 == 2 && (200..=204).contains(b1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_gives_back_every_field() {
        let mut out = vec![1, 2, 3];
        write(
            8,
            true,
            0xBEEF,
            0xDEAD_BEEF,
            0x1234_5678,
            &[9, 8, 7],
            &mut out,
        );
        assert_eq!(out.len(), 15, "write replaces the buffer's contents");
        let p = parse(&out).unwrap();
        assert_eq!(
            p,
            RtpPacket {
                payload_type: 8,
                marker: true,
                sequence: 0xBEEF,
                timestamp: 0xDEAD_BEEF,
                ssrc: 0x1234_5678,
                payload: &[9, 8, 7],
            }
        );
        write(0, false, 1, 2, 3, &[], &mut out);
        let p = parse(&out).unwrap();
        assert!(!p.marker);
        assert_eq!(p.payload_type, 0);
        assert!(p.payload.is_empty());
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        // V=2 P=1 X=1 CC=2, PT 0.
        let mut buf = vec![0xB2, 0x00, 0, 7, 0, 0, 0, 160, 0, 0, 0, 42];
        buf.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        buf.extend_from_slice(&[0xBE, 0xDE, 0, 1, 5, 5, 5, 5]); // one-word extension
        buf.extend_from_slice(&[0x11, 0x22, 0x33]); // payload
        buf.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let p = parse(&buf).unwrap();
        assert_eq!(p.payload, &[0x11, 0x22, 0x33]);
        assert_eq!(p.sequence, 7);
        assert_eq!(p.timestamp, 160);
        assert_eq!(p.ssrc, 42);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        let mut v1 = vec![0x40u8; 12];
        v1[1] = 0;
        assert_eq!(parse(&v1), Err(RtpError::BadVersion(1)));
        // Claims 15 CSRCs but carries none.
        assert_eq!(
            parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Truncated)
        );
        // Extension header cut short, and an extension longer than the packet.
        assert_eq!(
            parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE]),
            Err(RtpError::Truncated)
        );
        let long_ext = [
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        assert_eq!(parse(&long_ext), Err(RtpError::Truncated));
        // Padding count larger than the payload, zero, and padding flag on an empty body.
        let mut pad = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9];
        assert_eq!(parse(&pad), Err(RtpError::BadPadding(9)));
        pad[13] = 0;
        assert_eq!(parse(&pad), Err(RtpError::BadPadding(0)));
        assert_eq!(parse(&pad[..12]), Err(RtpError::BadPadding(0)));
    }

    #[test]
    fn parse_never_panics_on_any_short_input() {
        // Every header shape (flags, CSRC count) over every length up to 40 bytes of junk.
        for b0 in 0..=255u8 {
            for len in 0..40 {
                let mut buf: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37)).collect();
                if let Some(first) = buf.first_mut() {
                    *first = b0;
                }
                match parse(&buf) {
                    Ok(p) => assert!(p.payload.len() + HEADER_LEN <= len),
                    Err(e) if len >= HEADER_LEN && b0 >> 6 != 2 => {
                        assert_eq!(e, RtpError::BadVersion(b0 >> 6))
                    }
                    Err(_) => {}
                }
            }
        }
    }

    #[test]
    fn rtcp_is_recognised_and_rtp_is_not() {
        // A receiver report: V=2, PT=201.
        assert!(looks_like_rtcp(&[0x81, 201, 0, 7]));
        assert!(looks_like_rtcp(&[0x80, 200, 0, 6]));
        assert!(!looks_like_rtcp(&[0x81, 205, 0, 7]));
        let mut out = Vec::new();
        // Marker set on PCMU is 0x80 in byte 1, nowhere near 200.
        write(0, true, 1, 1, 1, &[0xFF; 160], &mut out);
        assert!(!looks_like_rtcp(&out));
        write(101, true, 1, 1, 1, &[1, 0x80, 0, 160], &mut out);
        assert!(!looks_like_rtcp(&out));
        assert!(!looks_like_rtcp(&[0x81]));
    }
}
