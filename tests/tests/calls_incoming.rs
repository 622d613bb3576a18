//! Incoming calls through a real Kamailio: SIPp's built-in UAC calls the registered desk, which
//! auto-answers with an SDP answer, takes the ACK and the BYE, and reports each step as a `call`
//! event.
//! offer with no common codec gets 488. Audio: with SIPp echoing RTP, the tone the desk plays from
//! a WAV comes back through the network and is recorded; its frequency is checked.

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
    sipp_call(&["--audio", "null"], &[]);
}

#[test]
fn the_desks_tone_comes_back_through_sipp_rtp_echo() {
    let dir = tempfile::tempdir().unwrap();
    let tone = dir.path().join("tone1400.wav");
    let heard = dir.path().join("heard.wav");
    sipdesk_e2e::audio::write_tone_wav(&tone, 1400.0, 8000, 4.0, -12.0, 0.0);
    let audio = format!("file:{},{}", tone.display(), heard.display());
    if !sipp_call(&["--audio", &audio], &["-rtp_echo", "-d", "3000"]) {
        return;
    }
    let (samples, rate) = sipdesk_e2e::audio::read_wav(&heard);
    let a = sipdesk_e2e::audio::analyse(&samples, rate);
    eprintln!("heard back: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms, {} ms", a.dominant_hz, a.rms_dbfs, a.coverage, a.longest_gap_ms, a.duration_ms);
    assert!((a.dominant_hz - 1400.0).abs() < 28.0, "dominant {:.1} Hz", a.dominant_hz);
    assert!((a.rms_dbfs + 12.0).abs() < 3.0, "level {:.1} dBFS", a.rms_dbfs);
    assert!(a.coverage > 0.6, "coverage {:.2}", a.coverage);
    assert!(a.longest_gap_ms <= 60, "gap {} ms", a.longest_gap_ms);
}

#[test]
fn a_hold_reinvite_is_answered_recvonly_and_utf8_names_survive() {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("reinvite", &needed) {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let mut run = Running::start(&db, &["--auto-answer", "--audio", "null"], &[]);
    run.wait_for("registered", Duration::from_secs(10), registered(id));
    let (port, media) = (sipdesk_e2e::kamailio::free_udp_tcp_port(), sipdesk_e2e::kamailio::free_udp_tcp_port());
    let scenario = sipdesk_e2e::repo_root().join("tests/sipp/uac_reinvite.xml");
    let sipp = Command::new("sipp")
        .arg("-sf").arg(&scenario)
        .args([&format!("127.0.0.1:{}", k.port), "-s", "1001", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error", "-trace_err", "-trace_msg"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let traces = || std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "log")).map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(sipp.success(), "SIPp's checks failed:\n{}\nsipdesk: {}", traces(), run.stderr_text());
    let incoming = run.wait_for("incoming", Duration::from_secs(5), call("incoming"));
    assert!(incoming["remote"].as_str().unwrap().contains("Caller 张"), "{incoming}");
    let ended = run.wait_for("ended", Duration::from_secs(5), call("ended"));
    assert_eq!(ended["reason"], "remote_hangup");
    let out = sipdesk_e2e::sipdesk::command(&db).args(["history", "--json"]).output().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["display_name"], "Caller 张");
}

/// Runs `tests/sipp/<scenario>.xml` as a caller against a desk started with `desk_args`;
/// returns the desk's `ended` event (None if the programs are missing outside CI).
fn scenario_call(scenario: &str, desk_args: &[&str], expect: &[&'static str]) -> Option<Value> {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs(scenario, &needed) {
        return None;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let mut run = Running::start(&db, desk_args, &[]);
    run.wait_for("registered", Duration::from_secs(10), registered(id));
    let (port, media) = (sipdesk_e2e::kamailio::free_udp_tcp_port(), sipdesk_e2e::kamailio::free_udp_tcp_port());
    let xml = sipdesk_e2e::repo_root().join(format!("tests/sipp/{scenario}.xml"));
    let sipp = Command::new("sipp")
        .arg("-sf").arg(&xml)
        .args([&format!("127.0.0.1:{}", k.port), "-s", "1001", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error", "-trace_err", "-trace_msg"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let traces = std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "log")).map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(sipp.success(), "{scenario}: SIPp's checks failed:\n{traces}\nsipdesk: {}", run.stderr_text());
    let ended = run.wait_for("ended", Duration::from_secs(5), call("ended"));
    let states: Vec<&str> = run.seen().iter().filter(|v| v["event"] == "call").map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, expect, "{scenario}");
    Some(ended)
}

#[test]
fn a_caller_cancelling_while_it_rings_gets_487() {
    if let Some(ended) = scenario_call("uac_cancel", &["--audio", "null"], &["incoming", "ringing", "ended"]) {
        assert_eq!(ended["reason"], "cancelled");
    }
}

#[test]
fn an_offer_without_a_common_codec_gets_488() {
    if let Some(ended) = scenario_call("uac_g722_only", &["--auto-answer", "--audio", "null"], &["ended"]) {
        assert_eq!(ended["reason"], "incompatible_media");
    }
}

#[test]
fn call_info_answer_after_answers_without_auto_answer() {
    if let Some(ended) = scenario_call("uac_answer_after", &["--audio", "null"], &["incoming", "ringing", "active", "ended"]) {
        assert_eq!(ended["reason"], "remote_hangup");
    }
}

#[test]
fn dnd_answers_busy_and_every_call_lands_in_the_history() {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("dnd_history", &needed) {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let mut run = Running::start(&db, &["--auto-answer", "--audio", "null"], &[]);
    run.wait_for("registered", Duration::from_secs(10), registered(id));
    let on = run.command(serde_json::json!({"id": 1, "cmd": "dnd", "on": true}));
    assert_eq!(on["result"]["on"], true);
    run.wait_for("dnd event", Duration::from_secs(5), |v| v["event"] == "dnd" && v["on"] == true);
    let bad = run.command(serde_json::json!({"id": 2, "cmd": "dnd", "on": "yes"}));
    assert_eq!(bad["code"], "invalid_argument");
    // SIPp's UAC expects a 200: with DND it gets 486 and reports a failed call.
    let (port, media) = (sipdesk_e2e::kamailio::free_udp_tcp_port(), sipdesk_e2e::kamailio::free_udp_tcp_port());
    let busy = Command::new("sipp")
        .args(["-sn", "uac", &format!("127.0.0.1:{}", k.port), "-s", "1001", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-m", "1", "-nostdin", "-timeout", "10s"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!busy.success(), "the call was refused");
    let ended = run.wait_for("ended by dnd", Duration::from_secs(10), call("ended"));
    assert_eq!(ended["reason"], "dnd");
    run.command(serde_json::json!({"id": 3, "cmd": "dnd", "on": false}));
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
    // DND was persisted (off again now), and the refused call is in the history.
    let out = sipdesk_e2e::sipdesk::command(&db).args(["history", "--json"]).output().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["direction"].as_str(), rows[0]["end_reason"].as_str()), (Some("in"), Some("dnd")));
    assert!(rows[0]["remote"].as_str().unwrap().contains("sipp@"), "{rows:?}");
    assert!(rows[0]["ended_at"].is_string() && rows[0]["answered_at"].is_null());
}

/// One call from SIPp's built-in UAC through Kamailio to the auto-answering desk; false if the
/// programs are missing outside CI.
fn sipp_call(desk_args: &[&str], sipp_args: &[&str]) -> bool {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("incoming_call", &needed) {
        return false;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let mut args = vec!["--auto-answer"];
    args.extend_from_slice(desk_args);
    let mut run = Running::start(&db, &args, &[]);
    run.wait_for("registered", Duration::from_secs(10), registered(id));
    let port = sipdesk_e2e::kamailio::free_udp_tcp_port();
    let media = sipdesk_e2e::kamailio::free_udp_tcp_port();
    let trace = tempfile::tempdir().unwrap();
    let mut sipp_cmd = Command::new("sipp");
    sipp_cmd.args(["-sn", "uac", &format!("127.0.0.1:{}", k.port), "-s", "1001", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error", "-trace_err", "-trace_msg"]);
    if !sipp_args.contains(&"-d") {
        sipp_cmd.args(["-d", "1000"]);
    }
    let sipp = sipp_cmd
        .args(sipp_args)
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
    true
}
