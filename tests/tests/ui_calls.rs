//! Calls in the real app and webview (WebKitWebDriver on Xvfb) through a real Kamailio, with
//! baresip as the far phone (user 2001, auto-answering, playing a 1020 Hz tone at -12 dBFS): the
//! dialer calls it (in-call panel, running timer, the far end's tone on the level meter, hang up,
//! history row), it calls the desk (incoming popup, answer, remote hang-up, history row), call-back
//! from the history, the screen in Chinese, do-not-disturb (a call is refused; still on after a
//! restart) and a call cut by the app's death shown as interrupted.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`) and the `sipdesk` CLI (`cargo build -p sipdesk-core --bins`).

use std::time::{Duration, Instant};

use serde_json::Value;
use sipdesk_e2e::audio::write_tone_wav;
use sipdesk_e2e::baresip::{self, codec_rate, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::require_programs;
use sipdesk_e2e::sipdesk::add_account;
use sipdesk_e2e::webdriver::{cli_built, save_screenshot, ui_text, wait_until, Desk, Session, PROGRAMS, WAIT};

const TEST: &str = "ui_calls";
const PASSWORD: &str = "pw-1001";
const CODEC: &str = "pcmu";
/// The far phone's tone: the level meter must show it (-12 dBFS is 80% of the bar).
const PHONE_HZ: f64 = 1020.0;
const PHONE_DBFS: f64 = -12.0;
/// baresip hangs up when its WAV ends: long enough for every call of this test.
const PHONE_WAV_S: f64 = 40.0;
/// How long the far phone may take to notice a call's end.
const PHONE_WAIT: Duration = Duration::from_secs(10);

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn zh(key: &str) -> String {
    ui_text("zh-CN", key, &[])
}

/// `m:ss` or `h:mm:ss` as seconds.
fn seconds(clock: &str) -> u64 {
    clock
        .split(':')
        .map(|p| p.parse::<u64>().unwrap_or_else(|_| panic!("not a clock: {clock:?}")))
        .fold(0, |acc, n| acc * 60 + n)
}

fn attr(s: &Session, css: &str, name: &str) -> Option<String> {
    s.with(css, |e| e.attribute(name)).unwrap()
}

/// The text of the result cell of the history row of `call_id`, once it reads `text`.
fn wait_history(s: &Session, call_id: &str, text: &str) {
    let css = format!(".history-row[data-call-id='{call_id}'] .history-result");
    wait_until(WAIT, &format!("history row {call_id} to read {text:?}"), || {
        (s.find(&css).ok()?.text().ok()? == text).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the history reads {:?}", s.text("#history")));
}

fn assert_no_password_in_dom(s: &Session) {
    assert!(!s.outer_html().unwrap().contains(PASSWORD), "the password appears in the DOM");
}

/// Saves a screenshot for the docs without the notice that this machine has no speaker (it comes
/// with each call here; it sits under the incoming popup, so that one keeps it).
fn screenshot(s: &Session, name: &str) {
    if !s.find_all("#device-notice").unwrap().is_empty() {
        s.click("#device-notice-close").unwrap();
        s.wait_gone("#device-notice", WAIT).unwrap();
    }
    save_screenshot(s, name);
}

/// Waits for the call panel and returns its call id.
fn wait_in_call(s: &Session, state: &str) -> String {
    s.wait_text("#in-call #call-state", state, WAIT)
        .unwrap_or_else(|e| panic!("{e}; the page reads {:?}", s.text("#phone")));
    attr(s, "#in-call", "data-call-id").expect("the panel names its call")
}

/// Waits (up to 3 s) until the meter `css` shows more than `pct` percent, and returns what it showed.
fn wait_level_above(s: &Session, css: &str, pct: u32) -> u32 {
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(3), &format!("{css} above {pct}%"), || {
        let now: u32 = attr(s, css, "aria-valuenow")?.parse().ok()?;
        seen.push(now);
        (now > pct).then_some(now)
    })
    .unwrap_or_else(|e| panic!("{e}; it read {seen:?}"))
}

/// The incoming popup for baresip's call: its caller, in the current language's title.
fn check_popup(s: &Session, title: &str) {
    s.wait_for("#incoming-popup", WAIT).unwrap();
    let name = s.text("#incoming-name").unwrap();
    assert!(name.starts_with("sip:2001@127.0.0.1"), "caller {name:?}");
    // Shown in capitals by the style sheet.
    assert_eq!(s.text("#incoming-title").unwrap().to_lowercase(), title.to_lowercase());
    assert_no_password_in_dom(s);
}

#[test]
fn dial_answer_hang_up_history_and_dnd_in_the_real_webview() {
    let started = Instant::now();
    let programs: Vec<&str> = PROGRAMS.iter().chain(kamailio::PROGRAMS).chain(baresip::PROGRAMS).copied().collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "adding the account") {
        return;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), PASSWORD.into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let kport = k.port;
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("phone-tone.wav");
    write_tone_wav(&wav, PHONE_HZ, codec_rate(CODEC), PHONE_WAV_S, PHONE_DBFS, 0.0);
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
    let mut account = 0;
    let needed: Vec<&str> = kamailio::PROGRAMS.iter().chain(baresip::PROGRAMS).copied().collect();
    let Some(desk) = Desk::start(TEST, &needed, |db| {
        let args = format!("--host 127.0.0.1 --port {kport} --user 1001 --interval 60 --activate");
        let args: Vec<&str> = args.split_whitespace().collect();
        account = add_account(db, &args, PASSWORD);
    }) else {
        return;
    };
    // The account's domain has no port, so the far phone is dialled by its full URI.
    let target = format!("sip:2001@127.0.0.1:{kport}");
    let desk_uri = format!("sip:1001@127.0.0.1:{kport}");

    // The app opens on the Phone screen; the account registers and is the dialer's choice.
    let s = desk.launch_phone();
    s.wait_text("#header-reg-state", &en("reg.state.registered"), WAIT).unwrap();
    assert_eq!(s.with("#dial-account", |e| e.property("value")).unwrap(), Value::String(account.to_string()));
    assert!(s.find("#call-idle").is_ok(), "no idle card before any call");
    println!("registered after {:.1} s", started.elapsed().as_secs_f32());

    // The keypad types into the box; what the core refuses is said inline, in words.
    for key in ["one", "zero", "star", "hash"] {
        s.click(&format!("#key-{key}")).unwrap();
    }
    assert_eq!(s.with("#dial-input", |e| e.property("value")).unwrap(), Value::String("10*#".into()));
    s.set("#dial-input", "<script>").unwrap();
    s.click("#dial-call").unwrap();
    s.wait_text("#dial-error", &en("dial.error.invalid_argument"), WAIT).unwrap();

    // (a) Outgoing: baresip answers and plays its tone; the timer runs, the meter shows the
    // tone; we hang up.
    s.set("#dial-input", &target).unwrap();
    s.click("#dial-call").unwrap();
    let out_call = wait_in_call(&s, &en("call.state.active"));
    phone.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    assert!(s.find_all("#dial-error:not(.hidden)").unwrap().is_empty(), "a dial error is left on screen");
    assert_eq!(s.text("#call-remote-name").unwrap(), target);
    assert_eq!(s.text("#call-codec").unwrap(), "PCMU");
    assert_eq!(s.text("#call-line").unwrap(), "1001@127.0.0.1");
    assert_eq!(attr(&s, "#level-rx", "aria-label").as_deref(), Some(en("call.level.rx").as_str()));
    let first = seconds(&s.text("#call-timer").unwrap());
    let rx = wait_level_above(&s, "#level-rx", 50);
    println!("the meter shows the far end at {rx}%");
    std::thread::sleep(Duration::from_millis(1600));
    let second = seconds(&s.text("#call-timer").unwrap());
    assert!(second > first, "the call timer does not run: {first} s, then {second} s");
    // The history already lists the call, as in progress.
    wait_history(&s, &out_call, &en("history.live"));
    assert_no_password_in_dom(&s);
    wait_level_above(&s, "#level-rx", 50);
    screenshot(&s, "phone-in-call.png");

    s.click("#call-hangup").unwrap();
    s.wait_for("#call-idle", WAIT).unwrap();
    wait_history(&s, &out_call, &en("call.reason.local_hangup"));
    phone.wait_event("CALL_CLOSED", PHONE_WAIT);
    println!("outgoing call done after {:.1} s", started.elapsed().as_secs_f32());

    // (b) Incoming: baresip calls 1001; the popup shows the caller; we answer; it hangs up.
    phone.dial(&desk_uri);
    check_popup(&s, &en("incoming.title"));
    save_screenshot(&s, "phone-incoming.png");
    s.click("#incoming-answer").unwrap();
    s.wait_gone("#incoming-popup", WAIT).unwrap();
    let in_call = wait_in_call(&s, &en("call.state.active"));
    phone.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    assert!(s.text("#call-remote-name").unwrap().starts_with("sip:2001@127.0.0.1"));
    wait_level_above(&s, "#level-rx", 50);
    std::thread::sleep(Duration::from_millis(1200));
    phone.hangup();
    s.wait_for("#call-idle", WAIT).unwrap();
    wait_history(&s, &in_call, &en("call.reason.remote_hangup"));
    phone.wait_event("CALL_CLOSED", PHONE_WAIT);
    println!("incoming call done after {:.1} s", started.elapsed().as_secs_f32());

    // Both calls in the history: newest first, with their direction and call-back buttons.
    s.wait_count(".history-row", 2, WAIT).unwrap();
    let rows = s.find_all(".history-row").unwrap();
    assert_eq!(rows[0].attribute("data-call-id").unwrap().as_deref(), Some(in_call.as_str()));
    assert_eq!(rows[1].attribute("data-call-id").unwrap().as_deref(), Some(out_call.as_str()));
    assert_eq!(s.find_all(".history-row .history-callback").unwrap().len(), 2);
    assert!(s.find(".history-row.dir-in .icon-call-in").is_ok());
    assert!(s.find(".history-row.dir-out .icon-call-out").is_ok());
    assert_no_password_in_dom(&s);
    screenshot(&s, "phone-history.png");

    // Call back from the history: the outgoing row dials the far phone again.
    s.click(&format!(".history-row[data-call-id='{out_call}'] .history-callback")).unwrap();
    let again = wait_in_call(&s, &en("call.state.active"));
    assert_ne!(again, out_call);
    assert_eq!(s.text("#call-remote-name").unwrap(), target);
    phone.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    s.click("#call-hangup").unwrap();
    wait_history(&s, &again, &en("call.reason.local_hangup"));
    phone.wait_event("CALL_CLOSED", PHONE_WAIT);

    // The same screen in Chinese: an incoming call, answered and hung up by the far phone.
    s.click("#nav-settings").unwrap();
    s.click("#lang-select option[value='zh-CN']").unwrap();
    s.wait_text("#settings h1", &zh("settings.title"), WAIT).unwrap();
    s.click("#nav-phone").unwrap();
    phone.dial(&desk_uri);
    check_popup(&s, &zh("incoming.title"));
    assert_eq!(s.text("#incoming-answer").unwrap(), zh("incoming.answer"));
    save_screenshot(&s, "phone-incoming-zh.png");
    s.click("#incoming-answer").unwrap();
    let in_zh = wait_in_call(&s, &zh("call.state.active"));
    phone.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    std::thread::sleep(Duration::from_millis(1200));
    phone.hangup();
    wait_history(&s, &in_zh, &zh("call.reason.remote_hangup"));
    phone.wait_event("CALL_CLOSED", PHONE_WAIT);
    s.wait_for("#call-idle", WAIT).unwrap();
    wait_history(&s, &out_call, &zh("call.reason.local_hangup"));
    wait_history(&s, &in_call, &zh("call.reason.remote_hangup"));
    s.wait_count(".history-row", 4, WAIT).unwrap();
    assert_eq!(s.text("#nav-phone").unwrap(), zh("nav.phone"));
    assert_eq!(s.text("#history-card h2").unwrap(), zh("history.title"));
    assert_no_password_in_dom(&s);
    screenshot(&s, "phone-history-zh.png");

    // (c) Do-not-disturb: on, a call is refused without ringing and the history says why.
    assert_eq!(attr(&s, "#dnd-toggle", "aria-checked").as_deref(), Some("false"));
    s.click("#dnd-toggle").unwrap();
    wait_until(WAIT, "do-not-disturb to switch on", || {
        (attr(&s, "#dnd-toggle", "aria-checked").as_deref() == Some("true")).then_some(())
    })
    .unwrap();
    s.wait_for("#call-idle.dnd", WAIT).unwrap();
    phone.dial(&desk_uri);
    let closed = phone.wait_event("CALL_CLOSED", PHONE_WAIT);
    s.wait_count(".history-row", 5, WAIT).unwrap();
    let newest = attr(&s, ".history-row", "data-call-id").unwrap();
    wait_history(&s, &newest, &zh("call.reason.dnd"));
    assert!(s.find_all("#incoming-popup").unwrap().is_empty(), "a refused call rang");
    assert_eq!(closed["param"], "486 Busy Here", "{closed}");

    // A call still going when the app dies is "interrupted" in the history of the next run;
    // do-not-disturb is still on. On the way, the in-call panel in Chinese with the far end's
    // tone on the meter. (WebKitWebDriver kills the app, which also leaves its registration
    // behind in Kamailio, so no call comes in after this.)
    s.set("#dial-input", &target).unwrap();
    s.click("#dial-call").unwrap();
    let cut = wait_in_call(&s, &zh("call.state.active"));
    phone.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    assert_eq!(attr(&s, "#level-rx", "aria-label").as_deref(), Some(zh("call.level.rx").as_str()));
    wait_level_above(&s, "#level-rx", 50);
    std::thread::sleep(Duration::from_millis(1200));
    wait_level_above(&s, "#level-rx", 50);
    screenshot(&s, "phone-in-call-zh.png");
    desk.close(s);
    // The far phone is left alone in its call: end it.
    let _ = phone.command("hangup", None);
    phone.wait_event("CALL_CLOSED", PHONE_WAIT);
    let s = desk.launch_phone();
    wait_until(WAIT, "do-not-disturb to read on after the restart", || {
        (attr(&s, "#dnd-toggle", "aria-checked").as_deref() == Some("true")).then_some(())
    })
    .unwrap();
    assert_eq!(s.text("#dnd-toggle").unwrap(), zh("dnd.label"));
    wait_history(&s, &cut, &zh("history.interrupted"));
    s.wait_count(".history-row", 6, WAIT).unwrap();
    desk.close(s);
    phone.stop();
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}
