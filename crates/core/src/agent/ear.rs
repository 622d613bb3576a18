//! The local agent's ear: caller audio in any format → 16 kHz → voice activity → recogniser.
//!
//! Runs on the session's own thread (the recogniser is not `Send`, and decoding is the heavy
//! part). Audio is decoded while the caller speaks, so the end of an utterance costs only the
//! last few frames and the final search.

use super::asr::{Recognizer, ASR_RATE};
use super::provider::{AgentAudio, AgentError};
use super::vad::{Segmenter, VadConfig, VadEvent};
use crate::media::g711::Law;
use crate::media::rate_convert::RateConverter;

/// How often a partial transcript is looked at, in 16 kHz samples (about 300 ms of speech).
const PARTIAL_EVERY: usize = 4800;

/// What the ear made of a piece of audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// The caller started speaking.
    Started,
    /// A new best guess of the utterance so far.
    Partial(String),
    /// The caller stopped speaking.
    Stopped,
    /// What the utterance said, if the grammar matched anything.
    Final(Option<String>),
    /// Words were heard along the way (the last guess), but no whole sentence the grammar
    /// knows: the caller said something the agent did not understand.
    Unclear(String),
    /// The recogniser failed on this utterance (the session goes on).
    Failed(AgentError),
}

/// Audio conversion, voice activity and recognition for one session.
pub struct Ear {
    recognizer: Recognizer,
    vad: Segmenter,
    /// The converter to 16 kHz and the rate it converts from.
    converter: Option<(u32, RateConverter)>,
    pcm: Vec<i16>,
    at16k: Vec<i16>,
    since_partial: usize,
    /// 16 kHz samples in the utterance so far (pre-roll included).
    utterance_samples: usize,
    last_partial: Option<String>,
}

impl Ear {
    /// An ear around `recognizer`.
    pub fn new(recognizer: Recognizer, vad: VadConfig) -> Ear {
        Ear {
            recognizer,
            vad: Segmenter::new(vad),
            converter: None,
            pcm: Vec::new(),
            at16k: Vec::new(),
            since_partial: 0,
            utterance_samples: 0,
            last_partial: None,
        }
    }

    /// Listens to one piece of caller audio.
    pub fn hear(&mut self, audio: &AgentAudio) -> Vec<Heard> {
        let (rate, samples): (u32, &[i16]) = match audio {
            AgentAudio::Pcm { rate, samples } => (rate.hz(), samples),
            AgentAudio::Mulaw(bytes) | AgentAudio::Alaw(bytes) => {
                let law = if matches!(audio, AgentAudio::Mulaw(_)) { Law::Mu } else { Law::A };
                self.pcm.clear();
                self.pcm.extend(bytes.iter().map(|&b| law.decode(b)));
                (8000, &self.pcm)
            }
        };
        if self.converter.as_ref().is_none_or(|(from, _)| *from != rate) {
            self.converter = Some((rate, RateConverter::wideband(rate, ASR_RATE)));
        }
        self.at16k.clear();
        if let Some((_, converter)) = self.converter.as_mut() {
            converter.process(samples, &mut self.at16k);
        }
        let events = self.vad.push(&self.at16k);
        let mut heard = Vec::new();
        for event in events {
            let result = match event {
                VadEvent::Started(audio) => {
                    heard.push(Heard::Started);
                    self.since_partial = 0;
                    self.utterance_samples = 0;
                    self.last_partial = None;
                    self.recognizer.start().and_then(|()| self.feed(&audio, &mut heard))
                }
                VadEvent::Speech(audio) => self.feed(&audio, &mut heard),
                VadEvent::Ended => {
                    heard.push(Heard::Stopped);
                    self.recognizer.finish().map(|text| {
                        let ms = self.utterance_samples * 1000 / ASR_RATE as usize;
                        tracing::debug!(ms, partial = ?self.last_partial, "utterance heard as {text:?}");
                        heard.push(match (text, self.last_partial.take()) {
                            (None, Some(guess)) => Heard::Unclear(guess),
                            (text, _) => Heard::Final(text),
                        })
                    })
                }
            };
            if let Err(e) = result {
                heard.push(Heard::Failed(e));
            }
        }
        heard
    }

    fn feed(&mut self, audio: &[i16], heard: &mut Vec<Heard>) -> Result<(), AgentError> {
        self.recognizer.feed(audio)?;
        self.since_partial += audio.len();
        self.utterance_samples += audio.len();
        if self.since_partial >= PARTIAL_EVERY {
            self.since_partial = 0;
            let partial = self.recognizer.partial();
            if partial.is_some() && partial != self.last_partial {
                heard.push(Heard::Partial(partial.clone().unwrap_or_default()));
                self.last_partial = partial;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "ear_tests.rs"]
mod tests;
