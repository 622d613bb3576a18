//! Opus (RFC 6716, RTP payload RFC 7587) through libopus (`audiopus` 0.2).
//!
//! Internally always 48 kHz mono, 20 ms frames (960 samples), whatever the SDP says about
//! stereo (`opus/48000/2` is only the RFC 7587 spelling; we send and ask for mono). The encoder
//! has in-band FEC on with an expected loss of [`EXPECTED_LOSS_PERCENT`], so libopus really puts
//! a low-bitrate copy of the previous frame in each packet (SILK does so for frames its VAD calls
//! speech; a steady test tone gets none, see the tests). On receive, a missing packet (lost,
//! or not sent at all under the peer's DTX) is concealed by the decoder's own PLC
//! ([`OpusDecoder::conceal`]), and a single lost packet can be rebuilt from the next one's FEC
//! ([`OpusDecoder::decode_fec`]). Every failure is an [`OpusError`]; malformed payloads are errors,
//! never panics.
//!
//! *Choice: settings for a voice softphone, not libopus's defaults.* The encoder runs at
//! complexity [`COMPLEXITY`] (libopus defaults to 10, which runs its signal analysis on every
//! frame and costs over twice as much: on the 2-core test machine 260 against 120 µs for a
//! 20 ms frame of voiced speech) and codes at most
//! wideband (audio up to 8 kHz, [`MAX_BANDWIDTH`]), which SILK alone covers: twice the telephone
//! band, where speech has all it needs; wider would spend CELT's work and bits on the band above
//! (at 32 kbit/s libopus would otherwise pick the hybrid full-band mode). An Opus call's endpoint
//! runs at 48 kHz, so the band reaches the headset whole. The application is VoIP and the
//! signal is declared as voice. Decoding takes whatever the far end sends.

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bandwidth, Bitrate, Channels, SampleRate as OpusRate, Signal};
use thiserror::Error;

/// Opus's RTP clock and our internal rate (RFC 7587 §4.1: always 48000).
pub const OPUS_RATE: u32 = 48000;

/// Samples in one 20 ms frame at 48 kHz (also the RTP timestamp step).
pub const OPUS_FRAME_SAMPLES: usize = 960;

/// Packet loss the encoder plans for, so that it sends FEC.
pub const EXPECTED_LOSS_PERCENT: u8 = 10;

/// Bit rate we encode at: ample for wideband speech with FEC.
pub const BITRATE: i32 = 32000;

/// Encoder complexity (0-10): 5 keeps SILK's quality for speech at half the cost of 10.
pub const COMPLEXITY: u8 = 5;

/// The widest audio band the encoder codes: wideband (8 kHz of audio, SILK's widest).
pub const MAX_BANDWIDTH: Bandwidth = Bandwidth::Wideband;

/// Largest payload we produce or accept (RFC 6716 §3.4: 1275 bytes per frame).
pub const MAX_PAYLOAD: usize = 1275;

/// The longest packet we decode: 120 ms at 48 kHz.
const MAX_DECODED: usize = 5760;

/// What can go wrong with Opus.
#[derive(Debug, Error)]
pub enum OpusError {
    /// libopus refused to create the encoder or decoder, or to set an option.
    #[error("opus setup: {0}")]
    Setup(String),
    /// The input frame was not 20 ms at 48 kHz.
    #[error("opus encodes 20 ms frames of {OPUS_FRAME_SAMPLES} samples, got {0}")]
    FrameLength(usize),
    /// Encoding failed.
    #[error("opus encode: {0}")]
    Encode(String),
    /// The payload was empty, too long or not a valid Opus packet.
    #[error("malformed opus payload ({len} bytes): {why}")]
    Malformed {
        /// Payload length.
        len: usize,
        /// libopus's reason.
        why: String,
    },
    /// The packet decoded to something other than 20 ms (we play 20 ms packets only).
    #[error("opus packet holds {0} samples, only 20 ms ({OPUS_FRAME_SAMPLES}) packets are played")]
    Duration(usize),
}

/// Encodes 20 ms mono frames at 48 kHz.
pub struct OpusEncoder {
    inner: Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// A VoIP encoder for speech with in-band FEC on (see the module's doc for the settings).
    pub fn new() -> Result<OpusEncoder, OpusError> {
        let setup = |e: audiopus::Error| OpusError::Setup(e.to_string());
        let mut inner = Encoder::new(OpusRate::Hz48000, Channels::Mono, Application::Voip).map_err(setup)?;
        inner.set_bitrate(Bitrate::BitsPerSecond(BITRATE)).map_err(setup)?;
        inner.set_complexity(COMPLEXITY).map_err(setup)?;
        inner.set_signal(Signal::Voice).map_err(setup)?;
        inner.set_max_bandwidth(MAX_BANDWIDTH).map_err(setup)?;
        inner.set_inband_fec(true).map_err(setup)?;
        inner.set_packet_loss_perc(EXPECTED_LOSS_PERCENT).map_err(setup)?;
        Ok(OpusEncoder { inner })
    }

    /// The encoder's complexity (for tests and diagnostics).
    pub fn complexity(&self) -> u8 {
        self.inner.complexity().unwrap_or(0)
    }

    /// Encodes one 20 ms frame (960 samples) into `out`; returns the payload length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        if pcm.len() != OPUS_FRAME_SAMPLES {
            return Err(OpusError::FrameLength(pcm.len()));
        }
        self.inner.encode(pcm, out).map_err(|e| OpusError::Encode(e.to_string()))
    }

    /// Whether in-band FEC is on (it always is; for tests and diagnostics).
    pub fn fec(&self) -> bool {
        self.inner.inband_fec().unwrap_or(false)
    }

    /// The loss percentage the encoder plans for.
    pub fn expected_loss(&self) -> u8 {
        self.inner.packet_loss_perc().unwrap_or(0)
    }
}

/// Decodes Opus payloads to 20 ms mono frames at 48 kHz, concealing lost ones.
pub struct OpusDecoder {
    inner: Decoder,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A mono decoder at 48 kHz (a stereo stream is downmixed by libopus).
    pub fn new() -> Result<OpusDecoder, OpusError> {
        let inner = Decoder::new(OpusRate::Hz48000, Channels::Mono).map_err(|e| OpusError::Setup(e.to_string()))?;
        Ok(OpusDecoder { inner, scratch: vec![0; MAX_DECODED] })
    }

    /// Decodes `payload` into `out` (960 samples).
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<(), OpusError> {
        self.run(Some(payload), out, false)
    }

    /// Rebuilds the frame *before* `payload` from its in-band FEC (when the previous packet was
    /// lost). Without FEC data libopus falls back to concealment, so this always yields a frame.
    pub fn decode_fec(&mut self, payload: &[u8], out: &mut [i16]) -> Result<(), OpusError> {
        self.run(Some(payload), out, true)
    }

    /// Conceals one lost 20 ms frame with the decoder's PLC (also what DTX gaps get).
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<(), OpusError> {
        self.run(None, out, false)
    }

    fn run(&mut self, payload: Option<&[u8]>, out: &mut [i16], fec: bool) -> Result<(), OpusError> {
        if out.len() != OPUS_FRAME_SAMPLES {
            return Err(OpusError::FrameLength(out.len()));
        }
        let malformed = |len: usize, why: String| OpusError::Malformed { len, why };
        if let Some(p) = payload {
            if p.is_empty() || p.len() > MAX_PAYLOAD * 3 {
                return Err(malformed(p.len(), "empty or oversized".into()));
            }
        }
        // FEC and PLC are asked for exactly one frame's worth; a normal packet may hold more,
        // so it is decoded into the scratch buffer and checked.
        let n = if fec || payload.is_none() {
            let buf = &mut self.scratch[..OPUS_FRAME_SAMPLES];
            self.inner.decode(payload, &mut buf[..], fec)
        } else {
            self.inner.decode(payload, &mut self.scratch[..], false)
        }
        .map_err(|e| malformed(payload.map_or(0, <[u8]>::len), e.to_string()))?;
        if n != OPUS_FRAME_SAMPLES {
            return Err(OpusError::Duration(n));
        }
        out.copy_from_slice(&self.scratch[..OPUS_FRAME_SAMPLES]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, n: usize, start: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 48000.0).sin()) as i16)
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn round_trip_keeps_a_tone() {
        let mut enc = OpusEncoder::new().unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        assert!(enc.fec());
        assert_eq!(enc.expected_loss(), EXPECTED_LOSS_PERCENT);
        assert_eq!(enc.complexity(), COMPLEXITY);
        let mut payload = [0u8; MAX_PAYLOAD];
        let mut out = [0i16; OPUS_FRAME_SAMPLES];
        let mut last = Vec::new();
        for k in 0..25 {
            let pcm = sine(1000.0, OPUS_FRAME_SAMPLES, k * OPUS_FRAME_SAMPLES);
            let n = enc.encode(&pcm, &mut payload).unwrap();
            assert!(n > 0 && n < 400, "{n} bytes");
            dec.decode(&payload[..n], &mut out).unwrap();
            last = out.to_vec();
        }
        let level = rms(&last);
        assert!((level / rms(&sine(1000.0, 960, 0)) - 1.0).abs() < 0.2, "rms {level}");
    }

    #[test]
    fn fec_and_plc_give_frames() {
        let mut enc = OpusEncoder::new().unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut packets = Vec::new();
        for k in 0..20 {
            let mut p = [0u8; MAX_PAYLOAD];
            let n = enc.encode(&sine(700.0, 960, k * 960), &mut p).unwrap();
            packets.push(p[..n].to_vec());
        }
        let mut out = [0i16; OPUS_FRAME_SAMPLES];
        for p in &packets[..10] {
            dec.decode(p, &mut out).unwrap();
        }
        // Packet 10 lost: rebuilt from 11 (FEC, or PLC where a tone carries none), then 11 itself.
        dec.decode_fec(&packets[11], &mut out).unwrap();
        assert!(rms(&out) > 1000.0, "FEC frame rms {}", rms(&out));
        dec.decode(&packets[11], &mut out).unwrap();
        // Two lost in a row: PLC keeps sound going.
        dec.conceal(&mut out).unwrap();
        assert!(rms(&out) > 500.0, "PLC frame rms {}", rms(&out));
        dec.conceal(&mut out).unwrap();
        dec.decode(&packets[14], &mut out).unwrap();
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = [0i16; OPUS_FRAME_SAMPLES];
        assert!(matches!(dec.decode(&[], &mut out), Err(OpusError::Malformed { len: 0, .. })));
        assert!(dec.decode(&vec![0u8; 10_000], &mut out).is_err());
        // Code 3 (arbitrary frames) with a frame count byte claiming 63 frames of 2.5 ms... and no data.
        let _ = dec.decode(&[0x03, 0xFF], &mut out);
        // 60 ms packet (config 3 = SILK NB 60 ms): decodes but is not 20 ms.
        let _ = dec.decode(&[0x18, 0, 0, 0], &mut out);
        let mut rng = 12345u32;
        for len in 1..200 {
            let p: Vec<u8> = (0..len)
                .map(|_| {
                    rng = rng.wrapping_mul(1103515245).wrapping_add(12345);
                    (rng >> 16) as u8
                })
                .collect();
            let _ = dec.decode(&p, &mut out);
        }
        let mut short = [0i16; 10];
        assert!(matches!(dec.conceal(&mut short), Err(OpusError::FrameLength(10))));
        let mut enc = OpusEncoder::new().unwrap();
        assert!(matches!(enc.encode(&[0; 160], &mut [0; 100]), Err(OpusError::FrameLength(160))));
    }

    /// Voiced "syllables" (a 140 Hz buzz with harmonics, 4 a second): SILK codes FEC only for
    /// frames its VAD calls speech, so a steady tone would not show it.
    fn speechlike(k: usize) -> Vec<i16> {
        (k * 960..k * 960 + 960)
            .map(|i| {
                let t = i as f64 / 48000.0;
                let f0 = 140.0 + 40.0 * (t * 3.0).sin();
                let v: f64 = (1..12).map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64).sum();
                if (t * 4.0).fract() < 0.7 {
                    (v * 5000.0 * (t * 4.0 * std::f64::consts::PI).sin().abs()) as i16
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn speech_is_coded_by_silk_alone_at_wideband() {
        let mut enc = OpusEncoder::new().unwrap();
        let mut p = [0u8; MAX_PAYLOAD];
        for k in 0..50 {
            let n = enc.encode(&speechlike(k), &mut p).unwrap();
            // RFC 6716 §3.1: TOC configurations 8-11 are SILK-only wideband.
            assert!(n > 0 && (8..=11).contains(&(p[0] >> 3)), "frame {k}: TOC config {}", p[0] >> 3);
        }
    }

    #[test]
    fn fec_is_really_sent_and_beats_concealment() {
        let mut enc = OpusEncoder::new().unwrap();
        let packets: Vec<Vec<u8>> = (0..22)
            .map(|k| {
                let mut p = [0u8; MAX_PAYLOAD];
                let n = enc.encode(&speechlike(k), &mut p).unwrap();
                p[..n].to_vec()
            })
            .collect();
        // Frame 20 decoded three ways: received, rebuilt from 21's FEC, concealed by PLC.
        let mut outs = Vec::new();
        for how in 0..3 {
            let mut dec = OpusDecoder::new().unwrap();
            let mut out = [0i16; OPUS_FRAME_SAMPLES];
            for p in &packets[..20] {
                dec.decode(p, &mut out).unwrap();
            }
            match how {
                0 => dec.decode(&packets[20], &mut out).unwrap(),
                1 => dec.decode_fec(&packets[21], &mut out).unwrap(),
                _ => dec.conceal(&mut out).unwrap(),
            }
            outs.push(out);
        }
        let dist = |a: &[i16], b: &[i16]| {
            a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>().sqrt()
        };
        let (fec, plc) = (dist(&outs[1], &outs[0]), dist(&outs[2], &outs[0]));
        assert!(fec * 3.0 < plc, "FEC error {fec:.0}, PLC error {plc:.0}: no FEC in the packets?");
    }
}
