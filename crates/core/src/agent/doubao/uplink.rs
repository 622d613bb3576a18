//! The caller's audio on its way up: whatever rate or G.711 law the call sends, Doubao takes
//! 20 ms frames of s16le mono at 16 kHz (640 bytes, one TaskRequest each).

use crate::agent::provider::AgentAudio;
use crate::media::codec::StreamResampler;
use crate::media::frame::SampleRate;
use crate::media::g711::Law;

/// One TaskRequest: 20 ms of s16le mono at 16 kHz.
pub(super) const UPLINK_BYTES: usize = 640;

/// Caller audio → 20 ms chunks of s16le at 16 kHz, whatever rate and law it arrives in.
#[derive(Default)]
pub(super) struct Uplink {
    /// The rate of the samples in `pending`, and the resampler from it.
    from: Option<(SampleRate, StreamResampler)>,
    /// Samples not yet making a whole 20 ms frame.
    pending: Vec<i16>,
}

impl Uplink {
    /// Takes `audio`; returns the whole 20 ms frames it completes, as s16le bytes.
    pub(super) fn push(&mut self, audio: &AgentAudio) -> Vec<Vec<u8>> {
        let decoded;
        let (rate, samples) = match audio {
            AgentAudio::Pcm { rate, samples } => (*rate, samples.as_slice()),
            AgentAudio::Mulaw(bytes) | AgentAudio::Alaw(bytes) => {
                let law = if matches!(audio, AgentAudio::Mulaw(_)) { Law::Mu } else { Law::A };
                let mut pcm = vec![0; bytes.len()];
                law.decode_into(bytes, &mut pcm);
                decoded = pcm;
                (SampleRate::Hz8000, decoded.as_slice())
            }
        };
        if self.from.as_ref().is_none_or(|(r, _)| *r != rate) {
            // A new rate starts a new stream: what was pending at the old one is dropped.
            self.pending.clear();
            self.from = Some((rate, StreamResampler::new(rate, SampleRate::Hz16000)));
        }
        self.pending.extend_from_slice(samples);
        let n = rate.frame_samples();
        let mut out = Vec::new();
        let mut at16k = [0i16; 320];
        let mut used = 0;
        if let Some((_, resampler)) = self.from.as_mut() {
            while self.pending.len() - used >= n {
                resampler.process(&self.pending[used..used + n], &mut at16k);
                used += n;
                out.push(at16k.iter().flat_map(|s| s.to_le_bytes()).collect());
            }
        }
        self.pending.drain(..used);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n).map(|i| (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as i16).collect()
    }

    /// Zero crossings per second of s16le bytes at 16 kHz: twice the frequency.
    fn crossings_hz(chunks: &[Vec<u8>]) -> f64 {
        let s: Vec<i16> = chunks.concat().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        let n = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        n as f64 / 2.0 / (s.len() as f64 / 16000.0)
    }

    #[test]
    fn every_input_format_becomes_640_byte_frames_at_16k() {
        let cases: Vec<(AgentAudio, usize)> = vec![
            (AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: tone(1000.0, 8000, 8000) }, 50),
            (AgentAudio::Pcm { rate: SampleRate::Hz48000, samples: tone(1000.0, 48000, 48000) }, 50),
            (AgentAudio::Pcm { rate: SampleRate::Hz16000, samples: tone(1000.0, 16000, 16000) }, 50),
            (AgentAudio::Mulaw(tone(1000.0, 8000, 8000).iter().map(|s| Law::Mu.encode(*s)).collect()), 50),
            (AgentAudio::Alaw(tone(1000.0, 8000, 8000).iter().map(|s| Law::A.encode(*s)).collect()), 50),
        ];
        for (audio, frames) in cases {
            let chunks = Uplink::default().push(&audio);
            assert_eq!(chunks.len(), frames, "{audio:?}");
            assert!(chunks.iter().all(|c| c.len() == UPLINK_BYTES));
            let hz = crossings_hz(&chunks);
            assert!((hz - 1000.0).abs() < 15.0, "{audio:?}: {hz} Hz");
        }
    }

    #[test]
    fn partial_frames_wait_for_the_rest() {
        let mut up = Uplink::default();
        assert!(up.push(&AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: vec![1; 100] }).is_empty());
        assert_eq!(up.push(&AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: vec![1; 100] }).len(), 1);
        assert_eq!(up.pending.len(), 40);
    }
}
