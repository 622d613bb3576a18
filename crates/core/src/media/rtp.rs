//! RTP packets (RFC 3550 §5.1), sequence and timestamp unwrapping, and telephone-event payloads
//! (RFC 4733 §2.3).
//!
//! Parsing borrows the packet (it allocates only to list CSRCs, which a phone's packets do not
//! carry); building writes into a caller's buffer, so
//! the send loop reuses one buffer for the whole call. Anything malformed is an [`RtpError`],
//! never a panic: packets come from the network.

use thiserror::Error;

/// Size of the fixed RTP header.
pub const HEADER_LEN: usize = 12;

/// Why a packet was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than its header says it must be.
    #[error("RTP packet too short: {len} bytes, needs at least {need}")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes the header requires.
        need: usize,
    },
    /// Version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The padding count is zero or runs into the header.
    #[error("RTP padding of {padding} bytes does not fit a {len}-byte packet")]
    BadPadding {
        /// Padding length from the last byte.
        padding: usize,
        /// Packet length.
        len: usize,
    },
    /// The caller's buffer cannot hold the packet being built.
    #[error("buffer of {have} bytes cannot hold a {need}-byte RTP packet")]
    BufferTooSmall {
        /// Buffer size.
        have: usize,
        /// Packet size.
        need: usize,
    },
    /// More than 15 CSRCs or a payload type above 127.
    #[error("invalid RTP header field: {0}")]
    InvalidField(&'static str),
    /// A telephone-event payload is not 4 bytes (or a multiple, for redundancy).
    #[error("telephone-event payload of {0} bytes, expected 4")]
    BadTelephoneEvent(usize),
}

/// The fields of an RTP header we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// Marker bit (start of a talkspurt; first packet of a telephone event).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (8000 per second for G.711).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// A parsed packet, borrowing the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header.
    pub header: RtpHeader,
    /// Contributing sources (the mixer's inputs); empty for a plain phone.
    pub csrcs: Vec<u32>,
    /// Header extension: (profile-defined id, data), if the X bit was set.
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses one datagram.
    pub fn parse(buf: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if buf.len() < HEADER_LEN {
            return Err(RtpError::TooShort { len: buf.len(), need: HEADER_LEN });
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padded = buf[0] & 0x20 != 0;
        let has_ext = buf[0] & 0x10 != 0;
        let cc = (buf[0] & 0x0F) as usize;
        let header = RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7F,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        };
        let mut pos = HEADER_LEN + 4 * cc;
        if buf.len() < pos {
            return Err(RtpError::TooShort { len: buf.len(), need: pos });
        }
        let csrcs =
            buf[HEADER_LEN..pos].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        let mut extension = None;
        if has_ext {
            if buf.len() < pos + 4 {
                return Err(RtpError::TooShort { len: buf.len(), need: pos + 4 });
            }
            let id = u16::from_be_bytes([buf[pos], buf[pos + 1]]);
            let words = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize;
            let end = pos + 4 + 4 * words;
            if buf.len() < end {
                return Err(RtpError::TooShort { len: buf.len(), need: end });
            }
            extension = Some((id, &buf[pos + 4..end]));
            pos = end;
        }
        let mut end = buf.len();
        if padded {
            let padding = buf[buf.len() - 1] as usize;
            if padding == 0 || pos + padding > buf.len() {
                return Err(RtpError::BadPadding { padding, len: buf.len() });
            }
            end -= padding;
        }
        Ok(RtpPacket { header, csrcs, extension, payload: &buf[pos..end] })
    }
}

impl RtpHeader {
    /// Writes this header (no CSRC, no extension, no padding) and `payload` into `out`;
    /// returns the packet length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        self.write_with_csrcs(&[], payload, out)
    }

    /// Like [`RtpHeader::write`], with contributing sources.
    pub fn write_with_csrcs(&self, csrcs: &[u32], payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        if csrcs.len() > 15 {
            return Err(RtpError::InvalidField("more than 15 CSRCs"));
        }
        if self.payload_type > 127 {
            return Err(RtpError::InvalidField("payload type above 127"));
        }
        let head = HEADER_LEN + 4 * csrcs.len();
        let need = head + payload.len();
        if out.len() < need {
            return Err(RtpError::BufferTooSmall { have: out.len(), need });
        }
        out[0] = 0x80 | csrcs.len() as u8;
        out[1] = (u8::from(self.marker) << 7) | self.payload_type;
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        for (i, c) in csrcs.iter().enumerate() {
            out[HEADER_LEN + 4 * i..HEADER_LEN + 4 * i + 4].copy_from_slice(&c.to_be_bytes());
        }
        out[head..need].copy_from_slice(payload);
        Ok(need)
    }
}

/// What [`SequenceTracker::observe`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The sequence number extended with a count of wraps (strictly ordered across wraps).
    pub extended_seq: u64,
    /// The timestamp extended the same way.
    pub extended_ts: u64,
    /// True on the first packet of a new SSRC after another one (the peer restarted its stream,
    /// e.g. after a re-INVITE or a transfer): the caller resets its state.
    pub ssrc_changed: bool,
}

/// Unwraps 16-bit sequence numbers and 32-bit timestamps of one stream, and notices a new SSRC.
#[derive(Debug, Clone, Default)]
pub struct SequenceTracker {
    state: Option<TrackState>,
}

#[derive(Debug, Clone, Copy)]
struct TrackState {
    ssrc: u32,
    highest_seq: u64,
    last_ts: u32,
    last_ext_ts: u64,
}

// Extended values start one cycle up so a packet reordered before the first one stays positive.
const SEQ_BASE: u64 = 1 << 16;
const TS_BASE: u64 = 1 << 32;

impl SequenceTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> SequenceTracker {
        SequenceTracker::default()
    }

    /// The current SSRC, if a packet has been seen.
    pub fn ssrc(&self) -> Option<u32> {
        self.state.map(|s| s.ssrc)
    }

    /// The highest extended sequence number seen.
    pub fn highest(&self) -> Option<u64> {
        self.state.map(|s| s.highest_seq)
    }

    /// Records one packet's header and returns its extended numbers.
    pub fn observe(&mut self, h: &RtpHeader) -> Observed {
        let fresh = TrackState {
            ssrc: h.ssrc,
            highest_seq: SEQ_BASE + h.sequence as u64,
            last_ts: h.timestamp,
            last_ext_ts: TS_BASE + h.timestamp as u64,
        };
        let st = match self.state {
            Some(st) if st.ssrc == h.ssrc => st,
            prev => {
                self.state = Some(fresh);
                return Observed {
                    extended_seq: fresh.highest_seq,
                    extended_ts: fresh.last_ext_ts,
                    ssrc_changed: prev.is_some(),
                };
            }
        };
        // The nearest value to the highest seen, counting a 16-bit wrap either way.
        let delta = h.sequence.wrapping_sub(st.highest_seq as u16) as i16 as i64;
        let ext = (st.highest_seq as i64 + delta).max(0) as u64;
        let ts_delta = h.timestamp.wrapping_sub(st.last_ts) as i32 as i64;
        let ext_ts = (st.last_ext_ts as i64 + ts_delta).max(0) as u64;
        let mut next = st;
        if ext > st.highest_seq {
            next.highest_seq = ext;
            next.last_ts = h.timestamp;
            next.last_ext_ts = ext_ts;
        }
        self.state = Some(next);
        Observed { extended_seq: ext, extended_ts: ext_ts, ssrc_changed: false }
    }
}

/// One RFC 4733 telephone-event (a DTMF digit or other event), 4 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash.
    pub event: u8,
    /// The E bit: last packets of the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event of a payload (later blocks are redundancy for the same event).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, RtpError> {
        if payload.len() < 4 || !payload.len().is_multiple_of(4) {
            return Err(RtpError::BadTelephoneEvent(payload.len()));
        }
        Ok(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// The 4-byte payload.
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3F), d[0], d[1]]
    }

    /// The event for a DTMF character (`0-9 * # A-D`), if it is one.
    pub fn dtmf_code(c: char) -> Option<u8> {
        match c.to_ascii_uppercase() {
            d @ '0'..='9' => Some(d as u8 - b'0'),
            '*' => Some(10),
            '#' => Some(11),
            l @ 'A'..='D' => Some(l as u8 - b'A' + 12),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: ts, ssrc: 0x1234_5678 }
    }

    #[test]
    fn build_then_parse_round_trips() {
        let h = RtpHeader { marker: true, payload_type: 8, sequence: 65535, timestamp: 0xDEAD_BEEF, ssrc: 42 };
        let mut buf = [0u8; 200];
        let n = h.write_with_csrcs(&[7, 9], &[1, 2, 3], &mut buf).unwrap();
        assert_eq!(n, 12 + 8 + 3);
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!((p.header, p.csrcs.as_slice(), p.payload, p.extension), (h, &[7u32, 9][..], &[1u8, 2, 3][..], None));
        assert_eq!(h.write(&[0; 10], &mut [0u8; 20]), Err(RtpError::BufferTooSmall { have: 20, need: 22 }));
        let bad = RtpHeader { payload_type: 200, ..h };
        assert!(matches!(bad.write(&[], &mut buf), Err(RtpError::InvalidField(_))));
    }

    #[test]
    fn padding_and_extension_are_stripped() {
        // V=2 P=1 X=1 CC=0, PT 0, then a 1-word extension, 2 payload bytes and 3 bytes of padding.
        let mut pkt = vec![0xB0, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0xAA, 0xBB, 0xCC, 0xDD]);
        pkt.extend_from_slice(&[0x11, 0x22, 0, 0, 3]);
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.payload, &[0x11, 0x22]);
        assert_eq!(p.extension, Some((0xBEDE, &[0xAA, 0xBB, 0xCC, 0xDD][..])));
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort { len: 5, need: 12 }));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        let mut cc = [0u8; 14];
        cc[0] = 0x82; // two CSRCs announced, none present
        assert_eq!(RtpPacket::parse(&cc), Err(RtpError::TooShort { len: 14, need: 20 }));
        let mut ext = [0u8; 16];
        ext[0] = 0x90;
        ext[15] = 5; // extension says 5 words follow
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::TooShort { len: 16, need: 36 }));
        let mut pad = [0u8; 13];
        pad[0] = 0xA0;
        pad[12] = 0; // zero padding count
        assert!(matches!(RtpPacket::parse(&pad), Err(RtpError::BadPadding { .. })));
        pad[12] = 20;
        assert!(matches!(RtpPacket::parse(&pad), Err(RtpError::BadPadding { padding: 20, .. })));
        // Garbage of every length never panics.
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0xB1) as u8).collect();
            let _ = RtpPacket::parse(&junk);
        }
    }

    #[test]
    fn sequence_and_timestamp_unwrap_across_wraps() {
        let mut t = SequenceTracker::new();
        let ts0 = u32::MAX - 159;
        let a = t.observe(&header(65534, ts0));
        let b = t.observe(&header(65535, ts0.wrapping_add(160)));
        let c = t.observe(&header(0, ts0.wrapping_add(320)));
        let d = t.observe(&header(1, ts0.wrapping_add(480)));
        assert_eq!(
            [b.extended_seq - a.extended_seq, c.extended_seq - a.extended_seq, d.extended_seq - a.extended_seq],
            [1, 2, 3]
        );
        assert!(c.extended_ts > b.extended_ts && d.extended_ts - a.extended_ts == 480);
        // A late packet from before the wrap still sorts before.
        let late = t.observe(&header(65533, ts0.wrapping_sub(160)));
        assert_eq!(late.extended_seq + 1, a.extended_seq);
        assert_eq!(t.highest(), Some(d.extended_seq));
    }

    #[test]
    fn ssrc_change_is_reported_once() {
        let mut t = SequenceTracker::new();
        assert!(!t.observe(&header(10, 0)).ssrc_changed);
        let other = RtpHeader { ssrc: 99, ..header(5000, 7) };
        assert!(t.observe(&other).ssrc_changed);
        assert!(!t.observe(&RtpHeader { sequence: 5001, ..other }).ssrc_changed);
        assert_eq!(t.ssrc(), Some(99));
    }

    #[test]
    fn telephone_events() {
        let e = TelephoneEvent { event: 11, end: true, volume: 10, duration: 1280 };
        assert_eq!(e.to_bytes(), [11, 0x8A, 0x05, 0x00]);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(RtpError::BadTelephoneEvent(3)));
        assert_eq!(TelephoneEvent::parse(&[5, 0x0A, 0, 160, 5, 0x0A, 0, 160]).unwrap().event, 5);
        let codes: Vec<Option<u8>> = "09*#aDx".chars().map(TelephoneEvent::dtmf_code).collect();
        assert_eq!(codes, vec![Some(0), Some(9), Some(10), Some(11), Some(12), Some(15), None]);
    }
}
