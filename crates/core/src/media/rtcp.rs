//! RTCP (RFC 3550 §6): the compound SR/RR + SDES (+ BYE) packets a phone sends, a tolerant reader
//! for what comes back, and the randomised report interval of §6.2.
//!
//! A phone's RTCP is mostly for the peer's benefit (loss and jitter figures, liveness); what we
//! read back is the peer's sender report time, so our reports can carry LSR/DLSR for its
//! round-trip estimate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;

/// Why an RTCP datagram was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtcpError {
    /// Shorter than a header or than its length field says.
    #[error("RTCP packet truncated: {len} bytes, needs {need}")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Version is not 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
}

/// Our sending statistics, for a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// Wall clock as a 64-bit NTP timestamp.
    pub ntp: u64,
    /// The RTP timestamp matching that instant.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// Reception statistics about one source (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost in total (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP time.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// What we read from a received compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpReport {
    /// A sender report: its SSRC and the middle 32 bits of its NTP time.
    Sender {
        /// Sender's SSRC.
        ssrc: u32,
        /// Middle 32 bits of its NTP timestamp (echoed as LSR).
        ntp_middle: u32,
    },
    /// A receiver report.
    Receiver {
        /// Reporter's SSRC.
        ssrc: u32,
    },
    /// A reception report block carried by the SR or RR before it: how the reporter hears `ssrc`.
    Block(ReportBlock),
    /// The source is leaving.
    Bye {
        /// Its SSRC.
        ssrc: u32,
    },
    /// Anything else (SDES, APP, feedback): skipped.
    Other(u8),
}

/// The current time as an NTP timestamp (seconds since 1900 in the high 32 bits).
pub fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    (secs << 32) | (((d.subsec_nanos() as u64) << 32) / 1_000_000_000)
}

/// The next report interval: `base` × a uniform factor in 0.5..1.5 (RFC 3550 §6.2), so the
/// reports of many members do not synchronise.
pub fn randomised_interval(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.5 + unit.clamp(0.0, 1.0))
}

/// Writes a compound packet: SR (with `sender`) or RR, up to one report block, SDES CNAME, and
/// a BYE when `bye` is set.
pub fn build_compound(
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    cname: &str,
    bye: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    let rc = u8::from(block.is_some());
    let start = out.len();
    out.extend_from_slice(&[0x80 | rc, if sender.is_some() { SR } else { RR }, 0, 0]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(s) = sender {
        out.extend_from_slice(&s.ntp.to_be_bytes());
        out.extend_from_slice(&s.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&s.packets.to_be_bytes());
        out.extend_from_slice(&s.octets.to_be_bytes());
    }
    if let Some(b) = block {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0xFF_FFFF;
        out.extend_from_slice(&((b.fraction_lost as u32) << 24 | lost).to_be_bytes());
        for v in [b.highest_seq, b.jitter, b.last_sr, b.delay_since_last_sr] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    set_length(out, start);
    // SDES with one chunk: our SSRC, CNAME, end of items, padded to a 32-bit boundary.
    let start = out.len();
    out.extend_from_slice(&[0x81, SDES, 0, 0]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    let name = &cname.as_bytes()[..cname.len().min(255)];
    out.extend_from_slice(&[1, name.len() as u8]);
    out.extend_from_slice(name);
    out.push(0);
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    set_length(out, start);
    if bye {
        let start = out.len();
        out.extend_from_slice(&[0x81, BYE, 0, 0]);
        out.extend_from_slice(&ssrc.to_be_bytes());
        set_length(out, start);
    }
}

/// Fills the length field (32-bit words minus one) of the packet starting at `start`.
fn set_length(out: &mut [u8], start: usize) {
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

/// Reads the packets of a compound datagram.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpReport>, RtcpError> {
    let mut pos = 0;
    let mut reports = Vec::new();
    while pos < buf.len() {
        if buf.len() < pos + 8 {
            return Err(RtcpError::Truncated { len: buf.len() - pos, need: 8 });
        }
        let version = buf[pos] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let pt = buf[pos + 1];
        let len = (u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize + 1) * 4;
        if buf.len() < pos + len {
            return Err(RtcpError::Truncated { len: buf.len() - pos, need: len });
        }
        let word = |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let ssrc = word(pos + 4);
        reports.push(match pt {
            SR if len >= 28 => RtcpReport::Sender { ssrc, ntp_middle: (word(pos + 8) << 16) | (word(pos + 12) >> 16) },
            RR => RtcpReport::Receiver { ssrc },
            BYE => RtcpReport::Bye { ssrc },
            other => RtcpReport::Other(other),
        });
        if pt == SR || pt == RR {
            // Report blocks follow the header (and the sender info of an SR), 24 bytes each;
            // a count the length cannot hold is cut to what is there.
            let first = pos + if pt == SR { 28 } else { 8 };
            let count = (buf[pos] & 0x1F) as usize;
            for k in 0..count {
                let at = first + 24 * k;
                if at + 24 > pos + len {
                    break;
                }
                let lost = word(at + 4);
                reports.push(RtcpReport::Block(ReportBlock {
                    ssrc: word(at),
                    fraction_lost: (lost >> 24) as u8,
                    // 24-bit two's complement.
                    cumulative_lost: ((lost << 8) as i32) >> 8,
                    highest_seq: word(at + 8),
                    jitter: word(at + 12),
                    last_sr: word(at + 16),
                    delay_since_last_sr: word(at + 20),
                }));
            }
        }
        pos += len;
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_round_trips_and_lengths_are_consistent() {
        let mut buf = Vec::new();
        let sender = SenderInfo { ntp: 0x1122_3344_5566_7788, rtp_timestamp: 160, packets: 5, octets: 800 };
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 70000,
            jitter: 12,
            last_sr: 1,
            delay_since_last_sr: 2,
        };
        build_compound(42, Some(sender), Some(block), "sipdesk@127.0.0.1", true, &mut buf);
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(&buf[..2], &[0x81, 200]);
        let got = parse_compound(&buf).unwrap();
        assert_eq!(
            got,
            vec![
                RtcpReport::Sender { ssrc: 42, ntp_middle: 0x3344_5566 },
                RtcpReport::Block(block),
                RtcpReport::Other(202),
                RtcpReport::Bye { ssrc: 42 }
            ]
        );
        // Cumulative lost is 24-bit two's complement.
        assert_eq!(&buf[32..36], &[25, 0xFF, 0xFF, 0xFD]);
    }

    #[test]
    fn receiver_report_without_blocks() {
        let mut buf = Vec::new();
        build_compound(7, None, None, "x", false, &mut buf);
        assert_eq!(parse_compound(&buf).unwrap(), vec![RtcpReport::Receiver { ssrc: 7 }, RtcpReport::Other(202)]);
    }

    #[test]
    fn malformed_rtcp_is_an_error() {
        assert_eq!(parse_compound(&[0x80, 201, 0]), Err(RtcpError::Truncated { len: 3, need: 8 }));
        assert_eq!(parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 0]), Err(RtcpError::BadVersion(1)));
        assert_eq!(parse_compound(&[0x80, 201, 0, 5, 0, 0, 0, 0]), Err(RtcpError::Truncated { len: 8, need: 24 }));
    }

    #[test]
    fn interval_is_randomised_between_half_and_one_and_a_half() {
        let base = Duration::from_secs(5);
        assert_eq!(randomised_interval(base, 0.0), Duration::from_millis(2500));
        assert_eq!(randomised_interval(base, 1.0), Duration::from_millis(7500));
        assert_eq!(randomised_interval(base, 7.0), Duration::from_millis(7500));
        assert!(ntp_now() >> 32 > 3_900_000_000);
    }
}
