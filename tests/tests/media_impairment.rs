//! A call over a bad network: an impairing relay (tests/src/relay.rs) stands in the media path
//! between baresip and the desk, both ways, dropping 10% of RTP packets at random and delaying each
//! by 0-60 ms (which reorders some). The desk advertises the relay's address
//! (`SIPDESK_MEDIA_ADDRESS`) and symmetric RTP answers through it. Each side's recording must
//! still carry the other's tone, with sound in at least 80% of its 20 ms frames; the desk's
//! `call_stats` must show the loss and jitter it measured and a buffer delay under 200 ms.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sipdesk_e2e::audio::{analyse, read_wav, write_tone_wav, Analysis};
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::relay::Relay;
use sipdesk_e2e::sipdesk::{add_account, Running};

const DESK_HZ: f64 = 1400.0;
const PHONE_HZ: f64 = 1020.0;
const INSIDE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn analysed(path: &Path) -> Analysis {
    let (samples, rate) = read_wav(path);
    analyse(&samples, rate)
}

fn check(who: &str, a: &Analysis, hz: f64) {
    eprintln!(
        "{who}: {:.1} Hz, {:.1} dBFS, coverage {:.2}, longest gap {} ms, {} ms",
        a.dominant_hz, a.rms_dbfs, a.coverage, a.longest_gap_ms, a.duration_ms
    );
    assert!((a.dominant_hz - hz).abs() <= hz * 0.02, "{who}: dominant {:.1} Hz, expected {hz}", a.dominant_hz);
    assert!(a.coverage >= 0.8, "{who}: sound in only {:.0}% of 20 ms frames", a.coverage * 100.0);
}

fn impaired_call(codec: &'static str) {
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("media_impairment", &needed) {
        return;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 60,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let phone_wav = dir.path().join("phone.wav");
    let desk_wav = dir.path().join("desk.wav");
    let heard = dir.path().join("desk-heard.wav");
    // 12 s: long enough for two call_stats reports and for the buffer to settle.
    write_tone_wav(&phone_wav, PHONE_HZ, baresip::codec_rate(codec), 12.0, -12.0, 0.0);
    write_tone_wav(&desk_wav, DESK_HZ, 8000, 20.0, -12.0, 0.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec,
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
    let port = sipdesk_e2e::relay::free_port_pair(&[INSIDE, PUBLIC]);
    let relay = Relay::start(PUBLIC, INSIDE, port, 0.10, 60);
    let ports = format!("{port}-{}", port + 1);
    let codecs = if codec.starts_with("opus") { "opus,pcmu" } else { "pcmu,pcma" };
    let audio = format!("file:{},{}", desk_wav.display(), heard.display());
    let mut run = Running::start(
        &db,
        &["--auto-answer", "--audio", &audio],
        &[("SIPDESK_CODECS", codecs), ("SIPDESK_RTP_PORTS", &ports), ("SIPDESK_MEDIA_ADDRESS", "127.0.0.2")],
    );
    run.wait_for("registered", Duration::from_secs(10), |v| v["event"] == "registration" && v["state"] == "registered");
    phone.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    run.wait_for("active", Duration::from_secs(10), |v| v["event"] == "call" && v["state"] == "active");
    run.wait_for("ended", Duration::from_secs(25), |v| v["event"] == "call" && v["state"] == "ended");
    phone.wait_event("CALL_CLOSED", Duration::from_secs(10));
    let (received, dropped, reordered) = (
        relay.rtp.received.load(std::sync::atomic::Ordering::Relaxed),
        relay.rtp.dropped.load(std::sync::atomic::Ordering::Relaxed),
        relay.rtp.reordered.load(std::sync::atomic::Ordering::Relaxed),
    );
    eprintln!("relay: {received} RTP packets, {dropped} dropped, {reordered} reordered");
    assert!(received > 800 && dropped > received / 20 && reordered > 10, "the relay really impaired the call");

    let stats: Vec<&Value> = run.seen().iter().filter(|v| v["event"] == "call_stats").collect();
    assert!(stats.len() >= 2, "call_stats every 5 s: {stats:?}");
    for s in &stats {
        eprintln!("{s}");
        let buffer = s["buffer_ms"].as_f64().unwrap();
        assert!(buffer > 0.0 && buffer < 200.0, "buffer delay {buffer} ms");
    }
    let last = stats.last().unwrap();
    let loss = last["loss_pct"].as_f64().unwrap();
    assert!((5.0..=16.0).contains(&loss), "measured loss {loss}%");
    assert!(last["jitter_ms"].as_f64().unwrap() > 5.0, "measured jitter: {last}");
    let target = last["target_ms"].as_f64().unwrap();
    assert!((40.0..=120.0).contains(&target), "the buffer's target follows 0-60 ms jitter: {target}");
    assert!(last["remote_loss_pct"].as_f64().is_some(), "baresip's RTCP reports reached the desk: {last}");

    check("desk heard", &analysed(&heard), PHONE_HZ);
    let recs = phone.received_recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    check("phone heard", &analysed(&recs[0]), DESK_HZ);
    let (code, _) = run.terminate(Duration::from_secs(3));
    assert!(code.success());
    drop(relay);
}

#[test]
fn g711_survives_loss_and_jitter() {
    impaired_call("pcmu");
}

#[test]
fn opus_survives_loss_and_jitter() {
    impaired_call("opus/48000/2");
}
