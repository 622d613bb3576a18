//! A fixed jitter buffer for 20 ms audio packets, with loss concealment for G.711.
//!
//! Packets go in keyed by their extended sequence number (from [`super::rtp::SequenceTracker`]),
//! already decoded to frames; the playout clock takes one frame out every 20 ms. Playout starts
//! once `depth` frames are held (60 ms by default), which absorbs that much network jitter at the
//! cost of that much delay. A missing frame is concealed by repeating the last one at falling
//! gain (G.711 has no concealment of its own; Appendix I of G.711 does better, later), and a long
//! gap goes quiet and buffers again. The slots are allocated once; nothing allocates afterwards.

use super::frame::{Frame, SampleRate};

/// Default depth: 3 frames = 60 ms.
pub const DEFAULT_DEPTH: usize = 3;

/// Concealed frames before giving up and going quiet (100 ms).
const MAX_CONCEAL: u32 = 5;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored for playout.
    Accepted,
    /// Already held or already played.
    Duplicate,
    /// Its turn to play has passed.
    Late,
    /// So far ahead of playout that the stream must have jumped: the buffer restarted from it.
    Resynced,
}

/// What the playout clock got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// A received frame.
    Frame,
    /// A lost frame, concealed from the previous one.
    Concealed,
    /// Nothing to play (filling up, or a long gap): silence.
    Silence,
}

/// Counters for statistics and RTCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames played as received.
    pub played: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Packets dropped as late.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Times the buffer restarted on a jump.
    pub resyncs: u64,
}

struct Slot {
    seq: u64,
    full: bool,
    frame: Frame,
}

/// The buffer.
pub struct JitterBuffer {
    slots: Vec<Slot>,
    depth: usize,
    rate: SampleRate,
    /// Next sequence to play; None while filling.
    next: Option<u64>,
    /// Highest sequence already played or skipped, to tell late packets.
    played_up_to: Option<u64>,
    held: usize,
    last: Frame,
    conceal_run: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer that starts playing when `depth` frames are held.
    pub fn new(rate: SampleRate, depth: usize) -> JitterBuffer {
        let depth = depth.max(1);
        // Room for the depth plus as much again of early arrivals.
        let capacity = depth * 4 + 4;
        let slots = (0..capacity).map(|_| Slot { seq: 0, full: false, frame: Frame::silence(rate) }).collect();
        JitterBuffer {
            slots,
            depth,
            rate,
            next: None,
            played_up_to: None,
            held: 0,
            last: Frame::silence(rate),
            conceal_run: 0,
            stats: JitterStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Forgets everything (a new SSRC starts a new stream).
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| s.full = false);
        self.held = 0;
        self.next = None;
        self.played_up_to = None;
        self.conceal_run = 0;
    }

    /// Stores the frame with extended sequence number `seq`.
    pub fn push(&mut self, seq: u64, frame: &Frame) -> Pushed {
        if self.played_up_to.is_some_and(|p| seq <= p) {
            self.stats.late += 1;
            return Pushed::Late;
        }
        let cap = self.slots.len() as u64;
        let base = self.next.or(self.played_up_to.map(|p| p + 1)).or_else(|| self.lowest_held()).unwrap_or(seq);
        let mut result = Pushed::Accepted;
        if seq >= base + cap {
            self.reset();
            self.stats.resyncs += 1;
            result = Pushed::Resynced;
        }
        let i = (seq % cap) as usize;
        let slot = &mut self.slots[i];
        if slot.full && slot.seq == seq {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        if !slot.full {
            self.held += 1;
        }
        slot.seq = seq;
        slot.full = true;
        slot.frame.clone_from(frame);
        result
    }

    fn lowest_held(&self) -> Option<u64> {
        self.slots.iter().filter(|s| s.full).map(|s| s.seq).min()
    }

    /// Takes the next 20 ms of audio into `out`.
    pub fn pop(&mut self, out: &mut Frame) -> Playout {
        let next = match self.next {
            Some(n) => n,
            None if self.held >= self.depth => {
                let low = self.lowest_held().unwrap_or(0);
                self.next = Some(low);
                low
            }
            None => {
                out.reset(self.rate);
                return Playout::Silence;
            }
        };
        self.next = Some(next + 1);
        self.played_up_to = Some(next);
        let cap = self.slots.len() as u64;
        let slot = &mut self.slots[(next % cap) as usize];
        if slot.full && slot.seq == next {
            slot.full = false;
            self.held -= 1;
            out.clone_from(&slot.frame);
            self.last.clone_from(&slot.frame);
            self.conceal_run = 0;
            self.stats.played += 1;
            return Playout::Frame;
        }
        self.conceal_run += 1;
        if self.conceal_run > MAX_CONCEAL {
            // A long gap: stop inventing audio and fill up again before playing.
            if self.held == 0 {
                self.next = None;
            }
            out.reset(self.rate);
            return Playout::Silence;
        }
        // Repeat the last frame, fading: each concealed frame is half as loud as the one before,
        // with a ramp inside the frame so the step is not a click.
        let n = self.last.samples().len();
        let g0 = 0.5f32.powi(self.conceal_run as i32 - 1);
        out.reset(self.rate);
        for (i, (o, s)) in out.samples_mut().iter_mut().zip(self.last.samples()).enumerate() {
            let g = g0 * (1.0 - 0.5 * i as f32 / n as f32);
            *o = (*s as f32 * g) as i16;
        }
        self.stats.concealed += 1;
        Playout::Concealed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Frame {
        Frame::from_samples(SampleRate::Hz8000, &[v; 160]).unwrap()
    }

    fn play(jb: &mut JitterBuffer, n: usize) -> Vec<(Playout, i16)> {
        let mut out = Frame::silence(SampleRate::Hz8000);
        (0..n)
            .map(|_| {
                let p = jb.pop(&mut out);
                (p, out.samples()[0])
            })
            .collect()
    }

    #[test]
    fn fills_to_depth_then_plays_in_sequence_order() {
        let mut jb = JitterBuffer::new(SampleRate::Hz8000, 3);
        assert_eq!(jb.push(101, &frame(101)), Pushed::Accepted);
        assert_eq!(play(&mut jb, 1), vec![(Playout::Silence, 0)]);
        jb.push(100, &frame(100));
        jb.push(102, &frame(102));
        assert_eq!(jb.len(), 3);
        assert_eq!(play(&mut jb, 3), vec![(Playout::Frame, 100), (Playout::Frame, 101), (Playout::Frame, 102)]);
        assert!(jb.is_empty());
    }

    #[test]
    fn duplicates_and_late_packets_are_dropped() {
        let mut jb = JitterBuffer::new(SampleRate::Hz8000, 2);
        jb.push(10, &frame(10));
        assert_eq!(jb.push(10, &frame(10)), Pushed::Duplicate);
        jb.push(11, &frame(11));
        play(&mut jb, 2);
        assert_eq!(jb.push(10, &frame(10)), Pushed::Late);
        assert_eq!(jb.push(11, &frame(11)), Pushed::Late);
        assert_eq!(jb.stats(), JitterStats { played: 2, late: 2, duplicates: 1, ..Default::default() });
    }

    #[test]
    fn loss_is_concealed_by_fading_repeats_then_silence() {
        let mut jb = JitterBuffer::new(SampleRate::Hz8000, 1);
        jb.push(0, &frame(1000));
        let out = play(&mut jb, 8);
        assert_eq!(out[0], (Playout::Frame, 1000));
        assert_eq!(out[1], (Playout::Concealed, 1000));
        assert_eq!(out[2], (Playout::Concealed, 500));
        assert_eq!(out[5], (Playout::Concealed, 62));
        assert_eq!(out[6], (Playout::Silence, 0));
        // After the gap it fills again and plays what arrives next.
        jb.push(40, &frame(40));
        assert_eq!(play(&mut jb, 1), vec![(Playout::Frame, 40)]);
    }

    #[test]
    fn a_single_loss_is_concealed_and_playout_continues() {
        let mut jb = JitterBuffer::new(SampleRate::Hz8000, 2);
        for s in [0u64, 1, 3, 4] {
            jb.push(s, &frame(s as i16 + 1));
        }
        let kinds: Vec<Playout> = play(&mut jb, 5).into_iter().map(|(p, _)| p).collect();
        assert_eq!(kinds, vec![Playout::Frame, Playout::Frame, Playout::Concealed, Playout::Frame, Playout::Frame]);
    }

    #[test]
    fn a_jump_far_ahead_resyncs() {
        let mut jb = JitterBuffer::new(SampleRate::Hz8000, 1);
        jb.push(5, &frame(5));
        play(&mut jb, 1);
        assert_eq!(jb.push(5000, &frame(9)), Pushed::Resynced);
        assert_eq!(play(&mut jb, 1), vec![(Playout::Frame, 9)]);
        assert_eq!(jb.stats().resyncs, 1);
    }
}
