//! Handing a live call to the offline local agent, end to end: baresip calls the desk and plays
//! a flite-spoken question padded with silence; the desk answers and hands the call to the AI;
//! the caller hears the agent's greeting and its reply to the question. What baresip recorded is
//! cut into utterances and recognised by pocketsphinx against every sentence the script can say
//! plus distractors (silence must match nothing); the desk's transcript holds the caller's words.

use std::time::Duration;

use serde_json::{json, Value};
use sipdesk_core::agent::asr::Recognizer;
use sipdesk_core::agent::grammar::{Grammar, SpeechModel};
use sipdesk_core::agent::script::{words, DialogScript};
use sipdesk_core::media::resample::resample;
use sipdesk_e2e::audio::read_wav;
use sipdesk_e2e::baresip::{self, Baresip};
use sipdesk_e2e::caller_rig::CallerRig;
use sipdesk_e2e::kamailio::{self, Kamailio};
use sipdesk_e2e::sipdesk::Running;

const QUESTION: &str = "I have a question about my bill";

/// Cuts 8 kHz audio into utterances separated by at least 300 ms of near-silence.
fn utterances(samples: &[i16]) -> Vec<&[i16]> {
    let loud: Vec<bool> = samples.chunks(80).map(|w| w.iter().any(|s| s.unsigned_abs() > 300)).collect();
    let (mut out, mut start, mut quiet) = (Vec::new(), None::<usize>, 0);
    for (i, l) in loud.iter().enumerate() {
        match (start, *l) {
            (None, true) => (start, quiet) = (Some(i), 0),
            (Some(_), true) => quiet = 0,
            (Some(s), false) => {
                quiet += 1;
                if quiet >= 30 {
                    out.push(&samples[s * 80..(i + 1 - quiet) * 80]);
                    start = None;
                }
            }
            (None, false) => {}
        }
    }
    if let Some(s) = start {
        out.push(&samples[s * 80..]);
    }
    out.into_iter().filter(|u| u.len() > 2400).collect()
}

/// Kamailio, a baresip caller playing `wav`, and a desk with `--auto-answer` and `audio`; the
/// phone calls the desk and the call is handed to the AI at once. Returns the call id too.
struct Rig {
    _k: Kamailio,
    phone: Baresip,
    desk: Running,
    id: String,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
    // Held for the whole test, and let go last (fields drop in order), once this test's
    // processes are gone: speech recognition on a 2-core machine is only reliable when these
    // calls (each with its own recogniser and synthesiser) do not run at once.
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn rig(wav_text: Option<(&str, f64, f64)>, silence: f64, audio: &str) -> Option<Rig> {
    rig_with(wav_text, silence, audio, &["--auto-answer"])
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rig_with(wav_text: Option<(&str, f64, f64)>, silence: f64, audio: &str, run: &[&str]) -> Option<Rig> {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("ai_handoff", &needed) {
        return None;
    }
    let audio = audio.to_string();
    let mut args = run.to_vec();
    args.extend(["--audio", audio.as_str()]);
    let CallerRig { k, phone, desk, call_id: id, db, dir } = CallerRig::start(
        |wav| match wav_text {
            Some((text, lead, tail)) => sipdesk_e2e::audio::write_spoken_wav(wav, text, lead, tail),
            None => sipdesk_e2e::audio::write_tone_wav(wav, 0.0, 8000, 0.0, -100.0, silence),
        },
        |_, dir| sipdesk_e2e::audio::write_tone_wav(&dir.join("desk.wav"), 1400.0, 8000, 60.0, -12.0, 0.0),
        &args,
    );
    Some(Rig { _serial: serial, _k: k, phone, desk, id, db, _dir: dir })
}

/// What the desk saw of the caller's audio, for a failed recognition: its call statistics (late
/// and concealed packets) and what it logged of utterances and RTP.
fn diagnosis(desk: &Running) -> String {
    let stats = desk.seen().iter().filter(|v| v["event"] == "call_stats").map(Value::to_string);
    let stderr = desk.stderr_text();
    let logged = stderr.lines().filter(|l| ["utterance", "rtp", "barge"].iter().any(|w| l.contains(w)));
    stats.chain(logged.map(String::from)).collect::<Vec<_>>().join("\n")
}

/// What half a second of 8 kHz audio holds: silence, the desk's 1400 Hz tone, or other sound.
fn kinds(samples: &[i16]) -> Vec<&'static str> {
    samples
        .chunks_exact(4000)
        .map(|w| {
            let a = sipdesk_e2e::audio::analyse(w, 8000);
            if a.rms_dbfs < -45.0 {
                "silence"
            } else if (a.dominant_hz - 1400.0).abs() < 30.0 && a.coverage > 0.9 {
                "tone"
            } else {
                "speech"
            }
        })
        .collect()
}

fn runs(kinds: &[&'static str]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in kinds {
        if out.last() != Some(k) {
            out.push(k);
        }
    }
    out
}

#[test]
fn taking_back_mid_sentence_gives_the_caller_the_desk_again() {
    let Some(mut r) = rig(None, 30.0, "file:{dir}/desk.wav,{dir}/heard.wav") else { return };
    std::thread::sleep(Duration::from_millis(1500));
    let cmd = r.desk.command(json!({"id": 1, "cmd": "handoff", "call_id": r.id}));
    assert_eq!(cmd["event"], "ack", "{cmd}");
    // Mid-greeting: the agent is still talking.
    std::thread::sleep(Duration::from_millis(2500));
    let cmd = r.desk.command(json!({"id": 2, "cmd": "takeback", "call_id": r.id}));
    assert_eq!(cmd["event"], "ack", "{cmd}");
    let back = r.desk.wait_for("back", Duration::from_secs(5), |v| v["event"] == "handoff" && v["to"] == "human");
    assert!(back["reason"].is_null(), "{back}");
    std::thread::sleep(Duration::from_millis(2000));
    r.phone.hangup();
    r.phone.wait_event("CALL_CLOSED", Duration::from_secs(5));
    let recs = r.phone.received_recordings();
    let (samples, _) = read_wav(&recs[0]);
    let seen = runs(&kinds(&samples));
    eprintln!("the caller heard: {seen:?}");
    assert!(seen.windows(3).any(|w| w == ["tone", "speech", "tone"]), "desk, then the agent, then the desk: {seen:?}");
    let (code, _) = r.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn a_zero_key_makes_the_agent_ask_for_a_person_and_the_call_returns() {
    let Some(mut r) = rig(None, 30.0, "null") else { return };
    let cmd = r.desk.command(json!({"id": 1, "cmd": "handoff", "call_id": r.id}));
    assert_eq!(cmd["event"], "ack", "{cmd}");
    // After the greeting, the caller presses 0 ("a person"), which reaches the dialog as DTMF.
    r.desk.wait_for("greeting", Duration::from_secs(10), |v| {
        v["event"] == "transcript" && v["speaker"] == "ai" && v["final"] == true
    });
    std::thread::sleep(Duration::from_secs(6));
    r.phone.command("sndcode", Some("0")).expect("sndcode");
    let back =
        r.desk.wait_for("back to the desk", Duration::from_secs(15), |v| v["event"] == "handoff" && v["to"] == "human");
    assert_eq!(back["reason"], "ai_requested_human", "{back}");
    let said: Vec<String> = r
        .desk
        .seen()
        .iter()
        .filter(|v| v["event"] == "transcript" && v["speaker"] == "ai" && v["final"] == true)
        .map(|v| v["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(said.iter().any(|t| t.contains("transfer you to a person")), "{said:?}");
    // The call goes on with the desk.
    assert!(!r.desk.seen().iter().any(|v| v["event"] == "call" && v["state"] == "ended"));
    r.phone.hangup();
    let (code, _) = r.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

#[test]
fn the_local_agent_answers_a_handed_over_call() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("ai_handoff", &needed) {
        return;
    }
    // The greeting takes about 6 s: ask after it, then leave time for the reply.
    let CallerRig { k: _k, mut phone, mut desk, call_id: id, db: _, dir: _dir } = CallerRig::start(
        |wav| sipdesk_e2e::audio::write_spoken_wav(wav, QUESTION, 8.0, 9.0),
        |_, _| {},
        &["--auto-answer", "--audio", "null"],
    );
    let r = desk.command(json!({"id": 1, "cmd": "handoff", "call_id": id}));
    assert_eq!(r["event"], "ack", "{r}");
    let h = desk.wait_for("handoff", Duration::from_secs(5), |v| v["event"] == "handoff");
    assert_eq!((h["to"].as_str(), h["provider"].as_str()), (Some("ai"), Some("local")), "{h}");
    let heard = desk.wait_for("caller transcript", Duration::from_secs(20), |v| {
        v["event"] == "transcript" && v["speaker"] == "caller" && v["final"] == true
    });
    assert_eq!(heard["text"].as_str(), Some("i have a question about my bill"), "{heard}");
    desk.wait_for("reply", Duration::from_secs(10), |v: &Value| {
        v["event"] == "transcript" && v["speaker"] == "ai" && v["text"].as_str().is_some_and(|t| t.contains("bill"))
    });
    desk.wait_for("ended", Duration::from_secs(20), |v| v["event"] == "call" && v["state"] == "ended");
    phone.wait_event("CALL_CLOSED", Duration::from_secs(5));

    let script = DialogScript::sample();
    let mut candidates: Vec<String> = vec![script.greeting.clone()];
    candidates.extend(script.intents.iter().map(|i| i.reply.clone()));
    let sentences: Vec<String> = candidates
        .iter()
        .flat_map(|t| {
            t.split(['.', '?', '!']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>()
        })
        .chain(["the weather is sunny today", "our office is closed now"].map(String::from))
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let grammar = Grammar::for_sentences(&refs);
    let model = SpeechModel::default();
    let mut recognizer = Recognizer::new(&model, &grammar, &grammar.lexicon(&model).unwrap()).unwrap();
    assert_eq!(recognizer.recognize(&vec![0i16; 16000]).unwrap(), None, "silence matches nothing");
    let recs = phone.received_recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (samples, rate) = read_wav(&recs[0]);
    assert_eq!(rate, 8000);
    let said: Vec<String> = utterances(&samples)
        .into_iter()
        .filter_map(|u| recognizer.recognize(&resample(u, 8000, 16000)).unwrap())
        .collect();
    eprintln!("the caller heard: {said:?}");
    let expect = |s: &str| words(s).join(" ");
    assert!(said.contains(&expect("Please tell me briefly why you are calling")), "greeting: {said:?}");
    assert!(said.contains(&expect("I can help with your bill")), "the reply to the question: {said:?}");
    let (code, _) = desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

/// Barge-in: the caller asks while the greeting still plays; the rest of the greeting is
/// flushed (the caller never hears its last sentence) and the agent answers the question.
#[test]
fn the_caller_speaking_over_the_greeting_cuts_it_short() {
    let Some(mut r) = rig(Some((QUESTION, 3.0, 10.0)), 0.0, "null") else { return };
    let cmd = r.desk.command(json!({"id": 1, "cmd": "handoff", "call_id": r.id}));
    assert_eq!(cmd["event"], "ack", "{cmd}");
    let heard = r.desk.wait_for("caller transcript", Duration::from_secs(20), |v| {
        v["event"] == "transcript" && v["speaker"] == "caller" && v["final"] == true
    });
    assert_eq!(heard["text"].as_str(), Some("i have a question about my bill"), "{heard}\n{}", diagnosis(&r.desk));
    r.desk.wait_for("ended", Duration::from_secs(25), |v| v["event"] == "call" && v["state"] == "ended");
    r.phone.wait_event("CALL_CLOSED", Duration::from_secs(5));
    let script = DialogScript::sample();
    let mut candidates: Vec<String> = vec![script.greeting.clone()];
    candidates.extend(script.intents.iter().map(|i| i.reply.clone()));
    let sentences: Vec<String> = candidates
        .iter()
        .flat_map(|t| {
            t.split(['.', '?', '!']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>()
        })
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let grammar = Grammar::for_sentences(&refs);
    let model = SpeechModel::default();
    let mut recognizer = Recognizer::new(&model, &grammar, &grammar.lexicon(&model).unwrap()).unwrap();
    let (samples, _) = read_wav(&r.phone.received_recordings()[0]);
    let said: Vec<String> = utterances(&samples)
        .into_iter()
        .filter_map(|u| recognizer.recognize(&resample(u, 8000, 16000)).unwrap())
        .collect();
    eprintln!("the caller heard: {said:?}");
    let expect = |s: &str| words(s).join(" ");
    assert!(!said.contains(&expect("Please tell me briefly why you are calling")), "flushed: {said:?}");
    assert!(said.contains(&expect("I can help with your bill")), "answered: {said:?}");
    let (code, _) = r.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

/// A whole conversation with the agent: the caller asks about a bill, keys a callback number
/// (DTMF reaches the dialog), declines a person; the agent says goodbye and the call ends.
#[test]
fn a_conversation_that_ends_with_the_agents_goodbye_hangs_up() {
    let Some(mut r) = rig(None, 60.0, "null") else { return };
    let dir = tempfile::tempdir().unwrap();
    let say = |phone: &mut Baresip, name: &str, text: &str| {
        let wav = dir.path().join(name);
        sipdesk_e2e::audio::write_spoken_wav(&wav, text, 0.3, 40.0);
        phone.command("ausrc", Some(&format!("aufile,{}", wav.display()))).expect("baresip ausrc");
    };
    let ai_said = |desk: &mut Running, what: &str, needle: &'static str| {
        desk.wait_for(what, Duration::from_secs(20), move |v: &Value| {
            v["event"] == "transcript"
                && v["speaker"] == "ai"
                && v["final"] == true
                && v["text"].as_str().is_some_and(|t| t.contains(needle))
        })
    };
    let cmd = r.desk.command(json!({"id": 1, "cmd": "handoff", "call_id": r.id}));
    assert_eq!(cmd["event"], "ack", "{cmd}");
    ai_said(&mut r.desk, "greeting", "automated assistant");
    std::thread::sleep(Duration::from_secs(7));
    say(&mut r.phone, "q.wav", QUESTION);
    ai_said(&mut r.desk, "asks for a number", "callback number");
    std::thread::sleep(Duration::from_secs(5));
    for d in ["5", "5", "5", "1", "2", "3", "4", "#"] {
        r.phone.command("sndcode", Some(d)).expect("sndcode");
        std::thread::sleep(Duration::from_millis(300));
    }
    ai_said(&mut r.desk, "repeats the number", "5 5 5 1 2 3 4");
    std::thread::sleep(Duration::from_secs(6));
    say(&mut r.phone, "no.wav", "no thank you");
    ai_said(&mut r.desk, "goodbye", "Goodbye");
    let back = r.desk.wait_for("finished", Duration::from_secs(15), |v| v["event"] == "handoff" && v["to"] == "human");
    assert_eq!(back["reason"], "ai_finished", "{back}");
    let ended = r.desk.wait_for("ended", Duration::from_secs(5), |v| v["event"] == "call" && v["state"] == "ended");
    assert_eq!(ended["reason"], "local_hangup", "{ended}");
    r.phone.wait_event("CALL_CLOSED", Duration::from_secs(5));
    let (code, _) = r.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}

/// The desk's policy has the AI answer every call (`--ai-answer always`); the caller's question
/// is answered, and after the call its transcript and summary are in the call history.
#[test]
fn the_ai_answers_by_policy_and_the_transcript_is_kept() {
    let Some(mut r) = rig_with(Some((QUESTION, 8.0, 9.0)), 0.0, "null", &["--ai-answer", "always"]) else { return };
    let h = r.desk.wait_for("handoff", Duration::from_secs(5), |v| v["event"] == "handoff");
    assert_eq!(h["to"], "ai", "{h}");
    r.desk.wait_for("caller transcript", Duration::from_secs(20), |v| {
        v["event"] == "transcript" && v["speaker"] == "caller" && v["final"] == true
    });
    r.desk.wait_for("ended", Duration::from_secs(20), |v| v["event"] == "call" && v["state"] == "ended");
    // The history is read by a second process: the desk must have let go of the database.
    let (code, err) = r.desk.stop(Duration::from_secs(3));
    assert!(code.success(), "{err}");
    let out = sipdesk_e2e::sipdesk::command(&r.db).args(["history", "--json"]).output().unwrap();
    let history: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let call = history
        .as_array()
        .and_then(|a| a.iter().find(|c| c["call_id"] == r.id.as_str()))
        .unwrap_or_else(|| panic!("{history}"));
    let lines = call["transcript"].as_array().unwrap_or_else(|| panic!("{call}"));
    assert!(lines.iter().any(|l| l["speaker"] == "caller" && l["text"] == "i have a question about my bill"), "{call}");
    assert!(
        lines.iter().any(|l| l["speaker"] == "ai" && l["text"].as_str().is_some_and(|t| t.contains("bill"))),
        "{call}"
    );
    assert!(call["summary"].as_str().is_some_and(|s| s.contains("bill")), "{call}");
}

/// A desk whose policy forbids handing calls to the AI refuses the command clearly.
#[test]
fn handoff_is_refused_when_the_policy_forbids_it() {
    let Some(mut r) = rig(None, 20.0, "null") else { return };
    let set = r.desk.command(json!({"id": 1, "cmd": "set_policy", "handoff_allowed": false}));
    assert_eq!(set["event"], "ack", "{set}");
    let refused = r.desk.command(json!({"id": 2, "cmd": "handoff", "call_id": r.id}));
    assert_eq!(
        (refused["event"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("handoff_not_allowed")),
        "{refused}"
    );
    r.phone.hangup();
    let (code, _) = r.desk.terminate(Duration::from_secs(3));
    assert!(code.success());
}
