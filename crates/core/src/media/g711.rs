//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711, table driven.
//!
//! Every table is computed at compile time from the standard's segment rules, so encoding and
//! decoding a sample is one array lookup (no branches in the audio path). µ-law encodes the top
//! 14 bits of a sample, A-law the top 13, which is why the encode tables have 16384 and 8192
//! entries.

/// The two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, RTP payload type 0 (PCMU), used in North America and Japan.
    Mu,
    /// A-law, RTP payload type 8 (PCMA), used elsewhere.
    A,
}

impl Law {
    /// Encodes one sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => MU_ENCODE[((sample >> 2) as u16 & 0x3FFF) as usize],
            Law::A => A_ENCODE[((sample >> 3) as u16 & 0x1FFF) as usize],
        }
    }

    /// Decodes one byte.
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => MU_DECODE[byte as usize],
            Law::A => A_DECODE[byte as usize],
        }
    }

    /// Encodes `pcm` into `out` (one byte per sample); returns the bytes written
    /// (the shorter of the two lengths).
    pub fn encode_into(self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = pcm.len().min(out.len());
        for (o, &s) in out.iter_mut().zip(pcm) {
            *o = self.encode(s);
        }
        n
    }

    /// Decodes `bytes` into `out`; returns the samples written (the shorter of the two lengths).
    pub fn decode_into(self, bytes: &[u8], out: &mut [i16]) -> usize {
        let n = bytes.len().min(out.len());
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = self.decode(b);
        }
        n
    }

    /// The byte a silent sample encodes to (µ-law 0xFF, A-law 0xD5).
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

const MU_BIAS: i32 = 0x84;
const MU_CLIP: i32 = 8159;

/// µ-law encode of a 14-bit sample (the standard's own domain).
const fn mu_encode14(v: i32) -> u8 {
    let (mut mag, mask) = if v < 0 { (-v, 0x7F) } else { (v, 0xFF) };
    if mag > MU_CLIP {
        mag = MU_CLIP;
    }
    mag += MU_BIAS >> 2;
    // Segment = position of the highest set bit above bit 5 (segment ends 0x3F, 0x7F, ... 0x1FFF);
    // clipping lands exactly past the last one, on the loudest code.
    let mut seg = 0;
    while seg < 8 && mag > (0x40 << seg) - 1 {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((seg << 4) | ((mag >> (seg + 1)) & 0xF)) as u8;
    code ^ mask
}

const fn mu_decode(byte: u8) -> i16 {
    let u = !byte;
    let mut t = (((u & 0x0F) as i32) << 3) + MU_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { MU_BIAS - t } else { t - MU_BIAS }) as i16
}

/// A-law encode of a 13-bit sample.
const fn a_encode13(v: i32) -> u8 {
    let (mag, mask) = if v >= 0 { (v, 0xD5) } else { (-v - 1, 0x55) };
    let mut seg = 0;
    while seg < 8 && mag > (0x20 << seg) - 1 {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let code = ((seg << 4) | ((mag >> shift) & 0xF)) as u8;
    code ^ mask
}

const fn a_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

static MU_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        // Sign-extend the 14-bit index back to a value.
        let v = if i >= 8192 { i as i32 - 16384 } else { i as i32 };
        t[i] = mu_encode14(v);
        i += 1;
    }
    t
};

static A_ENCODE: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        let v = if i >= 4096 { i as i32 - 8192 } else { i as i32 };
        t[i] = a_encode13(v);
        i += 1;
    }
    t
};

static MU_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = mu_decode(i as u8);
        i += 1;
    }
    t
};

static A_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = a_decode(i as u8);
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mu_law_values() {
        assert_eq!(Law::Mu.encode(0), 0xFF);
        assert_eq!(Law::Mu.silence(), 0xFF);
        assert_eq!(Law::Mu.encode(i16::MAX), 0x80);
        assert_eq!(Law::Mu.encode(i16::MIN), 0x00);
        assert_eq!(Law::Mu.decode(0x80), 32124);
        assert_eq!(Law::Mu.decode(0x00), -32124);
        assert_eq!(Law::Mu.decode(0xFF), 0);
        assert_eq!(Law::Mu.decode(0x7F), 0);
        // Segment 0 is 8 wide at 16-bit scale after the bias; the first step above zero.
        assert_eq!(Law::Mu.decode(0xFE), 8);
        assert_eq!(Law::Mu.decode(0xF0), 120); // last code of segment 0
        assert_eq!(Law::Mu.decode(0xEF), 132); // first code of segment 1
    }

    #[test]
    fn known_a_law_values() {
        assert_eq!(Law::A.encode(0), 0xD5);
        assert_eq!(Law::A.encode(-1), 0x55);
        assert_eq!(Law::A.encode(i16::MAX), 0xAA);
        assert_eq!(Law::A.encode(i16::MIN), 0x2A);
        assert_eq!(Law::A.decode(0xD5), 8);
        assert_eq!(Law::A.decode(0x55), -8);
        assert_eq!(Law::A.decode(0xAA), 32256);
        assert_eq!(Law::A.decode(0x2A), -32256);
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(Law::A.encode(Law::A.decode(b)), b, "A-law {b:#04x}");
            // µ-law 0x7F is "negative zero", which decodes to 0 and encodes back to 0xFF.
            let want = if b == 0x7F { 0xFF } else { b };
            assert_eq!(Law::Mu.encode(Law::Mu.decode(b)), want, "µ-law {b:#04x}");
        }
    }

    #[test]
    fn segment_boundaries_step_by_doubling_intervals() {
        // Positive µ-law codes 0xFF down to 0x80 decode to increasing values whose step doubles
        // at each segment (16 codes): 8, 16, 32, ... 1024 in 16-bit units.
        for (law, top) in [(Law::Mu, 0xFFu8), (Law::A, 0xD5u8)] {
            let mut values: Vec<i32> = (0..128u8)
                .map(|k| {
                    let code = if law == Law::Mu { top - k } else { (k ^ 0x55) | 0x80 };
                    law.decode(code) as i32
                })
                .collect();
            values.dedup();
            assert_eq!(values.len(), 128, "{law:?} codes are all distinct");
            for seg in 1..8 {
                let step = values[seg * 16 + 1] - values[seg * 16];
                let prev = values[seg * 16 - 1] - values[seg * 16 - 2];
                assert!(
                    step == prev * 2 || (seg == 1 && law == Law::A && step == prev),
                    "{law:?} seg {seg}: {prev} -> {step}"
                );
            }
        }
    }

    #[test]
    fn quantisation_error_stays_within_half_a_step() {
        for law in [Law::Mu, Law::A] {
            // Away from the clipping ends, the error is at most half the segment's step, and the
            // step is never more than 1/16 of the magnitude (or 16 near zero).
            for s in (-32000i32..=32000).step_by(7) {
                let back = law.decode(law.encode(s as i16)) as i32;
                let bound = s.abs() / 16 + 16;
                assert!((back - s).abs() <= bound, "{law:?} {s} -> {back}");
            }
        }
    }

    #[test]
    fn slice_helpers() {
        let pcm = [0i16, 1000, -1000, 32000];
        let mut bytes = [0u8; 4];
        assert_eq!(Law::A.encode_into(&pcm, &mut bytes), 4);
        let mut back = [0i16; 3];
        assert_eq!(Law::A.decode_into(&bytes, &mut back), 3);
        assert_eq!(back[0], 8);
        assert!((back[1] - 1000).abs() <= 32);
    }
}
