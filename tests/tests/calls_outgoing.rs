//! Outgoing calls through a real Kamailio (as outbound proxy) to SIPp's built-in UAS, which
//! answers and echoes RTP: the `dial` command places the call, the tone the desk plays comes back
//! and is recorded (frequency and level checked), and `hangup` ends it with BYE.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::sipdesk::{add_account, Running};

fn call(state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "call" && v["state"] == state
}

struct Uas(Child);

impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dial_sipp_hear_our_tone_back_and_hang_up() {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("outgoing_call", &needed) {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let tone = dir.path().join("tone1400.wav");
    let heard = dir.path().join("heard.wav");
    sipdesk_e2e::audio::write_tone_wav(&tone, 1400.0, 8000, 6.0, -12.0, 0.0);
    let id = add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let port = kamailio::free_udp_tcp_port();
    let media = kamailio::free_udp_tcp_port();
    let _uas = Uas(Command::new("sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-rtp_echo", "-m", "1", "-nostdin", "-trace_msg"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let audio = format!("file:{},{}", tone.display(), heard.display());
    // A fixed RTP range, as firewalls want; the test checks the SDP port came from it.
    let mut run = Running::start(&db, &["--audio", &audio], &[("SIPDESK_RTP_PORTS", "41000-41099")]);
    run.wait_for("registered", Duration::from_secs(10), |v| v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered");
    let bad = run.command(json!({"id": 1, "cmd": "dial", "uri": "<script>"}));
    assert_eq!(bad["code"], "invalid_argument");
    let dialed = run.command(json!({"id": 2, "cmd": "dial", "uri": format!("sip:service@127.0.0.1:{port}")}));
    assert_eq!(dialed["event"], "ack", "{dialed}");
    let call_id = dialed["result"]["call_id"].as_str().unwrap().to_string();
    run.wait_for("calling", Duration::from_secs(5), call("calling"));
    let active = run.wait_for("active", Duration::from_secs(10), call("active"));
    let uas_log = std::fs::read_dir(dir.path()).unwrap().flatten().find(|e| e.file_name().to_string_lossy().ends_with("_messages.log")).map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).expect("SIPp's message log");
    let port: u16 = uas_log.lines().find_map(|l| l.strip_prefix("m=audio ")).and_then(|r| r.split(' ').next()?.parse().ok()).expect("an m= line in the offer");
    assert!((41000..=41099).contains(&port), "RTP port {port} outside SIPDESK_RTP_PORTS");
    // The registrar challenged the INVITE (407); the desk answered it in a second INVITE.
    let log = k.log();
    assert!(log.contains("INVITE from") && log.lines().any(|l| l.contains("INVITE from") && l.ends_with("cseq 2")), "{log}");
    assert_eq!((active["direction"].as_str(), active["codec"].as_str(), active["call_id"].as_str()), (Some("out"), Some("PCMU"), Some(call_id.as_str())));
    std::thread::sleep(Duration::from_secs(3));
    let hung = run.command(json!({"id": 3, "cmd": "hangup", "call_id": call_id}));
    assert_eq!(hung["event"], "ack");
    let ended = run.wait_for("ended", Duration::from_secs(10), call("ended"));
    assert_eq!(ended["reason"], "local_hangup");
    let gone = run.command(json!({"id": 4, "cmd": "hangup", "call_id": call_id}));
    assert_eq!(gone["code"], "not_found");
    let (samples, rate) = sipdesk_e2e::audio::read_wav(&heard);
    let a = sipdesk_e2e::audio::analyse(&samples, rate);
    eprintln!("heard back: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms, {} ms", a.dominant_hz, a.rms_dbfs, a.coverage, a.longest_gap_ms, a.duration_ms);
    assert!((a.dominant_hz - 1400.0).abs() < 28.0 && (a.rms_dbfs + 12.0).abs() < 3.0, "{:.1} Hz {:.1} dBFS", a.dominant_hz, a.rms_dbfs);
    assert!(a.coverage > 0.6 && a.longest_gap_ms <= 60, "coverage {:.2}, gap {} ms", a.coverage, a.longest_gap_ms);
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn sipdesk_call_places_one_call_and_exits_when_it_ends() {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("sipdesk_call", &needed) {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let port = kamailio::free_udp_tcp_port();
    let media = kamailio::free_udp_tcp_port();
    let _uas = Uas(Command::new("sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-rtp_echo", "-m", "1", "-nostdin"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let out = sipdesk_e2e::sipdesk::command(&db)
        .args(["call", &format!("sip:service@127.0.0.1:{port}"), "--audio", "null", "--json", "--hangup-after", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let schema = sipdesk_e2e::events_schema::EventsSchema::load();
    let events: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for e in &events {
        schema.validate(e).unwrap_or_else(|err| panic!("{err}: {e}"));
    }
    let states: Vec<&str> = events.iter().filter(|e| e["event"] == "call").map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["calling", "ringing", "active", "ended"], "{stdout}");
    assert!(events.iter().any(|e| e["event"] == "registration" && e["state"] == "unregistered"), "it unregisters before exiting");
    // A user the registrar does not know: Kamailio says 404, the call fails and the exit code says so.
    let out = sipdesk_e2e::sipdesk::command(&db).args(["call", &format!("sip:9999@127.0.0.1:{}", k.port), "--audio", "null"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("call ended: not_found"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn junk_rtp_is_rejected_and_the_audio_stays_right() {
    let mut needed = vec!["sipp"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("junk_rtp", &needed) {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let (tone, heard) = (dir.path().join("tone.wav"), dir.path().join("heard.wav"));
    sipdesk_e2e::audio::write_tone_wav(&tone, 1400.0, 8000, 8.0, -12.0, 0.0);
    add_account(&db, &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"], "pw-1001");
    let (port, media) = (kamailio::free_udp_tcp_port(), kamailio::free_udp_tcp_port());
    let _uas = Uas(Command::new("sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-rtp_echo", "-m", "1", "-nostdin", "-trace_msg"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let mut run = Running::start(&db, &["--audio", &format!("file:{},{}", tone.display(), heard.display())], &[]);
    run.wait_for("registered", Duration::from_secs(10), |v| v["event"] == "registration" && v["state"] == "registered");
    let dialed = run.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:service@127.0.0.1:{port}")}));
    let call_id = dialed["result"]["call_id"].as_str().unwrap().to_string();
    run.wait_for("active", Duration::from_secs(10), call("active"));
    let log = std::fs::read_dir(dir.path()).unwrap().flatten().find(|e| e.file_name().to_string_lossy().ends_with("_messages.log")).map(|e| std::fs::read_to_string(e.path()).unwrap()).unwrap();
    let rtp_port: u16 = log.lines().find_map(|l| l.strip_prefix("m=audio ")).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap();
    // Mid-call, once the real stream flows: that is when a hijack would be tried.
    std::thread::sleep(Duration::from_millis(500));
    // From another address: short packets, RTP version 1, an unknown payload type, random bytes,
    // and well-formed PCMU carrying silence, which must not take the call's audio over.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut v1 = vec![0x40u8, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
    v1.extend(std::iter::repeat_n(0xffu8, 160));
    let mut pt77 = vec![0x80u8, 77, 0, 1, 0, 0, 0, 160, 9, 9, 9, 9];
    pt77.extend(std::iter::repeat_n(0u8, 160));
    for round in 0..50u8 {
        let mut hijack = vec![0x80u8, 0, 0, round, 0, 0, round, 0, 7, 7, 7, 7];
        hijack.extend(std::iter::repeat_n(0xffu8, 160)); // µ-law silence
        for packet in [&[0x80u8, 0][..], &v1, &pt77, &[round; 37][..], &hijack] {
            junk.send_to(packet, ("127.0.0.1", rtp_port)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    run.command(json!({"id": 2, "cmd": "hangup", "call_id": call_id}));
    run.wait_for("ended", Duration::from_secs(10), call("ended"));
    let (samples, rate) = sipdesk_e2e::audio::read_wav(&heard);
    let a = sipdesk_e2e::audio::analyse(&samples, rate);
    eprintln!("heard with junk around: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms", a.dominant_hz, a.rms_dbfs, a.coverage, a.longest_gap_ms);
    assert!((a.dominant_hz - 1400.0).abs() < 28.0 && (a.rms_dbfs + 12.0).abs() < 3.0, "{:.1} Hz {:.1} dBFS", a.dominant_hz, a.rms_dbfs);
    assert!(a.coverage > 0.8 && a.longest_gap_ms <= 60, "coverage {:.2}, gap {} ms", a.coverage, a.longest_gap_ms);
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert!(code.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("rtp: dropped a packet from") && stderr.contains("is still sending"), "rejections are logged: {stderr}");
    assert!(!stderr.contains("rtp: latching onto"), "the stray sender never took over: {stderr}");
}
