//! Tests of the wire format on the API reference's example events (GA and beta), and on
//! malformed frames, which must come back as errors, never panics.

use super::*;
use crate::media::g711::Law;

fn settings(format: WireFormat, dialect: Dialect) -> SessionSettings {
    SessionSettings {
        instructions: "You answer the phone for Acme.".into(),
        format,
        voice: Some("marin".into()),
        language: Some("en".into()),
        transcription_model: "gpt-4o-mini-transcribe".into(),
        dialect,
    }
}

#[test]
fn ga_session_update_sets_formats_transcription_vad_voice_and_the_tool() {
    let v = session_update(&settings(WireFormat::Pcm24k, Dialect::Ga));
    assert_eq!(v["type"], "session.update");
    let s = &v["session"];
    assert_eq!(s["type"], "realtime");
    assert_eq!(s["instructions"], "You answer the phone for Acme.");
    assert_eq!(s["audio"]["input"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert_eq!(s["audio"]["output"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert_eq!(s["audio"]["input"]["transcription"], json!({"model": "gpt-4o-mini-transcribe", "language": "en"}));
    let vad = &s["audio"]["input"]["turn_detection"];
    assert_eq!((vad["type"].as_str(), vad["interrupt_response"].as_bool()), (Some("server_vad"), Some(true)));
    assert_eq!(vad["create_response"], true);
    assert_eq!(s["audio"]["output"]["voice"], "marin");
    assert_eq!(s["tools"][0]["type"], "function");
    assert_eq!(s["tools"][0]["name"], TRANSFER_TOOL);
    assert_eq!(s["tools"][0]["parameters"]["properties"]["reason"]["type"], "string");
    assert_eq!(s["tools"][0]["parameters"]["required"], json!(["reason"]));
    assert_eq!(s["tool_choice"], "auto");

    let mu = session_update(&settings(WireFormat::G711(Law::Mu), Dialect::Ga));
    assert_eq!(mu["session"]["audio"]["input"]["format"], json!({"type": "audio/pcmu"}));
    assert_eq!(mu["session"]["audio"]["output"]["format"], json!({"type": "audio/pcmu"}));
}

#[test]
fn beta_session_update_uses_the_flat_fields() {
    let mut s = settings(WireFormat::G711(Law::A), Dialect::Beta);
    s.voice = None;
    s.language = None;
    let v = session_update(&s);
    let s = &v["session"];
    assert_eq!(
        (s["input_audio_format"].as_str(), s["output_audio_format"].as_str()),
        (Some("g711_alaw"), Some("g711_alaw"))
    );
    assert_eq!(s["input_audio_transcription"], json!({"model": "gpt-4o-mini-transcribe"}));
    assert_eq!(s["turn_detection"]["type"], "server_vad");
    assert!(s.get("voice").is_none() && s.get("type").is_none());
    assert_eq!(s["tools"][0]["name"], TRANSFER_TOOL);
}

#[test]
fn client_events_have_the_documented_shape() {
    assert_eq!(audio_append(&[0, 1, 2]), json!({"type": "input_audio_buffer.append", "audio": "AAEC"}));
    assert_eq!(
        truncate("item_1", 1500),
        json!({"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 1500})
    );
    let t = user_text("The caller pressed 5");
    assert_eq!(t["item"]["role"], "user");
    assert_eq!(t["item"]["content"][0], json!({"type": "input_text", "text": "The caller pressed 5"}));
    assert_eq!(function_output("call_1", "ok")["item"]["type"], "function_call_output");
    assert_eq!(response_create(None), json!({"type": "response.create"}));
    assert!(response_create(Some(&greeting_instructions("Hi there")))["response"]["instructions"]
        .as_str()
        .is_some_and(|s| s.ends_with("Hi there")));
}

#[test]
fn audio_deltas_decode_in_both_dialects() {
    let ga = r#"{"event_id":"event_3142","type":"response.output_audio.delta","response_id":"resp_001",
        "item_id":"msg_008","output_index":0,"content_index":0,"delta":"AAEAAgAD"}"#;
    let ServerEvent::AudioDelta { item_id, audio } = parse(ga).unwrap() else { panic!("not a delta") };
    assert_eq!((item_id.as_str(), audio.len()), ("msg_008", 6));
    let beta = r#"{"type":"response.audio.delta","item_id":"msg_9","delta":"AAEC"}"#;
    assert_eq!(parse(beta).unwrap(), ServerEvent::AudioDelta { item_id: "msg_9".into(), audio: vec![0, 1, 2] });
    for done in [
        r#"{"type":"response.output_audio.done","item_id":"msg_008","output_index":0,"content_index":0}"#,
        r#"{"type":"response.audio.done","item_id":"msg_008"}"#,
    ] {
        assert_eq!(parse(done).unwrap(), ServerEvent::AudioDone { item_id: "msg_008".into() });
    }
}

#[test]
fn transcripts_and_speech_events_decode() {
    let cases = [
        (
            r#"{"type":"response.output_audio_transcript.delta","item_id":"m","delta":"Hello, how can I a"}"#,
            ServerEvent::TranscriptDelta { text: "Hello, how can I a".into() },
        ),
        (
            r#"{"type":"response.audio_transcript.delta","item_id":"m","delta":"ssist"}"#,
            ServerEvent::TranscriptDelta { text: "ssist".into() },
        ),
        (
            r#"{"type":"response.output_audio_transcript.done","item_id":"m","transcript":"Hello, how can I assist you today?"}"#,
            ServerEvent::TranscriptDone { text: "Hello, how can I assist you today?".into() },
        ),
        (
            r#"{"type":"response.audio_transcript.done","transcript":"Bye."}"#,
            ServerEvent::TranscriptDone { text: "Bye.".into() },
        ),
        (
            r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1000,"item_id":"msg_003"}"#,
            ServerEvent::SpeechStarted,
        ),
        (
            r#"{"type":"input_audio_buffer.speech_stopped","audio_end_ms":2000,"item_id":"msg_003"}"#,
            ServerEvent::SpeechStopped,
        ),
        (
            r#"{"type":"conversation.item.input_audio_transcription.delta","item_id":"msg_003","content_index":0,"delta":"Hello,"}"#,
            ServerEvent::InputTranscript { text: "Hello,".into(), is_final: false },
        ),
        (
            r#"{"type":"conversation.item.input_audio_transcription.completed","item_id":"msg_003","content_index":0,"transcript":"Hello, how are you?"}"#,
            ServerEvent::InputTranscript { text: "Hello, how are you?".into(), is_final: true },
        ),
        (
            r#"{"type":"conversation.item.input_audio_transcription.failed","item_id":"msg_003","content_index":0,
             "error":{"type":"transcription_error","code":"audio_unintelligible","message":"The audio could not be transcribed."}}"#,
            ServerEvent::InputTranscriptFailed { message: "The audio could not be transcribed.".into() },
        ),
        (r#"{"type":"session.created","session":{"type":"realtime","id":"sess_1"}}"#, ServerEvent::SessionCreated),
        (r#"{"type":"session.updated","session":{}}"#, ServerEvent::SessionUpdated),
        (
            r#"{"type":"response.created","response":{"id":"resp_1","status":"in_progress"}}"#,
            ServerEvent::ResponseCreated,
        ),
        (r#"{"type":"rate_limits.updated","rate_limits":[]}"#, ServerEvent::Other("rate_limits.updated".into())),
    ];
    for (frame, want) in cases {
        assert_eq!(parse(frame).unwrap(), want, "{frame}");
    }
}

#[test]
fn function_calls_come_from_arguments_done_output_items_and_response_done() {
    let call = FunctionCall {
        call_id: "call_abc".into(),
        name: TRANSFER_TOOL.into(),
        arguments: r#"{"reason":"wants a refund"}"#.into(),
    };
    let done = r#"{"type":"response.function_call_arguments.done","response_id":"resp_002","item_id":"fc_001",
        "output_index":0,"call_id":"call_abc","name":"transfer_to_human","arguments":"{\"reason\":\"wants a refund\"}"}"#;
    assert_eq!(parse(done).unwrap(), ServerEvent::FunctionCall(call.clone()));
    let item = r#"{"type":"response.output_item.done","response_id":"r","output_index":1,"item":{"id":"fc_001",
        "type":"function_call","status":"completed","name":"transfer_to_human","call_id":"call_abc",
        "arguments":"{\"reason\":\"wants a refund\"}"}}"#;
    assert_eq!(parse(item).unwrap(), ServerEvent::FunctionCall(call.clone()));
    let message_item = r#"{"type":"response.output_item.done","item":{"id":"m","type":"message","role":"assistant"}}"#;
    assert_eq!(parse(message_item).unwrap(), ServerEvent::Other("response.output_item.done".into()));
    let response_done = r#"{"type":"response.done","response":{"id":"resp_002","status":"completed",
        "output":[{"id":"m","type":"message"},{"id":"fc_001","type":"function_call","name":"transfer_to_human",
        "call_id":"call_abc","arguments":"{\"reason\":\"wants a refund\"}"}],
        "usage":{"total_tokens":253,"input_tokens":132,"output_tokens":121}}}"#;
    assert_eq!(
        parse(response_done).unwrap(),
        ServerEvent::ResponseDone {
            status: "completed".into(),
            usage: Some(TokenUsage { input: 132, output: 121 }),
            calls: vec![call.clone()]
        }
    );
    let cancelled = r#"{"type":"response.done","response":{"status":"cancelled","usage":null,"output":[]}}"#;
    assert_eq!(
        parse(cancelled).unwrap(),
        ServerEvent::ResponseDone { status: "cancelled".into(), usage: None, calls: vec![] }
    );
    assert_eq!(call.reason(), "wants a refund");
}

#[test]
fn a_transfer_reason_is_read_leniently() {
    let with =
        |arguments: &str| FunctionCall { call_id: "c".into(), name: TRANSFER_TOOL.into(), arguments: arguments.into() };
    assert_eq!(with(r#"{"reason":"  billing dispute "}"#).reason(), "billing dispute");
    assert_eq!(with("not json at all").reason(), "not json at all");
    assert_eq!(with(r#"{"summary":"billing"}"#).reason(), r#"{"summary":"billing"}"#);
    assert_eq!(with("").reason(), "the caller asked for a person");
    assert_eq!(with("{}").reason(), "the caller asked for a person");
    assert_eq!(with(r#"{"reason":""}"#).reason(), "the caller asked for a person");
}

#[test]
fn errors_are_sorted_by_what_they_mean_for_the_session() {
    let error = |frame: &str| match parse(frame).unwrap() {
        ServerEvent::Error(e) => e,
        other => panic!("{other:?}"),
    };
    let not_active = error(
        r#"{"type":"error","event_id":"event_890","error":{"type":"invalid_request_error",
        "code":"response_cancel_not_active","message":"Cancellation failed: no active response found","param":null,"event_id":"evt_1"}}"#,
    );
    assert_eq!(not_active.severity(), Severity::Ignore);
    let by_message = error(
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Cancellation failed: no active response found"}}"#,
    );
    assert_eq!(by_message.severity(), Severity::Ignore);
    let truncate_too_far = error(
        r#"{"type":"error","error":{"type":"invalid_request_error","code":"invalid_value",
        "message":"Audio content of 1000ms is already shorter than 1500ms","param":"audio_end_ms"}}"#,
    );
    assert_eq!(truncate_too_far.severity(), Severity::NonFatal);
    let expired = error(
        r#"{"type":"error","error":{"type":"invalid_request_error","code":"session_expired",
        "message":"Your session hit the maximum duration of 60 minutes."}}"#,
    );
    assert_eq!(expired.severity(), Severity::Fatal);
    let server =
        error(r#"{"type":"error","error":{"type":"server_error","code":null,"message":"The server had an error"}}"#);
    assert_eq!(server.severity(), Severity::Fatal);
    assert_eq!(server.to_string(), "The server had an error (server_error)");
    let key = error(
        r#"{"type":"error","error":{"type":"invalid_request_error","code":"invalid_api_key","message":"bad key"}}"#,
    );
    assert_eq!(key.severity(), Severity::Fatal);
    let bare = error(r#"{"type":"error"}"#);
    assert_eq!((bare.severity(), bare.kind.as_str()), (Severity::Fatal, ""));
    assert!(bare.message.contains("without a message"));
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    for (frame, says) in [
        ("", "not JSON"),
        ("{\"type\":", "not JSON"),
        ("hello", "not JSON"),
        ("[1,2,3]", "without a `type`"),
        ("{\"delta\":\"AAEC\"}", "without a `type`"),
        ("{\"type\":42}", "without a `type`"),
        ("{\"type\":\"response.output_audio.delta\",\"item_id\":\"m\",\"delta\":\"@@not base64@@\"}", "not base64"),
        ("{\"type\":\"response.audio.delta\",\"item_id\":\"m\"}", "without a text `delta`"),
        ("{\"type\":\"response.audio.delta\",\"delta\":17}", "without a text `delta`"),
        ("{\"type\":\"response.output_audio_transcript.done\"}", "without a text `transcript`"),
        ("{\"type\":\"conversation.item.input_audio_transcription.completed\",\"transcript\":null}", "`transcript`"),
    ] {
        let err = parse(frame).expect_err(frame);
        assert!(err.0.contains(says), "{frame}: {err}");
    }
    // Odd but well-formed: missing optional parts read as empty.
    assert_eq!(
        parse(r#"{"type":"response.done"}"#).unwrap(),
        ServerEvent::ResponseDone { status: String::new(), usage: None, calls: vec![] }
    );
    assert_eq!(
        parse(r#"{"type":"response.output_item.done","item":"x"}"#).unwrap(),
        ServerEvent::Other("response.output_item.done".into())
    );
    // Any bytes at all: never a panic.
    let junk: String = (0u8..=255).map(char::from).collect();
    for n in 0..junk.len() {
        let _ = parse(&junk[..junk.char_indices().nth(n).map_or(junk.len(), |(i, _)| i)]);
    }
}
