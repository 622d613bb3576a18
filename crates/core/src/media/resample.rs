//! Sample-rate conversion between the rates SipDesk uses (8, 16, 24, 48 kHz).
//!
//! Linear interpolation, with a moving-average low-pass first when going down so that tones above
//! the new Nyquist frequency fold back much weaker. It is meant for files and tones, not for
//! hi-fi audio: a polyphase filter can replace it behind the same function when devices need it.

/// Converts `input` at `from` Hz to `to` Hz.
pub fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || input.is_empty() || from == 0 || to == 0 {
        return input.to_vec();
    }
    let filtered;
    let src: &[i16] = if to < from {
        filtered = moving_average(input, from.div_ceil(to) as usize);
        &filtered
    } else {
        input
    };
    let out_len = (input.len() as u64 * to as u64 / from as u64) as usize;
    let step = from as f64 / to as f64;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let k = pos as usize;
            let frac = pos - k as f64;
            let a = src[k.min(src.len() - 1)] as f64;
            let b = src[(k + 1).min(src.len() - 1)] as f64;
            (a + (b - a) * frac).round() as i16
        })
        .collect()
}

/// A centred moving average of `width` samples.
fn moving_average(input: &[i16], width: usize) -> Vec<i16> {
    if width <= 1 {
        return input.to_vec();
    }
    let half = width / 2;
    let mut prefix = Vec::with_capacity(input.len() + 1);
    prefix.push(0i64);
    for &s in input {
        prefix.push(prefix.last().copied().unwrap_or(0) + s as i64);
    }
    (0..input.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (lo + width).min(input.len());
            ((prefix[hi] - prefix[lo]) / (hi - lo) as i64) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n).map(|i| (10000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16).collect()
    }

    /// Zero crossings per second / 2 = frequency, for a clean sine.
    fn freq_of(s: &[i16], rate: u32) -> f64 {
        let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        crossings as f64 / 2.0 / (s.len() as f64 / rate as f64)
    }

    #[test]
    fn lengths_and_pitch_are_kept() {
        for (from, to) in [(8000, 48000), (48000, 8000), (16000, 8000), (8000, 16000), (24000, 8000)] {
            let input = sine(440.0, from, from as usize);
            let out = resample(&input, from, to);
            assert_eq!(out.len(), to as usize, "{from}->{to}");
            let f = freq_of(&out, to);
            assert!((f - 440.0).abs() < 3.0, "{from}->{to}: {f}");
        }
        assert_eq!(resample(&[1, 2, 3], 8000, 8000), vec![1, 2, 3]);
        assert!(resample(&[], 8000, 16000).is_empty());
    }

    #[test]
    fn downsampling_weakens_tones_above_the_new_nyquist() {
        let input = sine(6000.0, 48000, 4800);
        let out = resample(&input, 48000, 8000);
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 4000, "6 kHz at 8 kHz leaks at {peak}");
    }
}
