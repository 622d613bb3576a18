//! The playout stretcher: turns decoded 20 ms frames into 20 ms of output while consuming them a
//! little faster or slower, so the jitter buffer's delay can drift toward its target without a
//! skipped or repeated frame (each of which would click).
//!
//! It reads its input at a fractional position that advances by the ratio per output sample and
//! interpolates linearly between neighbours. At ratio 1 the position snaps to whole samples, so
//! audio passes through bit for bit and a frame is pulled only when the position reaches it: the
//! stretcher then holds less than one frame (one more while stretching). Its buffer is allocated
//! once.

/// Fractional-rate reader over a stream of frames.
pub struct Stretcher {
    buf: Vec<i16>,
    frame: usize,
    pos: f64,
}

impl Stretcher {
    /// A stretcher over frames of `frame` samples.
    pub fn new(frame: usize) -> Stretcher {
        Stretcher { buf: Vec::with_capacity(frame * 3), frame: frame.max(1), pos: 0.0 }
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
            // Back at real time: land on a whole sample so audio passes through untouched and
            // no neighbour has to be fetched ahead (half a sample's jump is inaudible).
            self.pos = self.pos.round();
        }
        for o in out.iter_mut() {
            let mut i = self.pos.floor() as usize;
            if i >= self.buf.len() {
                // Drop what has been played, then append a frame (within capacity: no allocation).
                let played = i.min(self.buf.len());
                self.buf.drain(..played);
                self.pos -= played as f64;
                i -= played;
                while i >= self.buf.len() {
                    let start = self.buf.len();
                    self.buf.resize(start + self.frame, 0);
                    pull(&mut self.buf[start..]);
                }
            }
            let frac = self.pos - i as f64;
            if frac > 0.0 && i + 1 >= self.buf.len() {
                // Interpolating needs the next frame's first sample.
                let start = self.buf.len();
                self.buf.resize(start + self.frame, 0);
                pull(&mut self.buf[start..]);
            }
            let a = f64::from(self.buf[i]);
            let b = self.buf.get(i + 1).map_or(a, |&s| f64::from(s));
            *o = (a + (b - a) * frac).round() as i16;
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
            for _ in 0..100 {
                st.produce(&mut out, ratio, |b: &mut [i16]| {
                    pulled += 1;
                    b.fill(1000);
                });
                assert!(out.iter().all(|&s| s == 1000), "constant input stays constant at {ratio}");
            }
            assert!((pulled as i64 - frames).abs() <= 1, "ratio {ratio}: pulled {pulled}");
        }
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
