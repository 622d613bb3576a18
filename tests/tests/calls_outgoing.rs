//! Outgoing calls through a real Kamailio (as outbound proxy, challenging our INVITEs with 407)
//! to SIPp's built-in UAS, which answers and echoes RTP: the `dial` command places the call, the
//! tone the desk plays comes back and is recorded (frequency and level checked), `hangup` ends it
//! with BYE; `sipdesk call` does the same in one command; junk RTP during a call is rejected.

use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav};
use sipdesk_e2e::desk_rig::{self, call, DeskRig};
use sipdesk_e2e::sipp::Uas;

fn ready(test: &str) -> bool {
    sipdesk_e2e::require_programs(test, desk_rig::PROGRAMS)
}

/// The 1400 Hz tone the desk played, as the echo brought it back.
fn assert_heard_tone(path: &std::path::Path) {
    let (samples, rate) = read_wav(path);
    let a = analyse(&samples, rate);
    eprintln!(
        "heard back: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms, {} ms",
        a.dominant_hz, a.rms_dbfs, a.coverage, a.longest_gap_ms, a.duration_ms
    );
    assert!(
        (a.dominant_hz - 1400.0).abs() < 28.0 && (a.rms_dbfs + 12.0).abs() < 3.0,
        "{:.1} Hz {:.1} dBFS",
        a.dominant_hz,
        a.rms_dbfs
    );
    assert!(a.coverage > 0.8 && a.longest_gap_ms <= 60, "coverage {:.2}, gap {} ms", a.coverage, a.longest_gap_ms);
}

#[test]
fn dial_sipp_hear_our_tone_back_and_hang_up() {
    if !ready("outgoing_call") {
        return;
    }
    let rig = DeskRig::new();
    let (tone, heard) = (rig.dir.path().join("tone1400.wav"), rig.dir.path().join("heard.wav"));
    write_tone_wav(&tone, 1400.0, 8000, 6.0, -12.0, 0.0);
    let mut uas = Uas::echo(rig.dir.path());
    // A fixed RTP range, as firewalls want; checked against the offer's m= line below.
    let mut run = rig.run(
        &["--audio", &format!("file:{},{}", tone.display(), heard.display())],
        &[("SIPDESK_RTP_PORTS", "41000-41099")],
    );
    let bad = run.command(json!({"id": 1, "cmd": "dial", "uri": "<script>"}));
    assert_eq!(bad["code"], "invalid_argument");
    let dialed = run.command(json!({"id": 2, "cmd": "dial", "uri": format!("sip:service@127.0.0.1:{}", uas.port)}));
    assert_eq!(dialed["event"], "ack", "{dialed}");
    let call_id = dialed["result"]["call_id"].as_str().unwrap().to_string();
    run.wait_for("calling", Duration::from_secs(5), call("calling"));
    let active = run.wait_for("active", Duration::from_secs(10), call("active"));
    assert_eq!(
        (active["direction"].as_str(), active["codec"].as_str(), active["call_id"].as_str()),
        (Some("out"), Some("PCMU"), Some(call_id.as_str()))
    );
    let port = uas.offered_rtp_port();
    assert!((41000..=41099).contains(&port), "RTP port {port} outside SIPDESK_RTP_PORTS");
    // The registrar challenged the INVITE (407); the desk answered it in a second INVITE.
    let log = rig.k.log();
    assert!(log.lines().any(|l| l.contains("INVITE from") && l.ends_with("cseq 2")), "{log}");
    std::thread::sleep(Duration::from_secs(3));
    let hung = run.command(json!({"id": 3, "cmd": "hangup", "call_id": call_id}));
    assert_eq!(hung["event"], "ack");
    let ended = run.wait_for("ended", Duration::from_secs(10), call("ended"));
    assert_eq!(ended["reason"], "local_hangup");
    let gone = run.command(json!({"id": 4, "cmd": "hangup", "call_id": call_id}));
    assert_eq!(gone["code"], "not_found");
    // The callee's 200 had no Record-Route: our ACK and BYE still reached it through the proxy.
    assert!(uas.finished_ok(Duration::from_secs(5)), "the UAS did not get our ACK and BYE");
    assert_heard_tone(&heard);
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn sipdesk_call_places_one_call_and_exits_when_it_ends() {
    if !ready("sipdesk_call") {
        return;
    }
    let rig = DeskRig::new();
    let uas = Uas::echo(rig.dir.path());
    let out = sipdesk_e2e::sipdesk::command(&rig.db)
        .args([
            "call",
            &format!("sip:service@127.0.0.1:{}", uas.port),
            "--audio",
            "null",
            "--json",
            "--hangup-after",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let schema = sipdesk_e2e::events_schema::EventsSchema::load();
    let events: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for e in &events {
        schema.validate(e).unwrap_or_else(|err| panic!("{err}: {e}"));
    }
    let states: Vec<&str> =
        events.iter().filter(|e| e["event"] == "call").map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["calling", "ringing", "active", "ended"], "{stdout}");
    assert!(
        events.iter().any(|e| e["event"] == "registration" && e["state"] == "unregistered"),
        "it unregisters before exiting"
    );
    // A user the registrar does not know: Kamailio says 404, the call fails and the exit code says so.
    let out = sipdesk_e2e::sipdesk::command(&rig.db)
        .args(["call", &format!("sip:9999@127.0.0.1:{}", rig.k.port), "--audio", "null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("call ended: not_found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn junk_rtp_is_rejected_and_the_audio_stays_right() {
    if !ready("junk_rtp") {
        return;
    }
    let rig = DeskRig::new();
    let (tone, heard) = (rig.dir.path().join("tone.wav"), rig.dir.path().join("heard.wav"));
    write_tone_wav(&tone, 1400.0, 8000, 8.0, -12.0, 0.0);
    let uas = Uas::echo(rig.dir.path());
    let mut run = rig.run(&["--audio", &format!("file:{},{}", tone.display(), heard.display())], &[]);
    let dialed = run.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:service@127.0.0.1:{}", uas.port)}));
    let call_id = dialed["result"]["call_id"].as_str().unwrap().to_string();
    run.wait_for("active", Duration::from_secs(10), call("active"));
    let rtp_port = uas.offered_rtp_port();
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
    assert_heard_tone(&heard);
    let (code, stderr) = run.terminate(Duration::from_secs(3));
    assert!(code.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("rtp: dropped a packet from") && stderr.contains("is still sending"),
        "rejections are logged: {stderr}"
    );
    assert!(!stderr.contains("rtp: latching onto"), "the stray sender never took over: {stderr}");
}
