//! The headless contract of `sipdesk` (README "Headless", docs/EVENTS.md): account commands,
//! `run --json` events and commands, malformed input, instance lock, live changes, environment
//! account, broken databases. Every stdout line is validated against docs/EVENTS.md.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::sipdesk::{add_account, command, run_with_stdin, Running};

const PASSWORD: &str = "Sup3r-s3cret-pw";
const WAIT: Duration = Duration::from_secs(10);

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    (dir, db)
}

fn loaded(id: i64) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "account_loaded" && v["account_id"] == id
}

#[test]
fn account_add_and_list_round_trip_without_the_password() {
    let (dir, db) = temp_db();
    let a = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--activate"], PASSWORD);
    let b = add_account(
        &db,
        &[
            "--host",
            "::1",
            "--port",
            "5070",
            "--user",
            "1002",
            "--protocol",
            "tcp",
            "--interval",
            "600",
            "--auth-user",
            "auth1002",
            "--domain",
            "desk.example",
        ],
        PASSWORD,
    );
    let out = command(&db).args(["account", "list", "--json"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(PASSWORD), "list shows no password");
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(list.len(), 2);
    let columns = [
        "id",
        "user_id",
        "server_host",
        "server_port",
        "username",
        "protocol",
        "is_active",
        "last_register_time",
        "register_interval",
        "created_at",
        "updated_at",
        "display_name",
        "auth_username",
        "domain",
        "outbound_proxy",
        "is_default",
        "codecs",
    ];
    for c in columns {
        assert!(list[0].get(c).is_some(), "key {c} missing");
    }
    assert!(list[0].get("password").is_none());
    assert_eq!(
        (
            list[0]["id"].as_i64(),
            list[0]["is_active"].as_bool(),
            list[0]["server_port"].as_i64(),
            list[0]["is_default"].as_bool()
        ),
        (Some(a), Some(true), Some(5060), Some(true))
    );
    assert_eq!(list[1]["id"].as_i64(), Some(b));
    assert_eq!(
        (list[1]["server_host"].as_str(), list[1]["protocol"].as_str(), list[1]["register_interval"].as_i64()),
        (Some("::1"), Some("TCP"), Some(600))
    );
    assert_eq!(
        (list[1]["auth_username"].as_str(), list[1]["domain"].as_str(), list[1]["is_active"].as_bool()),
        (Some("auth1002"), Some("desk.example"), Some(false))
    );
    // The database file holds a reference, never the password itself.
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap().path();
        if !f.to_string_lossy().ends_with(".secrets") {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()),
                "{} holds the password",
                f.display()
            );
        }
    }
    let plain = command(&db).args(["account", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&plain.stdout).contains("127.0.0.1:5060"));
}

#[test]
fn bad_fields_and_bad_arguments_exit_2_with_clear_messages() {
    let (_d, db) = temp_db();
    let out = run_with_stdin(
        &db,
        &["account", "add", "--host", "127.0.0.1", "--port", "70000", "--user", "1001", "--password-stdin"],
        "pw\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server_port: port must be between 1 and 65535"));
    let out = run_with_stdin(
        &db,
        &["account", "add", "--host", "bad host!", "--user", "a b", "--protocol", "sctp", "--password-stdin"],
        "\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for needle in ["server_host:", "username:", "protocol: protocol must be UDP or TCP"] {
        assert!(err.contains(needle), "{needle} missing in {err}");
    }
    let list = command(&db).args(["account", "list", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]", "nothing was stored");
    for args in [
        &["run", "--bogus"][..],
        &["account", "frobnicate"],
        &["run", "--audio", "file:only-one.wav"],
        &["account", "add", "--host", "h"],
    ] {
        let out = command(&db).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = command(&db).args(["account", "remove", "42"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account with id 42"));
}

#[test]
fn edit_keeps_the_password_and_changes_only_given_fields() {
    let (_d, db) = temp_db();
    let id = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--activate"], PASSWORD);
    let out = command(&db)
        .args(["account", "edit", &id.to_string(), "--port", "5080", "--display-name", "前台 1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<Value> =
        serde_json::from_slice(&command(&db).args(["account", "list", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(
        (list[0]["server_port"].as_i64(), list[0]["display_name"].as_str(), list[0]["username"].as_str()),
        (Some(5080), Some("前台 1"), Some("1001"))
    );
    assert_eq!(list[0]["password_set"], true);
    for (cmd, key, want) in [("deactivate", "is_active", false), ("activate", "is_active", true)] {
        assert!(command(&db).args(["account", cmd, &id.to_string()]).status().unwrap().success());
        let list: Vec<Value> =
            serde_json::from_slice(&command(&db).args(["account", "list", "--json"]).output().unwrap().stdout).unwrap();
        assert_eq!(list[0][key], want, "{cmd}");
    }
    assert!(command(&db).args(["account", "remove", &id.to_string()]).status().unwrap().success());
    let list = command(&db).args(["account", "list", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
}

#[test]
fn run_json_loads_active_accounts_answers_commands_and_stops_cleanly() {
    let (_d, db) = temp_db();
    let a = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--activate"], PASSWORD);
    let b = add_account(&db, &["--host", "127.0.0.1", "--user", "1002", "--protocol", "tcp", "--activate"], PASSWORD);
    let inactive = add_account(&db, &["--host", "127.0.0.1", "--user", "1003"], PASSWORD);
    let mut run = Running::start(&db, &["--audio", "null"], &[]);
    let la = run.wait_for("account_loaded a", WAIT, loaded(a));
    assert_eq!(
        (la["server"].as_str(), la["username"].as_str(), la["protocol"].as_str()),
        (Some("127.0.0.1:5060"), Some("1001"), Some("UDP"))
    );
    run.wait_for("account_loaded b", WAIT, loaded(b));
    let status = run.command(json!({"id": 1, "cmd": "status"}));
    assert_eq!(status["event"], "ack");
    let ids: Vec<i64> =
        status["result"]["accounts"].as_array().unwrap().iter().map(|x| x["account_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [a, b]);
    // Nothing listens on 127.0.0.1:5060 here: the account is trying, or has failed to register.
    let state = status["result"]["accounts"][0]["registration"]["state"].as_str().unwrap().to_string();
    assert!(state == "registering" || state == "failed", "{state}");
    assert!(!run.seen().iter().any(loaded(inactive)), "inactive accounts are not loaded");

    // Malformed input: each gets an error line, none stops the process.
    let cases: [(&str, &str); 7] = [
        ("this is not json", "bad_json"),
        ("{\"id\": 2, \"cmd\": \"status\"", "bad_json"),
        ("[1,2,3]", "bad_command"),
        ("{\"id\": 3}", "bad_command"),
        ("{\"id\": 4, \"cmd\": 17}", "bad_command"),
        ("{\"id\": 5, \"cmd\": \"launch_rockets\"}", "unknown_command"),
        ("\u{0}\u{1}\u{ff}", "bad_json"),
    ];
    for (line, code) in cases {
        run.send_raw(line);
        let err = run.wait_next(code, WAIT, |v| {
            v["event"] == "error" && v["code"] == code && !v["message"].as_str().unwrap_or("").is_empty()
        });
        assert_eq!(err["code"], code, "{line}");
    }
    run.send_raw(&"x".repeat(200_000));
    run.wait_next("line_too_long", WAIT, |v| v["code"] == "line_too_long");
    let after = run.command(json!({"id": "after-garbage", "cmd": "status"}));
    assert_eq!(after["event"], "ack", "still answering after bad input");

    // EOF on stdin does not stop it; SIGTERM does, with exit 0 within 2 s.
    run.close_stdin();
    std::thread::sleep(Duration::from_millis(300));
    assert!(run.is_running(), "EOF must not stop sipdesk run");
    let (status, stderr) = run.terminate(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("account loaded") && stderr.contains("127.0.0.1:5060") && stderr.contains("1001"),
        "one log line per account: {stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "the password reached the log");
}

#[test]
fn a_second_instance_on_the_same_database_refuses_to_run() {
    let (_d, db) = temp_db();
    let a = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--activate"], PASSWORD);
    let mut first = Running::start(&db, &[], &[]);
    first.wait_for("first instance loaded", WAIT, loaded(a));
    let second = Running::start(&db, &[], &[]);
    let (status, stderr) = second.wait_exit(WAIT);
    assert_eq!(status.code(), Some(3));
    assert!(stderr.contains("another SipDesk instance") && stderr.contains("is already running"), "{stderr}");
    assert!(first.is_running());
    // `sipdesk call` beside it does not register twice either: it points at the running desk.
    let out = command(&db).args(["call", "2002", "--audio", "null"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"cmd\":\"dial\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = first.terminate(Duration::from_secs(2));
    assert!(status.success());
}

#[test]
fn account_commands_beside_a_running_instance_apply_live() {
    let (_d, db) = temp_db();
    let a = add_account(&db, &["--host", "127.0.0.1", "--user", "1001", "--activate"], PASSWORD);
    let mut run = Running::start(&db, &[], &[]);
    run.wait_for("a loaded", WAIT, loaded(a));
    let b = add_account(&db, &["--host", "127.0.0.1", "--user", "1002", "--activate"], PASSWORD);
    run.wait_for("b loaded live", WAIT, loaded(b));
    assert!(command(&db).args(["account", "deactivate", &a.to_string()]).status().unwrap().success());
    run.wait_for("a unloaded live", WAIT, |v| {
        v["event"] == "account_unloaded" && v["account_id"] == a && v["reason"] == "deactivated"
    });
    assert!(command(&db).args(["account", "edit", &b.to_string(), "--port", "5099"]).status().unwrap().success());
    run.wait_for("b reloaded with its new port", WAIT, |v| {
        v["event"] == "account_loaded" && v["account_id"] == b && v["server"] == "127.0.0.1:5099"
    });
    let status = run.command(json!({"id": 9, "cmd": "status"}));
    assert_eq!(status["result"]["accounts"].as_array().unwrap().len(), 1);
    let (code, _) = run.terminate(Duration::from_secs(2));
    assert!(code.success());
}

#[test]
fn the_environment_defines_one_more_account_and_wins_over_the_same_binding() {
    let (_d, db) = temp_db();
    let same = add_account(&db, &["--host", "127.0.0.1", "--user", "2001", "--activate"], PASSWORD);
    let other = add_account(&db, &["--host", "127.0.0.1", "--user", "2002", "--activate"], PASSWORD);
    let env = [
        ("SIP_SERVER_HOST", "127.0.0.1"),
        ("SIP_SERVER_PORT", "5060"),
        ("SIP_USERNAME", "2001"),
        ("SIP_PASSWORD", "env-only-pw"),
        ("SIP_PROTOCOL", "tcp"),
        ("SIP_REGISTER_INTERVAL", "120"),
    ];
    let mut run = Running::start(&db, &[], &env);
    let e = run.wait_for("env account", WAIT, loaded(0));
    assert_eq!(e["protocol"], "TCP");
    run.wait_for("other stored account", WAIT, loaded(other));
    let status = run.command(json!({"id": 1, "cmd": "status"}));
    let accounts = status["result"]["accounts"].as_array().unwrap();
    assert_eq!(accounts[0]["source"], "env");
    assert!(!run.seen().iter().any(loaded(same)), "the stored twin of the env account is not loaded");
    let (_, stderr) = run.terminate(Duration::from_secs(2));
    assert!(!stderr.contains("env-only-pw"));

    // An invalid environment account is reported and ignored; stored accounts still load.
    let mut run = Running::start(
        &db,
        &[],
        &[("SIP_SERVER_HOST", "127.0.0.1"), ("SIP_SERVER_PORT", "99999"), ("SIP_USERNAME", "x")],
    );
    run.wait_for("stored account", WAIT, loaded(same));
    assert!(!run.seen().iter().any(loaded(0)));
    let (_, stderr) = run.terminate(Duration::from_secs(2));
    assert!(stderr.contains("SIP_* environment account is invalid") && stderr.contains("server_port"), "{stderr}");
}

#[test]
fn db_flag_beats_sipdesk_db() {
    let (_d, db) = temp_db();
    let (_d2, other) = temp_db();
    add_account(&db, &["--host", "127.0.0.1", "--user", "1001"], PASSWORD);
    let out = command(&db).env("SIPDESK_DB", &other).args(["account", "list", "--json"]).output().unwrap();
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap().len(), 1);
    let c = std::process::Command::new(sipdesk_e2e::sipdesk::bin())
        .env("SIPDESK_DB", &other)
        .env("SIPDESK_SECRET_STORE", "file")
        .args(["account", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&c.stdout).trim(), "[]", "without --db, SIPDESK_DB chooses the file");
}

#[test]
fn a_broken_database_still_runs_and_says_why() {
    let (_d, db) = temp_db();
    std::fs::write(
        &db,
        b"definitely not a database file ......................................................................",
    )
    .unwrap();
    let before = std::fs::read(&db).unwrap();
    let mut run =
        Running::start(&db, &[], &[("SIP_SERVER_HOST", "127.0.0.1"), ("SIP_USERNAME", "3001"), ("SIP_PASSWORD", "pw")]);
    let e = run.wait_for("store_error", WAIT, |v| v["event"] == "store_error");
    assert_eq!(e["code"], "store_unreadable");
    run.wait_for("the env account still loads", WAIT, loaded(0));
    let status = run.command(json!({"id": 1, "cmd": "status"}));
    assert_eq!(status["result"]["store_error"]["code"], "store_unreadable");
    let (code, _) = run.terminate(Duration::from_secs(2));
    assert!(code.success());
    assert_eq!(std::fs::read(&db).unwrap(), before, "the broken file is never overwritten");
    let out = command(&db).args(["account", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be read"));
}
