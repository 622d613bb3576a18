//! Real calls with baresip (Debian's far phone) through Kamailio, audio checked by content:
//! baresip plays 1020 Hz, sipdesk (file endpoint) plays 1400 Hz, and each side's recording must
//! hold the other side's tone (frequency within 2%, level within 3 dB), with no gap over 60 ms in
//! the middle and sound in at least 80% of the call. Both directions, with PCMU, PCMA and Opus
//! (`opus/48000/2`: baresip records 48 kHz stereo, read by its first channel; the desk is told to
//! prefer Opus with `SIPDESK_CODECS`, and its endpoint then runs at 48 kHz). An Opus call is
//! wideband: tones above the telephone band (4.8 and 5.6 kHz) cross both ways.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav, Analysis};
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::sipdesk::{add_account, Running};

/// The tones of one call: what the phone plays, what the desk plays (from a WAV at `desk_rate`).
struct Tones {
    phone: f64,
    desk: f64,
    desk_rate: u32,
}

const TELEPHONE_BAND: Tones = Tones { phone: 1020.0, desk: 1400.0, desk_rate: 8000 };
const LEVEL_DBFS: f64 = -12.0;

fn call(state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "call" && v["state"] == state
}

fn check(who: &str, a: &Analysis, hz: f64) {
    eprintln!(
        "{who}: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms, {} ms",
        a.dominant_hz, a.rms_dbfs, a.coverage, a.longest_gap_ms, a.duration_ms
    );
    assert!((a.dominant_hz - hz).abs() <= hz * 0.02, "{who}: dominant {:.1} Hz, expected {hz}", a.dominant_hz);
    assert!((a.rms_dbfs - LEVEL_DBFS).abs() <= 3.0, "{who}: level {:.1} dBFS", a.rms_dbfs);
    assert!(a.longest_gap_ms <= 60, "{who}: gap of {} ms", a.longest_gap_ms);
    assert!(a.coverage >= 0.8, "{who}: sound in only {:.0}% of the call", a.coverage * 100.0);
}

fn analysed(path: &Path) -> Analysis {
    let (samples, rate) = read_wav(path);
    analyse(&samples, rate)
}

/// Runs one call; `desk_calls` chooses who dials.
fn tone_call(codec: &'static str, desk_calls: bool, tones: Tones) {
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("calls_baresip", &needed) {
        return;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let phone_wav = dir.path().join("phone-tone.wav");
    let desk_wav = dir.path().join("desk-tone.wav");
    let heard = dir.path().join("desk-heard.wav");
    // The phone hangs up when its 4 s WAV ends; the desk's tone outlasts the call.
    write_tone_wav(&phone_wav, tones.phone, baresip::codec_rate(codec), 4.0, LEVEL_DBFS, 0.0);
    write_tone_wav(&desk_wav, tones.desk, tones.desk_rate, 10.0, LEVEL_DBFS, 0.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec,
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
    let audio = format!("file:{},{}", desk_wav.display(), heard.display());
    let desk_codecs = if codec.starts_with("opus") { "opus,pcmu,pcma" } else { "pcmu,pcma" };
    let mut run = Running::start(&db, &["--auto-answer", "--audio", &audio], &[("SIPDESK_CODECS", desk_codecs)]);
    run.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered"
    });
    if desk_calls {
        let r = run.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:2001@127.0.0.1:{}", k.port)}));
        assert_eq!(r["event"], "ack", "{r}");
    } else {
        phone.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    }
    let active = run.wait_for("active", Duration::from_secs(10), call("active"));
    // The event names the codec as its SDP encoding name does, in capitals.
    let name = codec.split('/').next().unwrap_or(codec).to_uppercase();
    assert_eq!(active["codec"], name);
    assert_eq!(active["direction"], if desk_calls { "out" } else { "in" });
    // While the phone's tone plays, the level the desk reports for it is about -12 dBFS.
    let level = run.wait_for("call_level", Duration::from_secs(5), |v| {
        v["event"] == "call_level" && v["rx_dbfs"].as_f64().is_some_and(|l| l > -20.0)
    });
    assert!((level["rx_dbfs"].as_f64().unwrap() - LEVEL_DBFS).abs() < 3.0, "{level}");
    assert!((level["tx_dbfs"].as_f64().unwrap() - LEVEL_DBFS).abs() < 3.0, "{level}");
    let ended = run.wait_for("ended", Duration::from_secs(15), call("ended"));
    assert_eq!(ended["reason"], "remote_hangup", "the phone hangs up when its WAV ends");
    phone.wait_event("CALL_CLOSED", Duration::from_secs(10));
    check("desk heard", &analysed(&heard), tones.phone);
    let received = phone.received_recordings();
    assert_eq!(received.len(), 1, "{received:?}\n{}", phone.log());
    check("phone heard", &analysed(&received[0]), tones.desk);
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn phone_calls_desk_pcmu() {
    tone_call("pcmu", false, TELEPHONE_BAND);
}

#[test]
fn phone_calls_desk_pcma() {
    tone_call("pcma", false, TELEPHONE_BAND);
}

#[test]
fn desk_calls_phone_pcmu() {
    tone_call("pcmu", true, TELEPHONE_BAND);
}

#[test]
fn desk_calls_phone_pcma() {
    tone_call("pcma", true, TELEPHONE_BAND);
}

#[test]
fn phone_calls_desk_opus() {
    tone_call("opus/48000/2", false, TELEPHONE_BAND);
}

#[test]
fn desk_calls_phone_opus() {
    tone_call("opus/48000/2", true, TELEPHONE_BAND);
}

#[test]
fn opus_is_wideband_both_ways() {
    // Above 4 kHz: only a call that stays at 48 kHz from file to wire and back carries these.
    tone_call("opus/48000/2", true, Tones { phone: 4800.0, desk: 5600.0, desk_rate: 48000 });
}
