//! Audio frames and the one shape every audio endpoint has.
//!
//! A [`Frame`] is 20 ms of mono 16-bit PCM with its sample rate. Its samples live in a fixed
//! array sized for 48 kHz, so making, copying and passing frames never allocates.
//!
//! *Choice: traits, not a ring pair, are the endpoint shape.* Every endpoint (audio device, RTP
//! stream, AI agent, file, null) is a [`FrameSource`] (frames out) plus a [`FrameSink`] (frames
//! in), bundled as an [`Endpoint`]. Both traits are synchronous and must never block, so the same
//! object can be driven from a tokio task or from a real-time audio callback. Where a real-time
//! thread and a task meet, the lock-free ring in [`super::ring`] implements both traits: the
//! callback holds one end, the task the other, and neither can stall the other. Handing a call to
//! an AI agent is then only swapping which `Endpoint` the RTP session reads from and writes to.
//! A ring pair as *the* shape would force a copy and a thread hop even for a file or a null
//! endpoint that the send loop can simply pull from.

use thiserror::Error;

/// Length of every frame, in milliseconds.
pub const FRAME_MS: u32 = 20;

/// Samples in a 20 ms frame at the highest supported rate (48 kHz).
pub const MAX_FRAME_SAMPLES: usize = 960;

/// What can go wrong building frames or endpoints.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The rate is not one of 8, 16, 24 or 48 kHz.
    #[error("unsupported sample rate {0} Hz (supported: 8000, 16000, 24000, 48000)")]
    UnsupportedRate(u32),
    /// A frame was given the wrong number of samples for its rate.
    #[error("a 20 ms frame at {rate} Hz has {expected} samples, got {got}")]
    WrongLength {
        /// The frame's rate in Hz.
        rate: u32,
        /// Samples a frame at that rate has.
        expected: usize,
        /// Samples given.
        got: usize,
    },
    /// An endpoint was handed frames at a rate it was not built for.
    #[error("endpoint runs at {expected} Hz, frame is {got} Hz")]
    RateMismatch {
        /// The endpoint's rate in Hz.
        expected: u32,
        /// The frame's rate in Hz.
        got: u32,
    },
}

/// A sample rate SipDesk handles internally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleRate {
    /// 8 kHz: G.711 and the telephone network.
    Hz8000,
    /// 16 kHz: wideband (G.722, speech recognition).
    Hz16000,
    /// 24 kHz: AI agents' output.
    Hz24000,
    /// 48 kHz: audio devices and Opus.
    Hz48000,
}

impl SampleRate {
    /// The rate for `hz`, if it is supported.
    pub fn from_hz(hz: u32) -> Result<SampleRate, FrameError> {
        match hz {
            8000 => Ok(SampleRate::Hz8000),
            16000 => Ok(SampleRate::Hz16000),
            24000 => Ok(SampleRate::Hz24000),
            48000 => Ok(SampleRate::Hz48000),
            other => Err(FrameError::UnsupportedRate(other)),
        }
    }

    /// Samples per second.
    pub fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8000,
            SampleRate::Hz16000 => 16000,
            SampleRate::Hz24000 => 24000,
            SampleRate::Hz48000 => 48000,
        }
    }

    /// Samples in one 20 ms frame.
    pub fn frame_samples(self) -> usize {
        (self.hz() / 1000 * FRAME_MS) as usize
    }
}

/// 20 ms of mono 16-bit PCM at one [`SampleRate`].
#[derive(Clone)]
pub struct Frame {
    rate: SampleRate,
    buf: [i16; MAX_FRAME_SAMPLES],
}

impl Frame {
    /// A frame of silence.
    pub fn silence(rate: SampleRate) -> Frame {
        Frame { rate, buf: [0; MAX_FRAME_SAMPLES] }
    }

    /// A frame holding `samples`, which must be exactly one frame's worth at `rate`.
    pub fn from_samples(rate: SampleRate, samples: &[i16]) -> Result<Frame, FrameError> {
        let expected = rate.frame_samples();
        if samples.len() != expected {
            return Err(FrameError::WrongLength { rate: rate.hz(), expected, got: samples.len() });
        }
        let mut f = Frame::silence(rate);
        f.buf[..expected].copy_from_slice(samples);
        Ok(f)
    }

    /// The frame's rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Changes the rate and clears the samples (reusing a frame buffer for another rate).
    pub fn reset(&mut self, rate: SampleRate) {
        self.rate = rate;
        self.buf.fill(0);
    }

    /// The samples (one frame's worth at its rate).
    pub fn samples(&self) -> &[i16] {
        &self.buf[..self.rate.frame_samples()]
    }

    /// The samples, writable.
    pub fn samples_mut(&mut self) -> &mut [i16] {
        let n = self.rate.frame_samples();
        &mut self.buf[..n]
    }

    /// Sets every sample to zero.
    pub fn clear(&mut self) {
        self.buf.fill(0);
    }

    /// True when every sample is zero.
    pub fn is_silent(&self) -> bool {
        self.samples().iter().all(|&s| s == 0)
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The samples would flood a log; their peak says enough.
        let peak = self.samples().iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        f.debug_struct("Frame").field("rate", &self.rate.hz()).field("peak", &peak).finish()
    }
}

/// What a source had when asked for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// A frame was written into the caller's buffer.
    Ready,
    /// No frame is due or available yet (the caller plays silence or waits for its next tick).
    NotYet,
    /// The source has ended for good (end of file, agent gone).
    Ended,
}

/// Where frames come from. Must never block: a call returns at once with what it has.
pub trait FrameSource: Send {
    /// The rate of the frames it yields.
    fn rate(&self) -> SampleRate;
    /// Writes the next frame into `out` (already at [`FrameSource::rate`]) when one is ready.
    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll;
}

/// Where frames go. Must never block: a full or slow sink drops frames rather than wait.
pub trait FrameSink: Send {
    /// The rate of the frames it takes.
    fn rate(&self) -> SampleRate;
    /// Takes one frame. Failures are kept and reported by [`FrameSink::close`], so the media
    /// path never has to handle them frame by frame.
    fn put_frame(&mut self, frame: &Frame);
    /// How long a frame handed over now waits before it starts to be heard: the audio queued
    /// ahead of it and any conversion delay. Zero for sinks that do not play in real time (a
    /// file). The jitter buffer counts it as part of its delay.
    fn latency(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// Flushes and reports the first failure seen, if any (a WAV file that could not be written).
    fn close(&mut self) -> Result<(), EndpointError> {
        Ok(())
    }
}

/// A failure an endpoint reports when it is closed.
#[derive(Debug, Error)]
#[error("{endpoint}: {message}")]
pub struct EndpointError {
    /// Which endpoint (e.g. `wav sink /tmp/x.wav`).
    pub endpoint: String,
    /// What went wrong.
    pub message: String,
}

/// One audio endpoint: the frames it produces and the frames it consumes.
pub struct Endpoint {
    source: Box<dyn FrameSource>,
    sink: Box<dyn FrameSink>,
}

impl Endpoint {
    /// An endpoint made of a source and a sink.
    pub fn new(source: Box<dyn FrameSource>, sink: Box<dyn FrameSink>) -> Endpoint {
        Endpoint { source, sink }
    }

    /// Splits it, for a session that reads the source and writes the sink on different tasks.
    pub fn into_parts(self) -> (Box<dyn FrameSource>, Box<dyn FrameSink>) {
        (self.source, self.sink)
    }
}

/// Silence in, everything out discarded: a call with no audio attached (e.g. on hold).
#[derive(Debug, Clone, Copy)]
pub struct NullEndpoint {
    rate: SampleRate,
}

impl NullEndpoint {
    /// A null endpoint at `rate`.
    pub fn new(rate: SampleRate) -> NullEndpoint {
        NullEndpoint { rate }
    }

    /// As an [`Endpoint`].
    pub fn endpoint(rate: SampleRate) -> Endpoint {
        Endpoint::new(Box::new(NullEndpoint::new(rate)), Box::new(NullEndpoint::new(rate)))
    }
}

impl FrameSource for NullEndpoint {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        out.reset(self.rate);
        SourcePoll::Ready
    }
}

impl FrameSink for NullEndpoint {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn put_frame(&mut self, _frame: &Frame) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_frame_sizes() {
        let sizes: Vec<usize> =
            [8000, 16000, 24000, 48000].iter().map(|&hz| SampleRate::from_hz(hz).unwrap().frame_samples()).collect();
        assert_eq!(sizes, vec![160, 320, 480, 960]);
        assert_eq!(SampleRate::from_hz(44100), Err(FrameError::UnsupportedRate(44100)));
        assert_eq!(SampleRate::Hz24000.hz(), 24000);
    }

    #[test]
    fn frame_holds_exactly_one_frame_of_samples() {
        let s: Vec<i16> = (0..160).collect();
        let f = Frame::from_samples(SampleRate::Hz8000, &s).unwrap();
        assert_eq!(f.samples(), &s[..]);
        assert!(!f.is_silent());
        let err = Frame::from_samples(SampleRate::Hz16000, &s).unwrap_err();
        assert_eq!(err, FrameError::WrongLength { rate: 16000, expected: 320, got: 160 });
        assert!(err.to_string().contains("320"));
    }

    #[test]
    fn reset_changes_rate_and_clears() {
        let mut f = Frame::from_samples(SampleRate::Hz8000, &[7; 160]).unwrap();
        f.reset(SampleRate::Hz48000);
        assert_eq!(f.samples().len(), 960);
        assert!(f.is_silent());
        assert!(format!("{f:?}").contains("48000"));
    }

    #[test]
    fn null_endpoint_gives_silence_and_swallows_frames() {
        let (mut src, mut sink) = NullEndpoint::endpoint(SampleRate::Hz16000).into_parts();
        let mut f = Frame::from_samples(SampleRate::Hz8000, &[5; 160]).unwrap();
        assert_eq!(src.poll_frame(&mut f), SourcePoll::Ready);
        assert_eq!((f.rate(), f.is_silent()), (SampleRate::Hz16000, true));
        sink.put_frame(&f);
        assert!(sink.close().is_ok());
        assert_eq!(sink.rate(), SampleRate::Hz16000);
    }
}
