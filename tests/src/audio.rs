//! Audio helpers for the end-to-end tests: write a test tone to a WAV file, read a recording back,
//! and measure what it holds (dominant frequency, level, gaps, how much of it carries sound).
//!
//! Levels are in dBFS with a full-scale sine at 0 dBFS (AES17), so a sine written at -12 dBFS
//! measures -12 dBFS. A 20 ms window is silent when its RMS is below [`SILENCE_DBFS`].

use std::path::Path;

/// A 20 ms window whose RMS is below this level (dBFS) counts as silent.
pub const SILENCE_DBFS: f64 = -50.0;
/// The level reported for a recording with no sound at all.
pub const FLOOR_DBFS: f64 = -120.0;
/// Length of an analysis window in milliseconds.
pub const WINDOW_MS: u32 = 20;

const FULL_SCALE: f64 = 32768.0;
/// The band searched for the dominant tone: the telephone band, and up to wideband speech's top
/// where the recording's rate allows (an Opus call's).
const SCAN_LOW_HZ: f64 = 200.0;
const SCAN_HIGH_HZ: f64 = 7000.0;

/// What a recording holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Strongest frequency between 200 and 3800 Hz, to about 0.1 Hz; 0 when there is no sound.
    pub dominant_hz: f64,
    /// RMS level of the non-silent windows in dBFS (full-scale sine = 0); [`FLOOR_DBFS`] when none.
    pub rms_dbfs: f64,
    /// Longest run of silent 20 ms windows inside the middle 80 % of the recording, in ms.
    pub longest_gap_ms: u32,
    /// Fraction of all 20 ms windows that are not silent (0..=1).
    pub coverage: f64,
    /// Length of the recording in ms.
    pub duration_ms: u32,
}

/// Reads a mono (or takes the first channel of a multi-channel) WAV as s16: (samples, rate).
/// Integer formats are scaled to 16 bits, float formats converted. Panics on an unreadable file.
pub fn read_wav(path: &Path) -> (Vec<i16>, u32) {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("open WAV {}: {e}", path.display()));
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<i16> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let bits = u32::from(spec.bits_per_sample);
            reader
                .samples::<i32>()
                .step_by(channels)
                .map(|s| {
                    let s = s.unwrap_or_else(|e| panic!("read WAV {}: {e}", path.display()));
                    let scaled = if bits > 16 { s >> (bits - 16) } else { s << (16 - bits) };
                    scaled.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
                })
                .collect()
        }
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .step_by(channels)
            .map(|s| {
                let s = s.unwrap_or_else(|e| panic!("read WAV {}: {e}", path.display()));
                (f64::from(s) * FULL_SCALE).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect(),
    };
    (samples, spec.sample_rate)
}

/// Writes a mono s16 WAV with a sine of `hz` at `level_dbfs` for `seconds`, followed by
/// `pad_silence_s` seconds of silence.
pub fn write_tone_wav(path: &Path, hz: f64, rate: u32, seconds: f64, level_dbfs: f64, pad_silence_s: f64) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer =
        hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("create WAV {}: {e}", path.display()));
    let amplitude = FULL_SCALE * 10f64.powf(level_dbfs / 20.0);
    let tone = (seconds * f64::from(rate)).round() as usize;
    let pad = (pad_silence_s * f64::from(rate)).round() as usize;
    for n in 0..tone {
        let v = amplitude * (2.0 * std::f64::consts::PI * hz * n as f64 / f64::from(rate)).sin();
        writer.write_sample(v.round().clamp(-32768.0, 32767.0) as i16).expect("write WAV sample");
    }
    for _ in 0..pad {
        writer.write_sample(0i16).expect("write WAV sample");
    }
    writer.finalize().unwrap_or_else(|e| panic!("finish WAV {}: {e}", path.display()));
}

/// Analyses samples: dominant frequency, level of the non-silent part, the longest silent gap in
/// the middle 80 %, and the fraction of 20 ms windows that carry sound. See [`Analysis`].
pub fn analyse(samples: &[i16], rate: u32) -> Analysis {
    assert!(rate > 0, "sample rate must be positive");
    let duration_ms = (samples.len() as u64 * 1000 / u64::from(rate)) as u32;
    let window = (rate as usize * WINDOW_MS as usize / 1000).max(1);
    let windows: Vec<&[i16]> = samples.chunks_exact(window).collect();
    let sounding: Vec<bool> = windows.iter().map(|w| dbfs(mean_square(w)) >= SILENCE_DBFS).collect();

    let coverage =
        if windows.is_empty() { 0.0 } else { sounding.iter().filter(|s| **s).count() as f64 / windows.len() as f64 };

    let (sum_sq, n) = windows
        .iter()
        .zip(&sounding)
        .filter(|(_, s)| **s)
        .fold((0.0, 0usize), |(acc, n), (w, _)| (acc + mean_square(w) * w.len() as f64, n + w.len()));
    let rms_dbfs = if n == 0 { FLOOR_DBFS } else { dbfs(sum_sq / n as f64) };

    let first = windows.len() / 10;
    let last = windows.len() - windows.len() / 10;
    let mut longest = 0u32;
    let mut run = 0u32;
    for s in &sounding[first..last] {
        run = if *s { 0 } else { run + 1 };
        longest = longest.max(run);
    }

    let dominant_hz = match longest_sounding_run(&sounding) {
        Some((start, len)) => dominant_frequency(&samples[start * window..(start + len) * window], rate),
        None => 0.0,
    };

    Analysis { dominant_hz, rms_dbfs, longest_gap_ms: longest * WINDOW_MS, coverage, duration_ms }
}

fn mean_square(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>() / samples.len() as f64
}

/// Mean square of s16 samples to dBFS with a full-scale sine at 0 dBFS.
fn dbfs(mean_square: f64) -> f64 {
    if mean_square <= 0.0 {
        return FLOOR_DBFS;
    }
    (20.0 * (mean_square.sqrt() * std::f64::consts::SQRT_2 / FULL_SCALE).log10()).max(FLOOR_DBFS)
}

/// (first window, number of windows) of the longest run of sounding windows.
fn longest_sounding_run(sounding: &[bool]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let mut start = 0;
    for (i, s) in sounding.iter().chain(std::iter::once(&false)).enumerate() {
        if *s {
            continue;
        }
        let len = i - start;
        if len > 0 && best.is_none_or(|(_, b)| len > b) {
            best = Some((start, len));
        }
        start = i + 1;
    }
    best
}

/// Strongest frequency in `samples` between 200 and 3800 Hz: a coarse Goertzel scan over short
/// Hann-windowed blocks (summed for robustness), then finer scans over up to one second.
fn dominant_frequency(samples: &[i16], rate: u32) -> f64 {
    let nyquist_guard = f64::from(rate) / 2.0 - 50.0;
    let high = SCAN_HIGH_HZ.min(nyquist_guard);
    if high <= SCAN_LOW_HZ || samples.is_empty() {
        return 0.0;
    }
    // Coarse: 40 ms blocks (main lobe about 50 Hz wide with Hann), 5 Hz steps, up to 10 blocks.
    let block = (rate as usize / 25).min(samples.len());
    let blocks: Vec<Vec<f64>> = samples.chunks_exact(block).take(10).map(hann).collect();
    let mut best = (SCAN_LOW_HZ, f64::MIN);
    let mut f = SCAN_LOW_HZ;
    while f <= high {
        let p: f64 = blocks.iter().map(|b| goertzel_power(b, f, rate)).sum();
        if p > best.1 {
            best = (f, p);
        }
        f += 5.0;
    }
    // Fine: the middle second (or all) of the run, scanned in shrinking steps around the peak.
    let len = samples.len().min(rate as usize);
    let offset = (samples.len() - len) / 2;
    let long = hann(&samples[offset..offset + len]);
    let mut centre = best.0;
    for (span, step) in [(10.0, 0.5), (1.0, 0.05)] {
        let mut peak = (centre, f64::MIN);
        let mut f = centre - span;
        while f <= centre + span {
            let p = goertzel_power(&long, f, rate);
            if p > peak.1 {
                peak = (f, p);
            }
            f += step;
        }
        centre = peak.0;
    }
    centre
}

fn hann(samples: &[i16]) -> Vec<f64> {
    let n = samples.len();
    if n < 2 {
        return samples.iter().map(|s| f64::from(*s)).collect();
    }
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
            f64::from(*s) * w
        })
        .collect()
}

/// Power at frequency `hz` (not restricted to FFT bins).
fn goertzel_power(samples: &[f64], hz: f64, rate: u32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Writes an 8 kHz mono WAV of `text` spoken by flite (as a phone would carry it): `lead`
/// seconds of silence, the speech, then `tail` seconds of silence (baresip hangs up when its
/// WAV ends, so the tail sets how long the caller stays).
pub fn write_spoken_wav(path: &Path, text: &str, lead: f64, tail: f64) {
    let speech = sipdesk_core::agent::tts::synthesize(text).expect("flite");
    let at8k = sipdesk_core::media::resample::resample(&speech.samples, speech.rate.hz(), 8000);
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).expect("create WAV");
    let zeros = |w: &mut hound::WavWriter<_>, secs: f64| {
        for _ in 0..(secs * 8000.0) as usize {
            w.write_sample(0i16).expect("write WAV");
        }
    };
    zeros(&mut w, lead);
    for s in at8k {
        w.write_sample(s).expect("write WAV");
    }
    zeros(&mut w, tail);
    w.finalize().expect("finish WAV");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, rate: u32, seconds: f64, level_dbfs: f64) -> Vec<i16> {
        let amplitude = FULL_SCALE * 10f64.powf(level_dbfs / 20.0);
        (0..(seconds * f64::from(rate)) as usize)
            .map(|n| (amplitude * (2.0 * std::f64::consts::PI * hz * n as f64 / f64::from(rate)).sin()).round() as i16)
            .collect()
    }

    #[test]
    fn tone_at_1400_hz_minus_12_dbfs() {
        let a = analyse(&tone(1400.0, 8000, 2.0, -12.0), 8000);
        assert!((a.dominant_hz - 1400.0).abs() <= 2.0, "{a:?}");
        assert!((a.rms_dbfs + 12.0).abs() <= 0.5, "{a:?}");
        assert!(a.coverage > 0.99, "{a:?}");
        assert_eq!(a.longest_gap_ms, 0, "{a:?}");
        assert_eq!(a.duration_ms, 2000);
    }

    #[test]
    fn frequency_within_half_a_percent_at_common_rates() {
        for rate in [8000, 16000, 48000] {
            for hz in [1020.0, 1400.0, 440.0, 3000.0] {
                let a = analyse(&tone(hz, rate, 1.0, -20.0), rate);
                assert!((a.dominant_hz - hz).abs() <= hz * 0.005, "{hz} Hz at {rate}: {a:?}");
                assert!((a.dominant_hz - hz).abs() <= 1.0, "{hz} Hz at {rate}: {a:?}");
            }
        }
    }

    #[test]
    fn hole_of_200_ms_in_the_middle() {
        let rate = 8000;
        let mut s = tone(1020.0, rate, 3.0, -12.0);
        let start = rate as usize * 3 / 2; // 1.5 s, on a 20 ms window boundary
        s[start..start + rate as usize / 5].fill(0);
        let a = analyse(&s, rate);
        assert!((180..=220).contains(&a.longest_gap_ms), "{a:?}");
        assert!((a.coverage - 2.8 / 3.0).abs() < 0.02, "{a:?}");
        assert!((a.dominant_hz - 1020.0).abs() <= 2.0, "{a:?}");
    }

    #[test]
    fn gaps_at_the_edges_are_ignored() {
        let rate = 16000;
        let mut s = vec![0i16; rate as usize / 5];
        s.extend(tone(1020.0, rate, 2.6, -12.0));
        s.extend(vec![0i16; rate as usize / 5]);
        let a = analyse(&s, rate);
        assert_eq!(a.longest_gap_ms, 0, "{a:?}");
    }

    #[test]
    fn silence_has_no_coverage() {
        let a = analyse(&vec![0i16; 16000], 8000);
        assert_eq!(a.coverage, 0.0);
        assert_eq!(a.dominant_hz, 0.0);
        assert_eq!(a.rms_dbfs, FLOOR_DBFS);
        assert_eq!(a.duration_ms, 2000);
        let a = analyse(&[], 8000);
        assert_eq!(a.coverage, 0.0);
        assert_eq!(a.duration_ms, 0);
    }

    #[test]
    fn write_then_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        write_tone_wav(&path, 1020.0, 8000, 3.0, -12.0, 1.0);
        let (samples, rate) = read_wav(&path);
        assert_eq!(rate, 8000);
        assert_eq!(samples.len(), 32000);
        let a = analyse(&samples, rate);
        assert!((a.dominant_hz - 1020.0).abs() <= 2.0, "{a:?}");
        assert!((a.rms_dbfs + 12.0).abs() <= 0.5, "{a:?}");
        assert!((a.coverage - 0.75).abs() < 0.01, "{a:?}");
    }

    #[test]
    fn first_channel_of_stereo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in tone(1400.0, 48000, 0.5, -6.0) {
            w.write_sample(s).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let (samples, rate) = read_wav(&path);
        assert_eq!((samples.len(), rate), (24000, 48000));
        let a = analyse(&samples, rate);
        assert!((a.dominant_hz - 1400.0).abs() <= 2.0, "{a:?}");
    }
}
