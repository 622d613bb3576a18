//! The local agent's dialog script: a TOML file an admin can edit.
//!
//! ```toml
//! greeting = "Hello. You are talking to an automated assistant. ..."  # said first
//! reprompt = "Sorry, I did not understand. ..."   # said when nothing matched
//! max_reprompts = 2                               # misunderstandings in a row before handoff
//! fallback = "Let me pass you to a person."       # said then, with the handoff
//!
//! [[intents]]
//! name = "billing"
//! keywords = ["bill", "invoice"]    # any of these words in what the caller said picks it
//! phrases = ["i have a question about my bill"]  # whole sentences the recogniser listens for
//! reply = "I can help with your bill."
//! ask = "callback_number"           # then ask for this slot (its prompt follows the reply)
//! handoff = false                   # true: ask for a human after the reply
//! end = false                       # true: the conversation ends after the reply
//! dtmf = "0"                        # optional key that picks it too
//! when = "offer_human"              # optional: only matched in this context
//! then = "some_context"             # optional: the context after the reply
//!
//! [[slots]]
//! name = "callback_number"
//! prompt = "Please say your callback number, or key it in and press the pound key."
//! min_digits = 3                    # digits come from speech (one, two, oh...) or DTMF (# ends)
//! max_digits = 15
//! filled = "Thank you. We will call you back on {callback_number}."  # {slot} is replaced
//! then = "offer_human"
//! ```
//!
//! Words are English (Debian ships only the English speech model): every word of the greeting
//! is free, but every keyword and phrase must be in the recogniser's dictionary, which
//! [`super::grammar`] checks when the agent is built. The recogniser listens only for the
//! phrases, the keywords on their own, and digit strings, which is what makes it fast and sure.

use std::collections::HashSet;

use serde::Deserialize;

use super::provider::AgentError;

/// The sample script shipped with SipDesk (see `crates/core/assets/sample_dialog.toml`).
pub const SAMPLE_SCRIPT: &str = include_str!("../../assets/sample_dialog.toml");

/// A parsed, checked dialog script.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DialogScript {
    /// Said when the session opens.
    pub greeting: String,
    /// Said when nothing the caller said matched.
    pub reprompt: String,
    /// Misunderstandings in a row after which the caller is handed to a human.
    #[serde(default = "default_max_reprompts")]
    pub max_reprompts: u32,
    /// Said with that handoff.
    #[serde(default = "default_fallback")]
    pub fallback: String,
    /// What the caller may want, in the order ties are broken.
    #[serde(default)]
    pub intents: Vec<Intent>,
    /// What the agent may collect.
    #[serde(default)]
    pub slots: Vec<Slot>,
}

/// Something the caller may want.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Its name, reported in the handoff reason.
    pub name: String,
    /// Words (or short word sequences) that pick it.
    pub keywords: Vec<String>,
    /// Whole sentences the recogniser should expect for it.
    #[serde(default)]
    pub phrases: Vec<String>,
    /// What the agent answers.
    pub reply: String,
    /// A slot to ask for after the reply.
    #[serde(default)]
    pub ask: Option<String>,
    /// Ask for a human after the reply.
    #[serde(default)]
    pub handoff: bool,
    /// End the conversation after the reply.
    #[serde(default)]
    pub end: bool,
    /// A DTMF key that picks it (when no slot is being collected).
    #[serde(default)]
    pub dtmf: Option<char>,
    /// Only matched in this context.
    #[serde(default)]
    pub when: Option<String>,
    /// The context after the reply.
    #[serde(default)]
    pub then: Option<String>,
}

/// A value the agent collects: a digit string (from speech or DTMF).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Its name; `{name}` in replies is replaced with its value.
    pub name: String,
    /// How to ask for it (also said again when the answer had no digits).
    pub prompt: String,
    /// Fewest digits accepted.
    #[serde(default = "default_min_digits")]
    pub min_digits: usize,
    /// Most digits accepted (DTMF entry completes on its own at this length).
    #[serde(default = "default_max_digits")]
    pub max_digits: usize,
    /// Said once it is filled.
    pub filled: String,
    /// The context after it is filled.
    #[serde(default)]
    pub then: Option<String>,
}

fn default_max_reprompts() -> u32 {
    2
}

fn default_fallback() -> String {
    "Let me pass you to a person.".to_string()
}

fn default_min_digits() -> usize {
    3
}

fn default_max_digits() -> usize {
    15
}

impl DialogScript {
    /// Parses and checks a script.
    pub fn from_toml(text: &str) -> Result<DialogScript, AgentError> {
        let script: DialogScript = toml::from_str(text).map_err(|e| AgentError::Script(e.to_string()))?;
        script.check().map_err(AgentError::Script)?;
        Ok(script)
    }

    /// The sample script.
    pub fn sample() -> DialogScript {
        DialogScript::from_toml(SAMPLE_SCRIPT).expect("the shipped sample script is valid")
    }

    /// The slot named `name`.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// Cross-references and limits that serde cannot express.
    fn check(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for intent in &self.intents {
            if !names.insert(intent.name.as_str()) {
                return Err(format!("intent {:?} is defined twice", intent.name));
            }
            if intent.keywords.iter().all(|k| words(k).is_empty()) {
                return Err(format!("intent {:?} has no keywords", intent.name));
            }
            if let Some(slot) = &intent.ask {
                if self.slot(slot).is_none() {
                    return Err(format!("intent {:?} asks for slot {slot:?}, which is not defined", intent.name));
                }
            }
            if intent.handoff && intent.end {
                return Err(format!("intent {:?} cannot both hand off and end", intent.name));
            }
            if let Some(d) = intent.dtmf.filter(|d| !(d.is_ascii_digit() || matches!(d, '*' | '#'))) {
                return Err(format!("intent {:?}: dtmf {d:?} is not a key (0-9, *, #)", intent.name));
            }
        }
        for slot in &self.slots {
            if slot.min_digits == 0 || slot.min_digits > slot.max_digits {
                return Err(format!("slot {:?}: need 1 <= min_digits <= max_digits", slot.name));
            }
        }
        Ok(())
    }
}

/// The lower-case words of `text`: letters, digits and apostrophes; everything else separates.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_script_parses_and_discloses_the_automated_assistant() {
        let s = DialogScript::sample();
        assert!(s.greeting.contains("automated assistant"), "{}", s.greeting);
        assert!(s.intents.iter().any(|i| i.handoff), "a transfer-to-human intent");
        assert!(s.slot("callback_number").is_some());
    }

    #[test]
    fn mistakes_are_named() {
        let base = "greeting = \"hi\"\nreprompt = \"what\"\n";
        let cases = [
            ("[[intents]]\nname = \"a\"\nkeywords = [\"x\"]\nreply = \"r\"\nask = \"nope\"\n", "slot \"nope\""),
            ("[[intents]]\nname = \"a\"\nkeywords = []\nreply = \"r\"\n", "no keywords"),
            ("[[intents]]\nname = \"a\"\nkeywords = [\"x\"]\nreply = \"r\"\ndtmf = \"x\"\n", "not a key"),
            ("[[slots]]\nname = \"n\"\nprompt = \"p\"\nfilled = \"f\"\nmin_digits = 9\nmax_digits = 3\n", "min_digits"),
            ("colour = 1\n", "unknown field"),
        ];
        for (extra, expect) in cases {
            let err = DialogScript::from_toml(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(err.contains(expect), "{err} should say {expect}");
        }
    }

    #[test]
    fn words_are_lower_case_and_keep_apostrophes() {
        assert_eq!(words("Hello, I'd like my BILL!"), vec!["hello", "i'd", "like", "my", "bill"]);
    }
}
