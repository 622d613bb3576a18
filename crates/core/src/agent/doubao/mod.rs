//! The Doubao (Volcengine) realtime dialogue voice agent: a speech-to-speech model behind one
//! WebSocket speaking a binary protocol ([`frame`]).
//!
//! A session opens in steps, each answered by the server within [`HANDSHAKE_TIMEOUT`]:
//! upgrade (with the app id, access key and a fresh connect id) → StartConnection (1) →
//! ConnectionStarted (50) → StartSession (100, asking for 24 kHz s16le PCM instead of the default
//! OGG/Opus) → SessionStarted (150) → SayHello (300) when a greeting is set. Only then does
//! [`DoubaoAgent::open`] return, with [`AgentEvent::Ready`] queued first; any failure on the way
//! is an [`AgentError::Engine`] in words. The running session ([`session`]) sends the caller's
//! audio as 16 kHz TaskRequests, keeps the server fed with silence when the call sends nothing
//! (it drops a session after 10 s without audio), and turns the server's events into
//! [`AgentEvent`]s. Turn taking is the server's (server VAD): its ASRInfo is the barge-in.
//!
//! The access key is never logged nor shown in an error: [`AccessKey`] prints redacted.

pub mod frame;
mod session;
mod uplink;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use self::frame::{event, Frame};
use super::provider::{AgentError, AgentEvent, AgentSession, BoxFuture, SessionConfig, VoiceAgent};
use super::ws::{self, Socket};

/// The engine name in errors and the provider name in settings.
const ENGINE: &str = "doubao";

/// The public endpoint.
pub const DEFAULT_ENDPOINT: &str = "wss://openspeech.bytedance.com/api/v3/realtime/dialogue";
/// The resource id of the realtime dialogue service (a documented fixed value).
pub const DEFAULT_RESOURCE_ID: &str = "volc.speech.dialog";
/// The app key the documentation prints as a fixed value for this API (not a credential).
pub const DEFAULT_APP_KEY: &str = "PlgvMymc7f3tQnJ6";
/// The model version when none is configured (`O`; the documentation also lists `SC`,
/// `1.2.1.0` for O2.0 and `2.2.0.0` for SC2.0).
pub const DEFAULT_MODEL: &str = "O";
/// The bot's name when none is configured (the service's own default).
pub const DEFAULT_BOT_NAME: &str = "豆包";
/// How long each step of opening a session may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The access key (the console's "Access Token"). Its `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessKey(String);

impl AccessKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> AccessKey {
        AccessKey(key.into())
    }

    /// The key itself, for the upgrade header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "AccessKey(<empty>)" } else { "AccessKey(<redacted>)" })
    }
}

/// How to reach Doubao and what the agent sounds like.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubaoConfig {
    /// The WebSocket endpoint ([`DEFAULT_ENDPOINT`]; `ws://127.0.0.1:...` for a test server).
    pub endpoint: String,
    /// The console's APP ID (`X-Api-App-ID`).
    pub app_id: String,
    /// The console's access token (`X-Api-Access-Key`).
    pub access_key: AccessKey,
    /// `X-Api-App-Key` ([`DEFAULT_APP_KEY`]).
    pub app_key: String,
    /// `X-Api-Resource-Id` ([`DEFAULT_RESOURCE_ID`]).
    pub resource_id: String,
    /// The model version, `dialog.extra.model` ([`DEFAULT_MODEL`]).
    pub model: String,
    /// The speaker (`tts.speaker`, e.g. `zh_female_vv_jupiter_bigtts`); `None` keeps the
    /// service's default voice.
    pub voice: Option<String>,
    /// The agent's name, `dialog.bot_name` (at most 20 characters are sent).
    pub bot_name: String,
    /// The language the agent should answer in (e.g. `English`), sent as the speaking style,
    /// since the API has no language setting; `None` lets the model follow the caller.
    pub language: Option<String>,
    /// How long the caller must pause before the server ends their turn, in ms (the API
    /// allows 500 to 50000); `None` keeps the service's default (1500 ms).
    pub end_smooth_window_ms: Option<u32>,
}

impl Default for DoubaoConfig {
    fn default() -> DoubaoConfig {
        DoubaoConfig {
            endpoint: DEFAULT_ENDPOINT.into(),
            app_id: String::new(),
            access_key: AccessKey::default(),
            app_key: DEFAULT_APP_KEY.into(),
            resource_id: DEFAULT_RESOURCE_ID.into(),
            model: DEFAULT_MODEL.into(),
            voice: None,
            bot_name: DEFAULT_BOT_NAME.into(),
            language: None,
            end_smooth_window_ms: None,
        }
    }
}

impl DoubaoConfig {
    /// The StartSession payload for a conversation with `config`.
    pub fn start_session_json(&self, config: &SessionConfig) -> serde_json::Value {
        let mut tts = json!({ "audio_config": { "channel": 1, "format": "pcm_s16le", "sample_rate": 24000 } });
        if let Some(voice) = self.voice.as_deref().filter(|v| !v.is_empty()) {
            tts["speaker"] = json!(voice);
        }
        let bot_name: String = self.bot_name.chars().take(20).collect();
        let mut dialog = json!({
            "bot_name": bot_name,
            "system_role": config.instructions,
            "extra": { "model": self.model },
        });
        if let Some(language) = self.language.as_deref().filter(|l| !l.is_empty()) {
            dialog["speaking_style"] = json!(format!("Always answer in {language}."));
        }
        let mut start = json!({ "tts": tts, "dialog": dialog });
        if let Some(ms) = self.end_smooth_window_ms {
            start["asr"] =
                json!({ "extra": { "enable_custom_vad": true, "end_smooth_window_ms": ms.clamp(500, 50_000) } });
        }
        start
    }
}

/// The Doubao realtime dialogue agent; opens any number of sessions.
#[derive(Debug, Clone)]
pub struct DoubaoAgent {
    config: Arc<DoubaoConfig>,
}

impl DoubaoAgent {
    /// An agent with these settings (checked when a session opens).
    pub fn new(config: DoubaoConfig) -> DoubaoAgent {
        DoubaoAgent { config: Arc::new(config) }
    }

    /// Its settings.
    pub fn config(&self) -> &DoubaoConfig {
        &self.config
    }
}

impl VoiceAgent for DoubaoAgent {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn open(&self, config: SessionConfig) -> BoxFuture<'_, Result<AgentSession, AgentError>> {
        let settings = Arc::clone(&self.config);
        Box::pin(async move { open(&settings, &config).await })
    }
}

fn fail(message: impl Into<String>) -> AgentError {
    AgentError::Engine { engine: ENGINE, message: message.into() }
}

/// Connects, starts the connection and the session, greets, and hands the socket to the
/// session task.
async fn open(settings: &DoubaoConfig, config: &SessionConfig) -> Result<AgentSession, AgentError> {
    if settings.app_id.is_empty() || settings.access_key.is_empty() {
        return Err(fail("no app id or access key is configured"));
    }
    let connect_id = new_id();
    let headers = [
        ("X-Api-App-ID", settings.app_id.clone()),
        ("X-Api-Access-Key", settings.access_key.expose().to_string()),
        ("X-Api-Resource-Id", settings.resource_id.clone()),
        ("X-Api-App-Key", settings.app_key.clone()),
        ("X-Api-Connect-Id", connect_id.clone()),
    ];
    let (mut socket, upgrade) = ws::connect(ENGINE, &settings.endpoint, &headers).await?;
    // The log id is what Volcengine support asks for.
    tracing::info!(logid = upgrade.header("x-tt-logid").unwrap_or("-"), %connect_id, "doubao: connected");

    send(&mut socket, &Frame::client_json(event::START_CONNECTION, None, &json!({}))).await?;
    expect(&mut socket, event::CONNECTION_STARTED, "ConnectionStarted").await?;

    let session_id = new_id();
    let start = settings.start_session_json(config);
    send(&mut socket, &Frame::client_json(event::START_SESSION, Some(&session_id), &start)).await?;
    let started = expect(&mut socket, event::SESSION_STARTED, "SessionStarted").await?;
    let dialog_id = started.json().ok().and_then(|j| j["dialog_id"].as_str().map(str::to_string));
    tracing::info!(%session_id, dialog_id = dialog_id.as_deref().unwrap_or("-"), "doubao: session started");

    if let Some(greeting) = config.greeting.as_deref().filter(|g| !g.is_empty()) {
        let hello = json!({ "content": greeting });
        send(&mut socket, &Frame::client_json(event::SAY_HELLO, Some(&session_id), &hello)).await?;
    }

    let (session, link) = AgentSession::pair();
    link.emit(AgentEvent::Ready).await;
    tokio::spawn(session::run(socket, link, session_id));
    Ok(session)
}

/// Sends one frame during the handshake.
async fn send(socket: &mut Socket, frame: &Frame) -> Result<(), AgentError> {
    use futures_util::SinkExt;
    let bytes = frame.encode().map_err(|e| fail(e.to_string()))?;
    socket.send(Message::binary(bytes)).await.map_err(|e| fail(format!("the connection failed while opening: {e}")))
}

/// Reads frames until event `want` (named `name` in errors) arrives; a failure event, a
/// malformed frame, the socket closing or [`HANDSHAKE_TIMEOUT`] ends the wait with an error.
async fn expect(socket: &mut Socket, want: i32, name: &str) -> Result<Frame, AgentError> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Err(fail(format!("no {name} within {} s", HANDSHAKE_TIMEOUT.as_secs()))),
            Ok(None) => return Err(fail(format!("the server closed the connection before {name}"))),
            Ok(Some(Err(e))) => return Err(fail(format!("the connection closed before {name}: {e}"))),
            Ok(Some(Ok(message))) => message,
        };
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Close(close) => {
                let why = close.map(|c| format!(" ({} {})", u16::from(c.code), c.reason)).unwrap_or_default();
                return Err(fail(format!("the server closed the connection before {name}{why}")));
            }
            Message::Text(_) => return Err(fail(format!("the server sent text instead of {name}"))),
            _ => continue,
        };
        let frame = frame::decode(&bytes).map_err(|e| fail(format!("malformed frame instead of {name}: {e}")))?;
        if let Some(error) = session::server_error(&frame) {
            return Err(fail(error));
        }
        if frame.event == Some(want) {
            frame.json().map_err(|e| fail(format!("{name}: {e}")))?;
            return Ok(frame);
        }
        tracing::debug!(event = ?frame.event, "doubao: ignored while waiting for {name}");
    }
}

/// A random RFC 4122 version 4 id, as the service's connect and session ids are.
fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_never_shows_in_debug() {
        let config = DoubaoConfig { access_key: AccessKey::new("ak-very-secret"), ..DoubaoConfig::default() };
        let text = format!("{config:?}");
        assert!(!text.contains("ak-very-secret") && text.contains("AccessKey(<redacted>)"), "{text}");
    }

    #[test]
    fn defaults_are_the_documented_values_with_no_credentials() {
        let c = DoubaoConfig::default();
        assert_eq!(c.endpoint, "wss://openspeech.bytedance.com/api/v3/realtime/dialogue");
        assert_eq!(
            (c.resource_id.as_str(), c.app_key.as_str(), c.model.as_str()),
            ("volc.speech.dialog", DEFAULT_APP_KEY, "O")
        );
        assert!(c.app_id.is_empty() && c.access_key.is_empty());
    }

    #[test]
    fn start_session_asks_for_pcm_and_carries_the_prompt() {
        let c = DoubaoConfig {
            voice: Some("zh_male_yunzhou_jupiter_bigtts".into()),
            bot_name: "A name much longer than twenty characters".into(),
            language: Some("English".into()),
            end_smooth_window_ms: Some(100),
            ..DoubaoConfig::default()
        };
        let j = c.start_session_json(&SessionConfig { instructions: "Be brief.".into(), ..SessionConfig::default() });
        assert_eq!(j["tts"]["audio_config"], json!({"channel": 1, "format": "pcm_s16le", "sample_rate": 24000}));
        assert_eq!(j["tts"]["speaker"], "zh_male_yunzhou_jupiter_bigtts");
        assert_eq!(j["dialog"]["system_role"], "Be brief.");
        assert_eq!(j["dialog"]["bot_name"], "A name much longer t");
        assert_eq!(j["dialog"]["extra"]["model"], "O");
        assert_eq!(j["dialog"]["speaking_style"], "Always answer in English.");
        assert_eq!(j["asr"]["extra"], json!({"enable_custom_vad": true, "end_smooth_window_ms": 500}));
        let plain = DoubaoConfig::default().start_session_json(&SessionConfig::default());
        assert!(plain.get("asr").is_none() && plain["tts"].get("speaker").is_none(), "{plain}");
    }

    #[test]
    fn ids_are_version_4_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, new_id());
    }

    #[tokio::test]
    async fn missing_credentials_fail_before_connecting() {
        let err = DoubaoAgent::new(DoubaoConfig::default()).open(SessionConfig::default()).await.unwrap_err();
        assert_eq!(err.to_string(), "doubao: no app id or access key is configured");
    }
}
