//! Tone generation: sine tones at a level, and the ringback/ring cadences played locally.
//!
//! A [`ToneSource`] is a frame source like any other endpoint, so local ringback is just "play
//! this source to the device" while the far end has sent no early media. It never ends and is
//! not paced: whoever pulls it (a device or a send loop) sets the pace.

use super::frame::{Frame, FrameSource, SampleRate, SourcePoll};

/// A repeating on/off pattern, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Tone on.
    pub on_ms: u32,
    /// Silence after it (0 = continuous).
    pub off_ms: u32,
}

impl Cadence {
    /// No gaps.
    pub const CONTINUOUS: Cadence = Cadence { on_ms: 1, off_ms: 0 };
    /// European ringback (ETSI ES 201 970): 1 s on, 4 s off.
    pub const RINGBACK_EU: Cadence = Cadence { on_ms: 1000, off_ms: 4000 };
    /// North American ringback and ring: 2 s on, 4 s off.
    pub const RING_US: Cadence = Cadence { on_ms: 2000, off_ms: 4000 };
}

/// What to play: up to two frequencies, a level and a cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// First frequency in Hz.
    pub freq1: f64,
    /// Optional second frequency (dual tones such as 440+480 Hz).
    pub freq2: Option<f64>,
    /// Peak level of the sum, in dBFS (0 = full scale).
    pub level_dbfs: f64,
    /// On/off pattern.
    pub cadence: Cadence,
}

impl ToneSpec {
    /// A continuous sine.
    pub fn sine(freq: f64, level_dbfs: f64) -> ToneSpec {
        ToneSpec { freq1: freq, freq2: None, level_dbfs, cadence: Cadence::CONTINUOUS }
    }

    /// European ringback: 425 Hz, 1 s on, 4 s off, at -13 dBFS.
    pub fn ringback_eu() -> ToneSpec {
        ToneSpec { freq1: 425.0, freq2: None, level_dbfs: -13.0, cadence: Cadence::RINGBACK_EU }
    }

    /// North American ringback: 440+480 Hz, 2 s on, 4 s off, at -13 dBFS.
    pub fn ringback_us() -> ToneSpec {
        ToneSpec { freq1: 440.0, freq2: Some(480.0), level_dbfs: -13.0, cadence: Cadence::RING_US }
    }

    /// Call waiting, in the headset over the current call: a soft 440 Hz beep every 3 s.
    pub fn call_waiting() -> ToneSpec {
        ToneSpec { freq1: 440.0, freq2: None, level_dbfs: -24.0, cadence: Cadence { on_ms: 300, off_ms: 2700 } }
    }

    /// Incoming-call ring played on the device: 440+480 Hz in the 2 s on / 4 s off ring cadence.
    pub fn ring() -> ToneSpec {
        ToneSpec { freq1: 440.0, freq2: Some(480.0), level_dbfs: -10.0, cadence: Cadence::RING_US }
    }
}

/// Generates a [`ToneSpec`] as frames, forever.
#[derive(Debug, Clone)]
pub struct ToneSource {
    spec: ToneSpec,
    rate: SampleRate,
    /// Samples generated so far; phase and cadence both derive from it, so nothing drifts.
    pos: u64,
}

impl ToneSource {
    /// A generator at `rate`.
    pub fn new(spec: ToneSpec, rate: SampleRate) -> ToneSource {
        ToneSource { spec, rate, pos: 0 }
    }

    /// Fills `out` with the next samples (any length, for callers outside the frame path).
    pub fn fill(&mut self, out: &mut [i16]) {
        let hz = self.rate.hz() as f64;
        let parts = if self.spec.freq2.is_some() { 2.0 } else { 1.0 };
        let amp = 32767.0 * 10f64.powf(self.spec.level_dbfs / 20.0) / parts;
        let period = (self.spec.cadence.on_ms + self.spec.cadence.off_ms) as u64 * self.rate.hz() as u64 / 1000;
        let on = self.spec.cadence.on_ms as u64 * self.rate.hz() as u64 / 1000;
        for s in out.iter_mut() {
            let t = self.pos as f64 / hz;
            let audible = self.spec.cadence.off_ms == 0 || self.pos % period.max(1) < on;
            *s = if audible {
                let mut v = (std::f64::consts::TAU * self.spec.freq1 * t).sin();
                if let Some(f2) = self.spec.freq2 {
                    v += (std::f64::consts::TAU * f2 * t).sin();
                }
                (amp * v).round().clamp(-32768.0, 32767.0) as i16
            } else {
                0
            };
            self.pos += 1;
        }
    }
}

impl FrameSource for ToneSource {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        out.reset(self.rate);
        self.fill(out.samples_mut());
        SourcePoll::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(src: &mut ToneSource, ms: u32) -> Vec<i16> {
        let mut v = vec![0; (src.rate().hz() * ms / 1000) as usize];
        src.fill(&mut v);
        v
    }

    #[test]
    fn sine_has_its_level_and_frequency() {
        let mut src = ToneSource::new(ToneSpec::sine(1000.0, -6.0), SampleRate::Hz8000);
        let s = take(&mut src, 1000);
        let peak = s.iter().map(|v| v.unsigned_abs()).max().unwrap() as f64;
        assert!((peak / 32767.0 - 0.501).abs() < 0.01, "peak {peak}");
        let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((1990..=2010).contains(&crossings), "{crossings}");
    }

    #[test]
    fn ringback_follows_its_cadence() {
        let mut src = ToneSource::new(ToneSpec::ringback_eu(), SampleRate::Hz8000);
        let mut f = Frame::silence(SampleRate::Hz8000);
        let loud: Vec<bool> = (0..300)
            .map(|_| {
                assert_eq!(src.poll_frame(&mut f), SourcePoll::Ready);
                !f.is_silent()
            })
            .collect();
        // 50 frames (1 s) on, 200 frames (4 s) off, then on again.
        assert!(loud[..50].iter().all(|&l| l) && loud[50..250].iter().all(|&l| !l) && loud[250..].iter().all(|&l| l));
    }

    #[test]
    fn dual_tone_never_clips_and_ring_cadence_is_two_on_four_off() {
        let mut src = ToneSource::new(ToneSpec { level_dbfs: 0.0, ..ToneSpec::ringback_us() }, SampleRate::Hz16000);
        let s = take(&mut src, 6000);
        assert!(s.iter().all(|&v| v > i16::MIN));
        let on = |ms: u32| s[(ms * 16) as usize..(ms * 16 + 320) as usize].iter().any(|&v| v != 0);
        assert!(on(100) && on(1900) && !on(2100) && !on(5900));
        assert_eq!(ToneSpec::ring().cadence, Cadence::RING_US);
    }
}
