//! Which of the model's audio the caller really heard, so a barge-in can cut the model's
//! conversation where the caller cut it (`conversation.item.truncate`).
//!
//! The model sends its audio faster than real time and the bridge plays it paced, so when the
//! caller speaks over it, part of what was sent was never played. The bridge flushes that part
//! and reports `played_ms`: all agent audio played since the session opened. This timeline
//! lays every emitted piece of audio end to end, labelled with its conversation item, and maps
//! that one number back onto the item being heard.
//!
//! Positions are kept in samples at the session's output rate (exact; 24 kHz samples are not
//! whole microseconds) and turned into whole milliseconds, rounded down, only for the server,
//! which refuses an `audio_end_ms` beyond the item's audio.

use crate::media::frame::SampleRate;

/// Items remembered: a few turns back is plenty (older ones were heard long ago).
const MAX_ITEMS: usize = 32;

/// One truncation to send: the item, and how much of it the caller heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The assistant item to cut.
    pub item_id: String,
    /// The audio the caller heard of it, in milliseconds (the truncate's `audio_end_ms`).
    pub audio_end_ms: u64,
}

#[derive(Debug)]
struct Span {
    item_id: String,
    /// Where its audio starts on the timeline, in samples.
    start: u64,
    /// Its audio emitted, in samples.
    len: u64,
    /// The server said its audio is complete.
    done: bool,
    /// No more of its audio is wanted (the caller spoke over it); late deltas are dropped.
    closed: bool,
    /// A truncate was sent for it (or it needs none any more).
    truncated: bool,
}

/// The agent audio emitted in a session, item by item.
#[derive(Debug)]
pub struct Timeline {
    rate: u64,
    /// Samples emitted since the session opened (realigned to what was played on a barge-in).
    emitted: u64,
    spans: Vec<Span>,
    /// `emitted` when the caller started speaking: what was emitted before it was either played
    /// or flushed by the bridge; what comes after is queued afresh.
    speech_mark: Option<u64>,
}

impl Timeline {
    /// An empty timeline for audio at `rate`.
    pub fn new(rate: SampleRate) -> Timeline {
        Timeline { rate: u64::from(rate.hz()), emitted: 0, spans: Vec::new(), speech_mark: None }
    }

    /// Records `samples` of audio of `item_id` about to be emitted. False when the item was
    /// cut off by the caller: the piece is a late one and must be dropped.
    pub fn audio(&mut self, item_id: &str, samples: usize) -> bool {
        // Items do not interleave (one audio item a response, responses in turn), so a known
        // item's audio simply extends it.
        if let Some(span) = self.spans.iter_mut().rev().find(|s| s.item_id == item_id) {
            if span.closed {
                return false;
            }
            span.len += samples as u64;
        } else {
            if self.spans.len() == MAX_ITEMS {
                self.spans.remove(0);
            }
            self.spans.push(Span {
                item_id: item_id.to_string(),
                start: self.emitted,
                len: samples as u64,
                done: false,
                closed: false,
                truncated: false,
            });
        }
        self.emitted += samples as u64;
        true
    }

    /// The server finished `item_id`'s audio.
    pub fn audio_done(&mut self, item_id: &str) {
        if let Some(span) = self.spans.iter_mut().rev().find(|s| s.item_id == item_id) {
            span.done = true;
        }
    }

    /// The caller started speaking: the model (server VAD with `interrupt_response`) stops the
    /// reply being spoken, so whatever of it still arrives is not played.
    pub fn speech_started(&mut self) {
        if let Some(span) = self.spans.last_mut() {
            span.closed = true;
        }
        self.speech_mark.get_or_insert(self.emitted);
    }

    /// The bridge flushed its queue after `played_ms` of agent audio in all had played. Returns
    /// the truncations to send (each item heard in part, at most once), and realigns the
    /// timeline: the flushed audio will never play.
    pub fn interrupted(&mut self, played_ms: u64) -> Vec<Truncation> {
        let played = played_ms * self.rate / 1000;
        let mark = self.speech_mark.take().unwrap_or(self.emitted);
        let mut cuts = Vec::new();
        for span in self.spans.iter_mut().filter(|s| !s.truncated && s.start < mark) {
            let heard = played.saturating_sub(span.start).min(span.len);
            span.closed = true;
            span.truncated = true;
            if heard == span.len && span.done {
                // Heard to its end: nothing to cut.
                continue;
            }
            span.len = heard;
            cuts.push(Truncation { item_id: span.item_id.clone(), audio_end_ms: heard * 1000 / self.rate });
        }
        // Audio emitted after the caller started speaking was queued after the flush: it keeps
        // its place, moved to follow what was played.
        let after = self.emitted.saturating_sub(mark);
        for span in self.spans.iter_mut().filter(|s| s.start >= mark) {
            span.start = span.start - mark + played;
        }
        self.emitted = played + after;
        cuts
    }

    /// Agent audio emitted so far (as the bridge will have played it once its queue drains),
    /// in milliseconds.
    pub fn emitted_ms(&self) -> u64 {
        self.emitted * 1000 / self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of audio at 24 kHz, in samples.
    fn ms(ms: usize) -> usize {
        ms * 24
    }

    #[test]
    fn a_barge_in_cuts_the_item_being_heard_where_it_was_heard() {
        let mut t = Timeline::new(SampleRate::Hz24000);
        assert!(t.audio("greeting", ms(1000)));
        t.audio_done("greeting");
        assert!(t.audio("reply", ms(600)));
        assert!(t.audio("reply", ms(600)));
        t.speech_started();
        // A late piece of the reply arrives after the caller started speaking: dropped.
        assert!(!t.audio("reply", ms(200)));
        let cuts = t.interrupted(1450);
        assert_eq!(cuts, vec![Truncation { item_id: "reply".into(), audio_end_ms: 450 }]);
        assert_eq!(t.emitted_ms(), 1450);
        // A second report of the same barge-in cuts nothing more.
        assert!(t.interrupted(1450).is_empty());
    }

    #[test]
    fn the_cut_never_exceeds_what_was_received_of_the_item() {
        let mut t = Timeline::new(SampleRate::Hz24000);
        t.audio("a", ms(300));
        t.speech_started();
        // The bridge says more played than was emitted (rounding on its side).
        let cuts = t.interrupted(350);
        assert_eq!(cuts, vec![Truncation { item_id: "a".into(), audio_end_ms: 300 }]);
    }

    #[test]
    fn items_not_heard_at_all_are_cut_to_zero_and_a_finished_heard_item_is_left_alone() {
        let mut t = Timeline::new(SampleRate::Hz8000);
        t.audio("one", 8000);
        t.audio_done("one");
        t.audio("two", 4000);
        t.audio_done("two");
        t.audio("three", 4000);
        t.speech_started();
        let cuts = t.interrupted(1200);
        assert_eq!(
            cuts,
            vec![
                Truncation { item_id: "two".into(), audio_end_ms: 200 },
                Truncation { item_id: "three".into(), audio_end_ms: 0 }
            ]
        );
    }

    #[test]
    fn after_a_cut_new_audio_is_counted_from_what_was_played() {
        let mut t = Timeline::new(SampleRate::Hz24000);
        t.audio("first", ms(2000));
        t.speech_started();
        assert_eq!(t.interrupted(300)[0].audio_end_ms, 300);
        t.audio("second", ms(1000));
        t.speech_started();
        // 300 ms of the first, then 250 ms of the second.
        assert_eq!(t.interrupted(550), vec![Truncation { item_id: "second".into(), audio_end_ms: 250 }]);
    }

    #[test]
    fn audio_emitted_after_the_caller_spoke_keeps_its_place() {
        let mut t = Timeline::new(SampleRate::Hz24000);
        t.audio("first", ms(1000));
        t.speech_started();
        // A new item starts before the bridge's report comes back: queued after the flush.
        t.audio("next", ms(400));
        assert_eq!(t.interrupted(200), vec![Truncation { item_id: "first".into(), audio_end_ms: 200 }]);
        assert_eq!(t.emitted_ms(), 600);
        t.speech_started();
        assert_eq!(t.interrupted(500), vec![Truncation { item_id: "next".into(), audio_end_ms: 300 }]);
    }

    #[test]
    fn an_interruption_with_nothing_playing_cuts_nothing() {
        let mut t = Timeline::new(SampleRate::Hz24000);
        assert!(t.interrupted(0).is_empty());
        t.audio("a", ms(100));
        t.audio_done("a");
        t.speech_started();
        assert!(t.interrupted(100).is_empty());
        // Its audio is over; a stray late piece would not be played either.
        assert!(!t.audio("a", ms(20)));
    }

    #[test]
    fn only_the_last_items_are_remembered() {
        let mut t = Timeline::new(SampleRate::Hz8000);
        for i in 0..(MAX_ITEMS + 5) {
            t.audio(&format!("i{i}"), 80);
        }
        assert_eq!(t.spans.len(), MAX_ITEMS);
        assert_eq!(t.emitted_ms(), (MAX_ITEMS as u64 + 5) * 10);
    }
}
