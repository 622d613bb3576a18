//! OpenAI Realtime's wire format: the client events SipDesk sends, built as JSON, and the server
//! events it reads, parsed into [`ServerEvent`].
//!
//! Both dialects are read: the GA names (`response.output_audio.delta`,
//! `response.output_audio_transcript.*`) and the beta ones (`response.audio.delta`,
//! `response.audio_transcript.*`), since endpoints that still speak beta (older deployments,
//! compatible servers) stay in use. [`session_update`] writes either shape ([`Dialect`]).
//!
//! Parsing never panics: a frame that is not what the protocol promises (not JSON, no `type`,
//! an audio delta whose base64 does not decode) is a [`Malformed`] error, which the session
//! treats as fatal. An event it does not know is [`ServerEvent::Other`], ignored.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::audio::WireFormat;

/// The one tool the model gets: asking for a person.
pub const TRANSFER_TOOL: &str = "transfer_to_human";

/// Which shape of the API an endpoint speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// The generally available API (`session.type: "realtime"`, `audio.input.format`).
    #[default]
    Ga,
    /// The beta API (`OpenAI-Beta: realtime=v1`, `input_audio_format: "pcm16"`).
    Beta,
}

/// What a session is set up with (the content of `session.update`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    /// The system prompt.
    pub instructions: String,
    /// Audio format both ways.
    pub format: WireFormat,
    /// The voice; `None` for the model's default.
    pub voice: Option<String>,
    /// The caller's language for the transcription (`en`, `zh`); `None` to detect it.
    pub language: Option<String>,
    /// The model transcribing the caller.
    pub transcription_model: String,
    /// The shape to write.
    pub dialect: Dialect,
}

/// The `transfer_to_human` function, as a tool definition (the same in both dialects).
fn transfer_tool() -> Value {
    json!({
        "type": "function",
        "name": TRANSFER_TOOL,
        "description": "Hand the call over to a person at the desk. Use it when the caller asks for a \
            human, or when you cannot help them. Tell the caller first, in one short sentence, that you \
            are transferring them.",
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "For the person taking over: what the caller wants and what you have \
                        collected (name, callback number, request)."
                }
            },
            "required": ["reason"]
        }
    })
}

/// `session.update`: instructions, audio formats, caller transcription, server VAD that
/// interrupts the model when the caller speaks, the voice, and the transfer tool.
pub fn session_update(s: &SessionSettings) -> Value {
    let mut transcription = json!({ "model": s.transcription_model });
    if let Some(language) = &s.language {
        transcription["language"] = json!(language);
    }
    // The server stops its reply by itself when the caller starts speaking (interrupt_response),
    // so the client never needs response.cancel for a barge-in.
    let turn_detection = json!({ "type": "server_vad", "create_response": true, "interrupt_response": true });
    let mut session = match s.dialect {
        Dialect::Ga => {
            let mut output = json!({ "format": s.format.ga_json() });
            if let Some(voice) = &s.voice {
                output["voice"] = json!(voice);
            }
            json!({
                "type": "realtime",
                "instructions": s.instructions,
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": s.format.ga_json(),
                        "transcription": transcription,
                        "turn_detection": turn_detection,
                    },
                    "output": output,
                },
            })
        }
        Dialect::Beta => {
            let mut session = json!({
                "modalities": ["audio", "text"],
                "instructions": s.instructions,
                "input_audio_format": s.format.beta_name(),
                "output_audio_format": s.format.beta_name(),
                "input_audio_transcription": transcription,
                "turn_detection": turn_detection,
            });
            if let Some(voice) = &s.voice {
                session["voice"] = json!(voice);
            }
            session
        }
    };
    session["tools"] = json!([transfer_tool()]);
    session["tool_choice"] = json!("auto");
    json!({ "type": "session.update", "session": session })
}

/// `input_audio_buffer.append` with `audio` (wire bytes) in base64.
pub fn audio_append(audio: &[u8]) -> Value {
    json!({ "type": "input_audio_buffer.append", "audio": BASE64.encode(audio) })
}

/// `response.create`, with instructions for this response only when given.
pub fn response_create(instructions: Option<&str>) -> Value {
    match instructions {
        Some(text) => json!({ "type": "response.create", "response": { "instructions": text } }),
        None => json!({ "type": "response.create" }),
    }
}

/// The instructions that make the model open the call with exactly `greeting`.
pub fn greeting_instructions(greeting: &str) -> String {
    format!("Say exactly the following to the caller, word for word, and nothing else: {greeting}")
}

/// The instructions that make the model open the call when no greeting is set: short, and
/// saying it is an automated assistant (the caller must know they are not talking to a person).
pub const OPENING_INSTRUCTIONS: &str = "Greet the caller in one short sentence, tell them they are talking to \
    an automated assistant, and ask how you can help.";

/// `conversation.item.create` of a user message holding `text`.
pub fn user_text(text: &str) -> Value {
    json!({
        "type": "conversation.item.create",
        "item": { "type": "message", "role": "user", "content": [{ "type": "input_text", "text": text }] }
    })
}

/// `conversation.item.create` of the output of function call `call_id`.
pub fn function_output(call_id: &str, output: &str) -> Value {
    json!({
        "type": "conversation.item.create",
        "item": { "type": "function_call_output", "call_id": call_id, "output": output }
    })
}

/// `conversation.item.truncate`: the caller heard only `audio_end_ms` of `item_id`.
pub fn truncate(item_id: &str, audio_end_ms: u64) -> Value {
    json!({ "type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": audio_end_ms })
}

/// A call of one of the session's tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    /// The call's id, for its output.
    pub call_id: String,
    /// The function's name.
    pub name: String,
    /// Its arguments, a JSON object as text.
    pub arguments: String,
}

impl FunctionCall {
    /// The `reason` argument of a `transfer_to_human` call; the raw arguments when they are not
    /// the JSON asked for (the person taking over can still read them), a stock phrase when
    /// there are none.
    pub fn reason(&self) -> String {
        let parsed: Option<Value> = serde_json::from_str(&self.arguments).ok();
        let reason = parsed.as_ref().and_then(|v| v.get("reason")).and_then(Value::as_str).map(str::trim);
        match (reason, self.arguments.trim()) {
            (Some(reason), _) if !reason.is_empty() => reason.to_string(),
            (Some(_), _) | (_, "" | "{}") => "the caller asked for a person".to_string(),
            (_, raw) => raw.to_string(),
        }
    }
}

/// Tokens one response used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Input tokens (text and audio).
    pub input: u64,
    /// Output tokens (text and audio).
    pub output: u64,
}

/// An `error` event's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// `type` (`invalid_request_error`, `server_error`).
    pub kind: String,
    /// `code`, when given (`response_cancel_not_active`, `session_expired`).
    pub code: Option<String>,
    /// What the server says.
    pub message: String,
}

/// What an `error` means for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Nothing went wrong (cancelling a response that had already ended): a debug line.
    Ignore,
    /// One client event was refused (a truncate past the audio, a bad item); the session goes
    /// on.
    NonFatal,
    /// The session cannot go on (bad key, session expired, out of quota, the server failed).
    Fatal,
}

/// Codes that end the session whatever their `type` (`session_expired` comes as an
/// `invalid_request_error`).
const FATAL_CODES: &[&str] = &[
    "invalid_api_key",
    "session_expired",
    "insufficient_quota",
    "rate_limit_exceeded",
    "model_not_found",
    "unsupported_model",
];

impl ServerError {
    /// How serious it is. Only `invalid_request_error`s without a fatal code are survivable:
    /// they are about one event the client sent. Any other type (`server_error`,
    /// `authentication_error`, types we do not know) ends the session: continuing on a failed
    /// server would leave the caller in silence.
    pub fn severity(&self) -> Severity {
        let code = self.code.as_deref().unwrap_or("");
        let message = self.message.to_ascii_lowercase();
        if code == "response_cancel_not_active" || message.contains("no active response") {
            return Severity::Ignore;
        }
        if FATAL_CODES.contains(&code) {
            return Severity::Fatal;
        }
        if self.kind == "invalid_request_error" {
            Severity::NonFatal
        } else {
            Severity::Fatal
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} ({}, {code})", self.message, self.kind),
            None => write!(f, "{} ({})", self.message, self.kind),
        }
    }
}

/// A server event, as far as SipDesk cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// `session.created`: the connection is a session.
    SessionCreated,
    /// `session.updated`: the session took the settings.
    SessionUpdated,
    /// A piece of the model's audio (wire bytes, decoded from base64).
    AudioDelta {
        /// The assistant item it belongs to.
        item_id: String,
        /// The audio in the session's wire format.
        audio: Vec<u8>,
    },
    /// The item's audio is complete.
    AudioDone {
        /// The item.
        item_id: String,
    },
    /// A piece of the transcript of the model's audio.
    TranscriptDelta {
        /// The new text.
        text: String,
    },
    /// The whole transcript of an item's audio.
    TranscriptDone {
        /// The text.
        text: String,
    },
    /// `input_audio_buffer.speech_started`: the caller started speaking (server VAD).
    SpeechStarted,
    /// `input_audio_buffer.speech_stopped`.
    SpeechStopped,
    /// The caller's words: interim (`.delta`) or the utterance's final transcript.
    InputTranscript {
        /// A delta's new text, or the whole utterance when final.
        text: String,
        /// True for `conversation.item.input_audio_transcription.completed`.
        is_final: bool,
    },
    /// The caller's words could not be transcribed (the model still heard them).
    InputTranscriptFailed {
        /// Why.
        message: String,
    },
    /// The model called a function (from `response.function_call_arguments.done` or a finished
    /// `function_call` output item; the same call may come both ways).
    FunctionCall(FunctionCall),
    /// `response.created`: the model started a response (asked for, or after the caller's turn).
    ResponseCreated,
    /// `response.done`: the response ended (completed, cancelled by a barge-in, failed).
    ResponseDone {
        /// `response.status`.
        status: String,
        /// Its tokens, when reported.
        usage: Option<TokenUsage>,
        /// The function calls among its output.
        calls: Vec<FunctionCall>,
    },
    /// `error`.
    Error(ServerError),
    /// Any other event, by type.
    Other(String),
}

/// A frame that is not a valid server event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A required text field; a malformed frame without it.
fn required<'a>(v: &'a Value, key: &str, kind: &str) -> Result<&'a str, Malformed> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| Malformed(format!("{kind} without a text `{key}`")))
}

/// The function call an output item is, if it is one.
fn function_call_item(item: &Value) -> Option<FunctionCall> {
    (text(item, "type") == "function_call").then(|| FunctionCall {
        call_id: text(item, "call_id").to_string(),
        name: text(item, "name").to_string(),
        arguments: text(item, "arguments").to_string(),
    })
}

/// Parses one text frame.
pub fn parse(frame: &str) -> Result<ServerEvent, Malformed> {
    let v: Value = serde_json::from_str(frame).map_err(|e| Malformed(format!("not JSON ({e})")))?;
    let Some(kind) = v.get("type").and_then(Value::as_str) else {
        return Err(Malformed("a JSON event without a `type`".into()));
    };
    Ok(match kind {
        "session.created" => ServerEvent::SessionCreated,
        "session.updated" => ServerEvent::SessionUpdated,
        "response.output_audio.delta" | "response.audio.delta" => {
            let delta = required(&v, "delta", kind)?;
            let audio =
                BASE64.decode(delta).map_err(|e| Malformed(format!("{kind} whose audio is not base64 ({e})")))?;
            ServerEvent::AudioDelta { item_id: text(&v, "item_id").to_string(), audio }
        }
        "response.output_audio.done" | "response.audio.done" => {
            ServerEvent::AudioDone { item_id: text(&v, "item_id").to_string() }
        }
        "response.output_audio_transcript.delta" | "response.audio_transcript.delta" => {
            ServerEvent::TranscriptDelta { text: required(&v, "delta", kind)?.to_string() }
        }
        "response.output_audio_transcript.done" | "response.audio_transcript.done" => {
            ServerEvent::TranscriptDone { text: required(&v, "transcript", kind)?.to_string() }
        }
        "input_audio_buffer.speech_started" => ServerEvent::SpeechStarted,
        "input_audio_buffer.speech_stopped" => ServerEvent::SpeechStopped,
        // `delta` is optional in the schema: an empty delta says nothing new.
        "conversation.item.input_audio_transcription.delta" => {
            ServerEvent::InputTranscript { text: text(&v, "delta").to_string(), is_final: false }
        }
        "conversation.item.input_audio_transcription.completed" => {
            ServerEvent::InputTranscript { text: required(&v, "transcript", kind)?.to_string(), is_final: true }
        }
        "conversation.item.input_audio_transcription.failed" => ServerEvent::InputTranscriptFailed {
            message: v.get("error").map(|e| text(e, "message")).unwrap_or("").to_string(),
        },
        "response.function_call_arguments.done" => ServerEvent::FunctionCall(FunctionCall {
            call_id: text(&v, "call_id").to_string(),
            name: text(&v, "name").to_string(),
            arguments: text(&v, "arguments").to_string(),
        }),
        "response.output_item.done" => match v.get("item").and_then(function_call_item) {
            Some(call) => ServerEvent::FunctionCall(call),
            None => ServerEvent::Other(kind.to_string()),
        },
        "response.created" => ServerEvent::ResponseCreated,
        "response.done" => {
            let response = v.get("response").unwrap_or(&Value::Null);
            let usage = response.get("usage").filter(|u| u.is_object()).map(|u| TokenUsage {
                input: u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
                output: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
            });
            let calls = response
                .get("output")
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(function_call_item).collect())
                .unwrap_or_default();
            ServerEvent::ResponseDone { status: text(response, "status").to_string(), usage, calls }
        }
        "error" => {
            let e = v.get("error").unwrap_or(&Value::Null);
            ServerError {
                kind: text(e, "type").to_string(),
                code: e.get("code").and_then(Value::as_str).map(str::to_string),
                message: match text(e, "message") {
                    "" => "the server reported an error without a message".to_string(),
                    m => m.to_string(),
                },
            }
            .into()
        }
        other => ServerEvent::Other(other.to_string()),
    })
}

impl From<ServerError> for ServerEvent {
    fn from(e: ServerError) -> ServerEvent {
        ServerEvent::Error(e)
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
