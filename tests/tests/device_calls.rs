//! A call on the audio device (cpal through a private PipeWire, null sinks for the headset):
//! while the callee rings, the desk's own ringback reaches the speaker; once answered, what the
//! microphone picks up travels out as RTP, comes back through SIPp's echo and reaches the
//! speaker. Both checked by content on a recording of the speaker sink.

use std::time::Duration;

use serde_json::json;
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav};
use sipdesk_e2e::desk_rig::{self, call, DeskRig};
use sipdesk_e2e::pipewire::{self, PipeWire};
use sipdesk_e2e::sipp::Uas;

#[test]
fn ringback_then_the_microphone_through_the_call_to_the_speaker() {
    let mut needed = pipewire::PROGRAMS.to_vec();
    needed.extend_from_slice(desk_rig::PROGRAMS);
    if !sipdesk_e2e::require_programs("device_calls", &needed) {
        return;
    }
    let audio = PipeWire::start();
    audio.null_sink("mic", 48000);
    audio.null_sink("spk", 48000);
    audio.set_default_sink("spk");
    audio.set_default_source("mic.monitor");
    let rig = DeskRig::new();
    let callee = Uas::start(rig.dir.path(), Some("uas_ring_then_answer"));
    let mut env: Vec<(&str, String)> = audio.env();
    // The media path's own account of late packets, late ticks and trimmed backlog, should the
    // speaker's recording have a gap.
    env.push(("RUST_LOG", "info,sipdesk_core::media=debug".into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut run = rig.run(&["--audio", "device"], &env_ref);
    let (ringing_wav, talk_wav, mic_wav) =
        (rig.dir.path().join("ringing.wav"), rig.dir.path().join("talk.wav"), rig.dir.path().join("mic700.wav"));
    write_tone_wav(&mic_wav, 700.0, 48000, 6.0, -12.0, 0.0);
    let mut recording = audio.record("spk.monitor", 8000, &ringing_wav);
    let dialed = run.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:callee@127.0.0.1:{}", callee.port)}));
    let call_id = dialed["result"]["call_id"].as_str().unwrap().to_string();
    run.wait_for("ringing", Duration::from_secs(5), call("ringing"));
    run.wait_for("active", Duration::from_secs(10), call("active"));
    recording.stop();
    // Now speak into the microphone and listen to the speaker.
    let _mic = audio.play("mic", &mic_wav);
    std::thread::sleep(Duration::from_millis(800));
    audio.record_for("spk.monitor", 8000, 2.0, &talk_wav);
    run.command(json!({"id": 2, "cmd": "hangup", "call_id": call_id}));
    run.wait_for("ended", Duration::from_secs(10), call("ended"));
    let (samples, rate) = read_wav(&ringing_wav);
    // The first second of the 1 s on / 4 s off cadence is where the ringback sounds.
    let first = &samples[..samples.len().min(rate as usize * 3 / 2)];
    let ring = analyse(first, rate);
    eprintln!("while ringing: {:.1} Hz, {:.1} dBFS, coverage {:.2}", ring.dominant_hz, ring.rms_dbfs, ring.coverage);
    assert!((ring.dominant_hz - 425.0).abs() < 9.0, "ringback {:.1} Hz", ring.dominant_hz);
    let (samples, rate) = read_wav(&talk_wav);
    let talk = analyse(&samples, rate);
    eprintln!(
        "in the call: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms",
        talk.dominant_hz, talk.rms_dbfs, talk.coverage, talk.longest_gap_ms
    );
    assert!((talk.dominant_hz - 700.0).abs() < 14.0, "speaker carried {:.1} Hz", talk.dominant_hz);
    assert!(
        talk.coverage > 0.8 && talk.longest_gap_ms <= 60,
        "coverage {:.2}, gap {} ms; the desk's log:\n{}",
        talk.coverage,
        talk.longest_gap_ms,
        run.stderr_text()
    );
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert!(code.success() && !stderr.contains("panicked"), "{stderr}");
}
