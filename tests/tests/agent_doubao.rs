//! The Doubao realtime dialogue client ([`DoubaoAgent`]) against the loopback fake
//! ([`FakeDoubao`]), which decodes the wire with its own decoder: the upgrade headers, the
//! documented frames, audio both ways at the right rates, keep-alive silence, barge-in and
//! transcripts, and every way a session can fail.

use std::time::Duration;

use serde_json::json;
use sipdesk_core::agent::doubao::{AccessKey, DoubaoAgent, DoubaoConfig};
use sipdesk_core::agent::{AgentAudio, AgentEvent, AgentSession, AgentUsage, SessionConfig, VoiceAgent};
use sipdesk_core::media::frame::SampleRate;
use sipdesk_core::media::g711::Law;
use sipdesk_e2e::audio::analyse;
use sipdesk_e2e::fake_doubao::{self, msg, Behaviour, FakeDoubao, Fault};

const APP_ID: &str = "8675309";
const KEY: &str = "ak-test-0123456789-do-not-log";
const VOICE: &str = "zh_male_yunzhou_jupiter_bigtts";
const INSTRUCTIONS: &str = "You answer the phone for Acme Plumbing. Be brief.";
/// StartConnection with `{}`, byte for byte as the API documentation prints it.
const GOLDEN_START_CONNECTION: [u8; 14] = [17, 20, 16, 0, 0, 0, 0, 1, 0, 0, 0, 2, 123, 125];
/// How long any one event may take to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

fn agent(fake: &FakeDoubao) -> DoubaoAgent {
    DoubaoAgent::new(DoubaoConfig {
        endpoint: fake.url(),
        app_id: APP_ID.into(),
        access_key: AccessKey::new(KEY),
        voice: Some(VOICE.into()),
        ..DoubaoConfig::default()
    })
}

fn session_config(greeting: Option<&str>) -> SessionConfig {
    SessionConfig {
        instructions: INSTRUCTIONS.into(),
        greeting: greeting.map(str::to_string),
        ..SessionConfig::default()
    }
}

/// Opens a session and checks that Ready comes first.
async fn open(fake: &FakeDoubao, greeting: Option<&str>) -> AgentSession {
    let mut session = agent(fake).open(session_config(greeting)).await.expect("the session opens");
    assert_eq!(next(&mut session).await, AgentEvent::Ready);
    session
}

async fn next(session: &mut AgentSession) -> AgentEvent {
    tokio::time::timeout(EVENT_TIMEOUT, session.recv())
        .await
        .expect("an event within 5 s")
        .expect("the session still sends events")
}

/// Events up to and including the first that `last` accepts.
async fn until(session: &mut AgentSession, last: impl Fn(&AgentEvent) -> bool) -> Vec<AgentEvent> {
    let mut out = Vec::new();
    loop {
        let event = next(session).await;
        let done = last(&event);
        out.push(event);
        if done {
            return out;
        }
    }
}

/// The samples of the AgentAudio events, checking they are all 24 kHz.
fn agent_audio(events: &[AgentEvent]) -> Vec<i16> {
    let mut all = Vec::new();
    for e in events {
        if let AgentEvent::AgentAudio { rate, samples } = e {
            assert_eq!(*rate, SampleRate::Hz24000, "agent audio rate");
            all.extend_from_slice(samples);
        }
    }
    all
}

/// The events that are not audio, for comparing sequences.
fn without_audio(events: &[AgentEvent]) -> Vec<AgentEvent> {
    events.iter().filter(|e| !matches!(e, AgentEvent::AgentAudio { .. })).cloned().collect()
}

fn tone(hz: f64, rate: u32, ms: u32) -> Vec<i16> {
    fake_doubao::tone(hz, rate, ms)
}

/// Sends `samples` as 20 ms frames at `rate`, one every 20 ms when `paced`.
async fn feed(session: &AgentSession, rate: SampleRate, samples: &[i16], paced: bool) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in samples.chunks(rate.frame_samples()) {
        if paced {
            tick.tick().await;
        }
        session.send_audio(AgentAudio::Pcm { rate, samples: frame.to_vec() }).expect("audio taken");
    }
}

/// After a failure: a fatal error (returned), then Closed, then nothing.
async fn fatal_error_then_closed(session: &mut AgentSession) -> String {
    let events = until(session, |e| matches!(e, AgentEvent::Error { .. })).await;
    let Some(AgentEvent::Error { message, fatal }) = events.last().cloned() else { unreachable!() };
    assert!(fatal, "{message}");
    let rest = until(session, |e| *e == AgentEvent::Closed).await;
    assert!(rest.iter().all(|e| matches!(e, AgentEvent::Usage(_) | AgentEvent::Closed)), "{rest:?}");
    let end = tokio::time::timeout(EVENT_TIMEOUT, session.recv()).await.expect("the session ends");
    assert_eq!(end, None, "nothing after Closed");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_with_the_documented_handshake_greets_and_closes_politely() {
    let fake = FakeDoubao::start(Behaviour::default());
    let greeting = "Hello, this is the automated assistant of Acme Plumbing.";
    let mut session = open(&fake, Some(greeting)).await;

    // open() returns once SayHello is sent; the fake reads it a moment later.
    assert!(fake.wait_until(EVENT_TIMEOUT, |r| r.first(300).is_some()), "SayHello arrives");
    let r = fake.received();
    assert_eq!(r.header("X-Api-App-ID"), Some(APP_ID));
    assert_eq!(r.header("X-Api-Access-Key"), Some(KEY));
    assert_eq!(r.header("X-Api-Resource-Id"), Some("volc.speech.dialog"));
    assert_eq!(r.header("X-Api-App-Key"), Some("PlgvMymc7f3tQnJ6"));
    let connect_id = r.header("X-Api-Connect-Id").expect("a connect id");
    assert_eq!(connect_id.len(), 36, "{connect_id}");
    assert_eq!(r.events()[..3], [1, 100, 300], "StartConnection, StartSession, SayHello");
    assert_eq!(r.first(1).unwrap().raw, GOLDEN_START_CONNECTION);

    let start = r.first(100).unwrap();
    assert_eq!((start.msg_type, start.flags, start.serialization, start.compression), (msg::FULL_CLIENT, 0b0100, 1, 0));
    let session_id = start.session_id.clone().expect("StartSession carries a session id");
    assert_eq!(session_id.len(), 36);
    let j = start.json();
    assert_eq!(j["tts"]["audio_config"], json!({"channel": 1, "format": "pcm_s16le", "sample_rate": 24000}));
    assert_eq!(j["tts"]["speaker"], VOICE);
    assert_eq!(j["dialog"]["system_role"], INSTRUCTIONS);
    assert_eq!(j["dialog"]["extra"]["model"], "O");
    assert_eq!(j["dialog"]["bot_name"], "豆包");
    let hello = r.first(300).unwrap();
    assert_eq!(hello.json(), json!({"content": greeting}));
    assert_eq!(hello.session_id.as_deref(), Some(session_id.as_str()));

    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    assert_eq!(
        without_audio(&events),
        [
            AgentEvent::AgentTranscriptDelta { text: greeting.into() },
            AgentEvent::AgentTranscript { text: greeting.into() },
            AgentEvent::AgentAudioDone,
        ]
    );
    assert_eq!(agent_audio(&events).len(), 24 * 600, "the whole 600 ms greeting");

    session.close().await.unwrap();
    let rest = until(&mut session, |e| *e == AgentEvent::Closed).await;
    assert!(matches!(rest[..], [AgentEvent::Usage(u), AgentEvent::Closed] if u.output_audio_ms == 600), "{rest:?}");
    assert!(fake.wait_until(EVENT_TIMEOUT, |r| r.closed_connections == 1), "the socket is closed");
    let r = fake.received();
    let events = r.events();
    assert_eq!(events[events.len() - 2..], [102, 2], "FinishSession then FinishConnection: {events:?}");
    assert_eq!(r.first(102).unwrap().session_id.as_deref(), Some(session_id.as_str()));
    assert!(r.first(2).unwrap().session_id.is_none());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_audio_goes_up_at_16k_and_the_reply_comes_down_at_24k() {
    let fake = FakeDoubao::start(Behaviour::default());
    let mut session = open(&fake, None).await;
    // One second of a 1 kHz tone from an 8 kHz call, then the pause that ends the turn.
    feed(&session, SampleRate::Hz8000, &tone(1000.0, 8000, 1000), true).await;
    feed(&session, SampleRate::Hz8000, &vec![0; 8 * 600], true).await;

    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    let reply = "I can help with that.";
    assert_eq!(
        without_audio(&events),
        [
            AgentEvent::UserSpeechStarted,
            AgentEvent::UserTranscript { text: "hello".into(), is_final: false },
            AgentEvent::UserTranscript { text: "hello there".into(), is_final: true },
            AgentEvent::UserSpeechStopped,
            AgentEvent::AgentTranscriptDelta { text: reply.into() },
            AgentEvent::AgentTranscript { text: reply.into() },
            AgentEvent::AgentAudioDone,
        ]
    );
    let down = analyse(&agent_audio(&events), 24000);
    assert!((down.dominant_hz - 700.0).abs() < 3.0, "agent audio: {down:?}");
    assert_eq!(down.duration_ms, 600);

    let r = fake.received();
    let session_id = r.first(100).unwrap().session_id.clone();
    let tasks = r.task_requests();
    assert!(tasks.len() >= 80, "1.6 s of 20 ms frames: {}", tasks.len());
    for t in &tasks {
        assert_eq!((t.msg_type, t.serialization, t.compression, t.payload.len()), (msg::AUDIO_CLIENT, 0, 0, 640));
        assert_eq!(t.session_id, session_id);
    }
    let up = analyse(&r.audio_samples(), 16000);
    assert!((up.dominant_hz - 1000.0).abs() < 3.0, "caller audio at 16 kHz: {up:?}");
    let sounding =
        tasks.iter().filter(|t| analyse(&fake_doubao::pcm_samples(&t.payload), 16000).coverage > 0.0).count();
    assert!((49..=51).contains(&sounding), "one second of tone is 50 frames: {sounding}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wideband_and_g711_callers_reach_doubao_at_16k() {
    let inputs: Vec<(&str, Vec<AgentAudio>)> = vec![
        (
            "48 kHz PCM",
            tone(1000.0, 48000, 500)
                .chunks(960)
                .map(|c| AgentAudio::Pcm { rate: SampleRate::Hz48000, samples: c.to_vec() })
                .collect(),
        ),
        (
            "µ-law",
            tone(1000.0, 8000, 500)
                .chunks(160)
                .map(|c| AgentAudio::Mulaw(c.iter().map(|s| Law::Mu.encode(*s)).collect()))
                .collect(),
        ),
        (
            "A-law",
            tone(1000.0, 8000, 500)
                .chunks(160)
                .map(|c| AgentAudio::Alaw(c.iter().map(|s| Law::A.encode(*s)).collect()))
                .collect(),
        ),
    ];
    for (name, frames) in inputs {
        let fake = FakeDoubao::start(Behaviour { answer_speech: false, ..Behaviour::default() });
        let session = open(&fake, None).await;
        for f in frames {
            session.send_audio(f).unwrap();
        }
        assert!(
            fake.wait_until(EVENT_TIMEOUT, |r| r
                .task_requests()
                .iter()
                .filter(|t| t.payload.iter().any(|b| *b != 0))
                .count()
                >= 25),
            "{name}: 25 frames of tone arrive"
        );
        let r = fake.received();
        assert!(r.task_requests().iter().all(|t| t.payload.len() == 640), "{name}");
        let up = analyse(&r.audio_samples(), 16000);
        assert!((up.dominant_hz - 1000.0).abs() < 3.0, "{name}: {up:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_keeps_the_session_fed_when_the_call_sends_nothing() {
    let fake = FakeDoubao::start(Behaviour::default());
    let _session = open(&fake, None).await;
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let r = fake.received();
    let started = r.first(100).unwrap().at;
    let tasks = r.task_requests();
    assert!(tasks.len() >= 8, "a silent frame every 100 ms: {} in 1 s", tasks.len());
    assert!(tasks.iter().all(|t| t.payload == [0; 640]), "keep-alive frames are 20 ms of silence");
    assert!(tasks[0].at.duration_since(started) < Duration::from_millis(300), "the first comes at once");
    let longest = tasks.windows(2).map(|w| w[1].at.duration_since(w[0].at)).max().unwrap();
    assert!(longest < Duration::from_millis(250), "never starved: longest gap {longest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_vad_events_become_barge_in_and_transcripts() {
    let fake = FakeDoubao::start(Behaviour::default());
    let mut session = open(&fake, None).await;
    fake.caller_speech("when do you open");
    let events = until(&mut session, |e| *e == AgentEvent::UserSpeechStopped).await;
    assert_eq!(
        events,
        [
            AgentEvent::UserSpeechStarted,
            AgentEvent::UserTranscript { text: "when".into(), is_final: false },
            AgentEvent::UserTranscript { text: "when do you open".into(), is_final: true },
            AgentEvent::UserSpeechStopped,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_reply_drops_its_late_audio_until_the_next_sentence() {
    let fake = FakeDoubao::start(Behaviour { answer_speech: false, ..Behaviour::default() });
    let mut session = open(&fake, None).await;
    fake.send_event(350, json!({"text": "First sentence."}));
    fake.send_tts_audio(&tone(500.0, 24000, 100));
    let events = until(&mut session, |e| matches!(e, AgentEvent::AgentAudio { .. })).await;
    assert_eq!(events[0], AgentEvent::AgentTranscriptDelta { text: "First sentence.".into() });

    session.inputs().interrupted(60).unwrap();
    // Inputs are taken in order: once this tone reaches the fake, the interruption was handled.
    feed(&session, SampleRate::Hz8000, &tone(1000.0, 8000, 20), false).await;
    assert!(fake.wait_until(EVENT_TIMEOUT, |r| r.task_requests().iter().any(|t| t.payload.iter().any(|b| *b != 0))));
    fake.send_tts_audio(&tone(500.0, 24000, 100));
    fake.send_event(350, json!({"text": "Second."}));
    fake.send_tts_audio(&tone(700.0, 24000, 200));
    fake.send_event(359, json!({}));

    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    assert_eq!(
        events[..2],
        [AgentEvent::AgentTranscript { text: "First sentence.".into() }, AgentEvent::AgentAudioDone]
    );
    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    assert_eq!(
        events[0],
        AgentEvent::AgentTranscriptDelta { text: "Second.".into() },
        "no audio before it: {events:?}"
    );
    let audio = agent_audio(&events);
    assert_eq!(audio.len(), 24 * 200, "only the new sentence's audio");
    assert!((analyse(&audio, 24000).dominant_hz - 700.0).abs() < 3.0);
    assert_eq!(
        without_audio(&events)[1..],
        [AgentEvent::AgentTranscript { text: "Second.".into() }, AgentEvent::AgentAudioDone]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_goes_as_a_chat_text_query_and_dtmf_is_ignored() {
    let fake = FakeDoubao::start(Behaviour { answer_speech: false, ..Behaviour::default() });
    let mut session = open(&fake, None).await;
    session.send_dtmf('5').await.unwrap();
    session.send_text("Do you open on Sunday?").await.unwrap();
    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    assert_eq!(events[0], AgentEvent::UserTranscript { text: "Do you open on Sunday?".into(), is_final: true });
    assert!(events.contains(&AgentEvent::AgentTranscript { text: "I can help with that.".into() }), "{events:?}");
    let r = fake.received();
    assert_eq!(r.first(501).unwrap().json(), json!({"content": "Do you open on Sunday?"}));
    assert_eq!(r.events(), [1, 100, 501], "nothing sent for the digit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_adds_up_tokens_and_audio() {
    let fake = FakeDoubao::start(Behaviour { answer_speech: false, ..Behaviour::default() });
    let mut session = open(&fake, None).await;
    let usage = json!({"usage": {"input_text_tokens": 10, "input_audio_tokens": 20, "cached_text_tokens": 3,
        "cached_audio_tokens": 0, "output_text_tokens": 5, "output_audio_tokens": 7}});
    fake.send_event(154, usage.clone());
    fake.send_event(154, usage);
    until(&mut session, |e| matches!(e, AgentEvent::Usage(u) if u.input_tokens == 60)).await;
    feed(&session, SampleRate::Hz8000, &tone(1000.0, 8000, 100), false).await;
    session.close().await.unwrap();
    let rest = until(&mut session, |e| *e == AgentEvent::Closed).await;
    let expected = AgentUsage { input_audio_ms: 100, output_audio_ms: 0, input_tokens: 60, output_tokens: 24 };
    assert_eq!(rest, [AgentEvent::Usage(expected), AgentEvent::Closed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_session_finishes_it_too() {
    let fake = FakeDoubao::start(Behaviour::default());
    let session = open(&fake, None).await;
    drop(session);
    assert!(fake.wait_until(EVENT_TIMEOUT, |r| r.closed_connections == 1), "the connection ends");
    let events = fake.received().events();
    assert_eq!(events[events.len() - 2..], [102, 2], "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_open_in_words_without_the_key() {
    let fake = FakeDoubao::start(Behaviour { fault: Fault::Unauthorized, ..Behaviour::default() });
    let err = agent(&fake).open(session_config(None)).await.expect_err("a 401 upgrade fails open");
    let text = err.to_string();
    assert!(text.starts_with("doubao:") && text.contains("401") && text.contains("credentials"), "{text}");
    assert!(!text.contains(KEY), "{text}");
    assert_eq!(fake.received().header("X-Api-Access-Key"), Some(KEY), "the key was offered");
    assert!(fake.received().frames.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_or_session_refused_fails_open_with_the_reason() {
    for (fault, reason) in [
        (Fault::ConnectionFailed, "app id and access key do not match"),
        (Fault::SessionFailed, "resource not granted: volc.speech.dialog"),
    ] {
        let fake = FakeDoubao::start(Behaviour { fault: fault.clone(), ..Behaviour::default() });
        let err = agent(&fake).open(session_config(Some("Hi"))).await.expect_err("open fails");
        let text = err.to_string();
        assert!(text.starts_with("doubao:") && text.contains(reason), "{fault:?}: {text}");
        assert!(!fake.received().events().contains(&300), "{fault:?}: no greeting after a failure");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closed_mid_sentence_is_a_fatal_error() {
    let fake =
        FakeDoubao::start(Behaviour { fault: Fault::CloseMidSentence { after_frames: 3 }, ..Behaviour::default() });
    let mut session = open(&fake, Some("Hello there.")).await;
    let events = until(&mut session, |e| matches!(e, AgentEvent::Error { .. })).await;
    let audio = events.iter().filter(|e| matches!(e, AgentEvent::AgentAudio { .. })).count();
    assert_eq!(audio, 3, "{events:?}");
    let Some(AgentEvent::Error { message, fatal: true }) = events.last() else { panic!("{events:?}") };
    assert!(message.contains("closed"), "{message}");
    let rest = until(&mut session, |e| *e == AgentEvent::Closed).await;
    assert!(rest.iter().all(|e| matches!(e, AgentEvent::Usage(_) | AgentEvent::Closed)), "{rest:?}");
    assert_eq!(tokio::time::timeout(EVENT_TIMEOUT, session.recv()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_frame_is_fatal_and_names_its_code() {
    let fault = Fault::ErrorFrame { code: 55000001, message: "server processing error".into() };
    let fake = FakeDoubao::start(Behaviour { fault, ..Behaviour::default() });
    let mut session = open(&fake, Some("Hello there.")).await;
    let message = fatal_error_then_closed(&mut session).await;
    assert!(message.contains("55000001") && message.contains("server processing error"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialog_error_event_is_fatal() {
    let fake = FakeDoubao::start(Behaviour::default());
    let mut session = open(&fake, None).await;
    fake.send_event(599, json!({"status_code": "55000030", "message": "Service unavailable"}));
    let message = fatal_error_then_closed(&mut session).await;
    assert!(message.contains("55000030") && message.contains("Service unavailable"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_fatal() {
    // The fake's own fault: a reply frame whose payload size runs past its end.
    let fake = FakeDoubao::start(Behaviour { fault: Fault::MalformedFrame, ..Behaviour::default() });
    let mut session = open(&fake, Some("Hello there.")).await;
    let message = fatal_error_then_closed(&mut session).await;
    assert!(message.contains("malformed"), "{message}");

    type Spoil = fn(&str) -> Vec<u8>;
    let cases: [(&str, Spoil); 4] = [
        ("truncated header", |_| vec![0x11, 0x94]),
        ("wrong version", |sid| {
            let mut b = fake_doubao::encode(msg::FULL_SERVER, 1, None, 550, Some(sid), br#"{"content":"x"}"#);
            b[0] = 0x21;
            b
        }),
        ("bad gzip", |sid| {
            let mut b = fake_doubao::encode(msg::FULL_SERVER, 1, None, 550, Some(sid), b"not gzip at all");
            b[2] = 0x11;
            b
        }),
        ("bad JSON", |sid| fake_doubao::encode(msg::FULL_SERVER, 1, None, 550, Some(sid), b"{\"content\": ")),
    ];
    for (name, spoil) in cases {
        let fake = FakeDoubao::start(Behaviour::default());
        let mut session = open(&fake, None).await;
        let sid = fake.received().first(100).unwrap().session_id.clone().unwrap();
        fake.send_raw(spoil(&sid));
        let message = fatal_error_then_closed(&mut session).await;
        assert!(message.contains("malformed"), "{name}: {message}");
    }
}
