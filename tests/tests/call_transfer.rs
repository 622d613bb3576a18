//! Transfer and call waiting against baresip through Kamailio.
//!
//! Blind transfer: the desk calls phone A, then REFERs it to phone B; A calls B, the desk sees the
//! NOTIFY progress and hangs up; A and B then hear each other's tones (checked by content in
//! their recordings). Call waiting: A calls the desk and is answered; B calls and is answered too,
//! which puts A on hold; `swap` flips them; a third caller is turned away busy.

use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav};
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::sipdesk::{add_account, Running};

fn phone(k: &Kamailio, dir: &std::path::Path, user: &str, hz: f64) -> Baresip {
    let wav = dir.join(format!("{user}.wav"));
    write_tone_wav(&wav, hz, 8000, 40.0, -12.0, 0.0);
    let mut p = Baresip::start(&BaresipConfig {
        user: user.into(),
        password: format!("pw-{user}"),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer: true,
        play_wav: Some(wav),
        record_dir: dir.join(format!("{user}-rec")),
        ..BaresipConfig::default()
    });
    p.wait_registered(Duration::from_secs(10));
    p
}

fn setup(users: &[&str]) -> Option<(Kamailio, tempfile::TempDir, std::path::PathBuf)> {
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("call_transfer", &needed) {
        return None;
    }
    let mut all = vec![("1001".to_string(), "pw-1001".to_string())];
    all.extend(users.iter().map(|u| (u.to_string(), format!("pw-{u}"))));
    let k = Kamailio::start(&Config { users: all, max_expires: 60, ..Config::default() });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    Some((k, dir, db))
}

fn call_state(id: String, s: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "call" && v["call_id"] == id.as_str() && v["state"] == s
}

fn dominant(path: &std::path::Path) -> f64 {
    let (samples, rate) = read_wav(path);
    analyse(&samples, rate).dominant_hz
}

#[test]
fn blind_transfer_joins_the_caller_with_the_third_party() {
    let Some((k, dir, db)) = setup(&["2001", "2002"]) else { return };
    let mut a = phone(&k, dir.path(), "2001", 1020.0);
    let mut b = phone(&k, dir.path(), "2002", 1400.0);
    let mut desk = Running::start(&db, &["--audio", "null"], &[]);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    let r = desk.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:2001@127.0.0.1:{}", k.port)}));
    let id = r["result"]["call_id"].as_str().expect("call id").to_string();
    desk.wait_for("active", Duration::from_secs(10), call_state(id.clone(), "active"));
    a.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let target = format!("sip:2002@127.0.0.1:{}", k.port);
    let r = desk.command(json!({"id": 2, "cmd": "transfer", "call_id": id, "target": target}));
    assert_eq!(r["event"], "ack", "{r}");
    let done = desk.wait_for("transfer done", Duration::from_secs(15), |v| {
        v["event"] == "transfer" && (v["status"] == "done" || v["status"] == "failed")
    });
    assert_eq!(done["status"], "done", "{done}");
    let ended = desk.wait_for("ended", Duration::from_secs(5), call_state(id.clone(), "ended"));
    assert_eq!(ended["reason"], "transferred", "{ended}");
    // A and B talk for a while, then B hangs up and both recordings are complete.
    b.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    b.hangup();
    b.wait_event("CALL_CLOSED", Duration::from_secs(5));
    a.wait_event("CALL_CLOSED", Duration::from_secs(5));
    a.wait_event("CALL_CLOSED", Duration::from_secs(5));
    let b_heard = b.received_recordings();
    assert_eq!(b_heard.len(), 1, "{b_heard:?}");
    let hz = dominant(&b_heard[0]);
    assert!((hz - 1020.0).abs() < 20.0, "B hears A's 1020 Hz, got {hz}");
    let a_heard = a.received_recordings();
    let last = a_heard.last().expect("A's recordings");
    let hz = dominant(last);
    assert!((hz - 1400.0).abs() < 28.0, "A hears B's 1400 Hz after the transfer, got {hz} ({a_heard:?})");
    let (code, _) = desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn call_waiting_holds_the_first_call_swaps_and_turns_a_third_away() {
    let Some((k, dir, db)) = setup(&["2001", "2002", "2003"]) else { return };
    let mut a = phone(&k, dir.path(), "2001", 1020.0);
    let mut b = phone(&k, dir.path(), "2002", 1400.0);
    let mut c = phone(&k, dir.path(), "2003", 700.0);
    let mut desk = Running::start(&db, &["--audio", "null"], &[]);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    let desk_uri = format!("sip:1001@127.0.0.1:{}", k.port);
    let ringing = |v: &Value| v["event"] == "call" && v["state"] == "ringing";

    a.dial(&desk_uri);
    let first = desk.wait_for("A rings", Duration::from_secs(10), ringing);
    let a_id = first["call_id"].as_str().unwrap().to_string();
    desk.command(json!({"id": 1, "cmd": "answer", "call_id": a_id}));
    desk.wait_for("A active", Duration::from_secs(5), call_state(a_id.clone(), "active"));

    b.dial(&desk_uri);
    let second = desk.wait_next("B waits", Duration::from_secs(10), ringing);
    let b_id = second["call_id"].as_str().unwrap().to_string();
    assert_ne!(a_id, b_id);
    desk.command(json!({"id": 2, "cmd": "answer", "call_id": b_id}));
    desk.wait_for("A held", Duration::from_secs(5), call_state(a_id.clone(), "held"));
    desk.wait_for("B active", Duration::from_secs(5), call_state(b_id.clone(), "active"));

    // A third caller while two calls are up is busy.
    c.dial(&desk_uri);
    let third = desk.wait_for("C turned away", Duration::from_secs(10), |v| {
        v["event"] == "call" && v["state"] == "ended" && v["call_id"] != a_id.as_str() && v["call_id"] != b_id.as_str()
    });
    assert_eq!(third["reason"], "busy", "{third}");

    let r = desk.command(json!({"id": 3, "cmd": "swap"}));
    assert_eq!(r["event"], "ack", "{r}");
    desk.wait_for("B held", Duration::from_secs(5), call_state(b_id.clone(), "held"));
    desk.wait_for("A active again", Duration::from_secs(5), call_state(a_id.clone(), "active"));
    // Audio follows: after the swap, A's tone reaches the desk and B (on hold) sends nothing.
    std::thread::sleep(Duration::from_secs(2));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let level = |desk: &mut Running, id: &str| loop {
        let v = desk.wait_next("level", Duration::from_secs(2), |v| v["event"] == "call_level" && v["call_id"] == id);
        if v["ts_ms"].as_u64().unwrap_or(0) >= now {
            break v["rx_dbfs"].as_f64().unwrap();
        }
    };
    let (a_level, b_level) = (level(&mut desk, &a_id), level(&mut desk, &b_id));
    assert!(a_level > -20.0 && b_level < -60.0, "A {a_level} dBFS, B {b_level} dBFS");
    let r = desk.command(json!({"id": 4, "cmd": "swap"}));
    assert_eq!(r["event"], "ack", "{r}");
    desk.wait_next("A held again", Duration::from_secs(5), call_state(a_id.clone(), "held"));
    a.hangup();
    b.hangup();
    let (code, _) = desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

/// The far end transfers us: phone A REFERs the desk to phone B. With `SIPDESK_REFER=ask` the desk
/// first asks (declining keeps the call); then, with consent, it calls B, tells A through NOTIFYs,
/// and A hangs up its leg; B's tone reaches the desk on the new call.
#[test]
fn an_incoming_refer_is_asked_about_then_followed() {
    let Some((k, dir, db)) = setup(&["2001", "2002"]) else { return };
    let mut a = phone(&k, dir.path(), "2001", 1020.0);
    let mut b = phone(&k, dir.path(), "2002", 1400.0);
    let mut desk = Running::start(&db, &["--auto-answer", "--audio", "null"], &[("SIPDESK_REFER", "ask")]);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    a.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    let active = desk.wait_for("A active", Duration::from_secs(10), |v| v["event"] == "call" && v["state"] == "active");
    let a_id = active["call_id"].as_str().unwrap().to_string();
    a.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    let target = format!("sip:2002@127.0.0.1:{}", k.port);

    // Asked, and declined: the call with A goes on.
    a.command("transfer", Some("2002")).expect("baresip transfer");
    let asked = desk.wait_for("asked", Duration::from_secs(5), |v| v["event"] == "transfer_request");
    assert_eq!((asked["call_id"].as_str(), asked["target"].as_str()), (Some(a_id.as_str()), Some(target.as_str())));
    let r = desk.command(json!({"id": 1, "cmd": "transfer_reject", "call_id": a_id}));
    assert_eq!(r["event"], "ack", "{r}");
    // A is told no (603) and nobody is called. (baresip 1.0 then ends its call by itself.)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !a.log().contains("transfer failed: 603") {
        assert!(std::time::Instant::now() < deadline, "A was told no: {}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!desk.seen().iter().any(|v| v["event"] == "call" && v["direction"] == "out"), "B was called");
    // baresip takes one transfer per call: end it (if it has not), call again, and this time accept.
    let _ = a.command("hangup", None);
    desk.wait_for("A ended", Duration::from_secs(5), call_state(a_id.clone(), "ended"));
    assert!(!desk.seen().iter().any(|v| v["event"] == "call" && v["direction"] == "out"), "B was called");
    a.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    let active =
        desk.wait_next("A active again", Duration::from_secs(10), |v| v["event"] == "call" && v["state"] == "active");
    let a_id = active["call_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(500));
    if let Err(e) = a.command("transfer", Some("2002")) {
        panic!("baresip transfer: {e}; {}", a.log());
    }
    desk.wait_next("asked again", Duration::from_secs(5), |v| v["event"] == "transfer_request");
    let r = desk.command(json!({"id": 2, "cmd": "transfer_accept", "call_id": a_id}));
    assert_eq!(r["event"], "ack", "{r}");
    let new_call = desk.wait_for("B active", Duration::from_secs(10), |v| {
        v["event"] == "call" && v["state"] == "active" && v["direction"] == "out"
    });
    let b_id = new_call["call_id"].as_str().unwrap().to_string();
    assert_eq!(new_call["direction"], "out");
    b.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    let ended = desk.wait_for("A's leg ends", Duration::from_secs(10), call_state(a_id.clone(), "ended"));
    assert_eq!(ended["reason"], "remote_hangup", "{ended}");
    std::thread::sleep(Duration::from_secs(2));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let level = loop {
        let v = desk.wait_next("B's level", Duration::from_secs(2), |v| {
            v["event"] == "call_level" && v["call_id"] == b_id.as_str()
        });
        if v["ts_ms"].as_u64().unwrap_or(0) >= now {
            break v["rx_dbfs"].as_f64().unwrap();
        }
    };
    assert!(level > -30.0, "B's tone reaches the desk: {level} dBFS");
    b.hangup();
    desk.wait_for("B ends", Duration::from_secs(5), call_state(b_id, "ended"));
    let (code, _) = desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

/// Attended transfer with the desk in every role (three `sipdesk run` through Kamailio): X calls Y,
/// holds it, consults Z, then transfers Y to Z with a Replaces naming X's consult dialog. Y follows
/// the REFER with an INVITE carrying that Replaces; Z answers it at once in place of its call with
/// X; X's calls both end. (Against linphone-cli: tests/tests/attended_transfer.rs.)
#[test]
fn attended_transfer_between_three_desks() {
    let Some((k, dir, _)) = setup(&["2001", "2002"]) else { return };
    let desk = |user: &str, extra: &[&str], env: &[(&str, &str)]| {
        let db = dir.path().join(format!("{user}.db"));
        add_account(
            &db,
            &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", user, "--interval", "60", "--activate"],
            &format!("pw-{user}"),
        );
        let mut args = vec!["--audio", "null"];
        args.extend_from_slice(extra);
        let mut r = Running::start(&db, &args, env);
        r.wait_for("registered", Duration::from_secs(10), |v| {
            v["event"] == "registration" && v["state"] == "registered"
        });
        r
    };
    let mut x = desk("1001", &[], &[]);
    let mut y = desk("2001", &["--auto-answer"], &[("SIPDESK_REFER", "auto")]);
    let mut z = desk("2002", &["--auto-answer"], &[]);
    let uri = |u: &str| format!("sip:{u}@127.0.0.1:{}", k.port);
    let dial = |d: &mut Running, id: u32, to: &str| {
        let r = d.command(json!({"id": id, "cmd": "dial", "uri": to}));
        let call = r["result"]["call_id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
        d.wait_for("active", Duration::from_secs(10), call_state(call.clone(), "active"));
        call
    };
    let xy = dial(&mut x, 1, &uri("2001"));
    let r = x.command(json!({"id": 2, "cmd": "hold", "call_id": xy}));
    assert_eq!(r["event"], "ack", "{r}");
    x.wait_for("held", Duration::from_secs(5), call_state(xy.clone(), "held"));
    let xz = dial(&mut x, 3, &uri("2002"));
    let r = x.command(json!({"id": 4, "cmd": "transfer", "call_id": xy, "consult_call_id": xz}));
    assert_eq!(r["event"], "ack", "{r}");
    let done = x.wait_for("transfer done", Duration::from_secs(15), |v| {
        v["event"] == "transfer" && (v["status"] == "done" || v["status"] == "failed")
    });
    assert_eq!(done["status"], "done", "{done}");
    assert!(done["target"].as_str().unwrap().contains("?Replaces="), "{done}");
    let ended = x.wait_for("X-Y ends", Duration::from_secs(5), call_state(xy.clone(), "ended"));
    assert_eq!(ended["reason"], "transferred");
    x.wait_for("X-Z ends", Duration::from_secs(5), call_state(xz.clone(), "ended"));
    // Y now talks to Z on a new call of its own; Z's call with X was replaced by it.
    let yz = y.wait_for("Y calls Z", Duration::from_secs(5), |v| {
        v["event"] == "call" && v["direction"] == "out" && v["state"] == "active"
    });
    let replaced = z.wait_for("Z's old call", Duration::from_secs(5), |v| {
        v["event"] == "call" && v["state"] == "ended" && v["reason"] == "replaced"
    });
    assert_ne!(replaced["call_id"], yz["call_id"]);
    let zy = z.wait_for("Z's new call", Duration::from_secs(5), |v| {
        v["event"] == "call" && v["state"] == "active" && v["call_id"] == yz["call_id"]
    });
    assert_eq!(zy["direction"], "in");
    for d in [x, y, z] {
        let (code, _) = d.terminate(Duration::from_secs(3));
        assert!(code.success());
    }
}
