//! The OpenAI Realtime client ([`OpenAiAgent`]) against the loopback fake ([`FakeOpenAi`]),
//! which reads the wire with its own JSON handling and G.711 codec: the upgrade, the
//! `session.update` for PCM and G.711 calls, audio both ways at the right rates, GA and beta
//! event names, barge-in truncation, the transfer tool, DTMF, and every way a session can fail.

use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_core::agent::openai::{Dialect, OpenAiAgent, OpenAiConfig};
use sipdesk_core::agent::{AgentAudio, AgentEvent, AgentSession, AudioFormat, SessionConfig, VoiceAgent};
use sipdesk_core::media::frame::SampleRate;
use sipdesk_core::store::ApiKey;
use sipdesk_e2e::audio::analyse;
use sipdesk_e2e::fake_openai::{self, Behaviour, FakeOpenAi, Fault, ItemKind, Malformed, Names, Received};

const KEY: &str = "sk-test-0123456789-do-not-log";
const INSTRUCTIONS: &str = "You answer the phone for Acme Plumbing. Be brief.";
const GREETING: &str = "Welcome to Acme Plumbing, this is the automated assistant.";
/// How long any one event (or state of the fake) may take to arrive.
const TIMEOUT: Duration = Duration::from_secs(5);

fn agent(fake: &FakeOpenAi) -> OpenAiAgent {
    OpenAiAgent::new(OpenAiConfig { endpoint: fake.url(), api_key: ApiKey::new(KEY), ..OpenAiConfig::default() })
}

fn config(greeting: Option<&str>, input: AudioFormat) -> SessionConfig {
    SessionConfig { instructions: INSTRUCTIONS.into(), greeting: greeting.map(str::to_string), input }
}

/// Opens a session and checks that Ready comes first.
async fn open_with(agent: &OpenAiAgent, config: SessionConfig) -> AgentSession {
    let mut session = agent.open(config).await.expect("the session opens");
    assert_eq!(next(&mut session).await, AgentEvent::Ready);
    session
}

async fn open(fake: &FakeOpenAi, greeting: Option<&str>) -> AgentSession {
    open_with(&agent(fake), config(greeting, AudioFormat::Pcm(SampleRate::Hz8000))).await
}

async fn next(session: &mut AgentSession) -> AgentEvent {
    tokio::time::timeout(TIMEOUT, session.recv())
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

/// Waits (without blocking the runtime) until `done` holds for what the fake received.
async fn fake_sees(fake: &FakeOpenAi, what: &str, done: impl Fn(&Received) -> bool) -> Received {
    let end = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let r = fake.received();
        if done(&r) {
            return r;
        }
        assert!(tokio::time::Instant::now() < end, "the fake never saw {what}; it got {:?}", r.types());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The samples of the AgentAudio events, checking their rate.
fn agent_audio(events: &[AgentEvent], want: SampleRate) -> Vec<i16> {
    let mut all = Vec::new();
    for e in events {
        if let AgentEvent::AgentAudio { rate, samples } = e {
            assert_eq!(*rate, want, "agent audio rate");
            all.extend_from_slice(samples);
        }
    }
    all
}

/// Sends `samples` (at `rate`) as 20 ms PCM frames, at once.
fn feed(session: &AgentSession, rate: SampleRate, samples: &[i16]) {
    for frame in samples.chunks(rate.frame_samples()) {
        session.send_audio(AgentAudio::Pcm { rate, samples: frame.to_vec() }).expect("audio taken");
    }
}

fn silence(rate: SampleRate, ms: usize) -> Vec<i16> {
    vec![0; rate.frame_samples() * ms / 20]
}

fn assert_near(hz: f64, want: f64, what: &str) {
    assert!((hz - want).abs() <= 5.0, "{what}: {hz:.1} Hz, wanted {want} Hz");
}

/// After a failure: a fatal error (returned), then Closed, then nothing.
async fn fatal_error_then_closed(session: &mut AgentSession) -> String {
    let events = until(session, |e| matches!(e, AgentEvent::Error { .. })).await;
    let Some(AgentEvent::Error { message, fatal }) = events.last().cloned() else { unreachable!() };
    assert!(fatal, "{message}");
    assert_eq!(next(session).await, AgentEvent::Closed);
    let end = tokio::time::timeout(TIMEOUT, session.recv()).await.expect("the session ends");
    assert_eq!(end, None, "nothing after Closed");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_and_session_update_are_what_the_api_documents() {
    let fake = FakeOpenAi::start(Behaviour::default());
    let mut session = open(&fake, Some(GREETING)).await;
    let r = fake_sees(&fake, "the greeting asked for", |r| !r.of_type("response.create").is_empty()).await;
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.query("model").as_deref(), Some("gpt-realtime"));
    assert_eq!(r.header("openai-beta"), None, "GA needs no beta header");
    assert_eq!(r.types()[..2], ["session.update", "response.create"], "{:?}", r.types());

    let s = r.session().expect("a session.update");
    assert_eq!(s["type"], "realtime");
    assert_eq!(s["instructions"], INSTRUCTIONS);
    assert_eq!(s["audio"]["input"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert_eq!(s["audio"]["output"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert!(s["audio"]["input"]["transcription"]["model"].as_str().is_some_and(|m| !m.is_empty()), "{s}");
    let vad = &s["audio"]["input"]["turn_detection"];
    assert_eq!(vad["type"], "server_vad");
    assert_eq!((vad["interrupt_response"].as_bool(), vad["create_response"].as_bool()), (Some(true), Some(true)));
    let tools = s["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 1);
    assert_eq!((tools[0]["type"].as_str(), tools[0]["name"].as_str()), (Some("function"), Some("transfer_to_human")));
    assert_eq!(tools[0]["parameters"]["properties"]["reason"]["type"], "string");
    assert_eq!(s["tool_choice"], "auto");
    let greeting_request = r.of_type("response.create")[0];
    assert!(greeting_request["response"]["instructions"].as_str().is_some_and(|i| i.contains(GREETING)));

    // The greeting: audio, its transcript in pieces and whole, the end of its audio, the usage.
    let events = until(&mut session, |e| matches!(e, AgentEvent::Usage(_))).await;
    assert!(events.contains(&AgentEvent::AgentAudioDone));
    let audio = agent_audio(&events, SampleRate::Hz24000);
    assert_eq!(audio.len(), 24000, "the greeting's 1000 ms");
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::AgentTranscriptDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, Behaviour::default().greeting_text);
    assert!(events.contains(&AgentEvent::AgentTranscript { text: Behaviour::default().greeting_text }));

    let Some(AgentEvent::Usage(u)) = events.last() else { unreachable!() };
    assert_eq!((u.output_audio_ms, u.input_tokens, u.output_tokens), (1000, 120, 80));
    // A polite close: the usage, Closed, and the socket closed.
    session.close().await.expect("close sent");
    let end = until(&mut session, |e| *e == AgentEvent::Closed).await;
    assert!(matches!(end[..], [AgentEvent::Usage(_), AgentEvent::Closed]), "{end:?}");
    fake_sees(&fake, "the socket closed", |r| r.closed_connections == 1).await;
    assert!(fake.received().errors.is_empty(), "{:?}", fake.received().errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_audio_goes_out_at_24_khz_and_the_reply_comes_back_at_24_khz() {
    let fake = FakeOpenAi::start(Behaviour { greeting_hz: 500.0, reply_hz: 700.0, ..Behaviour::default() });
    // No greeting configured: the model opens the call in its own words.
    let mut session = open(&fake, None).await;
    let greeting = until(&mut session, |e| matches!(e, AgentEvent::Usage(_))).await;
    assert_near(analyse(&agent_audio(&greeting, SampleRate::Hz24000), 24000).dominant_hz, 500.0, "greeting");
    let opening = fake.received().of_type("response.create")[0]["response"]["instructions"].clone();
    assert!(
        opening.as_str().is_some_and(|i| i.contains(INSTRUCTIONS) && i.contains("automated assistant")),
        "{opening}"
    );

    // One second of a 1 kHz tone at 8 kHz, then silence: the caller's turn.
    let rate = SampleRate::Hz8000;
    feed(&session, rate, &fake_openai::tone(1000.0, 8000, 1000));
    feed(&session, rate, &silence(rate, 500));
    let turn = until(&mut session, |e| matches!(e, AgentEvent::UserTranscript { is_final: true, .. })).await;
    let speech: Vec<&AgentEvent> = turn.iter().filter(|e| !matches!(e, AgentEvent::UserTranscript { .. })).collect();
    assert_eq!(speech, [&AgentEvent::UserSpeechStarted, &AgentEvent::UserSpeechStopped]);
    let heard = Behaviour::default().heard_text;
    let first_word = heard.split_whitespace().next().unwrap();
    assert!(turn
        .iter()
        .any(|e| matches!(e, AgentEvent::UserTranscript { text, is_final: false } if text.starts_with(first_word))));
    assert_eq!(turn.last(), Some(&AgentEvent::UserTranscript { text: heard, is_final: true }));

    // The fake decodes what it got as 24 kHz PCM: the whole 1.5 s, in small batches, at 1 kHz.
    let r = fake_sees(&fake, "1.5 s of caller audio", |r| r.caller_samples().0.len() >= 36000).await;
    let (samples, rate_hz) = r.caller_samples();
    assert_eq!((samples.len(), rate_hz), (36000, 24000));
    assert!(r.audio.iter().all(|a| a.rate == 24000 && a.samples.len() <= 2400), "batches of at most 100 ms");
    assert_near(analyse(&samples, 24000).dominant_hz, 1000.0, "caller audio as the fake hears it");

    // The reply: the fake's 24 kHz 700 Hz tone arrives as 24 kHz audio at 700 Hz.
    let reply = until(&mut session, |e| matches!(e, AgentEvent::Usage(_))).await;
    let audio = agent_audio(&reply, SampleRate::Hz24000);
    assert_eq!(audio.len(), 24000, "the reply's 1000 ms");
    assert_near(analyse(&audio, 24000).dominant_hz, 700.0, "reply");
    assert!(reply.contains(&AgentEvent::AgentTranscript { text: Behaviour::default().reply_text }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_calls_pass_their_bytes_through_and_hear_the_model_at_8_khz() {
    for (input, law, name) in [(AudioFormat::Mulaw, "audio/pcmu", "µ-law"), (AudioFormat::Alaw, "audio/pcma", "A-law")]
    {
        let fake = FakeOpenAi::start(Behaviour::default());
        let mut session = open_with(&agent(&fake), config(Some(GREETING), input)).await;
        let s = fake.received().session().cloned().expect("a session.update");
        assert_eq!(s["audio"]["input"]["format"], json!({"type": law}), "{name}");
        assert_eq!(s["audio"]["output"]["format"], json!({"type": law}), "{name}");

        // The model's G.711 comes back decoded to 8 kHz PCM.
        let greeting = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
        let audio = agent_audio(&greeting, SampleRate::Hz8000);
        assert_eq!(audio.len(), 8000, "{name}: the greeting's 1000 ms");
        assert_near(analyse(&audio, 8000).dominant_hz, 700.0, name);

        // The caller's bytes reach the server unchanged.
        let encode: fn(i16) -> u8 =
            if input == AudioFormat::Mulaw { fake_openai::mulaw_encode } else { fake_openai::alaw_encode };
        let bytes: Vec<u8> =
            fake_openai::tone(1000.0, 8000, 600).into_iter().chain(vec![0; 3200]).map(encode).collect();
        for frame in bytes.chunks(160) {
            let audio = match input {
                AudioFormat::Mulaw => AgentAudio::Mulaw(frame.to_vec()),
                _ => AgentAudio::Alaw(frame.to_vec()),
            };
            session.send_audio(audio).expect("audio taken");
        }
        let r = fake_sees(&fake, "all the G.711 bytes", |r| r.caller_bytes().len() >= bytes.len()).await;
        assert!(r.caller_bytes() == bytes, "{name}: the bytes the server got differ from those sent");
        assert_near(analyse(&r.caller_samples().0, 8000).dominant_hz, 1000.0, name);
        // And the fake's VAD heard a turn in them.
        until(&mut session, |e| *e == AgentEvent::UserSpeechStopped).await;
        session.close().await.expect("close sent");
        until(&mut session, |e| *e == AgentEvent::Closed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beta_event_names_and_the_beta_dialect_work_too() {
    for (dialect, names) in [(Dialect::Ga, Names::Beta), (Dialect::Beta, Names::Beta), (Dialect::Beta, Names::Ga)] {
        let what = format!("client {dialect:?}, server names {names:?}");
        let fake = FakeOpenAi::start(Behaviour { names, ..Behaviour::default() });
        let agent = OpenAiAgent::new(OpenAiConfig { dialect, ..agent(&fake).config().clone() });
        let mut session = open_with(&agent, config(Some(GREETING), AudioFormat::Pcm(SampleRate::Hz8000))).await;
        let r = fake.received();
        let s = r.session().expect("a session.update");
        if dialect == Dialect::Beta {
            assert_eq!(r.header("openai-beta"), Some("realtime=v1"), "{what}");
            assert_eq!(
                (s["input_audio_format"].as_str(), s["output_audio_format"].as_str()),
                (Some("pcm16"), Some("pcm16"))
            );
            assert_eq!(s["turn_detection"]["type"], "server_vad", "{what}");
            assert!(s["input_audio_transcription"]["model"].is_string(), "{what}");
            assert_eq!(s["tools"][0]["name"], "transfer_to_human", "{what}");
        } else {
            assert_eq!(r.header("openai-beta"), None, "{what}");
        }
        let greeting = until(&mut session, |e| matches!(e, AgentEvent::Usage(_))).await;
        assert_eq!(agent_audio(&greeting, SampleRate::Hz24000).len(), 24000, "{what}");
        assert!(greeting.contains(&AgentEvent::AgentTranscript { text: Behaviour::default().greeting_text }), "{what}");
        assert!(greeting.iter().any(|e| matches!(e, AgentEvent::AgentTranscriptDelta { .. })), "{what}");

        fake.caller_speech("Is the plumber coming today");
        let turn = until(&mut session, |e| matches!(e, AgentEvent::Usage(_))).await;
        for want in [
            AgentEvent::UserSpeechStarted,
            AgentEvent::UserSpeechStopped,
            AgentEvent::UserTranscript { text: "Is the plumber coming today".into(), is_final: true },
            AgentEvent::AgentTranscript { text: Behaviour::default().reply_text },
        ] {
            assert!(turn.contains(&want), "{what}: no {want:?} in {turn:?}");
        }
        assert_eq!(agent_audio(&turn, SampleRate::Hz24000).len(), 24000, "{what}");
        assert!(fake.received().errors.is_empty(), "{what}: {:?}", fake.received().errors);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_truncates_each_reply_where_the_caller_cut_it_and_never_cancels() {
    let fake = FakeOpenAi::start(Behaviour {
        greeting_ms: 4000,
        greeting_hz: 700.0,
        reply_ms: 3000,
        reply_hz: 500.0,
        speed: 2.0,
        late_chunks: 2,
        ..Behaviour::default()
    });
    let mut session = open(&fake, Some(GREETING)).await;
    let rate = SampleRate::Hz8000;

    // Part of the greeting has arrived; the caller speaks over it.
    let before = until(&mut session, |e| matches!(e, AgentEvent::AgentAudio { .. })).await;
    let mut greeting_samples = agent_audio(&before, SampleRate::Hz24000).len();
    while greeting_samples < 24 * 600 {
        greeting_samples += agent_audio(&[next(&mut session).await], SampleRate::Hz24000).len();
    }
    feed(&session, rate, &fake_openai::tone(1000.0, 8000, 200));
    let up_to_speech = until(&mut session, |e| *e == AgentEvent::UserSpeechStarted).await;
    greeting_samples += agent_audio(&up_to_speech, SampleRate::Hz24000).len();
    assert!(greeting_samples >= 24 * 600, "greeting audio before the barge-in: {greeting_samples} samples");

    // The bridge played 300 ms of it, flushed the rest, and says so.
    session.inputs().interrupted(300).expect("interruption taken");
    let r = fake_sees(&fake, "a truncate", |r| !r.of_type("conversation.item.truncate").is_empty()).await;
    let greeting = r.items.iter().find(|i| i.kind == ItemKind::Greeting).expect("the greeting item").clone();
    assert!(greeting.interrupted);
    let cut = r.of_type("conversation.item.truncate")[0].clone();
    assert_eq!(cut["item_id"], greeting.item_id.as_str());
    assert_eq!(cut["content_index"], 0);
    let end_ms = cut["audio_end_ms"].as_u64().expect("a whole audio_end_ms");
    assert!(end_ms <= 300 && end_ms <= greeting.sent_ms(), "audio_end_ms {end_ms}");
    assert_eq!(end_ms, 300, "the greeting was the first audio: all 300 ms played were of it");
    // The two deltas still in flight after speech_started were sent but never played.
    assert_eq!(greeting.sent_ms(), (greeting_samples / 24) as u64 + 200, "late deltas dropped by the client");

    // The caller falls silent: the reply (500 Hz) comes, and the caller speaks over it too.
    feed(&session, rate, &silence(rate, 400));
    let mut reply_samples = 0;
    let mut after_first = Vec::new();
    while reply_samples < 24 * 600 {
        let event = next(&mut session).await;
        reply_samples += agent_audio(std::slice::from_ref(&event), SampleRate::Hz24000).len();
        after_first.push(event);
    }
    feed(&session, rate, &fake_openai::tone(1000.0, 8000, 200));
    after_first.extend(until(&mut session, |e| *e == AgentEvent::UserSpeechStarted).await);
    // Every piece of audio after the first barge-in is the reply's, none the greeting's.
    for e in &after_first {
        if let AgentEvent::AgentAudio { samples, .. } = e {
            assert_near(analyse(samples, 24000).dominant_hz, 500.0, "audio after the barge-in");
        }
    }
    // 300 ms of the greeting and 250 ms of the reply were heard.
    session.inputs().interrupted(550).expect("interruption taken");
    let r = fake_sees(&fake, "a second truncate", |r| r.of_type("conversation.item.truncate").len() == 2).await;
    let reply = r.items.iter().find(|i| i.kind == ItemKind::Reply).expect("the reply item").clone();
    let cut = r.of_type("conversation.item.truncate")[1].clone();
    assert_eq!(cut["item_id"], reply.item_id.as_str());
    assert_eq!(cut["audio_end_ms"], 250);
    assert!(reply.interrupted && reply.sent_ms() >= 250);

    assert!(r.of_type("response.cancel").is_empty(), "the server interrupts by itself: no cancel");
    assert!(r.errors.is_empty(), "the fake refused: {:?}", r.errors);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.received().errors.is_empty(), "the fake refused: {:?}", fake.received().errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_with_nothing_active_is_no_failure_and_a_refused_event_is_not_fatal() {
    let fake = FakeOpenAi::start(Behaviour { speed: f64::INFINITY, ..Behaviour::default() });
    let mut session = open(&fake, Some(GREETING)).await;
    until(&mut session, |e| matches!(e, AgentEvent::Usage(_))).await;

    // What the real service answers a response.cancel that came too late.
    fake.send_event(json!({"type": "error", "event_id": "event_890", "error": {"type": "invalid_request_error",
        "code": "response_cancel_not_active", "message": "Cancellation failed: no active response found",
        "param": null, "event_id": "evt_1"}}));
    // And an event of ours it refused.
    fake.send_event(json!({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
        "message": "Audio content of 100ms is already shorter than 200ms", "param": "audio_end_ms"}}));
    session.send_text("Do you work on Sundays?").await.expect("text sent");
    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    let errors: Vec<&AgentEvent> = events.iter().filter(|e| matches!(e, AgentEvent::Error { .. })).collect();
    assert_eq!(errors.len(), 1, "only the refused event is reported: {errors:?}");
    assert!(
        matches!(errors[0], AgentEvent::Error { message, fatal: false } if message.contains("already shorter")),
        "{errors:?}"
    );
    assert!(events.contains(&AgentEvent::UserTranscript { text: "Do you work on Sundays?".into(), is_final: true }));
    assert_eq!(agent_audio(&events, SampleRate::Hz24000).len(), 24000, "the reply still comes");
    let r = fake.received();
    let item = r.of_type("conversation.item.create").last().map(|e| e["item"].clone()).unwrap_or(Value::Null);
    assert_eq!((item["role"].as_str(), item["content"][0]["type"].as_str()), (Some("user"), Some("input_text")));
    assert_eq!(item["content"][0]["text"], "Do you work on Sundays?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_while_the_agent_speaks_is_answered_once_it_has_finished() {
    let fake = FakeOpenAi::start(Behaviour { greeting_ms: 1500, speed: 2.0, ..Behaviour::default() });
    let mut session = open(&fake, Some(GREETING)).await;
    let mut events = until(&mut session, |e| matches!(e, AgentEvent::AgentAudio { .. })).await;
    session.send_text("Are you open today?").await.expect("text sent");
    let reply_text = AgentEvent::AgentTranscript { text: Behaviour::default().reply_text };
    events.extend(until(&mut session, |e| *e == reply_text).await);
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Error { .. })), "{events:?}");
    // The greeting played whole (1500 ms), then the reply (1000 ms).
    assert_eq!(agent_audio(&events, SampleRate::Hz24000).len(), 24 * 2500);
    let r = fake.received();
    assert_eq!(r.of_type("response.create").len(), 2);
    assert!(r.errors.is_empty(), "the fake refused: {:?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transfer_tool_becomes_a_handoff_after_its_announcement() {
    let reason = "Caller disputes a charge on the March bill; callback 555-0100.";
    let fake = FakeOpenAi::start(Behaviour {
        transfer_reason: Some(reason.into()),
        speed: f64::INFINITY,
        ..Behaviour::default()
    });
    let mut session = open(&fake, Some(GREETING)).await;
    until(&mut session, |e| matches!(e, AgentEvent::Usage(_))).await;
    session.send_text("I want to talk to a person").await.expect("text sent");
    let events = until(&mut session, |e| matches!(e, AgentEvent::HandoffRequested { .. })).await;
    assert_eq!(events.last(), Some(&AgentEvent::HandoffRequested { reason: reason.into() }));
    let last_audio = events.iter().rposition(|e| matches!(e, AgentEvent::AgentAudio { .. })).expect("announced");
    let done = events.iter().position(|e| *e == AgentEvent::AgentAudioDone).expect("its audio ends");
    assert!(last_audio < done, "the handoff comes after the announcement's audio");
    assert!(events.contains(&AgentEvent::AgentTranscript { text: Behaviour::default().transfer_text }));

    // The call is answered once (it came in three events), so the conversation stays whole.
    let r = fake_sees(&fake, "the function output", |r| {
        r.of_type("conversation.item.create").iter().any(|e| e["item"]["type"] == "function_call_output")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r2 = fake.received();
    let outputs: Vec<&Value> = r2
        .of_type("conversation.item.create")
        .into_iter()
        .filter(|e| e["item"]["type"] == "function_call_output")
        .collect();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert!(outputs[0]["item"]["call_id"].as_str().is_some_and(|c| c.starts_with("call_")), "{:?}", outputs[0]);
    assert!(outputs[0]["item"]["output"].is_string());
    assert_eq!(r.of_type("response.create").len(), 2, "no reply is asked for after a transfer");
    // Nothing more is said.
    let quiet = tokio::time::timeout(Duration::from_millis(300), session.recv()).await;
    assert!(quiet.is_err(), "after the handoff: {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reach_the_model_as_one_user_message() {
    let fake = FakeOpenAi::start(Behaviour { speed: f64::INFINITY, ..Behaviour::default() });
    let session = open(&fake, Some(GREETING)).await;
    for key in ['4', '2', '#'] {
        session.send_dtmf(key).await.expect("key sent");
    }
    let r = fake_sees(&fake, "the keys", |r| r.of_type("conversation.item.create").len() == 1).await;
    let text = r.of_type("conversation.item.create")[0]["item"]["content"][0]["text"].clone();
    assert_eq!(text, "The caller pressed 4 2 # on the phone keypad.");
    fake_sees(&fake, "a response asked for", |r| r.of_type("response.create").len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_open_in_words_that_never_show_it() {
    let fake = FakeOpenAi::start(Behaviour { fault: Fault::Unauthorized, ..Behaviour::default() });
    let err = agent(&fake).open(config(None, AudioFormat::Mulaw)).await.expect_err("a refused key fails");
    let text = err.to_string();
    assert!(text.contains("401") && text.contains("credentials"), "{text}");
    assert!(!text.contains(KEY), "{text}");
    assert_eq!(fake.received().header("authorization"), Some(format!("Bearer {KEY}").as_str()));

    // No key at all: it says so without connecting.
    let fake = FakeOpenAi::start(Behaviour::default());
    let keyless = OpenAiAgent::new(OpenAiConfig { endpoint: fake.url(), ..OpenAiConfig::default() });
    let err = keyless.open(SessionConfig::default()).await.expect_err("no key fails");
    assert!(err.to_string().contains("API key"), "{err}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(fake.received().upgrades.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closed_mid_sentence_is_a_fatal_error() {
    let fake = FakeOpenAi::start(Behaviour { fault: Fault::CloseMidSentence, ..Behaviour::default() });
    let mut session = open(&fake, Some(GREETING)).await;
    let message = fatal_error_then_closed(&mut session).await;
    assert!(message.contains("closed"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_is_a_fatal_error() {
    for kind in [Malformed::NotJson, Malformed::NoType, Malformed::BadBase64, Malformed::Binary] {
        let fake = FakeOpenAi::start(Behaviour { fault: Fault::Malformed(kind), ..Behaviour::default() });
        let mut session = open(&fake, Some(GREETING)).await;
        let message = fatal_error_then_closed(&mut session).await;
        assert!(message.contains("malformed"), "{kind:?}: {message}");
        fake_sees(&fake, "the client closing", |r| r.closed_connections == 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_event_is_a_fatal_error() {
    let fake = FakeOpenAi::start(Behaviour {
        fault: Fault::ErrorEvent {
            kind: "server_error".into(),
            code: None,
            message: "The server had an error while processing your request.".into(),
        },
        ..Behaviour::default()
    });
    let mut session = open(&fake, Some(GREETING)).await;
    let message = fatal_error_then_closed(&mut session).await;
    assert!(message.contains("The server had an error") && message.contains("server_error"), "{message}");
    fake_sees(&fake, "the client closing", |r| r.closed_connections == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_session_closes_the_socket() {
    let fake = FakeOpenAi::start(Behaviour::default());
    let session = open(&fake, Some(GREETING)).await;
    drop(session);
    fake_sees(&fake, "the socket closed", |r| r.closed_connections == 1).await;
}
