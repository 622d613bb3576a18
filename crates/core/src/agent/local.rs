//! The local agent: offline, English, the default provider.
//!
//! Each session runs on its own thread, which owns the recogniser and does the heavy work
//! (decoding, synthesis) without touching the async runtime: caller audio → [`super::ear`]
//! (16 kHz, voice activity, pocketsphinx) → [`super::dialog`] → flite → 20 ms chunks of agent
//! audio. Replies are spoken sentence by sentence, so the first sentence's audio leaves while
//! the next is synthesised. The session ends by itself when the dialog ends (after the goodbye's
//! audio); after a handoff it stays open until the bridge closes it.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::asr::Recognizer;
use super::dialog::{Dialog, Turn};
use super::ear::{Ear, Heard};
use super::grammar::{Grammar, SpeechModel};
use super::provider::{
    AgentAudio, AgentError, AgentEvent, AgentInput, AgentSession, AgentUsage, BoxFuture, ProviderLink, SessionConfig,
    VoiceAgent,
};
use super::script::DialogScript;
use super::tts;
use super::vad::VadConfig;

/// How the local agent hears.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalAgentConfig {
    /// Where the English speech model is.
    pub model: SpeechModel,
    /// Voice activity settings (the end-of-speech pause is most of the reaction time).
    pub vad: VadConfig,
}

/// The offline agent, built once from a dialog script; opens any number of sessions.
#[derive(Clone)]
pub struct LocalAgent {
    shared: Arc<Shared>,
}

struct Shared {
    script: Arc<DialogScript>,
    grammar: Grammar,
    lexicon: String,
    config: LocalAgentConfig,
}

impl LocalAgent {
    /// An agent for `script`. Fails when a keyword or phrase is not in the English dictionary,
    /// or the model is not installed.
    pub fn new(script: DialogScript, config: LocalAgentConfig) -> Result<LocalAgent, AgentError> {
        let grammar = Grammar::for_script(&script);
        let lexicon = grammar.lexicon(&config.model)?;
        Ok(LocalAgent { shared: Arc::new(Shared { script: Arc::new(script), grammar, lexicon, config }) })
    }

    /// An agent for the shipped sample script.
    pub fn sample() -> Result<LocalAgent, AgentError> {
        LocalAgent::new(DialogScript::sample(), LocalAgentConfig::default())
    }
}

impl VoiceAgent for LocalAgent {
    fn name(&self) -> &'static str {
        "local"
    }

    fn open(&self, config: SessionConfig) -> BoxFuture<'_, Result<AgentSession, AgentError>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (session, link) = AgentSession::pair();
            let (ready_tx, ready_rx) = oneshot::channel();
            std::thread::Builder::new()
                .name("agent-local".into())
                .spawn(move || run(&shared, config, link, ready_tx))
                .map_err(|e| AgentError::Engine { engine: "local agent", message: format!("no thread: {e}") })?;
            ready_rx.await.map_err(|_| AgentError::Closed)??;
            Ok(session)
        })
    }
}

/// One session, on its own thread.
fn run(shared: &Shared, config: SessionConfig, link: ProviderLink, ready: oneshot::Sender<Result<(), AgentError>>) {
    let recognizer = match Recognizer::new(&shared.config.model, &shared.grammar, &shared.lexicon) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    let mut s = Session {
        link,
        ear: Ear::new(recognizer, shared.config.vad),
        dialog: Dialog::new(Arc::clone(&shared.script)),
        usage: AgentUsage::default(),
    };
    if !s.link.blocking_emit(AgentEvent::Ready) {
        return;
    }
    let greeting = config.greeting.unwrap_or_else(|| s.dialog.greeting().to_string());
    s.speak(&greeting);
    while let Some(input) = s.link.blocking_recv() {
        let turn = match input {
            AgentInput::Audio(audio) => {
                s.usage.input_audio_ms += audio.duration_ms();
                s.listen(&audio)
            }
            AgentInput::Dtmf(key) => s.dialog.on_dtmf(key),
            AgentInput::Text(text) => {
                s.link.blocking_emit(AgentEvent::UserTranscript { text: text.clone(), is_final: true });
                s.dialog.on_utterance(&text)
            }
            // The local agent's text is only what it said whole; nothing to truncate.
            AgentInput::Interrupted { .. } => None,
            AgentInput::Close => break,
        };
        if let Some(turn) = turn {
            if s.answer(turn) {
                break;
            }
        }
    }
    s.link.blocking_emit(AgentEvent::Usage(s.usage));
    s.link.blocking_emit(AgentEvent::Closed);
}

struct Session {
    link: ProviderLink,
    ear: Ear,
    dialog: Dialog,
    usage: AgentUsage,
}

impl Session {
    /// Passes what the ear heard on as events; the dialog's turn when an utterance ended.
    fn listen(&mut self, audio: &AgentAudio) -> Option<Turn> {
        let mut turn = None;
        for heard in self.ear.hear(audio) {
            let event = match heard {
                Heard::Started => AgentEvent::UserSpeechStarted,
                Heard::Stopped => AgentEvent::UserSpeechStopped,
                Heard::Partial(text) => AgentEvent::UserTranscript { text, is_final: false },
                Heard::Final(None) => continue,
                Heard::Unclear(guess) => {
                    // Something word-like but no sentence: say so and ask again, rather than
                    // leave the caller waiting in silence.
                    tracing::debug!("not understood (the last guess was {guess:?})");
                    turn = self.dialog.on_unclear();
                    continue;
                }
                Heard::Final(Some(text)) => {
                    turn = self.dialog.on_utterance(&text);
                    AgentEvent::UserTranscript { text, is_final: true }
                }
                Heard::Failed(e) => AgentEvent::Error { message: e.to_string(), fatal: false },
            };
            self.link.blocking_emit(event);
        }
        turn
    }

    /// Says the turn's reply and what follows it; true when the session is over.
    fn answer(&mut self, turn: Turn) -> bool {
        self.speak(&turn.reply);
        if let Some(reason) = turn.handoff {
            self.link.blocking_emit(AgentEvent::HandoffRequested { reason });
        }
        turn.end
    }

    /// Speaks `text` sentence by sentence: a transcript delta and its audio in 20 ms chunks
    /// each, then the whole transcript and the end of the audio.
    fn speak(&mut self, text: &str) {
        for (i, sentence) in sentences(text).into_iter().enumerate() {
            self.link.blocking_emit(AgentEvent::AgentTranscriptDelta { text: sentence.to_string() });
            match tts::synthesize(sentence) {
                Ok(mut speech) => {
                    // The reply starts at once; later sentences keep their pause before them.
                    if i == 0 {
                        tts::trim_leading_silence(&mut speech, 20);
                    }
                    let n = speech.rate.frame_samples();
                    self.usage.output_audio_ms += speech.samples.len() as u64 * 1000 / u64::from(speech.rate.hz());
                    for chunk in speech.samples.chunks(n) {
                        let mut samples = chunk.to_vec();
                        samples.resize(n, 0);
                        self.link.blocking_emit(AgentEvent::AgentAudio { rate: speech.rate, samples });
                    }
                }
                Err(e) => {
                    self.link.blocking_emit(AgentEvent::Error { message: e.to_string(), fatal: false });
                }
            }
        }
        self.link.blocking_emit(AgentEvent::AgentTranscript { text: text.to_string() });
        self.link.blocking_emit(AgentEvent::AgentAudioDone);
    }
}

/// `text` cut after each `.`, `?` or `!` that ends a word.
pub(crate) fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ends = matches!(b, b'.' | b'?' | b'!') && bytes.get(i + 1).is_none_or(|c| c.is_ascii_whitespace());
        if ends {
            out.push(text[start..=i].trim());
            start = i + 1;
        }
    }
    out.push(text[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cut_into_sentences() {
        assert_eq!(
            sentences("Hello. You are talking to me? Yes! 3.5 is fine"),
            vec!["Hello.", "You are talking to me?", "Yes!", "3.5 is fine"]
        );
        assert!(sentences("  ").is_empty());
    }

    #[test]
    fn a_script_with_a_word_the_dictionary_lacks_is_refused() {
        let mut script = DialogScript::sample();
        script.intents[0].keywords.push("zorblaxian".into());
        let err = LocalAgent::new(script, LocalAgentConfig::default()).err().unwrap();
        assert!(err.to_string().contains("zorblaxian"), "{err}");
    }
}
