//! A small G.711 codec written from the ITU-T G.711 bit rules, independent of `switchboard::media`, so
//! the softphone cannot share the server's bugs.

/// Which companding law a payload uses: PT 0 is µ-law (PCMU), PT 8 is A-law (PCMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    Mu,
    A,
}

impl Law {
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    /// The byte a zero sample encodes to: what a silent frame is made of.
    pub fn silence_byte(self) -> u8 {
        self.encode(0)
    }

    pub fn encode(self, s: i16) -> u8 {
        match self {
            Law::Mu => ulaw_encode(s),
            Law::A => alaw_encode(s),
        }
    }

    pub fn decode(self, b: u8) -> i16 {
        match self {
            Law::Mu => ulaw_decode(b),
            Law::A => alaw_decode(b),
        }
    }

    pub fn encode_all(self, pcm: &[i16]) -> Vec<u8> {
        pcm.iter().map(|&s| self.encode(s)).collect()
    }

    /// Each code's place in the ordering of decoded values. Two correct encoders (truncating like the
    /// ITU reference, or rounding to the nearest level) never disagree by more than one place, so the
    /// prompt matcher compares ranks rather than demanding one particular rounding rule.
    pub fn rank_table(self) -> [u8; 256] {
        let mut codes: Vec<u8> = (0..=255u8).collect();
        // Ties (µ-law has +0 and -0) are broken by the byte so the order is total and stable.
        codes.sort_by_key(|&b| (self.decode(b), b));
        let mut rank = [0u8; 256];
        for (i, &b) in codes.iter().enumerate() {
            rank[usize::from(b)] = u8::try_from(i).unwrap_or(u8::MAX);
        }
        rank
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

fn ulaw_encode(s: i16) -> u8 {
    let mut x = i32::from(s);
    let mask: i32 = if x < 0 {
        x = -x;
        0x7F
    } else {
        0xFF
    };
    x = x.min(ULAW_CLIP) + ULAW_BIAS;
    // x is at least 0x84, so x >> 7 is at least 1 and the segment is its highest set bit.
    let seg = 31 - ((x >> 7) as u32).leading_zeros() as i32;
    let uval = (seg << 4) | ((x >> (seg + 3)) & 0x0F);
    (uval ^ mask) as u8
}

fn ulaw_decode(b: u8) -> i16 {
    let u = i32::from(!b);
    let t = (((u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    };
    v as i16
}

fn alaw_encode(s: i16) -> u8 {
    let mut x = i32::from(s);
    let mask: i32 = if x >= 0 {
        0xD5
    } else {
        x = -x - 1;
        0x55
    };
    x >>= 3;
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let seg = SEG_END.iter().position(|&end| x <= end);
    let aval = match seg {
        None => 0x7F,
        Some(seg) => {
            let seg = seg as i32;
            let quant = if seg < 2 {
                (x >> 1) & 0x0F
            } else {
                (x >> seg) & 0x0F
            };
            (seg << 4) | quant
        }
    };
    (aval ^ mask) as u8
}

fn alaw_decode(b: u8) -> i16 {
    let a = i32::from(b ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    let v = if a & 0x80 != 0 { t } else { -t };
    v as i16
}
