//! Handing a live call to the AI voice agent and taking it back.
//!
//! The call's [`Switchboard`] decides where frames flow; the bridge task here joins it to an
//! [`AgentSession`]: caller frames go to the agent, the agent's audio is converted to the call's
//! rate and queued as 20 ms frames (the RTP tick paces them), the caller speaking flushes the
//! queue (barge-in), transcripts become `transcript` events. The call is never dropped because
//! the AI failed: an error, a closed session or 10 s without the reply the caller is waiting for
//! returns the call to the desk at once, with a `handoff` event saying why, and an alert tone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Desk, Event};
use crate::agent::doubao::{AccessKey, DoubaoAgent, DoubaoConfig};
use crate::agent::openai::{OpenAiAgent, OpenAiConfig};
use crate::agent::{
    AgentAudio, AgentError, AgentEvent, AgentInputs, AudioFormat, LocalAgent, SessionConfig, VoiceAgent,
};
use crate::media::codec::StreamResampler;
use crate::media::frame::{Frame, SampleRate};
use crate::media::g711::Law;
use crate::media::switchboard::Switchboard;
use crate::store::{AiAgentConfig, AiProvider, Speaker, TranscriptLine};

/// How long the caller may wait for the agent's voice (the greeting, or the reply to what it
/// understood) before the call goes back to the desk.
const NO_AUDIO_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running handoff: stop it to take the call back.
pub(super) struct Bridge {
    cancel: CancellationToken,
    /// Set when the call itself ended (no handoff event then, only the transcript kept).
    call_over: Arc<AtomicBool>,
    /// The agent's inputs once its session is open (DTMF heard in the call goes there).
    inputs: Arc<OnceLock<AgentInputs>>,
    done: tokio::task::JoinHandle<()>,
}

impl Bridge {
    /// True once the bridge has ended by itself (the AI gave the call back, failed, or could not
    /// start).
    pub(super) fn finished(&self) -> bool {
        self.done.is_finished()
    }

    /// Passes a digit the caller pressed to the agent (dropped while its session is opening).
    pub(super) async fn send_dtmf(&self, digit: char) {
        if let Some(inputs) = self.inputs.get() {
            let _ = inputs.send_dtmf(digit).await;
        }
    }

    /// Takes the call back; returns once the desk has it.
    pub(super) async fn stop(self) {
        self.cancel.cancel();
        let _ = self.done.await;
    }

    /// The call ended while the AI had it: closes the session and keeps its transcript.
    pub(super) async fn end(self) {
        self.call_over.store(true, Ordering::Relaxed);
        self.stop().await;
    }
}

impl Desk {
    /// Hands `call_id` to the AI: starts the bridge task, which opens the admin's default agent,
    /// switches the call's audio to it and runs until the call comes back. Opening runs in that
    /// task (a cloud session may take seconds), so the call's SIP dialog keeps being served
    /// meanwhile; if the agent cannot start, the call stays with the desk and a `handoff` event
    /// says why. `law` is the call's codec when it is G.711.
    pub(super) fn start_handoff(&self, call_id: &str, board: &Switchboard, law: Option<Law>) -> Bridge {
        // The admin's default provider (the local agent unless a cloud one was enabled and
        // chosen), with its greeting and instructions.
        let config = self.ai_agent_for_handoff().ok();
        // OpenAI takes G.711 as it is: a G.711 call's audio then crosses without resampling
        // either way (decoding and encoding G.711 again gives back the same bytes).
        let input = match (law, &config) {
            (Some(law), Some(c)) if c.provider == AiProvider::Openai && board.rate() == SampleRate::Hz8000 => {
                if law == Law::Mu {
                    AudioFormat::Mulaw
                } else {
                    AudioFormat::Alaw
                }
            }
            _ => AudioFormat::Pcm(board.rate()),
        };
        let session_config = match &config {
            Some(c) => c.session_config(input),
            None => SessionConfig { input, ..SessionConfig::default() },
        };
        let provider = config.as_ref().map_or(AiProvider::Local, |c| c.provider).as_str();
        let cancel = CancellationToken::new();
        let call_over = Arc::new(AtomicBool::new(false));
        let inputs = Arc::new(OnceLock::new());
        let (desk, id, token, board, over, opened) =
            (self.clone(), call_id.to_string(), cancel.clone(), board.clone(), call_over.clone(), inputs.clone());
        let done = tokio::spawn(async move {
            // Building the agent reads files (the local agent's dictionary): done here too.
            let opening = async { agent_for(config.as_ref())?.open(session_config).await };
            let session = tokio::select! {
                _ = token.cancelled() => {
                    // Taken back (or the call ended) before the agent was ready: the desk never
                    // lost the call.
                    if !over.load(Ordering::Relaxed) {
                        desk.emit(Event::Handoff { call_id: id, to: "human", provider, reason: None });
                    }
                    return;
                }
                opened = opening => match opened {
                    Ok(session) => session,
                    Err(e) => {
                        tracing::warn!(call_id = %id, provider, "the AI cannot take the call: {e}");
                        let reason = Some("provider_unavailable");
                        desk.emit(Event::Handoff { call_id: id, to: "human", provider, reason });
                        return;
                    }
                },
            };
            let (agent_inputs, events) = session.split();
            let _ = opened.set(agent_inputs.clone());
            let caller = board.to_agent();
            desk.emit(Event::Handoff { call_id: id.clone(), to: "ai", provider, reason: None });
            let record = Arc::new(Mutex::new(Record::default()));
            let to_agent = (agent_inputs.clone(), input);
            let reason = tokio::select! {
                _ = token.cancelled() => "takeback",
                r = run_bridge(desk.clone(), id.clone(), board.clone(), to_agent, events, caller, record.clone()) => r,
            };
            desk.save_transcript(&id, &record.lock().unwrap_or_else(|p| p.into_inner()));
            // Whatever ended it, the desk has the call from the next frame on.
            board.to_desk();
            let _ = agent_inputs.close().await;
            if over.load(Ordering::Relaxed) {
                return;
            }
            desk.give_back(id, provider, reason);
        });
        Bridge { cancel, call_over, inputs, done }
    }

    /// Tells the desk the call is back with it and why; hangs up when the agent finished the
    /// call, and alerts whoever is at the desk when the call came back by itself.
    fn give_back(&self, id: String, provider: &'static str, reason: &'static str) {
        tracing::info!(call_id = %id, reason, "the call is back with the desk");
        let failed = !matches!(reason, "takeback" | "ai_requested_human" | "ai_finished");
        let reason_given = (reason != "takeback").then_some(reason);
        self.emit(Event::Handoff { call_id: id.clone(), to: "human", provider, reason: reason_given });
        if reason == "ai_finished" {
            // The agent said goodbye: the call is over.
            self.inner.calls.command(&id, super::CallCommand::Hangup);
        } else if reason != "takeback" {
            // Alert whoever is at the desk: the call is theirs again (failed: 3 beeps' worth).
            // The alert plays on its own: the bridge is over, and the desk may hand the call to
            // the AI again at once.
            let tone = super::tones::play(&self.inner.audio, crate::media::tone::ToneSpec::call_waiting());
            tokio::spawn(async move {
                let _tone = tone;
                tokio::time::sleep(std::time::Duration::from_millis(if failed { 3000 } else { 400 })).await;
            });
        }
    }
}

/// The voice agent a handoff opens: the stored configuration's provider (the local agent when
/// none is stored).
fn agent_for(config: Option<&AiAgentConfig>) -> Result<Box<dyn VoiceAgent>, AgentError> {
    Ok(match config.map(|c| (c.provider, c)) {
        Some((AiProvider::Openai, c)) => Box::new(OpenAiAgent::new(OpenAiConfig::from_agent_config(c))),
        Some((AiProvider::Doubao, c)) => Box::new(DoubaoAgent::new(doubao_config(c))),
        Some((AiProvider::Local, _)) | None => Box::new(LocalAgent::sample()?),
    })
}

/// Doubao's settings from its stored row. The API has no language setting, only a speaking
/// style in words, so a language tag becomes the language's English name.
fn doubao_config(stored: &AiAgentConfig) -> DoubaoConfig {
    let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let language = non_empty(&stored.language).map(|tag| {
        match tag.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase().as_str() {
            "en" => "English".to_string(),
            "zh" => "Chinese".to_string(),
            _ => tag,
        }
    });
    DoubaoConfig {
        endpoint: non_empty(&stored.endpoint).unwrap_or_else(|| DoubaoConfig::default().endpoint),
        app_id: stored.app_id.trim().to_string(),
        access_key: AccessKey::new(stored.api_key.expose()),
        voice: non_empty(&stored.voice),
        language,
        ..DoubaoConfig::default()
    }
}

/// Runs until the agent gives the call back or fails; the desk then has the call again.
async fn run_bridge(
    desk: Desk,
    call_id: String,
    board: Switchboard,
    (inputs, input): (AgentInputs, AudioFormat),
    mut events: mpsc::Receiver<AgentEvent>,
    mut caller: mpsc::UnboundedReceiver<Frame>,
    record: Arc<Mutex<Record>>,
) -> &'static str {
    let note = |speaker: Speaker, text: &str| {
        let ts_ms = super::events::now_ms() as i64;
        record.lock().unwrap_or_else(|p| p.into_inner()).lines.push(TranscriptLine {
            speaker,
            text: text.to_string(),
            ts_ms,
        });
    };
    let mut to_call: Option<(SampleRate, StreamResampler, Vec<i16>)> = None;
    let mut waiting_since = Some(tokio::time::Instant::now());
    let mut handoff_after_audio = false;
    let mut finished = false;
    let mut dropped = 0u64;
    let reason = loop {
        let deadline = waiting_since.map(|t| t + NO_AUDIO_LIMIT);
        tokio::select! {
            frame = caller.recv() => match frame {
                Some(f) => match inputs.send_audio(caller_audio(&f, input)) {
                    Ok(()) => {}
                    // A provider that falls behind drops audio rather than stall the call.
                    Err(AgentError::Backlog) => {
                        dropped += 1;
                        if dropped.is_power_of_two() {
                            tracing::warn!(call_id, dropped, "the agent is behind: caller audio dropped");
                        }
                    }
                    // The agent stopped listening (it said goodbye, or it died): what it still
                    // has to say is queued as events, which end with `Closed` or with nothing,
                    // so the events decide, not this frame.
                    Err(AgentError::Closed) => {}
                    Err(_) if !finished => break "provider_error",
                    Err(_) => {}
                },
                None => break "takeback",
            },
            ev = events.recv(), if !finished => {
                let Some(ev) = ev else { break "provider_closed" };
                match ev {
                    AgentEvent::AgentAudio { rate, samples } => {
                        waiting_since = None;
                        queue_audio(&board, &mut to_call, rate, &samples);
                    }
                    AgentEvent::UserSpeechStarted => {
                        let dropped = board.flush();
                        if let Some((_, _, pending)) = to_call.as_mut() {
                            pending.clear();
                        }
                        tracing::debug!(call_id, dropped, "barge-in: agent audio flushed");
                        // Only what the caller heard stays in the provider's conversation.
                        let _ = inputs.interrupted(board.played_ms());
                    }
                    AgentEvent::UserTranscript { text, is_final } => {
                        // The caller said something the agent understood: a reply is due.
                        if is_final {
                            waiting_since = Some(tokio::time::Instant::now());
                            note(Speaker::Caller, &text);
                        }
                        desk.emit(Event::Transcript { call_id: call_id.clone(), speaker: "caller", text, is_final });
                    }
                    AgentEvent::AgentTranscript { text } => {
                        note(Speaker::Ai, &text);
                        desk.emit(Event::Transcript { call_id: call_id.clone(), speaker: "ai", text, is_final: true });
                    }
                    AgentEvent::AgentTranscriptDelta { text } => desk.emit(Event::Transcript {
                        call_id: call_id.clone(), speaker: "ai", text, is_final: false,
                    }),
                    AgentEvent::HandoffRequested { reason } => {
                        tracing::info!(call_id, "the agent asks for a human: {reason}");
                        record.lock().unwrap_or_else(|p| p.into_inner()).summary = Some(reason.clone());
                        handoff_after_audio = true;
                    }
                    AgentEvent::Error { message, fatal } => {
                        tracing::warn!(call_id, fatal, "agent error: {message}");
                        if fatal {
                            break "provider_error";
                        }
                    }
                    // A clean close is the agent ending the conversation (its goodbye is queued):
                    // the call ends once that has played. A failure comes as a fatal Error.
                    AgentEvent::Closed => finished = true,
                    AgentEvent::Ready
                    | AgentEvent::UserSpeechStopped
                    | AgentEvent::AgentAudioDone
                    | AgentEvent::Usage(_) => {}
                }
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await },
                if deadline.is_some() => break "provider_silent",
            // The agent's goodbye or "please hold" plays out before the desk takes over.
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)),
                if handoff_after_audio && board.queued() == 0 => break "ai_requested_human",
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)),
                if finished && !handoff_after_audio && board.queued() == 0 => break "ai_finished",
        }
    };
    reason
}

/// What a handoff leaves in the call history: the final lines and the agent's summary.
#[derive(Default)]
struct Record {
    lines: Vec<TranscriptLine>,
    summary: Option<String>,
}

impl Desk {
    /// Adds this handoff's transcript to the call's history row (a call may be handed over more
    /// than once: lines accumulate).
    fn save_transcript(&self, call_id: &str, record: &Record) {
        if record.lines.is_empty() && record.summary.is_none() {
            return;
        }
        let previous = self.history_list(500).ok().and_then(|h| h.into_iter().find(|r| r.call_id == call_id));
        let mut lines = previous.as_ref().map(|r| r.transcript.clone()).unwrap_or_default();
        lines.extend(record.lines.iter().cloned());
        // Without the agent's own summary, the caller's requests say what the call was about.
        let summary = record.summary.clone().or_else(|| previous.and_then(|r| r.summary)).unwrap_or_else(|| {
            let asked: Vec<&str> =
                lines.iter().filter(|l| l.speaker == Speaker::Caller).map(|l| l.text.as_str()).collect();
            if asked.is_empty() {
                String::new()
            } else {
                format!("caller said: {}", asked.join("; "))
            }
        });
        if let Err(e) = self.with_store_mut(|s| s.set_call_transcript(call_id, &lines, &summary)) {
            tracing::warn!(call_id, "transcript not saved: {}", e.message);
        }
    }
}

/// A caller frame in the session's input format.
fn caller_audio(frame: &Frame, input: AudioFormat) -> AgentAudio {
    let law = match input {
        AudioFormat::Mulaw => Law::Mu,
        AudioFormat::Alaw => Law::A,
        AudioFormat::Pcm(_) => return AgentAudio::from_frame(frame),
    };
    let mut bytes = vec![0u8; frame.samples().len()];
    law.encode_into(frame.samples(), &mut bytes);
    if law == Law::Mu {
        AgentAudio::Mulaw(bytes)
    } else {
        AgentAudio::Alaw(bytes)
    }
}

/// Converts agent audio to the call's rate and queues it as whole 20 ms frames.
fn queue_audio(
    board: &Switchboard,
    state: &mut Option<(SampleRate, StreamResampler, Vec<i16>)>,
    rate: SampleRate,
    samples: &[i16],
) {
    if state.as_ref().is_none_or(|(r, _, _)| *r != rate) {
        *state = Some((rate, StreamResampler::new(rate, board.rate()), Vec::new()));
    }
    let Some((rate, resampler, pending)) = state.as_mut() else { return };
    pending.extend_from_slice(samples);
    let n = rate.frame_samples();
    while pending.len() >= n {
        let mut out = Frame::silence(board.rate());
        resampler.process(&pending[..n], out.samples_mut());
        pending.drain(..n);
        board.queue(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_caller_audio_crosses_byte_for_byte() {
        // What the call decoded from the wire encodes back to the very bytes received.
        let wire: Vec<u8> = (0..160u16).map(|i| (i * 37 % 256) as u8).collect();
        for (law, input) in [(Law::Mu, AudioFormat::Mulaw), (Law::A, AudioFormat::Alaw)] {
            let mut frame = Frame::silence(SampleRate::Hz8000);
            law.decode_into(&wire, frame.samples_mut());
            match (caller_audio(&frame, input), law) {
                (AgentAudio::Mulaw(bytes), Law::Mu) | (AgentAudio::Alaw(bytes), Law::A) => assert_eq!(bytes, wire),
                (other, _) => panic!("{other:?}"),
            }
        }
        let frame = Frame::silence(SampleRate::Hz8000);
        assert_eq!(caller_audio(&frame, AudioFormat::Pcm(SampleRate::Hz8000)), AgentAudio::from_frame(&frame));
    }
}
