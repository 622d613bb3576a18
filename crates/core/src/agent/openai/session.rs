//! A running OpenAI Realtime session: a task that moves caller input out and server events in
//! until either side ends it.
//!
//! The task owns the socket and does everything in turn from one `select!` (inputs, server
//! frames, the audio batch timer, the DTMF timer), so the order of events on the wire is the
//! order they happened in. Caller audio is sent in batches of [`BATCH_MS`]: fewer, larger
//! frames, at the cost of at most that much latency.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::audio::{Encoder, WireFormat};
use super::events::{self, FunctionCall, ServerEvent, Severity};
use super::setup::{close_reason, send, CLOSE_WAIT};
use super::timeline::Timeline;
use crate::agent::provider::{AgentEvent, AgentInput, AgentUsage, ProviderLink};
use crate::agent::ws::Socket;

/// Caller audio is sent once this much is buffered (or this long after its first frame).
pub const BATCH_MS: u64 = 40;

/// Keys pressed within this of each other go to the model as one message (`#` sends at once).
const DTMF_GAP: Duration = Duration::from_millis(1500);

/// What the model is told after a transfer (it is not asked to answer: the call leaves it).
const TRANSFER_OUTPUT: &str = r#"{"status":"transferring","note":"A person at the desk is taking over the call."}"#;

/// Why the loop ended.
enum End {
    /// The bridge closed the session (or stopped listening): close politely.
    Local,
    /// The session failed: say why.
    Failed(String),
}

/// What the loop woke up for.
enum Wake {
    Input(Option<AgentInput>),
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    FlushAudio,
    SendKeys,
}

/// The session's state, owned by its task.
pub(super) struct Session {
    socket: Socket,
    link: ProviderLink,
    format: WireFormat,
    encoder: Encoder,
    /// Caller audio, in wire bytes, not yet sent.
    outgoing: Vec<u8>,
    flush_at: Option<Instant>,
    /// DTMF keys not yet sent.
    keys: String,
    keys_at: Option<Instant>,
    timeline: Timeline,
    /// A PCM byte left over from the last delta.
    carry: Option<u8>,
    output_samples: u64,
    usage: AgentUsage,
    /// The interim transcript of the caller's current utterance (deltas accumulated).
    heard_so_far: String,
    /// Function calls handled (the same call comes in up to three events).
    calls_seen: HashSet<String>,
    /// Handoff reasons held until their response is done (its audio is all out by then).
    handoffs: Vec<String>,
    /// A response is under way (asked for, or created by the server): the API refuses a second
    /// `response.create` until it is done.
    responding: bool,
    /// A response was wanted (text, keys) while another was under way: asked for at its end.
    response_owed: bool,
}

impl Session {
    /// A session on `socket` (set up, its opening words asked for), feeding `link`.
    pub(super) fn new(socket: Socket, link: ProviderLink, format: WireFormat) -> Session {
        Session {
            socket,
            link,
            format,
            encoder: Encoder::new(format),
            outgoing: Vec::new(),
            flush_at: None,
            keys: String::new(),
            keys_at: None,
            timeline: Timeline::new(format.rate()),
            carry: None,
            output_samples: 0,
            usage: AgentUsage::default(),
            heard_so_far: String::new(),
            calls_seen: HashSet::new(),
            handoffs: Vec::new(),
            // The opening words were asked for.
            responding: true,
            response_owed: false,
        }
    }

    /// Runs the session: Ready, then until either side ends it, then Closed.
    pub(super) async fn run(mut self) {
        if !self.link.emit(AgentEvent::Ready).await {
            self.close_socket().await;
            return;
        }
        let end = loop {
            let wake = tokio::select! {
                input = self.link.recv() => Wake::Input(input),
                frame = self.socket.next() => Wake::Frame(frame),
                _ = sleep_until(self.flush_at), if self.flush_at.is_some() => Wake::FlushAudio,
                _ = sleep_until(self.keys_at), if self.keys_at.is_some() => Wake::SendKeys,
            };
            let step = match wake {
                Wake::Input(None) | Wake::Input(Some(AgentInput::Close)) => Err(End::Local),
                Wake::Input(Some(input)) => self.on_input(input).await,
                Wake::Frame(frame) => self.on_frame(frame).await,
                Wake::FlushAudio => self.flush_audio().await,
                Wake::SendKeys => self.send_keys().await,
            };
            if let Err(end) = step {
                break end;
            }
        };
        match end {
            End::Local => {
                self.close_socket().await;
                self.usage.output_audio_ms = self.output_ms();
                self.link.emit(AgentEvent::Usage(self.usage)).await;
            }
            End::Failed(message) => {
                tracing::warn!("OpenAI session failed: {message}");
                self.close_socket().await;
                self.link.emit(AgentEvent::Error { message, fatal: true }).await;
            }
        }
        self.link.emit(AgentEvent::Closed).await;
    }

    async fn on_input(&mut self, input: AgentInput) -> Result<(), End> {
        match input {
            AgentInput::Audio(audio) => {
                self.usage.input_audio_ms += audio.duration_ms();
                self.encoder.push(&audio, &mut self.outgoing);
                let batch =
                    self.format.rate().hz() as usize * BATCH_MS as usize / 1000 * self.format.bytes_per_sample();
                if self.outgoing.len() >= batch {
                    self.flush_audio().await?;
                } else if !self.outgoing.is_empty() && self.flush_at.is_none() {
                    self.flush_at = Some(Instant::now() + Duration::from_millis(BATCH_MS));
                }
            }
            AgentInput::Dtmf(key) => {
                self.keys.push(key);
                if key == '#' {
                    self.send_keys().await?;
                } else {
                    self.keys_at = Some(Instant::now() + DTMF_GAP);
                }
            }
            AgentInput::Text(text) => {
                self.emit(AgentEvent::UserTranscript { text: text.clone(), is_final: true }).await?;
                self.send(&events::user_text(&text)).await?;
                self.ask_response().await?;
            }
            AgentInput::Interrupted { played_ms } => {
                for cut in self.timeline.interrupted(played_ms) {
                    tracing::debug!(item = cut.item_id, audio_end_ms = cut.audio_end_ms, played_ms, "truncating");
                    self.send(&events::truncate(&cut.item_id, cut.audio_end_ms)).await?;
                }
            }
            AgentInput::Close => return Err(End::Local),
        }
        Ok(())
    }

    async fn flush_audio(&mut self) -> Result<(), End> {
        self.flush_at = None;
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let event = events::audio_append(&self.outgoing);
        self.outgoing.clear();
        self.send(&event).await
    }

    async fn send_keys(&mut self) -> Result<(), End> {
        self.keys_at = None;
        if self.keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = self.keys.chars().map(String::from).collect();
        self.keys.clear();
        let text = format!("The caller pressed {} on the phone keypad.", keys.join(" "));
        self.send(&events::user_text(&text)).await?;
        self.ask_response().await
    }

    /// Asks for a response now, or once the one under way is done.
    async fn ask_response(&mut self) -> Result<(), End> {
        if self.responding {
            self.response_owed = true;
            return Ok(());
        }
        self.responding = true;
        self.send(&events::response_create(None)).await
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), End> {
        let text = match frame {
            None => return Err(End::Failed("OpenAI closed the connection mid-session".into())),
            Some(Err(e)) => return Err(End::Failed(format!("the connection to OpenAI failed: {e}"))),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(End::Failed(format!("OpenAI closed the connection mid-session{}", close_reason(&frame))));
            }
            Some(Ok(Message::Binary(b))) => {
                return Err(End::Failed(format!(
                    "OpenAI sent a malformed frame: a binary frame ({} bytes), which the Realtime API never sends",
                    b.len()
                )));
            }
            Some(Ok(_)) => return Ok(()),
        };
        match events::parse(&text) {
            Ok(event) => self.on_event(event).await,
            Err(m) => Err(End::Failed(format!(
                "OpenAI sent a malformed frame ({m}): the stream is not the Realtime protocol SipDesk speaks"
            ))),
        }
    }

    async fn on_event(&mut self, event: ServerEvent) -> Result<(), End> {
        match event {
            ServerEvent::AudioDelta { item_id, audio } => {
                let samples = self.format.decode(&audio, &mut self.carry);
                if samples.is_empty() {
                    return Ok(());
                }
                if self.timeline.audio(&item_id, samples.len()) {
                    self.output_samples += samples.len() as u64;
                    self.emit(AgentEvent::AgentAudio { rate: self.format.rate(), samples }).await?;
                } else {
                    tracing::debug!(item_id, "dropping late audio of a reply the caller spoke over");
                }
            }
            ServerEvent::AudioDone { item_id } => {
                self.timeline.audio_done(&item_id);
                self.emit(AgentEvent::AgentAudioDone).await?;
            }
            ServerEvent::TranscriptDelta { text } => self.emit(AgentEvent::AgentTranscriptDelta { text }).await?,
            ServerEvent::TranscriptDone { text } => self.emit(AgentEvent::AgentTranscript { text }).await?,
            ServerEvent::SpeechStarted => {
                self.timeline.speech_started();
                self.emit(AgentEvent::UserSpeechStarted).await?;
            }
            ServerEvent::SpeechStopped => self.emit(AgentEvent::UserSpeechStopped).await?,
            ServerEvent::InputTranscript { text, is_final: false } => {
                if !text.is_empty() {
                    self.heard_so_far.push_str(&text);
                    let text = self.heard_so_far.clone();
                    self.emit(AgentEvent::UserTranscript { text, is_final: false }).await?;
                }
            }
            ServerEvent::InputTranscript { text, is_final: true } => {
                self.heard_so_far.clear();
                self.emit(AgentEvent::UserTranscript { text: text.trim().to_string(), is_final: true }).await?;
            }
            ServerEvent::InputTranscriptFailed { message } => {
                let message = format!("OpenAI could not transcribe the caller: {message}");
                self.emit(AgentEvent::Error { message, fatal: false }).await?;
            }
            ServerEvent::FunctionCall(call) => self.on_call(call).await?,
            ServerEvent::ResponseCreated => self.responding = true,
            ServerEvent::ResponseDone { status, usage, calls } => {
                tracing::debug!(status, "OpenAI response done");
                self.responding = false;
                for call in calls {
                    self.on_call(call).await?;
                }
                if let Some(tokens) = usage {
                    self.usage.input_tokens += tokens.input;
                    self.usage.output_tokens += tokens.output;
                }
                self.usage.output_audio_ms = self.output_ms();
                self.emit(AgentEvent::Usage(self.usage)).await?;
                if self.handoffs.is_empty() {
                    if std::mem::take(&mut self.response_owed) {
                        self.ask_response().await?;
                    }
                } else {
                    // The call leaves the agent: nothing more to ask of it.
                    self.response_owed = false;
                    for reason in std::mem::take(&mut self.handoffs) {
                        self.emit(AgentEvent::HandoffRequested { reason }).await?;
                    }
                }
            }
            // Our response.create crossed one the server started itself (after the caller's
            // turn): ask again when that one is done.
            ServerEvent::Error(e) if e.code.as_deref() == Some("conversation_already_has_active_response") => {
                tracing::debug!("OpenAI: {e}");
                self.responding = true;
                self.response_owed = true;
            }
            ServerEvent::Error(e) => match e.severity() {
                // Cancelling a response that had already ended: nothing went wrong.
                Severity::Ignore => tracing::debug!("OpenAI: {e}"),
                Severity::NonFatal => {
                    tracing::info!("OpenAI refused an event: {e}");
                    self.emit(AgentEvent::Error { message: format!("OpenAI: {e}"), fatal: false }).await?;
                }
                Severity::Fatal => return Err(End::Failed(format!("OpenAI reported an error: {e}"))),
            },
            ServerEvent::SessionCreated | ServerEvent::SessionUpdated => {}
            ServerEvent::Other(kind) => tracing::debug!("OpenAI event {kind} ignored"),
        }
        Ok(())
    }

    /// A tool call, once per call id: a transfer is answered (so the conversation stays whole)
    /// and held until its response is done; any other function is refused to the model.
    async fn on_call(&mut self, call: FunctionCall) -> Result<(), End> {
        let key =
            if call.call_id.is_empty() { format!("{}:{}", call.name, call.arguments) } else { call.call_id.clone() };
        if !self.calls_seen.insert(key) {
            return Ok(());
        }
        if call.name == events::TRANSFER_TOOL {
            self.handoffs.push(call.reason());
            self.send(&events::function_output(&call.call_id, TRANSFER_OUTPUT)).await
        } else {
            tracing::info!(name = call.name, "OpenAI called an unknown function");
            let output = format!(r#"{{"error":"there is no function named {:?}"}}"#, call.name);
            self.send(&events::function_output(&call.call_id, &output)).await?;
            self.ask_response().await
        }
    }

    fn output_ms(&self) -> u64 {
        self.output_samples * 1000 / u64::from(self.format.rate().hz())
    }

    async fn send(&mut self, event: &Value) -> Result<(), End> {
        send(&mut self.socket, event).await.map_err(End::Failed)
    }

    /// Emits an event; the bridge no longer listening ends the session.
    async fn emit(&self, event: AgentEvent) -> Result<(), End> {
        if self.link.emit(event).await {
            Ok(())
        } else {
            Err(End::Local)
        }
    }

    /// Sends a close frame and waits briefly for the server's (errors only mean it is gone).
    async fn close_socket(&mut self) {
        let socket = &mut self.socket;
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if socket.close(None).await.is_err() {
                return;
            }
            while let Some(Ok(frame)) = socket.next().await {
                if frame.is_close() {
                    break;
                }
            }
        })
        .await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}
