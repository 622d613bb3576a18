//! AI settings from the command line. The supervisors' policy: the `set_policy` command (each
//! field, partial changes, every bad value refused with `invalid_argument` and nothing changed),
//! `status` showing the policy in force, the choice kept across restarts, and `sipdesk run
//! --ai-answer` overriding the saved answer for that run only. The AI agent configurations:
//! `sipdesk ai list|edit|default`, cloud providers off until enabled with what they need, and the
//! API key kept out of the database column, the listings, the policy output and every log line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_core::store::{SecretStore, Store};
use sipdesk_e2e::sipdesk::{command, run_with_stdin, Running};

const API_KEY: &str = "sk-test-AIkey-0123456789abcdef";
const ACCESS_KEY: &str = "doubao-Access-Key-9876543210";

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    (dir, db)
}

fn ai_policy(run: &mut Running, id: u32) -> Value {
    let status = run.command(json!({"id": id, "cmd": "status"}));
    assert_eq!(status["event"], "ack", "{status}");
    status["result"]["ai_policy"].clone()
}

fn stop(run: Running) -> String {
    // Give the SIGTERM handler a moment after the last reply (see call_settings.rs).
    std::thread::sleep(Duration::from_millis(300));
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert_eq!(code.code(), Some(0), "{stderr}");
    stderr
}

fn set_policy(run: &mut Running, id: u32, args: Value) -> Value {
    let mut cmd = args;
    cmd["id"] = json!(id);
    cmd["cmd"] = json!("set_policy");
    run.command(cmd)
}

#[test]
fn set_policy_is_kept_across_restarts_and_ai_answer_overrides_it_for_one_run() {
    let (_d, db) = temp_db();
    let mut run = Running::start(&db, &["--audio", "null"], &[]);
    let default = json!({
        "handoff_allowed": true,
        "answer": "never",
        "working_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
        "answer_overridden": false,
    });
    assert_eq!(ai_policy(&mut run, 1), default, "the default policy");

    let r = set_policy(
        &mut run,
        2,
        json!({"handoff_allowed": false, "answer": "outside_hours",
               "working_hours": {"days": ["mon", "WED", "friday"], "start": "8:30", "end": "18:00"}}),
    );
    let saved = json!({
        "handoff_allowed": false,
        "answer": "outside_hours",
        "working_hours": {"days": ["mon", "wed", "fri"], "start": "08:30", "end": "18:00"},
        "answer_overridden": false,
    });
    assert_eq!((r["event"].as_str(), &r["result"]), (Some("ack"), &saved), "{r}");
    assert_eq!(ai_policy(&mut run, 3), saved);

    // Keys not given keep their values.
    let r = set_policy(&mut run, 4, json!({"answer": "after:25"}));
    assert_eq!(r["result"]["answer"], "after:25", "{r}");
    assert_eq!(
        (r["result"]["handoff_allowed"].as_bool(), &r["result"]["working_hours"]),
        (Some(false), &saved["working_hours"])
    );
    let r = set_policy(&mut run, 5, json!({"working_hours": {"end": "02:00"}}));
    assert_eq!(
        r["result"]["working_hours"],
        json!({"days": ["mon", "wed", "fri"], "start": "08:30", "end": "02:00"}),
        "a night shift: {r}"
    );

    // Bad values: invalid_argument naming the field, and nothing changes.
    for (n, (bad, field)) in [
        (json!({"answer": "sometimes"}), "answer:"),
        (json!({"answer": "after:0"}), "answer:"),
        (json!({"answer": "after:120"}), "answer:"),
        (json!({"answer": 5}), "invalid type"),
        (json!({"handoff_allowed": "yes"}), "invalid type"),
        (json!({"working_hours": {"days": []}}), "working_hours.days:"),
        (json!({"working_hours": {"days": ["mon", "funday"]}}), "working_hours.days:"),
        (json!({"working_hours": {"start": "25:00"}}), "working_hours.start:"),
        (json!({"working_hours": {"start": "02:00"}}), "working_hours.end:"),
        (json!({"working_hours": {"from": "09:00"}}), "unknown field"),
        (json!({"policy": "always"}), "unknown field"),
        (json!({}), "give \"handoff_allowed\""),
    ]
    .into_iter()
    .enumerate()
    {
        let r = set_policy(&mut run, 10 + n as u32, bad.clone());
        assert_eq!((r["event"].as_str(), r["code"].as_str()), (Some("error"), Some("invalid_argument")), "{bad}: {r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains(field), "{bad}: {message}");
    }
    // Every bad field at once, one message.
    let r = set_policy(&mut run, 30, json!({"answer": "after:999", "working_hours": {"start": "9am", "end": "x"}}));
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains("answer:")
            && message.contains("working_hours.start:")
            && message.contains("working_hours.end:"),
        "{message}"
    );
    let kept = ai_policy(&mut run, 31);
    assert_eq!((kept["answer"].as_str(), kept["working_hours"]["end"].as_str()), (Some("after:25"), Some("02:00")));
    stop(run);

    // A restart keeps it.
    let mut run = Running::start(&db, &["--audio", "null"], &[]);
    assert_eq!(ai_policy(&mut run, 1), kept, "kept across a restart");
    stop(run);

    // --ai-answer decides the answer for its run only; a change saved meanwhile is kept for later.
    for (flag, want) in
        [("always", "always"), ("never", "never"), ("after:7", "after:7"), ("outside_hours", "outside_hours")]
    {
        let mut run = Running::start(&db, &["--audio", "null", "--ai-answer", flag], &[]);
        let p = ai_policy(&mut run, 1);
        assert_eq!((p["answer"].as_str(), p["answer_overridden"].as_bool()), (Some(want), Some(true)), "{flag}: {p}");
        assert_eq!(p["handoff_allowed"], false, "the rest is the saved policy");
        if flag == "outside_hours" {
            let r = set_policy(&mut run, 2, json!({"answer": "after:40", "handoff_allowed": true}));
            assert_eq!(
                (r["result"]["answer"].as_str(), r["result"]["answer_overridden"].as_bool()),
                (Some("outside_hours"), Some(true)),
                "{r}"
            );
            assert_eq!(r["result"]["handoff_allowed"], true, "{r}");
        }
        let stderr = stop(run);
        assert!(stderr.contains("ai_answer"), "the run logs its override: {stderr}");
    }
    let mut run = Running::start(&db, &["--audio", "null"], &[]);
    let p = ai_policy(&mut run, 1);
    assert_eq!(
        (p["answer"].as_str(), p["answer_overridden"].as_bool(), p["handoff_allowed"].as_bool()),
        (Some("after:40"), Some(false), Some(true)),
        "without the flag the saved answer applies again: {p}"
    );
    stop(run);

    // A value the flag does not know is a usage error.
    for bad in ["sometimes", "after:0", "after:120", "after:x"] {
        let out = command(&db).args(["run", "--ai-answer", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--ai-answer"), "{bad}: {err}");
    }

    // One desk_settings row holds it; `sipdesk ai policy` shows the same.
    let store = Store::open_with_secrets(&db, SecretStore::file_only(&db)).unwrap();
    let row: Value = serde_json::from_str(&store.setting("ai_policy").unwrap().unwrap()).unwrap();
    assert_eq!((row["answer"].as_str(), row.get("answer_overridden")), (Some("after:40"), None), "{row}");
    let out = command(&db).args(["ai", "policy"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, p);
}

fn ai(db: &Path, args: &[&str]) -> std::process::Output {
    command(db).arg("ai").args(args).output().unwrap()
}

fn list(db: &Path) -> Vec<Value> {
    let out = ai(db, &["list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(API_KEY) && !text.contains(ACCESS_KEY), "a key in the listing: {text}");
    serde_json::from_str(&text).unwrap()
}

fn by_provider(db: &Path, p: &str) -> Value {
    list(db).into_iter().find(|a| a["provider"] == p).unwrap()
}

/// The key is in the secrets file (when `stored`) and in no other file beside the database: not
/// the database, its WAL, its lock.
fn assert_key_where(db: &Path, key: &str, stored: bool) {
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let holds = bytes.windows(key.len()).any(|w| w == key.as_bytes());
        let secrets = path.file_name().unwrap().to_string_lossy().ends_with(".secrets");
        assert_eq!(holds, secrets && stored, "{}: key present = {holds}", path.display());
    }
}

#[test]
fn ai_agents_from_the_cli_keep_their_keys_out_of_the_database_and_the_logs() {
    let (_d, db) = temp_db();
    let mut logs = String::new();
    let mut keep = |out: &std::process::Output| {
        logs.push_str(&String::from_utf8_lossy(&out.stdout));
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
    };

    // A new install: the offline agent, enabled and the default; the cloud ones off.
    let agents = list(&db);
    let shape: Vec<_> = agents
        .iter()
        .map(|a| (a["provider"].as_str().unwrap(), a["enabled"].as_bool().unwrap(), a["is_default"].as_bool().unwrap()))
        .collect();
    assert_eq!(shape, [("local", true, true), ("openai", false, false), ("doubao", false, false)]);
    assert_eq!(agents[1]["endpoint"], "wss://api.openai.com/v1/realtime");
    assert_eq!(agents[2]["endpoint"], "wss://openspeech.bytedance.com/api/v3/realtime/dialogue");
    assert!(agents.iter().all(|a| a["api_key_set"] == false && a.get("api_key").is_none()));
    let table = ai(&db, &["list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.lines().next().unwrap().contains("KEY") && text.contains("openai") && text.contains("none"), "{text}");

    // Enabling a cloud provider needs its key (and for Doubao its app id): exit 2, field lines.
    let out = ai(&db, &["edit", "openai", "--enable"]);
    keep(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api_key: a key is required"), "{out:?}");
    let out = ai(&db, &["edit", "doubao", "--enable"]);
    keep(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("api_key:") && err.contains("app_id:"), "{err}");
    assert_eq!(by_provider(&db, "openai")["enabled"], false);

    // With the key on stdin it is enabled; the key goes to the secrets file only.
    let out = run_with_stdin(
        &db,
        &["ai", "edit", "openai", "--api-key-stdin", "--enable", "--voice", "marin"],
        &format!("{API_KEY}\n"),
    );
    keep(&out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let openai = by_provider(&db, "openai");
    assert_eq!(
        (openai["enabled"].as_bool(), openai["api_key_set"].as_bool(), openai["voice"].as_str()),
        (Some(true), Some(true), Some("marin"))
    );
    assert_key_where(&db, API_KEY, true);
    let store = Store::open_with_secrets(&db, SecretStore::file_only(&db)).unwrap();
    assert_eq!(store.ai_agent_config(openai["id"].as_i64().unwrap()).unwrap().api_key.expose(), API_KEY);
    drop(store);

    // Other edits keep the key; a bad field is refused and changes nothing.
    let out =
        ai(&db, &["edit", "openai", "--instructions", "You are the front desk's assistant. Say you are automated."]);
    keep(&out);
    assert!(out.status.success());
    assert_eq!(by_provider(&db, "openai")["api_key_set"], true);
    let out = ai(&db, &["edit", "openai", "--endpoint", "ws://api.openai.com/v1/realtime", "--language", "english"]);
    keep(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("endpoint: plain ws://") && err.contains("language:"),
        "{err}"
    );
    assert_eq!(by_provider(&db, "openai")["endpoint"], "wss://api.openai.com/v1/realtime");
    // A test server on this machine may use plain ws://.
    let out = ai(&db, &["edit", "2", "--endpoint", "ws://127.0.0.1:9/v1/realtime"]);
    keep(&out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Doubao with its app id and access key; then the default for handoffs.
    let out = run_with_stdin(
        &db,
        &[
            "ai",
            "edit",
            "doubao",
            "--app-id",
            "1234567890",
            "--api-key-stdin",
            "--enable",
            "--greeting",
            "您好，我是自动语音助手。",
        ],
        &format!("{ACCESS_KEY}\n"),
    );
    keep(&out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ai(&db, &["default", "doubao"]);
    keep(&out);
    assert!(out.status.success());
    let agents = list(&db);
    let defaults: Vec<_> = agents.iter().filter(|a| a["is_default"] == true).map(|a| a["provider"].clone()).collect();
    assert_eq!(defaults, ["doubao"]);
    assert_eq!(agents[2]["greeting"], "您好，我是自动语音助手。");
    assert_key_where(&db, ACCESS_KEY, true);
    // The default cannot be disabled; a disabled provider cannot become the default.
    let out = ai(&db, &["edit", "doubao", "--disable"]);
    keep(&out);
    assert!(out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("enabled:"), "{out:?}");
    let out = ai(&db, &["default", "local"]);
    assert!(out.status.success());
    let out = ai(&db, &["edit", "openai", "--disable", "--clear-api-key"]);
    keep(&out);
    assert!(out.status.success(), "{out:?}");
    let out = ai(&db, &["default", "openai"]);
    keep(&out);
    assert!(out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("is_default:"), "{out:?}");
    assert_eq!(by_provider(&db, "openai")["api_key_set"], false);
    assert_key_where(&db, API_KEY, false);
    let out = ai(&db, &["edit", "gemini"]);
    assert_eq!(out.status.code(), Some(2));

    // A running desk reads the same settings, and logs no key either.
    let mut run = Running::start(&db, &["--audio", "null"], &[]);
    let p = ai_policy(&mut run, 1);
    assert_eq!(p["answer"], "never");
    let stderr = stop(run);
    logs.push_str(&stderr);
    assert!(!logs.contains(API_KEY) && !logs.contains(ACCESS_KEY), "a key reached a log:\n{logs}");
    assert!(logs.contains("AI agent configuration saved"), "{logs}");
}
