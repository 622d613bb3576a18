//! The supervisor's AI handoff in the real app and webview (WebKitWebDriver on Xvfb), through a
//! real Kamailio, with baresip (2001) as the caller: the desk answers in the UI and presses
//! "Hand to AI"; the card says the AI talks and the desk listens with its microphone off, and the
//! live transcript shows the local agent's greeting; the caller then asks a flite-spoken question
//! and the transcript shows the caller's final line and the agent's reply (no interim line left
//! behind); "Take back" brings the normal call card back, the transcript still readable. Handed
//! over again, the caller asks for a person: the agent says "please hold" and gives the call back
//! by itself, and a notice says why (in English and Chinese). With a cloud provider that takes
//! the connection and never answers, "Handing to AI…" offers Cancel, which keeps the call.
//!
//! The caller starts silent; the test switches its audio source (baresip's `ausrc`) to a WAV of
//! the words when the agent has finished speaking, so the words never race the greeting.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`) and the `sipdesk` CLI (`cargo build -p sipdesk-core --bins`).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::require_programs;
use sipdesk_e2e::sipdesk::{add_account, run_with_stdin};
use sipdesk_e2e::webdriver::{cli_built, save_screenshot, ui_text, wait_until, Desk, Session, PROGRAMS, WAIT};

const TEST: &str = "ui_handoff";
const QUESTION: &str = "I have a question about my bill";
const ASK_PERSON: &str = "I want to talk to a human.";
/// How long the agent may take to hear, recognise and answer.
const AGENT_WAIT: Duration = Duration::from_secs(30);
/// One app at a time: each brings its own display, driver, Kamailio and phone.
static SERIAL: Mutex<()> = Mutex::new(());

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn zh(key: &str) -> String {
    ui_text("zh-CN", key, &[])
}

/// One line of the transcript panel.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    speaker: String,
    is_final: bool,
    text: String,
}

/// The transcript panel's lines, oldest first.
fn transcript(s: &Session) -> Vec<Line> {
    let v = s
        .execute(
            "return [...document.querySelectorAll('#transcript-lines .transcript-line')].map(l => \
             [l.dataset.speaker, l.dataset.final, l.querySelector('.transcript-text').textContent]);",
            &[],
        )
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| Line {
            speaker: l[0].as_str().unwrap_or_default().to_string(),
            is_final: l[1] == "true",
            text: l[2].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// Waits until the transcript has a final line of `speaker` after the first `skip` lines that
/// `matches`; returns it.
fn wait_line(s: &Session, skip: usize, speaker: &str, what: &str, matches: impl Fn(&str) -> bool) -> Line {
    wait_until(AGENT_WAIT, what, || {
        transcript(s).into_iter().skip(skip).find(|l| l.speaker == speaker && l.is_final && matches(&l.text))
    })
    .unwrap_or_else(|e| panic!("{e}; the transcript reads {:?}", transcript(s)))
}

/// The transcript's marks of where the call went (`to_ai`, `taken_back`, or a reason), oldest first.
fn marks(s: &Session) -> Vec<String> {
    let v = s
        .execute(
            "return [...document.querySelectorAll('#transcript-lines .transcript-mark')].map(m => m.dataset.mark);",
            &[],
        )
        .unwrap();
    v.as_array().unwrap().iter().map(|m| m.as_str().unwrap_or_default().to_string()).collect()
}

/// The level of what the desk sends (the AI's voice while it has the call), in dBFS.
fn tx_dbfs(s: &Session) -> Option<f64> {
    s.find("#level-tx").ok()?.attribute("data-dbfs").ok()??.parse().ok()
}

/// Waits until the agent has finished speaking: what the desk sends was loud, then quiet for 1 s.
fn wait_agent_quiet(s: &Session) {
    let (mut loud, mut quiet_since) = (false, None::<Instant>);
    wait_until(AGENT_WAIT, "the agent to finish speaking", || {
        let db = tx_dbfs(s).unwrap_or(-120.0);
        if db > -45.0 {
            (loud, quiet_since) = (true, None);
        } else if loud && db < -60.0 {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(1) {
                return Some(());
            }
        }
        None
    })
    .unwrap();
}

/// The caller starts saying what `wav` holds.
fn say(phone: &mut Baresip, wav: &Path) {
    phone.command("ausrc", Some(&format!("aufile,{}", wav.display()))).expect("baresip ausrc");
}

/// Takes a screenshot for the docs, without the notice that this machine has no speaker.
fn screenshot(s: &Session, name: &str) {
    if !s.find_all("#device-notice").unwrap().is_empty() {
        s.click("#device-notice-close").unwrap();
        s.wait_gone("#device-notice", WAIT).unwrap();
    }
    save_screenshot(s, name);
}

/// The desk has the call: the card's own controls and Hand to AI, no AI state.
fn assert_desk_has_call(s: &Session, lang: fn(&str) -> String) {
    s.wait_text("#call-handoff", &lang("handoff.hand_to_ai"), WAIT)
        .unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")));
    s.wait_gone("#call-ai-note", WAIT).unwrap();
    for gone in ["#call-takeback", "#call-ai-chip"] {
        assert!(s.find_all(gone).unwrap().is_empty(), "{gone} shows while the desk has the call");
    }
    for tool in ["#call-mute", "#call-hold", "#call-keypad-toggle", "#call-transfer-toggle"] {
        assert!(!s.find_all(tool).unwrap().is_empty(), "{tool} is missing while the desk has the call");
    }
    assert_eq!(s.text("#in-call #call-state").unwrap(), lang("call.state.active"));
}

/// The AI has the call: Take back, the AI state and the transcript panel; the desk's own controls away.
fn assert_ai_has_call(s: &Session) {
    s.wait_for("#call-ai-note", WAIT).unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")));
    assert_eq!(s.text("#call-takeback").unwrap(), en("handoff.take_back"));
    assert_eq!(s.text("#call-ai-chip").unwrap(), en("handoff.chip"));
    assert_eq!(s.text("#call-ai-title").unwrap(), en("handoff.ai_title"));
    let note = s.text("#call-ai-note").unwrap();
    assert!(note.contains(&en("handoff.mic_off")), "{note:?}");
    assert_eq!(s.text("#transcript-lang").unwrap(), en("handoff.english_only"));
    assert!(s.find("#call-transcript").unwrap().displayed().unwrap(), "the transcript is not shown");
    for tool in ["#call-handoff", "#call-mute", "#call-hold", "#call-keypad-toggle", "#call-transfer-toggle"] {
        assert!(s.find_all(tool).unwrap().is_empty(), "{tool} shows while the AI has the call");
    }
    assert!(s.find_all("#call-error").unwrap().is_empty(), "an error shows: {:?}", s.text("#call-error"));
}

#[test]
fn hand_a_call_to_the_ai_watch_the_transcript_and_take_it_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
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
    let question = tmp.path().join("question.wav");
    let ask_person = tmp.path().join("ask-person.wav");
    // baresip hangs up when a WAV ends: each lasts longer than the rest of the test.
    sipdesk_e2e::audio::write_spoken_wav(&question, QUESTION, 0.3, 240.0);
    sipdesk_e2e::audio::write_spoken_wav(&ask_person, ASK_PERSON, 0.3, 240.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: kport,
        codec: "pcmu",
        silence_seconds: 300,
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

    // The caller rings; the desk answers in the popup.
    phone.dial(&format!("sip:1001@127.0.0.1:{kport}"));
    s.wait_for("#incoming-popup", WAIT).unwrap();
    s.click("#incoming-answer").unwrap();
    s.wait_gone("#incoming-popup", WAIT).unwrap();
    phone.wait_event("CALL_ESTABLISHED", WAIT);
    assert_desk_has_call(&s, en);
    assert!(s.find_all("#call-transcript").unwrap().is_empty(), "a transcript shows before any handoff");
    let hint = s.with("#call-handoff", |e| e.attribute("title")).unwrap().unwrap_or_default();
    assert!(
        hint.contains(&en("handoff.english_only")),
        "the button does not say the assistant is English-only: {hint:?}"
    );

    // (a) Hand to AI: the AI state, and the greeting in the transcript.
    s.click("#call-handoff").unwrap();
    assert_ai_has_call(&s);
    let greeting = wait_line(&s, 0, "ai", "the greeting", |t| t.contains("automated assistant"));
    println!("handed to the AI after {:.1} s; it says {:?}", started.elapsed().as_secs_f32(), greeting.text);
    wait_agent_quiet(&s);

    // (b) The caller asks; its final line and the agent's reply show, no interim line is left.
    say(&mut phone, &question);
    let asked = wait_line(&s, 1, "caller", "the caller's question", |_| true);
    assert_eq!(asked.text, "i have a question about my bill");
    wait_line(&s, 1, "ai", "the agent's reply", |t| t.contains("I can help with your bill"));
    let lines = transcript(&s);
    println!("transcript: {lines:#?}");
    assert!(lines.iter().all(|l| l.is_final), "an interim line is left: {lines:?}");
    assert_eq!(lines.iter().filter(|l| l.speaker == "caller").count(), 1, "{lines:?}");
    let order: Vec<&str> = lines.iter().map(|l| l.speaker.as_str()).collect();
    assert_eq!(&order[..3], ["ai", "caller", "ai"], "{lines:?}");
    let who = s.text("#transcript-lines .speaker-caller .transcript-who").unwrap();
    assert_eq!(who.to_lowercase(), en("handoff.transcript.caller").to_lowercase());
    // The latest line is scrolled into view.
    let follows = s
        .execute(
            "const l = document.querySelector('#transcript-lines'); return l.scrollHeight - l.scrollTop - l.clientHeight < 24;",
            &[],
        )
        .unwrap();
    assert_eq!(follows, Value::Bool(true), "the transcript does not follow its latest line");
    assert_ai_has_call(&s);
    screenshot(&s, "phone-ai-handoff.png");
    println!("transcript done after {:.1} s", started.elapsed().as_secs_f32());

    // (c) Take back: the normal call card, the transcript still there to read, no notice.
    s.click("#call-takeback").unwrap();
    assert_desk_has_call(&s, en);
    assert!(s.find_all("#handoff-notice").unwrap().is_empty(), "a notice shows after taking back");
    assert_eq!(transcript(&s), lines, "the transcript changed when the call was taken back");
    assert!(s.find("#call-transcript").unwrap().displayed().unwrap(), "the transcript went with the AI");
    assert_eq!(marks(&s), ["taken_back"]);
    assert_eq!(s.text(".transcript-mark").unwrap(), en("handoff.mark.taken_back"));

    // (d) Handed over again, the caller asks for a person: the call comes back by itself and a
    // notice says why.
    let before = transcript(&s).len();
    s.click("#call-handoff").unwrap();
    assert_ai_has_call(&s);
    wait_line(&s, before, "ai", "the second greeting", |t| t.contains("automated assistant"));
    wait_agent_quiet(&s);
    say(&mut phone, &ask_person);
    let asked = wait_line(&s, before, "caller", "the caller asking for a person", |_| true);
    assert_eq!(asked.text, "i want to talk to a human");
    s.wait_for("#handoff-notice", AGENT_WAIT)
        .unwrap_or_else(|e| panic!("{e}; the transcript reads {:?}", transcript(&s)));
    let reason = s.with("#handoff-notice", |e| e.attribute("data-reason")).unwrap();
    assert_eq!(reason.as_deref(), Some("ai_requested_human"));
    assert_eq!(s.text("#handoff-notice-title").unwrap(), en("handoff.back.title"));
    assert_eq!(s.text("#handoff-notice-reason").unwrap(), en("handoff.reason.ai_requested_human"));
    assert_desk_has_call(&s, en);
    wait_line(&s, before, "ai", "the agent's please hold", |t| t.contains("Please hold"));
    assert_eq!(marks(&s), ["taken_back", "to_ai", "ai_requested_human"]);
    let why = en("handoff.reason.ai_requested_human");
    assert_eq!(
        s.text(".transcript-mark[data-mark='ai_requested_human']").unwrap(),
        ui_text("en", "handoff.mark.back", &[("reason", &why)])
    );
    screenshot(&s, "phone-ai-returned.png");

    // (e) The same notice and controls in Chinese.
    s.click("#nav-settings").unwrap();
    s.click("#lang-select option[value='zh-CN']").unwrap();
    s.wait_text("#settings h1", &zh("settings.title"), WAIT).unwrap();
    s.click("#nav-phone").unwrap();
    s.wait_text("#handoff-notice-reason", &zh("handoff.reason.ai_requested_human"), WAIT).unwrap();
    assert_eq!(s.text("#handoff-notice-title").unwrap(), zh("handoff.back.title"));
    assert_desk_has_call(&s, zh);
    assert_eq!(s.text("#transcript-title").unwrap(), zh("handoff.transcript.title"));
    assert_eq!(s.text("#transcript-lang").unwrap(), zh("handoff.english_only"));
    screenshot(&s, "phone-ai-returned-zh.png");
    s.click("#handoff-notice-close").unwrap();
    s.wait_gone("#handoff-notice", WAIT).unwrap();

    s.click("#call-hangup").unwrap();
    s.wait_for("#call-idle", WAIT).unwrap();
    s.wait_gone("#call-transcript", WAIT).unwrap();
    phone.wait_event("CALL_CLOSED", WAIT);
    desk.close(s);
    phone.stop();
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}

#[test]
fn cancel_a_handoff_while_the_provider_does_not_answer() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let programs: Vec<&str> = PROGRAMS.iter().chain(kamailio::PROGRAMS).chain(baresip::PROGRAMS).copied().collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "configuring the desk") {
        return;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let kport = k.port;
    let tmp = tempfile::tempdir().unwrap();
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: kport,
        codec: "pcmu",
        silence_seconds: 300,
        record_dir: tmp.path().join("phone-rec"),
        ..BaresipConfig::default()
    });
    phone.wait_registered(Duration::from_secs(10));
    // OpenAI Realtime at a loopback port that takes the connection and never answers its upgrade.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/v1/realtime", silent.local_addr().unwrap());
    let needed: Vec<&str> = kamailio::PROGRAMS.iter().chain(baresip::PROGRAMS).copied().collect();
    let Some(desk) = Desk::start(TEST, &needed, |db| {
        let args = format!("--host 127.0.0.1 --port {kport} --user 1001 --interval 60 --activate");
        let args: Vec<&str> = args.split_whitespace().collect();
        add_account(db, &args, "pw-1001");
        for (args, stdin) in [
            (
                vec!["ai", "edit", "openai", "--endpoint", &url, "--enable", "--api-key-stdin"],
                "test-key-not-a-secret\n",
            ),
            (vec!["ai", "default", "openai"], ""),
        ] {
            let out = run_with_stdin(db, &args, stdin);
            assert!(out.status.success(), "sipdesk {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }) else {
        return;
    };
    let s = desk.launch_phone();
    s.wait_text("#header-reg-state", &en("reg.state.registered"), WAIT).unwrap();
    phone.dial(&format!("sip:1001@127.0.0.1:{kport}"));
    s.wait_for("#incoming-popup", WAIT).unwrap();
    s.click("#incoming-answer").unwrap();
    s.wait_gone("#incoming-popup", WAIT).unwrap();
    phone.wait_event("CALL_ESTABLISHED", WAIT);
    assert_desk_has_call(&s, en);
    assert!(s.find_all("#call-handoff-cancel").unwrap().is_empty(), "Cancel shows before any handoff");

    s.click("#call-handoff").unwrap();
    silent.set_nonblocking(false).unwrap();
    let (held, _) = silent.accept().expect("the desk connects to the provider");
    s.wait_for("#call-handoff-cancel", WAIT).unwrap();
    assert_eq!(s.text("#call-handoff").unwrap(), en("handoff.handing"));
    assert!(!s.find("#call-handoff").unwrap().enabled().unwrap(), "Hand to AI is pressable while handing");
    assert_eq!(s.text("#call-handoff-cancel").unwrap(), en("handoff.cancel"));
    screenshot(&s, "phone-ai-connecting.png");
    // Still waiting a second later: the provider has not answered.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(s.text("#call-handoff").unwrap(), en("handoff.handing"));

    let cancelled = Instant::now();
    s.click("#call-handoff-cancel").unwrap();
    s.wait_gone("#call-handoff-cancel", WAIT).unwrap();
    // The core's own word (its `handoff` event), not the UI giving up after its 20 s wait.
    assert!(cancelled.elapsed() < Duration::from_secs(5), "Cancel took {:?}", cancelled.elapsed());
    assert_desk_has_call(&s, en);
    assert!(s.find("#call-handoff").unwrap().enabled().unwrap(), "Hand to AI stays disabled after Cancel");
    for gone in ["#handoff-notice", "#call-error"] {
        assert!(s.find_all(gone).unwrap().is_empty(), "{gone} shows after Cancel: {:?}", s.text(gone));
    }
    drop(held);
    s.click("#call-hangup").unwrap();
    s.wait_for("#call-idle", WAIT).unwrap();
    phone.wait_event("CALL_CLOSED", WAIT);
    desk.close(s);
    phone.stop();
}
