//! Live registration in the real app and webview against a real Kamailio: the header shows the
//! default account registered with its granted expiry, a second account's row shows a wrong
//! password in words (English and Chinese), and the header follows the registrar going away
//! and coming back.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`) and the `sipdesk` CLI (`cargo build -p sipdesk-core --bins`).

use std::time::{Duration, Instant};

use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::require_programs;
use sipdesk_e2e::sipdesk::add_account;
use sipdesk_e2e::webdriver::{cli_built, save_screenshot, ui_text, wait_until, Desk, Session, PROGRAMS, WAIT};

const TEST: &str = "ui_registration";
const GOOD_PASSWORD: &str = "pw-1001";
/// What the second account stores; Kamailio knows 1002 by another password.
const WRONG_PASSWORD: &str = "not-the-pw-1002";
/// Kamailio's max_expires, so the registrar grants exactly this.
const GRANTED: u32 = 10;

/// The header's state, reason and expiry texts ("" when absent).
fn header(s: &Session) -> (String, String, String) {
    let text = |css: &str| s.find_all(css).ok().and_then(|l| l.first().and_then(|e| e.text().ok())).unwrap_or_default();
    (text("#header-reg-state"), text("#header-reg-reason"), text("#header-reg-expiry"))
}

/// Waits until the header reads `state` (and `expiry`, when given); returns when it did.
fn wait_header(s: &Session, state: &str, expiry: Option<&str>, timeout: Duration) {
    wait_until(timeout, &format!("the header to read {state:?}"), || {
        let (st, _, exp) = header(s);
        (st == state && expiry.is_none_or(|e| exp == e)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the header reads {:?}", header(s)));
}

/// Waits until the row of account `id` shows `state` and `reason` under it.
fn wait_row(s: &Session, id: i64, state: &str, reason: &str) {
    let row = format!(".account-row[data-id='{id}']");
    wait_until(WAIT, &format!("account {id} to read {state:?} / {reason:?}"), || {
        let st = s.find(&format!("{row} .reg-text")).ok()?.text().ok()?;
        let re = s.find(&format!("{row} .reg-reason")).ok()?.text().ok()?;
        (st == state && re == reason).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the row reads {:?}", s.text(&row)));
}

fn assert_no_password_in_dom(s: &Session) {
    let html = s.outer_html().unwrap();
    for pw in [GOOD_PASSWORD, WRONG_PASSWORD, "pw-1002"] {
        assert!(!html.contains(pw), "a password appears in the DOM");
    }
}

#[test]
fn registration_shows_live_in_the_header_and_the_list() {
    let started = Instant::now();
    let programs: Vec<&str> = PROGRAMS.iter().chain(kamailio::PROGRAMS).copied().collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "adding the accounts") {
        return;
    }
    let mut k = Kamailio::start(&Config {
        users: vec![("1001".into(), GOOD_PASSWORD.into()), ("1002".into(), "pw-1002".into())],
        ..Config::default()
    });
    let port = k.port.to_string();
    let (mut good, mut bad) = (0, 0);
    let Some(desk) = Desk::start(TEST, kamailio::PROGRAMS, |db| {
        let account = |user: &str, name: &str, password: &str| {
            let args = [
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--user",
                user,
                "--protocol",
                "udp",
                "--interval",
                "60",
                "--display-name",
                name,
                "--activate",
            ];
            add_account(db, &args, password)
        };
        good = account("1001", "Front desk", GOOD_PASSWORD);
        bad = account("1002", "Back office", WRONG_PASSWORD);
    }) else {
        return;
    };
    let en = |key: &str| ui_text("en", key, &[]);
    let zh = |key: &str| ui_text("zh-CN", key, &[]);
    let expiry = |lang: &str| ui_text(lang, "reg.expires_s", &[("n", &GRANTED.to_string())]);

    // The default account registers; the other one is refused, and says why in words.
    let s = desk.launch();
    wait_header(&s, &en("reg.state.registered"), Some(&expiry("en")), WAIT);
    println!("registered after {:.1} s", started.elapsed().as_secs_f32());
    wait_row(&s, bad, &en("reg.state.failed"), &en("reg.reason.auth_rejected"));
    assert_eq!(s.text(".header-account").unwrap(), "Front desk");
    assert_eq!(s.text(&format!(".account-row[data-id='{good}'] .reg-text")).unwrap(), en("reg.state.registered"));
    assert!(s.find(&format!(".account-row[data-id='{good}'] .dot-registered")).is_ok());
    assert!(s.find(&format!(".account-row[data-id='{bad}'] .dot-failed")).is_ok());
    let dump = k.ul_dump();
    assert!(dump.contains("AoR: 1001"), "Kamailio holds no binding for 1001:\n{dump}");
    assert!(!dump.contains("AoR: 1002"), "Kamailio bound 1002 despite the wrong password:\n{dump}");
    assert_no_password_in_dom(&s);
    save_screenshot(&s, "header-registered.png");

    // The same live state in Chinese.
    s.click("#lang-select option[value='zh-CN']").unwrap();
    wait_header(&s, &zh("reg.state.registered"), Some(&expiry("zh-CN")), WAIT);
    wait_row(&s, bad, &zh("reg.state.failed"), &zh("reg.reason.auth_rejected"));
    assert_no_password_in_dom(&s);
    save_screenshot(&s, "header-registered-zh.png");

    // Back in English, the registrar goes away: UDP learns it at the next refresh (at most
    // GRANTED / 2 s later), and the header says so in words.
    s.click("#lang-select option[value='en']").unwrap();
    wait_header(&s, &en("reg.state.registered"), Some(&expiry("en")), WAIT);
    k.stop();
    let stopped = Instant::now();
    // A closed UDP port answers with ICMP at once (unreachable); a lost answer would time out.
    let reasons = ["unreachable", "timeout"].map(|r| en(&format!("reg.reason.{r}")));
    let mut seen = Vec::new();
    wait_until(WAIT, "the header to show why the registrar is gone", || {
        let h = header(&s);
        if seen.last() != Some(&h) {
            println!("{:>5.1} s after the stop: {h:?}", stopped.elapsed().as_secs_f32());
            seen.push(h.clone());
        }
        (h.0 == en("reg.state.failed") && reasons.contains(&h.1) && h.2.is_empty()).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; the header read {seen:?}"));
    assert!(!k.ul_dump().contains("AoR: 1001"));
    save_screenshot(&s, "header-unreachable.png");

    // It comes back on the same port: the next retry registers again.
    k.restart();
    let restarted = Instant::now();
    wait_header(&s, &en("reg.state.registered"), Some(&expiry("en")), Duration::from_secs(40));
    println!("registered again {:.1} s after the restart", restarted.elapsed().as_secs_f32());
    let dump = k.ul_dump();
    assert!(dump.contains("AoR: 1001"), "no binding for 1001 after the restart:\n{dump}");
    wait_row(&s, bad, &en("reg.state.failed"), &en("reg.reason.auth_rejected"));
    assert_no_password_in_dom(&s);
    desk.close(s);
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}
