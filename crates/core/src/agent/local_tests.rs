//! The local agent end to end with the real engines: flite speaks the caller's words, the audio
//! goes down to 8 kHz like a phone call, and the agent hears it, answers, and its answer is
//! checked as speech by a second recogniser.

use std::time::{Duration, Instant};

use super::asr::Recognizer;
use super::grammar::{Grammar, SpeechModel};
use super::local::sentences;
use super::provider::{AgentAudio, AgentEvent, AgentInputs, AgentSession, SessionConfig, VoiceAgent};
use super::script::DialogScript;
use super::{tts, LocalAgent};
use crate::media::frame::SampleRate;
use crate::media::g711::Law;

/// 20 ms at 8 kHz.
const FRAME: usize = 160;

/// `text` spoken by flite, then taken down to 8 kHz as a phone call carries it.
fn phone_speech(text: &str) -> Vec<i16> {
    let speech = tts::synthesize(text).unwrap();
    let mut at16k = speech.samples;
    at16k.extend(std::iter::repeat_n(0, 3200)); // flushes the converter's tail
    let mut out = Vec::new();
    crate::media::rate_convert::RateConverter::new(speech.rate.hz(), 8000).process(&at16k, &mut out);
    out
}

/// A session on the sample script, with the greeting's events already read.
async fn open() -> (AgentSession, Vec<AgentEvent>) {
    let agent = LocalAgent::sample().unwrap();
    let mut session = agent.open(SessionConfig::default()).await.unwrap();
    let greeting = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    assert_eq!(greeting.first(), Some(&AgentEvent::Ready));
    (session, greeting)
}

/// Events until one matches (included), with a generous deadline.
async fn until(session: &mut AgentSession, stop: impl Fn(&AgentEvent) -> bool) -> Vec<AgentEvent> {
    timed(session, stop).await.into_iter().map(|(_, e)| e).collect()
}

async fn timed(session: &mut AgentSession, stop: impl Fn(&AgentEvent) -> bool) -> Vec<(Instant, AgentEvent)> {
    let mut events = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), session.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching event in 20 s; got {events:?}"))
            .expect("session ended early");
        let done = stop(&event);
        events.push((Instant::now(), event));
        if done {
            return events;
        }
    }
}

/// Sends 8 kHz audio in 20 ms frames, paced like a call, then a second of silence; returns
/// when the frame with the last audible sample left (the end of the caller's speech).
fn feed(inputs: AgentInputs, audio: Vec<i16>, law: Option<Law>) -> tokio::task::JoinHandle<Instant> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let frames = audio.iter().rposition(|s| s.unsigned_abs() > 300).map_or(0, |i| i / FRAME + 1);
        let mut padded = audio;
        padded.resize(padded.len().div_ceil(FRAME) * FRAME + 50 * FRAME, 0);
        let mut speech_end = Instant::now();
        for (i, frame) in padded.chunks(FRAME).enumerate() {
            tick.tick().await;
            let piece = match law {
                None => AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: frame.to_vec() },
                Some(Law::Mu) => AgentAudio::Mulaw(frame.iter().map(|&s| Law::Mu.encode(s)).collect()),
                Some(Law::A) => AgentAudio::Alaw(frame.iter().map(|&s| Law::A.encode(s)).collect()),
            };
            inputs.send_audio(piece).unwrap();
            if i + 1 == frames {
                speech_end = Instant::now();
            }
        }
        speech_end
    })
}

fn final_transcripts(events: &[AgentEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::UserTranscript { text, is_final: true } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn agent_said(events: &[AgentEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| if let AgentEvent::AgentTranscript { text } = e { Some(text.clone()) } else { None })
        .collect()
}

#[tokio::test]
async fn spoken_reason_and_number_over_a_phone_line_are_understood() {
    let (mut session, _) = open().await;
    let speech_end = feed(session.inputs().clone(), phone_speech("I have a question about my bill."), None);
    let events = timed(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    let speech_end = speech_end.await.unwrap();
    let plain: Vec<AgentEvent> = events.iter().map(|(_, e)| e.clone()).collect();
    assert!(plain.contains(&AgentEvent::UserSpeechStarted) && plain.contains(&AgentEvent::UserSpeechStopped));
    assert_eq!(final_transcripts(&plain), vec!["i have a question about my bill"], "{plain:?}");
    let interim = plain.iter().filter(|e| matches!(e, AgentEvent::UserTranscript { is_final: false, .. })).count();
    assert!(interim >= 1, "interim transcripts while the caller speaks: {plain:?}");
    let reply = agent_said(&plain);
    assert!(reply[0].starts_with("I can help with your bill."), "billing intent: {reply:?}");
    let first_audio = events.iter().find(|(_, e)| matches!(e, AgentEvent::AgentAudio { .. })).unwrap().0;
    println!(
        "voice-to-voice (end of caller speech to first agent audio, incl. {} ms end-of-speech pause): {} ms",
        super::vad::VadConfig::default().end_silence_ms,
        first_audio.saturating_duration_since(speech_end).as_millis()
    );

    let spoken = phone_speech("My number is five five five one two three four.");
    let feeding = feed(session.inputs().clone(), spoken, None);
    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    let heard = final_transcripts(&events);
    assert!(heard.iter().any(|t| t.ends_with("five five five one two three four")), "{heard:?}");
    assert!(agent_said(&events)[0].contains("call you back on 5 5 5 1 2 3 4"), "{events:?}");
    feeding.await.unwrap();
}

#[tokio::test]
async fn silence_and_noise_give_no_transcript() {
    let (mut session, _) = open().await;
    let mut x: u32 = 7;
    let mut audio = vec![0i16; 8000];
    audio.extend((0..16000).map(|_| {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((x >> 16) as i32 % 6001 - 3000) as i16
    }));
    audio.extend((0..8000).map(|i| (4000.0 * (i as f64 * 440.0 / 8000.0 * std::f64::consts::TAU).sin()) as i16));
    feed(session.inputs().clone(), audio, Some(Law::A)).await.unwrap();
    session.close().await.unwrap();
    let events = until(&mut session, |e| *e == AgentEvent::Closed).await;
    assert!(final_transcripts(&events).is_empty(), "{events:?}");
    assert!(agent_said(&events).is_empty(), "the agent stays quiet: {events:?}");
    let usage = events.iter().find_map(|e| if let AgentEvent::Usage(u) = e { Some(*u) } else { None }).unwrap();
    assert!(usage.input_audio_ms >= 5000 && usage.output_audio_ms > 2000, "{usage:?}");
}

#[tokio::test]
async fn dtmf_digits_fill_the_callback_number() {
    let (mut session, _) = open().await;
    session.send_text("I need help with an invoice").await.unwrap();
    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    assert!(agent_said(&events)[0].contains("callback number"), "{events:?}");
    for key in "5551234#".chars() {
        session.send_dtmf(key).await.unwrap();
    }
    let events = until(&mut session, |e| *e == AgentEvent::AgentAudioDone).await;
    let said = agent_said(&events);
    assert!(said[0].contains("call you back on 5 5 5 1 2 3 4") && said[0].contains("person"), "{said:?}");
    session.send_text("no thanks").await.unwrap();
    let events = until(&mut session, |e| *e == AgentEvent::Closed).await;
    assert!(agent_said(&events)[0].contains("Goodbye"), "the dialog ends and closes: {events:?}");
}

#[tokio::test]
async fn the_agents_reply_is_recognisable_speech() {
    let (_session, greeting) = open().await;
    let script = DialogScript::sample();
    // Every sentence the script can say, plus some it never does, as one grammar.
    let mut candidates: Vec<&str> = sentences(&script.greeting);
    candidates.extend(script.intents.iter().flat_map(|i| sentences(&i.reply)));
    candidates.extend(["the weather is sunny today", "our office is closed now", "thank you for calling goodbye"]);
    let grammar = Grammar::for_sentences(&candidates);
    let model = SpeechModel::default();
    let mut recognizer = Recognizer::new(&model, &grammar, &grammar.lexicon(&model).unwrap()).unwrap();
    // The greeting's audio, cut at its transcript deltas: one sentence each.
    let mut spoken: Vec<(String, Vec<i16>)> = Vec::new();
    for event in greeting {
        match event {
            AgentEvent::AgentTranscriptDelta { text } => spoken.push((text, Vec::new())),
            AgentEvent::AgentAudio { rate, samples } => {
                assert_eq!(rate, SampleRate::Hz16000);
                assert_eq!(samples.len(), rate.frame_samples(), "20 ms chunks");
                spoken.last_mut().unwrap().1.extend(samples);
            }
            _ => {}
        }
    }
    assert_eq!(spoken.len(), 3, "the greeting's three sentences");
    for (text, audio) in spoken {
        let heard = recognizer.recognize(&audio).unwrap();
        let expected = super::script::words(&text).join(" ");
        assert_eq!(heard.as_deref(), Some(expected.as_str()), "agent said {text:?}");
    }
}

#[tokio::test]
async fn asking_for_a_human_requests_a_handoff() {
    let (mut session, _) = open().await;
    let feeding = feed(session.inputs().clone(), phone_speech("I want to talk to a human."), Some(Law::Mu));
    let events = until(&mut session, |e| matches!(e, AgentEvent::HandoffRequested { .. })).await;
    assert_eq!(final_transcripts(&events), vec!["i want to talk to a human"], "{events:?}");
    assert!(agent_said(&events)[0].contains("transfer you to a person"));
    let n = events.len();
    assert_eq!(events[n - 2], AgentEvent::AgentAudioDone, "the announcement's audio comes first");
    let AgentEvent::HandoffRequested { reason } = &events[n - 1] else { unreachable!() };
    assert!(reason.contains("asked for a person"), "{reason}");
    feeding.await.unwrap();
    session.close().await.unwrap();
    assert_eq!(until(&mut session, |e| *e == AgentEvent::Closed).await.last(), Some(&AgentEvent::Closed));
}
