//! The baresip harness itself: two baresip 1.0.0 phones registered at a real Kamailio, one calls
//! the other through it playing a 1020 Hz tone, and the callee's recording holds that tone.

use std::time::{Duration, Instant};

use sipdesk_e2e::audio;
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{Config, Kamailio};

const WAIT: Duration = Duration::from_secs(10);

fn ready(test: &str) -> bool {
    sipdesk_e2e::require_programs(test, &["baresip", "kamailio", "kamcmd"])
}

fn registrar() -> Kamailio {
    Kamailio::start(&Config {
        users: vec![("2001".into(), "pw-2001".into()), ("2002".into(), "pw-2002".into())],
        max_expires: 60,
        ..Config::default()
    })
}

fn phone(user: &str, k: &Kamailio, auto_answer: bool, play_wav: Option<std::path::PathBuf>) -> Baresip {
    Baresip::start(&BaresipConfig {
        user: user.into(),
        password: format!("pw-{user}"),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer,
        play_wav,
        ..BaresipConfig::default()
    })
}

#[test]
fn baresip_calls_baresip_through_kamailio_and_the_tone_arrives() {
    if !ready("baresip_tone") {
        return;
    }
    let started = Instant::now();
    let k = registrar();
    let tmp = tempfile::tempdir().unwrap();
    let tone = tmp.path().join("tone-1020.wav");
    audio::write_tone_wav(&tone, 1020.0, baresip::codec_rate("pcmu"), 3.0, -12.0, 1.0);

    let mut caller = phone("2001", &k, false, Some(tone));
    let mut callee = phone("2002", &k, true, None);
    caller.wait_registered(WAIT);
    callee.wait_registered(WAIT);
    let dump = k.ul_dump();
    assert!(dump.contains("AoR: 2001") && dump.contains("AoR: 2002"), "{dump}");

    caller.dial(&format!("sip:2002@127.0.0.1:{}", k.port));
    // With answermode=auto baresip 1.0.0 reports no CALL_INCOMING, only CALL_ESTABLISHED.
    callee.wait_event("CALL_ESTABLISHED", WAIT);
    caller.wait_event("CALL_ESTABLISHED", WAIT);
    // The caller hangs up when its WAV (3 s tone + 1 s silence) ends.
    let closed = caller.wait_event("CALL_CLOSED", WAIT);
    assert!(closed["param"].as_str().unwrap_or_default().contains("end of file"), "{closed}");
    callee.wait_event("CALL_CLOSED", WAIT);

    let received = callee.received_recordings();
    assert_eq!(received.len(), 1, "{:?}", callee.recordings());
    let (samples, rate) = audio::read_wav(&received[0]);
    let a = audio::analyse(&samples, rate);
    eprintln!("callee received at {rate} Hz: {a:?}");
    assert!((a.dominant_hz - 1020.0).abs() <= 1020.0 * 0.02, "{a:?}");
    assert!(a.coverage > 0.5, "{a:?}");
    assert!((a.rms_dbfs + 12.0).abs() < 2.0, "G.711 keeps the level: {a:?}");

    // What the callee sent was its silent WAV.
    let sent = callee.sent_recordings();
    assert_eq!(sent.len(), 1, "{:?}", callee.recordings());
    let (samples, rate) = audio::read_wav(&sent[0]);
    assert_eq!(audio::analyse(&samples, rate).coverage, 0.0);
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn baresip_answers_by_command_and_hangs_up() {
    if !ready("baresip_answer_hangup") {
        return;
    }
    let k = registrar();
    let mut caller = phone("2001", &k, false, None);
    let mut callee = phone("2002", &k, false, None);
    caller.wait_registered(WAIT);
    callee.wait_registered(WAIT);

    caller.dial(&format!("sip:2002@127.0.0.1:{}", k.port));
    callee.wait_event("CALL_INCOMING", WAIT);
    caller.wait_event("CALL_RINGING", WAIT);
    callee.answer();
    callee.wait_event("CALL_ESTABLISHED", WAIT);
    caller.wait_event("CALL_ESTABLISHED", WAIT);
    callee.hangup();
    callee.wait_event("CALL_CLOSED", WAIT);
    caller.wait_event("CALL_CLOSED", WAIT);
}
