//! The call settings in the real app and webview (WebKitWebDriver on Xvfb): the account form's
//! DTMF mode (saved, shown again on edit, listed by the CLI) and the Calls card's transfer consent
//! policy (saved as soon as it is chosen, still there after a restart, in the database for the
//! headless desk too).
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`); the CLI check runs when `sipdesk` is built.

use serde_json::Value;
use sipdesk_core::store::{SecretStore, Store};
use sipdesk_e2e::webdriver::{save_screenshot, ui_text, wait_until, Desk, Session, WAIT};

const TEST: &str = "ui_call_settings";

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn value(s: &Session, css: &str) -> Value {
    s.with(css, |e| e.property("value")).unwrap()
}

/// The policy saved in the app's database (read beside the running app).
fn saved_policy(desk: &Desk) -> Option<String> {
    let store = Store::open_with_secrets(desk.db(), SecretStore::file_only(desk.db())).ok()?;
    store.setting("refer_policy").ok()?
}

#[test]
fn dtmf_mode_and_transfer_policy_in_the_settings_screen() {
    let Some(desk) = Desk::start(TEST, &[], |_| ()) else {
        return;
    };
    let s = desk.launch();

    // A new account asks for RFC 4733 unless told otherwise; SIP INFO is chosen here.
    s.click("#add-account").unwrap();
    s.wait_for("#account-form", WAIT).unwrap();
    assert_eq!(value(&s, "#f-dtmf_mode"), Value::String("rfc4733".into()));
    let options = s.text("#f-dtmf_mode").unwrap();
    assert!(options.contains(&en("form.dtmf_rfc4733")) && options.contains(&en("form.dtmf_info")), "{options}");
    assert!(s.text("#hint-dtmf_mode").unwrap().contains("SIP INFO"));
    s.set("#f-display_name", "Front desk").unwrap();
    s.set("#f-server_host", "pbx.example.com").unwrap();
    s.set("#f-username", "1001").unwrap();
    s.set("#f-password", "s3cret-Pa55").unwrap();
    s.click("#f-dtmf_mode option[value='info']").unwrap();
    s.click("#save-account").unwrap();
    s.wait_gone("#account-dialog", WAIT).unwrap();
    s.wait_count(".account-row", 1, WAIT).unwrap();
    s.click(".account-row .btn-edit").unwrap();
    s.wait_for("#f-dtmf_mode", WAIT).unwrap();
    assert_eq!(value(&s, "#f-dtmf_mode"), Value::String("info".into()), "the edit form shows the saved mode");
    s.click("#cancel-account").unwrap();
    if let Some(out) = desk.cli(&["account", "list", "--json"]) {
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list[0]["dtmf_mode"], "info", "{list:?}");
    }

    // The Calls card: asking is the default; refusing is saved at once.
    s.wait_for("#calls-card", WAIT).unwrap();
    assert!(s.text("#calls-card").unwrap().contains(&en("calls_settings.refer_label")));
    wait_until(WAIT, "the policy loaded", || (value(&s, "#refer-policy") == "ask").then_some(())).unwrap();
    assert_eq!(s.with("#refer-policy", |e| e.property("disabled")).unwrap(), Value::Bool(false));
    s.click("#refer-policy option[value='refuse']").unwrap();
    wait_until(WAIT, "the policy saved", || (saved_policy(&desk).as_deref() == Some("refuse")).then_some(())).unwrap();
    assert_eq!(value(&s, "#refer-policy"), Value::String("refuse".into()));
    assert!(s.find_all("#calls-settings-error").unwrap().is_empty());
    s.execute("document.getElementById('calls-card').scrollIntoView({ block: 'center' });", &[]).unwrap();
    save_screenshot(&s, "settings-calls.png");
    desk.close(s);

    // After a restart the choice is still there.
    let s = desk.launch();
    s.wait_for("#calls-card", WAIT).unwrap();
    wait_until(WAIT, "the saved policy", || (value(&s, "#refer-policy") == "refuse").then_some(())).unwrap();
    s.click("#refer-policy option[value='auto']").unwrap();
    wait_until(WAIT, "auto saved", || (saved_policy(&desk).as_deref() == Some("auto")).then_some(())).unwrap();
    desk.close(s);
}
