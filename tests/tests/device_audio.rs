//! The audio device endpoint against virtual devices on a private PipeWire: a 700 Hz tone played
//! into the "mic" null sink must come out of the endpoint's source, and a 1020 Hz tone put into
//! its sink must reach the default "spk" sink (recorded from `spk.monitor`). Then a sink opened
//! on the "headset" sink by name plays there and not on the default; when "headset" is unloaded
//! mid-stream, the fallback sink reports the switch and the tone goes on on "spk".

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipdesk_core::media::device::{list_devices, DeviceEndpoint, DeviceError, DeviceSink, Direction};
use sipdesk_core::media::device_fallback::{FallbackSink, Switch};
use sipdesk_core::media::frame::{Frame, FrameSink, SampleRate, SourcePoll};
use sipdesk_core::media::tone::{ToneSource, ToneSpec};
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav};
use sipdesk_e2e::pipewire::{self, PipeWire};

const DEVICE_HZ: u32 = 48_000;

#[test]
fn device_endpoint_captures_the_mic_and_plays_to_the_speaker() {
    if !sipdesk_e2e::require_programs("device_audio", pipewire::PROGRAMS) {
        return;
    }
    let started = Instant::now();
    let rig = PipeWire::start();
    rig.null_sink("mic", DEVICE_HZ);
    rig.null_sink("spk", DEVICE_HZ);
    rig.set_default_sink("spk");
    rig.set_default_source("mic.monitor");
    // This test binary holds this one test, so the rig's environment can be the process's: ALSA
    // (through cpal) reads it when first used, below.
    for (k, v) in rig.env() {
        std::env::set_var(k, v);
    }

    let devices = list_devices().expect("list devices");
    eprintln!("devices: {devices:?}");
    let ids = |list: &[sipdesk_core::media::device::DeviceInfo]| list.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    assert!(ids(&devices.outputs).contains(&"spk".to_string()), "each sink is listed by name: {devices:?}");
    assert!(ids(&devices.inputs).contains(&"mic.monitor".to_string()), "each source is listed: {devices:?}");
    assert_eq!(devices.default_output.as_deref(), Some("spk"));
    assert_eq!(devices.default_input.as_deref(), Some("mic.monitor"));

    let (mut source, mut sink) =
        DeviceEndpoint::open(None, None, SampleRate::Hz8000).expect("open default devices").into_parts();
    assert_eq!((source.rate(), sink.rate()), (SampleRate::Hz8000, SampleRate::Hz8000));

    // Capture: 700 Hz into the mic; two seconds of frames out of the endpoint.
    let tone = rig.dir().join("mic-700.wav");
    write_tone_wav(&tone, 700.0, DEVICE_HZ, 4.0, -12.0, 0.0);
    let mut playing = rig.play("mic", &tone);
    std::thread::sleep(Duration::from_millis(300));
    let mut captured = Vec::new();
    let mut frame = Frame::silence(SampleRate::Hz8000);
    let deadline = Instant::now() + Duration::from_secs(4);
    while captured.len() < 2 * 8000 && Instant::now() < deadline {
        match source.poll_frame(&mut frame) {
            SourcePoll::Ready => captured.extend_from_slice(frame.samples()),
            SourcePoll::NotYet => std::thread::sleep(Duration::from_millis(5)),
            SourcePoll::Ended => panic!("capture ended"),
        }
    }
    playing.stop();
    let a = analyse(&captured, 8000);
    eprintln!("captured from mic: {a:?}");
    assert!(a.duration_ms >= 1900, "2 s of frames in 4 s: {a:?}");
    assert!((a.dominant_hz - 700.0).abs() <= 3.0, "700 Hz captured: {a:?}");
    assert!(a.coverage > 0.9 && a.rms_dbfs > -20.0, "steady level: {a:?}");

    // Playback: 1020 Hz frames at the call's pace into the sink, recorded from spk.monitor.
    let recording = rig.dir().join("spk.wav");
    let mut rec = rig.record("spk.monitor", DEVICE_HZ, &recording);
    std::thread::sleep(Duration::from_millis(300));
    let mut gen = ToneSource::new(ToneSpec::sine(1020.0, -12.0), SampleRate::Hz8000);
    let t0 = Instant::now();
    for n in 1..=100u32 {
        gen.fill(frame.samples_mut());
        sink.put_frame(&frame);
        let due = t0 + Duration::from_millis(20 * u64::from(n));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    assert!(sink.close().is_ok());
    drop((source, sink));

    let (samples, rate) = read_wav(&recording);
    // From the tone's first sample to its last: no gap inside, about 2 s long.
    let loud = |s: &i16| s.unsigned_abs() > 1000;
    let first = samples.iter().position(loud).expect("the recording holds sound");
    let last = samples.iter().rposition(loud).expect("the recording holds sound");
    let a = analyse(&samples[first..=last], rate);
    eprintln!("recorded from spk.monitor: {a:?}");
    assert!((a.dominant_hz - 1020.0).abs() <= 3.0, "1020 Hz played: {a:?}");
    assert!((1900..=2100).contains(&a.duration_ms), "2 s of tone: {a:?}");
    assert!(a.longest_gap_ms <= 20 && a.rms_dbfs > -20.0, "steady tone: {a:?}");

    let err =
        DeviceEndpoint::open(Some("no-such-headset"), None, SampleRate::Hz8000).err().expect("unknown device refused");
    assert!(matches!(err, DeviceError::NotFound { direction: "input", .. }), "{err}");

    named_sink_then_fallback_when_it_is_unloaded(&rig);
    drop(rig);
    eprintln!("device test took {:?}", started.elapsed());
}

/// Plays 20 ms frames of `gen` into `sink` at the call's pace for `ms`.
fn play_for(sink: &mut dyn FrameSink, gen: &mut ToneSource, ms: u64) {
    let mut frame = Frame::silence(SampleRate::Hz8000);
    let t0 = Instant::now();
    for n in 1..=ms / 20 {
        gen.fill(frame.samples_mut());
        sink.put_frame(&frame);
        std::thread::sleep((t0 + Duration::from_millis(20 * n)).saturating_duration_since(Instant::now()));
    }
}

fn analysed(path: &std::path::Path) -> sipdesk_e2e::audio::Analysis {
    let (samples, rate) = read_wav(path);
    analyse(&samples, rate)
}

fn named_sink_then_fallback_when_it_is_unloaded(rig: &PipeWire) {
    let module = rig.pactl(&["load-module", "module-null-sink", "sink_name=headset", "rate=48000", "channels=1"]);
    std::thread::sleep(Duration::from_millis(300));
    let (on_headset, on_spk) = (rig.dir().join("headset.wav"), rig.dir().join("spk-before.wav"));
    let mut rec_headset = rig.record("headset.monitor", DEVICE_HZ, &on_headset);
    let mut rec_spk = rig.record("spk.monitor", DEVICE_HZ, &on_spk);
    std::thread::sleep(Duration::from_millis(300));
    let headset = DeviceSink::open(Some("headset"), SampleRate::Hz8000).expect("open the headset by name");
    assert_eq!(headset.device(), "headset");
    let switches = Arc::new(Mutex::new(Vec::<Switch>::new()));
    let seen = switches.clone();
    let mut sink = FallbackSink::new(
        Some(headset),
        Some("headset".into()),
        SampleRate::Hz8000,
        Arc::new(move |s| seen.lock().unwrap().push(s)),
    );
    let mut gen = ToneSource::new(ToneSpec::sine(880.0, -12.0), SampleRate::Hz8000);
    play_for(&mut sink, &mut gen, 1500);
    rec_headset.stop();
    rec_spk.stop();
    let a = analysed(&on_headset);
    eprintln!("named sink: headset.monitor {a:?}");
    assert!((a.dominant_hz - 880.0).abs() <= 3.0 && a.rms_dbfs > -20.0, "the tone is on the headset: {a:?}");
    let a = analysed(&on_spk);
    assert!(a.coverage < 0.05, "nothing on the default sink while the headset is chosen: {a:?}");

    // Unplug the headset mid-stream: within about 2 s the tone is on the default sink.
    let after = rig.dir().join("spk-after.wav");
    let mut rec_after = rig.record("spk.monitor", DEVICE_HZ, &after);
    rig.pactl(&["unload-module", module.trim()]);
    play_for(&mut sink, &mut gen, 3000);
    std::thread::sleep(Duration::from_millis(200));
    rec_after.stop();
    assert!(sink.close().is_ok());
    let got = switches.lock().unwrap().clone();
    eprintln!("switches: {got:?}");
    assert_eq!(got.len(), 1, "one switch: {got:?}");
    assert_eq!(
        (got[0].direction, got[0].lost.as_deref(), got[0].used.as_deref()),
        (Direction::Output, Some("headset"), Some("spk"))
    );
    let (samples, rate) = read_wav(&after);
    // The second before the tone stopped (the recording runs on 200 ms after it).
    let end = samples.len().saturating_sub(rate as usize * 3 / 10);
    let last_second = &samples[end.saturating_sub(rate as usize)..end];
    let a = analyse(last_second, rate);
    eprintln!("after the unplug, spk.monitor: {a:?}");
    assert!((a.dominant_hz - 880.0).abs() <= 3.0 && a.coverage > 0.9, "the tone goes on on the default sink: {a:?}");
}
