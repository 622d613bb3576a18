//! The rule-based dialog: what the local agent answers to what the caller said or keyed.
//!
//! Pure logic over a [`DialogScript`], with no audio: an utterance (or a DTMF key) goes in, a
//! [`Turn`] (the reply, and whether to hand off or end) comes out. While a slot is being asked
//! for, digits in the utterance fill it; otherwise the intent with the most keywords in the
//! utterance wins, intents of the current context first, ties to the earlier one. Too many
//! misunderstandings in a row hand the caller to a person rather than loop.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::grammar::spoken_digits;
use super::script::{words, DialogScript, Intent};

/// The agent's answer to one caller turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// What the agent says.
    pub reply: String,
    /// The intent that matched, if one did.
    pub intent: Option<String>,
    /// Set when a human should take the call after the reply: why, for that human.
    pub handoff: Option<String>,
    /// True when the conversation is over after the reply.
    pub end: bool,
}

/// One conversation's state.
#[derive(Debug, Clone)]
pub struct Dialog {
    script: Arc<DialogScript>,
    context: Option<String>,
    /// The slot being asked for (index into the script's slots).
    asking: Option<usize>,
    slots: BTreeMap<String, String>,
    /// DTMF digits keyed so far for the slot being asked for.
    keyed: String,
    misses: u32,
    /// The last intent that was a reason for calling (for the handoff summary).
    topic: Option<String>,
    over: bool,
}

impl Dialog {
    /// A conversation following `script`.
    pub fn new(script: Arc<DialogScript>) -> Dialog {
        Dialog {
            script,
            context: None,
            asking: None,
            slots: BTreeMap::new(),
            keyed: String::new(),
            misses: 0,
            topic: None,
            over: false,
        }
    }

    /// The script's greeting.
    pub fn greeting(&self) -> &str {
        &self.script.greeting
    }

    /// The value collected for slot `name`.
    pub fn slot(&self, name: &str) -> Option<&str> {
        self.slots.get(name).map(String::as_str)
    }

    /// True once an ending intent has been answered.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Answers what the caller said; `None` once the conversation is over.
    pub fn on_utterance(&mut self, text: &str) -> Option<Turn> {
        if self.over {
            return None;
        }
        if let Some(slot) = self.asking {
            let digits = spoken_digits(text);
            if !digits.is_empty() {
                return Some(self.fill(slot, digits));
            }
        }
        match self.best_intent(&words(text)) {
            Some(i) => Some(self.apply(i)),
            None => Some(self.miss(None)),
        }
    }

    /// The caller said something that was not understood at all: ask again (or hand off after
    /// too many misses); `None` once the conversation is over.
    pub fn on_unclear(&mut self) -> Option<Turn> {
        (!self.over).then(|| self.miss(None))
    }

    /// Takes one DTMF key; a turn when it completes something (a slot entry ended by `#` or at
    /// its longest, or an intent's key). `*` clears a slot entry.
    pub fn on_dtmf(&mut self, key: char) -> Option<Turn> {
        if self.over {
            return None;
        }
        if let Some(slot) = self.asking {
            match key {
                '*' => self.keyed.clear(),
                '#' if !self.keyed.is_empty() => {
                    let digits = std::mem::take(&mut self.keyed);
                    return Some(self.fill(slot, digits));
                }
                d if d.is_ascii_digit() => {
                    self.keyed.push(d);
                    if self.keyed.len() >= self.script.slots[slot].max_digits {
                        let digits = std::mem::take(&mut self.keyed);
                        return Some(self.fill(slot, digits));
                    }
                }
                _ => {}
            }
            return None;
        }
        let script = Arc::clone(&self.script);
        let i = script.intents.iter().position(|i| i.dtmf == Some(key) && self.applies(i))?;
        Some(self.apply(i))
    }

    fn applies(&self, intent: &Intent) -> bool {
        intent.when.is_none() || intent.when == self.context
    }

    /// The intent with the most keywords in `said`: the current context's intents first.
    fn best_intent(&self, said: &[String]) -> Option<usize> {
        let score = |intent: &Intent| intent.keywords.iter().filter(|k| contains_words(said, &words(k))).count();
        let mut best: Option<(bool, usize, usize)> = None;
        for (i, intent) in self.script.intents.iter().enumerate() {
            if !self.applies(intent) {
                continue;
            }
            let s = score(intent);
            let key = (intent.when.is_some(), s);
            if s > 0 && best.is_none_or(|(c, bs, _)| key > (c, bs)) {
                best = Some((key.0, key.1, i));
            }
        }
        best.map(|(_, _, i)| i)
    }

    fn apply(&mut self, i: usize) -> Turn {
        let script = Arc::clone(&self.script);
        let intent = &script.intents[i];
        self.misses = 0;
        self.keyed.clear();
        self.context = intent.then.clone();
        self.asking = intent.ask.as_deref().and_then(|name| script.slots.iter().position(|s| s.name == name));
        if !intent.handoff && !intent.end && intent.when.is_none() {
            self.topic = Some(intent.name.clone());
        }
        let mut reply = self.render(&intent.reply);
        if let Some(slot) = self.asking {
            reply = format!("{reply} {}", script.slots[slot].prompt);
        }
        self.over = intent.end;
        let handoff =
            intent.handoff.then(|| self.summary(&format!("the caller asked for a person (intent {})", intent.name)));
        Turn { reply, intent: Some(intent.name.clone()), handoff, end: intent.end }
    }

    fn fill(&mut self, slot: usize, digits: String) -> Turn {
        let script = Arc::clone(&self.script);
        let s = &script.slots[slot];
        if digits.len() < s.min_digits || digits.len() > s.max_digits {
            let why = format!("Sorry, I got {} digits.", digits.len());
            return self.miss(Some(why));
        }
        self.slots.insert(s.name.clone(), digits);
        self.asking = None;
        self.misses = 0;
        self.context = s.then.clone();
        Turn { reply: self.render(&s.filled), intent: None, handoff: None, end: false }
    }

    /// Nothing usable: ask again, or hand off after too many misses.
    fn miss(&mut self, why: Option<String>) -> Turn {
        self.misses += 1;
        self.keyed.clear();
        if self.misses > self.script.max_reprompts {
            let reason = self.summary(&format!("the agent did not understand the caller {} times", self.misses));
            self.asking = None;
            return Turn { reply: self.script.fallback.clone(), intent: None, handoff: Some(reason), end: false };
        }
        let again = match self.asking {
            Some(slot) => self.script.slots[slot].prompt.clone(),
            None => self.script.reprompt.clone(),
        };
        let reply = why.map_or(again.clone(), |w| format!("{w} {again}"));
        Turn { reply, intent: None, handoff: None, end: false }
    }

    /// `{slot}` replaced by its digits, spaced so they are read one by one.
    fn render(&self, text: &str) -> String {
        self.slots.iter().fold(text.to_string(), |t, (name, value)| {
            let spaced: Vec<String> = value.chars().map(String::from).collect();
            t.replace(&format!("{{{name}}}"), &spaced.join(" "))
        })
    }

    /// `why`, then what the caller wanted and what was collected.
    fn summary(&self, why: &str) -> String {
        let mut parts = vec![why.to_string()];
        if let Some(topic) = &self.topic {
            parts.push(format!("reason for calling: {topic}"));
        }
        parts.extend(self.slots.iter().map(|(k, v)| format!("{k}: {v}")));
        parts.join("; ")
    }
}

/// True when `needle` occurs in `hay` as consecutive words.
fn contains_words(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dialog {
        Dialog::new(Arc::new(DialogScript::sample()))
    }

    #[test]
    fn reason_then_spoken_number_then_offer_of_a_human() {
        let mut d = sample();
        assert!(d.greeting().contains("automated assistant"));
        let t = d.on_utterance("i have a question about my bill").unwrap();
        assert_eq!(t.intent.as_deref(), Some("billing"));
        assert!(t.reply.contains("callback number"), "{}", t.reply);
        let t = d.on_utterance("my number is five five five one two three four").unwrap();
        assert_eq!(d.slot("callback_number"), Some("5551234"));
        assert!(t.reply.contains("5 5 5 1 2 3 4") && t.reply.contains("person"), "{}", t.reply);
        let t = d.on_utterance("yes").unwrap();
        assert_eq!(t.intent.as_deref(), Some("accept_human"));
        let reason = t.handoff.unwrap();
        assert!(reason.contains("billing") && reason.contains("5551234"), "{reason}");
    }

    #[test]
    fn declining_the_human_ends_the_conversation() {
        let mut d = sample();
        d.on_utterance("my internet is not working").unwrap();
        d.on_utterance("five five five one two three four").unwrap();
        let t = d.on_utterance("no thank you").unwrap();
        assert!(t.end && t.handoff.is_none());
        assert!(d.is_over() && d.on_utterance("hello").is_none() && d.on_dtmf('1').is_none());
    }

    #[test]
    fn dtmf_fills_the_slot_and_star_starts_over() {
        let mut d = sample();
        d.on_utterance("billing").unwrap();
        for k in "99*5551234".chars() {
            assert_eq!(d.on_dtmf(k), None);
        }
        let t = d.on_dtmf('#').unwrap();
        assert_eq!(d.slot("callback_number"), Some("5551234"));
        assert!(t.reply.contains("5 5 5 1 2 3 4"));
    }

    #[test]
    fn misunderstanding_reprompts_then_hands_off() {
        let mut d = sample();
        let first = d.on_utterance("the weather is nice").unwrap();
        assert_eq!((first.reply.as_str(), first.handoff.is_none()), (DialogScript::sample().reprompt.as_str(), true));
        assert!(d.on_utterance("purple").unwrap().handoff.is_none());
        let t = d.on_utterance("banana").unwrap();
        assert!(t.handoff.unwrap().contains("did not understand"));
        assert_eq!(t.reply, DialogScript::sample().fallback);
        // Speech with no sentence in it counts the same; while a number is asked, the number's
        // prompt is repeated.
        let mut d = sample();
        assert_eq!(d.on_unclear().unwrap().reply, DialogScript::sample().reprompt);
        d.on_utterance("billing").unwrap();
        assert!(d.on_unclear().unwrap().reply.contains("callback number"));
    }

    #[test]
    fn a_person_can_be_asked_for_at_any_time_even_by_key() {
        let mut d = sample();
        d.on_utterance("billing").unwrap();
        let t = d.on_utterance("human please").unwrap();
        assert_eq!(t.intent.as_deref(), Some("human"));
        assert!(t.handoff.is_some());
        let mut d = sample();
        assert_eq!(d.on_dtmf('0').unwrap().intent.as_deref(), Some("human"));
        assert_eq!(d.on_dtmf('5'), None);
    }

    #[test]
    fn a_short_number_is_asked_again() {
        let mut d = sample();
        d.on_utterance("billing").unwrap();
        let t = d.on_utterance("five five").unwrap();
        assert!(t.reply.starts_with("Sorry, I got 2 digits.") && t.reply.contains("callback number"), "{}", t.reply);
        assert_eq!(d.slot("callback_number"), None);
        assert!(d.on_utterance("yes").unwrap().intent.is_none(), "context intents wait for their context");
    }
}
