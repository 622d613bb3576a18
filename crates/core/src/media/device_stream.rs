//! The cpal side of the device endpoint ([`super::device`]): which stream format to ask a device
//! for, and the real-time callbacks. The callbacks only convert between the device's sample
//! format and channels and mono 16-bit samples in a lock-free ring: no locks, no allocation, no
//! blocking, no resampling. Each also notes the size of its buffer in an atomic, which the call
//! side reads to know how much backlog one callback's worth is.
//!
//! *Choice: the smallest buffer the host honours.* Every millisecond of device buffer is a
//! millisecond of latency. On the PulseAudio host (pipewire-pulse) that is 256 frames at 48 kHz
//! (5.3 ms, its `pulse.min.req`; cpal keeps two of them queued for playback); on the others
//! 10 ms, which ALSA hardware on a busy machine still plays without underruns.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{SampleFormat, SizedSample, StreamConfig, SupportedStreamConfigRange};

use super::device::{DeviceError, Direction};
use super::ring::{RingSink, RingSource};

/// Device rate preferred when a device offers a range (every device and PipeWire take it).
const PREFERRED_DEVICE_HZ: u32 = 48_000;
/// Playback waits for this many 20 ms frames before it starts (and restarts after running dry):
/// one, what the call side hands over at each tick.
const PLAYBACK_PRIME_FRAMES: usize = 1;
/// Samples a callback converts at a time, on its stack.
const CALLBACK_CHUNK: usize = 256;

/// The stream format chosen for a device.
pub(super) struct Format {
    config: StreamConfig,
    sample: SampleFormat,
    /// The buffer size asked for ([`buffer_frames`]), when the device says what it allows.
    fixed: Option<u32>,
}

/// The buffer, in frames at `hz`, asked of a device on `host` (see the module's doc).
pub(super) fn buffer_frames(host: cpal::HostId, hz: u32) -> u32 {
    if host.name().eq_ignore_ascii_case("pulseaudio") {
        (u64::from(hz) * 256 / 48_000).max(1) as u32
    } else {
        (hz / 100).max(1)
    }
}

impl Format {
    /// Picks f32 or i16 samples, 48 kHz if offered (else the closest), the fewest channels, and
    /// the buffer [`buffer_frames`] gives for `host`.
    pub(super) fn choose(
        ranges: Result<Vec<SupportedStreamConfigRange>, cpal::Error>,
        host: cpal::HostId,
        direction: Direction,
        name: &str,
    ) -> Result<Format, DeviceError> {
        let unsupported = |detail: String| DeviceError::UnsupportedConfig {
            direction: direction.as_str(),
            name: name.to_string(),
            detail,
        };
        let ranges = ranges.map_err(|e| match e.kind() {
            // ALSA's way of saying the device cannot be opened at all.
            cpal::ErrorKind::DeviceNotAvailable => {
                DeviceError::Stream { direction: direction.as_str(), name: name.to_string(), detail: e.to_string() }
            }
            _ => unsupported(e.to_string()),
        })?;
        let pick_rate =
            |r: &SupportedStreamConfigRange| PREFERRED_DEVICE_HZ.clamp(r.min_sample_rate(), r.max_sample_rate());
        let best = ranges
            .iter()
            .filter(|r| matches!(r.sample_format(), SampleFormat::F32 | SampleFormat::I16) && r.channels() > 0)
            .min_by_key(|r| {
                (pick_rate(r).abs_diff(PREFERRED_DEVICE_HZ), r.channels(), r.sample_format() != SampleFormat::F32)
            })
            .ok_or_else(|| unsupported(format!("{} configurations, none f32/i16", ranges.len())))?;
        let hz = pick_rate(best);
        let fixed = match best.buffer_size() {
            cpal::SupportedBufferSize::Range { min, max } => Some(buffer_frames(host, hz).clamp(*min, *max)),
            cpal::SupportedBufferSize::Unknown => None,
        };
        Ok(Format { config: best.with_sample_rate(hz).config(), sample: best.sample_format(), fixed })
    }

    /// The device rate.
    pub(super) fn hz(&self) -> u32 {
        self.config.sample_rate
    }

    /// The device's channels.
    pub(super) fn channels(&self) -> u16 {
        self.config.channels
    }

    /// Builds a stream with the chosen buffer first and the device's default if that is refused.
    pub(super) fn build<R>(
        &self,
        direction: Direction,
        name: &str,
        mut make: impl FnMut(StreamConfig, SampleFormat) -> Result<(cpal::Stream, R), cpal::Error>,
    ) -> Result<(cpal::Stream, R), DeviceError> {
        if let Some(frames) = self.fixed {
            let sized = StreamConfig { buffer_size: cpal::BufferSize::Fixed(frames), ..self.config };
            match make(sized, self.sample) {
                Ok(s) => return Ok(s),
                Err(e) => tracing::debug!(direction = direction.as_str(), error = %e, "fixed buffer size refused"),
            }
        }
        make(self.config, self.sample).map_err(|e| DeviceError::Stream {
            direction: direction.as_str(),
            name: name.to_string(),
            detail: e.to_string(),
        })
    }
}

/// Samples as f32 in -1..1 and back.
trait DeviceSample: SizedSample + Send + 'static {
    fn to_f32(self) -> f32;
    fn from_i16(s: i16) -> Self;
}

impl DeviceSample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_i16(s: i16) -> f32 {
        f32::from(s) / 32768.0
    }
}

impl DeviceSample for i16 {
    fn to_f32(self) -> f32 {
        f32::from(self) / 32768.0
    }
    fn from_i16(s: i16) -> i16 {
        s
    }
}

fn to_i16(v: f32) -> i16 {
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// The size of a stream's latest callback buffer, in frames (samples per channel): written by
/// the callback, read by the call side.
pub(super) type CallbackSize = Arc<AtomicU32>;

/// A capture stream: each callback mixes to mono i16 and pushes into `ring`.
pub(super) fn input(
    dev: &cpal::Device,
    cfg: StreamConfig,
    sample: SampleFormat,
    ring: RingSink,
    size: CallbackSize,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
    timeout: Duration,
) -> Result<cpal::Stream, cpal::Error> {
    match sample {
        SampleFormat::F32 => dev.build_input_stream(cfg, capture::<f32>(cfg, ring, size), on_error, Some(timeout)),
        _ => dev.build_input_stream(cfg, capture::<i16>(cfg, ring, size), on_error, Some(timeout)),
    }
}

/// A playback stream: each callback pops mono i16 from `ring` into every channel.
pub(super) fn output(
    dev: &cpal::Device,
    cfg: StreamConfig,
    sample: SampleFormat,
    ring: RingSource,
    size: CallbackSize,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
    timeout: Duration,
) -> Result<cpal::Stream, cpal::Error> {
    match sample {
        SampleFormat::F32 => dev.build_output_stream(cfg, playback::<f32>(cfg, ring, size), on_error, Some(timeout)),
        _ => dev.build_output_stream(cfg, playback::<i16>(cfg, ring, size), on_error, Some(timeout)),
    }
}

/// The capture callback. No locks, no allocation.
fn capture<T: DeviceSample>(
    cfg: StreamConfig,
    mut ring: RingSink,
    size: CallbackSize,
) -> impl FnMut(&[T], &cpal::InputCallbackInfo) {
    let channels = usize::from(cfg.channels.max(1));
    let scale = 1.0 / channels as f32;
    move |data: &[T], _: &cpal::InputCallbackInfo| {
        size.store((data.len() / channels) as u32, Ordering::Relaxed);
        let mut chunk = [0i16; CALLBACK_CHUNK];
        for frames in data.chunks(CALLBACK_CHUNK * channels) {
            let n = frames.len() / channels;
            for (out, frame) in chunk.iter_mut().zip(frames.chunks_exact(channels)) {
                *out = to_i16(frame.iter().map(|s| s.to_f32()).sum::<f32>() * scale);
            }
            ring.push_samples(&chunk[..n]);
        }
    }
}

/// The playback callback: silence until primed, and again whenever the ring runs dry. (What
/// stays queued beyond need is trimmed on the call side, [`super::device::DeviceSink`].)
fn playback<T: DeviceSample>(
    cfg: StreamConfig,
    mut ring: RingSource,
    size: CallbackSize,
) -> impl FnMut(&mut [T], &cpal::OutputCallbackInfo) {
    let channels = usize::from(cfg.channels.max(1));
    let prime = PLAYBACK_PRIME_FRAMES * cfg.sample_rate as usize / 50;
    let mut primed = false;
    move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
        size.store((data.len() / channels) as u32, Ordering::Relaxed);
        if !primed && ring.available() >= prime {
            primed = true;
        }
        let mut chunk = [0i16; CALLBACK_CHUNK];
        for frames in data.chunks_mut(CALLBACK_CHUNK * channels) {
            let want = frames.len() / channels;
            let got = if primed { ring.pop_samples(&mut chunk[..want]) } else { 0 };
            chunk[got..want].fill(0);
            if got < want {
                primed = false;
            }
            for (frame, &s) in frames.chunks_exact_mut(channels).zip(&chunk[..want]) {
                frame.fill(T::from_i16(s));
            }
        }
    }
}
