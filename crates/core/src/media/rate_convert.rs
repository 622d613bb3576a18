//! Streaming sample-rate conversion between an audio device's rate and a call's rate.
//!
//! *Choice: rubato's synchronous FFT resampler.* The two rates are fixed for the life of a
//! stream, so the synchronous resampler fits: it band-limits properly (no fold-back of what lies
//! above the lower Nyquist frequency, unlike linear interpolation) at a fraction of the cost of a
//! sinc resampler, and its `process_into_buffer` neither allocates nor blocks. It works on whole
//! chunks of 20 ms (device rate in, call rate out), which is what the call side moves anyway;
//! any rest is kept for the next call, so pieces of any size join without clicks.
//!
//! This runs on the call side, never in a device callback: the callbacks only move samples.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Converts a stream of mono samples from one rate to another, in pieces of any size.
pub struct RateConverter {
    fft: Option<Box<Fft<f32>>>,
    /// Input collected until a whole chunk is there.
    input: Vec<f32>,
    filled: usize,
    output: Vec<f32>,
}

impl RateConverter {
    /// A converter from `from` Hz to `to` Hz (a plain copy when they are equal). Allocates its
    /// buffers here, once.
    pub fn new(from: u32, to: u32) -> RateConverter {
        // 20 ms chunks: the call side's frame; sub-chunks of about 256 samples keep the delay low.
        let fft = (from != to)
            .then(|| Fft::<f32>::new(from as usize, to as usize, (from / 50).max(1) as usize, 1, FixedSync::Both))
            .and_then(|r| match r {
                Ok(fft) => Some(Box::new(fft)),
                Err(e) => {
                    tracing::error!(from, to, "no resampler ({e}); the audio will play at the wrong pitch");
                    None
                }
            });
        let (chunk_in, chunk_out) = fft.as_ref().map_or((0, 0), |f| (f.input_frames_max(), f.output_frames_max()));
        RateConverter { fft, input: vec![0.0; chunk_in], filled: 0, output: vec![0.0; chunk_out] }
    }

    /// Converts `input` and appends what is ready to `out`. Allocation-free as long as `out` has
    /// room for what comes out (the callers size it for a few frames).
    pub fn process(&mut self, mut input: &[i16], out: &mut Vec<i16>) {
        let Some(fft) = self.fft.as_mut() else {
            out.extend_from_slice(input);
            return;
        };
        while !input.is_empty() {
            let need = fft.input_frames_next();
            let take = (need - self.filled).min(input.len());
            for (dst, &s) in self.input[self.filled..self.filled + take].iter_mut().zip(input) {
                *dst = f32::from(s) / 32768.0;
            }
            self.filled += take;
            input = &input[take..];
            if self.filled < need {
                return;
            }
            self.filled = 0;
            let produced = match (
                InterleavedSlice::new(&self.input[..need], 1, need),
                InterleavedSlice::new_mut(&mut self.output[..], 1, fft.output_frames_max()),
            ) {
                (Ok(i), Ok(mut o)) => fft.process_into_buffer(&i, &mut o, None).map_or(0, |(_, n)| n),
                _ => 0,
            };
            out.extend(self.output[..produced].iter().map(|&v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
        (0..n).map(|i| (amp * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as i16).collect()
    }

    fn zero_crossing_hz(s: &[i16], rate: u32) -> f64 {
        let c = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        c as f64 / 2.0 / (s.len() as f64 / f64::from(rate))
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn keeps_pitch_level_and_length_across_odd_pieces() {
        for (from, to) in [(48_000, 8_000), (8_000, 48_000), (44_100, 8_000), (8_000, 44_100), (16_000, 16_000)] {
            let input = sine(700.0, from, from as usize * 2, 8000.0);
            let mut r = RateConverter::new(from, to);
            let mut out = Vec::new();
            // Pieces the size a device callback might deliver, not whole chunks.
            for piece in input.chunks(441) {
                r.process(piece, &mut out);
            }
            // All but at most one chunk (still collecting) comes out.
            assert!(
                out.len() + to as usize / 50 >= 2 * to as usize && out.len() <= 2 * to as usize,
                "{from}->{to}: {}",
                out.len()
            );
            let steady = &out[to as usize / 5..];
            let f = zero_crossing_hz(steady, to);
            assert!((f - 700.0).abs() < 3.0, "{from}->{to}: {f} Hz");
            assert!((rms(steady) / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.05, "{from}->{to}: rms {}", rms(steady));
        }
    }

    #[test]
    fn what_lies_above_the_new_nyquist_is_removed() {
        // 6 kHz cannot exist at 8 kHz: a linear resampler folds it back to 2 kHz at high level.
        let input = sine(6000.0, 48_000, 48_000, 10000.0);
        let mut r = RateConverter::new(48_000, 8_000);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let peak = out[800..].iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 100, "6 kHz leaks into 8 kHz at {peak}");
    }
}
