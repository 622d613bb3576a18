//! Per-account codec order: `sipdesk account add|edit --codecs` (stored normalised, listed,
//! cleared with `default`, bad lists refused with exit 2 and the field's error), `SIP_CODECS`
//! for the environment account, and calls that follow the order both ways through Kamailio: a
//! SIPp caller offering PCMU then PCMA is answered with PCMA by an account that prefers it (and
//! with PCMU once its order is back to the default), and the desk's own offer lists PCMA first
//! for such an account (a SIPp callee checks the m= line).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::desk_rig::{self, call, DeskRig};
use sipdesk_e2e::sipdesk::{add_account, command, run_with_stdin, Running};
use sipdesk_e2e::sipp::{self, Uas};

const PASSWORD: &str = "Sup3r-s3cret-pw";
const WAIT: Duration = Duration::from_secs(10);

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    (dir, db)
}

fn list(db: &std::path::Path) -> Vec<Value> {
    let out = command(db).args(["account", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn edit(db: &std::path::Path, id: i64, args: &[&str]) -> std::process::Output {
    command(db).args(["account", "edit", &id.to_string()]).args(args).output().unwrap()
}

#[test]
fn codecs_flag_is_stored_listed_kept_and_cleared() {
    let (_d, db) = temp_db();
    let a = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--codecs", "Opus, PCMU"], PASSWORD);
    let b = add_account(&db, &["--host", "127.0.0.1", "--user", "1002"], PASSWORD);
    let l = list(&db);
    assert_eq!((l[0]["id"].as_i64(), l[0]["codecs"].as_str()), (Some(a), Some("opus,pcmu")), "stored normalised");
    assert_eq!((l[1]["id"].as_i64(), &l[1]["codecs"]), (Some(b), &Value::Null), "no order: null, the default");
    let plain = command(&db).args(["account", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.lines().next().unwrap().trim_end().ends_with("CODECS"), "{text}");
    assert!(text.lines().nth(1).unwrap().trim_end().ends_with("opus,pcmu"), "{text}");
    assert!(text.lines().nth(2).unwrap().trim_end().ends_with("default"), "{text}");

    // Other edits keep the order; --codecs replaces it; `default` clears it.
    assert!(edit(&db, a, &["--port", "5070"]).status.success());
    assert_eq!(list(&db)[0]["codecs"], "opus,pcmu");
    assert!(edit(&db, a, &["--codecs", "pcma"]).status.success());
    assert_eq!(list(&db)[0]["codecs"], "pcma");
    assert!(edit(&db, a, &["--codecs", "default"]).status.success());
    assert_eq!(list(&db)[0]["codecs"], Value::Null);

    let help = command(&db).args(["account", "add", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--codecs <LIST>") && help.contains("opus,pcmu,pcma") && help.contains("default"), "{help}");
}

#[test]
fn a_bad_codec_list_exits_2_with_the_field_error_and_changes_nothing() {
    let (_d, db) = temp_db();
    let out = run_with_stdin(
        &db,
        &["account", "add", "--host", "127.0.0.1", "--user", "1001", "--codecs", "pcmu,g729", "--password-stdin"],
        "pw\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("codecs: codecs must be names from pcmu, pcma, opus"), "{err}");
    assert!(list(&db).is_empty(), "nothing was stored");

    let id = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--codecs", "pcma,pcmu"], PASSWORD);
    for (bad, message) in [
        ("pcmu,PCMU", "codecs: a codec may be listed only once"),
        (",", "codecs: the codec list names no codec"),
        ("g722", "codecs: codecs must be names"),
    ] {
        let out = edit(&db, id, &["--codecs", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{bad}: {err}");
    }
    // Several bad fields are reported together, one line each.
    let out = edit(&db, id, &["--port", "0", "--codecs", "speex"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server_port:") && err.contains("codecs:"), "{err}");
    assert_eq!(list(&db)[0]["codecs"], "pcma,pcmu", "a rejected edit changes nothing");
}

#[test]
fn an_invalid_sip_codecs_makes_the_environment_account_invalid() {
    let (_d, db) = temp_db();
    let stored = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--activate"], PASSWORD);
    let env = [("SIP_SERVER_HOST", "127.0.0.1"), ("SIP_USERNAME", "3001"), ("SIP_CODECS", "pcmu,g729")];
    let mut run = Running::start(&db, &[], &env);
    run.wait_for("the stored account", WAIT, |v| v["event"] == "account_loaded" && v["account_id"] == stored);
    let status = run.command(json!({"id": 1, "cmd": "status"}));
    assert_eq!(status["result"]["accounts"].as_array().unwrap().len(), 1, "{status}");
    let (_, stderr) = run.terminate(Duration::from_secs(2));
    assert!(stderr.contains("SIP_* environment account is invalid") && stderr.contains("codecs:"), "{stderr}");
}

fn ready(test: &str) -> bool {
    sipdesk_e2e::require_programs(test, desk_rig::PROGRAMS)
}

/// One call from a SIPp caller offering PCMU then PCMA; returns the desk's `active` event and the
/// m= line of the desk's answer as SIPp received it.
fn incoming_call(rig: &DeskRig, run: &mut Running, name: &str) -> (Value, String) {
    let dir = rig.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (status, logs) = sipp::call(&dir, rig.k.port, "1001", Some("uac_pcmu_pcma"), &[]);
    assert!(status.success(), "{name}: SIPp's checks failed:\n{logs}\nsipdesk: {}", run.stderr_text());
    let active = run.wait_next("active", WAIT, call("active"));
    run.wait_next("ended", WAIT, call("ended"));
    let answer = logs
        .lines()
        .filter(|l| l.starts_with("m=audio ") && !l.contains(" 0 8 101"))
        .map(str::trim_end)
        .next()
        .unwrap_or_else(|| panic!("{name}: no answer m= line in SIPp's log:\n{logs}"))
        .to_string();
    (active, answer)
}

#[test]
fn an_account_preferring_pcma_answers_a_pcmu_first_offer_with_pcma() {
    if !ready("account_codecs_incoming") {
        return;
    }
    let rig = DeskRig::new();
    assert!(edit(&rig.db, rig.account_id, &["--codecs", "pcma,pcmu"]).status.success());
    // SIPDESK_CODECS is overruled by the account's own order.
    let mut run = rig.run(&["--auto-answer", "--audio", "null"], &[("SIPDESK_CODECS", "pcmu,pcma")]);
    let (active, answer) = incoming_call(&rig, &mut run, "pcma");
    assert_eq!((active["direction"].as_str(), active["codec"].as_str()), (Some("in"), Some("PCMA")), "{active}");
    assert!(answer.ends_with("RTP/AVP 8 101"), "the answer names PCMA: {answer}");

    // Back to the default order (edited live): the same offer is answered with PCMU.
    assert!(edit(&rig.db, rig.account_id, &["--codecs", "default"]).status.success());
    let id = rig.account_id;
    run.wait_next("re-registered after the edit", WAIT, move |v| {
        v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered"
    });
    let (active, answer) = incoming_call(&rig, &mut run, "default");
    assert_eq!(active["codec"], "PCMU", "{active}");
    assert!(answer.ends_with("RTP/AVP 0 101"), "the answer names PCMU: {answer}");

    let out = command(&rig.db).args(["history", "--json"]).output().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let codecs: Vec<_> = rows.iter().map(|r| r["codec"].as_str().unwrap_or("-")).collect();
    assert_eq!(codecs, ["PCMU", "PCMA"], "newest first");
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn an_account_preferring_pcma_offers_pcma_first() {
    if !ready("account_codecs_outgoing") {
        return;
    }
    let rig = DeskRig::new();
    assert!(edit(&rig.db, rig.account_id, &["--codecs", "pcma,pcmu"]).status.success());
    let mut uas = Uas::start(rig.dir.path(), Some("uas_expect_pcma_first"));
    let mut run = rig.run(&["--audio", "null"], &[]);
    let dialed = run.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:service@127.0.0.1:{}", uas.port)}));
    assert_eq!(dialed["event"], "ack", "{dialed}");
    let active = run.wait_for("active", WAIT, call("active"));
    assert_eq!((active["direction"].as_str(), active["codec"].as_str()), (Some("out"), Some("PCMA")), "{active}");
    let hung = run.command(json!({"id": 2, "cmd": "hangup", "call_id": active["call_id"]}));
    assert_eq!(hung["event"], "ack");
    run.wait_for("ended", WAIT, call("ended"));
    // The callee fails its call unless the offer's m= line lists PCMA (8) before PCMU (0).
    assert!(uas.finished_ok(Duration::from_secs(5)), "the callee did not see PCMA first in the offer");
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn sip_codecs_orders_the_environment_accounts_calls() {
    if !ready("account_codecs_env") {
        return;
    }
    // The rig's stored account is replaced by the environment account with the same binding.
    let rig = DeskRig::new();
    let port = rig.k.port.to_string();
    let env = [
        ("SIP_SERVER_HOST", "127.0.0.1"),
        ("SIP_SERVER_PORT", port.as_str()),
        ("SIP_USERNAME", "1001"),
        ("SIP_PASSWORD", "pw-1001"),
        ("SIP_REGISTER_INTERVAL", "60"),
        ("SIP_CODECS", "PCMA"),
    ];
    let mut run = Running::start(&rig.db, &["--auto-answer", "--audio", "null"], &env);
    run.wait_for("the environment account registered", WAIT, |v| {
        v["event"] == "registration" && v["account_id"] == 0 && v["state"] == "registered"
    });
    let (active, answer) = incoming_call(&rig, &mut run, "env");
    assert_eq!((active["account_id"].as_i64(), active["codec"].as_str()), (Some(0), Some("PCMA")), "{active}");
    assert!(answer.ends_with("RTP/AVP 8 101"), "{answer}");
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
}
