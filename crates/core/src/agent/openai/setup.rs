//! Opening an OpenAI Realtime session: the upgrade (with the key), `session.created`, the
//! `session.update` and its `session.updated`, and the opening words asked for. Any step failing
//! fails [`open`] in words; only then does the session's task ([`super::session`]) start.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::audio::WireFormat;
use super::events::{self, ServerEvent, SessionSettings, Severity};
use super::session::Session;
use super::OpenAiConfig;
use crate::agent::provider::{AgentError, AgentSession, SessionConfig};
use crate::agent::ws::{self, Socket};

/// The engine name in errors.
pub(super) const ENGINE: &str = "openai";

/// How long each setup step (`session.created`, then `session.updated`) may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a polite close waits for the server's answer.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The system prompt when the desk sets none.
const DEFAULT_INSTRUCTIONS: &str = "You are a friendly, concise voice assistant answering a phone call for a \
    business. Keep every answer to one or two short sentences.";

fn fail(message: impl Into<String>) -> AgentError {
    AgentError::Engine { engine: ENGINE, message: message.into() }
}

/// Connects, sets the session up, asks for the opening words, and starts the session's task.
pub(super) async fn open(provider: Arc<OpenAiConfig>, config: SessionConfig) -> Result<AgentSession, AgentError> {
    if provider.api_key.is_empty() {
        return Err(fail("no API key is set for OpenAI"));
    }
    let url = provider.url();
    let mut headers = vec![("Authorization", format!("Bearer {}", provider.api_key.expose()))];
    if provider.dialect == events::Dialect::Beta {
        headers.push(("OpenAI-Beta", "realtime=v1".to_string()));
    }
    let (mut socket, upgrade) = ws::connect(ENGINE, &url, &headers).await?;
    tracing::info!(endpoint = %provider.endpoint, request_id = upgrade.header("x-request-id").unwrap_or("-"),
        "OpenAI Realtime connected");

    let format = match set_up(&mut socket, &provider, &config).await {
        Ok(format) => format,
        Err(e) => {
            // Tell the server too, rather than leave it a dead socket.
            let _ = tokio::time::timeout(CLOSE_WAIT, socket.close(None)).await;
            return Err(e);
        }
    };
    let (session, link) = AgentSession::pair();
    tokio::spawn(Session::new(socket, link, format).run());
    Ok(session)
}

/// `session.created`, `session.update`, `session.updated`, then the opening words asked for.
/// Returns the session's audio format.
async fn set_up(
    socket: &mut Socket,
    provider: &OpenAiConfig,
    config: &SessionConfig,
) -> Result<WireFormat, AgentError> {
    await_setup(socket, &ServerEvent::SessionCreated, "session.created").await?;
    let format = WireFormat::for_input(config.input);
    let instructions = if config.instructions.trim().is_empty() {
        DEFAULT_INSTRUCTIONS.to_string()
    } else {
        config.instructions.clone()
    };
    let settings = SessionSettings {
        instructions: instructions.clone(),
        format,
        voice: provider.voice.clone(),
        language: provider.language.clone(),
        transcription_model: provider.transcription_model.clone(),
        dialect: provider.dialect,
    };
    send(socket, &events::session_update(&settings)).await.map_err(fail)?;
    await_setup(socket, &ServerEvent::SessionUpdated, "session.updated").await?;

    // The caller hears the agent first: the configured greeting word for word, or an opening
    // line in the agent's own words that says it is an automated assistant.
    let opening = match config.greeting.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        Some(greeting) => events::greeting_instructions(greeting),
        None => format!("{instructions}\n\n{}", events::OPENING_INSTRUCTIONS),
    };
    send(socket, &events::response_create(Some(&opening))).await.map_err(fail)?;
    Ok(format)
}

/// Reads frames until `want` arrives; an `error`, a close, a malformed frame or
/// [`SETUP_TIMEOUT`] fail the setup in words.
async fn await_setup(socket: &mut Socket, want: &ServerEvent, name: &str) -> Result<(), AgentError> {
    let wait = async {
        loop {
            let frame = match socket.next().await {
                None => return Err(fail(format!("OpenAI closed the connection before {name}"))),
                Some(Err(e)) => return Err(fail(format!("the connection failed before {name}: {e}"))),
                Some(Ok(frame)) => frame,
            };
            match frame {
                Message::Text(text) => match events::parse(&text) {
                    Ok(event) if &event == want => return Ok(()),
                    Ok(ServerEvent::Error(e)) if e.severity() != Severity::Ignore => {
                        return Err(fail(format!("OpenAI refused the session: {e}")));
                    }
                    Ok(other) => tracing::debug!("OpenAI setup: ignoring {other:?}"),
                    Err(m) => return Err(fail(format!("OpenAI sent a malformed frame before {name}: {m}"))),
                },
                Message::Close(frame) => {
                    return Err(fail(format!("OpenAI closed the connection before {name}{}", close_reason(&frame))));
                }
                Message::Binary(_) => return Err(fail(format!("OpenAI sent a binary frame before {name}"))),
                _ => {}
            }
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| Err(fail(format!("no {name} from OpenAI within {} s", SETUP_TIMEOUT.as_secs()))))
}

pub(super) fn close_reason(frame: &Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!(" (code {})", u16::from(f.code)),
        Some(f) => format!(" (code {}: {})", u16::from(f.code), f.reason),
        None => String::new(),
    }
}

pub(super) async fn send(socket: &mut Socket, event: &Value) -> Result<(), String> {
    socket.send(Message::text(event.to_string())).await.map_err(|e| format!("sending to OpenAI failed: {e}"))
}
