//! The audio device endpoint: the agent's headset through `cpal`.
//!
//! [`DeviceEndpoint::open`] returns the usual [`Endpoint`]. Its halves are the call side of two
//! lock-free rings ([`frame_ring`]); the device's cpal callbacks hold the other ends.
//!
//! *Choice: the callbacks only convert formats.* A capture callback mixes the device's channels
//! down to mono 16-bit samples at the device's own rate and pushes them into a ring; a playback
//! callback pops mono samples at the device's rate and copies each into every channel (silence
//! when the ring runs dry). Neither blocks, locks nor allocates. Resampling between the device
//! rate and the call rate happens on the call side ([`DeviceSource`], [`DeviceSink`]), in
//! buffers allocated once, so the real-time threads do the least work possible.
//!
//! *Choice: the streams live on their own thread.* cpal's `Stream` is `!Send` on every
//! platform, while the endpoint halves move between tokio tasks. One thread per endpoint opens
//! the devices, owns the streams, and drops them (closing the devices) when both halves are gone.
//!
//! A device that fails mid-stream does not panic: the error is logged, the source then reports
//! [`SourcePoll::Ended`] and the sink's [`FrameSink::close`] reports it, so the caller can fall
//! back to another device.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SizedSample, StreamConfig, SupportedStreamConfigRange};
use thiserror::Error;

use super::frame::{Endpoint, EndpointError, Frame, FrameSink, FrameSource, SampleRate, SourcePoll};
use super::ring::{frame_ring, RingSink, RingSource};

/// Device rate preferred when a device offers a range (every device and PipeWire take it).
const PREFERRED_DEVICE_HZ: u32 = 48_000;
/// Capacity of each device ring, in 20 ms frames (bounds capture latency if the call lags).
const RING_FRAMES: usize = 10;
/// Playback waits for this many 20 ms frames before it starts (and restarts after running dry).
const PLAYBACK_PRIME_FRAMES: usize = 2;
/// Samples a callback converts at a time, on its stack.
const CALLBACK_CHUNK: usize = 256;

/// What can go wrong opening or running an audio device.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// No device of that name, or no default device.
    #[error("no {direction} audio device {}", name.as_deref().map_or("(system default)".to_string(), |n| format!("named {n:?}")))]
    NotFound {
        /// `input` or `output`.
        direction: &'static str,
        /// The name asked for; `None` for the system default.
        name: Option<String>,
    },
    /// The device lists no configuration SipDesk can use (f32 or i16 samples).
    #[error("{direction} device {name:?} offers no usable configuration (need f32 or i16 samples): {detail}")]
    UnsupportedConfig {
        /// `input` or `output`.
        direction: &'static str,
        /// The device's name.
        name: String,
        /// What the device offered or why it could not say.
        detail: String,
    },
    /// The audio system could not list devices.
    #[error("cannot list audio devices: {0}")]
    Enumerate(String),
    /// The stream could not be built or started.
    #[error("cannot start the {direction} stream on {name:?}: {detail}")]
    Stream {
        /// `input` or `output`.
        direction: &'static str,
        /// The device's name.
        name: String,
        /// The backend's message.
        detail: String,
    },
    /// The thread that owns the streams could not be started or died while opening.
    #[error("audio device thread: {0}")]
    Thread(String),
}

/// The devices the system offers, by the names cpal reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceList {
    /// Capture devices.
    pub inputs: Vec<String>,
    /// Playback devices.
    pub outputs: Vec<String>,
    /// The system's default capture device, if any.
    pub default_input: Option<String>,
    /// The system's default playback device, if any.
    pub default_output: Option<String>,
}

/// Lists the default host's devices.
pub fn list_devices() -> Result<DeviceList, DeviceError> {
    let host = cpal::default_host();
    let enumerate = |e: cpal::DevicesError| DeviceError::Enumerate(e.to_string());
    let inputs = host.input_devices().map_err(enumerate)?.filter_map(|d| d.name().ok()).collect();
    let outputs = host.output_devices().map_err(enumerate)?.filter_map(|d| d.name().ok()).collect();
    Ok(DeviceList {
        inputs,
        outputs,
        default_input: host.default_input_device().and_then(|d| d.name().ok()),
        default_output: host.default_output_device().and_then(|d| d.name().ok()),
    })
}

/// Opens audio devices as an [`Endpoint`].
pub struct DeviceEndpoint;

impl DeviceEndpoint {
    /// Opens `input` for capture and `output` for playback (`None`: the system default; names as
    /// [`list_devices`] reports them), with frames at `rate` on the call side.
    pub fn open(input: Option<&str>, output: Option<&str>, rate: SampleRate) -> Result<Endpoint, DeviceError> {
        let (input, output) = (input.map(str::to_string), output.map(str::to_string));
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let health = Arc::new(Health::default());
        let thread_health = health.clone();
        let thread = std::thread::Builder::new()
            .name("sipdesk-audio-device".into())
            .spawn(move || {
                let streams = match start_streams(input.as_deref(), output.as_deref(), rate, &thread_health) {
                    Ok((streams, halves)) => {
                        let _ = ready_tx.send(Ok(halves));
                        streams
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Blocks until both endpoint halves are dropped (the sender goes with them).
                let _ = stop_rx.recv();
                drop(streams);
            })
            .map_err(|e| DeviceError::Thread(e.to_string()))?;
        let halves = ready_rx.recv().map_err(|_| DeviceError::Thread("exited while opening the devices".into()))?;
        let (capture, playback, in_hz, out_hz) = match halves {
            Ok(h) => h,
            Err(e) => {
                let _ = thread.join();
                return Err(e);
            }
        };
        let owner = Arc::new(StreamOwner { stop: Some(stop_tx), thread: Some(thread) });
        let source = DeviceSource::new(capture, in_hz, rate, health.clone(), owner.clone());
        let sink = DeviceSink::new(playback, out_hz, rate, health, owner);
        Ok(Endpoint::new(Box::new(source), Box::new(sink)))
    }
}

/// Stream failures, shared by the callbacks' error handlers and the endpoint halves.
#[derive(Default)]
struct Health {
    failed: AtomicBool,
    first_error: OnceLock<String>,
}

impl Health {
    fn report(&self, direction: &'static str, err: cpal::StreamError) {
        tracing::warn!(direction, error = %err, "audio device stream error");
        if matches!(err, cpal::StreamError::DeviceNotAvailable) {
            let _ = self.first_error.set(format!("{direction} device: {err}"));
            self.failed.store(true, Ordering::Release);
        }
    }
}

/// Keeps the stream thread alive; dropping the last clone stops the streams.
struct StreamOwner {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for StreamOwner {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (capture ring end, playback ring end, capture device Hz, playback device Hz)
type Halves = (RingSource, RingSink, u32, u32);

/// Opens both devices and starts their streams (on the stream thread).
fn start_streams(
    input: Option<&str>,
    output: Option<&str>,
    rate: SampleRate,
    health: &Arc<Health>,
) -> Result<(Vec<cpal::Stream>, Halves), DeviceError> {
    let host = cpal::default_host();
    let in_dev = find_device(&host, "input", input)?;
    let out_dev = find_device(&host, "output", output)?;
    let in_name = in_dev.name().unwrap_or_default();
    let out_name = out_dev.name().unwrap_or_default();

    let in_cfg = choose_config(in_dev.supported_input_configs().map(|c| c.collect()), "input", &in_name, rate)?;
    let out_cfg = choose_config(out_dev.supported_output_configs().map(|c| c.collect()), "output", &out_name, rate)?;
    let (in_hz, out_hz) = (in_cfg.0.sample_rate.0, out_cfg.0.sample_rate.0);

    // The device-side rings carry raw samples at the device rate; their rate label is not used.
    let ring = |hz: u32| frame_ring(SampleRate::Hz48000, RING_FRAMES * hz.div_ceil(48_000) as usize);
    let (capture, cap_pop) = build(&in_cfg, "input", &in_name, |cfg, fmt| {
        let (push, pop) = ring(in_hz);
        let h = health.clone();
        let stream = match fmt {
            SampleFormat::F32 => input_stream::<f32>(&in_dev, cfg, push, h),
            _ => input_stream::<i16>(&in_dev, cfg, push, h),
        }?;
        Ok((stream, pop))
    })?;
    let prime = PLAYBACK_PRIME_FRAMES * out_hz as usize / 50;
    let (playback, play_push) = build(&out_cfg, "output", &out_name, |cfg, fmt| {
        let (push, pop) = ring(out_hz);
        let h = health.clone();
        let stream = match fmt {
            SampleFormat::F32 => output_stream::<f32>(&out_dev, cfg, pop, prime, h),
            _ => output_stream::<i16>(&out_dev, cfg, pop, prime, h),
        }?;
        Ok((stream, push))
    })?;
    for (stream, direction, name) in [(&capture, "input", &in_name), (&playback, "output", &out_name)] {
        stream.play().map_err(|e| DeviceError::Stream { direction, name: name.clone(), detail: e.to_string() })?;
    }
    tracing::info!(input = %in_name, in_hz, in_channels = in_cfg.0.channels, output = %out_name, out_hz,
        out_channels = out_cfg.0.channels, "audio devices open");
    Ok((vec![capture, playback], (cap_pop, play_push, in_hz, out_hz)))
}

fn find_device(host: &cpal::Host, direction: &'static str, name: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let not_found = || DeviceError::NotFound { direction, name: name.map(str::to_string) };
    let Some(name) = name else {
        let dev = if direction == "input" { host.default_input_device() } else { host.default_output_device() };
        return dev.ok_or_else(not_found);
    };
    let devices = if direction == "input" { host.input_devices() } else { host.output_devices() };
    devices
        .map_err(|e| DeviceError::Enumerate(e.to_string()))?
        .find(|d| d.name().is_ok_and(|n| n == name))
        .ok_or_else(not_found)
}

/// Picks f32 or i16 samples, the preferred rate if offered (else the call rate, else the closest),
/// and the fewest channels; asks for about 10 ms buffers when the device says what it allows.
fn choose_config(
    ranges: Result<Vec<SupportedStreamConfigRange>, cpal::SupportedStreamConfigsError>,
    direction: &'static str,
    name: &str,
    rate: SampleRate,
) -> Result<(StreamConfig, SampleFormat, Option<u32>), DeviceError> {
    let unsupported = |detail: String| DeviceError::UnsupportedConfig { direction, name: name.to_string(), detail };
    let ranges = ranges.map_err(|e| unsupported(e.to_string()))?;
    let pick_rate = |r: &SupportedStreamConfigRange| {
        let (lo, hi) = (r.min_sample_rate().0, r.max_sample_rate().0);
        [PREFERRED_DEVICE_HZ, rate.hz()]
            .into_iter()
            .find(|hz| (lo..=hi).contains(hz))
            .unwrap_or(hi.min(PREFERRED_DEVICE_HZ).max(lo))
    };
    let best = ranges
        .iter()
        .filter(|r| matches!(r.sample_format(), SampleFormat::F32 | SampleFormat::I16) && r.channels() > 0)
        .min_by_key(|r| {
            let hz = pick_rate(r);
            (
                hz != PREFERRED_DEVICE_HZ && hz != rate.hz(),
                hz.abs_diff(PREFERRED_DEVICE_HZ),
                r.channels(),
                r.sample_format() != SampleFormat::F32,
            )
        })
        .ok_or_else(|| unsupported(format!("{} configurations, none f32/i16", ranges.len())))?;
    let hz = pick_rate(best);
    let fixed = match best.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } => Some((hz / 100).clamp(*min, *max)),
        cpal::SupportedBufferSize::Unknown => None,
    };
    Ok((best.with_sample_rate(cpal::SampleRate(hz)).config(), best.sample_format(), fixed))
}

/// Builds a stream with the fixed buffer size first and the device's default if that fails.
fn build<F, R>(
    cfg: &(StreamConfig, SampleFormat, Option<u32>),
    direction: &'static str,
    name: &str,
    mut make: F,
) -> Result<(cpal::Stream, R), DeviceError>
where
    F: FnMut(&StreamConfig, SampleFormat) -> Result<(cpal::Stream, R), cpal::BuildStreamError>,
{
    let (config, format, fixed) = cfg;
    if let Some(frames) = fixed {
        let sized = StreamConfig { buffer_size: cpal::BufferSize::Fixed(*frames), ..config.clone() };
        match make(&sized, *format) {
            Ok(s) => return Ok(s),
            Err(e) => tracing::debug!(direction, error = %e, "fixed buffer size refused; using the default"),
        }
    }
    make(config, *format).map_err(|e| DeviceError::Stream { direction, name: name.to_string(), detail: e.to_string() })
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

/// Capture: mono mix to i16, pushed into the ring. No locks, no allocation.
fn input_stream<T: DeviceSample>(
    dev: &cpal::Device,
    cfg: &StreamConfig,
    mut ring: RingSink,
    health: Arc<Health>,
) -> Result<cpal::Stream, cpal::BuildStreamError> {
    let channels = usize::from(cfg.channels.max(1));
    let scale = 1.0 / channels as f32;
    let data = move |data: &[T], _: &cpal::InputCallbackInfo| {
        let mut chunk = [0i16; CALLBACK_CHUNK];
        for frames in data.chunks(CALLBACK_CHUNK * channels) {
            let n = frames.len() / channels;
            for (out, frame) in chunk.iter_mut().zip(frames.chunks_exact(channels)) {
                *out = to_i16(frame.iter().map(|s| s.to_f32()).sum::<f32>() * scale);
            }
            ring.push_samples(&chunk[..n]);
        }
    };
    dev.build_input_stream(cfg, data, move |e| health.report("input", e), None)
}

/// Playback: mono i16 from the ring into every channel; silence until primed or when dry.
fn output_stream<T: DeviceSample>(
    dev: &cpal::Device,
    cfg: &StreamConfig,
    mut ring: RingSource,
    prime: usize,
    health: Arc<Health>,
) -> Result<cpal::Stream, cpal::BuildStreamError> {
    let channels = usize::from(cfg.channels.max(1));
    let mut primed = false;
    let data = move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
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
    };
    dev.build_output_stream(cfg, data, move |e| health.report("output", e), None)
}

/// A streaming linear resampler, with a moving-average low-pass in front when it downsamples.
/// Keeps its phase across calls, so 20 ms pieces join without clicks.
struct Resampler {
    step: f64,
    pos: f64,
    prev: f32,
    avg: [f32; 32],
    width: usize,
    idx: usize,
    sum: f32,
}

impl Resampler {
    fn new(from: u32, to: u32) -> Resampler {
        let width = if to < from { (from.div_ceil(to) as usize).clamp(1, 32) } else { 1 };
        Resampler {
            step: f64::from(from) / f64::from(to),
            pos: 0.0,
            prev: 0.0,
            avg: [0.0; 32],
            width,
            idx: 0,
            sum: 0.0,
        }
    }

    fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        for &s in input {
            let x = if self.width > 1 {
                self.sum += f32::from(s) - self.avg[self.idx];
                self.avg[self.idx] = f32::from(s);
                self.idx = (self.idx + 1) % self.width;
                self.sum / self.width as f32
            } else {
                f32::from(s)
            };
            while self.pos < 1.0 {
                let v = self.prev + (x - self.prev) * self.pos as f32;
                out.push(v.round().clamp(-32768.0, 32767.0) as i16);
                self.pos += self.step;
            }
            self.pos -= 1.0;
            self.prev = x;
        }
    }
}

/// The capture half: device samples resampled into frames at the call rate.
pub struct DeviceSource {
    ring: RingSource,
    rate: SampleRate,
    resampler: Resampler,
    scratch: Vec<i16>,
    pending: Vec<i16>,
    health: Arc<Health>,
    _owner: Arc<StreamOwner>,
}

impl DeviceSource {
    fn new(
        ring: RingSource,
        device_hz: u32,
        rate: SampleRate,
        health: Arc<Health>,
        owner: Arc<StreamOwner>,
    ) -> DeviceSource {
        let scratch = vec![0; device_hz as usize / 50];
        DeviceSource {
            ring,
            rate,
            resampler: Resampler::new(device_hz, rate.hz()),
            scratch,
            pending: Vec::with_capacity(MAX_PENDING),
            health,
            _owner: owner,
        }
    }
}

const MAX_PENDING: usize = 4 * super::frame::MAX_FRAME_SAMPLES;

impl FrameSource for DeviceSource {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        let need = self.rate.frame_samples();
        while self.pending.len() < need {
            let n = self.ring.pop_samples(&mut self.scratch);
            if n == 0 {
                break;
            }
            self.resampler.process(&self.scratch[..n], &mut self.pending);
        }
        if self.pending.len() < need {
            return if self.health.failed.load(Ordering::Acquire) { SourcePoll::Ended } else { SourcePoll::NotYet };
        }
        out.reset(self.rate);
        out.samples_mut().copy_from_slice(&self.pending[..need]);
        self.pending.drain(..need);
        SourcePoll::Ready
    }
}

/// The playback half: frames at the call rate resampled to the device rate.
pub struct DeviceSink {
    ring: RingSink,
    rate: SampleRate,
    resampler: Resampler,
    scratch: Vec<i16>,
    health: Arc<Health>,
    _owner: Arc<StreamOwner>,
}

impl DeviceSink {
    fn new(
        ring: RingSink,
        device_hz: u32,
        rate: SampleRate,
        health: Arc<Health>,
        owner: Arc<StreamOwner>,
    ) -> DeviceSink {
        let scratch = Vec::with_capacity(device_hz as usize / 50 + 8);
        DeviceSink { ring, rate, resampler: Resampler::new(rate.hz(), device_hz), scratch, health, _owner: owner }
    }
}

impl FrameSink for DeviceSink {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn put_frame(&mut self, frame: &Frame) {
        if frame.rate() != self.rate {
            return;
        }
        self.scratch.clear();
        self.resampler.process(frame.samples(), &mut self.scratch);
        self.ring.push_samples(&self.scratch);
    }

    fn close(&mut self) -> Result<(), EndpointError> {
        match self.health.first_error.get() {
            Some(message) => Err(EndpointError { endpoint: "audio device".into(), message: message.clone() }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n).map(|i| (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as i16).collect()
    }

    fn zero_crossing_hz(s: &[i16], rate: u32) -> f64 {
        let c = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        c as f64 / 2.0 / (s.len() as f64 / f64::from(rate))
    }

    #[test]
    fn streaming_resampler_keeps_pitch_and_length_across_20_ms_pieces() {
        for (from, to) in [(48_000, 8_000), (8_000, 48_000), (44_100, 8_000), (8_000, 44_100), (16_000, 16_000)] {
            let input = sine(700.0, from, from as usize);
            let mut r = Resampler::new(from, to);
            let mut out = Vec::new();
            for piece in input.chunks(from as usize / 50) {
                r.process(piece, &mut out);
            }
            assert!(out.len().abs_diff(to as usize) <= 1, "{from}->{to}: {} samples", out.len());
            let f = zero_crossing_hz(&out[to as usize / 10..], to);
            assert!((f - 700.0).abs() < 5.0, "{from}->{to}: {f} Hz");
        }
    }

    #[test]
    fn errors_name_the_device() {
        let e = DeviceError::NotFound { direction: "input", name: Some("Headset".into()) };
        assert_eq!(e.to_string(), "no input audio device named \"Headset\"");
        let e = DeviceError::NotFound { direction: "output", name: None };
        assert_eq!(e.to_string(), "no output audio device (system default)");
    }
}
