//! Streaming sample-rate conversion between an audio device's rate and a call's rate.
//!
//! *Choice: an exact polyphase FIR filter, sample by sample.* The two rates are fixed for the
//! life of a stream and their ratio is a small fraction (48 kHz to 8 kHz is 1/6, 44.1 kHz to
//! 8 kHz is 80/441), so each output sample is one dot product of the latest input samples with
//! one phase of a Kaiser-windowed sinc low-pass, the phases computed once in [`RateConverter::new`].
//! It band-limits properly: flat from 0 to 40% of the lower rate (3.2 kHz for 8 kHz, -0.8 dB at
//! 3.4 kHz), at least 70 dB down from the lower rate's Nyquist frequency on, so nothing folds
//! back and going up adds no images (linear interpolation does both). It delays audio by half
//! the filter, 2.7 ms each way, and costs well under 0.1% of a core for 48 <-> 8 kHz. A block
//! resampler (rubato's FFT resampler, used before) waits for a whole 20 ms chunk and added
//! about 10 ms each way. Output comes as soon as its input is there, so pieces of any size join
//! without clicks or waiting. Ratios that would need more than [`MAX_PHASES`] phases (no audio
//! device runs at such rates) go through rubato's sinc resampler on 1 ms chunks instead.
//!
//! This runs on the call side, never in a device callback: the callbacks only move samples.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType, WindowFunction};

/// The most filter phases (the rate ratio's numerator) the polyphase filter is built with.
const MAX_PHASES: usize = 1024;
/// Stop-band attenuation of the low-pass, dB.
const STOP_DB: f64 = 70.0;
/// The pass band ends at this fraction of the lower rate (0.4: 3.2 kHz at 8 kHz)...
const PASS_EDGE: f64 = 0.4;
/// ...and the stop band starts at its Nyquist frequency (4 kHz), so nothing folds back, and
/// going up adds no images either.
const STOP_EDGE: f64 = 0.5;

/// Converts a stream of mono samples from one rate to another, in pieces of any size.
pub struct RateConverter {
    kind: Kind,
}

enum Kind {
    /// Equal rates (or no resampler could be made): samples pass unchanged.
    Copy,
    Polyphase(Polyphase),
    Sinc(SincConverter),
}

impl RateConverter {
    /// A converter from `from` Hz to `to` Hz (a plain copy when they are equal). Allocates its
    /// buffers and filter here, once.
    pub fn new(from: u32, to: u32) -> RateConverter {
        let kind = if from == to || from == 0 || to == 0 {
            Kind::Copy
        } else if let Some(p) = Polyphase::new(from, to) {
            Kind::Polyphase(p)
        } else {
            SincConverter::new(from, to).map_or(Kind::Copy, Kind::Sinc)
        };
        RateConverter { kind }
    }

    /// A converter that keeps the band up to 95% of the lower rate's Nyquist frequency (rubato's
    /// sinc resampler on 1 ms chunks, a few ms of delay): for speech recognition, whose
    /// features reach the top of the telephone band that [`RateConverter::new`] rolls off from
    /// 3.2 kHz to keep its delay under 3 ms.
    pub fn wideband(from: u32, to: u32) -> RateConverter {
        let kind = if from == to || from == 0 || to == 0 {
            Kind::Copy
        } else {
            SincConverter::new(from, to).map_or(Kind::Copy, Kind::Sinc)
        };
        RateConverter { kind }
    }

    /// Converts `input` and appends what is ready to `out`. Allocation-free as long as `out` has
    /// room for what comes out (the callers size it for a few frames).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match &mut self.kind {
            Kind::Copy => out.extend_from_slice(input),
            Kind::Polyphase(p) => p.process(input, out),
            Kind::Sinc(f) => f.process(input, out),
        }
    }

    /// How much later a sound comes out than it went in, in seconds (the filter's group delay;
    /// the sinc fallback also waits for whole 1 ms chunks).
    pub fn delay_secs(&self) -> f64 {
        match &self.kind {
            Kind::Copy => 0.0,
            Kind::Polyphase(p) => p.delay_secs,
            Kind::Sinc(f) => f.delay_secs,
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The zeroth-order modified Bessel function of the first kind (for the Kaiser window).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-12 {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

/// Rational resampling by `up / down`: conceptually upsample by `up` (zeros between samples),
/// low-pass at the common rate, keep every `down`-th sample; only the products that matter are
/// computed, with the filter split into `up` phases of `taps` coefficients each. Plain data, so
/// it can be shared across tasks (unlike the sinc fallback).
pub(crate) struct Polyphase {
    up: usize,
    down: usize,
    taps: usize,
    /// Phase `p` at `[p * taps..(p + 1) * taps]`, oldest input first.
    coeffs: Vec<f32>,
    /// The last `taps` inputs, written twice (at `i` and `i + taps`) so that the window ending at
    /// the newest sample is always one contiguous slice: `history[pos..pos + taps]`.
    history: Vec<f32>,
    pos: usize,
    /// Where the next output lies after the newest input, in 1/`up` input samples.
    offset: usize,
    delay_secs: f64,
}

impl Polyphase {
    /// The filter for `from` -> `to` Hz; None when the ratio needs more than [`MAX_PHASES`].
    pub(crate) fn new(from: u32, to: u32) -> Option<Polyphase> {
        let g = gcd(u64::from(from), u64::from(to));
        let (up, down) = ((u64::from(to) / g) as usize, (u64::from(from) / g) as usize);
        if up > MAX_PHASES {
            return None;
        }
        // Designed at the common rate from * up.
        let common = f64::from(from) * up as f64;
        let lower = f64::from(from.min(to));
        let cutoff = (PASS_EDGE + STOP_EDGE) / 2.0 * lower;
        let transition = (STOP_EDGE - PASS_EDGE) * lower;
        // Kaiser's estimates of the length and shape for STOP_DB over that transition.
        let length = ((STOP_DB - 8.0) / (2.285 * 2.0 * std::f64::consts::PI * transition / common)).ceil() as usize + 1;
        let beta = 0.1102 * (STOP_DB - 8.7);
        let taps = length.div_ceil(up).max(1);
        let n = taps * up;
        let centre = (n - 1) as f64 / 2.0;
        let norm = bessel_i0(beta);
        let prototype: Vec<f64> = (0..n)
            .map(|i| {
                let x = i as f64 - centre;
                let arg = 2.0 * cutoff / common * x;
                let sinc =
                    if arg == 0.0 { 1.0 } else { (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg) };
                let r = x / (centre + 1.0);
                sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / norm
            })
            .collect();
        // Output k sums x[i - j] * h[phase + j * up] (phase = k * down - i * up); stored per
        // phase with the oldest input first, each phase scaled to pass DC unchanged.
        let mut coeffs = vec![0f32; n];
        for phase in 0..up {
            let sum: f64 = (0..taps).map(|j| prototype[phase + j * up]).sum();
            for m in 0..taps {
                coeffs[phase * taps + m] = (prototype[phase + (taps - 1 - m) * up] / sum) as f32;
            }
        }
        Some(Polyphase {
            up,
            down,
            taps,
            coeffs,
            history: vec![0.0; 2 * taps],
            pos: 0,
            offset: 0,
            delay_secs: centre / common,
        })
    }

    /// Converts `input`, appending what is ready to `out`.
    pub(crate) fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let taps = self.taps;
        for &s in input {
            let x = f32::from(s);
            self.history[self.pos] = x;
            self.history[self.pos + taps] = x;
            self.pos = if self.pos + 1 == taps { 0 } else { self.pos + 1 };
            while self.offset < self.up {
                let c = &self.coeffs[self.offset * taps..(self.offset + 1) * taps];
                let y = dot(c, &self.history[self.pos..self.pos + taps]);
                out.push(y.round().clamp(-32768.0, 32767.0) as i16);
                self.offset += self.down;
            }
            self.offset -= self.up;
        }
    }
}

/// `a · b` with four running sums (the compiler keeps them in registers and the order fixed).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f32 = a4.remainder().iter().zip(b4.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0f32; 4];
    for (x, y) in a4.zip(b4) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// rubato's sinc resampler on 1 ms chunks, for ratios the polyphase filter would need too many
/// phases for.
struct SincConverter {
    sinc: Box<Async<f32>>,
    /// Input collected until a whole chunk is there.
    input: Vec<f32>,
    filled: usize,
    output: Vec<f32>,
    delay_secs: f64,
}

impl SincConverter {
    fn new(from: u32, to: u32) -> Option<SincConverter> {
        let params = SincInterpolationParameters {
            interpolation: SincInterpolationType::Linear,
            ..SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2)
        };
        let chunk = (from / 1000).max(1) as usize;
        let ratio = f64::from(to) / f64::from(from);
        let sinc = match Async::<f32>::new_sinc(ratio, 1.0, &params, chunk, 1, FixedAsync::Input) {
            Ok(sinc) => Box::new(sinc),
            Err(e) => {
                tracing::error!(from, to, "no resampler ({e}); the audio will play at the wrong pitch");
                return None;
            }
        };
        let (chunk_in, chunk_out) = (sinc.input_frames_max(), sinc.output_frames_max());
        let delay_secs = chunk_in as f64 / f64::from(from) + sinc.output_delay() as f64 / f64::from(to);
        Some(SincConverter { sinc, input: vec![0.0; chunk_in], filled: 0, output: vec![0.0; chunk_out], delay_secs })
    }

    fn process(&mut self, mut input: &[i16], out: &mut Vec<i16>) {
        let sinc = &mut self.sinc;
        while !input.is_empty() {
            let need = sinc.input_frames_next();
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
                InterleavedSlice::new_mut(&mut self.output[..], 1, sinc.output_frames_max()),
            ) {
                (Ok(i), Ok(mut o)) => sinc.process_into_buffer(&i, &mut o, None).map_or(0, |(_, n)| n),
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
        for (from, to) in [
            (48_000, 8_000),
            (8_000, 48_000),
            (44_100, 8_000),
            (8_000, 44_100),
            (16_000, 16_000),
            (48_000, 16_000),
            (16_000, 48_000),
            (24_000, 8_000),
            (8_000, 16_000),
        ] {
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
        // Just above the new Nyquist frequency (4.2 kHz would fold to 3.8 kHz) is gone too.
        for from in [48_000, 44_100] {
            for (hz, most) in [(6000.0, 10), (4200.0, 10)] {
                let input = sine(hz, from, from as usize, 10000.0);
                let mut r = RateConverter::new(from, 8_000);
                let mut out = Vec::new();
                r.process(&input, &mut out);
                let peak = out[800..].iter().map(|s| s.unsigned_abs()).max().unwrap();
                assert!(peak < most, "{from}: {hz} Hz leaks into 8 kHz at {peak}");
            }
        }
    }

    #[test]
    fn going_up_adds_no_images() {
        // 1 kHz at 8 kHz taken to 48 kHz: its images (7, 9, 15, 17 kHz...) stay out. What is
        // left after subtracting the ideal 1 kHz tone (phase fitted) is the images and the
        // filter's ripple.
        let input = sine(1000.0, 8_000, 8_000, 10000.0);
        let mut r = RateConverter::new(8_000, 48_000);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let steady: Vec<f64> = out[4800..43200].iter().map(|&s| f64::from(s)).collect();
        let w = 2.0 * std::f64::consts::PI * 1000.0 / 48000.0;
        let (s, c) = steady
            .iter()
            .enumerate()
            .fold((0.0, 0.0), |(s, c), (i, &v)| (s + v * (w * i as f64).sin(), c + v * (w * i as f64).cos()));
        let (s, c) = (2.0 * s / steady.len() as f64, 2.0 * c / steady.len() as f64);
        let residue = steady
            .iter()
            .enumerate()
            .map(|(i, &v)| (v - s * (w * i as f64).sin() - c * (w * i as f64).cos()).powi(2))
            .sum::<f64>()
            / steady.len() as f64;
        assert!(residue.sqrt() < 10.0, "images at rms {:.1} for a tone of 7071", residue.sqrt());
    }

    #[test]
    fn delays_a_step_by_under_3_ms_each_way() {
        for (from, to) in [(48_000, 8_000), (8_000, 48_000), (44_100, 8_000), (8_000, 44_100)] {
            let r = RateConverter::new(from, to);
            assert!(r.delay_secs() < 0.003, "{from}->{to}: {} ms", r.delay_secs() * 1000.0);
            // A step fed in 10 ms pieces crosses half its height within that delay (+1 sample).
            let mut r = RateConverter::new(from, to);
            let mut input = vec![0i16; from as usize / 10];
            input.extend(std::iter::repeat_n(10000i16, from as usize / 10));
            let mut out = Vec::new();
            for piece in input.chunks(from as usize / 100) {
                r.process(piece, &mut out);
            }
            let half = out.iter().position(|&s| s >= 5000).unwrap();
            let late = half as f64 / f64::from(to) - 0.1;
            assert!(late >= 0.0 && late <= r.delay_secs() + 1.0 / f64::from(to), "{from}->{to}: {late} s");
        }
    }

    #[test]
    fn exotic_ratios_still_convert() {
        // 47,999 Hz has no small ratio to 8 kHz: the sinc resampler takes it.
        let input = sine(700.0, 47_999, 47_999 * 2, 8000.0);
        let mut r = RateConverter::new(47_999, 8_000);
        assert!(matches!(r.kind, Kind::Sinc(_)));
        assert!(r.delay_secs() < 0.01, "{} s", r.delay_secs());
        let mut out = Vec::new();
        for piece in input.chunks(441) {
            r.process(piece, &mut out);
        }
        assert!(out.len() + 16 >= 16_000 && out.len() <= 16_000, "{}", out.len());
        let steady = &out[1600..];
        let f = zero_crossing_hz(steady, 8_000);
        assert!((f - 700.0).abs() < 3.0, "{f} Hz");
        assert!((rms(steady) / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.05, "rms {}", rms(steady));
    }
}
