//! Reading the SDP that crosses the signalling channel: whether an offer can be answered with
//! PCMU, and which payload types a finished negotiation settled on.
//!
//! The stack parses and applies the SDP itself; these checks exist so that an offer we cannot
//! serve is refused with a clear reason before any socket is bound, and so that RTP is stamped
//! with the payload types the browser actually agreed to (a browser may map PCMU to a dynamic
//! type, and telephone-event always is one).

use super::RtcError;
use ::rtc::peer_connection::sdp::RTCSessionDescription;
use ::rtc::sdp::description::session::SessionDescription;

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
    // The parser's message names the line it choked on, never the credentials in it.
    parsed.map_err(|e| RtcError::MalformedSdp(e.to_string()))
}

/// The PCMU and telephone-event payload types of the first live audio section, or
/// `NoCommonCodec` when no audio section carries PCMU.
pub fn audio_pts(desc: &RTCSessionDescription) -> Result<AudioPts, RtcError> {
    let parsed = desc
        .unmarshal()
        .map_err(|e| RtcError::MalformedSdp(e.to_string()))?;
    audio_pts_of(&parsed).ok_or(RtcError::NoCommonCodec)
}

fn audio_pts_of(sd: &SessionDescription) -> Option<AudioPts> {
    sd.media_descriptions
        .iter()
        // Port 0 is a rejected section (RFC 3264 §6): its codecs were not agreed.
        .filter(|m| m.media_name.media == "audio" && m.media_name.port.value != 0)
        .find_map(|m| {
            let codecs = m.codecs();
            // In m= order, which is the sender's preference.
            let pts = m
                .media_name
                .formats
                .iter()
                .filter_map(|f| f.parse::<u8>().ok());
            let mut pcmu = None;
            let mut telephone_event = None;
            for pt in pts {
                match codecs.get(&pt) {
                    Some(c) if c.name.eq_ignore_ascii_case("PCMU") && c.clock_rate == 8000 => {
                        pcmu = pcmu.or(Some(pt));
                    }
                    Some(c)
                        if c.name.eq_ignore_ascii_case("telephone-event")
                            && c.clock_rate == 8000 =>
                    {
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
}
