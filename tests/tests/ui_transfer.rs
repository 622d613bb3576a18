//! Transfer and call waiting in the real app and webview (WebKitWebDriver on Xvfb), through a
//! real Kamailio, with baresip phones A (2001, auto-answering) and B (2002, answered by the test):
//! (i) the call card's Transfer control: a target the core refuses shows its error in the box; a
//! transfer to a number that does not exist reports the failure and the call goes on; a transfer
//! to B shows B ringing, then B answers, the call ends, a note says where it went and the history
//! row reads "Transferred"; (ii) call waiting: A calls and is answered, B calls and waits (the
//! popup in the corner says so, a row under the card shows B waiting), B is answered from its row,
//! A goes on hold, and Swap flips them (and back); (iii) A asks the desk to call B (REFER,
//! `SIPDESK_REFER=ask`): the prompt says so; Decline refuses it (A is told 603, B is not called);
//! on a new call, Accept calls B and A's leg ends.
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

const TEST: &str = "ui_transfer";
const CODEC: &str = "pcmu";
/// baresip hangs up when its WAV ends: longer than any call of this test.
const PHONE_WAV_S: f64 = 120.0;
/// How long a phone may take to see what the desk did.
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

/// A baresip phone registered at Kamailio, playing a tone at `hz`.
fn phone(k: &Kamailio, dir: &std::path::Path, user: &str, hz: f64, auto_answer: bool) -> Baresip {
    let wav = dir.join(format!("{user}.wav"));
    write_tone_wav(&wav, hz, codec_rate(CODEC), PHONE_WAV_S, -12.0, 0.0);
    let mut p = Baresip::start(&BaresipConfig {
        user: user.into(),
        password: format!("pw-{user}"),
        registrar_port: k.port,
        codec: CODEC,
        auto_answer,
        play_wav: Some(wav),
        record_dir: dir.join(format!("{user}-rec")),
        ..BaresipConfig::default()
    });
    p.wait_registered(Duration::from_secs(10));
    p
}

/// Waits until the call card shows call `id` in `state` (the state chip's text).
fn wait_card(s: &Session, id: &str, state: &str) {
    let text = en(&format!("call.state.{state}"));
    wait_until(WAIT, &format!("the card to show {id} {state}"), || {
        let on_card = s.find(&format!("#in-call[data-call-id='{id}']")).ok()?;
        (on_card.attribute("class").ok()??.contains(&format!("state-{state}"))
            && s.find("#in-call #call-state").ok()?.text().ok()? == text)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the call area reads {:?}", s.text(".phone-right")));
}

/// Waits until the row of call `id` under the card is in `state`.
fn wait_row(s: &Session, id: &str, state: &str) {
    s.wait_for(&format!(".other-call[data-call-id='{id}'][data-state='{state}']"), WAIT)
        .unwrap_or_else(|e| panic!("{e}; the call area reads {:?}", s.text(".phone-right")));
}

/// Takes a screenshot for the docs, without the notice that this machine has no speaker.
fn screenshot(s: &Session, name: &str) {
    if !s.find_all("#device-notice").unwrap().is_empty() {
        s.click("#device-notice-close").unwrap();
        s.wait_gone("#device-notice", WAIT).unwrap();
    }
    save_screenshot(s, name);
}

/// The incoming popup (for a first call, over the screen), answered.
fn answer_popup(s: &Session) -> String {
    s.wait_for("#incoming-popup", WAIT).unwrap();
    assert_eq!(attr(s, "#incoming-popup", "data-waiting").as_deref(), Some("false"));
    // The title is set in capitals by its style.
    assert_eq!(s.text("#incoming-title").unwrap(), en("incoming.title").to_uppercase());
    s.click("#incoming-answer").unwrap();
    s.wait_gone("#incoming-popup", WAIT).unwrap();
    let id =
        wait_until(WAIT, "a call on the card", || s.find("#in-call").ok()?.attribute("data-call-id").ok()?).unwrap();
    wait_card(s, &id, "active");
    id
}

/// How many `kind` events the phone has sent so far.
fn count(phone: &Baresip, kind: &str) -> usize {
    phone.events().iter().filter(|e| e["type"] == kind).count()
}

/// Waits until every call the phone established has closed (failed attempts close too).
fn wait_all_closed(phone: &Baresip) {
    wait_until(PHONE_WAIT, "the phone's calls to close", || {
        (count(phone, "CALL_CLOSED") >= count(phone, "CALL_ESTABLISHED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the phone saw {:?}", phone.events()));
}

/// Hangs up every call from the card, one after the other, until the idle card shows.
fn hang_up_all(s: &Session) {
    wait_until(WAIT, "every call to end", || {
        if s.find_all("#call-idle").ok()?.len() == 1 {
            return Some(());
        }
        let _ = s.click("#call-hangup");
        std::thread::sleep(Duration::from_millis(500));
        None
    })
    .unwrap_or_else(|e| panic!("{e}; the call area reads {:?}", s.text(".phone-right")));
}

#[test]
fn transfer_call_waiting_and_transfer_requests_from_the_phone_screen() {
    let started = Instant::now();
    let programs: Vec<&str> = PROGRAMS.iter().chain(kamailio::PROGRAMS).chain(baresip::PROGRAMS).copied().collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "adding the account") {
        return;
    }
    let users = ["1001", "2001", "2002"];
    let k = Kamailio::start(&Config {
        users: users.iter().map(|u| (u.to_string(), format!("pw-{u}"))).collect(),
        max_expires: 60,
        ..Config::default()
    });
    let kport = k.port;
    let tmp = tempfile::tempdir().unwrap();
    let mut a = phone(&k, tmp.path(), "2001", 1020.0, true);
    let mut b = phone(&k, tmp.path(), "2002", 1400.0, false);
    let needed: Vec<&str> = kamailio::PROGRAMS.iter().chain(baresip::PROGRAMS).copied().collect();
    let Some(desk) = Desk::start_with_env(TEST, &needed, &[("SIPDESK_REFER", "ask".into())], |db| {
        let args = format!("--host 127.0.0.1 --port {kport} --user 1001 --interval 60 --activate");
        let args: Vec<&str> = args.split_whitespace().collect();
        add_account(db, &args, "pw-1001");
    }) else {
        return;
    };
    let uri = |user: &str| format!("sip:{user}@127.0.0.1:{kport}");
    let s = desk.launch_phone();
    s.wait_text("#header-reg-state", &en("reg.state.registered"), WAIT).unwrap();

    // (i) Transfer from the call card.
    s.set("#dial-input", &uri("2001")).unwrap();
    s.click("#dial-call").unwrap();
    let first =
        wait_until(WAIT, "the call on the card", || s.find("#in-call").ok()?.attribute("data-call-id").ok()?).unwrap();
    wait_card(&s, &first, "active");
    a.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    std::thread::sleep(Duration::from_millis(1500));
    let party = s.text("#call-remote-name").unwrap();
    assert!(s.find_all("#transfer-panel").unwrap().is_empty(), "the transfer box is open before it was asked for");
    s.click("#call-transfer-toggle").unwrap();
    s.wait_for("#transfer-target", WAIT).unwrap();
    assert_eq!(attr(&s, "#call-transfer-toggle", "aria-expanded").as_deref(), Some("true"));
    assert_eq!(s.text("#transfer-confirm").unwrap(), en("transfer.confirm"));
    s.set("#transfer-target", &uri("2002")).unwrap();
    screenshot(&s, "phone-transfer.png");
    // Cancel closes the box and sends nothing; it opens empty again.
    s.click("#transfer-cancel").unwrap();
    s.wait_gone("#transfer-panel", WAIT).unwrap();
    assert_eq!(attr(&s, "#call-transfer-toggle", "aria-expanded").as_deref(), Some("false"));
    s.click("#call-transfer-toggle").unwrap();
    assert_eq!(s.with("#transfer-target", |e| e.property("value")).unwrap().as_str(), Some(""));
    // A target the core refuses: the box says why and keeps it. Its digits are not sent as DTMF.
    s.set("#transfer-target", "sip:20 02").unwrap();
    s.click("#transfer-confirm").unwrap();
    s.wait_text("#transfer-error", &en("transfer.error.invalid_argument"), WAIT).unwrap();
    assert_eq!(
        s.with("#transfer-target", |e| e.property("value")).unwrap().as_str(),
        Some("sip:20 02"),
        "the box keeps what was typed"
    );
    assert!(s.find_all("#transfer-status").unwrap().is_empty(), "a refused transfer shows progress");
    assert!(a.events().iter().all(|e| e["type"] != "CALL_DTMF_START"), "typing in the box sent DTMF");
    // A number that does not exist: the far end reports the failure; the call goes on.
    s.set("#transfer-target", &uri("2999")).unwrap();
    s.click("#transfer-confirm").unwrap();
    s.wait_gone("#transfer-panel", WAIT).unwrap();
    let failed = wait_until(PHONE_WAIT, "the transfer to fail", || {
        (attr(&s, "#transfer-status", "data-status")? == "failed").then_some(())
    });
    failed.unwrap_or_else(|e| panic!("{e}; the card reads {:?}; A's log:\n{}", s.text("#in-call"), a.log()));
    let status = s.text("#transfer-status").unwrap();
    let reason = en("transfer.code.404");
    assert_eq!(
        status,
        ui_text("en", "transfer.status.failed", &[("target", &uri("2999")), ("reason", &reason)]),
        "the card says why"
    );
    wait_card(&s, &first, "active");
    println!("failed transfer seen after {:.1} s", started.elapsed().as_secs_f32());

    // Transfer to B: B rings (the card says so), answers, and the desk's call ends.
    s.click("#call-transfer-toggle").unwrap();
    s.set("#transfer-target", &uri("2002")).unwrap();
    s.with("#transfer-target", |e| e.send_keys("\u{E007}")).unwrap(); // Enter submits
    s.wait_gone("#transfer-panel", WAIT).unwrap();
    b.wait_event("CALL_INCOMING", PHONE_WAIT);
    let progress = wait_until(WAIT, "the transfer to show progress", || {
        let status = attr(&s, "#transfer-status", "data-status")?;
        matches!(status.as_str(), "trying" | "ringing").then_some(status)
    })
    .unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")));
    let want = ui_text("en", &format!("transfer.status.{progress}"), &[("target", &uri("2002"))]);
    assert_eq!(s.text("#transfer-status").unwrap(), want);
    println!("transfer progress shown: {progress}");
    screenshot(&s, "phone-transfer-progress.png");
    b.answer();
    b.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    s.wait_for("#transfer-done", WAIT)
        .unwrap_or_else(|e| panic!("{e}; the call area reads {:?}", s.text(".phone-right")));
    let note = s.text("#transfer-done .transfer-done-text").unwrap();
    assert_eq!(note, ui_text("en", "transfer.done_note", &[("party", &party), ("target", &uri("2002"))]));
    s.wait_for("#call-idle", WAIT).unwrap();
    let row = format!(".history-row[data-call-id='{first}']");
    s.wait_for(&format!("{row}[data-reason='transferred']"), WAIT).unwrap();
    assert_eq!(s.text(&format!("{row} .history-result")).unwrap(), en("call.reason.transferred"));
    screenshot(&s, "phone-transfer-done.png");
    s.click("#transfer-done-close").unwrap();
    s.wait_gone("#transfer-done", WAIT).unwrap();
    // A and B talk on without the desk; B ends it.
    b.hangup();
    wait_all_closed(&b);
    wait_all_closed(&a);
    println!("transfer done after {:.1} s", started.elapsed().as_secs_f32());

    // (ii) Call waiting: A calls and is answered; B calls and waits.
    a.dial(&uri("1001"));
    let a_id = answer_popup(&s);
    let a_party = s.text("#call-remote-name").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    b.dial(&uri("1001"));
    s.wait_for("#incoming-popup[data-waiting='true']", WAIT)
        .unwrap_or_else(|e| panic!("{e}; the screen reads {:?}", s.text("body")));
    assert_eq!(s.text("#incoming-title").unwrap(), en("incoming.waiting_title").to_uppercase());
    assert_eq!(
        s.text("#incoming-waiting-hint").unwrap(),
        ui_text("en", "incoming.waiting_hint", &[("party", &a_party)])
    );
    let b_id = attr(&s, "#incoming-popup", "data-call-id").unwrap();
    assert_ne!(a_id, b_id);
    // The card stays A's and usable (no overlay); B waits in a row under it.
    wait_card(&s, &a_id, "active");
    assert!(s.find_all(".incoming-overlay").unwrap().is_empty(), "a waiting call covers the screen");
    wait_row(&s, &b_id, "ringing");
    let b_row = format!(".other-call[data-call-id='{b_id}']");
    assert_eq!(s.text(&format!("{b_row} .other-state")).unwrap(), en("other.waiting"));
    assert_eq!(s.text(&format!("{b_row} .other-answer")).unwrap(), en("other.answer"));
    screenshot(&s, "phone-call-waiting.png");
    // Answered from its row: B is on the card, A on hold in the row.
    s.click(&format!("{b_row} .other-answer")).unwrap();
    s.wait_gone("#incoming-popup", WAIT).unwrap();
    wait_card(&s, &b_id, "active");
    wait_row(&s, &a_id, "held");
    let a_row = format!(".other-call[data-call-id='{a_id}']");
    assert_eq!(s.text(&format!("{a_row} .other-state")).unwrap(), en("call.state.held"));
    assert_eq!(s.text("#calls-swap").unwrap(), en("call.swap"));
    b.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    screenshot(&s, "phone-call-waiting-held.png");
    // Swap: A back on the card, B on hold.
    s.click("#calls-swap").unwrap();
    wait_card(&s, &a_id, "active");
    wait_row(&s, &b_id, "held");
    assert!(s.find_all("#call-error").unwrap().is_empty(), "an error shows: {:?}", s.text("#call-error"));
    // And back, in Chinese.
    s.click("#nav-settings").unwrap();
    s.click("#lang-select option[value='zh-CN']").unwrap();
    s.wait_text("#settings h1", &zh("settings.title"), WAIT).unwrap();
    s.click("#nav-phone").unwrap();
    s.wait_text(&format!("{b_row} .other-state"), &zh("call.state.held"), WAIT).unwrap();
    assert_eq!(s.text("#calls-swap").unwrap(), zh("call.swap"));
    assert_eq!(s.text("#call-transfer-toggle").unwrap(), zh("transfer.button"));
    s.click("#calls-swap").unwrap();
    wait_until(WAIT, "the swap back", || {
        (attr(&s, "#in-call", "data-call-id")? == b_id
            && s.text(&format!("{a_row} .other-state")).ok()? == zh("call.state.held"))
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the call area reads {:?}", s.text(".phone-right")));
    screenshot(&s, "phone-call-waiting-zh.png");
    s.click("#nav-settings").unwrap();
    s.click("#lang-select option[value='en']").unwrap();
    s.wait_text("#settings h1", &en("settings.title"), WAIT).unwrap();
    s.click("#nav-phone").unwrap();
    wait_card(&s, &b_id, "active");
    wait_row(&s, &a_id, "held");
    hang_up_all(&s);
    wait_all_closed(&a);
    wait_all_closed(&b);
    println!("call waiting done after {:.1} s", started.elapsed().as_secs_f32());

    // (iii) A asks the desk to call B: the prompt says so; Decline refuses it (baresip then
    // hangs up by itself: its menu ends a call whose transfer failed).
    a.dial(&uri("1001"));
    let a_id = answer_popup(&s);
    let a_party = s.text("#call-remote-name").unwrap();
    a.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let b_calls = count(&b, "CALL_INCOMING");
    a.command("transfer", Some("2002")).expect("baresip transfer");
    let prompt = format!(".refer-prompt[data-call-id='{a_id}']");
    s.wait_for(&prompt, WAIT).unwrap_or_else(|e| panic!("{e}; the screen reads {:?}", s.text("body")));
    assert_eq!(
        s.text(&format!("{prompt} .refer-text")).unwrap(),
        ui_text("en", "refer.text", &[("party", &a_party), ("target", &uri("2002"))])
    );
    assert_eq!(s.text(&format!("{prompt} .refer-accept")).unwrap(), en("refer.accept"));
    assert_eq!(s.text(&format!("{prompt} .refer-decline")).unwrap(), en("refer.decline"));
    // The card stays usable under the prompt.
    wait_card(&s, &a_id, "active");
    screenshot(&s, "phone-transfer-request.png");
    s.click(&format!("{prompt} .refer-decline")).unwrap();
    s.wait_gone(".refer-prompt", WAIT).unwrap();
    wait_until(PHONE_WAIT, "A to hear the 603", || a.log().contains("transfer failed: 603").then_some(()))
        .unwrap_or_else(|e| panic!("{e}; A's log:\n{}", a.log()));
    hang_up_all(&s);
    wait_all_closed(&a);
    assert_eq!(count(&b, "CALL_INCOMING"), b_calls, "B was called after a declined request");
    let row = format!(".history-row[data-call-id='{a_id}']");
    assert_ne!(attr(&s, &row, "data-reason").as_deref(), Some("transferred"));

    // Asked again on a new call, and accepted: the desk calls B; A then leaves.
    a.dial(&uri("1001"));
    let a_id = answer_popup(&s);
    a.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    std::thread::sleep(Duration::from_millis(500));
    a.command("transfer", Some("2002")).expect("baresip transfer");
    let prompt = format!(".refer-prompt[data-call-id='{a_id}']");
    s.wait_for(&prompt, WAIT).unwrap_or_else(|e| panic!("{e}; the screen reads {:?}", s.text("body")));
    s.click(&format!("{prompt} .refer-accept")).unwrap();
    s.wait_gone(".refer-prompt", WAIT).unwrap();
    b.wait_event("CALL_INCOMING", PHONE_WAIT);
    b.answer();
    b.wait_event("CALL_ESTABLISHED", PHONE_WAIT);
    // A's leg ends; the new call to B is the one on the card.
    s.wait_for(&format!(".history-row[data-call-id='{a_id}'][data-reason='remote_hangup']"), WAIT)
        .unwrap_or_else(|e| panic!("{e}; the call area reads {:?}", s.text(".phone-right")));
    let to_b = wait_until(WAIT, "the call to B on the card", || {
        let id = s.find("#in-call").ok()?.attribute("data-call-id").ok()??;
        (id != a_id).then_some(id)
    })
    .unwrap();
    wait_card(&s, &to_b, "active");
    assert_eq!(s.text("#call-remote-name").unwrap(), uri("2002"));
    assert!(s.find_all("#other-calls").unwrap().is_empty(), "a call is left beside B's");
    hang_up_all(&s);
    wait_all_closed(&b);
    println!("transfer requests done after {:.1} s", started.elapsed().as_secs_f32());

    desk.close(s);
    a.stop();
    b.stop();
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}
