//! In-call features against baresip through Kamailio, audio checked by content per half second:
//! the desk holds the phone (the phone hears music on hold instead of the desk's 1400 Hz, then
//! the tone again), the phone holds the desk (the desk shows `held_remote` and hears nothing,
//! then the phone's 1020 Hz again); DTMF both ways as RFC 4733 events, and from the desk as SIP
//! INFO, with the digits matching on the other side.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_core::media::g711::Law;
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav};
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::relay::Relay;
use sipdesk_e2e::sipdesk::{add_account, Running};
use std::net::{IpAddr, Ipv4Addr};

const DESK_HZ: f64 = 1400.0;
const PHONE_HZ: f64 = 1020.0;

/// What half a second of a recording holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Heard {
    Silence,
    Tone(u32),
    Other(u32),
}

fn half_seconds(path: &Path) -> Vec<Heard> {
    let (samples, rate) = read_wav(path);
    classify(&samples, rate)
}

fn classify(samples: &[i16], rate: u32) -> Vec<Heard> {
    samples
        .chunks_exact(rate as usize / 2)
        .map(|w| {
            let a = analyse(w, rate);
            if a.rms_dbfs < -45.0 {
                Heard::Silence
            } else if [DESK_HZ, PHONE_HZ].iter().any(|hz| (a.dominant_hz - hz).abs() <= hz * 0.02) {
                Heard::Tone(a.dominant_hz.round() as u32)
            } else {
                Heard::Other(a.dominant_hz.round() as u32)
            }
        })
        .collect()
}

/// What baresip is writing right now: its recorder starts a new file (same name) whenever a
/// re-INVITE rebuilds its audio, and fills in the WAV header only at the end, so read the
/// samples after the `data` chunk id of a copy. baresip decodes PCMU at 8 kHz mono.
fn phone_hears_now(phone: &Baresip) -> Vec<Heard> {
    let path = phone.received_recordings().pop().expect("a recording");
    let bytes = std::fs::read(&path).unwrap();
    let start = bytes.windows(4).take(512).position(|w| w == b"data").map_or(44, |p| p + 8);
    let samples: Vec<i16> = bytes[start..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    classify(&samples, 8000)
}

/// The PCMU audio the desk sent, decoded (telephone-events left out).
fn wire_audio(relay: &Relay) -> Vec<i16> {
    let packets = relay.rtp.outbound.lock().unwrap().clone();
    let mut pcm = Vec::new();
    for p in packets.iter().filter(|p| p.len() == 12 + 160 && p[1] & 0x7F == 0) {
        let mut frame = [0i16; 160];
        Law::Mu.decode_into(&p[12..], &mut frame);
        pcm.extend_from_slice(&frame);
    }
    pcm
}

/// Collapses runs of at least `min` equal kinds (tones by frequency band) into a sequence.
fn phases(heard: &[Heard], min: usize) -> Vec<String> {
    let label = |h: &Heard| match h {
        Heard::Silence => "silence".to_string(),
        Heard::Tone(hz) => format!("tone{}", if (*hz as f64 - DESK_HZ).abs() < 50.0 { 1400 } else { 1020 }),
        Heard::Other(_) => "music".to_string(),
    };
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(String, usize)> = None;
    for h in heard {
        let l = label(h);
        run = match run {
            Some((r, n)) if r == l => Some((r, n + 1)),
            Some((r, n)) => {
                if n >= min && out.last() != Some(&r) {
                    out.push(r);
                }
                Some((l, 1))
            }
            None => Some((l, 1)),
        };
    }
    if let Some((r, n)) = run {
        if n >= min && out.last() != Some(&r) {
            out.push(r);
        }
    }
    out
}

fn state(s: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "call" && v["state"] == s
}

struct Rig {
    relay: Relay,
    _k: Kamailio,
    phone: Baresip,
    desk: Running,
    call_id: String,
    dir: tempfile::TempDir,
}

fn start(dtmf: &str) -> Option<Rig> {
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("call_features", &needed) {
        return None;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let phone_wav = dir.path().join("phone.wav");
    let desk_wav = dir.path().join("desk.wav");
    write_tone_wav(&phone_wav, PHONE_HZ, 8000, 60.0, -12.0, 0.0);
    write_tone_wav(&desk_wav, DESK_HZ, 8000, 60.0, -12.0, 0.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer: true,
        play_wav: Some(phone_wav),
        record_dir: dir.path().join("phone-rec"),
        ..BaresipConfig::default()
    });
    phone.wait_registered(Duration::from_secs(10));
    let db = dir.path().join("desk.db");
    add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    let audio = format!("file:{},{}", desk_wav.display(), dir.path().join("desk-heard.wav").display());
    // A transparent relay in the media path records what the desk puts on the wire.
    let (inside, public) = (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let port = sipdesk_e2e::relay::free_port_pair(&[inside, public]);
    let relay = Relay::start(public, inside, port, 0.0, 0);
    let ports = format!("{port}-{}", port + 1);
    let env = [("SIPDESK_DTMF", dtmf), ("SIPDESK_RTP_PORTS", ports.as_str()), ("SIPDESK_MEDIA_ADDRESS", "127.0.0.2")];
    let mut desk = Running::start(&db, &["--audio", &audio], &env);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    let r = desk.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:2001@127.0.0.1:{}", k.port)}));
    assert_eq!(r["event"], "ack", "{r}");
    let call_id = r["result"]["call_id"].as_str().unwrap().to_string();
    desk.wait_for("active", Duration::from_secs(10), state("active"));
    phone.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    Some(Rig { relay, _k: k, phone, desk, call_id, dir })
}

fn sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn hold_and_resume_both_ways_with_rfc4733_dtmf() {
    let Some(mut rig) = start("rfc4733") else { return };
    let id = rig.call_id.clone();
    sleep(2500);
    // We hold the phone: it hears music, not our microphone.
    let r = rig.desk.command(json!({"id": 2, "cmd": "hold", "call_id": id}));
    assert_eq!(r["event"], "ack", "{r}");
    rig.desk.wait_for("held", Duration::from_secs(5), state("held"));
    sleep(3000);

    let r = rig.desk.command(json!({"id": 3, "cmd": "resume", "call_id": id}));
    assert_eq!(r["event"], "ack", "{r}");
    rig.desk.wait_next("active again", Duration::from_secs(5), state("active"));
    sleep(2500);
    let resumed = phases(&phone_hears_now(&rig.phone), 3);
    // The phone holds us: we show it and hear nothing until it resumes.
    rig.phone.command("hold", None).expect("baresip hold");
    rig.desk.wait_for("held_remote", Duration::from_secs(5), state("held_remote"));
    sleep(3000);
    rig.phone.command("resume", None).expect("baresip resume");
    rig.desk.wait_next("active after remote resume", Duration::from_secs(5), state("active"));
    sleep(2500);
    // DTMF both ways as RFC 4733.
    let r = rig.desk.command(json!({"id": 4, "cmd": "dtmf", "call_id": id, "digits": "19#"}));
    assert_eq!(r["event"], "ack", "{r}");
    let mut got = String::new();
    while got.len() < 3 {
        let e = rig.phone.wait_event("CALL_DTMF_START", Duration::from_secs(5));
        got.push_str(e["param"].as_str().unwrap_or("?"));
    }
    assert_eq!(got, "19#", "the phone heard our digits");
    for d in ["5", "*"] {
        rig.phone.command("sndcode", Some(d)).expect("baresip sndcode");
        let e =
            rig.desk.wait_next("dtmf in", Duration::from_secs(5), |v| v["event"] == "dtmf" && v["direction"] == "in");
        assert_eq!((e["digit"].as_str(), e["method"].as_str()), (Some(d), Some("rfc4733")), "{e}");
        sleep(300);
    }
    // Commands that make no sense are refused clearly.
    let r = rig.desk.command(json!({"id": 5, "cmd": "hold", "call_id": "nope"}));
    assert_eq!((r["event"].as_str(), r["code"].as_str()), (Some("error"), Some("not_found")), "{r}");
    let r = rig.desk.command(json!({"id": 6, "cmd": "dtmf", "call_id": id, "digits": "12x"}));
    assert_eq!((r["event"].as_str(), r["code"].as_str()), (Some("error"), Some("invalid_argument")), "{r}");
    rig.phone.hangup();
    rig.desk.wait_for("ended", Duration::from_secs(5), state("ended"));
    rig.phone.wait_event("CALL_CLOSED", Duration::from_secs(5));

    let desk_heard = phases(&half_seconds(&rig.dir.path().join("desk-heard.wav")), 3);
    eprintln!("desk heard: {desk_heard:?}");
    let want = ["tone1020", "silence", "tone1020"];
    assert!(
        desk_heard.windows(3).any(|w| w == want),
        "the phone's tone stops while it holds us and comes back: {desk_heard:?}"
    );
    let sent = phases(&classify(&wire_audio(&rig.relay), 8000), 3);
    eprintln!("desk sent: {sent:?}; phone heard after resume: {resumed:?}");
    assert!(
        sent.windows(3).any(|w| w == ["tone1400", "music", "tone1400"]),
        "on hold the phone is sent music, never our microphone, then our tone again: {sent:?}"
    );
    assert_eq!(resumed, ["tone1400"], "after resume the phone hears our tone again");
    let (code, _) = rig.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn dtmf_as_sip_info_reaches_the_phone() {
    let Some(mut rig) = start("info") else { return };
    let id = rig.call_id.clone();
    sleep(1000);
    let r = rig.desk.command(json!({"id": 2, "cmd": "dtmf", "call_id": id, "digits": "42"}));
    assert_eq!(r["event"], "ack", "{r}");
    for want in ["4", "2"] {
        let e =
            rig.desk.wait_next("dtmf out", Duration::from_secs(5), |v| v["event"] == "dtmf" && v["direction"] == "out");
        assert_eq!((e["digit"].as_str(), e["method"].as_str()), (Some(want), Some("info")), "{e}");
        let e = rig.phone.wait_event("CALL_DTMF_START", Duration::from_secs(5));
        assert_eq!(e["param"].as_str(), Some(want), "{e}");
    }
    rig.phone.hangup();
    rig.desk.wait_for("ended", Duration::from_secs(5), state("ended"));
    let (code, _) = rig.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

/// Kamailio's `sst` and `dialog` modules ask for a 90 s Session-Expires and end a call that is
/// not refreshed in time with BYE both ways. baresip (no timer support) calls the desk, so the
/// desk must refresh: the call must outlive two refresh intervals with audio still flowing.
#[test]
fn session_timer_keeps_a_long_call_through_two_refreshes() {
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("call_features", &needed) {
        return;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        session_expires: Some(90),
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let phone_wav = dir.path().join("phone.wav");
    write_tone_wav(&phone_wav, PHONE_HZ, 8000, 150.0, -12.0, 0.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer: true,
        play_wav: Some(phone_wav),
        record_dir: dir.path().join("phone-rec"),
        ..BaresipConfig::default()
    });
    phone.wait_registered(Duration::from_secs(10));
    let db = dir.path().join("desk.db");
    add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    let mut desk = Running::start(&db, &["--auto-answer", "--audio", "null"], &[]);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    phone.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    desk.wait_for("active", Duration::from_secs(10), state("active"));
    std::thread::sleep(Duration::from_secs(5));
    // Two refreshes at 45 s and 90 s; without them Kamailio would end the call at 90 s.
    std::thread::sleep(Duration::from_secs(100));
    assert!(
        !desk.seen().iter().any(|v| state("ended")(v)),
        "the call was dropped: {:?}",
        desk.seen().iter().filter(|v| v["event"] == "call").collect::<Vec<_>>()
    );
    assert!(!phone.events().iter().any(|e| e["type"] == "CALL_CLOSED"), "the phone's call closed");
    let log = k.log();
    // Events queue up while the test sleeps: skip to a level report from now.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let level = loop {
        let v = desk.wait_next("audio still flows", Duration::from_secs(2), |v| v["event"] == "call_level");
        if v["ts_ms"].as_u64().unwrap_or(0) >= now_ms {
            break v;
        }
    };
    assert!(level["rx_dbfs"].as_f64().unwrap() > -20.0, "{level}");
    // The phone sent the first INVITE (twice: 407, then with credentials); the rest are the desk's.
    let invites: Vec<&str> = log.lines().filter_map(|l| l.split("INVITE from ").nth(1)?.split(' ').next()).collect();
    let refreshes = invites.iter().filter(|src| Some(*src) != invites.first()).count();
    assert!(refreshes >= 2, "the desk refreshed {refreshes} times; kamailio log:\n{log}");
    assert!(
        desk.stderr_text().contains("session timer: 90 s, refreshed by us"),
        "the proxy's Session-Expires reached the desk"
    );
    phone.hangup();
    desk.wait_for("ended", Duration::from_secs(5), state("ended"));
    let (code, _) = desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}
