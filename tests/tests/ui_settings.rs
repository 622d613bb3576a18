//! The Settings screen in the real app and webview (WebKitWebDriver on Xvfb): empty state, the
//! core's field errors, the password never reaching the DOM, persistence across restarts and
//! switching to Chinese. Also checks that the UI's translation files agree with each other and
//! with the keys the UI code uses.
//!
//! Needs the app built with its frontend embedded: `npx --prefix ui tauri build --debug --no-bundle`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sipdesk_e2e::repo_root;
use sipdesk_e2e::webdriver::{save_screenshot, ui_dict, Desk, Session, WAIT};

const TEST: &str = "ui_settings";
const PASSWORD: &str = "s3cret-Pa55";
const MASK: &str = "••••••••";

fn dict(lang: &str) -> Map<String, Value> {
    ui_dict(lang)
}

fn en(key: &str) -> String {
    dict("en")[key].as_str().unwrap().to_string()
}

fn zh(key: &str) -> String {
    dict("zh-CN")[key].as_str().unwrap().to_string()
}

fn assert_no_password_in_dom(s: &Session) {
    let html = s.outer_html().unwrap();
    assert!(!html.contains(PASSWORD), "the password appears in the DOM");
    let values =
        s.execute("return [...document.querySelectorAll('input')].map(i => i.value).join('\\n');", &[]).unwrap();
    assert!(!values.as_str().unwrap_or_default().contains(PASSWORD), "the password is left in an input");
}

/// Fills the open account form; `port` is typed as is, the core validates it.
fn fill_form(s: &Session, name: &str, host: &str, port: &str, user: &str) {
    s.wait_for("#account-form", WAIT).unwrap();
    s.set("#f-display_name", name).unwrap();
    s.set("#f-server_host", host).unwrap();
    s.set("#f-server_port", port).unwrap();
    s.set("#f-username", user).unwrap();
    s.set("#f-password", PASSWORD).unwrap();
}

#[test]
fn broken_database_still_opens_with_a_banner() {
    let Some(desk) =
        Desk::start(TEST, &[], |db| std::fs::write(db, b"this is not an SQLite database, just text").unwrap())
    else {
        return;
    };
    let s = desk.launch();
    s.wait_for("#store-error", WAIT).unwrap();
    assert!(s.text("#store-error").unwrap().contains(&en("banner.store_error.title")));
    assert!(s.find("#empty-state").is_ok());
    save_screenshot(&s, "settings-store-error.png");
    desk.close(s);
}

#[test]
fn settings_screen_in_the_real_webview() {
    let Some(desk) = Desk::start(TEST, &[], |_| ()) else {
        return;
    };

    // A new install: no account, the empty state invites to add one.
    let s = desk.launch();
    s.wait_for("#empty-state", WAIT).unwrap();
    assert!(s.text("#empty-state").unwrap().contains(&en("accounts.empty")));
    assert_eq!(s.text("#header-status").unwrap(), en("header.no_account"));
    save_screenshot(&s, "settings-empty.png");

    // The core rejects port 70000 and an unknown codec; the form shows each field code's English text.
    s.click("#add-account").unwrap();
    fill_form(&s, "Front desk", "pbx.example.com", "70000", "1001");
    s.set("#f-codecs", "pcmu,g729").unwrap();
    s.click("#save-account").unwrap();
    s.wait_text("#err-server_port", &en("fielderr.port_range"), WAIT).unwrap();
    s.wait_text("#err-codecs", &en("fielderr.codecs_unknown"), WAIT).unwrap();
    assert_eq!(s.with("#f-codecs", |e| e.attribute("aria-invalid")).unwrap().as_deref(), Some("true"));
    assert_eq!(s.find_all(".account-row").unwrap().len(), 0);
    save_screenshot(&s, "settings-account-form.png");

    s.set("#f-server_port", "5060").unwrap();
    s.set("#f-codecs", "PCMA, pcmu").unwrap();
    s.click("#save-account").unwrap();
    s.wait_gone("#account-dialog", WAIT).unwrap();
    s.wait_count(".account-row", 1, WAIT).unwrap();

    // A second, inactive TCP account, so the list and header show more than one.
    s.click("#add-account").unwrap();
    fill_form(&s, "Support line", "sip.example.net", "5070", "2002");
    s.click("#f-protocol option[value='TCP']").unwrap();
    s.click("#f-is_active").unwrap();
    s.click("#save-account").unwrap();
    s.wait_gone("#account-dialog", WAIT).unwrap();
    s.wait_count(".account-row", 2, WAIT).unwrap();

    let list = s.text("#account-list").unwrap();
    assert!(list.contains("Front desk") && list.contains("pbx.example.com:5060") && list.contains("TCP"), "{list}");
    assert_eq!(s.find_all(".password-mask").unwrap().len(), 2);
    assert_eq!(s.text(".password-mask").unwrap(), MASK);
    assert!(s.text("#header-others").unwrap().contains(&en("header.other_accounts_one")));
    assert_no_password_in_dom(&s);
    save_screenshot(&s, "settings-accounts.png");

    // The edit form never shows the stored password.
    s.click(".account-row .btn-edit").unwrap();
    s.wait_for("#f-password", WAIT).unwrap();
    assert_eq!(s.with("#f-password", |e| e.property("value")).unwrap(), Value::String(String::new()));
    let placeholder = s.with("#f-password", |e| e.attribute("placeholder")).unwrap();
    assert_eq!(placeholder.as_deref(), Some(en("form.password_unchanged").as_str()));
    // The codec order was stored normalised, and the form shows it.
    assert_eq!(s.with("#f-codecs", |e| e.property("value")).unwrap(), Value::String("pcma,pcmu".into()));
    s.click("#cancel-account").unwrap();
    desk.close(s);

    // A restart on the same database still lists both accounts, masked.
    let s = desk.launch();
    s.wait_count(".account-row", 2, WAIT).unwrap();
    assert_eq!(s.text(".password-mask").unwrap(), MASK);
    assert_no_password_in_dom(&s);

    // Chinese applies at once, and is remembered.
    s.click("#lang-select option[value='zh-CN']").unwrap();
    let title = zh("settings.title");
    s.wait_text("#settings h1", &title, WAIT).unwrap();
    assert_eq!(s.text("#add-account").unwrap(), zh("accounts.add"));
    assert!(s.text("#account-list").unwrap().contains(&zh("accounts.col.server")));
    save_screenshot(&s, "settings-zh.png");

    // A change made beside the app (the CLI on the same database) shows up live.
    let rows = s.find_all(".account-row").unwrap();
    let id = rows[1].attribute("data-id").unwrap().unwrap();
    if let Some(out) = desk.cli(&["account", "remove", &id]) {
        assert!(out.status.success(), "sipdesk account remove: {out:?}");
        s.wait_count(".account-row", 1, WAIT).unwrap();
        assert!(s.find_all("#header-others").unwrap().is_empty());
    }
    desk.close(s);

    let s = desk.launch();
    s.wait_text("#settings h1", &title, WAIT).unwrap();
    assert_eq!(s.with("#lang-select", |e| e.property("value")).unwrap(), Value::String("zh-CN".into()));
    desk.close(s);
}

/// Codes the core sends that the UI translates as `<prefix>.<code>` (docs/EVENTS.md, store/validate.rs).
const CORE_CODES: &[(&str, &str)] = &[
    ("reg.state", "unregistered registering registered failed"),
    (
        "reg.reason",
        "auth_rejected timeout unreachable server_error forbidden not_found network_down shutdown no_password",
    ),
    ("fielderr", "host_empty host_invalid port_invalid port_range username_empty username_invalid password_required"),
    ("fielderr", "protocol_invalid interval_invalid interval_range auth_username_invalid domain_invalid"),
    ("fielderr", "outbound_proxy_invalid display_name_invalid codecs_unknown codecs_repeated codecs_empty"),
    ("fielderr", "dtmf_mode_invalid"),
    ("error", "invalid_account not_found store_unavailable store_locked instance_running invalid_locale"),
    ("error", "unknown_device audio_unavailable"),
];

/// Double-quoted string literals in a TypeScript source (enough for keys, which never hold quotes).
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find(['"', '\n']) else {
            break;
        };
        if after.as_bytes()[end] == b'"' {
            out.push(after[..end].to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

fn ts_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            ts_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "ts") {
            out.push(path);
        }
    }
}

#[test]
fn translations_cover_every_key_the_ui_uses() {
    let en = dict("en");
    let zh = dict("zh-CN");
    let en_keys: BTreeSet<&String> = en.keys().collect();
    let zh_keys: BTreeSet<&String> = zh.keys().collect();
    assert_eq!(en_keys.difference(&zh_keys).collect::<Vec<_>>(), Vec::<&&String>::new(), "keys missing in zh-CN.json");
    assert_eq!(zh_keys.difference(&en_keys).collect::<Vec<_>>(), Vec::<&&String>::new(), "keys missing in en.json");
    for (k, v) in en.iter().chain(zh.iter()) {
        assert!(v.as_str().is_some_and(|s| !s.is_empty()), "empty or non-text translation for {k}");
    }

    for (prefix, codes) in CORE_CODES {
        for code in codes.split_whitespace() {
            assert!(en.contains_key(&format!("{prefix}.{code}")), "no translation for the core's {prefix} code {code}");
        }
        assert!(en.contains_key(&format!("{prefix}.unknown")), "no fallback {prefix}.unknown");
    }

    // Every literal that looks like a key (namespace.name) must exist; a tCode prefix needs its `.unknown`.
    let namespaces: BTreeSet<&str> = en.keys().filter_map(|k| k.split('.').next()).collect();
    let mut sources = Vec::new();
    ts_sources(&repo_root().join("ui/src"), &mut sources);
    assert!(sources.len() > 5, "UI sources not found");
    let mut checked = 0;
    for path in sources {
        let src = std::fs::read_to_string(&path).unwrap();
        assert!(!src.contains("t(`"), "{}: build keys as whole literals so they can be checked", path.display());
        for lit in string_literals(&src) {
            let Some((ns, _)) = lit.split_once('.') else {
                continue;
            };
            if !namespaces.contains(ns) || lit.contains(['/', ' ']) {
                continue;
            }
            checked += 1;
            assert!(
                en.contains_key(&lit) || en.contains_key(&format!("{lit}.unknown")),
                "{} uses the key {lit}, which en.json lacks",
                path.display()
            );
        }
    }
    assert!(checked > 40, "only {checked} keys found in the UI sources");
}
