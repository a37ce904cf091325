//! ITU-T G.711 µ-law and A-law, bit for bit the reference segment logic (the same as the classic
//! Sun `g711.c`), so that what we send decodes identically on every phone.
//!
//! Encoding is bit logic; decoding goes through two 256-entry tables built at compile time from the
//! same logic, because the receive path decodes every sample of every call.

/// Which companding law a call negotiated: PCMU (payload type 0) or PCMA (payload type 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    Mu,
    A,
}

impl Law {
    /// The static RTP payload type of this law (RFC 3551).
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    /// The byte a silent sample encodes to, for filling gaps without running the encoder.
    pub const fn silence(self) -> u8 {
        match self {
            Law::Mu => 0xFF,
            Law::A => 0xD5,
        }
    }
}

/// µ-law bias, in 14-bit units (0x84 in 16-bit units).
const MU_BIAS: i32 = 0x84 >> 2;
/// Largest 14-bit magnitude µ-law can represent once biased.
const MU_CLIP: i32 = 8159;
const MU_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const A_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(v: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if v <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// Encodes one 16-bit linear sample.
pub fn encode(law: Law, s: i16) -> u8 {
    match law {
        Law::Mu => MU_ENC[mu_index(s)],
        Law::A => A_ENC[a_index(s)],
    }
}

/// Decodes one G.711 byte to a 16-bit linear sample.
pub fn decode(law: Law, b: u8) -> i16 {
    match law {
        Law::Mu => MU_TABLE[usize::from(b)],
        Law::A => A_TABLE[usize::from(b)],
    }
}

/// Appends the encoding of `pcm` to `out`.
pub fn encode_into(law: Law, pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len());
    // Table look-ups: every prompt frame of every call is encoded here (3 % of an IVR call's
    // CPU with the segment search, BENCHMARKS "IVR: where a call's CPU goes now").
    match law {
        Law::Mu => out.extend(pcm.iter().map(|&s| MU_ENC[mu_index(s)])),
        Law::A => out.extend(pcm.iter().map(|&s| A_ENC[a_index(s)])),
    }
}

/// µ-law only looks at `s >> 2` (14 bits), A-law at `s >> 3` (13 bits): one table entry each.
const fn mu_index(s: i16) -> usize {
    ((s >> 2) as i32 + 8192) as usize
}

const fn a_index(s: i16) -> usize {
    ((s >> 3) as i32 + 4096) as usize
}

static MU_ENC: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < t.len() {
        t[i] = encode_mu(((i as i32 - 8192) << 2) as i16);
        i += 1;
    }
    t
};

static A_ENC: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < t.len() {
        t[i] = encode_a(((i as i32 - 4096) << 3) as i16);
        i += 1;
    }
    t
};

/// Appends the decoding of `b` to `out`.
pub fn decode_into(law: Law, b: &[u8], out: &mut Vec<i16>) {
    let table = match law {
        Law::Mu => &MU_TABLE,
        Law::A => &A_TABLE,
    };
    out.reserve(b.len());
    out.extend(b.iter().map(|&x| table[usize::from(x)]));
}

const fn encode_mu(s: i16) -> u8 {
    // i32 so that negating i16::MIN >> 2 cannot overflow.
    let mut v = (s as i32) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > MU_CLIP {
        v = MU_CLIP;
    }
    v += MU_BIAS;
    let seg = segment(v, &MU_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let u = ((seg as u8) << 4) | (((v >> (seg + 1)) & 0x0F) as u8);
    u ^ mask
}

const fn decode_mu(b: u8) -> i16 {
    let u = !b;
    let mut t: i32 = (((u & 0x0F) as i32) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

const fn encode_a(s: i16) -> u8 {
    let mut v = (s as i32) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &A_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut a = (seg as u8) << 4;
    if seg < 2 {
        a |= ((v >> 1) & 0x0F) as u8;
    } else {
        a |= ((v >> seg) & 0x0F) as u8;
    }
    a ^ mask
}

const fn decode_a(b: u8) -> i16 {
    let a = b ^ 0x55;
    let mut t: i32 = ((a & 0x0F) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn table(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::Mu => decode_mu(i as u8),
            Law::A => decode_a(i as u8),
        };
        i += 1;
    }
    t
}

static MU_TABLE: [i16; 256] = table(Law::Mu);
static A_TABLE: [i16; 256] = table(Law::A);

#[cfg(test)]
mod tests {
    use super::*;

    const LAWS: [Law; 2] = [Law::Mu, Law::A];

    #[test]
    fn known_vectors_match_the_reference_codec() {
        assert_eq!(encode(Law::Mu, 0), 0xFF);
        assert_eq!(encode(Law::A, 0), 0xD5);
        assert_eq!(decode(Law::Mu, 0xFF), 0);
        assert_eq!(decode(Law::Mu, 0x7F), 0);
        assert_eq!(decode(Law::Mu, 0x80), 32124);
        assert_eq!(decode(Law::Mu, 0x00), -32124);
        assert_eq!(decode(Law::A, 0xD5), 8);
        assert_eq!(decode(Law::A, 0x55), -8);
        assert_eq!(decode(Law::A, 0xAA), 32256);
        assert_eq!(decode(Law::A, 0x2A), -32256);
        // Full scale clips to the largest code rather than wrapping to the other sign.
        assert_eq!(encode(Law::Mu, i16::MAX), 0x80);
        assert_eq!(encode(Law::Mu, i16::MIN), 0x00);
        assert_eq!(encode(Law::A, i16::MAX), 0xAA);
        assert_eq!(encode(Law::A, i16::MIN), 0x2A);
        // A mid-scale value from the G.711 tables: 1000 sits in µ-law segment 3.
        assert_eq!(encode(Law::Mu, 1000), 0xCE);
        assert_eq!(decode(Law::Mu, 0xCE), 988);
        assert_eq!(encode(Law::A, 1000), 0xFA);
        assert_eq!(decode(Law::A, 0xFA), 1008);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for law in LAWS {
            for b in 0..=255u8 {
                // µ-law has two zeros (0xFF and 0x7F); both decode to 0, which encodes as 0xFF.
                if law == Law::Mu && b == 0x7F {
                    continue;
                }
                assert_eq!(encode(law, decode(law, b)), b, "{law:?} code {b:#04x}");
            }
        }
    }

    #[test]
    fn round_trip_error_stays_within_half_a_logarithmic_step() {
        for law in LAWS {
            for x in i16::MIN..=i16::MAX {
                let y = decode(law, encode(law, x));
                let err = (i32::from(x) - i32::from(y)).abs();
                let bound = (i32::from(x).abs() / 16).max(16);
                // Beyond the largest code the codec clips, which is the only larger error allowed.
                if i32::from(x).abs() <= 32124 {
                    assert!(err <= bound, "{law:?}: {x} -> {y}, error {err} > {bound}");
                }
                assert!(
                    x.signum() * y.signum() >= 0,
                    "{law:?}: sign flipped {x} -> {y}"
                );
            }
        }
    }

    #[test]
    fn round_trip_is_monotone() {
        for law in LAWS {
            let mut prev = i16::MIN;
            for x in i16::MIN..=i16::MAX {
                let y = decode(law, encode(law, x));
                assert!(y >= prev, "{law:?}: decode(encode({x})) = {y} < {prev}");
                prev = y;
            }
        }
    }

    #[test]
    fn the_encoding_tables_agree_with_the_codec_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let mut out = Vec::new();
            encode_into(Law::Mu, &[x], &mut out);
            encode_into(Law::A, &[x], &mut out);
            assert_eq!(out, [encode_mu(x), encode_a(x)], "sample {x}");
        }
    }

    #[test]
    fn buffer_helpers_agree_with_the_sample_functions() {
        let pcm: Vec<i16> = (0..400)
            .map(|i| ((i * 163) % 65536 - 32768) as i16)
            .collect();
        for law in LAWS {
            let mut bytes = vec![0xAB];
            encode_into(law, &pcm, &mut bytes);
            assert_eq!(bytes.len(), 401, "encode_into appends");
            let mut back = Vec::new();
            decode_into(law, &bytes[1..], &mut back);
            let expect: Vec<i16> = pcm.iter().map(|&s| decode(law, encode(law, s))).collect();
            assert_eq!(back, expect);
        }
        assert_eq!(Law::Mu.silence(), encode(Law::Mu, 0));
        assert_eq!(Law::A.silence(), encode(Law::A, 0));
    }
}
