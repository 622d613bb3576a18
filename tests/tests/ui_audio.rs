//! The audio settings and the in-call audio controls in the real app and webview (WebKitWebDriver
//! on Xvfb), on virtual devices of a private PipeWire (null sinks), audio checked by content:
//! the device lists; choosing a microphone moves the meter (700 Hz plays into it, the default
//! microphone is silent); choosing the headset sends the test tone there and not to the default
//! output; the choice is still there after a restart. Then a call to baresip: the quality line
//! fills in, mute silences what we send (the "You" meter) and unmute brings it back, and
//! unplugging the headset mid-call shows the device notice while the call goes on; the settings
//! then still show the headset as the choice, marked as not connected.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`) and the `sipdesk` CLI (`cargo build -p sipdesk-core --bins`).

use std::time::{Duration, Instant};

use serde_json::Value;
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav};
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::pipewire::{self, PipeWire};
use sipdesk_e2e::require_programs;
use sipdesk_e2e::sipdesk::add_account;
use sipdesk_e2e::webdriver::{cli_built, save_screenshot, ui_text, wait_until, Desk, Session, PROGRAMS, WAIT};

const TEST: &str = "ui_audio";
const PASSWORD: &str = "pw-1001";
const HZ: u32 = 48_000;
/// What plays into the microphone the test chooses.
const MIC_HZ: f64 = 700.0;
/// The desk's test tone.
const TEST_TONE_HZ: f64 = 440.0;

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn attr(s: &Session, css: &str, name: &str) -> Option<String> {
    s.with(css, |e| e.attribute(name)).unwrap()
}

fn value(s: &Session, css: &str) -> Value {
    s.with(css, |e| e.property("value")).unwrap()
}

/// Waits until the meter `css` satisfies `ok` on its percentage; returns what it showed.
fn wait_meter(s: &Session, css: &str, what: &str, ok: impl Fn(u32) -> bool) -> u32 {
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(6), what, || {
        let now: u32 = attr(s, css, "aria-valuenow")?.parse().ok()?;
        seen.push(now);
        ok(now).then_some(now)
    })
    .unwrap_or_else(|e| panic!("{e}; {css} read {seen:?}"))
}

/// Loads a mono null sink and returns its module id (to unplug it later).
fn load_sink(rig: &PipeWire, name: &str) -> String {
    let id = rig.pactl(&[
        "load-module",
        "module-null-sink",
        &format!("sink_name={name}"),
        &format!("rate={HZ}"),
        "channels=1",
    ]);
    wait_until(Duration::from_secs(5), &format!("sink {name}"), || {
        rig.pactl(&["list", "short", "sinks"]).lines().any(|l| l.split('\t').nth(1) == Some(name)).then_some(())
    })
    .unwrap();
    id.trim().to_string()
}

#[test]
fn audio_settings_test_tone_meter_mute_and_device_notice_in_the_real_webview() {
    let started = Instant::now();
    let programs: Vec<&str> =
        PROGRAMS.iter().chain(pipewire::PROGRAMS).chain(kamailio::PROGRAMS).chain(baresip::PROGRAMS).copied().collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "adding the account") {
        return;
    }
    let audio = PipeWire::start();
    for sink in ["spk", "quiet", "micfeed"] {
        audio.null_sink(sink, HZ);
    }
    let headset = load_sink(&audio, "headset");
    audio.set_default_sink("spk");
    audio.set_default_source("quiet.monitor");
    let tmp = tempfile::tempdir().unwrap();
    let mic_wav = tmp.path().join("mic700.wav");
    write_tone_wav(&mic_wav, MIC_HZ, HZ, 60.0, -12.0, 0.0);
    let _mic = audio.play("micfeed", &mic_wav);

    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), PASSWORD.into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let kport = k.port;
    let phone_wav = tmp.path().join("phone1020.wav");
    write_tone_wav(&phone_wav, 1020.0, 8000, 40.0, -12.0, 0.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: kport,
        codec: "pcmu",
        auto_answer: true,
        play_wav: Some(phone_wav),
        record_dir: tmp.path().join("phone-rec"),
        ..BaresipConfig::default()
    });
    phone.wait_registered(Duration::from_secs(10));
    // Only what reaches PipeWire: the app keeps its own HOME and session bus.
    let pulse: Vec<(&str, String)> = audio
        .env()
        .into_iter()
        .filter(|(k, _)| matches!(*k, "XDG_RUNTIME_DIR" | "PULSE_SERVER" | "PULSE_COOKIE"))
        .collect();
    let needed: Vec<&str> =
        pipewire::PROGRAMS.iter().chain(kamailio::PROGRAMS).chain(baresip::PROGRAMS).copied().collect();
    let Some(desk) = Desk::start_with_env(TEST, &needed, &pulse, |db| {
        let args = format!("--host 127.0.0.1 --port {kport} --user 1001 --interval 60 --activate");
        add_account(db, &args.split_whitespace().collect::<Vec<_>>(), PASSWORD);
    }) else {
        return;
    };

    // The audio card lists every device by its own name; all on the system default at first.
    let s = desk.launch();
    s.wait_for("#audio-card #audio-output option[value='headset']", WAIT).unwrap();
    assert_eq!(s.text("#audio-card h2").unwrap(), en("audio.title"));
    for role in ["input", "output", "ring"] {
        assert_eq!(value(&s, &format!("#audio-{role}")), Value::String(String::new()), "{role} starts on the default");
    }
    assert!(s.find("#audio-input option[value='micfeed.monitor']").is_ok());
    let default_label = s.text("#audio-output option[value='']").unwrap();
    assert!(
        default_label.starts_with(&en("audio.system_default")) && default_label.contains("spk"),
        "{default_label:?}"
    );
    // The default microphone is silent: the meter stays low.
    std::thread::sleep(Duration::from_millis(600));
    let quiet = wait_meter(&s, "#mic-level", "the meter on the silent default", |p| p <= 10);
    println!("meter on the default microphone: {quiet}%");

    // Choosing the microphone where 700 Hz plays moves the meter (-12 dBFS is 80% of the bar).
    s.click("#audio-input option[value='micfeed.monitor']").unwrap();
    let loud = wait_meter(&s, "#mic-level", "the meter on the chosen microphone", |p| p >= 60);
    println!("meter on the chosen microphone: {loud}%");

    // Choosing the headset: the test tone plays there, not on the default output.
    s.click("#audio-output option[value='headset']").unwrap();
    wait_until(WAIT, "the output choice to be saved", || (value(&s, "#audio-output") == "headset").then_some(()))
        .unwrap();
    let (on_headset, on_spk) = (tmp.path().join("tone-headset.wav"), tmp.path().join("tone-spk.wav"));
    let mut rec_headset = audio.record("headset.monitor", 8000, &on_headset);
    let mut rec_spk = audio.record("spk.monitor", 8000, &on_spk);
    std::thread::sleep(Duration::from_millis(300));
    s.click("#audio-test-tone").unwrap();
    s.wait_text("#audio-test-tone", &en("audio.test_tone_playing"), WAIT).unwrap();
    save_screenshot(&s, "settings-audio.png");
    std::thread::sleep(Duration::from_millis(1500));
    rec_headset.stop();
    rec_spk.stop();
    let (samples, rate) = read_wav(&on_headset);
    let tone = analyse(&samples, rate);
    println!("test tone on the headset: {tone:?}");
    assert!((tone.dominant_hz - TEST_TONE_HZ).abs() <= 5.0 && tone.rms_dbfs > -18.0, "{tone:?}");
    assert!(
        (800..=1300).contains(&((tone.coverage * f64::from(tone.duration_ms)) as u32)),
        "about 1 s of tone: {tone:?}"
    );
    let (samples, rate) = read_wav(&on_spk);
    assert!(analyse(&samples, rate).coverage < 0.05, "the test tone leaked to the default output");
    s.wait_text("#audio-test-tone", &en("audio.test_tone"), WAIT).unwrap();

    // Still chosen after a restart.
    desk.close(s);
    let s = desk.launch();
    s.wait_for("#audio-card #audio-output option[value='headset']", WAIT).unwrap();
    wait_until(WAIT, "the saved choice", || {
        (value(&s, "#audio-input") == "micfeed.monitor" && value(&s, "#audio-output") == "headset").then_some(())
    })
    .unwrap();
    assert_eq!(value(&s, "#audio-ring"), Value::String(String::new()));
    wait_meter(&s, "#mic-level", "the meter after the restart", |p| p >= 60);

    // A call: the quality line fills in; mute silences what we send, unmute brings it back.
    s.click("#nav-phone").unwrap();
    s.wait_text("#header-reg-state", &en("reg.state.registered"), WAIT).unwrap();
    s.set("#dial-input", &format!("sip:2001@127.0.0.1:{kport}")).unwrap();
    s.click("#dial-call").unwrap();
    s.wait_text("#in-call #call-state", &en("call.state.active"), WAIT).unwrap();
    phone.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
    assert_eq!(attr(&s, "#call-mute", "aria-pressed").as_deref(), Some("false"));
    wait_meter(&s, "#level-tx", "what we send (the chosen microphone)", |p| p >= 60);
    s.click("#call-mute").unwrap();
    wait_until(WAIT, "the mute to show", || {
        (attr(&s, "#call-mute", "aria-pressed").as_deref() == Some("true")).then_some(())
    })
    .unwrap();
    assert_eq!(s.text("#call-mute").unwrap(), en("call.unmute"));
    wait_meter(&s, "#level-tx", "silence while muted", |p| p == 0);
    wait_until(Duration::from_secs(8), "the call's quality figures", || {
        attr(&s, "#call-quality", "data-jitter-ms").filter(|v| !v.is_empty())
    })
    .unwrap();
    let quality = s.text("#call-quality").unwrap();
    println!("quality line: {quality}");
    assert!(quality.contains("ms") && quality.contains('%'), "{quality:?}");
    save_screenshot(&s, "phone-in-call-muted.png");
    s.click("#call-mute").unwrap();
    wait_meter(&s, "#level-tx", "what we send after unmuting", |p| p >= 60);

    // Unplug the headset mid-call: a notice says so and the call goes on.
    audio.pactl(&["unload-module", &headset]);
    s.wait_for("#device-notice", WAIT).unwrap();
    let notice = s.text("#device-notice .notice-text").unwrap();
    println!("notice: {notice}");
    assert!(notice.contains("headset") && notice.contains("spk"), "{notice:?}");
    assert_eq!(attr(&s, "#device-notice", "data-reason").as_deref(), Some("lost"));
    save_screenshot(&s, "phone-device-notice.png");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(s.text("#in-call #call-state").unwrap(), en("call.state.active"));
    let after = tmp.path().join("after-unplug.wav");
    audio.record_for("spk.monitor", 8000, 1.5, &after);
    let (samples, rate) = read_wav(&after);
    let a = analyse(&samples, rate);
    assert!((a.dominant_hz - 1020.0).abs() <= 31.0 && a.coverage > 0.8, "the far end on the default output: {a:?}");
    s.click("#device-notice-close").unwrap();
    s.wait_gone("#device-notice", WAIT).unwrap();
    s.click("#call-hangup").unwrap();
    s.wait_for("#call-idle", WAIT).unwrap();
    phone.wait_event("CALL_CLOSED", Duration::from_secs(10));

    // The saved choice stays while the headset is away, shown as not connected.
    s.click("#nav-settings").unwrap();
    let missing = ui_text("en", "audio.not_connected", &[("name", "headset")]);
    wait_until(WAIT, "the missing headset to be marked", || {
        (s.text("#audio-output option[value='headset']").ok()? == missing).then_some(())
    })
    .unwrap();
    assert_eq!(value(&s, "#audio-output"), "headset");
    assert!(s.find_all("#audio-output option").unwrap().len() >= 2);
    assert!(!s.outer_html().unwrap().contains(PASSWORD), "the password appears in the DOM");
    desk.close(s);
    phone.stop();
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}
