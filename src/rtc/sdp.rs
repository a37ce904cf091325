//! Reading the SDP that crosses the signalling channel: whether an offer can be answered with
//! PCMU, and which payload types a finished negotiation settled on.
//!
//! The stack parses and applies the SDP itself; these checks exist so that an offer we cannot
//! serve is refused with a clear reason before any socket is bound, and so that RTP is stamped
//! with the payload types the browser actually agreed to (a browser may map PCMU to a dynamic
//! type, and telephone-event always is one).

use super::RtcError;
use ::rtc::peer_connection::sdp::RTCSessionDescription;
use ::rtc::sdp::MediaDescription;
use core::net::IpAddr;

/// Offers and answers above this are refused unparsed: a real browser offer with audio, video and
/// data is under 10 KiB, and the text comes from an untrusted page.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// The payload types one negotiated audio section uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPts {
    pub pcmu: u8,
    /// `telephone-event/8000`, when both sides support RFC 4733.
    pub telephone_event: Option<u8>,
}

/// Parses `sdp` as a description of the given kind, bounded in size.
pub fn parse(sdp: &str, offer: bool) -> Result<RTCSessionDescription, RtcError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(RtcError::SdpTooLarge(sdp.len()));
    }
    let sdp = sdp.to_owned();
    let parsed = if offer {
        RTCSessionDescription::offer(sdp)
    } else {
        RTCSessionDescription::answer(sdp)
    };
    parsed.map_err(malformed)
}

/// The PCMU and telephone-event payload types of the first live audio section, or
/// `NoCommonCodec` when no audio section carries PCMU.
pub fn audio_pts(desc: &RTCSessionDescription) -> Result<AudioPts, RtcError> {
    let parsed = desc.unmarshal().map_err(malformed)?;
    parsed
        .media_descriptions
        .iter()
        .filter(|m| is_live_audio(m))
        .find_map(section_pts)
        .ok_or(RtcError::NoCommonCodec)
}

/// The offer as the stack should see it: every audio section narrowed to PCMU and
/// telephone-event/8000.
///
/// webrtc 0.21 matches codecs by name and ignores the clock rate, so Chrome's
/// `telephone-event/48000` (listed before the 8 kHz one) would be taken for ours and answered
/// twice under the wrong payload type. Narrowing the offer first makes the answer exactly
/// "PCMU, telephone-event/8000" in the browser's own payload types, which is still a valid
/// answer to the original offer (a subset of it).
pub fn restrict_offer_to_pcmu(
    offer: &RTCSessionDescription,
) -> Result<RTCSessionDescription, RtcError> {
    let mut parsed = offer.unmarshal().map_err(malformed)?;
    for m in parsed
        .media_descriptions
        .iter_mut()
        .filter(|m| is_live_audio(m))
    {
        let Some(pts) = section_pts(m) else { continue };
        let keep = |pt: u8| pt == pts.pcmu || Some(pt) == pts.telephone_event;
        m.media_name
            .formats
            .retain(|f| f.parse::<u8>().is_ok_and(keep));
        m.attributes.retain(|a| {
            let per_codec = matches!(a.key.as_str(), "rtpmap" | "fmtp" | "rtcp-fb");
            !per_codec
                || a.value
                    .as_deref()
                    .and_then(|v| v.split([' ', '/']).next())
                    .and_then(|pt| pt.parse::<u8>().ok())
                    .is_some_and(keep)
        });
    }
    parse(&parsed.marshal(), true)
}

/// `sdp` with every host candidate advertising `public` instead of the address it was gathered
/// on: what a 1:1 NAT (a cloud instance's elastic address) needs. webrtc 0.21 takes a 1:1 NAT
/// setting but does not apply it, so the rewrite happens here; the browser's checks then reach
/// the public address, are forwarded to our socket, and answer from the same port.
pub fn advertise_public(sdp: &str, public: IpAddr) -> String {
    let public = public.to_string();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        let mut fields: Vec<&str> = body.split(' ').collect();
        // a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
        let is_host = body.starts_with("a=candidate:")
            && fields.get(6) == Some(&"typ")
            && fields.get(7) == Some(&"host");
        if is_host {
            if let Some(addr) = fields.get_mut(4) {
                *addr = &public;
            }
            out.push_str(&fields.join(" "));
            out.push_str(ending);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The parser quotes the text it choked on, which came from an untrusted page: it is cut short
/// and stripped of control characters before it can reach a log line.
fn malformed(e: impl std::fmt::Display) -> RtcError {
    const MAX_CHARS: usize = 120;
    let text: String = e
        .to_string()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_CHARS)
        .collect();
    RtcError::MalformedSdp(text)
}

fn is_live_audio(m: &MediaDescription) -> bool {
    // Port 0 is a rejected section (RFC 3264 §6): its codecs were not agreed.
    m.media_name.media == "audio" && m.media_name.port.value != 0
}

fn section_pts(m: &MediaDescription) -> Option<AudioPts> {
    let codecs = m.codecs();
    let mut pcmu = None;
    let mut telephone_event = None;
    // In m= order, which is the sender's preference.
    for pt in m
        .media_name
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
    {
        match codecs.get(&pt) {
            Some(c) if c.name.eq_ignore_ascii_case("PCMU") && c.clock_rate == 8000 => {
                pcmu = pcmu.or(Some(pt));
            }
            Some(c) if c.name.eq_ignore_ascii_case("telephone-event") && c.clock_rate == 8000 => {
                telephone_event = telephone_event.or(Some(pt));
            }
            // Static type 0 needs no rtpmap (RFC 3551 table 4).
            None if pt == 0 => pcmu = pcmu.or(Some(0)),
            _ => {}
        }
    }
    pcmu.map(|pcmu| AudioPts {
        pcmu,
        telephone_event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    fn pts(body: &str) -> Result<AudioPts, RtcError> {
        let desc = parse(&format!("{HEAD}{body}"), true)?;
        audio_pts(&desc)
    }

    #[test]
    fn pcmu_and_dtmf_types_are_taken_from_the_offer_not_assumed() {
        let got = pts("m=audio 9 UDP/TLS/RTP/SAVPF 111 100 126\r\n\
             a=rtpmap:111 opus/48000/2\r\na=rtpmap:100 PCMU/8000\r\n\
             a=rtpmap:126 telephone-event/8000\r\n")
        .unwrap();
        assert_eq!(
            got,
            AudioPts {
                pcmu: 100,
                telephone_event: Some(126)
            }
        );
    }

    #[test]
    fn static_pcmu_needs_no_rtpmap_and_48k_telephone_event_is_not_ours() {
        let got = pts("m=audio 9 UDP/TLS/RTP/SAVPF 0 110\r\n\
             a=rtpmap:110 telephone-event/48000\r\n")
        .unwrap();
        assert_eq!(
            got,
            AudioPts {
                pcmu: 0,
                telephone_event: None
            }
        );
    }

    #[test]
    fn offers_without_pcmu_or_with_a_rejected_audio_section_have_no_common_codec() {
        let opus_only = pts("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n");
        assert!(matches!(opus_only, Err(RtcError::NoCommonCodec)));
        let rejected = pts("m=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n");
        assert!(matches!(rejected, Err(RtcError::NoCommonCodec)));
        let video_only = pts("m=video 9 UDP/TLS/RTP/SAVPF 0\r\n");
        assert!(matches!(video_only, Err(RtcError::NoCommonCodec)));
    }

    #[test]
    fn oversized_sdp_is_refused_before_parsing() {
        let huge = format!("{HEAD}{}", "a=x\r\n".repeat(MAX_SDP_BYTES / 5 + 1));
        assert!(matches!(
            parse(&huge, true),
            Err(RtcError::SdpTooLarge(n)) if n > MAX_SDP_BYTES
        ));
    }

    #[test]
    fn restricting_keeps_only_pcmu_and_8k_telephone_event_with_their_attributes() {
        let offer = parse(
            &format!(
                "{HEAD}m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 110 126\r\n\
                 a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
                 a=fmtp:111 minptime=10\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                 a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n\
                 a=fmtp:126 0-15\r\na=rtcp-mux\r\na=mid:0\r\n"
            ),
            true,
        )
        .unwrap();
        let narrowed = restrict_offer_to_pcmu(&offer).unwrap().sdp;
        assert!(
            narrowed.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0 126\r\n"),
            "{narrowed}"
        );
        for gone in [
            "opus",
            "PCMA",
            "transport-cc",
            "minptime",
            "telephone-event/48000",
        ] {
            assert!(!narrowed.contains(gone), "{gone} survived: {narrowed}");
        }
        for kept in [
            "a=rtpmap:0 PCMU/8000",
            "a=fmtp:126 0-15",
            "a=rtcp-mux",
            "a=mid:0",
        ] {
            assert!(narrowed.contains(kept), "{kept} lost: {narrowed}");
        }
    }

    #[test]
    fn only_host_candidates_are_readdressed_for_a_1_to_1_nat() {
        let sdp = "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n\
                   a=candidate:2 1 udp 1694498815 198.51.100.9 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n\
                   a=ice-ufrag:x\r\n";
        let out = advertise_public(sdp, "203.0.113.7".parse().unwrap());
        assert_eq!(
            out,
            "a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\n\
             a=candidate:2 1 udp 1694498815 198.51.100.9 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n\
             a=ice-ufrag:x\r\n"
        );
    }

    #[test]
    fn parser_complaints_quoting_the_page_are_bounded_and_single_line() {
        let hostile = format!("v=0\r\n{}\u{1b}[2J\r\n", "q".repeat(10_000));
        match parse(&hostile, true) {
            Err(RtcError::MalformedSdp(msg)) => {
                assert!(msg.chars().count() <= 120, "{} chars", msg.len());
                assert!(!msg.chars().any(char::is_control), "{msg:?}");
            }
            other => panic!("expected MalformedSdp, got {other:?}"),
        }
    }
}
