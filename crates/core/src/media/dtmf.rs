//! DTMF as RFC 4733 telephone-events: the sender's schedule and the receiver's de-duplication.
//!
//! *Sending.* Each digit is one event: a packet every 20 ms (in place of audio) carrying the
//! same RTP timestamp (the event's start) and a growing duration, the first with the marker bit,
//! and the end packet sent three times (4733 §2.5.1.4). Durations count in the clock of the
//! negotiated `telephone-event` rtpmap, which may differ from the audio codec's (peers pair
//! telephone-event/8000 with Opus's 48 kHz). A 60 ms pause of plain audio separates digits.
//!
//! *Receiving.* An event is known by its timestamp: it is reported once, on whichever of its
//! packets arrives first, so a lost start packet or the repeated end packets change nothing.

use std::collections::VecDeque;

use super::rtp::TelephoneEvent;

/// Tone length of a digit we send.
pub const DIGIT_MS: u32 = 100;
/// Audio between two digits we send.
const GAP_MS: u32 = 60;
/// Digits waiting to be sent, at most (a paste of a long number is cut, with a log line).
const QUEUE_MAX: usize = 64;
/// Volume of the events we send, -dBm0 (4733 §2.3.4 suggests around 10).
const VOLUME: u8 = 10;

/// The DTMF character of an event code, if it is one (0-9, *, #, A-D).
pub fn digit_of(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// What the sender wants on the wire this 20 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSlot {
    /// Send audio as usual.
    Audio,
    /// Send this event packet in place of audio, with the event's start timestamp.
    Event {
        /// The payload.
        event: TelephoneEvent,
        /// RTP timestamp of the event's start.
        timestamp: u32,
        /// Marker bit (the event's first packet).
        marker: bool,
    },
}

struct Current {
    code: u8,
    start_ts: u32,
    /// 20 ms packets sent so far.
    sent: u32,
    /// End packets still to send (3 in all).
    ends_left: u32,
}

/// Schedules the digits a call sends.
#[derive(Default)]
pub struct DtmfSender {
    queue: VecDeque<u8>,
    current: Option<Current>,
    gap_left_ms: u32,
}

impl DtmfSender {
    /// Queues a digit (`0-9 * # A-D`); false if it is not one or the queue is full.
    pub fn push(&mut self, digit: char) -> bool {
        match TelephoneEvent::dtmf_code(digit) {
            Some(code) if self.queue.len() < QUEUE_MAX => {
                self.queue.push_back(code);
                true
            }
            _ => false,
        }
    }

    /// True while digits are queued or being sent.
    pub fn busy(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// What to send in the 20 ms whose audio would carry `audio_ts`; `event_rate` is the
    /// telephone-event clock rate.
    pub fn next(&mut self, audio_ts: u32, event_rate: u32) -> DtmfSlot {
        if self.current.is_none() {
            if self.gap_left_ms > 0 {
                self.gap_left_ms = self.gap_left_ms.saturating_sub(20);
                return DtmfSlot::Audio;
            }
            let Some(code) = self.queue.pop_front() else { return DtmfSlot::Audio };
            self.current = Some(Current { code, start_ts: audio_ts, sent: 0, ends_left: 3 });
        }
        let cur = self.current.as_mut().expect("set above");
        let per_packet = event_rate / 50;
        let full = DIGIT_MS / 20;
        let marker = cur.sent == 0;
        cur.sent += 1;
        let ending = cur.sent >= full;
        let duration = (cur.sent.min(full) * per_packet).min(u32::from(u16::MAX)) as u16;
        let event = TelephoneEvent { event: cur.code, end: ending, volume: VOLUME, duration };
        let timestamp = cur.start_ts;
        if ending {
            cur.ends_left -= 1;
            if cur.ends_left == 0 {
                self.current = None;
                self.gap_left_ms = GAP_MS;
            }
        }
        DtmfSlot::Event { event, timestamp, marker }
    }
}

/// Reports each received event once.
#[derive(Default)]
pub struct DtmfReceiver {
    last_ts: Option<u32>,
}

impl DtmfReceiver {
    /// The digit of a newly started event carried by a packet with `timestamp`, if any.
    pub fn on_packet(&mut self, event: &TelephoneEvent, timestamp: u32) -> Option<char> {
        if self.last_ts == Some(timestamp) {
            return None;
        }
        self.last_ts = Some(timestamp);
        digit_of(event.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digit_is_five_packets_then_two_repeated_ends_then_a_gap() {
        let mut s = DtmfSender::default();
        assert!(s.push('5') && s.push('#') && !s.push('x'));
        let mut ts = 1000u32;
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(s.next(ts, 8000));
            ts += 960; // Opus audio clock: the event clock stays at 8 kHz.
        }
        let events: Vec<(u8, bool, u16, u32, bool)> = got
            .iter()
            .filter_map(|g| match g {
                DtmfSlot::Event { event, timestamp, marker } => {
                    Some((event.event, event.end, event.duration, *timestamp, *marker))
                }
                DtmfSlot::Audio => None,
            })
            .collect();
        assert_eq!(
            &events[..7],
            &[
                (5, false, 160, 1000, true),
                (5, false, 320, 1000, false),
                (5, false, 480, 1000, false),
                (5, false, 640, 1000, false),
                (5, true, 800, 1000, false),
                (5, true, 800, 1000, false),
                (5, true, 800, 1000, false),
            ]
        );
        // 60 ms of audio, then '#' starts with its own timestamp and the marker.
        assert_eq!(&got[7..10], &[DtmfSlot::Audio; 3]);
        assert_eq!(events[7], (11, false, 160, 1000 + 10 * 960, true));
        assert!(!s.busy(), "both digits went out within 20 slots");
    }

    #[test]
    fn the_receiver_reports_each_event_once() {
        let mut r = DtmfReceiver::default();
        let ev = |end| TelephoneEvent { event: 11, end, volume: 10, duration: 160 };
        assert_eq!(r.on_packet(&ev(false), 500), Some('#'));
        assert_eq!(r.on_packet(&ev(false), 500), None);
        assert_eq!(r.on_packet(&ev(true), 500), None);
        assert_eq!(r.on_packet(&ev(true), 1300), Some('#'), "a lost start still reports the event");
        assert_eq!(r.on_packet(&TelephoneEvent { event: 16, end: true, volume: 0, duration: 1 }, 9), None);
        assert_eq!(digit_of(14), Some('C'));
    }
}
