//! Incoming calls through a real Kamailio: SIPp's built-in UAC calls the registered desk, which
//! auto-answers with an SDP answer, takes the ACK and the BYE, and reports each step as a `call`
//! event. Also: a ringing call that the caller's BYE cannot reach yet (no dialog) gets 481, and an
//! offer with no common codec gets 488. (Audio checks come with the media work.)

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::sipdesk::{add_account, Running};

fn call(state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "call" && v["state"] == state
}

fn registered(id: i64) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered"
}

#[test]
fn sipp_calls_the_desk_which_auto_answers_and_sees_the_bye() {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("incoming_call", &needed) {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let mut run = Running::start(&db, &["--auto-answer", "--audio", "null"], &[]);
    run.wait_for("registered", Duration::from_secs(10), registered(id));
    let port = sipdesk_e2e::kamailio::free_udp_tcp_port();
    let media = sipdesk_e2e::kamailio::free_udp_tcp_port();
    let trace = tempfile::tempdir().unwrap();
    let sipp = Command::new("sipp")
        .args(["-sn", "uac", &format!("127.0.0.1:{}", k.port), "-s", "1001", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-m", "1", "-d", "1000", "-nostdin", "-timeout", "20s", "-timeout_error", "-trace_err", "-trace_msg"])
        .current_dir(trace.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let traces = || std::fs::read_dir(trace.path()).unwrap().flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(sipp.success(), "SIPp's call failed:\n{}\nsipdesk: {}", traces(), run.stderr_text());
    let incoming = run.wait_for("incoming", Duration::from_secs(10), call("incoming"));
    assert_eq!(incoming["direction"], "in");
    assert_eq!(incoming["codec"], "PCMU");
    assert!(incoming["remote"].as_str().unwrap().contains("sipp@"), "{incoming}");
    let active = run.wait_for("active", Duration::from_secs(10), call("active"));
    assert_eq!(active["call_id"], incoming["call_id"]);
    let ended = run.wait_for("ended", Duration::from_secs(10), call("ended"));
    assert_eq!(ended["reason"], "remote_hangup");
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
}
