//! The audio device endpoint: the agent's headset through `cpal`.
//!
//! [`DeviceEndpoint::open`] returns the usual [`Endpoint`]; [`DeviceSource::open`] and
//! [`DeviceSink::open`] open one direction alone (a microphone meter, a ring on another device).
//! Each half is the call side of a lock-free ring ([`frame_ring`]); the device's cpal callbacks
//! hold the other end.
//!
//! *Choice: PulseAudio's protocol first.* cpal's `pulseaudio` host (PipeWire speaks the protocol
//! through pipewire-pulse) lists every sink and source under its own name and binds a stream to
//! the one chosen. Through ALSA, cpal only sees `default`, `pulse` and raw cards, so a particular
//! headset behind PipeWire could not be chosen at all. Without a Pulse server cpal uses ALSA
//! (also when the server refuses the client: it needs the cookie every libpulse program writes to
//! `~/.config/pulse/cookie`, or `PULSE_COOKIE`).
//! Device ids are the host's own names (`alsa_output.usb-...`, `spk`); the system default is
//! looked up at each open, so it follows the system from one stream to the next.
//!
//! *Choice: the callbacks only convert formats.* A capture callback mixes the device's channels
//! down to mono 16-bit samples at the device's rate and pushes them into a ring; a playback
//! callback pops mono samples and copies each into every channel (silence when the ring runs
//! dry). Neither blocks, locks nor allocates. Rate conversion ([`RateConverter`]) happens on the
//! call side, in buffers allocated once.
//!
//! *Choice: the rings hold no standing backlog.* Playback starts once one 20 ms frame is queued.
//! A ring that stays fuller than needed (the session's task was held up and caught up in a burst,
//! the call started after the devices, the device's clock runs slow) would keep that much
//! latency for the rest of the call, so the call side watches each ring's least backlog over
//! half a second ([`WINDOW_TICKS`] ticks) and skips what lies beyond one device callback's worth
//! (the callbacks note their sizes): the oldest captured samples; the start of the next frames
//! handed to the sink. Quiet audio (under -40 dBFS) goes first, where a cut is not heard; sound
//! is cut only when no quiet moment came within a second ([`MAX_WAIT_TICKS`]), and then by a
//! whole frame. Both happen on the call side; the callbacks never do more than move samples.
//!
//! *Choice: the streams live on their own thread.* cpal's `Stream` is not `Send` everywhere, while
//! the halves move between tokio tasks. One thread per open opens the devices, owns the streams,
//! checks once a second that a device chosen by name is still there, and drops the streams when
//! every half is gone.
//!
//! A device that fails or disappears does not panic: the error is logged, [`DeviceSource::failure`]
//! and [`DeviceSink::failure`] report it, the source then yields [`SourcePoll::Ended`] and the
//! sink's [`FrameSink::close`] returns it, so the caller can move to another device
//! ([`super::device_fallback`]).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use thiserror::Error;

use super::device_stream::{self, CallbackSize, Format};
use super::frame::{Endpoint, EndpointError, Frame, FrameSink, FrameSource, SampleRate, SourcePoll};
use super::rate_convert::RateConverter;
use super::ring::{frame_ring, RingSink, RingSource};

/// Capacity of each device ring, in 20 ms frames (bounds capture latency if the call lags).
const RING_FRAMES: usize = 10;
/// How often the stream thread checks that a device chosen by name is still listed.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a backend may take to create a stream before the open fails.
const STREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Ticks (20 ms frames) over which the least backlog of a ring is watched.
const WINDOW_TICKS: u32 = 25;
/// Ticks a skip waits for quiet audio before it cuts into sound.
const MAX_WAIT_TICKS: u32 = 50;
/// Peak level (-40 dBFS) under which audio is quiet enough to skip unheard.
const QUIET_PEAK: u16 = 328;

/// The buffer size, in frames at `hz`, the endpoint asks the default host's devices for (the
/// benches open their reference streams alike).
pub fn buffer_frames(hz: u32) -> u32 {
    device_stream::buffer_frames(cpal::default_host().id(), hz)
}

/// A log filter directive front ends add: the Pulse client logs every connection it closes as an
/// error ("Client disconnected"), and each device open closes one. Stream errors still reach the
/// log through [`DeviceSource::failure`] and [`DeviceSink::failure`].
pub const QUIET_PULSE_LOG: &str = "pulseaudio::client::reactor=off";

/// Which way audio flows through a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Capture (a microphone).
    Input,
    /// Playback (a speaker or headset).
    Output,
}

impl Direction {
    /// `input` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

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

/// One device as the system lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable id, what settings store and [`DeviceSource::open`] takes (e.g. `spk`).
    pub id: String,
    /// What a person reads (e.g. `USB Headset Analog Stereo`).
    pub name: String,
}

/// The devices the system offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceList {
    /// Capture devices.
    pub inputs: Vec<DeviceInfo>,
    /// Playback devices.
    pub outputs: Vec<DeviceInfo>,
    /// Id of the system's default capture device, if any.
    pub default_input: Option<String>,
    /// Id of the system's default playback device, if any.
    pub default_output: Option<String>,
}

/// Lists the default host's devices.
pub fn list_devices() -> Result<DeviceList, DeviceError> {
    let host = cpal::default_host();
    let enumerate = |e: cpal::Error| DeviceError::Enumerate(e.to_string());
    let info = |d: cpal::Device| {
        let id = device_id(&d)?;
        let name = d.description().map(|x| x.name().to_string()).unwrap_or_else(|_| id.clone());
        Some(DeviceInfo { id, name })
    };
    Ok(DeviceList {
        inputs: host.input_devices().map_err(enumerate)?.filter_map(info).collect(),
        outputs: host.output_devices().map_err(enumerate)?.filter_map(info).collect(),
        default_input: host.default_input_device().as_ref().and_then(device_id),
        default_output: host.default_output_device().as_ref().and_then(device_id),
    })
}

fn device_id(d: &cpal::Device) -> Option<String> {
    d.id().ok().map(|id| id.id().to_string())
}

/// Opens audio devices as an [`Endpoint`].
pub struct DeviceEndpoint;

impl DeviceEndpoint {
    /// Opens `input` for capture and `output` for playback (`None`: the system default; ids as
    /// [`list_devices`] reports them), with frames at `rate` on the call side.
    pub fn open(input: Option<&str>, output: Option<&str>, rate: SampleRate) -> Result<Endpoint, DeviceError> {
        let (source, sink) = open_streams(Some(input), Some(output), rate)?;
        match (source, sink) {
            (Some(source), Some(sink)) => Ok(Endpoint::new(Box::new(source), Box::new(sink))),
            _ => Err(DeviceError::Thread("a direction was not opened".into())),
        }
    }
}

/// A side to open: `None` not at all, `Some(None)` the default, `Some(Some(id))` that device.
type Want<'a> = Option<Option<&'a str>>;

/// Starts the stream thread for the wanted sides and returns their call-side halves.
fn open_streams(
    input: Want<'_>,
    output: Want<'_>,
    rate: SampleRate,
) -> Result<(Option<DeviceSource>, Option<DeviceSink>), DeviceError> {
    let own = |w: Want<'_>| w.map(|n| n.map(str::to_string));
    let (input, output) = (own(input), own(output));
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let health = Arc::new(Health::default());
    let thread_health = health.clone();
    let thread = std::thread::Builder::new()
        .name("sipdesk-audio-device".into())
        .spawn(move || {
            let host = cpal::default_host();
            let streams = match start_streams(&host, input.as_ref(), output.as_ref(), &thread_health) {
                Ok((streams, opened)) => {
                    let _ = ready_tx.send(Ok(opened));
                    streams
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            // Devices chosen by name are watched: PipeWire quietly moves the stream of a device
            // that went away to another one, and the caller must hear of it.
            let watched: Vec<(Direction, String)> = [(Direction::Input, input), (Direction::Output, output)]
                .into_iter()
                .filter_map(|(d, w)| Some((d, w??)))
                .collect();
            // Runs until every half is dropped (the sender goes with them).
            while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(WATCH_INTERVAL) {
                for (direction, id) in &watched {
                    if thread_health.failure(*direction).is_none()
                        && matches!(find_device(&host, *direction, Some(id)), Err(DeviceError::NotFound { .. }))
                    {
                        thread_health.fail(*direction, format!("{} device {id:?} is gone", direction.as_str()));
                    }
                }
            }
            drop(streams);
        })
        .map_err(|e| DeviceError::Thread(e.to_string()))?;
    let opened = match ready_rx.recv() {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => return Err(DeviceError::Thread("exited while opening the devices".into())),
    };
    let owner = Arc::new(StreamOwner { stop: Some(stop_tx), thread: Some(thread) });
    let source = opened.capture.map(|Side { ring, hz, id, callback }| DeviceSource {
        ring,
        rate,
        device_hz: hz,
        converter: RateConverter::new(hz, rate.hz()),
        scratch: vec![0; hz as usize / 50],
        pending: Vec::with_capacity(MAX_PENDING),
        callback,
        backlog: StandingBacklog::default(),
        skip: Skip::default(),
        health: health.clone(),
        device: id,
        _owner: owner.clone(),
    });
    let sink = opened.playback.map(|Side { ring, hz, id, callback }| DeviceSink {
        ring,
        rate,
        device_hz: hz,
        converter: RateConverter::new(rate.hz(), hz),
        scratch: Vec::with_capacity(MAX_PENDING),
        callback,
        backlog: StandingBacklog::default(),
        skip: Skip::default(),
        health,
        device: id,
        _owner: owner,
    });
    Ok((source, sink))
}

/// Stream failures, per direction, shared by the error handlers, the watch and the halves.
#[derive(Default)]
struct Health {
    failed: [AtomicBool; 2],
    failure: [OnceLock<String>; 2],
    warnings: AtomicU32,
}

impl Health {
    fn report(&self, direction: Direction, err: cpal::Error) {
        use cpal::ErrorKind::*;
        match err.kind() {
            DeviceNotAvailable | StreamInvalidated | HostUnavailable => {
                self.fail(direction, format!("{} device: {err}", direction.as_str()))
            }
            // Xruns and the like: the stream goes on. Logged a few times only.
            _ if self.warnings.fetch_add(1, Ordering::Relaxed) < 10 => {
                tracing::warn!(direction = direction.as_str(), error = %err, "audio device stream error")
            }
            _ => {}
        }
    }

    fn fail(&self, direction: Direction, message: String) {
        tracing::warn!(direction = direction.as_str(), "audio device failed: {message}");
        let _ = self.failure[direction as usize].set(message);
        self.failed[direction as usize].store(true, Ordering::Release);
    }

    fn failure(&self, direction: Direction) -> Option<&str> {
        if self.failed[direction as usize].load(Ordering::Acquire) {
            self.failure[direction as usize].get().map(String::as_str)
        } else {
            None
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

/// What the stream thread opened for one side.
struct Side<R> {
    /// The call side's end of the ring.
    ring: R,
    /// The device rate.
    hz: u32,
    /// The device id.
    id: String,
    /// The size of the latest callback's buffer.
    callback: CallbackSize,
}

/// What the stream thread opened.
struct Opened {
    capture: Option<Side<RingSource>>,
    playback: Option<Side<RingSink>>,
}

/// Opens the wanted devices and starts their streams (on the stream thread).
fn start_streams(
    host: &cpal::Host,
    input: Option<&Option<String>>,
    output: Option<&Option<String>>,
    health: &Arc<Health>,
) -> Result<(Vec<cpal::Stream>, Opened), DeviceError> {
    let mut streams = Vec::new();
    let mut opened = Opened { capture: None, playback: None };
    // The device-side rings carry raw samples at the device rate; their rate label is not used.
    let ring = |hz: u32| frame_ring(SampleRate::Hz48000, RING_FRAMES * hz.div_ceil(48_000) as usize);
    if let Some(want) = input {
        let dev = find_device(host, Direction::Input, want.as_deref())?;
        let id = device_id(&dev).unwrap_or_default();
        let format =
            Format::choose(dev.supported_input_configs().map(|c| c.collect()), host.id(), Direction::Input, &id)?;
        let callback = CallbackSize::default();
        let (stream, pop) = format.build(Direction::Input, &id, |cfg, sample| {
            let (push, pop) = ring(format.hz());
            let h = health.clone();
            let on_error = move |e| h.report(Direction::Input, e);
            Ok((device_stream::input(&dev, cfg, sample, push, callback.clone(), on_error, STREAM_TIMEOUT)?, pop))
        })?;
        play(&stream, Direction::Input, &id)?;
        tracing::info!(device = %id, hz = format.hz(), channels = format.channels(), "audio input open");
        streams.push(stream);
        opened.capture = Some(Side { ring: pop, hz: format.hz(), id, callback });
    }
    if let Some(want) = output {
        let dev = find_device(host, Direction::Output, want.as_deref())?;
        let id = device_id(&dev).unwrap_or_default();
        let format =
            Format::choose(dev.supported_output_configs().map(|c| c.collect()), host.id(), Direction::Output, &id)?;
        let callback = CallbackSize::default();
        let (stream, push) = format.build(Direction::Output, &id, |cfg, sample| {
            let (push, pop) = ring(format.hz());
            let h = health.clone();
            let on_error = move |e| h.report(Direction::Output, e);
            Ok((device_stream::output(&dev, cfg, sample, pop, callback.clone(), on_error, STREAM_TIMEOUT)?, push))
        })?;
        play(&stream, Direction::Output, &id)?;
        tracing::info!(device = %id, hz = format.hz(), channels = format.channels(), "audio output open");
        streams.push(stream);
        opened.playback = Some(Side { ring: push, hz: format.hz(), id, callback });
    }
    Ok((streams, opened))
}

fn play(stream: &cpal::Stream, direction: Direction, id: &str) -> Result<(), DeviceError> {
    stream.play().map_err(|e| DeviceError::Stream {
        direction: direction.as_str(),
        name: id.to_string(),
        detail: e.to_string(),
    })
}

fn find_device(host: &cpal::Host, direction: Direction, id: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let not_found = || DeviceError::NotFound { direction: direction.as_str(), name: id.map(str::to_string) };
    let Some(id) = id else {
        let dev = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return dev.ok_or_else(not_found);
    };
    let devices = match direction {
        Direction::Input => host.input_devices().map(|d| d.collect::<Vec<_>>()),
        Direction::Output => host.output_devices().map(|d| d.collect::<Vec<_>>()),
    };
    devices
        .map_err(|e| DeviceError::Enumerate(e.to_string()))?
        .into_iter()
        .find(|d| device_id(d).as_deref() == Some(id))
        .ok_or_else(not_found)
}

/// The capture half: device samples converted into frames at the call rate.
pub struct DeviceSource {
    ring: RingSource,
    rate: SampleRate,
    device_hz: u32,
    converter: RateConverter,
    scratch: Vec<i16>,
    pending: Vec<i16>,
    callback: CallbackSize,
    backlog: StandingBacklog,
    /// Device samples still to skip.
    skip: Skip,
    health: Arc<Health>,
    device: String,
    _owner: Arc<StreamOwner>,
}

/// Room for converted samples waiting to become frames (never reallocated).
const MAX_PENDING: usize = 4 * super::frame::MAX_FRAME_SAMPLES;

/// The least backlog of a ring over a window of ticks, and the largest device callback in it:
/// what stays at every tick is standing latency; what one late tick or callback leaves is not.
#[derive(Debug)]
struct StandingBacklog {
    least: usize,
    widest_callback: usize,
    ticks: u32,
}

impl Default for StandingBacklog {
    fn default() -> StandingBacklog {
        StandingBacklog { least: usize::MAX, widest_callback: 0, ticks: 0 }
    }
}

impl StandingBacklog {
    /// Notes one tick's backlog and the latest callback size (both in device samples); at the
    /// end of each window returns the least backlog and the largest callback, and starts anew.
    fn note(&mut self, backlog: usize, callback: usize) -> Option<(usize, usize)> {
        self.least = self.least.min(backlog);
        self.widest_callback = self.widest_callback.max(callback);
        self.ticks += 1;
        if self.ticks < WINDOW_TICKS {
            return None;
        }
        let seen = (self.least, self.widest_callback);
        *self = StandingBacklog::default();
        Some(seen)
    }
}

/// Device samples to skip, waiting for a quiet moment up to [`MAX_WAIT_TICKS`].
#[derive(Debug, Default)]
struct Skip {
    left: usize,
    waited: u32,
    /// Skipped so far, for the log.
    done: usize,
}

impl Skip {
    /// How many of the `whole` device samples that `audio` becomes to skip now: as many as are
    /// left when `audio` is quiet (a cut in quiet audio goes unheard); when it is not, none
    /// until it has been waited on for [`MAX_WAIT_TICKS`], then all `whole` if at least that
    /// much is left (sound is only ever cut by whole pieces).
    fn take(&mut self, audio: &[i16], whole: usize) -> usize {
        if self.left == 0 {
            return 0;
        }
        let n = if audio.iter().all(|s| s.unsigned_abs() < QUIET_PEAK) {
            self.left.min(whole)
        } else if self.waited >= MAX_WAIT_TICKS && self.left >= whole {
            whole
        } else {
            self.waited += 1;
            return 0;
        };
        self.left -= n;
        self.done += n;
        self.waited = 0;
        n
    }
}

/// One millisecond at `hz`, the least of a device callback's worth counted.
fn one_ms(hz: u32) -> usize {
    (hz as usize / 1000).max(1)
}

impl DeviceSource {
    /// Skips up to one frame's worth of the oldest captured samples the backlog watch asked to
    /// skip, when they are quiet; speech goes on to the call and is tried again at the next tick.
    fn skip_backlog(&mut self) {
        if self.skip.left == 0 {
            return;
        }
        let n = self.skip.left.min(self.scratch.len()).min(self.ring.available());
        if n == 0 {
            self.skip.left = 0;
            return;
        }
        let got = self.ring.pop_samples(&mut self.scratch[..n]);
        if self.skip.take(&self.scratch[..got], got) == got {
            if self.skip.left == 0 {
                tracing::debug!(
                    device = %self.device,
                    ms = self.skip.done * 1000 / self.device_hz as usize,
                    "audio input: standing backlog skipped (total so far)"
                );
            }
        } else {
            self.converter.process(&self.scratch[..got], &mut self.pending);
        }
    }

    /// Opens `input` alone (`None`: the system default) with frames at `rate`.
    pub fn open(input: Option<&str>, rate: SampleRate) -> Result<DeviceSource, DeviceError> {
        open_streams(Some(input), None, rate)?.0.ok_or_else(|| DeviceError::Thread("input not opened".into()))
    }

    /// The id of the device it captures from.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Why the device stopped working, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.health.failure(Direction::Input)
    }
}

impl FrameSource for DeviceSource {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        let need = self.rate.frame_samples();
        self.skip_backlog();
        while self.pending.len() < need {
            let n = self.ring.pop_samples(&mut self.scratch);
            if n == 0 {
                break;
            }
            self.converter.process(&self.scratch[..n], &mut self.pending);
        }
        let callback = self.callback.load(Ordering::Relaxed) as usize;
        if self.pending.len() < need {
            // Nothing to spare: no standing backlog in this window.
            self.backlog.note(0, callback);
            return if self.failure().is_some() { SourcePoll::Ended } else { SourcePoll::NotYet };
        }
        out.reset(self.rate);
        out.samples_mut().copy_from_slice(&self.pending[..need]);
        self.pending.drain(..need);
        // What is left after this frame, in device samples: audio that waits a tick or more.
        let behind = self.ring.available()
            + (self.pending.len() as u64 * u64::from(self.device_hz) / u64::from(self.rate.hz())) as usize;
        if let Some((least, widest)) = self.backlog.note(behind, callback) {
            // Keep one callback's worth (and a millisecond to spare): the next tick may come
            // just before the callback that brings the rest of its frame.
            let keep = widest.max(one_ms(self.device_hz));
            self.skip.left = if least > keep + one_ms(self.device_hz) { least - keep } else { 0 };
        }
        SourcePoll::Ready
    }
}

/// The playback half: frames at the call rate converted to the device rate.
pub struct DeviceSink {
    ring: RingSink,
    rate: SampleRate,
    device_hz: u32,
    converter: RateConverter,
    scratch: Vec<i16>,
    callback: CallbackSize,
    backlog: StandingBacklog,
    /// Device samples still to skip.
    skip: Skip,
    health: Arc<Health>,
    device: String,
    _owner: Arc<StreamOwner>,
}

impl DeviceSink {
    /// Opens `output` alone (`None`: the system default) taking frames at `rate`.
    pub fn open(output: Option<&str>, rate: SampleRate) -> Result<DeviceSink, DeviceError> {
        open_streams(None, Some(output), rate)?.1.ok_or_else(|| DeviceError::Thread("output not opened".into()))
    }

    /// The id of the device it plays to.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Why the device stopped working, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.health.failure(Direction::Output)
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
        // What this frame would wait behind, in device samples.
        let queued = self.ring.queued();
        if let Some((least, widest)) = self.backlog.note(queued, self.callback.load(Ordering::Relaxed) as usize) {
            // Keep one callback's worth: the callback may come just before the next frame does.
            let keep = widest.max(one_ms(self.device_hz));
            self.skip.left = least.saturating_sub(keep);
        }
        self.scratch.clear();
        self.converter.process(frame.samples(), &mut self.scratch);
        // Quiet frames lose their start; sound only whole frames.
        let cut = self.skip.take(frame.samples(), self.scratch.len());
        if cut > 0 && self.skip.left == 0 {
            tracing::debug!(
                device = %self.device,
                ms = self.skip.done * 1000 / self.device_hz as usize,
                "audio output: standing backlog trimmed (total so far)"
            );
        }
        self.ring.push_samples(&self.scratch[cut..]);
    }

    /// What the device has yet to play, plus the rate converter's delay (the device's own
    /// buffer lies beyond: the audio system's share).
    fn latency(&self) -> Duration {
        Duration::from_secs_f64(self.ring.queued() as f64 / f64::from(self.device_hz) + self.converter.delay_secs())
    }

    fn close(&mut self) -> Result<(), EndpointError> {
        match self.failure() {
            Some(message) => Err(EndpointError { endpoint: "audio device".into(), message: message.to_string() }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_device() {
        let e = DeviceError::NotFound { direction: "input", name: Some("Headset".into()) };
        assert_eq!(e.to_string(), "no input audio device named \"Headset\"");
        let e = DeviceError::NotFound { direction: "output", name: None };
        assert_eq!(e.to_string(), "no output audio device (system default)");
    }

    #[test]
    fn the_standing_backlog_is_the_least_over_a_window() {
        let mut b = StandingBacklog::default();
        for tick in 1..WINDOW_TICKS {
            // One tick finds the ring nearly empty; the callbacks vary in size.
            let backlog = if tick == 7 { 300 } else { 2000 + tick as usize };
            assert_eq!(b.note(backlog, 256 + (tick as usize % 3) * 100), None);
        }
        assert_eq!(b.note(5000, 256), Some((300, 456)));
        // A new window starts.
        for _ in 1..WINDOW_TICKS {
            assert_eq!(b.note(1500, 256), None);
        }
        assert_eq!(b.note(1500, 256), Some((1500, 256)));
    }

    #[test]
    fn skips_take_quiet_audio_first_and_sound_only_whole() {
        let (quiet, loud) = ([100i16; 160], [3000i16; 160]);
        let mut skip = Skip::default();
        assert_eq!(skip.take(&quiet, 960), 0, "nothing to skip");
        skip.left = 1200;
        assert_eq!(skip.take(&loud, 960), 0);
        // Quiet: as much as is left, up to the piece.
        assert_eq!(skip.take(&quiet, 960), 960);
        assert_eq!(skip.take(&quiet, 960), 240);
        assert_eq!((skip.left, skip.done), (0, 1200));
        // Speech all along: cut after MAX_WAIT_TICKS, by whole pieces only.
        skip.left = 1200;
        for _ in 0..MAX_WAIT_TICKS {
            assert_eq!(skip.take(&loud, 960), 0);
        }
        assert_eq!(skip.take(&loud, 960), 960);
        for _ in 0..2 * MAX_WAIT_TICKS {
            assert_eq!(skip.take(&loud, 960), 0, "240 left: less than a piece");
        }
        assert_eq!(skip.take(&quiet, 960), 240);
    }

    #[test]
    fn health_keeps_the_first_failure_per_direction() {
        let h = Health::default();
        h.report(Direction::Output, cpal::Error::new(cpal::ErrorKind::Xrun));
        assert_eq!((h.failure(Direction::Input), h.failure(Direction::Output)), (None, None));
        h.report(Direction::Output, cpal::Error::with_message(cpal::ErrorKind::DeviceNotAvailable, "unplugged"));
        h.fail(Direction::Output, "later".into());
        assert_eq!(h.failure(Direction::Output), Some("output device: unplugged"));
        assert_eq!(h.failure(Direction::Input), None);
    }
}
