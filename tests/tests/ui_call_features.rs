//! The in-call controls in the real app and webview (WebKitWebDriver on Xvfb), through a real
//! Kamailio, with baresip as the far phone (user 2001, auto-answering, playing a 1020 Hz tone):
//! Hold puts the phone on hold (the card says so, the timer runs on, the phone gets the
//! re-INVITE) and Resume takes it back; the card's keypad and the keyboard send DTMF that the
//! phone receives, and the digits sent and received show on the card; the phone holds the desk
//! (the card says "held by the other party", the timer runs on) and resumes. What the phone hears
//! on hold is checked on the wire by call_features: baresip records nothing it receives while held.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`) and the `sipdesk` CLI (`cargo build -p sipdesk-core --bins`).

use std::time::{Duration, Instant};

use sipdesk_e2e::audio::write_tone_wav;
use sipdesk_e2e::baresip::{self, codec_rate, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::require_programs;
use sipdesk_e2e::sipdesk::add_account;
use sipdesk_e2e::webdriver::{cli_built, save_screenshot, ui_text, wait_until, Desk, Session, PROGRAMS, WAIT};

const TEST: &str = "ui_call_features";
const CODEC: &str = "pcmu";
const PHONE_HZ: f64 = 1020.0;
/// baresip hangs up when its WAV ends: longer than this test's call.
const PHONE_WAV_S: f64 = 90.0;
/// How long the far phone may take to see what the desk did.
const PHONE_WAIT: Duration = Duration::from_secs(10);

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn zh(key: &str) -> String {
    ui_text("zh-CN", key, &[])
}

fn attr(s: &Session, css: &str, name: &str) -> Option<String> {
    s.with(css, |e| e.attribute(name)).unwrap()
}

/// The call timer in seconds.
fn timer(s: &Session) -> u64 {
    let clock = s.text("#call-timer").unwrap();
    clock
        .split(':')
        .map(|p| p.parse::<u64>().unwrap_or_else(|_| panic!("not a clock: {clock:?}")))
        .fold(0, |acc, n| acc * 60 + n)
}

/// Waits for the state chip to read `state`.
fn wait_state(s: &Session, state: &str) {
    s.wait_text("#in-call #call-state", state, WAIT)
        .unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")));
}

/// How many `kind` events the phone has sent so far.
fn count(phone: &Baresip, kind: &str) -> usize {
    phone.events().iter().filter(|e| e["type"] == kind).count()
}

/// Waits until the phone got a new SDP from the desk (a hold or resume re-INVITE).
fn wait_new_sdp(phone: &Baresip, before: usize, what: &str) {
    wait_until(PHONE_WAIT, what, || (count(phone, "CALL_REMOTE_SDP") > before).then_some(()))
        .unwrap_or_else(|e| panic!("{e}; the phone saw {:?}", phone.events()));
}

/// The next `n` digits the phone received as DTMF.
fn phone_digits(phone: &mut Baresip, n: usize) -> String {
    (0..n)
        .map(|_| phone.wait_event("CALL_DTMF_START", PHONE_WAIT)["param"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Takes a screenshot for the docs, without the notice that this machine has no speaker.
fn screenshot(s: &Session, name: &str) {
    if !s.find_all("#device-notice").unwrap().is_empty() {
        s.click("#device-notice-close").unwrap();
        s.wait_gone("#device-notice", WAIT).unwrap();
    }
    save_screenshot(s, name);
}

/// The digits the card shows for one direction (`out` or `in`).
fn card_digits(s: &Session, dir: &str, want: &str) {
    s.wait_text(&format!("#call-dtmf-{dir} .dtmf-digits"), want, WAIT)
        .unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")));
}

#[test]
fn hold_resume_and_dtmf_from_the_call_card() {
    let started = Instant::now();
    let programs: Vec<&str> = PROGRAMS.iter().chain(kamailio::PROGRAMS).chain(baresip::PROGRAMS).copied().collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "adding the account") {
        return;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let kport = k.port;
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("phone-tone.wav");
    write_tone_wav(&wav, PHONE_HZ, codec_rate(CODEC), PHONE_WAV_S, -12.0, 0.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: kport,
        codec: CODEC,
        auto_answer: true,
        play_wav: Some(wav),
        record_dir: tmp.path().join("phone-rec"),
        ..BaresipConfig::default()
    });
    phone.wait_registered(Duration::from_secs(10));
    let needed: Vec<&str> = kamailio::PROGRAMS.iter().chain(baresip::PROGRAMS).copied().collect();
    let Some(desk) = Desk::start(TEST, &needed, |db| {
        let args = format!("--host 127.0.0.1 --port {kport} --user 1001 --interval 60 --activate");
        let args: Vec<&str> = args.split_whitespace().collect();
        add_account(db, &args, "pw-1001");
    }) else {
        return;
    };
    let s = desk.launch_phone();
    s.wait_text("#header-reg-state", &en("reg.state.registered"), WAIT).unwrap();
    s.set("#dial-input", &format!("sip:2001@127.0.0.1:{kport}")).unwrap();
    s.click("#dial-call").unwrap();
    wait_state(&s, &en("call.state.active"));
    phone.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    // The controls of a connected call; the keypad starts closed, with no digits line.
    assert_eq!(s.text("#call-hold").unwrap(), en("call.hold"));
    assert_eq!(attr(&s, "#call-hold", "aria-pressed").as_deref(), Some("false"));
    assert_eq!(s.text("#call-keypad-toggle").unwrap(), en("call.keypad"));
    assert!(s.find_all("#call-keypad").unwrap().is_empty(), "the keypad is open before it was asked for");
    assert!(!s.find("#call-dtmf").unwrap().displayed().unwrap(), "an empty digits line shows");
    std::thread::sleep(Duration::from_millis(1500));

    // (a) Hold: the card says so, the timer runs on, the phone gets the re-INVITE.
    let sdp = count(&phone, "CALL_REMOTE_SDP");
    let before = timer(&s);
    s.click("#call-hold").unwrap();
    wait_state(&s, &en("call.state.held"));
    wait_new_sdp(&phone, sdp, "the phone to get the hold re-INVITE");
    assert_eq!(s.text("#call-hold").unwrap(), en("call.resume"));
    assert_eq!(attr(&s, "#call-hold", "aria-pressed").as_deref(), Some("true"));
    assert_eq!(s.text("#call-hold-note").unwrap(), en("call.held_note"));
    assert!(s.find_all("#call-error").unwrap().is_empty(), "an error shows: {:?}", s.text("#call-error"));
    std::thread::sleep(Duration::from_millis(2200));
    let during = timer(&s);
    assert!(during >= before + 2, "the timer stopped on hold: {before} s, then {during} s");
    screenshot(&s, "phone-in-call-held.png");

    // (b) Resume: connected again.
    let sdp = count(&phone, "CALL_REMOTE_SDP");
    s.click("#call-hold").unwrap();
    wait_state(&s, &en("call.state.active"));
    wait_new_sdp(&phone, sdp, "the phone to get the resume re-INVITE");
    assert_eq!(s.text("#call-hold").unwrap(), en("call.hold"));
    s.wait_gone("#call-hold-note", WAIT).unwrap();
    println!("hold and resume done after {:.1} s", started.elapsed().as_secs_f32());

    // (c) The keypad: its keys reach the phone as DTMF, and the card shows them.
    s.click("#call-keypad-toggle").unwrap();
    s.wait_for("#call-keypad", WAIT).unwrap();
    assert_eq!(attr(&s, "#call-keypad-toggle", "aria-pressed").as_deref(), Some("true"));
    assert!(s.find(".dtmf-hint").unwrap().displayed().unwrap(), "no hint on an open keypad");
    for key in ["one", "nine", "hash"] {
        s.click(&format!("#dtmf-key-{key}")).unwrap();
    }
    assert_eq!(phone_digits(&mut phone, 3), "19#", "the phone heard the keypad");
    card_digits(&s, "out", "19#");
    // Digits typed on the keyboard while the focus is in the card.
    s.with("#in-call", |e| e.send_keys("*0")).unwrap();
    assert_eq!(phone_digits(&mut phone, 2), "*0", "the phone heard the keyboard");
    card_digits(&s, "out", "19#*0");
    // The phone's digits show as received.
    for d in ["5", "2"] {
        phone.command("sndcode", Some(d)).expect("baresip sndcode");
        std::thread::sleep(Duration::from_millis(400));
    }
    card_digits(&s, "in", "52");
    assert!(!s.find(".dtmf-hint").unwrap().displayed().unwrap(), "the hint stays beside the digits");
    assert!(s.find_all("#call-error").unwrap().is_empty(), "an error shows: {:?}", s.text("#call-error"));
    screenshot(&s, "phone-in-call-keypad.png");
    // The keypad closes; the digits fade by themselves.
    s.click("#call-keypad-toggle").unwrap();
    s.wait_gone("#call-keypad", WAIT).unwrap();
    wait_until(WAIT, "the digits to fade", || (!s.find("#call-dtmf").ok()?.displayed().ok()?).then_some(()))
        .unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")));
    println!("DTMF done after {:.1} s", started.elapsed().as_secs_f32());

    // (d) The phone holds the desk: the card says who holds the call; the timer runs on.
    let before = timer(&s);
    phone.command("hold", None).expect("baresip hold");
    wait_state(&s, &en("call.state.held_remote"));
    let note = s.text("#call-held-remote").unwrap();
    assert!(note.contains(&en("call.held_remote_title")), "{note:?}");
    // Our own hold stays available (both sides may hold).
    assert_eq!(s.text("#call-hold").unwrap(), en("call.hold"));
    std::thread::sleep(Duration::from_millis(2200));
    let during = timer(&s);
    assert!(during >= before + 2, "the timer stopped while held: {before} s, then {during} s");
    screenshot(&s, "phone-in-call-held-remote.png");
    phone.command("resume", None).expect("baresip resume");
    wait_state(&s, &en("call.state.active"));
    s.wait_gone("#call-held-remote", WAIT).unwrap();

    // (e) The same in Chinese: we hold, then the phone holds us too and lets go.
    s.click("#nav-settings").unwrap();
    s.click("#lang-select option[value='zh-CN']").unwrap();
    s.wait_text("#settings h1", &zh("settings.title"), WAIT).unwrap();
    s.click("#nav-phone").unwrap();
    wait_state(&s, &zh("call.state.active"));
    assert_eq!(s.text("#call-hold").unwrap(), zh("call.hold"));
    s.click("#call-hold").unwrap();
    wait_state(&s, &zh("call.state.held"));
    assert_eq!(s.text("#call-hold").unwrap(), zh("call.resume"));
    assert_eq!(s.text("#call-hold-note").unwrap(), zh("call.held_note"));
    s.click("#call-hold").unwrap();
    wait_state(&s, &zh("call.state.active"));
    phone.command("hold", None).expect("baresip hold");
    wait_state(&s, &zh("call.state.held_remote"));
    assert!(s.text("#call-held-remote").unwrap().contains(&zh("call.held_remote_title")));
    s.click("#call-keypad-toggle").unwrap();
    s.wait_for("#call-keypad", WAIT).unwrap();
    assert_eq!(s.text("#call-dtmf .dtmf-hint").unwrap(), zh("call.dtmf.hint"));
    screenshot(&s, "phone-in-call-held-zh.png");
    phone.command("resume", None).expect("baresip resume");
    wait_state(&s, &zh("call.state.active"));

    s.click("#call-hangup").unwrap();
    s.wait_for("#call-idle", WAIT).unwrap();
    phone.wait_event("CALL_CLOSED", PHONE_WAIT);
    desk.close(s);
    phone.stop();
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}
