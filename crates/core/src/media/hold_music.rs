//! Music on hold: what the far end hears while we hold the call, in place of the microphone
//! (which must not reach a held party). A short arpeggio, generated, so there is no file to
//! ship or license; each note fades in and out so note changes do not click.

use super::frame::SampleRate;

/// The notes (Hz) of the loop: C major, up and down.
const NOTES: [f64; 6] = [523.25, 659.25, 783.99, 1046.5, 783.99, 659.25];
/// Length of a note.
const NOTE_MS: u64 = 400;
/// Fade at each end of a note.
const FADE_MS: u64 = 30;
/// Peak level, dBFS (quiet: music on hold should not be louder than speech).
const LEVEL_DBFS: f64 = -20.0;

/// Generates the loop, 20 ms at a time.
#[derive(Debug, Clone, Default)]
pub struct HoldMusic {
    pos: u64,
}

impl HoldMusic {
    /// Writes the next `out.len()` samples at `rate`.
    pub fn fill(&mut self, out: &mut [i16], rate: SampleRate) {
        let hz = u64::from(rate.hz());
        let (note_len, fade) = (NOTE_MS * hz / 1000, (FADE_MS * hz / 1000).max(1));
        let amp = 32767.0 * 10f64.powf(LEVEL_DBFS / 20.0);
        for o in out.iter_mut() {
            let note = ((self.pos / note_len) as usize) % NOTES.len();
            let within = self.pos % note_len;
            let env = (within.min(note_len - within) as f64 / fade as f64).min(1.0);
            let t = within as f64 / hz as f64;
            *o = (amp * env * (2.0 * std::f64::consts::PI * NOTES[note] * t).sin()) as i16;
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_quiet_notes_that_change() {
        let mut m = HoldMusic::default();
        let mut a = vec![0i16; 3200]; // 400 ms at 8 kHz: one note
        m.fill(&mut a, SampleRate::Hz8000);
        let peak = a.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((3000..=3300).contains(&peak), "about -20 dBFS: {peak}");
        assert_eq!(a[0], 0, "notes fade in");
        let crossings = |s: &[i16]| s.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        let mut b = vec![0i16; 3200];
        m.fill(&mut b, SampleRate::Hz8000);
        assert!((crossings(&a) as i64 - 209).abs() <= 2, "523 Hz first: {}", crossings(&a));
        assert!((crossings(&b) as i64 - 264).abs() <= 2, "then 659 Hz: {}", crossings(&b));
    }
}
