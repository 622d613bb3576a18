//! Audio devices at the desk: which microphone, speaker and ring device to use (kept per
//! database), opening them for calls and tones, the test tone and the microphone meter.
//!
//! A saved device that cannot be opened is never fatal: the system default is used instead and a
//! `device` event (plus a log line) says what was wanted, what is used and why. The same happens
//! when a device fails mid-call ([`crate::media::device_fallback`]); the call goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::calls::lock;
use super::{ApiError, AudioChoice, Desk, Event, EventEnvelope};
use crate::media::device::{self, DeviceError, DeviceList, DeviceSink, DeviceSource};
use crate::media::device_fallback::{FallbackSink, FallbackSource, OnSwitch, Switch};
use crate::media::frame::{Endpoint, Frame, FrameSink, FrameSource, SampleRate, SourcePoll};
use crate::media::tone::{ToneSource, ToneSpec};
use crate::store::Store;

/// The `desk_settings` key of the device choice (one JSON value: one row, one transaction).
const SETTINGS_KEY: &str = "audio_devices";
/// The test tone: 1 s of 440 Hz at -12 dBFS.
const TEST_TONE: (f64, f64, u32) = (440.0, -12.0, 50);
/// The microphone meter reports this often (five 20 ms frames).
const METER_FRAMES: usize = 5;

/// Which devices the desk uses. `None` is the system default, which follows the system: it is
/// looked up each time a device is opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioSettings {
    /// Microphone.
    pub input: Option<String>,
    /// Speaker or headset for calls, ringback and the test tone.
    pub output: Option<String>,
    /// Where incoming calls ring (e.g. loudspeakers while the agent wears a headset).
    pub ring: Option<String>,
}

/// One device as front ends list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioDevice {
    /// What [`AudioSettings`] stores.
    pub id: String,
    /// What a person reads.
    pub name: String,
}

/// The devices there are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioDevices {
    /// Microphones (PipeWire and PulseAudio also list every output's monitor here).
    pub inputs: Vec<AudioDevice>,
    /// Speakers and headsets.
    pub outputs: Vec<AudioDevice>,
    /// The system's default microphone, if any.
    pub default_input: Option<String>,
    /// The system's default output, if any.
    pub default_output: Option<String>,
}

impl From<DeviceList> for AudioDevices {
    fn from(l: DeviceList) -> AudioDevices {
        let conv = |v: Vec<device::DeviceInfo>| v.into_iter().map(|d| AudioDevice { id: d.id, name: d.name }).collect();
        AudioDevices {
            inputs: conv(l.inputs),
            outputs: conv(l.outputs),
            default_input: l.default_input,
            default_output: l.default_output,
        }
    }
}

/// The saved choice; nothing saved (or unreadable) is the system default everywhere.
pub(super) fn load(store: &Store) -> AudioSettings {
    match store.setting(SETTINGS_KEY).map(|v| v.map(|j| serde_json::from_str(&j))) {
        Ok(Some(Ok(s))) => s,
        Ok(None) => AudioSettings::default(),
        Ok(Some(Err(e))) => {
            tracing::warn!("the saved audio devices are unreadable ({e}); using the system defaults");
            AudioSettings::default()
        }
        Err(e) => {
            tracing::warn!("cannot read the saved audio devices ({e}); using the system defaults");
            AudioSettings::default()
        }
    }
}

/// Checks every chosen id against the devices there are.
fn validate(s: &AudioSettings, list: &DeviceList) -> Result<(), ApiError> {
    let has = |v: &[device::DeviceInfo], id: &str| v.iter().any(|d| d.id == id);
    for (key, id, ok) in [
        ("input", &s.input, s.input.as_deref().is_none_or(|i| has(&list.inputs, i))),
        ("output", &s.output, s.output.as_deref().is_none_or(|i| has(&list.outputs, i))),
        ("ring", &s.ring, s.ring.as_deref().is_none_or(|i| has(&list.outputs, i))),
    ] {
        if !ok {
            return Err(ApiError::new("unknown_device", format!("{key}: no such audio device {:?}", id.as_deref())));
        }
    }
    Ok(())
}

/// How the desk's calls and tones reach the audio devices. Cheap to clone.
#[derive(Clone)]
pub(super) struct CallAudio(Arc<Shared>);

struct Shared {
    choice: AudioChoice,
    settings: Mutex<AudioSettings>,
    events: broadcast::Sender<EventEnvelope>,
    /// Set while the microphone meter runs; cleared to stop it.
    meter: Mutex<Option<Arc<AtomicBool>>>,
    tone_playing: AtomicBool,
}

impl CallAudio {
    pub(super) fn new(choice: AudioChoice, settings: AudioSettings, events: broadcast::Sender<EventEnvelope>) -> Self {
        CallAudio(Arc::new(Shared {
            choice,
            settings: Mutex::new(settings),
            events,
            meter: Mutex::new(None),
            tone_playing: AtomicBool::new(false),
        }))
    }

    /// `--audio`: where call audio goes.
    pub(super) fn choice(&self) -> &AudioChoice {
        &self.0.choice
    }

    fn settings(&self) -> AudioSettings {
        lock(&self.0.settings).clone()
    }

    /// The endpoint of a call on the chosen devices. Blocks while they open (tens of ms). Never
    /// fails: without any device the call is silent and the default is tried again now and then.
    pub(super) fn call_endpoint(&self, rate: SampleRate) -> Endpoint {
        let s = self.settings();
        // Both at once (each waits on the audio server), and without stalling the tasks queued
        // on this tokio worker.
        let (source, sink) = blocking(|| {
            std::thread::scope(|scope| {
                let input = scope.spawn(|| self.open_input(s.input.as_deref(), rate));
                let sink = self.open_output("output", s.output.as_deref(), rate);
                (input.join().ok().flatten(), sink)
            })
        });
        let on_switch = self.on_switch();
        Endpoint::new(
            Box::new(FallbackSource::new(source, s.input, rate, on_switch.clone())),
            Box::new(FallbackSink::new(sink, s.output, rate, on_switch)),
        )
    }

    /// Opens the device for `role` (`output` or `ring`): the chosen one, else the default.
    pub(super) fn open_role(&self, role: &'static str, rate: SampleRate) -> Option<DeviceSink> {
        let s = self.settings();
        let wanted = if role == "ring" { s.ring } else { s.output };
        self.open_output(role, wanted.as_deref(), rate)
    }

    fn open_input(&self, wanted: Option<&str>, rate: SampleRate) -> Option<DeviceSource> {
        self.open_with_fallback("input", wanted, |id| DeviceSource::open(id, rate), |d| d.device().to_string())
    }

    fn open_output(&self, role: &'static str, wanted: Option<&str>, rate: SampleRate) -> Option<DeviceSink> {
        self.open_with_fallback(role, wanted, |id| DeviceSink::open(id, rate), |d| d.device().to_string())
    }

    /// Opens `wanted`; when it cannot be opened, opens the default and says so.
    fn open_with_fallback<T>(
        &self,
        role: &'static str,
        wanted: Option<&str>,
        open: impl Fn(Option<&str>) -> Result<T, DeviceError>,
        id: impl Fn(&T) -> String,
    ) -> Option<T> {
        let err = match open(wanted) {
            Ok(d) => return Some(d),
            Err(e) => e,
        };
        if wanted.is_none() {
            self.notice(role, None, None, "unavailable", err.to_string());
            return None;
        }
        let reason = if matches!(err, DeviceError::NotFound { .. }) { "not_found" } else { "open_failed" };
        match open(None) {
            Ok(d) => {
                self.notice(role, wanted, Some(&id(&d)), reason, err.to_string());
                Some(d)
            }
            Err(e) => {
                self.notice(role, wanted, None, reason, format!("{err}; the default device failed too: {e}"));
                None
            }
        }
    }

    fn on_switch(&self) -> OnSwitch {
        let me = self.clone();
        Arc::new(move |s: Switch| {
            let reason = if s.recovered { "recovered" } else { "lost" };
            me.notice(s.direction.as_str(), s.lost.as_deref(), s.used.as_deref(), reason, s.detail)
        })
    }

    /// Logs and publishes a device fallback.
    fn notice(
        &self,
        role: &'static str,
        wanted: Option<&str>,
        used: Option<&str>,
        reason: &'static str,
        detail: String,
    ) {
        tracing::warn!(direction = role, wanted = ?wanted, used = ?used, reason, "audio device: {detail}");
        let event = Event::Device {
            direction: role,
            wanted: wanted.map(str::to_string),
            used: used.map(str::to_string),
            reason,
            detail,
        };
        let _ = self.0.events.send(EventEnvelope::now(event));
    }

    /// Plays the test tone on the output, on a thread of its own; a second press while it
    /// plays is ignored.
    fn test_tone(&self) -> Result<(), ApiError> {
        if self.0.tone_playing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new().name("sipdesk-test-tone".into()).spawn(move || {
            let rate = SampleRate::Hz8000;
            if let Some(mut sink) = me.open_role("output", rate) {
                tracing::info!(device = sink.device(), "playing the test tone");
                let (hz, dbfs, frames) = TEST_TONE;
                let mut tone = ToneSource::new(ToneSpec::sine(hz, dbfs), rate);
                let mut frame = Frame::silence(rate);
                let start = Instant::now();
                for n in 1..=frames {
                    tone.fill(frame.samples_mut());
                    sink.put_frame(&frame);
                    std::thread::sleep(
                        (start + Duration::from_millis(20 * u64::from(n))).saturating_duration_since(Instant::now()),
                    );
                }
                // Let what is queued play out before the device closes.
                std::thread::sleep(Duration::from_millis(200));
            }
            me.0.tone_playing.store(false, Ordering::Release);
        });
        spawned.map(|_| ()).map_err(|e| {
            self.0.tone_playing.store(false, Ordering::Release);
            ApiError::new("internal", format!("cannot start the test tone: {e}"))
        })
    }

    /// Starts or stops the microphone meter (restarting it picks up a new input choice).
    pub(super) fn meter(&self, on: bool) {
        let mut slot = lock(&self.0.meter);
        if let Some(running) = slot.take() {
            running.store(false, Ordering::Release);
        }
        if !on {
            return;
        }
        let running = Arc::new(AtomicBool::new(true));
        let (me, flag) = (self.clone(), running.clone());
        match std::thread::Builder::new().name("sipdesk-mic-meter".into()).spawn(move || me.run_meter(&flag)) {
            Ok(_) => *slot = Some(running),
            Err(e) => tracing::warn!("cannot start the microphone meter: {e}"),
        }
    }

    /// Publishes the input's level every 100 ms while `running`.
    fn run_meter(&self, running: &AtomicBool) {
        let rate = SampleRate::Hz8000;
        let wanted = self.settings().input;
        let source = self.open_input(wanted.as_deref(), rate);
        let mut mic = FallbackSource::new(source, wanted, rate, self.on_switch());
        let mut frame = Frame::silence(rate);
        let (mut energy, mut samples, mut frames) = (0.0f64, 0usize, 0usize);
        while running.load(Ordering::Acquire) {
            // A silent frame stands in when the device has nothing, so the meter keeps moving.
            if mic.poll_frame(&mut frame) != SourcePoll::Ready {
                frame.reset(rate);
            }
            energy += frame.samples().iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
            samples += frame.samples().len();
            frames += 1;
            if frames == METER_FRAMES {
                let dbfs = (dbfs(energy / samples as f64) * 10.0).round() / 10.0;
                let _ = self.0.events.send(EventEnvelope::now(Event::MicLevel { dbfs }));
                (energy, samples, frames) = (0.0, 0, 0);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `f`, which blocks, from a tokio worker without holding up the tasks queued on it (a
/// multi-thread runtime moves them to another worker); elsewhere it simply runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Mean square of s16 samples as dBFS (a full-scale sine is 0 dBFS); -120 for silence.
fn dbfs(mean_square: f64) -> f64 {
    if mean_square <= 0.0 {
        return -120.0;
    }
    (20.0 * (mean_square.sqrt() * std::f64::consts::SQRT_2 / 32768.0).log10()).max(-120.0)
}

impl Desk {
    /// The audio devices there are now.
    pub fn audio_devices(&self) -> Result<AudioDevices, ApiError> {
        device::list_devices().map(AudioDevices::from).map_err(|e| ApiError::new("audio_unavailable", e.to_string()))
    }

    /// The saved device choice.
    pub fn audio_settings_get(&self) -> AudioSettings {
        self.inner.audio.settings()
    }

    /// Saves the device choice (each id must be listed now; `unknown_device` otherwise). New
    /// calls and tones use it; a running microphone meter moves to the new input.
    pub fn audio_settings_set(&self, settings: AudioSettings) -> Result<(), ApiError> {
        let list = device::list_devices().map_err(|e| ApiError::new("audio_unavailable", e.to_string()))?;
        validate(&settings, &list)?;
        let json = serde_json::to_string(&settings).map_err(|e| ApiError::new("internal", e.to_string()))?;
        self.with_store_mut(|s| s.set_setting(SETTINGS_KEY, &json))?;
        tracing::info!(input = ?settings.input, output = ?settings.output, ring = ?settings.ring, "audio devices chosen");
        let audio = &self.inner.audio;
        *lock(&audio.0.settings) = settings;
        if lock(&audio.0.meter).is_some() {
            audio.meter(true);
        }
        Ok(())
    }

    /// Plays about a second of tone on the chosen output; returns at once.
    pub fn audio_test_tone(&self) -> Result<(), ApiError> {
        self.inner.audio.test_tone()
    }

    /// Turns the microphone meter on (`mic_level` events every 100 ms) or off.
    pub fn mic_meter(&self, on: bool) {
        self.inner.audio.meter(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> DeviceList {
        let d = |id: &str| device::DeviceInfo { id: id.into(), name: format!("{id} device") };
        DeviceList { inputs: vec![d("mic")], outputs: vec![d("spk"), d("bell")], ..DeviceList::default() }
    }

    #[test]
    fn choices_are_checked_against_the_list() {
        let ok = AudioSettings { input: Some("mic".into()), output: None, ring: Some("bell".into()) };
        assert!(validate(&ok, &list()).is_ok());
        let bad = AudioSettings { output: Some("mic".into()), ..AudioSettings::default() };
        let e = validate(&bad, &list()).unwrap_err();
        assert_eq!(e.code, "unknown_device");
        assert!(e.message.starts_with("output:"), "{}", e.message);
    }

    #[test]
    fn settings_round_trip_as_json_with_null_for_the_default() {
        let s = AudioSettings { input: None, output: Some("spk".into()), ring: None };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"input":null,"output":"spk","ring":null}"#);
        assert_eq!(serde_json::from_str::<AudioSettings>(&json).unwrap(), s);
    }

    #[test]
    fn levels_in_dbfs() {
        assert_eq!(dbfs(0.0), -120.0);
        // A full-scale sine has a mean square of 32768² / 2.
        assert!((dbfs(32768.0 * 32768.0 / 2.0)).abs() < 1e-9);
    }
}
