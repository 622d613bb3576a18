//! The one shape every voice agent provider has: open a session, send the caller's audio, DTMF
//! and text in, read events out.
//!
//! *Choice: a session is a pair of channels, not a trait object with methods.* Every provider
//! (the offline [`super::local::LocalAgent`], and later Doubao realtime and OpenAI Realtime over
//! a WebSocket) runs its own task or thread that reads [`AgentInput`]s from a [`ProviderLink`] and
//! writes [`AgentEvent`]s back. The call bridge only ever holds the same concrete
//! [`AgentSession`], so it drives any provider from one tokio task with `select!` on
//! [`AgentSession::recv`], and can hand the sending half ([`AgentInputs`]) to the RTP task.
//! Sending audio never waits ([`AgentInputs::send_audio`] fails with [`AgentError::Backlog`]
//! instead), as the media path must never block; DTMF, text and close wait for room, since
//! losing them would change the conversation.
//!
//! [`VoiceAgent::open`] returns a boxed future rather than being an `async fn` so that
//! `Arc<dyn VoiceAgent>` works: the provider is picked at run time from the desk's settings.

use std::future::Future;
use std::pin::Pin;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::media::frame::{Frame, SampleRate};

/// Inputs a session buffers: about 5 s of 20 ms frames, so a provider busy for a moment (a
/// speech synthesis, a reconnect) loses nothing.
const INPUT_CAPACITY: usize = 256;

/// Events a session buffers: a long reply's audio in 20 ms chunks fits.
const EVENT_CAPACITY: usize = 1024;

/// A boxed future that can move between threads (what [`VoiceAgent::open`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A voice agent provider: opens conversations.
pub trait VoiceAgent: Send + Sync {
    /// A short name for logs and settings (`local`, `openai`, `doubao`).
    fn name(&self) -> &'static str;

    /// Opens one conversation. Resolves once the provider has accepted it (models loaded,
    /// connection up); [`AgentEvent::Ready`] is then the first event, followed by the greeting.
    fn open(&self, config: SessionConfig) -> BoxFuture<'_, Result<AgentSession, AgentError>>;
}

/// What a conversation starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// What the agent is and how it behaves (a cloud model's system prompt). The local agent
    /// follows its dialog script instead and ignores this.
    pub instructions: String,
    /// The first words the agent says; `None` keeps the provider's own (the local agent's
    /// script greeting, which tells the caller they are talking to an automated assistant).
    pub greeting: Option<String>,
    /// The format the caller's audio will be sent in, so a provider that takes G.711 directly
    /// can be told so when the session starts.
    pub input: AudioFormat,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig { instructions: String::new(), greeting: None, input: AudioFormat::Pcm(SampleRate::Hz8000) }
    }
}

/// The format of a piece of caller audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// Mono 16-bit PCM at this rate.
    Pcm(SampleRate),
    /// G.711 µ-law at 8 kHz, one byte a sample.
    Mulaw,
    /// G.711 A-law at 8 kHz, one byte a sample.
    Alaw,
}

/// A piece of caller audio, carrying its format (any length; the call sends 20 ms).
#[derive(Clone, PartialEq, Eq)]
pub enum AgentAudio {
    /// Mono 16-bit PCM.
    Pcm {
        /// The samples' rate.
        rate: SampleRate,
        /// The samples.
        samples: Vec<i16>,
    },
    /// G.711 µ-law bytes at 8 kHz, passed through for providers that take them.
    Mulaw(Vec<u8>),
    /// G.711 A-law bytes at 8 kHz, passed through for providers that take them.
    Alaw(Vec<u8>),
}

impl AgentAudio {
    /// The PCM of one frame.
    pub fn from_frame(frame: &Frame) -> AgentAudio {
        AgentAudio::Pcm { rate: frame.rate(), samples: frame.samples().to_vec() }
    }

    /// Its format.
    pub fn format(&self) -> AudioFormat {
        match self {
            AgentAudio::Pcm { rate, .. } => AudioFormat::Pcm(*rate),
            AgentAudio::Mulaw(_) => AudioFormat::Mulaw,
            AgentAudio::Alaw(_) => AudioFormat::Alaw,
        }
    }

    /// How long it plays, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        match self {
            AgentAudio::Pcm { rate, samples } => samples.len() as u64 * 1000 / u64::from(rate.hz()),
            AgentAudio::Mulaw(b) | AgentAudio::Alaw(b) => b.len() as u64 / 8,
        }
    }
}

/// What a provider tells the call bridge.
#[derive(Clone, PartialEq)]
pub enum AgentEvent {
    /// The session is up and takes audio.
    Ready,
    /// The caller started speaking: the bridge stops playing the agent's audio (barge-in).
    UserSpeechStarted,
    /// The caller stopped speaking.
    UserSpeechStopped,
    /// What the caller said so far (`is_final` false) or in the end (true).
    UserTranscript {
        /// The words recognised.
        text: String,
        /// True for the utterance's final transcript.
        is_final: bool,
    },
    /// The next piece of what the agent says (a sentence, or a cloud model's text delta).
    AgentTranscriptDelta {
        /// The new text.
        text: String,
    },
    /// The whole of one agent reply, after its deltas.
    AgentTranscript {
        /// The reply's text.
        text: String,
    },
    /// A piece of the agent's voice. It arrives faster than real time: the bridge paces it.
    AgentAudio {
        /// The samples' rate.
        rate: SampleRate,
        /// Mono 16-bit PCM.
        samples: Vec<i16>,
    },
    /// The current reply's audio is complete.
    AgentAudioDone,
    /// The agent asks for a human to take the call. It comes after the audio of the reply
    /// that announces it, so the bridge plays that out before transferring.
    HandoffRequested {
        /// Why, in words an agent taking over can read (what the caller wanted, what was
        /// collected).
        reason: String,
    },
    /// What the session has used so far.
    Usage(AgentUsage),
    /// Something failed; `fatal` means the session is over ([`AgentEvent::Closed`] follows).
    Error {
        /// What went wrong.
        message: String,
        /// True when the session cannot go on.
        fatal: bool,
    },
    /// The session has ended (closed by either side, or the dialog finished); no event follows.
    Closed,
}

// Samples would flood a log or a test failure: audio shows as its format and length.
impl std::fmt::Debug for AgentAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({} ms)", self.format(), self.duration_ms())
    }
}

impl std::fmt::Debug for AgentEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentEvent::Ready => f.write_str("Ready"),
            AgentEvent::UserSpeechStarted => f.write_str("UserSpeechStarted"),
            AgentEvent::UserSpeechStopped => f.write_str("UserSpeechStopped"),
            AgentEvent::UserTranscript { text, is_final } => write!(f, "UserTranscript({text:?}, final: {is_final})"),
            AgentEvent::AgentTranscriptDelta { text } => write!(f, "AgentTranscriptDelta({text:?})"),
            AgentEvent::AgentTranscript { text } => write!(f, "AgentTranscript({text:?})"),
            AgentEvent::AgentAudio { rate, samples } => {
                write!(f, "AgentAudio({} Hz, {} samples)", rate.hz(), samples.len())
            }
            AgentEvent::AgentAudioDone => f.write_str("AgentAudioDone"),
            AgentEvent::HandoffRequested { reason } => write!(f, "HandoffRequested({reason:?})"),
            AgentEvent::Usage(u) => write!(f, "{u:?}"),
            AgentEvent::Error { message, fatal } => write!(f, "Error({message:?}, fatal: {fatal})"),
            AgentEvent::Closed => f.write_str("Closed"),
        }
    }
}

/// Audio and tokens a session has used (what a provider bills by).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentUsage {
    /// Caller audio received, in milliseconds.
    pub input_audio_ms: u64,
    /// Agent audio produced, in milliseconds.
    pub output_audio_ms: u64,
    /// Model input tokens (0 for the local agent).
    pub input_tokens: u64,
    /// Model output tokens (0 for the local agent).
    pub output_tokens: u64,
}

/// What the bridge sends a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentInput {
    /// Caller audio.
    Audio(AgentAudio),
    /// One DTMF digit: `0`-`9`, `*`, `#`, `A`-`D`.
    Dtmf(char),
    /// Text from the caller (a chat line, or a test standing in for speech).
    Text(String),
    /// The caller spoke over the agent and the bridge flushed the agent audio not yet played.
    /// `played_ms` is all the agent audio really played to the caller since the session opened
    /// (providers that keep the conversation's text in step with what was heard truncate there).
    Interrupted {
        /// Agent audio played to the caller since the session opened, in milliseconds.
        played_ms: u64,
    },
    /// End the session: the provider emits its last events and [`AgentEvent::Closed`].
    Close,
}

/// Why a session could not be opened or fed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// The session has ended; nothing more can be sent.
    #[error("the agent session is closed")]
    Closed,
    /// The provider is not keeping up with the caller's audio; this piece was dropped.
    #[error("the agent is not keeping up: caller audio dropped")]
    Backlog,
    /// Not a DTMF digit.
    #[error("{0:?} is not a DTMF digit (0-9, *, #, A-D)")]
    InvalidDigit(char),
    /// The dialog script is invalid.
    #[error("dialog script: {0}")]
    Script(String),
    /// An engine (speech recognition, speech synthesis, a cloud connection) failed.
    #[error("{engine}: {message}")]
    Engine {
        /// Which engine (`pocketsphinx`, `flite`).
        engine: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// The bridge's side of an open conversation: events out, and the inputs.
#[derive(Debug)]
pub struct AgentSession {
    inputs: AgentInputs,
    events: mpsc::Receiver<AgentEvent>,
}

impl AgentSession {
    /// A new session and the provider's end of it.
    pub fn pair() -> (AgentSession, ProviderLink) {
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (event_tx, event_rx) = mpsc::channel(EVENT_CAPACITY);
        let session = AgentSession { inputs: AgentInputs { tx: input_tx }, events: event_rx };
        (session, ProviderLink { inputs: input_rx, events: event_tx })
    }

    /// The next event; `None` once the provider is gone.
    pub async fn recv(&mut self) -> Option<AgentEvent> {
        self.events.recv().await
    }

    /// The sending half, to clone into other tasks.
    pub fn inputs(&self) -> &AgentInputs {
        &self.inputs
    }

    /// Sends caller audio without waiting (see [`AgentInputs::send_audio`]).
    pub fn send_audio(&self, audio: AgentAudio) -> Result<(), AgentError> {
        self.inputs.send_audio(audio)
    }

    /// Sends a DTMF digit.
    pub async fn send_dtmf(&self, digit: char) -> Result<(), AgentError> {
        self.inputs.send_dtmf(digit).await
    }

    /// Sends text from the caller.
    pub async fn send_text(&self, text: &str) -> Result<(), AgentError> {
        self.inputs.send_text(text).await
    }

    /// Asks the provider to end the session; events go on until [`AgentEvent::Closed`].
    pub async fn close(&self) -> Result<(), AgentError> {
        self.inputs.send(AgentInput::Close).await
    }

    /// Splits it into the sending half and the event receiver, for separate tasks.
    pub fn split(self) -> (AgentInputs, mpsc::Receiver<AgentEvent>) {
        (self.inputs, self.events)
    }
}

/// The sending half of a session; cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentInputs {
    tx: mpsc::Sender<AgentInput>,
}

impl AgentInputs {
    /// Sends caller audio. Never waits: when the provider is behind, the audio is dropped and
    /// [`AgentError::Backlog`] says so (the media path must not stall).
    pub fn send_audio(&self, audio: AgentAudio) -> Result<(), AgentError> {
        self.tx.try_send(AgentInput::Audio(audio)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AgentError::Backlog,
            mpsc::error::TrySendError::Closed(_) => AgentError::Closed,
        })
    }

    /// Sends one DTMF digit (`0`-`9`, `*`, `#`, `A`-`D`).
    pub async fn send_dtmf(&self, digit: char) -> Result<(), AgentError> {
        if !(digit.is_ascii_digit() || matches!(digit, '*' | '#' | 'A'..='D')) {
            return Err(AgentError::InvalidDigit(digit));
        }
        self.send(AgentInput::Dtmf(digit)).await
    }

    /// Sends text from the caller.
    pub async fn send_text(&self, text: &str) -> Result<(), AgentError> {
        self.send(AgentInput::Text(text.to_string())).await
    }

    /// Asks the provider to end the session.
    pub async fn close(&self) -> Result<(), AgentError> {
        self.send(AgentInput::Close).await
    }

    /// Tells the provider its audio was cut off after `played_ms` played (see
    /// [`AgentInput::Interrupted`]). Never waits, like audio: a full queue drops it.
    pub fn interrupted(&self, played_ms: u64) -> Result<(), AgentError> {
        self.tx.try_send(AgentInput::Interrupted { played_ms }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AgentError::Backlog,
            mpsc::error::TrySendError::Closed(_) => AgentError::Closed,
        })
    }

    async fn send(&self, input: AgentInput) -> Result<(), AgentError> {
        self.tx.send(input).await.map_err(|_| AgentError::Closed)
    }
}

/// The provider's side of a session: inputs in, events out. Works from a task (`async`
/// methods) or from a provider's own thread (`blocking_` methods, never inside the runtime).
#[derive(Debug)]
pub struct ProviderLink {
    inputs: mpsc::Receiver<AgentInput>,
    events: mpsc::Sender<AgentEvent>,
}

impl ProviderLink {
    /// The next input; `None` once the bridge dropped its session.
    pub async fn recv(&mut self) -> Option<AgentInput> {
        self.inputs.recv().await
    }

    /// The next input, waiting on a provider thread.
    pub fn blocking_recv(&mut self) -> Option<AgentInput> {
        self.inputs.blocking_recv()
    }

    /// Sends an event; false once the bridge stopped listening.
    pub async fn emit(&self, event: AgentEvent) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Sends an event from a provider thread, waiting for room; false once the bridge stopped
    /// listening.
    pub fn blocking_emit(&self, event: AgentEvent) -> bool {
        self.events.blocking_send(event).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inputs_and_events_cross_the_pair() {
        let (mut session, mut link) = AgentSession::pair();
        session.send_audio(AgentAudio::Mulaw(vec![0xFF; 160])).unwrap();
        session.send_dtmf('5').await.unwrap();
        assert_eq!(session.send_dtmf('x').await, Err(AgentError::InvalidDigit('x')));
        session.send_text("hello").await.unwrap();
        session.close().await.unwrap();
        assert_eq!(link.recv().await, Some(AgentInput::Audio(AgentAudio::Mulaw(vec![0xFF; 160]))));
        assert_eq!(link.recv().await, Some(AgentInput::Dtmf('5')));
        assert_eq!(link.recv().await, Some(AgentInput::Text("hello".into())));
        assert_eq!(link.recv().await, Some(AgentInput::Close));
        assert!(link.emit(AgentEvent::Ready).await);
        assert_eq!(session.recv().await, Some(AgentEvent::Ready));
        drop(link);
        assert_eq!(session.recv().await, None);
        assert_eq!(session.send_audio(AgentAudio::Alaw(vec![])), Err(AgentError::Closed));
    }

    #[test]
    fn audio_that_cannot_be_taken_is_dropped_not_waited_for() {
        let (session, _link) = AgentSession::pair();
        let frame = Frame::silence(SampleRate::Hz8000);
        let results: Vec<_> =
            (0..INPUT_CAPACITY + 1).map(|_| session.send_audio(AgentAudio::from_frame(&frame))).collect();
        assert!(results[..INPUT_CAPACITY].iter().all(Result::is_ok));
        assert_eq!(results[INPUT_CAPACITY], Err(AgentError::Backlog));
    }

    #[test]
    fn audio_knows_its_format_and_length() {
        let pcm = AgentAudio::Pcm { rate: SampleRate::Hz16000, samples: vec![0; 320] };
        assert_eq!((pcm.format(), pcm.duration_ms()), (AudioFormat::Pcm(SampleRate::Hz16000), 20));
        assert_eq!(
            (AgentAudio::Alaw(vec![0; 160]).duration_ms(), AgentAudio::Mulaw(vec![]).format()),
            (20, AudioFormat::Mulaw)
        );
        assert_eq!(format!("{pcm:?}"), "Pcm(Hz16000)(20 ms)");
        let event = AgentEvent::AgentAudio { rate: SampleRate::Hz16000, samples: vec![0; 320] };
        assert_eq!(format!("{event:?}"), "AgentAudio(16000 Hz, 320 samples)");
    }
}
