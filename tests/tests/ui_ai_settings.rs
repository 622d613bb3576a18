//! The "AI assistant" card of Settings in the real app and webview (WebKitWebDriver on Xvfb): the
//! offline assistant ("Offline, English only") and the cloud providers shown disabled until an
//! administrator enables them (here through the store, as `sipdesk ai edit --enable` does, beside
//! the running app, which shows the change live); a key typed in the card saved to the secret
//! store and never in the DOM (masked, the box emptied again); the core's field errors; the
//! default provider; the supervisors' policy saved, refused when wrong, and still there after a
//! restart; the card in Chinese. Also checks, without the app, that every code the core sends
//! from these settings has its English and Chinese text.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`).

use serde_json::{json, Value};
use sipdesk_core::store::{AiAgentDraft, AiProvider, SecretStore, Store};
use sipdesk_e2e::webdriver::{save_screenshot, ui_dict, ui_text, wait_until, Desk, Session, WAIT};

const TEST: &str = "ui_ai_settings";
/// The key an administrator stores when enabling OpenAI.
const ADMIN_KEY: &str = "sk-admin-Key-0123456789abcdefXYZ";
/// The key typed into the card later.
const UI_KEY: &str = "sk-typed-in-Card-9876543210qwerty";

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn store(desk: &Desk) -> Store {
    Store::open_with_secrets(desk.db(), SecretStore::file_only(desk.db())).unwrap()
}

fn value(s: &Session, css: &str) -> Value {
    s.with(css, |e| e.property("value")).unwrap()
}

fn is_disabled(s: &Session, css: &str) -> bool {
    // A control inside a disabled fieldset has no `disabled` property of its own.
    let script = format!("return document.querySelector({css:?}).matches(':disabled');");
    s.execute(&script, &[]).unwrap() == Value::Bool(true)
}

fn checked(s: &Session, css: &str) -> bool {
    s.with(css, |e| e.property("checked")).unwrap() == Value::Bool(true)
}

/// Neither key anywhere in the page: not in the markup, not in any input's or textarea's value.
fn assert_no_key_in_dom(s: &Session) {
    let html = s.outer_html().unwrap();
    let values = s
        .execute("return [...document.querySelectorAll('input, textarea')].map(i => i.value).join('\\n');", &[])
        .unwrap();
    let values = values.as_str().unwrap_or_default().to_string();
    for key in [ADMIN_KEY, UI_KEY] {
        assert!(!html.contains(key), "a key appears in the DOM");
        assert!(!values.contains(key), "a key is left in an input");
    }
}

fn saved_policy(desk: &Desk) -> Option<Value> {
    let text = store(desk).setting("ai_policy").ok()??;
    serde_json::from_str(&text).ok()
}

#[test]
fn ai_assistant_settings_in_the_real_webview() {
    let Some(desk) = Desk::start(TEST, &[], |_| ()) else {
        return;
    };
    let s = desk.launch();
    s.wait_for("#ai-card", WAIT).unwrap();
    s.wait_for("#ai-provider-doubao", WAIT).unwrap();
    assert!(s.text("#ai-card h2").unwrap().contains(&en("ai.title")));

    // The offline assistant: enabled, the default, English only.
    let local = s.text("#ai-provider-local").unwrap();
    assert!(local.contains(&en("ai.desc.local")) && local.contains(&en("ai.default")), "{local}");
    assert_eq!(s.with("#ai-provider-local", |e| e.attribute("data-enabled")).unwrap().as_deref(), Some("true"));
    assert!(s.find_all("#ai-local-endpoint, #ai-local-api_key").unwrap().is_empty(), "no endpoint or key for it");

    // The cloud providers: shown with their public endpoints, disabled, saying who enables them.
    for (p, endpoint) in [
        ("openai", "wss://api.openai.com/v1/realtime"),
        ("doubao", "wss://openspeech.bytedance.com/api/v3/realtime/dialogue"),
    ] {
        let block = format!("#ai-provider-{p}");
        assert_eq!(s.with(&block, |e| e.attribute("data-enabled")).unwrap().as_deref(), Some("false"), "{p}");
        assert_eq!(value(&s, &format!("#ai-{p}-endpoint")), Value::String(endpoint.into()));
        assert!(is_disabled(&s, &format!("#ai-{p}-endpoint")) && is_disabled(&s, &format!("#ai-{p}-api_key")), "{p}");
        assert!(is_disabled(&s, &format!("#ai-save-{p}")), "{p}");
        let locked = s.text(&format!("#ai-locked-{p}")).unwrap();
        assert_eq!(locked, ui_text("en", "ai.locked", &[("provider", p)]));
        assert!(
            s.find_all(&format!("#ai-default-{p}")).unwrap().is_empty(),
            "a disabled provider is not offered as default"
        );
        let placeholder = s.with(&format!("#ai-{p}-api_key"), |e| e.attribute("placeholder")).unwrap();
        assert_eq!(placeholder.as_deref(), Some(en("ai.key_placeholder_none").as_str()));
    }
    assert!(s.find("#ai-doubao-app_id").is_ok(), "Doubao has its app id");
    // Locked providers are folded: their head shows, their fields open read-only on a click.
    assert_eq!(s.with("#ai-provider-openai", |e| e.property("open")).unwrap(), Value::Bool(false));
    s.click("#ai-provider-doubao summary").unwrap();
    assert!(s.find("#ai-doubao-endpoint").unwrap().displayed().unwrap());
    assert!(is_disabled(&s, "#ai-doubao-endpoint"));
    s.click("#ai-provider-doubao summary").unwrap();

    // The policy's defaults.
    assert!(checked(&s, "#ai-handoff-allowed"));
    assert_eq!(value(&s, "#ai-answer"), Value::String("never".into()));
    let days: Vec<bool> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| checked(&s, &format!("#ai-day-{d}")))
        .collect();
    assert_eq!(days, [true, true, true, true, true, false, false]);
    assert_eq!((value(&s, "#ai-hours-start"), value(&s, "#ai-hours-end")), (json!("09:00"), json!("17:00")));
    assert!(!s.find("#ai-answer-after-row").unwrap().displayed().unwrap(), "the seconds show only for 'after'");

    // The offline assistant's greeting is saved.
    let greeting = "Hello, you are talking to the front desk's automated assistant.";
    s.set("#ai-local-greeting", greeting).unwrap();
    s.click("#ai-save-local").unwrap();
    s.wait_for("#ai-saved-local:not(.hidden)", WAIT).unwrap();
    let local_id = store(&desk).ai_agent_by_provider(AiProvider::Local).unwrap().id;
    assert_eq!(store(&desk).ai_agent(local_id).unwrap().greeting, greeting);

    // An administrator enables OpenAI beside the running app; the card follows.
    let openai_id = store(&desk).ai_agent_by_provider(AiProvider::Openai).unwrap().id;
    let enable = AiAgentDraft { enabled: Some(true), api_key: Some(ADMIN_KEY.into()), ..Default::default() };
    store(&desk).update_ai_agent(openai_id, &enable).unwrap();
    s.wait_for("#ai-provider-openai[data-enabled='true']", WAIT).unwrap();
    assert_eq!(s.with("#ai-provider-openai", |e| e.property("open")).unwrap(), Value::Bool(true));
    assert!(!is_disabled(&s, "#ai-openai-api_key"));
    assert!(s.find_all("#ai-locked-openai").unwrap().is_empty());
    // The stored key: a mask in the placeholder, an empty box.
    assert_eq!(value(&s, "#ai-openai-api_key"), Value::String(String::new()));
    assert_eq!(s.with("#ai-openai-api_key", |e| e.attribute("type")).unwrap().as_deref(), Some("password"));
    let placeholder = s.with("#ai-openai-api_key", |e| e.attribute("placeholder")).unwrap();
    assert_eq!(placeholder.as_deref(), Some(en("ai.key_placeholder_set").as_str()));
    assert_eq!(s.text("#ai-openai-key-state").unwrap(), en("ai.key_set"));
    assert_no_key_in_dom(&s);

    // The core's field errors show under their fields; nothing is saved.
    s.set("#ai-openai-endpoint", "http://api.openai.com/v1/realtime").unwrap();
    s.set("#ai-openai-language", "english").unwrap();
    s.click("#ai-save-openai").unwrap();
    s.wait_text("#ai-openai-err-endpoint", &en("fielderr.endpoint_invalid"), WAIT).unwrap();
    assert_eq!(s.text("#ai-openai-err-language").unwrap(), en("fielderr.language_invalid"));
    assert_eq!(s.with("#ai-openai-endpoint", |e| e.attribute("aria-invalid")).unwrap().as_deref(), Some("true"));
    save_screenshot(&s, "settings-ai-errors.png");
    assert_eq!(store(&desk).ai_agent(openai_id).unwrap().endpoint, "wss://api.openai.com/v1/realtime");

    // A new key typed in the card replaces the stored one; the box is empty again afterwards.
    s.set("#ai-openai-endpoint", "wss://api.openai.com/v1/realtime").unwrap();
    s.set("#ai-openai-language", "en-US").unwrap();
    s.set("#ai-openai-voice", "marin").unwrap();
    s.set("#ai-openai-instructions", "You are the front desk's assistant. Tell callers you are automated.").unwrap();
    s.set("#ai-openai-api_key", UI_KEY).unwrap();
    s.click("#ai-save-openai").unwrap();
    s.wait_for("#ai-saved-openai:not(.hidden)", WAIT).unwrap();
    assert_eq!(value(&s, "#ai-openai-api_key"), Value::String(String::new()));
    assert_eq!(s.text("#ai-openai-err-endpoint").unwrap(), "");
    let cfg = store(&desk).ai_agent_config(openai_id).unwrap();
    assert_eq!((cfg.api_key.expose(), cfg.voice.as_str(), cfg.language.as_str()), (UI_KEY, "marin", "en-US"));
    assert_no_key_in_dom(&s);
    // Saving again with the box left empty keeps it.
    s.set("#ai-openai-greeting", "Hello, this is the automated assistant of the front desk.").unwrap();
    s.click("#ai-save-openai").unwrap();
    wait_until(WAIT, "the greeting saved", || {
        (store(&desk).ai_agent(openai_id).ok()?.greeting.starts_with("Hello, this is")).then_some(())
    })
    .unwrap();
    assert_eq!(store(&desk).ai_agent_config(openai_id).unwrap().api_key.expose(), UI_KEY);
    let column: String = rusqlite_column(&desk, openai_id);
    assert!(column.starts_with("file:") && !column.contains(UI_KEY), "the column holds only a reference");

    // OpenAI becomes the provider handoffs go to.
    s.click("#ai-default-openai").unwrap();
    s.wait_for("#ai-default-badge-openai", WAIT).unwrap();
    assert!(s.find_all("#ai-default-badge-local").unwrap().is_empty());
    s.wait_for("#ai-default-local", WAIT).unwrap();
    assert_eq!(store(&desk).default_ai_agent().unwrap().provider, AiProvider::Openai);

    // The policy: a wrong number of seconds is refused with the core's reason.
    s.click("#ai-answer option[value='after']").unwrap();
    assert!(s.find("#ai-answer-after-row").unwrap().displayed().unwrap());
    s.set("#ai-answer-after", "500").unwrap();
    s.click("#ai-policy-save").unwrap();
    s.wait_text("#ai-policy-err-answer", &en("fielderr.answer_after_range"), WAIT).unwrap();
    assert_eq!(saved_policy(&desk), None, "nothing saved");
    // Then a good one, with other hours and without Friday.
    s.set("#ai-answer-after", "30").unwrap();
    s.click("#ai-handoff-allowed").unwrap();
    s.click("#ai-day-fri").unwrap();
    s.set("#ai-hours-start", "08:00").unwrap();
    s.set("#ai-hours-end", "18:30").unwrap();
    s.click("#ai-policy-save").unwrap();
    s.wait_for("#ai-policy-saved:not(.hidden)", WAIT).unwrap();
    let want = json!({
        "handoff_allowed": false,
        "answer": "after:30",
        "working_hours": {"days": ["mon", "tue", "wed", "thu"], "start": "08:00", "end": "18:30"},
    });
    assert_eq!(saved_policy(&desk), Some(want));
    assert_eq!(s.text("#ai-policy-err-answer").unwrap(), "");
    assert_no_key_in_dom(&s);
    s.execute("document.getElementById('ai-card').scrollIntoView({ block: 'start' });", &[]).unwrap();
    save_screenshot(&s, "settings-ai.png");
    s.execute("document.getElementById('ai-policy').scrollIntoView({ block: 'end' });", &[]).unwrap();
    save_screenshot(&s, "settings-ai-policy.png");
    desk.close(s);

    // After a restart: the policy, the default, the masked key, no key in the page.
    let s = desk.launch();
    s.wait_for("#ai-provider-openai[data-enabled='true']", WAIT).unwrap();
    assert_eq!(value(&s, "#ai-answer"), Value::String("after".into()));
    assert_eq!(value(&s, "#ai-answer-after"), Value::String("30".into()));
    assert!(!checked(&s, "#ai-handoff-allowed") && !checked(&s, "#ai-day-fri") && checked(&s, "#ai-day-thu"));
    assert_eq!((value(&s, "#ai-hours-start"), value(&s, "#ai-hours-end")), (json!("08:00"), json!("18:30")));
    s.wait_for("#ai-default-badge-openai", WAIT).unwrap();
    assert_eq!(value(&s, "#ai-openai-api_key"), Value::String(String::new()));
    assert_eq!(value(&s, "#ai-openai-voice"), Value::String("marin".into()));
    assert_no_key_in_dom(&s);

    // The card in Chinese.
    s.click("#lang-select option[value='zh-CN']").unwrap();
    let zh = |key: &str| ui_text("zh-CN", key, &[]);
    s.wait_text("#ai-card h2", &zh("ai.title"), WAIT).unwrap();
    assert!(s.text("#ai-provider-local").unwrap().contains(&zh("ai.desc.local")));
    assert!(s.text("#ai-policy").unwrap().contains(&zh("ai.policy.title")));
    assert_eq!(s.text("#ai-locked-doubao").unwrap(), ui_text("zh-CN", "ai.locked", &[("provider", "doubao")]));
    s.execute("document.getElementById('ai-card').scrollIntoView({ block: 'start' });", &[]).unwrap();
    save_screenshot(&s, "settings-ai-zh.png");
    assert_no_key_in_dom(&s);
    desk.close(s);
}

/// The `api_key` column of a configuration, read beside the app.
fn rusqlite_column(desk: &Desk, id: i64) -> String {
    // The store never exposes the column; read it the way an attacker with the file would.
    let out = std::process::Command::new("sqlite3")
        .arg(desk.db())
        .arg(format!("SELECT api_key FROM ai_agent_configs WHERE id = {id};"))
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        // No sqlite3 program: look for the key in the raw file instead.
        _ => {
            let bytes = std::fs::read(desk.db()).unwrap();
            let holds = bytes.windows(UI_KEY.len()).any(|w| w == UI_KEY.as_bytes());
            assert!(!holds, "the key is in the database file");
            "file:(checked in the raw file)".into()
        }
    }
}

/// Codes the core sends from the AI settings (store/validate.rs, desk/ai_settings.rs), each with
/// its English and Chinese text.
#[test]
fn every_ai_settings_code_has_english_and_chinese_text() {
    let codes = "endpoint_required endpoint_invalid endpoint_insecure endpoint_unsupported api_key_invalid \
        api_key_required api_key_unsupported app_id_invalid app_id_required app_id_unsupported voice_invalid \
        voice_unsupported language_invalid language_unsupported instructions_invalid greeting_invalid \
        default_disabled answer_invalid answer_after_range days_invalid days_empty time_invalid hours_empty";
    let (en, zh) = (ui_dict("en"), ui_dict("zh-CN"));
    for code in codes.split_whitespace() {
        let key = format!("fielderr.{code}");
        assert!(en.contains_key(&key) && zh.contains_key(&key), "no text for {key}");
        // The core knows the code too: its English message is not the fallback.
        let fe = sipdesk_core::store::FieldError { field: "x", code: Box::leak(code.to_string().into_boxed_str()) };
        assert_ne!(fe.message(), "invalid value", "the core has no message for {code}");
    }
    for code in ["invalid_ai_agent", "invalid_ai_policy"] {
        let key = format!("error.{code}");
        assert!(en.contains_key(&key) && zh.contains_key(&key), "no text for {key}");
    }
    for p in ["local", "openai", "doubao"] {
        for prefix in ["ai.provider", "ai.desc"] {
            assert!(en.contains_key(&format!("{prefix}.{p}")), "{prefix}.{p}");
        }
    }
}
