//! A running Doubao session: one tokio task owns the socket and the provider's link.
//!
//! Caller audio goes out as 20 ms TaskRequests at 16 kHz ([`super::uplink`]); when nothing went out
//! for [`KEEPALIVE`] a silent one does, since the server ends a session that hears nothing for
//! 10 s. Server events come back as [`AgentEvent`]s. Any failure (an error frame or event, a
//! malformed frame, the socket closing while the session is open) ends the session with a
//! fatal [`AgentEvent::Error`] then [`AgentEvent::Closed`]; a close asked for by the bridge
//! finishes the session and the connection politely first.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::frame::{self, event, Frame, MessageType, Serialization};
use super::uplink::{Uplink, UPLINK_BYTES};
use crate::agent::provider::{AgentEvent, AgentInput, AgentUsage, ProviderLink};
use crate::agent::ws::Socket;
use crate::media::frame::SampleRate;

/// The longest the server goes without caller audio before a silent frame is sent.
const KEEPALIVE: Duration = Duration::from_millis(100);
/// How long a polite close waits for each of the server's acknowledgements.
const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// How the session loop ended.
enum End {
    /// The bridge closed the session (or dropped it).
    Bridge,
    /// The server finished the session or the connection by itself.
    Server,
    /// Something failed; the message says what.
    Failed(String),
}

/// Runs the session until it ends; [`AgentEvent::Closed`] is always the last event.
pub(super) async fn run(socket: Socket, link: ProviderLink, session_id: String) {
    let mut s = Session {
        socket,
        link,
        session_id,
        uplink: Uplink::default(),
        usage: AgentUsage::default(),
        reply: String::new(),
        chat: String::new(),
        reply_open: false,
        dropping: false,
        carry: None,
        last_sent: Instant::now(),
    };
    match s.serve().await {
        End::Bridge => s.finish().await,
        End::Server => tracing::info!(session_id = %s.session_id, "doubao: the server ended the session"),
        End::Failed(message) => {
            tracing::warn!(session_id = %s.session_id, "doubao: {message}");
            s.link.emit(AgentEvent::Error { message, fatal: true }).await;
        }
    }
    s.link.emit(AgentEvent::Usage(s.usage)).await;
    s.link.emit(AgentEvent::Closed).await;
}

struct Session {
    socket: Socket,
    link: ProviderLink,
    session_id: String,
    uplink: Uplink,
    usage: AgentUsage,
    /// The current reply's sentences so far (from TTSSentenceStart).
    reply: String,
    /// The current reply's text deltas (ChatResponse), used when no sentence text came.
    chat: String,
    /// A reply has started and not yet ended.
    reply_open: bool,
    /// The bridge cut the reply off: its audio still arriving is dropped until the next
    /// sentence starts.
    dropping: bool,
    /// An odd byte of agent audio waiting for its pair.
    carry: Option<u8>,
    /// When caller audio (or keep-alive silence) last went out.
    last_sent: Instant,
}

impl Session {
    async fn serve(&mut self) -> End {
        loop {
            let keepalive = tokio::time::sleep_until(self.last_sent + KEEPALIVE);
            tokio::select! {
                message = self.socket.next() => {
                    let outcome = match message {
                        Some(Ok(message)) => self.on_message(message).await,
                        Some(Err(e)) => Err(format!("the connection to Doubao closed unexpectedly: {e}")),
                        None => Err("the connection to Doubao closed without finishing the session".into()),
                    };
                    match outcome {
                        Ok(None) => {}
                        Ok(Some(end)) => return end,
                        Err(message) => return End::Failed(message),
                    }
                }
                input = self.link.recv() => match input {
                    None | Some(AgentInput::Close) => return End::Bridge,
                    Some(input) => {
                        if let Err(message) = self.on_input(input).await {
                            return End::Failed(message);
                        }
                    }
                },
                () = keepalive => {
                    if let Err(message) = self.send_audio(vec![0; UPLINK_BYTES]).await {
                        return End::Failed(message);
                    }
                }
            }
        }
    }

    async fn on_input(&mut self, input: AgentInput) -> Result<(), String> {
        match input {
            AgentInput::Audio(audio) => {
                self.usage.input_audio_ms += audio.duration_ms();
                for chunk in self.uplink.push(&audio) {
                    self.send_audio(chunk).await?;
                }
            }
            AgentInput::Text(text) => {
                self.link.emit(AgentEvent::UserTranscript { text: text.clone(), is_final: true }).await;
                let query =
                    Frame::client_json(event::CHAT_TEXT_QUERY, Some(&self.session_id), &json!({ "content": text }));
                self.send(&query).await?;
            }
            AgentInput::Dtmf(digit) => tracing::debug!(%digit, "doubao: no DTMF in this API, digit ignored"),
            // The server handles barge-in itself; only the reply's late audio must not play.
            // What played so far is the reply for the transcript; the rest is not heard.
            AgentInput::Interrupted { played_ms } => {
                tracing::debug!(played_ms, "doubao: reply interrupted, dropping its audio");
                self.end_reply().await;
                self.dropping = true;
            }
            AgentInput::Close => {}
        }
        Ok(())
    }

    async fn send_audio(&mut self, pcm: Vec<u8>) -> Result<(), String> {
        self.last_sent = Instant::now();
        let frame = Frame::client_audio(&self.session_id, pcm);
        self.send(&frame).await
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let bytes = frame.encode().map_err(|e| e.to_string())?;
        self.socket
            .send(Message::binary(bytes))
            .await
            .map_err(|e| format!("the connection to Doubao closed unexpectedly while sending: {e}"))
    }

    /// One WebSocket message from the server: `Ok(Some)` when it ends the session.
    async fn on_message(&mut self, message: Message) -> Result<Option<End>, String> {
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Close(close) => {
                let why = close.map(|c| format!(" ({} {})", u16::from(c.code), c.reason)).unwrap_or_default();
                return Err(format!("Doubao closed the connection without finishing the session{why}"));
            }
            Message::Text(_) => return Err("Doubao sent a text message, which its protocol never uses".into()),
            _ => return Ok(None),
        };
        let frame = frame::decode(&bytes).map_err(|e| format!("malformed frame from Doubao: {e}"))?;
        if let Some(error) = server_error(&frame) {
            return Err(error);
        }
        let json = match frame.serialization {
            Serialization::Json => frame.json().map_err(|e| format!("malformed frame from Doubao: {e}"))?,
            Serialization::Raw => serde_json::Value::Null,
        };
        match frame.event.unwrap_or_default() {
            event::TTS_SENTENCE_START => {
                self.dropping = false;
                self.reply_open = true;
                let text = json["text"].as_str().unwrap_or_default();
                if !text.is_empty() {
                    join_sentence(&mut self.reply, text);
                    self.emit(AgentEvent::AgentTranscriptDelta { text: text.to_string() }).await;
                }
            }
            event::TTS_RESPONSE if frame.kind == MessageType::AudioOnlyResponse => self.on_audio(&frame.payload).await,
            event::TTS_ENDED => self.end_reply().await,
            event::ASR_INFO => {
                // The caller talks over the reply: it ends here for the transcript.
                self.end_reply().await;
                self.emit(AgentEvent::UserSpeechStarted).await;
            }
            event::ASR_RESPONSE => {
                for result in json["results"].as_array().into_iter().flatten() {
                    let text = result["text"].as_str().unwrap_or_default();
                    if !text.is_empty() {
                        let is_final = !result["is_interim"].as_bool().unwrap_or(false);
                        self.emit(AgentEvent::UserTranscript { text: text.to_string(), is_final }).await;
                    }
                }
            }
            event::ASR_ENDED => self.emit(AgentEvent::UserSpeechStopped).await,
            event::CHAT_RESPONSE => {
                self.reply_open = true;
                self.chat.push_str(json["content"].as_str().unwrap_or_default());
            }
            event::USAGE_RESPONSE => {
                let u = &json["usage"];
                let n = |k: &str| u[k].as_u64().unwrap_or(0);
                self.usage.input_tokens += n("input_text_tokens") + n("input_audio_tokens");
                self.usage.output_tokens += n("output_text_tokens") + n("output_audio_tokens");
                self.emit(AgentEvent::Usage(self.usage)).await;
            }
            event::SESSION_FINISHED | event::CONNECTION_FINISHED => return Ok(Some(End::Server)),
            other => tracing::debug!(event = other, "doubao: event ignored"),
        }
        Ok(None)
    }

    async fn on_audio(&mut self, payload: &[u8]) {
        if self.dropping || payload.is_empty() {
            return;
        }
        self.reply_open = true;
        let mut bytes = Vec::with_capacity(payload.len() + 1);
        bytes.extend(self.carry.take());
        bytes.extend_from_slice(payload);
        if bytes.len() % 2 == 1 {
            self.carry = bytes.pop();
        }
        let samples: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        if samples.is_empty() {
            return;
        }
        self.usage.output_audio_ms += samples.len() as u64 * 1000 / u64::from(SampleRate::Hz24000.hz());
        self.emit(AgentEvent::AgentAudio { rate: SampleRate::Hz24000, samples }).await;
    }

    /// Ends the reply in progress: its whole text, then the end of its audio.
    async fn end_reply(&mut self) {
        if !self.reply_open {
            return;
        }
        self.reply_open = false;
        self.carry = None;
        let text = if self.reply.is_empty() { std::mem::take(&mut self.chat) } else { std::mem::take(&mut self.reply) };
        self.reply.clear();
        self.chat.clear();
        if !text.is_empty() {
            self.emit(AgentEvent::AgentTranscript { text }).await;
        }
        self.emit(AgentEvent::AgentAudioDone).await;
    }

    async fn emit(&self, event: AgentEvent) {
        // A bridge that stopped listening closes the session through its inputs.
        self.link.emit(event).await;
    }

    /// FinishSession, FinishConnection (each acknowledged or timed out), then the close.
    async fn finish(&mut self) {
        let finish_session = Frame::client_json(event::FINISH_SESSION, Some(&self.session_id), &json!({}));
        if self.send(&finish_session).await.is_ok() {
            self.wait_for(event::SESSION_FINISHED).await;
        }
        let finish_connection = Frame::client_json(event::FINISH_CONNECTION, None, &json!({}));
        if self.send(&finish_connection).await.is_ok() {
            self.wait_for(event::CONNECTION_FINISHED).await;
        }
        let _ = self.socket.close(None).await;
        tracing::info!(session_id = %self.session_id, "doubao: session finished");
    }

    /// Reads (and drops) frames until event `want`, the socket's end, or [`FINISH_TIMEOUT`].
    async fn wait_for(&mut self, want: i32) {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.socket.next()).await {
            if let Message::Binary(bytes) = message {
                if frame::decode(&bytes).is_ok_and(|f| f.event == Some(want)) {
                    return;
                }
            }
        }
    }
}

/// Appends `sentence` to `reply`, with a space between sentences of a spaced script (English)
/// and none in Chinese, whose sentences end with full-width punctuation.
fn join_sentence(reply: &mut String, sentence: &str) {
    let spaced = reply.chars().last().is_some_and(|c| c.is_ascii() && !c.is_whitespace())
        && sentence.chars().next().is_some_and(|c| c.is_ascii() && !c.is_whitespace());
    if spaced {
        reply.push(' ');
    }
    reply.push_str(sentence);
}

/// The error a frame reports, in words: an error frame, ConnectionFailed, SessionFailed or
/// DialogCommonError. `None` for any other frame.
pub(super) fn server_error(frame: &Frame) -> Option<String> {
    let json = frame.json().unwrap_or_default();
    let text = |key: &str| match &json[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::from_utf8_lossy(&frame.payload).chars().take(200).collect(),
        other => other.to_string(),
    };
    if frame.kind == MessageType::Error {
        let code = frame.error_code.unwrap_or_default();
        let message = if json["message"].is_string() { text("message") } else { text("error") };
        return Some(format!("Doubao error {code}: {message}"));
    }
    match frame.event? {
        event::CONNECTION_FAILED => Some(format!("Doubao refused the connection: {}", text("error"))),
        event::SESSION_FAILED => Some(format!("Doubao could not run the session: {}", text("error"))),
        event::DIALOG_COMMON_ERROR => Some(format!("Doubao dialog error {}: {}", text("status_code"), text("message"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_join_with_a_space_only_between_spaced_scripts() {
        let mut reply = String::new();
        for s in ["Hello.", "How can I help?", "你好。", "请问有什么事？"] {
            join_sentence(&mut reply, s);
        }
        assert_eq!(reply, "Hello. How can I help?你好。请问有什么事？");
    }

    #[test]
    fn failure_frames_read_in_words() {
        let mut f = Frame::client_json(event::SESSION_FAILED, Some("s"), &json!({"error": "quota exceeded"}));
        f.kind = MessageType::FullServerResponse;
        assert_eq!(server_error(&f).unwrap(), "Doubao could not run the session: quota exceeded");
        f.event = Some(event::DIALOG_COMMON_ERROR);
        f.payload = br#"{"status_code":"55000001","message":"no audio for 10 s"}"#.to_vec();
        assert_eq!(server_error(&f).unwrap(), "Doubao dialog error 55000001: no audio for 10 s");
        f.kind = MessageType::Error;
        f.error_code = Some(45000002);
        f.payload = br#"{"error":"Empty audio"}"#.to_vec();
        assert_eq!(server_error(&f).unwrap(), "Doubao error 45000002: Empty audio");
        f.kind = MessageType::FullServerResponse;
        f.event = Some(event::TTS_ENDED);
        assert_eq!(server_error(&f), None);
    }
}
