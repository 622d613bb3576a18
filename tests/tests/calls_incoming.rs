//! Incoming calls through a real Kamailio: SIPp callers (built-in UAC and scenarios in
//! tests/sipp) reach the registered desk, which answers (auto, or after Call-Info answer-after),
//! rings, handles CANCEL (487), refuses offers it cannot take (488), answers a hold re-INVITE
//! with recvonly, refuses under do-not-disturb (486), and reports each step as a `call` event
//! and a history row. Audio: with SIPp echoing RTP, the desk's tone comes back and is checked.

use std::time::Duration;

use serde_json::Value;
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav};
use sipdesk_e2e::desk_rig::{self, call, DeskRig};
use sipdesk_e2e::sipdesk::Running;
use sipdesk_e2e::sipp;

fn ready(test: &str) -> bool {
    sipdesk_e2e::require_programs(test, desk_rig::PROGRAMS)
}

/// One SIPp call to the desk (`scenario` None: the built-in UAC); asserts SIPp's checks passed.
fn caller(rig: &DeskRig, run: &Running, scenario: Option<&str>, extra: &[&str]) {
    let (status, logs) = sipp::call(rig.dir.path(), rig.k.port, "1001", scenario, extra);
    assert!(status.success(), "{scenario:?}: SIPp's checks failed:\n{logs}\nsipdesk: {}", run.stderr_text());
}

fn call_states(run: &Running) -> Vec<String> {
    run.seen().iter().filter(|v| v["event"] == "call").map(|v| v["state"].as_str().unwrap().to_string()).collect()
}

#[test]
fn sipp_calls_the_desk_which_auto_answers_and_sees_the_bye() {
    if !ready("incoming_call") {
        return;
    }
    let rig = DeskRig::new();
    let mut run = rig.run(&["--auto-answer", "--audio", "null"], &[]);
    caller(&rig, &run, None, &["-d", "1000"]);
    let incoming = run.wait_for("incoming", Duration::from_secs(10), call("incoming"));
    assert_eq!((incoming["direction"].as_str(), incoming["codec"].as_str()), (Some("in"), Some("PCMU")));
    assert!(incoming["remote"].as_str().unwrap().contains("sipp@"), "{incoming}");
    let active = run.wait_for("active", Duration::from_secs(10), call("active"));
    assert_eq!(active["call_id"], incoming["call_id"]);
    let ended = run.wait_for("ended", Duration::from_secs(10), call("ended"));
    assert_eq!(ended["reason"], "remote_hangup");
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert!(code.success() && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_desks_tone_comes_back_through_sipp_rtp_echo() {
    if !ready("incoming_echo") {
        return;
    }
    let rig = DeskRig::new();
    let (tone, heard) = (rig.dir.path().join("tone1400.wav"), rig.dir.path().join("heard.wav"));
    write_tone_wav(&tone, 1400.0, 8000, 4.0, -12.0, 0.0);
    let mut run = rig.run(&["--auto-answer", "--audio", &format!("file:{},{}", tone.display(), heard.display())], &[]);
    caller(&rig, &run, None, &["-rtp_echo", "-d", "3000"]);
    run.wait_for("ended", Duration::from_secs(10), call("ended"));
    let (samples, rate) = read_wav(&heard);
    let a = analyse(&samples, rate);
    eprintln!(
        "heard back: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms, {} ms",
        a.dominant_hz, a.rms_dbfs, a.coverage, a.longest_gap_ms, a.duration_ms
    );
    assert!((a.dominant_hz - 1400.0).abs() < 28.0, "dominant {:.1} Hz", a.dominant_hz);
    assert!((a.rms_dbfs + 12.0).abs() < 3.0, "level {:.1} dBFS", a.rms_dbfs);
    assert!(a.coverage > 0.6 && a.longest_gap_ms <= 60, "coverage {:.2}, gap {} ms", a.coverage, a.longest_gap_ms);
}

#[test]
fn a_hold_reinvite_is_answered_recvonly_and_utf8_names_survive() {
    if !ready("reinvite") {
        return;
    }
    let rig = DeskRig::new();
    let mut run = rig.run(&["--auto-answer", "--audio", "null"], &[]);
    caller(&rig, &run, Some("uac_reinvite"), &[]);
    let incoming = run.wait_for("incoming", Duration::from_secs(5), call("incoming"));
    assert!(incoming["remote"].as_str().unwrap().contains("Caller 张"), "{incoming}");
    let ended = run.wait_for("ended", Duration::from_secs(5), call("ended"));
    assert_eq!(ended["reason"], "remote_hangup");
    let out = sipdesk_e2e::sipdesk::command(&rig.db).args(["history", "--json"]).output().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["display_name"], "Caller 张");
}

/// A scenario call; returns the desk's `ended` event after checking the call's states.
fn scenario_call(scenario: &str, desk_args: &[&str], expect: &[&str]) -> Option<Value> {
    if !ready(scenario) {
        return None;
    }
    let rig = DeskRig::new();
    let mut run = rig.run(desk_args, &[]);
    caller(&rig, &run, Some(scenario), &[]);
    let ended = run.wait_for("ended", Duration::from_secs(5), call("ended"));
    assert_eq!(call_states(&run), expect, "{scenario}");
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
    if let Some(ended) =
        scenario_call("uac_answer_after", &["--audio", "null"], &["incoming", "ringing", "active", "ended"])
    {
        assert_eq!(ended["reason"], "remote_hangup");
    }
}

#[test]
fn dnd_answers_busy_and_every_call_lands_in_the_history() {
    if !ready("dnd_history") {
        return;
    }
    let rig = DeskRig::new();
    let mut run = rig.run(&["--auto-answer", "--audio", "null"], &[]);
    let on = run.command(serde_json::json!({"id": 1, "cmd": "dnd", "on": true}));
    assert_eq!(on["result"]["on"], true);
    run.wait_for("dnd event", Duration::from_secs(5), |v| v["event"] == "dnd" && v["on"] == true);
    let bad = run.command(serde_json::json!({"id": 2, "cmd": "dnd", "on": "yes"}));
    assert_eq!(bad["code"], "invalid_argument");
    // SIPp's UAC expects a 200: with DND it gets 486 and reports a failed call.
    let (busy, _) = sipp::call(rig.dir.path(), rig.k.port, "1001", None, &[]);
    assert!(!busy.success(), "the call was refused");
    let ended = run.wait_for("ended by dnd", Duration::from_secs(10), call("ended"));
    assert_eq!(ended["reason"], "dnd");
    run.command(serde_json::json!({"id": 3, "cmd": "dnd", "on": false}));
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
    let out = sipdesk_e2e::sipdesk::command(&rig.db).args(["history", "--json"]).output().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["direction"].as_str(), rows[0]["end_reason"].as_str()), (Some("in"), Some("dnd")));
    assert!(rows[0]["remote"].as_str().unwrap().contains("sipp@"), "{rows:?}");
    assert!(rows[0]["ended_at"].is_string() && rows[0]["answered_at"].is_null());
}
