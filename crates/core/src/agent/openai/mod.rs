//! The OpenAI Realtime voice agent: one WebSocket per call, speech to speech.
//!
//! [`OpenAiAgent::open`](VoiceAgent::open) connects (through [`super::ws::connect`], which
//! turns a refused key into an error that says so), waits for `session.created`, configures the
//! session with `session.update` and resolves once `session.updated` confirms it (`setup`). The
//! session then runs on its own task (`session`): caller audio goes out as
//! `input_audio_buffer.append`, the model's audio, transcripts and tool calls come back as
//! [`AgentEvent`](super::AgentEvent)s.
//!
//! - [`events`]: the wire format (client events built, server events parsed, GA and beta).
//! - [`audio`]: the formats on the wire (24 kHz PCM, or the call's own G.711).
//! - [`timeline`]: which agent audio the caller heard, for truncating on a barge-in.
//!
//! *Choices:* the server detects turns (server VAD) and stops its own reply when the caller
//! speaks, so the client never cancels a response; it only truncates the reply to what was
//! heard. The model gets one tool, `transfer_to_human`; its call becomes
//! [`AgentEvent::HandoffRequested`](super::AgentEvent::HandoffRequested) once the response that
//! announced it is done. DTMF keys reach the model as a user message ("The caller pressed 5 on
//! the phone keypad."), keys pressed in a row as one message: a cloud model has no keypad
//! input, and text is what it reads best.

pub mod audio;
pub mod events;
mod session;
mod setup;
pub mod timeline;

use std::sync::Arc;

pub use events::Dialect;
pub use session::BATCH_MS;
pub use setup::SETUP_TIMEOUT;

use super::provider::{AgentError, AgentSession, BoxFuture, SessionConfig, VoiceAgent};
use crate::store::{AiAgentConfig, ApiKey};

/// OpenAI's public Realtime endpoint.
pub const DEFAULT_ENDPOINT: &str = "wss://api.openai.com/v1/realtime";

/// The speech-to-speech model used when none is configured.
pub const DEFAULT_MODEL: &str = "gpt-realtime";

/// The model that transcribes the caller (for the desk's transcript; the realtime model hears
/// the audio itself).
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "gpt-4o-mini-transcribe";

/// How to reach OpenAI and what the agent sounds like.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// The WebSocket URL; `?model=` is added when it names no model.
    pub endpoint: String,
    /// The API key, sent as `Authorization: Bearer`. Its Debug output is redacted.
    pub api_key: ApiKey,
    /// The realtime model.
    pub model: String,
    /// The voice (`marin`, `alloy`); `None` for the model's default.
    pub voice: Option<String>,
    /// The caller's language for the transcription, ISO-639-1 (`en`, `zh`); `None` to detect.
    pub language: Option<String>,
    /// The transcription model.
    pub transcription_model: String,
    /// The API shape the endpoint speaks.
    pub dialect: Dialect,
}

impl Default for OpenAiConfig {
    /// The public endpoint and default model, with no key (opening then fails in words).
    fn default() -> OpenAiConfig {
        OpenAiConfig {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            api_key: ApiKey::default(),
            model: DEFAULT_MODEL.to_string(),
            voice: None,
            language: None,
            transcription_model: DEFAULT_TRANSCRIPTION_MODEL.to_string(),
            dialect: Dialect::Ga,
        }
    }
}

impl OpenAiConfig {
    /// The settings of a stored `openai` agent row: its endpoint (the public one when empty),
    /// key, voice and language (`zh-CN` becomes `zh`, the form transcription takes). Its
    /// instructions and greeting belong in the [`SessionConfig`] of each call.
    pub fn from_agent_config(stored: &AiAgentConfig) -> OpenAiConfig {
        let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        OpenAiConfig {
            endpoint: non_empty(&stored.endpoint).unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            api_key: stored.api_key.clone(),
            voice: non_empty(&stored.voice),
            language: non_empty(&stored.language)
                .and_then(|l| l.split(['-', '_']).next().map(str::to_ascii_lowercase))
                .filter(|l| !l.is_empty()),
            ..OpenAiConfig::default()
        }
    }

    /// The URL to connect to: the endpoint, with `model=` added unless it already has one.
    pub fn url(&self) -> String {
        let endpoint = self.endpoint.trim();
        let query = endpoint.split_once('?').map(|(_, q)| q).unwrap_or("");
        let has_model = query.split('&').any(|pair| pair.split('=').next() == Some("model"));
        if has_model || self.model.trim().is_empty() {
            return endpoint.to_string();
        }
        let model: String = self
            .model
            .trim()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let sep = if !endpoint.contains('?') {
            "?"
        } else if endpoint.ends_with('?') || endpoint.ends_with('&') {
            ""
        } else {
            "&"
        };
        format!("{endpoint}{sep}model={model}")
    }
}

/// The OpenAI Realtime provider; opens any number of sessions, one WebSocket each.
#[derive(Debug, Clone)]
pub struct OpenAiAgent {
    config: Arc<OpenAiConfig>,
}

impl OpenAiAgent {
    /// A provider with `config`.
    pub fn new(config: OpenAiConfig) -> OpenAiAgent {
        OpenAiAgent { config: Arc::new(config) }
    }

    /// Its configuration.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }
}

impl VoiceAgent for OpenAiAgent {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn open(&self, config: SessionConfig) -> BoxFuture<'_, Result<AgentSession, AgentError>> {
        let provider = Arc::clone(&self.config);
        Box::pin(setup::open(provider, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AiProvider;

    #[test]
    fn the_model_is_added_to_the_url_unless_it_is_there() {
        let with = |endpoint: &str| OpenAiConfig { endpoint: endpoint.into(), ..OpenAiConfig::default() }.url();
        assert_eq!(OpenAiConfig::default().url(), "wss://api.openai.com/v1/realtime?model=gpt-realtime");
        assert_eq!(with("ws://127.0.0.1:9/v1/realtime?x=1"), "ws://127.0.0.1:9/v1/realtime?x=1&model=gpt-realtime");
        assert_eq!(
            with("ws://h/realtime?model=gpt-4o-realtime-preview"),
            "ws://h/realtime?model=gpt-4o-realtime-preview"
        );
        assert_eq!(with("ws://h/realtime?"), "ws://h/realtime?model=gpt-realtime");
        let odd = OpenAiConfig { model: "my model/1".into(), ..OpenAiConfig::default() };
        assert!(odd.url().ends_with("?model=my%20model%2F1"), "{}", odd.url());
    }

    #[test]
    fn the_default_has_the_public_endpoint_and_no_key_and_debug_never_shows_a_key() {
        let config = OpenAiConfig::default();
        assert_eq!((config.endpoint.as_str(), config.api_key.is_empty()), (DEFAULT_ENDPOINT, true));
        let keyed = OpenAiConfig { api_key: ApiKey::new("sk-very-secret"), ..config };
        assert!(!format!("{keyed:?}").contains("sk-very-secret"));
        assert!(!format!("{:?}", OpenAiAgent::new(keyed)).contains("sk-very-secret"));
    }

    #[test]
    fn a_stored_agent_row_becomes_a_config() {
        let stored = AiAgentConfig {
            id: 2,
            provider: AiProvider::Openai,
            enabled: true,
            endpoint: " ".into(),
            app_id: String::new(),
            api_key: ApiKey::new("sk-1"),
            voice: "marin".into(),
            instructions: "Be brief.".into(),
            greeting: String::new(),
            language: "zh-CN".into(),
        };
        let config = OpenAiConfig::from_agent_config(&stored);
        assert_eq!(config.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(config.api_key.expose(), "sk-1");
        assert_eq!((config.voice.as_deref(), config.language.as_deref()), (Some("marin"), Some("zh")));
        let bare =
            OpenAiConfig::from_agent_config(&AiAgentConfig { voice: String::new(), language: String::new(), ..stored });
        assert_eq!((bare.voice, bare.language), (None, None));
        assert_eq!(OpenAiAgent::new(OpenAiConfig::default()).name(), "openai");
    }
}
