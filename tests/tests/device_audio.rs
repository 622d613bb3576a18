//! The audio device endpoint against virtual devices on a private PipeWire: a 700 Hz tone played
//! into the "mic" null sink must come out of the endpoint's source, and a 1020 Hz tone put into
//! its sink must reach the default "spk" sink (recorded from `spk.monitor`).

use std::time::{Duration, Instant};

use sipdesk_core::media::device::{list_devices, DeviceEndpoint, DeviceError};
use sipdesk_core::media::frame::{Frame, SampleRate, SourcePoll};
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
    assert!(devices.outputs.iter().any(|d| d == "pulse"), "ALSA's pulse device is listed: {devices:?}");

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
    drop(rig);
    eprintln!("device test took {:?}", started.elapsed());
}
