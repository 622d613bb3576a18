//! Call settings. The per-account DTMF mode: `sipdesk account add|edit --dtmf` (stored, listed,
//! kept, bad values refused with exit 2 and the field's error), `SIP_DTMF_MODE` for the
//! environment account. The transfer consent policy: the `set_refer_policy` command, `status`
//! showing the policy in force, the choice kept across restarts and `SIPDESK_REFER` overriding it.
//! Against baresip through Kamailio: an account set to `info` sends its digits as SIP INFO though
//! the phone offered telephone-event, and after a live edit back to `rfc4733` as RTP events; a
//! saved `refuse` declines the phone's REFER with 603 after a restart, without asking.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sipdesk_core::store::{SecretStore, Store};
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::sipdesk::{add_account, command, run_with_stdin, Running};

const PASSWORD: &str = "Sup3r-s3cret-pw";
const WAIT: Duration = Duration::from_secs(10);

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    (dir, db)
}

fn list(db: &Path) -> Vec<Value> {
    let out = command(db).args(["account", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn edit(db: &Path, id: i64, args: &[&str]) -> std::process::Output {
    command(db).args(["account", "edit", &id.to_string()]).args(args).output().unwrap()
}

#[test]
fn dtmf_flag_is_stored_listed_kept_and_validated() {
    let (_d, db) = temp_db();
    let a = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--dtmf", "INFO"], PASSWORD);
    let b = add_account(&db, &["--host", "127.0.0.1", "--user", "1002"], PASSWORD);
    let l = list(&db);
    assert_eq!((l[0]["id"].as_i64(), l[0]["dtmf_mode"].as_str()), (Some(a), Some("info")), "stored in lower case");
    assert_eq!((l[1]["id"].as_i64(), l[1]["dtmf_mode"].as_str()), (Some(b), Some("rfc4733")), "the default");
    let plain = command(&db).args(["account", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&plain.stdout);
    let column = |line: usize| text.lines().nth(line).unwrap().split_whitespace().nth(6).unwrap().to_string();
    assert_eq!((column(0), column(1), column(2)), ("DTMF".into(), "info".into(), "rfc4733".into()), "{text}");

    // Other edits keep the mode; --dtmf replaces it.
    assert!(edit(&db, a, &["--port", "5070"]).status.success());
    assert_eq!(list(&db)[0]["dtmf_mode"], "info");
    assert!(edit(&db, a, &["--dtmf", "rfc4733"]).status.success());
    assert_eq!(list(&db)[0]["dtmf_mode"], "rfc4733");
    assert!(edit(&db, b, &["--dtmf", "info"]).status.success());
    assert_eq!(list(&db)[1]["dtmf_mode"], "info");

    // A mode the core does not know: exit 2, the field's message, nothing changed.
    let out = edit(&db, b, &["--dtmf", "inband"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dtmf_mode: DTMF mode must be rfc4733 or info"), "{err}");
    assert_eq!(list(&db)[1]["dtmf_mode"], "info", "a rejected edit changes nothing");
    let out = run_with_stdin(
        &db,
        &[
            "account",
            "add",
            "--host",
            "127.0.0.1",
            "--user",
            "1003",
            "--dtmf",
            "rfc2833",
            "--port",
            "0",
            "--password-stdin",
        ],
        "pw\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server_port:") && err.contains("dtmf_mode:"), "every bad field, one line each: {err}");
    assert_eq!(list(&db).len(), 2, "nothing was stored");

    let help = command(&db).args(["account", "edit", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--dtmf <MODE>") && help.contains("rfc4733") && help.contains("info"), "{help}");
}

#[test]
fn an_invalid_sip_dtmf_mode_makes_the_environment_account_invalid() {
    let (_d, db) = temp_db();
    let env = [("SIP_SERVER_HOST", "127.0.0.1"), ("SIP_USERNAME", "3001"), ("SIP_DTMF_MODE", "inband")];
    let mut run = Running::start(&db, &["--audio", "null"], &env);
    let status = run.command(json!({"id": 1, "cmd": "status"}));
    assert_eq!(status["result"]["accounts"].as_array().map(Vec::len), Some(0), "{status}");
    let (_, stderr) = run.terminate(Duration::from_secs(2));
    assert!(stderr.contains("SIP_* environment account is invalid") && stderr.contains("dtmf_mode:"), "{stderr}");
}

fn refer_policy(run: &mut Running, id: u32) -> String {
    let status = run.command(json!({"id": id, "cmd": "status"}));
    assert_eq!(status["event"], "ack", "{status}");
    status["result"]["refer_policy"].as_str().unwrap_or_else(|| panic!("no refer_policy: {status}")).to_string()
}

fn stop(run: Running) {
    // `sipdesk run` installs its SIGTERM handler only after it starts reading stdin, so a SIGTERM
    // right after the first reply can still kill it outright (exit by signal); give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert_eq!(code.code(), Some(0), "{stderr}");
}

#[test]
fn set_refer_policy_is_kept_across_restarts_and_sipdesk_refer_overrides_it() {
    let (_d, db) = temp_db();
    let mut run = Running::start(&db, &["--audio", "null"], &[]);
    assert_eq!(refer_policy(&mut run, 1), "ask", "the default");
    let r = run.command(json!({"id": 2, "cmd": "set_refer_policy", "policy": "refuse"}));
    assert_eq!((r["event"].as_str(), &r["result"]), (Some("ack"), &json!({"policy": "refuse"})), "{r}");
    assert_eq!(refer_policy(&mut run, 3), "refuse");
    for (n, bad) in
        [json!({"policy": "maybe"}), json!({}), json!({"policy": 1}), json!({"policy": null})].iter().enumerate()
    {
        let mut cmd = bad.clone();
        cmd["id"] = json!(10 + n);
        cmd["cmd"] = json!("set_refer_policy");
        let r = run.command(cmd);
        assert_eq!((r["event"].as_str(), r["code"].as_str()), (Some("error"), Some("invalid_argument")), "{r}");
        assert!(r["message"].as_str().unwrap().contains("\"ask\", \"auto\" or \"refuse\""), "{r}");
    }
    assert_eq!(refer_policy(&mut run, 4), "refuse", "refused commands change nothing");
    let r = run.command(json!({"id": 5, "cmd": "set_refer_policy", "policy": " Auto "}));
    assert_eq!(r["result"], json!({"policy": "auto"}), "{r}");
    stop(run);

    // A restart keeps the choice.
    let mut run = Running::start(&db, &["--audio", "null"], &[]);
    assert_eq!(refer_policy(&mut run, 1), "auto");
    stop(run);

    // SIPDESK_REFER wins while it is set; a choice made meanwhile is saved for later.
    let mut run = Running::start(&db, &["--audio", "null"], &[("SIPDESK_REFER", "ask")]);
    assert_eq!(refer_policy(&mut run, 1), "ask");
    let r = run.command(json!({"id": 2, "cmd": "set_refer_policy", "policy": "refuse"}));
    assert_eq!(r["result"], json!({"policy": "refuse"}), "{r}");
    assert_eq!(refer_policy(&mut run, 3), "ask", "the environment still decides");
    stop(run);
    // A value it does not know is ignored.
    let mut run = Running::start(&db, &["--audio", "null"], &[("SIPDESK_REFER", "sometimes")]);
    assert_eq!(refer_policy(&mut run, 1), "refuse");
    stop(run);

    // One desk_settings row holds it.
    let store = Store::open_with_secrets(&db, SecretStore::file_only(&db)).unwrap();
    assert_eq!(store.setting("refer_policy").unwrap().as_deref(), Some("refuse"));
}

// ---- against baresip through Kamailio ----

fn setup(test: &str) -> Option<(Kamailio, tempfile::TempDir, PathBuf, Baresip)> {
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs(test, &needed) {
        return None;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer: true,
        record_dir: dir.path().join("phone-rec"),
        ..BaresipConfig::default()
    });
    phone.wait_registered(WAIT);
    let db = dir.path().join("desk.db");
    Some((k, dir, db, phone))
}

fn registered(id: i64) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered"
}

fn call_state(id: String, s: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "call" && v["call_id"] == id.as_str() && v["state"] == s
}

/// Dials the phone, sends `digits` once both sides are up, and checks each digit's `dtmf` event
/// (sent with `method`) and that the phone heard it; then hangs up.
fn call_and_send(desk: &mut Running, phone: &mut Baresip, k: &Kamailio, digits: &str, method: &str) {
    let r = desk.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:2001@127.0.0.1:{}", k.port)}));
    assert_eq!(r["event"], "ack", "{r}");
    let call_id = r["result"]["call_id"].as_str().unwrap().to_string();
    desk.wait_for("active", WAIT, call_state(call_id.clone(), "active"));
    phone.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1000));
    let r = desk.command(json!({"id": 2, "cmd": "dtmf", "call_id": call_id, "digits": digits}));
    assert_eq!(r["event"], "ack", "{r}");
    for want in digits.chars().map(String::from) {
        // An RFC 4733 digit's event may come before the command's ack: look among those seen too.
        let (id, digit) = (call_id.clone(), want.clone());
        let e = desk.wait_for("dtmf out", Duration::from_secs(5), move |v| {
            v["event"] == "dtmf"
                && v["direction"] == "out"
                && v["call_id"] == id.as_str()
                && v["digit"] == digit.as_str()
        });
        assert_eq!((e["digit"].as_str(), e["method"].as_str()), (Some(want.as_str()), Some(method)), "{e}");
        let e = phone.wait_event("CALL_DTMF_START", Duration::from_secs(5));
        assert_eq!(e["param"].as_str(), Some(want.as_str()), "the phone heard {want}: {e}");
    }
    let r = desk.command(json!({"id": 3, "cmd": "hangup", "call_id": call_id}));
    assert_eq!(r["event"], "ack", "{r}");
    desk.wait_for("ended", Duration::from_secs(5), call_state(call_id, "ended"));
    phone.wait_event("CALL_CLOSED", Duration::from_secs(5));
}

#[test]
fn an_account_set_to_info_sends_dtmf_as_sip_info_and_rfc4733_after_an_edit() {
    let Some((k, _dir, db, mut phone)) = setup("call_settings_dtmf") else { return };
    let port = k.port.to_string();
    let args =
        ["--host", "127.0.0.1", "--port", &port, "--user", "1001", "--interval", "60", "--activate", "--dtmf", "info"];
    let id = add_account(&db, &args, "pw-1001");
    let mut desk = Running::start(&db, &["--audio", "null"], &[]);
    desk.wait_for("registered", WAIT, registered(id));
    // baresip offers telephone-event, yet the account's mode sends SIP INFO.
    call_and_send(&mut desk, &mut phone, &k, "42", "info");

    // Edited beside the running desk: the account is reloaded and its next call uses RFC 4733.
    assert!(edit(&db, id, &["--dtmf", "rfc4733"]).status.success());
    desk.wait_next("reloaded", WAIT, |v| v["event"] == "account_loaded" && v["account_id"] == id);
    desk.wait_next("registered again", WAIT, registered(id));
    std::thread::sleep(Duration::from_millis(1100)); // baresip names recordings by the second
    call_and_send(&mut desk, &mut phone, &k, "7", "rfc4733");
    stop(desk);
}

#[test]
fn a_saved_refuse_policy_declines_the_far_ends_transfer_after_a_restart() {
    let Some((k, _dir, db, mut phone)) = setup("call_settings_refer") else { return };
    let id = add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    let mut desk = Running::start(&db, &["--audio", "null"], &[]);
    let r = desk.command(json!({"id": 1, "cmd": "set_refer_policy", "policy": "refuse"}));
    assert_eq!(r["event"], "ack", "{r}");
    stop(desk);

    let mut desk = Running::start(&db, &["--auto-answer", "--audio", "null"], &[]);
    desk.wait_for("registered", WAIT, registered(id));
    assert_eq!(refer_policy(&mut desk, 2), "refuse");
    phone.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    let active = desk.wait_for("active", WAIT, |v| v["event"] == "call" && v["state"] == "active");
    let call_id = active["call_id"].as_str().unwrap().to_string();
    phone.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    phone.command("transfer", Some("2002")).expect("baresip transfer");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !phone.log().contains("transfer failed: 603") {
        assert!(Instant::now() < deadline, "the phone was not told 603: {}", phone.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Declined without asking: a transfer_request would have come before the 603.
    let status = desk.command(json!({"id": 3, "cmd": "status"}));
    assert_eq!(status["event"], "ack");
    assert!(!desk.seen().iter().any(|v| v["event"] == "transfer_request"), "not asked: {:#?}", desk.seen());
    // baresip sometimes ends the call itself after a failed transfer; we never do.
    if !desk.seen().iter().any(call_state(call_id.clone(), "ended")) {
        phone.hangup();
    }
    let ended = desk.wait_for("ended", Duration::from_secs(5), call_state(call_id, "ended"));
    assert_eq!(ended["reason"], "remote_hangup", "{ended}");
    stop(desk);
}
