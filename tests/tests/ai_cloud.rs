//! Handing a live call to the cloud voice agents, end to end, with loopback servers in their
//! place (tests/src/fake_doubao.rs, tests/src/fake_openai.rs; nothing leaves 127.0.0.1): a
//! baresip caller calls the desk through Kamailio, the desk (`--auto-answer`, its own voice a
//! 1400 Hz tone) hands the call to the provider the admin enabled with `sipdesk ai edit`, the
//! fake speaks a 700 Hz tone and "hears" the caller's 1020 Hz tone. What baresip recorded and
//! what the fake received are checked by frequency. A failing provider (refused key, socket
//! closed mid-sentence, malformed frame, error event) gives the call back to the desk, which
//! stays up, each time with a `handoff` event saying why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_e2e::audio::{analyse, read_wav};
use sipdesk_e2e::baresip::{self, Baresip};
use sipdesk_e2e::caller_rig::CallerRig;
use sipdesk_e2e::kamailio::{self, Kamailio};
use sipdesk_e2e::sipdesk::{run_with_stdin, Running};
use sipdesk_e2e::{fake_doubao, fake_openai};

/// The agent's voice in the fakes, the caller's and the desk's.
const AGENT_HZ: f64 = 700.0;
const CALLER_HZ: f64 = 1020.0;
const DESK_HZ: f64 = 1400.0;
/// What the test stores as the providers' keys (never a real one).
const KEY: &str = "test-key-not-a-secret";

// One call at a time: the recordings are read by level and frequency, which a 2-core machine
// running other calls at once can blur.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Rig {
    _serial: std::sync::MutexGuard<'static, ()>,
    _k: Kamailio,
    phone: Baresip,
    desk: Running,
    id: String,
    /// How many desk events had been seen when the last handoff or takeback was sent.
    sent_at: usize,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

/// The caller's audio: `lead` s of silence, `tone` s of 1020 Hz at -12 dBFS, `tail` s of silence.
fn caller_wav(path: &Path, lead: f64, tone: f64, tail: f64) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let amp = 32767.0 * 10f64.powf(-12.0 / 20.0);
    let (a, b, c) = ((lead * 8000.0) as usize, (tone * 8000.0) as usize, (tail * 8000.0) as usize);
    for n in 0..a + b + c {
        let v = if n >= a && n < a + b {
            amp * (2.0 * std::f64::consts::PI * CALLER_HZ * n as f64 / 8000.0).sin()
        } else {
            0.0
        };
        w.write_sample(v.round() as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// Runs `sipdesk ai ARGS` on the desk's database (the key, when given, on stdin).
fn ai(db: &Path, args: &[&str], key: Option<&str>) {
    let mut all = vec!["ai"];
    all.extend_from_slice(args);
    if key.is_some() {
        all.push("--api-key-stdin");
    }
    let out = run_with_stdin(db, &all, &format!("{}\n", key.unwrap_or("")));
    assert!(out.status.success(), "sipdesk {all:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Points `provider` at `url`, enables it and makes it the one handoffs go to.
fn use_provider(db: &Path, provider: &str, url: &str) {
    let mut args = vec!["edit", provider, "--endpoint", url, "--enable"];
    if provider == "doubao" {
        args.extend(["--app-id", "test-app"]);
    }
    ai(db, &args, Some(KEY));
    ai(db, &["default", provider], None);
}

/// Kamailio, a baresip caller playing `caller` (built by [`caller_wav`]), and a desk that
/// answers at once with its 1400 Hz tone and records what it hears; `setup` runs on the desk's
/// database before it starts.
fn rig(caller: (f64, f64, f64), setup: impl FnOnce(&Path)) -> Option<Rig> {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("ai_cloud", &needed) {
        return None;
    }
    let CallerRig { k, phone, desk, call_id: id, db, dir } = CallerRig::start(
        |wav| caller_wav(wav, caller.0, caller.1, caller.2),
        |db, dir| {
            setup(db);
            sipdesk_e2e::audio::write_tone_wav(&dir.join("desk.wav"), DESK_HZ, 8000, 60.0, -12.0, 0.0);
        },
        &["--auto-answer", "--audio", "file:{dir}/desk.wav,{dir}/heard.wav"],
    );
    Some(Rig { _serial: serial, _k: k, phone, desk, id, sent_at: 0, db, _dir: dir })
}

impl Rig {
    /// Lets the caller hear the desk for a moment, then hands the call over.
    fn handoff_after_desk(&mut self, n: u64) {
        std::thread::sleep(Duration::from_millis(1500));
        self.handoff(n);
    }

    fn handoff(&mut self, n: u64) {
        self.sent_at = self.desk.seen().len();
        let ack = self.desk.command(json!({"id": n, "cmd": "handoff", "call_id": self.id}));
        assert_eq!(ack["event"], "ack", "{ack}");
    }

    fn takeback(&mut self, n: u64) {
        self.sent_at = self.desk.seen().len();
        let ack = self.desk.command(json!({"id": n, "cmd": "takeback", "call_id": self.id}));
        assert_eq!(ack["event"], "ack", "{ack}");
    }

    /// Hangs up from the phone and returns what it heard (8 kHz).
    fn finish(mut self) -> Vec<i16> {
        assert!(
            !self.desk.seen().iter().any(|v| v["event"] == "call" && v["state"] == "ended"),
            "the call must outlive every handoff"
        );
        self.phone.hangup();
        self.phone.wait_event("CALL_CLOSED", Duration::from_secs(5));
        let recs = self.phone.received_recordings();
        let (samples, rate) = read_wav(&recs[0]);
        assert_eq!(rate, 8000);
        let (code, _) = self.desk.terminate(Duration::from_secs(3));
        assert!(code.success());
        samples
    }
}

/// What each quarter second of 8 kHz audio holds: the agent, the desk, silence or other sound.
fn kinds(samples: &[i16]) -> Vec<&'static str> {
    samples
        .chunks_exact(2000)
        .map(|w| {
            let a = analyse(w, 8000);
            if a.rms_dbfs < -45.0 {
                "silence"
            } else if (a.dominant_hz - AGENT_HZ).abs() < 30.0 && a.coverage > 0.9 {
                "agent"
            } else if (a.dominant_hz - DESK_HZ).abs() < 30.0 && a.coverage > 0.9 {
                "desk"
            } else {
                "other"
            }
        })
        .collect()
}

/// `kinds` with repeats merged, and how many quarter seconds each run lasted.
fn runs(kinds: &[&'static str]) -> Vec<(&'static str, usize)> {
    let mut out: Vec<(&'static str, usize)> = Vec::new();
    for k in kinds {
        match out.last_mut() {
            Some((last, n)) if last == k => *n += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// The dominant frequency of the loud part of `samples` at `rate`.
fn tone_of(samples: &[i16], rate: u32) -> f64 {
    analyse(samples, rate).dominant_hz
}

fn transcripts(desk: &Running, speaker: &str) -> Vec<String> {
    desk.seen()
        .iter()
        .filter(|v| v["event"] == "transcript" && v["speaker"] == speaker && v["final"] == true)
        .map(|v| v["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The call coming back to the desk after the last handoff or takeback was sent.
fn back_to_desk(r: &mut Rig, what: &str) -> Value {
    let since = r.sent_at;
    r.desk.wait_since(since, what, Duration::from_secs(15), |v| v["event"] == "handoff" && v["to"] == "human")
}

#[test]
fn a_call_handed_to_doubao_hears_its_voice_and_doubao_hears_the_caller() {
    let fake = fake_doubao::FakeDoubao::start(fake_doubao::Behaviour {
        reply_tone_hz: AGENT_HZ,
        reply_ms: 2000,
        reply_text: "I can help with that.".into(),
        heard_text: "hello there".into(),
        ..fake_doubao::Behaviour::default()
    });
    let url = fake.url();
    // The caller speaks (its tone) once the greeting has played.
    let Some(mut r) = rig((5.5, 1.0, 20.0), |db| use_provider(db, "doubao", &url)) else { return };
    r.handoff_after_desk(1);
    let h = r.desk.wait_for("to ai", Duration::from_secs(10), |v| v["event"] == "handoff" && v["to"] == "ai");
    assert_eq!(h["provider"], "doubao", "{h}");
    // The caller's words come back as Doubao's recognition, the reply as its sentences.
    r.desk.wait_for("caller transcript", Duration::from_secs(15), |v| {
        v["event"] == "transcript" && v["speaker"] == "caller" && v["final"] == true && v["text"] == "hello there"
    });
    r.desk.wait_for("reply transcript", Duration::from_secs(10), |v| {
        v["event"] == "transcript" && v["speaker"] == "ai" && v["final"] == true && v["text"] == "I can help with that."
    });
    std::thread::sleep(Duration::from_millis(2500));
    r.takeback(2);
    let back = back_to_desk(&mut r, "takeback");
    assert!(back["reason"].is_null(), "{back}");
    std::thread::sleep(Duration::from_millis(1500));

    let got = fake.received();
    // The handshake carried the stored credentials and the documented resource id.
    assert_eq!(got.header("x-api-access-key"), Some(KEY));
    assert_eq!(got.header("x-api-app-id"), Some("test-app"));
    assert_eq!(got.header("x-api-resource-id"), Some("volc.speech.dialog"));
    // SayHello carried the default greeting (the admin left it empty; Doubao's row speaks
    // Chinese unless changed).
    let hello = got.first(300).expect("SayHello").json();
    let says = |t: &str| t.contains("automated assistant") || t.contains("自动语音助手");
    assert!(hello["content"].as_str().is_some_and(says), "{hello}");
    // The caller's tone reached Doubao as 16 kHz audio in 20 ms packets.
    assert!(got.task_requests().iter().all(|f| f.payload.len() == 640));
    let heard = got.audio_samples();
    let loud: Vec<i16> =
        heard.chunks(320).filter(|c| c.iter().any(|s| s.unsigned_abs() > 2000)).flatten().copied().collect();
    assert!(loud.len() >= 16_000 / 2, "under 0.5 s of the caller's tone reached Doubao: {} samples", loud.len());
    let hz = tone_of(&loud, 16_000);
    assert!((hz - CALLER_HZ).abs() < 15.0, "Doubao heard {hz} Hz");
    // The caller heard the desk, the greeting and the reply (700 Hz), then the desk again.
    let seen = runs(&kinds(&r.finish()));
    eprintln!("the caller heard: {seen:?}");
    let agent: Vec<usize> = seen.iter().filter(|(k, _)| *k == "agent").map(|(_, n)| *n).collect();
    assert!(agent.len() >= 2 && agent.iter().all(|n| *n >= 5), "greeting and reply, each ~2 s of 700 Hz: {seen:?}");
    let first_agent = seen.iter().position(|(k, _)| *k == "agent").unwrap();
    let last_agent = seen.iter().rposition(|(k, _)| *k == "agent").unwrap();
    assert!(seen[..first_agent].iter().any(|(k, _)| *k == "desk"), "the desk before the handoff: {seen:?}");
    assert!(seen[last_agent..].iter().any(|(k, n)| *k == "desk" && *n >= 4), "the desk after the takeback: {seen:?}");
}

#[test]
fn a_call_handed_to_openai_hears_its_voice_and_openai_hears_the_caller() {
    let fake = fake_openai::FakeOpenAi::start(fake_openai::Behaviour {
        greeting_hz: AGENT_HZ,
        greeting_ms: 2000,
        reply_hz: AGENT_HZ,
        reply_ms: 2000,
        heard_text: "I have a question about my bill".into(),
        reply_text: "Sure, I can help with your bill.".into(),
        ..fake_openai::Behaviour::default()
    });
    let url = fake.url();
    let Some(mut r) = rig((5.5, 1.0, 20.0), |db| use_provider(db, "openai", &url)) else { return };
    r.handoff_after_desk(1);
    let h = r.desk.wait_for("to ai", Duration::from_secs(10), |v| v["event"] == "handoff" && v["to"] == "ai");
    assert_eq!(h["provider"], "openai", "{h}");
    r.desk.wait_for("caller transcript", Duration::from_secs(15), |v| {
        v["event"] == "transcript" && v["speaker"] == "caller" && v["final"] == true
    });
    r.desk.wait_for("reply transcript", Duration::from_secs(10), |v| {
        v["event"] == "transcript"
            && v["speaker"] == "ai"
            && v["final"] == true
            && v["text"].as_str().is_some_and(|t| t.contains("bill"))
    });
    std::thread::sleep(Duration::from_millis(2500));
    r.takeback(2);
    let back = back_to_desk(&mut r, "takeback");
    assert!(back["reason"].is_null(), "{back}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(transcripts(&r.desk, "caller").iter().any(|t| t == "I have a question about my bill"));

    let got = fake.received();
    assert_eq!(
        got.upgrades[0].headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.as_str()),
        Some(&*format!("Bearer {KEY}"))
    );
    let session = got.session().expect("session.update");
    // A PCMU call's audio goes to OpenAI as µ-law both ways, as it is on the wire.
    assert_eq!(session["audio"]["input"]["format"], json!({"type": "audio/pcmu"}), "{session}");
    assert_eq!(session["audio"]["output"]["format"], json!({"type": "audio/pcmu"}), "{session}");
    let (heard, rate) = got.caller_samples();
    assert_eq!(rate, 8000);
    let loud: Vec<i16> =
        heard.chunks(160).filter(|c| c.iter().any(|s| s.unsigned_abs() > 2000)).flatten().copied().collect();
    assert!(loud.len() >= 8000 / 2, "under 0.5 s of the caller's tone reached OpenAI: {} samples", loud.len());
    let hz = tone_of(&loud, 8000);
    assert!((hz - CALLER_HZ).abs() < 15.0, "OpenAI heard {hz} Hz");
    let seen = runs(&kinds(&r.finish()));
    eprintln!("the caller heard: {seen:?}");
    let agent: Vec<usize> = seen.iter().filter(|(k, _)| *k == "agent").map(|(_, n)| *n).collect();
    assert!(agent.len() >= 2 && agent.iter().all(|n| *n >= 5), "greeting and reply, each ~2 s of 700 Hz: {seen:?}");
    let last_agent = seen.iter().rposition(|(k, _)| *k == "agent").unwrap();
    assert!(seen[last_agent..].iter().any(|(k, n)| *k == "desk" && *n >= 4), "the desk after the takeback: {seen:?}");
}

#[test]
fn the_caller_speaking_over_openai_cuts_its_audio_and_the_item_is_truncated_to_what_was_played() {
    // A 6 s greeting sent all at once: the bridge queues it and plays it paced. The caller
    // speaks 3 s in; the fake's server VAD interrupts and the bridge must flush at once.
    let fake = fake_openai::FakeOpenAi::start(fake_openai::Behaviour {
        greeting_hz: AGENT_HZ,
        greeting_ms: 6000,
        reply_hz: AGENT_HZ,
        reply_ms: 1000,
        speed: f64::INFINITY,
        ..fake_openai::Behaviour::default()
    });
    let url = fake.url();
    let Some(mut r) = rig((3.0, 1.0, 20.0), |db| use_provider(db, "openai", &url)) else { return };
    r.handoff(1);
    r.desk.wait_for("to ai", Duration::from_secs(10), |v| v["event"] == "handoff" && v["to"] == "ai");
    assert!(
        fake.wait_until(Duration::from_secs(15), |g| !g.of_type("conversation.item.truncate").is_empty()),
        "no truncate after the caller spoke; sent: {:?}",
        fake.received().types()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let got = fake.received();
    let truncate = got.of_type("conversation.item.truncate")[0].clone();
    let item = got.item(truncate["item_id"].as_str().unwrap()).expect("the truncated item is one the fake spoke");
    let end = truncate["audio_end_ms"].as_u64().unwrap();
    // What was played: the caller spoke about 3 s after the handoff, not after the 6 s sent.
    assert!(end <= item.sent_ms(), "{truncate}: more than the {} ms sent", item.sent_ms());
    assert!((1500..=4500).contains(&end), "{truncate}: not what the caller heard before speaking");
    assert!(got.of_type("response.cancel").is_empty(), "the server had interrupted itself: no cancel");
    r.takeback(2);
    back_to_desk(&mut r, "takeback");
    std::thread::sleep(Duration::from_millis(1000));
    let seen = runs(&kinds(&r.finish()));
    eprintln!("the caller heard: {seen:?}");
    let first = seen.iter().find(|(k, _)| *k == "agent").map(|(_, n)| *n).unwrap_or(0);
    // Quarter seconds: the greeting stopped within about 5 s, well short of its 6 s.
    assert!((6..=19).contains(&first), "the greeting played {} quarter seconds: {seen:?}", first);
}

/// Every way a provider can fail returns the call to the desk, which keeps it: one call, a
/// fresh fake per failure, pointed at with `sipdesk ai edit` while the desk runs.
#[test]
fn a_failing_provider_gives_the_call_back_and_the_call_stays_up() {
    let Some(mut r) = rig((0.0, 0.0, 60.0), |_| {}) else { return };
    let db = r.db.clone();
    let mut n = 1;
    let mut reasons = Vec::new();
    let openai_faults = [
        ("401", fake_openai::Fault::Unauthorized, "provider_unavailable"),
        ("close mid-sentence", fake_openai::Fault::CloseMidSentence, "provider_error"),
        ("malformed frame", fake_openai::Fault::Malformed(fake_openai::Malformed::NotJson), "provider_error"),
        (
            "error event",
            fake_openai::Fault::ErrorEvent {
                kind: "server_error".into(),
                code: None,
                message: "The server had an error".into(),
            },
            "provider_error",
        ),
    ];
    for (what, fault, reason) in openai_faults {
        let fake = fake_openai::FakeOpenAi::start(fake_openai::Behaviour {
            fault,
            greeting_ms: 3000,
            speed: 1.0,
            ..Default::default()
        });
        use_provider(&db, "openai", &fake.url());
        r.handoff(n);
        let back = back_to_desk(&mut r, what);
        eprintln!("openai {what}: {back}");
        assert_eq!(
            (back["provider"].as_str(), back["reason"].as_str()),
            (Some("openai"), Some(reason)),
            "{what}: {back}"
        );
        reasons.push(back);
        n += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let doubao_faults = [
        ("401", fake_doubao::Fault::Unauthorized, "provider_unavailable"),
        ("close mid-sentence", fake_doubao::Fault::CloseMidSentence { after_frames: 20 }, "provider_error"),
        ("malformed frame", fake_doubao::Fault::MalformedFrame, "provider_error"),
        (
            "error frame",
            fake_doubao::Fault::ErrorFrame { code: 55000001, message: "server error".into() },
            "provider_error",
        ),
    ];
    for (what, fault, reason) in doubao_faults {
        let fake = fake_doubao::FakeDoubao::start(fake_doubao::Behaviour {
            fault,
            reply_ms: 3000,
            pace_audio: true,
            ..Default::default()
        });
        use_provider(&db, "doubao", &fake.url());
        r.handoff(n);
        let back = back_to_desk(&mut r, what);
        eprintln!("doubao {what}: {back}");
        assert_eq!(
            (back["provider"].as_str(), back["reason"].as_str()),
            (Some("doubao"), Some(reason)),
            "{what}: {back}"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    // After the last failure the caller hears the desk again.
    std::thread::sleep(Duration::from_millis(3000));
    let seen = runs(&kinds(&r.finish()));
    eprintln!("the caller heard: {seen:?}");
    assert!(matches!(seen.last(), Some(("desk", n)) if *n >= 8), "the desk at the end: {seen:?}");
}

/// A provider slow to answer (here: one that takes the connection and never answers the
/// WebSocket upgrade, so the agent stays "opening" for its full timeout) holds up nothing: the
/// desk can take the call back at once, and the caller's hang-up ends the call at once, each
/// before the opening would have failed.
#[test]
fn a_provider_slow_to_open_holds_up_neither_the_take_back_nor_the_hang_up() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/v1/realtime", silent.local_addr().unwrap());
    let Some(mut r) = rig((0.0, 0.0, 60.0), |db| use_provider(db, "openai", &url)) else { return };
    // Holds each connection open, unanswered.
    let mut held = Vec::new();
    let mut accept = |what: &str| {
        let (conn, _) = silent.accept().unwrap_or_else(|e| panic!("{what}: the desk never connected: {e}"));
        held.push(conn);
    };
    r.handoff(1);
    accept("first handoff");
    r.takeback(2);
    let back = back_to_desk(&mut r, "the take-back while opening");
    assert!(back["reason"].is_null(), "taken back before the agent answered, not failed: {back}");
    assert!(!r.desk.seen().iter().any(|v| v["event"] == "handoff" && v["to"] == "ai"), "{:?}", r.desk.seen());

    r.handoff(3);
    accept("second handoff");
    r.phone.hangup();
    let ended =
        r.desk.wait_for("the call to end", Duration::from_secs(15), |v| v["event"] == "call" && v["state"] == "ended");
    assert_eq!(ended["reason"], "remote_hangup", "{ended}");
    let failed: Vec<&Value> = r.desk.seen().iter().filter(|v| v["reason"] == "provider_unavailable").collect();
    assert!(failed.is_empty(), "the hang-up waited for the opening to fail: {failed:?}");
    drop(held);
    let (code, _) = r.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}
