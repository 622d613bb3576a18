//! The audio OpenAI Realtime carries, both ways: 24 kHz 16-bit little-endian PCM, or G.711
//! (µ-law / A-law at 8 kHz, one byte a sample).
//!
//! *Choice: a G.711 call keeps G.711 on the wire.* The model takes and speaks PCMU/PCMA
//! itself, so the caller's bytes go out untouched (no decode, no resample, a third of the
//! bytes) and its replies come back at the call's own rate. A PCM call (8 kHz from a wideband
//! codec's decoder, 48 kHz from Opus) is resampled to the 24 kHz the API requires.

use crate::agent::provider::{AgentAudio, AudioFormat};
use crate::media::codec::StreamResampler;
use crate::media::frame::SampleRate;
use crate::media::g711::Law;

/// The audio format of a session, the same for what goes in and what comes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// 16-bit little-endian mono PCM at 24 kHz (`audio/pcm`, beta `pcm16`).
    Pcm24k,
    /// G.711 at 8 kHz (`audio/pcmu` / `audio/pcma`, beta `g711_ulaw` / `g711_alaw`).
    G711(Law),
}

impl WireFormat {
    /// The wire format for a call whose caller audio comes as `input`.
    pub fn for_input(input: AudioFormat) -> WireFormat {
        match input {
            AudioFormat::Pcm(_) => WireFormat::Pcm24k,
            AudioFormat::Mulaw => WireFormat::G711(Law::Mu),
            AudioFormat::Alaw => WireFormat::G711(Law::A),
        }
    }

    /// The samples' rate.
    pub fn rate(self) -> SampleRate {
        match self {
            WireFormat::Pcm24k => SampleRate::Hz24000,
            WireFormat::G711(_) => SampleRate::Hz8000,
        }
    }

    /// Bytes one sample takes.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            WireFormat::Pcm24k => 2,
            WireFormat::G711(_) => 1,
        }
    }

    /// The GA `audio.*.format` object.
    pub fn ga_json(self) -> serde_json::Value {
        match self {
            WireFormat::Pcm24k => serde_json::json!({ "type": "audio/pcm", "rate": 24000 }),
            WireFormat::G711(Law::Mu) => serde_json::json!({ "type": "audio/pcmu" }),
            WireFormat::G711(Law::A) => serde_json::json!({ "type": "audio/pcma" }),
        }
    }

    /// The beta `input_audio_format` / `output_audio_format` name.
    pub fn beta_name(self) -> &'static str {
        match self {
            WireFormat::Pcm24k => "pcm16",
            WireFormat::G711(Law::Mu) => "g711_ulaw",
            WireFormat::G711(Law::A) => "g711_alaw",
        }
    }

    /// Decodes a piece of the model's audio to PCM at [`WireFormat::rate`]. A PCM byte left
    /// over (a delta cut mid-sample, which the API does not do but costs nothing to allow) is
    /// kept in `carry` for the next piece.
    pub fn decode(self, bytes: &[u8], carry: &mut Option<u8>) -> Vec<i16> {
        match self {
            WireFormat::G711(law) => bytes.iter().map(|&b| law.decode(b)).collect(),
            WireFormat::Pcm24k => {
                let mut joined;
                let bytes = match carry.take() {
                    Some(first) => {
                        joined = Vec::with_capacity(bytes.len() + 1);
                        joined.push(first);
                        joined.extend_from_slice(bytes);
                        &joined[..]
                    }
                    None => bytes,
                };
                let whole = bytes.len() / 2 * 2;
                if whole < bytes.len() {
                    *carry = Some(bytes[whole]);
                }
                bytes[..whole].chunks_exact(2).map(|p| i16::from_le_bytes([p[0], p[1]])).collect()
            }
        }
    }
}

/// Turns the caller's audio, whatever its format, into the session's wire bytes.
pub struct Encoder {
    target: WireFormat,
    /// The resampler for the current input rate, when it differs from the wire's.
    resampler: Option<(SampleRate, StreamResampler)>,
    /// Input samples short of a whole 20 ms frame (the resampler works frame by frame).
    pending: Vec<i16>,
    out_frame: Vec<i16>,
}

impl Encoder {
    /// An encoder to `target`.
    pub fn new(target: WireFormat) -> Encoder {
        Encoder { target, resampler: None, pending: Vec::new(), out_frame: Vec::new() }
    }

    /// Appends the wire bytes of `audio` to `out`. Audio at another rate than the wire's comes
    /// out in whole 20 ms frames; a part frame waits for the next piece.
    pub fn push(&mut self, audio: &AgentAudio, out: &mut Vec<u8>) {
        let decoded;
        let (rate, samples) = match (audio, self.target) {
            // G.711 in the session's own law: the caller's bytes, untouched.
            (AgentAudio::Mulaw(b), WireFormat::G711(Law::Mu)) | (AgentAudio::Alaw(b), WireFormat::G711(Law::A)) => {
                out.extend_from_slice(b);
                return;
            }
            (AgentAudio::Pcm { rate, samples }, _) => (*rate, samples.as_slice()),
            (AgentAudio::Mulaw(b), _) => {
                decoded = b.iter().map(|&x| Law::Mu.decode(x)).collect::<Vec<i16>>();
                (SampleRate::Hz8000, decoded.as_slice())
            }
            (AgentAudio::Alaw(b), _) => {
                decoded = b.iter().map(|&x| Law::A.decode(x)).collect::<Vec<i16>>();
                (SampleRate::Hz8000, decoded.as_slice())
            }
        };
        let to = self.target.rate();
        if rate == to {
            self.encode(samples, out);
            return;
        }
        if self.resampler.as_ref().is_none_or(|(r, _)| *r != rate) {
            // A new input rate starts a fresh stream (its history belongs to the old one).
            self.resampler = Some((rate, StreamResampler::new(rate, to)));
            self.pending.clear();
        }
        self.pending.extend_from_slice(samples);
        let n_in = rate.frame_samples();
        let mut frame_out = std::mem::take(&mut self.out_frame);
        frame_out.resize(to.frame_samples(), 0);
        let mut start = 0;
        while self.pending.len() - start >= n_in {
            if let Some((_, r)) = self.resampler.as_mut() {
                r.process(&self.pending[start..start + n_in], &mut frame_out);
            }
            self.encode(&frame_out, out);
            start += n_in;
        }
        self.pending.drain(..start);
        self.out_frame = frame_out;
    }

    fn encode(&self, samples: &[i16], out: &mut Vec<u8>) {
        match self.target {
            WireFormat::Pcm24k => {
                out.reserve(samples.len() * 2);
                for s in samples {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            WireFormat::G711(law) => out.extend(samples.iter().map(|&s| law.encode(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n).map(|i| (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as i16).collect()
    }

    #[test]
    fn pcm_at_8_and_48_khz_becomes_24_khz_bytes() {
        for rate in [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz48000, SampleRate::Hz24000] {
            let mut enc = Encoder::new(WireFormat::Pcm24k);
            let mut out = Vec::new();
            let samples = sine(1000.0, rate.hz(), rate.frame_samples() * 5);
            for frame in samples.chunks(rate.frame_samples()) {
                enc.push(&AgentAudio::Pcm { rate, samples: frame.to_vec() }, &mut out);
            }
            // 100 ms at 24 kHz, two bytes a sample.
            assert_eq!(out.len(), 2400 * 2, "{rate:?}");
        }
    }

    #[test]
    fn part_frames_wait_for_the_rest() {
        let mut enc = Encoder::new(WireFormat::Pcm24k);
        let mut out = Vec::new();
        enc.push(&AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: vec![100; 100] }, &mut out);
        assert!(out.is_empty());
        enc.push(&AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: vec![100; 60] }, &mut out);
        assert_eq!(out.len(), 480 * 2);
    }

    #[test]
    fn g711_in_the_sessions_law_passes_through_and_the_other_is_converted() {
        let bytes: Vec<u8> = (0..160).map(|i| i as u8).collect();
        let mut enc = Encoder::new(WireFormat::G711(Law::Mu));
        let mut out = Vec::new();
        enc.push(&AgentAudio::Mulaw(bytes.clone()), &mut out);
        assert_eq!(out, bytes);
        out.clear();
        let pcm = sine(1000.0, 8000, 160);
        enc.push(&AgentAudio::Alaw(pcm.iter().map(|&s| Law::A.encode(s)).collect()), &mut out);
        assert_eq!(out.len(), 160);
        // µ-law of the A-law's decoded samples: close to the original sine.
        let back: Vec<i16> = out.iter().map(|&b| Law::Mu.decode(b)).collect();
        assert!(back.iter().zip(&pcm).all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() < 400));
    }

    #[test]
    fn output_decodes_and_carries_a_split_sample() {
        let mut carry = None;
        let a = WireFormat::Pcm24k.decode(&[0x01, 0x02, 0x03], &mut carry);
        assert_eq!((a, carry), (vec![0x0201], Some(0x03)));
        let b = WireFormat::Pcm24k.decode(&[0x04], &mut carry);
        assert_eq!((b, carry), (vec![0x0403], None));
        let mu = WireFormat::G711(Law::Mu).decode(&[0xFF, 0x7F], &mut carry);
        assert_eq!(mu, vec![Law::Mu.decode(0xFF), Law::Mu.decode(0x7F)]);
    }

    #[test]
    fn formats_are_named_for_both_dialects() {
        assert_eq!(WireFormat::Pcm24k.ga_json(), serde_json::json!({"type": "audio/pcm", "rate": 24000}));
        assert_eq!(WireFormat::G711(Law::A).ga_json()["type"], "audio/pcma");
        assert_eq!(WireFormat::G711(Law::Mu).beta_name(), "g711_ulaw");
        assert_eq!(WireFormat::for_input(AudioFormat::Pcm(SampleRate::Hz48000)), WireFormat::Pcm24k);
    }
}
