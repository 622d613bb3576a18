//! Attended transfer against linphone-cli through Kamailio, both ways round.
//!
//! The desk transfers: it calls L1 (2001), holds it, calls L2 (2002) as the consult call, then
//! `transfer` with `consult_call_id` REFERs L1 to L2 with a Replaces naming the consult dialog.
//! L1 calls L2, L2's new call takes the consult call's place, both desk calls end, and L1 and L2
//! hear each other's tones (checked in their recordings).
//!
//! The desk is the target: L1 calls the desk, holds it and calls L2, then transfers L2 to the
//! desk (`transfer <L2's call> --to-call <desk's call>`): L2 sends the desk an INVITE with Replaces
//! naming the desk's call with L1. The desk answers it at once and ends its call with L1
//! (`replaced`); L2's tone reaches the desk on the new call. linphonec 5.1 refers to the To URI of
//! its call with the desk, which it sends without the registrar's port (`sip:1001@127.0.0.1`),
//! so L2 goes through the harness's port-fixing proxy, which hands that INVITE to the registrar
//! with its port.
//!
//! On a failure the desk's stderr carries its SIP trace (`sipdesk_core::sip::transport=trace`)
//! and each linphone's folder (console, full log) is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::audio::{analyse, write_tone_wav};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::linphone::{self, Linphone, LinphoneConfig};
use sipdesk_e2e::sipdesk::{add_account, Running};

const DESK_LOG: (&str, &str) = ("RUST_LOG", "info,sipdesk_core::sip::transport=trace");

fn setup() -> Option<(Kamailio, tempfile::TempDir, PathBuf)> {
    let mut needed = vec![];
    needed.extend_from_slice(linphone::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("attended_transfer", &needed) {
        return None;
    }
    let users = ["1001", "2001", "2002"].iter().map(|u| (u.to_string(), format!("pw-{u}"))).collect();
    let k = Kamailio::start(&Config { users, max_expires: 60, ..Config::default() });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    Some((k, dir, db))
}

/// A registered linphone playing a tone of `hz` (8 kHz, -12 dBFS) and answering at once.
fn phone(k: &Kamailio, dir: &Path, user: &str, hz: f64, port_fixing_proxy: bool) -> Linphone {
    let wav = dir.join(format!("{user}-tone.wav"));
    write_tone_wav(&wav, hz, 8000, 90.0, -12.0, 0.0);
    let mut p = Linphone::start(&LinphoneConfig {
        user: user.into(),
        password: format!("pw-{user}"),
        registrar_port: k.port,
        auto_answer: true,
        play_wav: Some(wav),
        port_fixing_proxy,
        ..LinphoneConfig::default()
    });
    p.wait_registered(Duration::from_secs(10));
    p
}

fn start_desk(db: &Path, extra: &[&str]) -> Running {
    let mut args = vec!["--audio", "null"];
    args.extend_from_slice(extra);
    let mut desk = Running::start(db, &args, &[DESK_LOG]);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    desk
}

fn call_state(id: &str, s: &'static str) -> impl Fn(&Value) -> bool {
    let id = id.to_string();
    move |v| v["event"] == "call" && v["call_id"] == id.as_str() && v["state"] == s
}

/// The dominant frequency of the last 2 s of a linphone recording (the first moments of a
/// recording can hold the end of an earlier stream).
fn dominant(path: &Path) -> f64 {
    let (samples, rate) = linphone::read_recording(path);
    let tail = 2 * rate as usize;
    assert!(samples.len() > tail, "{} holds {} samples at {rate} Hz", path.display(), samples.len());
    analyse(&samples[samples.len() - tail..], rate).dominant_hz
}

/// The latest `rx_dbfs` of `call_id` reported after now.
fn rx_level(desk: &mut Running, call_id: &str) -> f64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    loop {
        let v = desk
            .wait_next("a level", Duration::from_secs(2), |v| v["event"] == "call_level" && v["call_id"] == call_id);
        if v["ts_ms"].as_u64().unwrap_or(0) >= now {
            return v["rx_dbfs"].as_f64().unwrap();
        }
    }
}

#[test]
fn the_desk_joins_its_held_caller_with_its_consult_call() {
    let Some((k, dir, db)) = setup() else { return };
    let mut l1 = phone(&k, dir.path(), "2001", 1020.0, false);
    let mut l2 = phone(&k, dir.path(), "2002", 1400.0, false);
    let mut desk = start_desk(&db, &[]);

    // A: the desk calls L1, which answers; then the desk holds it.
    let r = desk.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:2001@127.0.0.1:{}", k.port)}));
    let a = r["result"]["call_id"].as_str().unwrap_or_else(|| panic!("dial: {r}")).to_string();
    desk.wait_for("A active", Duration::from_secs(10), call_state(&a, "active"));
    let (l1_a, _) = l1.wait_incoming(Duration::from_secs(5));
    l1.wait_streams(l1_a, Duration::from_secs(5));
    let r = desk.command(json!({"id": 2, "cmd": "hold", "call_id": a}));
    assert_eq!(r["event"], "ack", "{r}");
    desk.wait_for("A held", Duration::from_secs(5), call_state(&a, "held"));
    l1.wait_for_output(&format!("Call {l1_a} has been paused by"), Duration::from_secs(5));

    // C: the consult call to L2.
    let r = desk.command(json!({"id": 3, "cmd": "dial", "uri": format!("sip:2002@127.0.0.1:{}", k.port)}));
    let c = r["result"]["call_id"].as_str().unwrap_or_else(|| panic!("dial: {r}")).to_string();
    desk.wait_for("C active", Duration::from_secs(10), call_state(&c, "active"));
    let (l2_c, _) = l2.wait_incoming(Duration::from_secs(5));
    l2.wait_streams(l2_c, Duration::from_secs(5));
    // The calls that start from now on (L1 to L2) are recorded apart.
    let (l1_heard, l2_heard) = (l1.dir().join("after.wav"), l2.dir().join("after.wav"));
    l1.set_record(&l1_heard);
    l2.set_record(&l2_heard);
    std::thread::sleep(Duration::from_millis(500));

    let r = desk.command(json!({"id": 4, "cmd": "transfer", "call_id": a, "consult_call_id": c}));
    assert_eq!(r["event"], "ack", "{r}");
    let done = desk.wait_for("transfer done", Duration::from_secs(15), |v| {
        v["event"] == "transfer" && (v["status"] == "done" || v["status"] == "failed")
    });
    assert_eq!(done["status"], "done", "{done}\nL1's SIP:\n{}", l1.sip_trace());
    assert_eq!(done["call_id"], a.as_str(), "{done}");
    let ended = desk.wait_for("A ended", Duration::from_secs(5), call_state(&a, "ended"));
    assert_eq!(ended["reason"], "transferred", "{ended}");
    let ended = desk.wait_for("C ended", Duration::from_secs(5), call_state(&c, "ended"));
    eprintln!("the consult call ended: {ended}");

    // L1 called L2 (following the REFER) and that call took the consult call's place.
    let line = l1.wait_for_line("L1's call to L2", Duration::from_secs(5), |l| {
        l.starts_with("Establishing call id to ") && l.contains("2002")
    });
    let l1_b: u32 = line.rsplit_once("assigned id ").and_then(|(_, n)| n.trim().parse().ok()).expect("id");
    l1.wait_connected(l1_b, Duration::from_secs(10));
    let (l2_b, from) = l2.wait_incoming(Duration::from_secs(5));
    assert!(from.contains("2001"), "L2's new call is from L1: {from}");
    l2.wait_connected(l2_b, Duration::from_secs(10));
    l1.wait_ended(l1_a, Duration::from_secs(5));
    l2.wait_ended(l2_c, Duration::from_secs(5));
    l1.wait_streams(l1_b, Duration::from_secs(5));
    let (calls1, calls2) = (l1.calls(), l2.calls());
    assert!(
        calls1.len() == 1
            && calls1[0].id == l1_b
            && calls1[0].remote.contains("2002")
            && calls1[0].state == "StreamsRunning",
        "L1 talks to L2 only: {calls1:?}"
    );
    assert!(
        calls2.len() == 1
            && calls2[0].id == l2_b
            && calls2[0].remote.contains("2001")
            && calls2[0].state == "StreamsRunning",
        "L2 talks to L1 only: {calls2:?}"
    );

    // They hear each other.
    std::thread::sleep(Duration::from_secs(3));
    l1.hangup(Some(l1_b));
    l1.wait_ended(l1_b, Duration::from_secs(5));
    l2.wait_ended(l2_b, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let hz = dominant(&l1_heard);
    assert!((hz - 1400.0).abs() < 28.0, "L1 hears L2's 1400 Hz, got {hz}");
    let hz = dominant(&l2_heard);
    assert!((hz - 1020.0).abs() < 20.0, "L2 hears L1's 1020 Hz, got {hz}");
    let (code, _) = desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn an_invite_with_replaces_takes_over_the_desks_call() {
    let Some((k, dir, db)) = setup() else { return };
    let mut l1 = phone(&k, dir.path(), "2001", 1020.0, false);
    let mut l2 = phone(&k, dir.path(), "2002", 1400.0, true);
    let mut desk = start_desk(&db, &["--auto-answer"]);

    // L1 calls the desk (answered at once), then L2 (which holds the desk's call).
    let l1_d = l1.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    let first = desk.wait_for("L1's call active", Duration::from_secs(10), |v| {
        v["event"] == "call" && v["state"] == "active" && v["direction"] == "in"
    });
    let d1 = first["call_id"].as_str().unwrap().to_string();
    l1.wait_streams(l1_d, Duration::from_secs(5));
    l1.pause(l1_d, Duration::from_secs(5));
    let l1_b = l1.dial(&format!("sip:2002@127.0.0.1:{}", k.port));
    l1.wait_connected(l1_b, Duration::from_secs(10));
    let (l2_b, _) = l2.wait_incoming(Duration::from_secs(5));
    l2.wait_streams(l2_b, Duration::from_secs(5));
    desk.wait_for("L1 holds the desk", Duration::from_secs(5), call_state(&d1, "held_remote"));
    std::thread::sleep(Duration::from_millis(500));

    // L1 transfers L2 to the desk: L2 INVITEs the desk with Replaces naming the desk's call.
    let out = l1.transfer_attended(l1_b, l1_d);
    assert!(!out.contains("Sorry") && !out.to_ascii_lowercase().contains("error"), "transfer: {out:?}");
    let line = l2.wait_for_line("L2's call to the desk", Duration::from_secs(10), |l| {
        l.starts_with("Establishing call id to ") && l.contains("1001")
    });
    let l2_d: u32 = line.rsplit_once("assigned id ").and_then(|(_, n)| n.trim().parse().ok()).expect("id");
    let second = desk.wait_for("L2's call active", Duration::from_secs(10), |v| {
        v["event"] == "call" && v["state"] == "active" && v["call_id"] != d1.as_str()
    });
    let d2 = second["call_id"].as_str().unwrap().to_string();
    assert_eq!(second["direction"], "in", "{second}");
    assert!(second["remote"].as_str().unwrap_or_default().contains("2002"), "the new call is L2's: {second}");
    assert!(
        !desk.seen().iter().any(|v| v["event"] == "call" && v["call_id"] == d2.as_str() && v["state"] == "ringing"),
        "the replacing call is answered without ringing: {:#?}",
        desk.seen()
    );
    let ended = desk.wait_for("L1's call replaced", Duration::from_secs(5), call_state(&d1, "ended"));
    assert_eq!(ended["reason"], "replaced", "{ended}");
    l2.wait_connected(l2_d, Duration::from_secs(5));
    l2.wait_streams(l2_d, Duration::from_secs(5));
    // L1 is out of both calls; L2 talks to the desk only.
    l1.wait_ended(l1_d, Duration::from_secs(5));
    l2.wait_ended(l2_b, Duration::from_secs(10));
    let calls2 = l2.calls();
    assert!(
        calls2.len() == 1 && calls2[0].id == l2_d && calls2[0].state == "StreamsRunning",
        "L2 talks to the desk only: {calls2:?}"
    );
    l1.wait_ended(l1_b, Duration::from_secs(5));
    assert!(l1.calls().is_empty(), "L1 has no call left");

    // L2's tone reaches the desk on the new call.
    std::thread::sleep(Duration::from_secs(2));
    let level = rx_level(&mut desk, &d2);
    assert!(level > -20.0, "L2's tone reaches the desk: {level} dBFS");
    l2.hangup(Some(l2_d));
    let ended = desk.wait_for("L2's call ends", Duration::from_secs(5), call_state(&d2, "ended"));
    assert_eq!(ended["reason"], "remote_hangup", "{ended}");
    let (code, _) = desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}
