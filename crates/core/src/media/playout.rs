//! The playout stretcher: turns decoded 20 ms frames into 20 ms of output while consuming them a
//! little faster or slower, so the jitter buffer's delay can drift toward its target without a
//! skipped or repeated frame (each of which would click).
//!
//! It reads its input at a fractional position that advances by the ratio per output sample. At
//! ratio 1 the position snaps to whole samples, so audio passes through bit for bit. While
//! stretching it interpolates with a 4-point cubic (Catmull-Rom): linear interpolation dulls the
//! top of the telephone band (3 kHz by 3.6 dB on average, the cubic by 2), which speech
//! recognition notices. It then reads
//! [`LAG`] samples behind the position, so every neighbour is already here: a frame is pulled
//! only when the position reaches it, never a whole frame early for the sake of one sample (with
//! the jitter buffer at its one-packet floor that packet has not arrived yet: it would be
//! concealed, then dropped as late). Its buffer is allocated once.

/// Samples read behind the position while stretching (the cubic's two neighbours ahead).
const LAG: f64 = 2.0;
/// Played samples kept before the position: the cubic's neighbours behind.
const HISTORY: usize = 3;

/// Fractional-rate reader over a stream of frames.
pub struct Stretcher {
    /// The last [`HISTORY`] played samples (fewer at the start), then what is to play.
    buf: Vec<i16>,
    frame: usize,
    pos: f64,
}

impl Stretcher {
    /// A stretcher over frames of `frame` samples.
    pub fn new(frame: usize) -> Stretcher {
        let frame = frame.max(1);
        Stretcher { buf: Vec::with_capacity(frame * 3 + HISTORY), frame, pos: 0.0 }
    }

    /// Samples buffered and not yet played.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.pos.floor() as usize)
    }

    /// Fills `out`, consuming input `ratio` times as fast as it plays; `pull` writes the next
    /// frame (exactly `frame` samples) into the slice it is given.
    pub fn produce(&mut self, out: &mut [i16], ratio: f64, mut pull: impl FnMut(&mut [i16])) {
        let ratio = ratio.clamp(0.5, 2.0);
        if ratio == 1.0 {
            // Back at real time: land on a whole sample so audio passes through untouched (half
            // a sample's jump is inaudible).
            self.pos = self.pos.round();
        }
        let lag = if ratio == 1.0 { 0.0 } else { LAG };
        for o in out.iter_mut() {
            let mut i = self.pos.floor() as usize;
            if i >= self.buf.len() {
                // Drop what has been played but the history, then append a frame (within
                // capacity: no allocation).
                let drop = i.min(self.buf.len()).saturating_sub(HISTORY);
                self.buf.drain(..drop);
                self.pos -= drop as f64;
                i -= drop;
                while i >= self.buf.len() {
                    let start = self.buf.len();
                    self.buf.resize(start + self.frame, 0);
                    pull(&mut self.buf[start..]);
                }
            }
            // Read at pos - lag: neighbours j - 1 ..= j + 2, the last of which is at most `i`.
            // Before the stream's first sample, the first one stands in.
            let x = self.pos - lag;
            let j = x.floor();
            let t = x - j;
            let at = |k: f64| f64::from(self.buf[k.max(0.0) as usize]);
            let p1 = at(j);
            *o = if t == 0.0 {
                p1
            } else {
                let (p0, p2, p3) = (at(j - 1.0), at(j + 1.0), at(j + 2.0));
                p1 + 0.5 * t * (p2 - p0 + t * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + t * (3.0 * (p1 - p2) + p3 - p0)))
            }
            .round()
            .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
            self.pos += ratio;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_frames(frame: usize) -> impl FnMut(&mut [i16]) {
        let mut n = 0i16;
        move |buf: &mut [i16]| {
            for s in buf.iter_mut().take(frame) {
                *s = n;
                n = n.wrapping_add(1);
            }
        }
    }

    #[test]
    fn ratio_one_passes_audio_through_unchanged() {
        let mut st = Stretcher::new(160);
        let mut pull = counting_frames(160);
        let mut out = [0i16; 160];
        for k in 0..5 {
            st.produce(&mut out, 1.0, &mut pull);
            let expect: Vec<i16> = (k * 160..(k + 1) * 160).map(|v| v as i16).collect();
            assert_eq!(out.to_vec(), expect);
        }
        assert!(st.buffered() < 160 + 1);
    }

    #[test]
    fn faster_and_slower_consume_more_and_fewer_frames() {
        for (ratio, frames) in [(1.02, 102), (0.98, 98)] {
            let mut st = Stretcher::new(160);
            let mut pulled = 0;
            let mut out = [0i16; 160];
            for tick in 0..100 {
                st.produce(&mut out, ratio, |b: &mut [i16]| {
                    pulled += 1;
                    b.fill(1000);
                });
                assert!(out.iter().all(|&s| s == 1000), "constant input stays constant at {ratio}, tick {tick}");
            }
            assert!((pulled as i64 - frames).abs() <= 1, "ratio {ratio}: pulled {pulled}");
        }
    }

    #[test]
    fn stretching_never_pulls_a_frame_before_its_first_sample_is_due() {
        for ratio in [1.02, 1.01, 0.98] {
            let mut st = Stretcher::new(160);
            let (mut pulled, mut consumed) = (0usize, 0.0f64);
            let mut out = [0i16; 160];
            for tick in 0..200 {
                st.produce(&mut out, ratio, |b: &mut [i16]| {
                    pulled += 1;
                    b.fill(1);
                });
                consumed += 160.0 * ratio;
                // The frames pulled hold at most the one now playing beyond what was consumed.
                let due = (consumed / 160.0).floor() as usize + 1;
                assert!(pulled <= due, "ratio {ratio}, tick {tick}: {pulled} frames pulled, {due} due");
            }
        }
    }

    #[test]
    fn stretching_keeps_the_top_of_the_telephone_band() {
        // A 3 kHz tone at 8 kHz, stretched by 1%: the cubic loses about 2 dB of it on average
        // (linear interpolation 3.6 dB, up to 8 dB half-way between samples).
        let mut st = Stretcher::new(160);
        let mut t = 0usize;
        let mut out = [0i16; 160];
        let (mut sum, mut n) = (0.0f64, 0usize);
        for tick in 0..50 {
            st.produce(&mut out, 1.01, |b: &mut [i16]| {
                for s in b.iter_mut() {
                    *s = (10000.0 * (std::f64::consts::TAU * 3000.0 * t as f64 / 8000.0).sin()) as i16;
                    t += 1;
                }
            });
            if tick >= 5 {
                sum += out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
                n += out.len();
            }
        }
        let db = 20.0 * ((sum / n as f64).sqrt() / (10000.0 / 2f64.sqrt())).log10();
        assert!(db > -2.5, "3 kHz came out at {db:.1} dB");
    }

    #[test]
    fn stretching_keeps_a_tone_smooth() {
        // A 500 Hz sine at 8 kHz, stretched by 2%: no step between samples larger than the sine's own.
        let mut st = Stretcher::new(160);
        let mut t = 0usize;
        let mut out = [0i16; 160];
        let mut prev: Option<i16> = None;
        let max_step = (10000.0 * 2.0 * std::f64::consts::PI * 500.0 / 8000.0) * 1.05;
        for _ in 0..50 {
            st.produce(&mut out, 0.98, |b: &mut [i16]| {
                for s in b.iter_mut() {
                    *s = (10000.0 * (2.0 * std::f64::consts::PI * 500.0 * t as f64 / 8000.0).sin()) as i16;
                    t += 1;
                }
            });
            for &s in &out {
                if let Some(p) = prev {
                    assert!(f64::from((s - p).abs()) <= max_step, "step {p} -> {s}");
                }
                prev = Some(s);
            }
        }
    }
}
