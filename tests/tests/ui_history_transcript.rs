//! A call the AI assistant had, read back from the call history in the real app and webview
//! (WebKitWebDriver on Xvfb), through a real Kamailio, with baresip (2001) as the caller.
//!
//! The desk's saved AI policy (`sipdesk ai policy --answer always`, set on the app's database
//! before it starts) has the AI answer the call by itself. The caller asks "I have a question about
//! my bill" (flite-spoken), keys a callback number, then asks for a person; the agent gives the call
//! back and the desk hangs up in the UI. The history row is marked as handled by the AI; opened
//! from the keyboard, its details show the agent's summary (the reason for calling, the number)
//! and the saved transcript, the caller's and the assistant's lines with their times, the same as
//! `sipdesk history --json` reads from the database. Tab stays in the dialog, Escape closes it and
//! the focus goes back to the row. A second call, answered by the desk with the policy back to
//! `never`, is not marked and its details say the assistant had no part in it. The details again
//! in Chinese.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`) and the `sipdesk` CLI (`cargo build -p sipdesk-core --bins`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::require_programs;
use sipdesk_e2e::sipdesk::{add_account, command};
use sipdesk_e2e::webdriver::{cli_built, save_screenshot, ui_text, wait_until, Desk, Session, PROGRAMS, WAIT};

const TEST: &str = "ui_history_transcript";
const QUESTION: &str = "I have a question about my bill";
const ASK_PERSON: &str = "I want to talk to a human.";
const NUMBER: &str = "5551234";
/// How long the agent may take to hear, recognise and answer.
const AGENT_WAIT: Duration = Duration::from_secs(30);
/// WebDriver key codes.
const TAB: &str = "\u{E004}";
const SHIFT: &str = "\u{E008}";
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn zh(key: &str) -> String {
    ui_text("zh-CN", key, &[])
}

/// The live transcript panel's final lines of `speaker`, oldest first.
fn live_lines(s: &Session, speaker: &str) -> Vec<String> {
    let v = s
        .execute(
            "return [...document.querySelectorAll('#transcript-lines .transcript-line')]\
             .filter(l => l.dataset.speaker === arguments[0] && l.dataset.final === 'true')\
             .map(l => l.querySelector('.transcript-text').textContent);",
            &[Value::from(speaker)],
        )
        .unwrap();
    v.as_array().unwrap().iter().map(|t| t.as_str().unwrap_or_default().to_string()).collect()
}

/// Waits until the live transcript has a final line of `speaker` that `matches`, beyond the first `skip`.
fn wait_live(s: &Session, speaker: &str, skip: usize, what: &str, matches: impl Fn(&str) -> bool) -> String {
    wait_until(AGENT_WAIT, what, || live_lines(s, speaker).into_iter().skip(skip).find(|t| matches(t)))
        .unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")))
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
        s.execute("document.querySelector('#device-notice-close').click();", &[]).unwrap();
        s.wait_gone("#device-notice", WAIT).unwrap();
    }
    save_screenshot(s, name);
}

/// The id (or, without one, the classes) of the focused element and the call id of its history row.
fn focused(s: &Session) -> (String, Option<String>) {
    let v = s
        .execute(
            "const a = document.activeElement; \
             return [a ? (a.id || a.className) : '', a && a.closest('.history-row') ? a.closest('.history-row').dataset.callId : null];",
            &[],
        )
        .unwrap();
    (v[0].as_str().unwrap_or_default().to_string(), v[1].as_str().map(str::to_string))
}

/// Sends keys to the focused element (found by its id).
fn keys_to_focused(s: &Session, keys: &str) {
    let (id, _) = focused(s);
    s.with(&format!("#{id}"), |e| e.send_keys(keys)).unwrap();
}

/// One line of the details' transcript.
#[derive(Debug)]
struct Line {
    speaker: String,
    time: String,
    datetime: String,
    who: String,
    text: String,
}

fn detail_lines(s: &Session) -> Vec<Line> {
    let v = s
        .execute(
            "return [...document.querySelectorAll('#history-detail-lines .hd-line')].map(l => [l.dataset.speaker, \
             l.querySelector('time').textContent, l.querySelector('time').getAttribute('datetime'), \
             l.querySelector('.transcript-who').textContent, l.querySelector('.hd-text').textContent]);",
            &[],
        )
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let f = |i: usize| l[i].as_str().unwrap_or_default().to_string();
            Line { speaker: f(0), time: f(1), datetime: f(2), who: f(3), text: f(4) }
        })
        .collect()
}

/// The call as `sipdesk history --json` reads it from the app's database.
fn stored_call(desk: &Desk, call_id: &str) -> Value {
    let out = desk.cli(&["history", "--json"]).expect("the sipdesk CLI");
    let history: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    history
        .as_array()
        .and_then(|a| a.iter().find(|c| c["call_id"] == call_id))
        .cloned()
        .unwrap_or_else(|| panic!("{call_id} is not in the history: {history}"))
}

fn set_policy(db: &Path, answer: &str) {
    let out = command(db).args(["ai", "policy", "--answer", answer]).output().expect("run sipdesk");
    assert!(out.status.success(), "ai policy: {}", String::from_utf8_lossy(&out.stderr));
    let policy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(policy["answer"], answer, "{policy}");
}

#[test]
fn a_call_the_ai_had_shows_its_summary_and_transcript_in_the_history() {
    let started = Instant::now();
    let programs: Vec<&str> = PROGRAMS.iter().chain(kamailio::PROGRAMS).chain(baresip::PROGRAMS).copied().collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "adding the account and the AI policy") {
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
        // The supervisors' policy: the AI answers every call by itself.
        set_policy(db, "always");
    }) else {
        return;
    };
    let s = desk.launch_phone();
    s.wait_text("#header-reg-state", &en("reg.state.registered"), WAIT).unwrap();
    let desk_uri = format!("sip:1001@127.0.0.1:{kport}");

    // (a) The AI answers by policy: greeting, the caller's question, a callback number keyed in,
    // then a request for a person; the call comes back and the desk hangs up.
    phone.dial(&desk_uri);
    phone.wait_event("CALL_ESTABLISHED", WAIT);
    s.wait_for("#call-ai-note", WAIT).unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#phone")));
    let ai_call = s.with("#in-call", |e| e.attribute("data-call-id")).unwrap().expect("the card names its call");
    wait_live(&s, "ai", 0, "the greeting", |t| t.contains("automated assistant"));
    wait_agent_quiet(&s);
    say(&mut phone, &question);
    let asked = wait_live(&s, "caller", 0, "the caller's question", |_| true);
    assert_eq!(asked, "i have a question about my bill");
    wait_live(&s, "ai", 1, "the agent asking for a number", |t| t.contains("callback number"));
    wait_agent_quiet(&s);
    for d in NUMBER.chars().map(String::from).chain(["#".to_string()]) {
        phone.command("sndcode", Some(&d)).expect("sndcode");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_live(&s, "ai", 2, "the agent repeating the number", |t| t.contains("5 5 5 1 2 3 4"));
    wait_agent_quiet(&s);
    say(&mut phone, &ask_person);
    s.wait_for("#handoff-notice", AGENT_WAIT)
        .unwrap_or_else(|e| panic!("{e}; the card reads {:?}", s.text("#in-call")));
    println!("the AI gave the call back after {:.1} s", started.elapsed().as_secs_f32());
    s.click("#call-hangup").unwrap();
    s.wait_for("#call-idle", WAIT).unwrap();
    phone.wait_event("CALL_CLOSED", WAIT);

    // (b) The history row is marked as handled by the AI.
    let row = format!(".history-row[data-call-id='{ai_call}']");
    s.wait_for(&format!("{row}[data-ai='true'][data-reason='local_hangup']"), WAIT)
        .unwrap_or_else(|e| panic!("{e}; the history reads {:?}", s.text("#history")));
    assert_eq!(s.text(&format!("{row} .history-ai")).unwrap(), en("history.ai"));
    assert_eq!(
        s.with(&format!("{row} .history-ai"), |e| e.attribute("title")).unwrap().as_deref(),
        Some(en("history.ai_title").as_str())
    );
    // From the DOM: on screen a long name is cut short with an ellipsis.
    let party = s
        .execute(
            "return document.querySelector(arguments[0]).textContent;",
            &[Value::from(format!("{row} .history-name"))],
        )
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(party.starts_with("sip:2001@127.0.0.1"), "{party:?}");
    let label = s.with(&format!("{row} .history-open"), |e| e.attribute("aria-label")).unwrap().unwrap_or_default();
    assert_eq!(label, ui_text("en", "history.open_ai", &[("party", &party)]));

    screenshot(&s, "phone-history-ai.png");

    // (c) Opened from the keyboard: a modal dialog with the focus in it.
    s.with(&format!("{row} .history-open"), |e| e.send_keys(ENTER)).unwrap();
    s.wait_for("#history-detail", WAIT).unwrap();
    assert_eq!(focused(&s).0, "history-detail", "the focus did not move into the dialog");
    let aria = s
        .execute(
            "const d = document.querySelector('#history-detail'); \
             return [d.getAttribute('role'), d.getAttribute('aria-modal'), \
             document.getElementById(d.getAttribute('aria-labelledby')).textContent];",
            &[],
        )
        .unwrap();
    assert_eq!(aria, serde_json::json!(["dialog", "true", party]), "{aria}");
    assert_eq!(s.text("#history-detail .hd-kicker").unwrap().to_lowercase(), en("history.detail.title").to_lowercase());
    assert!(s.find("#history-detail-ai").is_ok(), "the dialog does not say the AI had the call");
    assert_eq!(s.text("#history-detail-summary-title").unwrap(), en("history.detail.summary"));
    let facts = s.text("#history-detail-facts").unwrap();
    assert!(facts.contains(&en("call.reason.local_hangup")), "{facts:?}");

    // The summary: what the agent collected, as stored.
    let stored = stored_call(&desk, &ai_call);
    let summary = s.with("#history-detail-summary", |e| e.attribute("data-summary")).unwrap().unwrap_or_default();
    assert_eq!(Some(summary.as_str()), stored["summary"].as_str(), "{stored}");
    let shown = s.text("#history-detail-summary").unwrap();
    println!("summary: {summary:?}\nshown as: {shown:?}");
    assert!(shown.to_lowercase().contains("bill"), "the summary does not mention the bill: {shown:?}");
    assert!(summary.contains(&format!("callback_number: {NUMBER}")), "{summary:?}");
    assert!(shown.contains(NUMBER), "{shown:?}");

    // The transcript: every stored line, in order, with who said it and when.
    let lines = detail_lines(&s);
    println!("transcript: {lines:#?}");
    let stored_lines = stored["transcript"].as_array().unwrap_or_else(|| panic!("{stored}"));
    assert_eq!(lines.len(), stored_lines.len(), "{stored}");
    for (l, st) in lines.iter().zip(stored_lines) {
        assert_eq!((Some(l.speaker.as_str()), Some(l.text.as_str())), (st["speaker"].as_str(), st["text"].as_str()));
        assert!(
            l.time.chars().filter(|c| *c == ':').count() == 2 && l.time.chars().any(|c| c.is_ascii_digit()),
            "{l:?}"
        );
        assert!(!l.datetime.is_empty(), "{l:?}");
        let who = if l.speaker == "ai" { "handoff.transcript.ai" } else { "handoff.transcript.caller" };
        assert_eq!(l.who.to_lowercase(), en(who).to_lowercase(), "{l:?}");
    }
    let mut times: Vec<&str> = lines.iter().map(|l| l.datetime.as_str()).collect();
    let in_order = times.clone();
    times.sort();
    assert_eq!(times, in_order, "the lines are not in the order they were said");
    assert!(lines.iter().any(|l| l.speaker == "caller" && l.text == "i have a question about my bill"), "{lines:?}");
    assert!(lines.iter().any(|l| l.speaker == "ai" && l.text.contains("I can help with your bill")), "{lines:?}");
    assert!(lines.iter().any(|l| l.speaker == "ai" && l.text.contains("automated assistant")), "{lines:?}");
    let count = s.text("#history-detail-transcript-title .hd-count").unwrap();
    assert_eq!(count, ui_text("en", "history.detail.lines", &[("count", &lines.len().to_string())]));
    screenshot(&s, "phone-history-transcript.png");

    // Tab goes round the dialog; Escape closes it and the focus is back on the row.
    s.with("#history-detail-done", |e| e.send_keys(TAB)).unwrap();
    assert_eq!(focused(&s).0, "history-detail-close", "Tab left the dialog");
    keys_to_focused(&s, &format!("{SHIFT}{TAB}"));
    assert_eq!(focused(&s).0, "history-detail-done", "Shift+Tab left the dialog");
    keys_to_focused(&s, ESCAPE);
    s.wait_gone("#history-detail", WAIT).unwrap();
    assert_eq!(focused(&s).1.as_deref(), Some(ai_call.as_str()), "the focus did not go back to the row");

    // (d) With the policy back to `never` (changed beside the running app), the desk answers; the
    // row is not marked and its details say the AI had no part in the call.
    set_policy(desk.db(), "never");
    phone.dial(&desk_uri);
    s.wait_for("#incoming-popup", WAIT).unwrap();
    s.click("#incoming-answer").unwrap();
    phone.wait_event("CALL_ESTABLISHED", WAIT);
    let desk_call = s.with("#in-call", |e| e.attribute("data-call-id")).unwrap().expect("the card names its call");
    assert!(s.find_all("#call-ai-note").unwrap().is_empty(), "the AI took a call with the policy at never");
    std::thread::sleep(Duration::from_millis(800));
    phone.hangup();
    phone.wait_event("CALL_CLOSED", WAIT);
    let plain = format!(".history-row[data-call-id='{desk_call}']");
    s.wait_for(&format!("{plain}[data-ai='false'][data-reason='remote_hangup']"), WAIT)
        .unwrap_or_else(|e| panic!("{e}; the history reads {:?}", s.text("#history")));
    assert!(s.find_all(&format!("{plain} .history-ai")).unwrap().is_empty(), "a call the AI never had is marked");
    assert_eq!(s.find_all(".history-row[data-ai='true']").unwrap().len(), 1);
    s.click(&format!("{plain} .history-open")).unwrap();
    s.wait_for("#history-detail", WAIT).unwrap();
    assert_eq!(s.text("#history-detail-no-ai").unwrap(), en("history.detail.no_ai"));
    assert!(s.find_all("#history-detail-summary, #history-detail-lines, #history-detail-ai").unwrap().is_empty());
    s.click("#history-detail-close").unwrap();
    s.wait_gone("#history-detail", WAIT).unwrap();
    assert_eq!(focused(&s).1.as_deref(), Some(desk_call.as_str()));

    // (e) The same details in Chinese.
    s.click("#nav-settings").unwrap();
    s.click("#lang-select option[value='zh-CN']").unwrap();
    s.wait_text("#settings h1", &zh("settings.title"), WAIT).unwrap();
    s.click("#nav-phone").unwrap();
    s.wait_text("#history-card h2", &zh("history.title"), WAIT).unwrap();
    assert_eq!(s.text(&format!("{row} .history-ai")).unwrap(), zh("history.ai"));
    s.click(&format!("{row} .history-open")).unwrap();
    s.wait_for("#history-detail", WAIT).unwrap();
    assert_eq!(s.text("#history-detail .hd-kicker").unwrap(), zh("history.detail.title"));
    assert_eq!(s.text("#history-detail-summary-title").unwrap(), zh("history.detail.summary"));
    assert!(s.text("#history-detail-transcript-title").unwrap().starts_with(&zh("history.detail.transcript")));
    assert_eq!(s.text("#history-detail-done").unwrap(), zh("history.detail.close"));
    let who: Vec<String> = detail_lines(&s).into_iter().map(|l| l.who).collect();
    assert!(who.contains(&zh("handoff.transcript.caller")) && who.contains(&zh("handoff.transcript.ai")), "{who:?}");
    screenshot(&s, "phone-history-transcript-zh.png");
    s.click("#history-detail-done").unwrap();
    s.wait_gone("#history-detail", WAIT).unwrap();

    desk.close(s);
    phone.stop();
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}
