//! Voice activity: where the caller's utterances start and end, with earshot (pure Rust, a small
//! neural network on 16 ms frames of 16 kHz audio).
//!
//! Speech starts after a few clearly voiced frames in a row and is handed on with the audio just
//! before it (the first syllable starts quieter than the detector's threshold); it ends after a
//! stretch without voice. The start threshold is higher than the one that keeps an utterance
//! going: earshot scores the first 100-200 ms of a new noise up to about 0.67 before it adapts,
//! while speech scores 0.8-0.98 within a few frames. That stretch is most of the agent's
//! reaction time, so it is a setting: shorter answers sooner but may cut a caller who pauses.

use std::collections::VecDeque;

use earshot::Detector;

/// Samples in one earshot frame (16 ms at 16 kHz).
const VAD_FRAME: usize = 256;
const VAD_FRAME_MS: u32 = 16;

/// How speech is told from silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Voice probability (0-1) a frame needs to count towards the start of an utterance.
    pub start_threshold: f32,
    /// Voice probability from which a frame keeps an utterance going.
    pub continue_threshold: f32,
    /// Time in a row above the start threshold that starts an utterance.
    pub start_ms: u32,
    /// Time without voice that ends one.
    pub end_silence_ms: u32,
    /// Audio kept from before the start and given with it.
    pub preroll_ms: u32,
    /// Longest utterance: past this it is ended anyway (a caller in a noisy room).
    pub max_utterance_ms: u32,
}

impl Default for VadConfig {
    fn default() -> VadConfig {
        VadConfig {
            start_threshold: 0.75,
            continue_threshold: 0.5,
            start_ms: 48,
            end_silence_ms: 400,
            preroll_ms: 320,
            max_utterance_ms: 15_000,
        }
    }
}

/// What a piece of audio changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VadEvent {
    /// An utterance started; its audio so far (with the pre-roll).
    Started(Vec<i16>),
    /// More audio of the utterance.
    Speech(Vec<i16>),
    /// The utterance ended.
    Ended,
}

/// Splits a 16 kHz stream into utterances.
pub struct Segmenter {
    config: VadConfig,
    detector: Box<Detector>,
    /// Samples waiting to make up a whole frame.
    pending: Vec<i16>,
    /// The latest audio while silent, for the pre-roll.
    preroll: VecDeque<i16>,
    in_speech: bool,
    voiced_run: u32,
    silent_run: u32,
    utterance_frames: u32,
}

impl Segmenter {
    /// A segmenter with `config`.
    pub fn new(config: VadConfig) -> Segmenter {
        Segmenter {
            config,
            detector: Detector::default_boxed(),
            pending: Vec::with_capacity(VAD_FRAME * 2),
            preroll: VecDeque::new(),
            in_speech: false,
            voiced_run: 0,
            silent_run: 0,
            utterance_frames: 0,
        }
    }

    /// True inside an utterance.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Takes 16 kHz samples (any count) and returns what they changed, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        self.pending.extend_from_slice(samples);
        let whole = self.pending.len() / VAD_FRAME * VAD_FRAME;
        let frames: Vec<i16> = self.pending.drain(..whole).collect();
        for frame in frames.chunks(VAD_FRAME) {
            self.frame(frame, &mut events);
        }
        events
    }

    fn frame(&mut self, frame: &[i16], events: &mut Vec<VadEvent>) {
        let score = self.detector.predict_i16(frame);
        let frames_for = |ms: u32| ms.div_ceil(VAD_FRAME_MS).max(1);
        if !self.in_speech {
            self.preroll.extend(frame);
            let keep = (frames_for(self.config.preroll_ms) as usize) * VAD_FRAME;
            while self.preroll.len() > keep {
                self.preroll.pop_front();
            }
            self.voiced_run = if score >= self.config.start_threshold { self.voiced_run + 1 } else { 0 };
            if self.voiced_run >= frames_for(self.config.start_ms) {
                self.in_speech = true;
                self.silent_run = 0;
                self.utterance_frames = 0;
                events.push(VadEvent::Started(self.preroll.drain(..).collect()));
            }
            return;
        }
        match events.last_mut() {
            Some(VadEvent::Speech(s)) => s.extend_from_slice(frame),
            _ => events.push(VadEvent::Speech(frame.to_vec())),
        }
        self.utterance_frames += 1;
        self.silent_run = if score >= self.config.continue_threshold { 0 } else { self.silent_run + 1 };
        if self.silent_run >= frames_for(self.config.end_silence_ms)
            || self.utterance_frames >= frames_for(self.config.max_utterance_ms)
        {
            self.in_speech = false;
            self.voiced_run = 0;
            self.detector.reset();
            events.push(VadEvent::Ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic white noise (a linear congruential generator), peak about `amp`.
    fn noise(n: usize, amp: i32, seed: u32) -> Vec<i16> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 16) as i32 % (2 * amp + 1) - amp) as i16
            })
            .collect()
    }

    #[test]
    fn silence_and_noise_never_start_an_utterance() {
        let mut vad = Segmenter::new(VadConfig::default());
        let mut events = vad.push(&vec![0; 16000 * 2]);
        for amp in [300, 3000, 12000] {
            events.extend(vad.push(&noise(16000 * 2, amp, amp as u32)));
        }
        assert!(events.is_empty(), "{events:?}");
        assert!(!vad.in_speech());
    }

    #[test]
    fn speech_starts_with_its_preroll_and_ends_after_the_pause() {
        let speech = super::super::tts::synthesize("I would like to talk to a person please.").unwrap().samples;
        let mut vad = Segmenter::new(VadConfig::default());
        let mut events = vad.push(&vec![0; 8000]);
        for chunk in speech.chunks(320) {
            events.extend(vad.push(chunk));
        }
        events.extend(vad.push(&vec![0; 16000]));
        let starts: Vec<usize> =
            events.iter().filter_map(|e| if let VadEvent::Started(p) = e { Some(p.len()) } else { None }).collect();
        assert_eq!(starts.len(), 1, "one utterance: {events:?}");
        assert!(starts[0] >= 320 * 16, "pre-roll kept: {}", starts[0]);
        assert_eq!(events.last(), Some(&VadEvent::Ended));
        let heard: usize = events.iter().map(|e| if let VadEvent::Speech(s) = e { s.len() } else { 0 }).sum();
        assert!(heard + starts[0] >= speech.len() / 2, "most of the sentence is inside: {heard}");
    }
}
