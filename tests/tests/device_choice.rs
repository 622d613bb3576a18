//! Choosing audio devices, on virtual devices of a private PipeWire (null sinks; a sink's monitor
//! is a microphone), audio checked by content:
//!
//! - the desk's microphone is the monitor of "micfeed", where 700 Hz plays, its output is
//!   "headset" and it rings on "bell"; the system defaults are elsewhere ("room", playing 1400 Hz,
//!   is the default microphone; "spk" the default output). The microphone meter reads the chosen
//!   microphone's level; an incoming call rings on "bell" only; in a call, baresip, the far phone,
//!   must hear 700 Hz, and the headset's monitor must carry baresip's 1020 Hz while "spk" stays
//!   silent. Then the headset is unplugged mid-call: a `device` event says so, the call goes on,
//!   and "spk" carries 1020 Hz.
//! - the choice is saved: a restarted `sipdesk run` still has it; an unknown id is refused; and
//!   when the saved headset is missing at the next call, the default is used with a `device`
//!   event, and the call's audio is heard there.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav, Analysis};
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::desk_rig::{self, call, DeskRig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::pipewire::{self, PipeWire};
use sipdesk_e2e::sipdesk::{add_account, Running};
use sipdesk_e2e::sipp::Uas;

const HZ: u32 = 48_000;
const MIC_HZ: f64 = 700.0;
const ROOM_HZ: f64 = 1400.0;
const PHONE_HZ: f64 = 1020.0;
const LEVEL_DBFS: f64 = -12.0;

fn analysed(path: &Path) -> Analysis {
    let (samples, rate) = read_wav(path);
    let a = analyse(&samples, rate);
    eprintln!(
        "{}: {:.1} Hz, {:.1} dBFS, coverage {:.2}, gap {} ms",
        path.display(),
        a.dominant_hz,
        a.rms_dbfs,
        a.coverage,
        a.longest_gap_ms
    );
    a
}

/// The tone is `hz` within 3%: the adaptive playout may stretch what it plays by 2% while its
/// buffer drains, and the tones of this test are far further apart than that.
fn assert_tone(what: &str, a: &Analysis, hz: f64) {
    assert!((a.dominant_hz - hz).abs() <= hz * 0.03, "{what}: {:.1} Hz, expected {hz}", a.dominant_hz);
    assert!(a.coverage >= 0.8 && a.rms_dbfs > -20.0, "{what}: coverage {:.2}, {:.1} dBFS", a.coverage, a.rms_dbfs);
}

fn device_event(direction: &'static str, reason: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "device" && v["direction"] == direction && v["reason"] == reason
}

/// Loads a mono null sink and returns its module id (for unloading it: the unplug).
fn load_sink(rig: &PipeWire, name: &str) -> String {
    let id = rig.pactl(&[
        "load-module",
        "module-null-sink",
        &format!("sink_name={name}"),
        &format!("rate={HZ}"),
        "channels=1",
    ]);
    for _ in 0..100 {
        if rig.pactl(&["list", "short", "sinks"]).lines().any(|l| l.split('\t').nth(1) == Some(name)) {
            return id.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sink {name} not listed after 5 s");
}

fn env(rig: &PipeWire) -> Vec<(&'static str, String)> {
    rig.env()
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn chosen_mic_and_headset_carry_the_call_and_an_unplugged_headset_falls_back_mid_call() {
    let mut needed = pipewire::PROGRAMS.to_vec();
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("device_choice", &needed) {
        return;
    }
    let audio = PipeWire::start();
    for sink in ["spk", "micfeed", "room", "bell"] {
        audio.null_sink(sink, HZ);
    }
    let headset = load_sink(&audio, "headset");
    audio.set_default_sink("spk");
    audio.set_default_source("room.monitor");
    let dir = tempfile::tempdir().unwrap();
    let (mic_wav, room_wav, phone_wav) =
        (dir.path().join("mic700.wav"), dir.path().join("room1400.wav"), dir.path().join("phone1020.wav"));
    write_tone_wav(&mic_wav, MIC_HZ, HZ, 30.0, LEVEL_DBFS, 0.0);
    write_tone_wav(&room_wav, ROOM_HZ, HZ, 30.0, LEVEL_DBFS, 0.0);
    write_tone_wav(&phone_wav, PHONE_HZ, 8000, 14.0, LEVEL_DBFS, 0.0);
    let _mic = audio.play("micfeed", &mic_wav);
    let _room = audio.play("room", &room_wav);

    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer: true,
        play_wav: Some(phone_wav),
        record_dir: dir.path().join("phone-rec"),
        ..BaresipConfig::default()
    });
    phone.wait_registered(Duration::from_secs(10));
    let db = dir.path().join("desk.db");
    let id = add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    let env = env(&audio);
    let mut run = Running::start(&db, &["--audio", "device"], &as_refs(&env));
    run.wait_for("registered", Duration::from_secs(10), move |v| {
        v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered"
    });

    // Every sink and source is listed by its own name; choose two that are not the defaults.
    let devices = run.command(json!({"id": 1, "cmd": "devices"}));
    let ids = |key: &str| -> Vec<String> {
        devices["result"][key].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect()
    };
    assert!(ids("inputs").contains(&"micfeed.monitor".into()), "{devices}");
    assert!(ids("outputs").contains(&"headset".into()), "{devices}");
    assert_eq!(devices["result"]["default_output"], "spk", "{devices}");
    assert_eq!(devices["result"]["chosen"], json!({"input": null, "output": null, "ring": null}));
    let set = run.command(json!({"id": 2, "cmd": "set_device", "input": "micfeed.monitor", "output": "headset"}));
    assert_eq!(set["result"], json!({"input": "micfeed.monitor", "output": "headset", "ring": null}), "{set}");
    let set = run.command(json!({"id": 20, "cmd": "set_device", "ring": "bell"}));
    assert_eq!(set["result"], json!({"input": "micfeed.monitor", "output": "headset", "ring": "bell"}), "{set}");

    // The meter reads the chosen microphone: 700 Hz at -12 dBFS, not the silence of no device.
    run.command(json!({"id": 21, "cmd": "mic_meter", "on": true}));
    // The first loud reading may straddle the moment the microphone opened: the next one is
    // the tone's steady level.
    let loud = |v: &Value| v["event"] == "mic_level" && v["dbfs"].as_f64().is_some_and(|d| d > -20.0);
    run.wait_next("a loud mic_level", Duration::from_secs(5), loud);
    let level = run.wait_next("a second loud mic_level", Duration::from_secs(5), loud);
    assert!((level["dbfs"].as_f64().unwrap() - LEVEL_DBFS).abs() < 2.0, "{level}");
    run.command(json!({"id": 22, "cmd": "mic_meter", "on": false}));

    // An incoming call rings on the ring device, not on the headset; declined here.
    let (on_bell, on_headset_ringing) = (dir.path().join("bell.wav"), dir.path().join("headset-ringing.wav"));
    phone.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    run.wait_for("ringing", Duration::from_secs(10), call("ringing"));
    let mut rec_bell = audio.record("bell.monitor", 8000, &on_bell);
    let mut rec_headset = audio.record("headset.monitor", 8000, &on_headset_ringing);
    std::thread::sleep(Duration::from_millis(1200));
    rec_bell.stop();
    rec_headset.stop();
    let ringing = run.seen().iter().rev().find(|v| call("ringing")(v)).unwrap()["call_id"].clone();
    run.command(json!({"id": 23, "cmd": "reject", "call_id": ringing}));
    phone.wait_event("CALL_CLOSED", Duration::from_secs(10));
    let bell = analysed(&on_bell);
    // The ring is 440 + 480 Hz: either can be the stronger.
    assert!(
        (430.0..=490.0).contains(&bell.dominant_hz) && bell.coverage > 0.5,
        "the ring on the ring device: {bell:?}"
    );
    assert!(analysed(&on_headset_ringing).coverage < 0.05, "the ring leaked to the headset");

    let r = run.command(json!({"id": 3, "cmd": "dial", "uri": format!("sip:2001@127.0.0.1:{}", k.port)}));
    let call_id = r["result"]["call_id"].as_str().expect("call id").to_string();
    run.wait_for("active", Duration::from_secs(10), call("active"));
    std::thread::sleep(Duration::from_millis(800));
    let (on_headset, on_spk) = (dir.path().join("headset.wav"), dir.path().join("spk.wav"));
    let mut rec_headset = audio.record("headset.monitor", 8000, &on_headset);
    let mut rec_spk = audio.record("spk.monitor", 8000, &on_spk);
    std::thread::sleep(Duration::from_secs(2));
    rec_headset.stop();
    rec_spk.stop();
    assert_tone("the headset carries the far end", &analysed(&on_headset), PHONE_HZ);
    let spk = analysed(&on_spk);
    assert!(spk.coverage < 0.05, "the default output stays silent while the headset is chosen: {spk:?}");

    // Unplug the headset mid-call: the desk says so, keeps the call, and plays on the default.
    audio.pactl(&["unload-module", &headset]);
    let notice = run.wait_for("the device event", Duration::from_secs(5), device_event("output", "lost"));
    assert_eq!((notice["wanted"].as_str(), notice["used"].as_str()), (Some("headset"), Some("spk")), "{notice}");
    std::thread::sleep(Duration::from_millis(500));
    let after = dir.path().join("spk-after.wav");
    audio.record_for("spk.monitor", 8000, 2.0, &after);
    assert_tone("after the unplug the default output carries the far end", &analysed(&after), PHONE_HZ);
    let ended = |v: &Value| call("ended")(v) && v["call_id"] == call_id.as_str();
    assert!(!run.seen().iter().any(ended), "the call ended with the headset");

    run.command(json!({"id": 4, "cmd": "hangup", "call_id": call_id}));
    run.wait_for("ended", Duration::from_secs(10), ended);
    phone.wait_event("CALL_CLOSED", Duration::from_secs(10));
    let received = phone.received_recordings();
    assert_eq!(received.len(), 1, "{received:?}");
    // The far end heard the chosen microphone (700 Hz), not the default one (1400 Hz).
    let heard = analysed(&received[0]);
    assert!((heard.dominant_hz - MIC_HZ).abs() <= MIC_HZ * 0.02, "the far end heard {:.1} Hz", heard.dominant_hz);
    assert!(heard.coverage >= 0.7 && (heard.rms_dbfs - LEVEL_DBFS).abs() <= 3.0, "the far end heard {heard:?}");
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert!(code.success() && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn device_choice_survives_a_restart_and_a_missing_device_falls_back_with_a_notice() {
    let mut needed = pipewire::PROGRAMS.to_vec();
    needed.extend_from_slice(desk_rig::PROGRAMS);
    if !sipdesk_e2e::require_programs("device_choice", &needed) {
        return;
    }
    let audio = PipeWire::start();
    audio.null_sink("mic", HZ);
    audio.null_sink("spk", HZ);
    let headset = load_sink(&audio, "headset");
    audio.set_default_sink("spk");
    audio.set_default_source("mic.monitor");
    let rig = DeskRig::new();
    let env = env(&audio);

    let mut run = rig.run(&["--audio", "device"], &as_refs(&env));
    let set = run.command(json!({"id": 1, "cmd": "set_device", "output": "headset", "ring": "headset"}));
    assert_eq!(set["event"], "ack", "{set}");
    let bad = run.command(json!({"id": 2, "cmd": "set_device", "input": "no-such-mic"}));
    assert_eq!((bad["event"].as_str(), bad["code"].as_str()), (Some("error"), Some("unknown_device")), "{bad}");
    let bad = run.command(json!({"id": 3, "cmd": "set_device", "input": 7}));
    assert_eq!(bad["code"], "invalid_argument", "{bad}");
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());

    // Restored by the next run, and kept while the headset is unplugged.
    audio.pactl(&["unload-module", &headset]);
    let mut run = rig.run(&["--audio", "device"], &as_refs(&env));
    let devices = run.command(json!({"id": 1, "cmd": "devices"}));
    assert_eq!(
        devices["result"]["chosen"],
        json!({"input": null, "output": "headset", "ring": "headset"}),
        "{devices}"
    );

    // A call now rings back and talks on the default output, and says why.
    let callee = Uas::start(rig.dir.path(), Some("uas_ring_then_answer"));
    let mic_wav = rig.dir.path().join("mic700.wav");
    write_tone_wav(&mic_wav, MIC_HZ, HZ, 8.0, LEVEL_DBFS, 0.0);
    let dialed = run.command(json!({"id": 2, "cmd": "dial", "uri": format!("sip:callee@127.0.0.1:{}", callee.port)}));
    let call_id = dialed["result"]["call_id"].as_str().expect("call id").to_string();
    let notice = run.wait_for("the device event", Duration::from_secs(10), device_event("output", "not_found"));
    assert_eq!((notice["wanted"].as_str(), notice["used"].as_str()), (Some("headset"), Some("spk")), "{notice}");
    assert!(notice["detail"].as_str().unwrap().contains("headset"), "{notice}");
    run.wait_for("active", Duration::from_secs(10), call("active"));
    let _mic = audio.play("mic", &mic_wav);
    std::thread::sleep(Duration::from_millis(800));
    let talk = rig.dir.path().join("talk.wav");
    audio.record_for("spk.monitor", 8000, 2.0, &talk);
    // The microphone, echoed by the far end, is heard on the default output.
    assert_tone("the default output in the call", &analysed(&talk), MIC_HZ);
    run.command(json!({"id": 3, "cmd": "hangup", "call_id": call_id}));
    run.wait_for("ended", Duration::from_secs(10), call("ended"));
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert!(code.success() && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("audio device") && stderr.contains("headset"), "a log line names the missing device");
}
