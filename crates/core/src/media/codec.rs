//! The codec an RTP session runs: one trait over G.711 and Opus, plus the streaming resampler
//! that joins a codec's rate to the endpoint's.
//!
//! An [`AudioCodec`] turns 20 ms of PCM at its own rate ([`AudioCodec::rate`]) into a payload and
//! back, and may conceal a lost frame or rebuild one from the next packet's FEC. G.711 conceals
//! by repeating its last frame at falling gain; Opus does both inside libopus.

use thiserror::Error;

use super::frame::SampleRate;
use super::g711::Law;
use super::offer_answer::Codec;
use super::opus::{OpusDecoder, OpusEncoder, OpusError, MAX_PAYLOAD};
use super::rate_convert::Polyphase;

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Error)]
pub enum CodecError {
    /// A G.711 payload that is not 20 ms.
    #[error("{0} bytes of G.711, only 20 ms packets are played")]
    G711Length(usize),
    /// Opus failed.
    #[error(transparent)]
    Opus(#[from] OpusError),
}

/// Encodes and decodes one stream's audio, 20 ms at a time.
pub trait AudioCodec: Send {
    /// The PCM rate it encodes from and decodes to.
    fn rate(&self) -> SampleRate;
    /// The RTP clock rate (the timestamp advances `clock_rate / 50` per 20 ms frame).
    fn clock_rate(&self) -> u32;
    /// Encodes one frame (`rate().frame_samples()` samples) into `out`; returns the length.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;
    /// Decodes one payload into `out` (one frame at `rate()`).
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<(), CodecError>;
    /// Conceals one lost frame into `out`; false if the codec cannot (the caller plays silence).
    fn conceal(&mut self, _out: &mut [i16]) -> bool {
        false
    }
    /// Rebuilds the frame before `next` from `next`'s FEC; false if the codec cannot.
    fn recover(&mut self, _next: &[u8], _out: &mut [i16]) -> bool {
        false
    }
}

/// The codec for a negotiated [`Codec`].
pub fn for_codec(codec: Codec) -> Result<Box<dyn AudioCodec>, CodecError> {
    Ok(match codec {
        Codec::Pcmu => Box::new(G711::new(Law::Mu)),
        Codec::Pcma => Box::new(G711::new(Law::A)),
        Codec::Opus => Box::new(Opus { enc: OpusEncoder::new()?, dec: OpusDecoder::new()? }),
    })
}

/// Concealed G.711 frames before it goes quiet (100 ms).
const G711_MAX_CONCEAL: u32 = 5;

/// G.711 at 8 kHz: one byte per sample; keeps the last frame to conceal a loss with.
struct G711 {
    law: Law,
    last: [i16; 160],
    concealed: u32,
}

impl G711 {
    fn new(law: Law) -> G711 {
        G711 { law, last: [0; 160], concealed: 0 }
    }
}

impl AudioCodec for G711 {
    fn rate(&self) -> SampleRate {
        SampleRate::Hz8000
    }

    fn clock_rate(&self) -> u32 {
        8000
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        Ok(self.law.encode_into(pcm, out))
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<(), CodecError> {
        if payload.len() != out.len() {
            return Err(CodecError::G711Length(payload.len()));
        }
        self.law.decode_into(payload, out);
        self.last.copy_from_slice(out);
        self.concealed = 0;
        Ok(())
    }

    /// Repeats the last frame, each repetition half as loud as the one before and ramping down
    /// inside the frame so there is no step; after 100 ms, silence.
    fn conceal(&mut self, out: &mut [i16]) -> bool {
        self.concealed += 1;
        if self.concealed > G711_MAX_CONCEAL || out.len() != self.last.len() {
            out.fill(0);
            return true;
        }
        let g0 = 0.5f32.powi(self.concealed as i32 - 1);
        let n = out.len() as f32;
        for (i, (o, s)) in out.iter_mut().zip(&self.last).enumerate() {
            *o = (*s as f32 * g0 * (1.0 - 0.5 * i as f32 / n)) as i16;
        }
        true
    }
}

/// Opus at 48 kHz mono (see [`super::opus`]).
struct Opus {
    enc: OpusEncoder,
    dec: OpusDecoder,
}

impl AudioCodec for Opus {
    fn rate(&self) -> SampleRate {
        SampleRate::Hz48000
    }

    fn clock_rate(&self) -> u32 {
        48000
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let n = out.len().min(MAX_PAYLOAD);
        Ok(self.enc.encode(pcm, &mut out[..n])?)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<(), CodecError> {
        Ok(self.dec.decode(payload, out)?)
    }

    fn conceal(&mut self, out: &mut [i16]) -> bool {
        self.dec.conceal(out).is_ok()
    }

    fn recover(&mut self, next: &[u8], out: &mut [i16]) -> bool {
        self.dec.decode_fec(next, out).is_ok()
    }
}

/// Converts a stream from one rate to another a frame at a time, with the polyphase filter of
/// [`super::rate_convert`] (band-limited both ways: nothing folds back going down, no images going
/// up, which a wideband listener would hear) and no seam at frame edges. It delays audio by the
/// filter's 2.7 ms (8 kHz both sides) or less. Its buffers are made on the first frame and
/// kept, so it never allocates after; still, it belongs on a task, not in a device callback.
pub struct StreamResampler {
    /// None: equal rates, samples pass unchanged.
    filter: Option<Polyphase>,
    converted: Vec<i16>,
}

impl StreamResampler {
    /// A resampler from `from` to `to`.
    pub fn new(from: SampleRate, to: SampleRate) -> StreamResampler {
        // Every pair of supported rates has a small ratio: the polyphase filter always exists.
        let filter = if from == to { None } else { Polyphase::new(from.hz(), to.hz()) };
        StreamResampler { filter, converted: Vec::new() }
    }

    /// Resamples one frame `input` (at `from`) into `out` (one frame at `to`). Every supported
    /// rate holds a whole number of the filter's periods in 20 ms, so each frame gives exactly
    /// one frame.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) {
        let Some(filter) = self.filter.as_mut() else {
            let n = out.len().min(input.len());
            out[..n].copy_from_slice(&input[..n]);
            return out[n..].fill(0);
        };
        self.converted.clear();
        filter.process(input, &mut self.converted);
        let n = out.len().min(self.converted.len());
        out[..n].copy_from_slice(&self.converted[..n]);
        out[n..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| (10000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
            .collect()
    }

    #[test]
    fn stream_resampler_has_no_seams() {
        for (from, to) in [(SampleRate::Hz8000, SampleRate::Hz48000), (SampleRate::Hz48000, SampleRate::Hz8000)] {
            let mut r = StreamResampler::new(from, to);
            let mut all = Vec::new();
            for k in 0..10 {
                let input = sine(1000.0, from.hz(), k * from.frame_samples(), from.frame_samples());
                let mut out = vec![0; to.frame_samples()];
                r.process(&input, &mut out);
                all.extend(out);
            }
            // Past the first frame, consecutive samples of a 1 kHz sine never jump more than
            // its steepest slope allows (plus rounding).
            let max_step = 10000.0 * 2.0 * std::f64::consts::PI * 1000.0 / to.hz() as f64 * 1.2 + 4.0;
            for (i, w) in all.windows(2).enumerate().skip(to.frame_samples()) {
                let d = (f64::from(w[1]) - f64::from(w[0])).abs();
                assert!(d <= max_step, "{}->{}: step {d} at {i}", from.hz(), to.hz());
            }
        }
    }

    #[test]
    fn g711_rejects_wrong_lengths_and_opus_conceals() {
        let mut g = for_codec(Codec::Pcmu).unwrap();
        let mut out = [0i16; 160];
        assert!(matches!(g.decode(&[0xFF; 80], &mut out), Err(CodecError::G711Length(80))));
        g.decode(&[0x80; 160], &mut out).unwrap();
        let loud = out[0];
        assert!(g.conceal(&mut out) && out[0] == loud, "first repeat starts at full level");
        assert!(g.conceal(&mut out) && out[0] == loud / 2, "then halves");
        for _ in 0..4 {
            g.conceal(&mut out);
        }
        assert!(out.iter().all(|&s| s == 0), "quiet after 100 ms");
        let mut o = for_codec(Codec::Opus).unwrap();
        assert_eq!((o.rate(), o.clock_rate()), (SampleRate::Hz48000, 48000));
        let mut pcm48 = [0i16; 960];
        assert!(o.conceal(&mut pcm48));
        assert!(o.decode(&[], &mut pcm48).is_err());
    }
}
