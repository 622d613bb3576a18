//! What the recogniser listens for: a JSGF grammar built from the dialog script, and the
//! pronunciations of its words taken from Debian's English dictionary.
//!
//! *Choice: grammar mode, not an open language model.* On telephone audio pocketsphinx's open
//! model is slow and often wrong; a grammar of the script's phrases, its keywords and digit
//! strings decodes an utterance in tens of milliseconds and picks the right sentence. The
//! price: the caller is heard only as something the script expects, so the voice activity
//! detector, not the recogniser, has to reject noise.
//!
//! *Choice: a dictionary of just the grammar's words.* Loading the full 135,000-word dictionary
//! takes pocketsphinx about 200 ms per session; the few hundred lines the grammar needs load in
//! a few milliseconds, so a session opens at once.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use super::provider::AgentError;
use super::script::{words, DialogScript};

/// The spoken digits and the digit each stands for ("oh" is how numbers are often read).
pub const DIGIT_WORDS: [(&str, char); 11] = [
    ("zero", '0'),
    ("oh", '0'),
    ("one", '1'),
    ("two", '2'),
    ("three", '3'),
    ("four", '4'),
    ("five", '5'),
    ("six", '6'),
    ("seven", '7'),
    ("eight", '8'),
    ("nine", '9'),
];

/// Words that may come before a spoken number.
const NUMBER_LEADS: [&str; 5] = ["my number is", "the number is", "it is", "call me on", "call me at"];

/// Where Debian's pocketsphinx-en-us puts the English model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechModel {
    /// The acoustic model's folder (`-hmm`).
    pub acoustic: PathBuf,
    /// The pronunciation dictionary (`-dict`).
    pub dictionary: PathBuf,
}

impl Default for SpeechModel {
    fn default() -> SpeechModel {
        let dir = PathBuf::from("/usr/share/pocketsphinx/model/en-us");
        SpeechModel { acoustic: dir.join("en-us"), dictionary: dir.join("cmudict-en-us.dict") }
    }
}

/// A JSGF grammar and the words it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    jsgf: String,
    words: BTreeSet<String>,
}

impl Grammar {
    /// The script's phrases, each keyword on its own, and digit strings (with or without a lead
    /// such as "my number is").
    pub fn for_script(script: &DialogScript) -> Grammar {
        let sentences: Vec<&str> =
            script.intents.iter().flat_map(|i| i.phrases.iter().chain(&i.keywords)).map(String::as_str).collect();
        let digits: Vec<&str> = DIGIT_WORDS.iter().map(|(w, _)| *w).collect();
        let extra = format!("<digit> = {};\n<lead> = {};\n", digits.join(" | "), NUMBER_LEADS.join(" | "));
        let mut g = Grammar::build(&sentences, "| [<lead>] <digit>+", &extra);
        g.words.extend(digits.iter().chain(&NUMBER_LEADS).flat_map(|s| words(s)));
        g
    }

    /// Exactly these sentences (to check what a voice said against a few candidates).
    pub fn for_sentences(sentences: &[&str]) -> Grammar {
        Grammar::build(sentences, "", "")
    }

    fn build(sentences: &[&str], more: &str, rules: &str) -> Grammar {
        let mut seen = HashSet::new();
        let mut all_words = BTreeSet::new();
        let mut alternatives = Vec::new();
        for s in sentences {
            let w = words(s);
            if !w.is_empty() && seen.insert(w.clone()) {
                alternatives.push(w.join(" "));
                all_words.extend(w);
            }
        }
        let body = if alternatives.is_empty() { "<NULL>".to_string() } else { alternatives.join(" | ") };
        let jsgf = format!("#JSGF V1.0;\ngrammar sipdesk;\n{rules}public <utterance> = {body} {more};\n");
        Grammar { jsgf, words: all_words }
    }

    /// The grammar's text.
    pub fn jsgf(&self) -> &str {
        &self.jsgf
    }

    /// The pronunciation lines of its words from `model`'s dictionary (alternates included),
    /// or an error naming every word the dictionary lacks.
    pub fn lexicon(&self, model: &SpeechModel) -> Result<String, AgentError> {
        let full = std::fs::read_to_string(&model.dictionary).map_err(|e| AgentError::Engine {
            engine: "pocketsphinx",
            message: format!(
                "cannot read the dictionary {} ({e}); install pocketsphinx-en-us",
                model.dictionary.display()
            ),
        })?;
        let mut found = HashSet::new();
        let mut lines = String::new();
        for line in full.lines() {
            let Some(head) = line.split_whitespace().next() else { continue };
            // Alternate pronunciations are listed as `word(2)`.
            let word = head.split('(').next().unwrap_or(head);
            if self.words.contains(word) {
                found.insert(word);
                lines.push_str(line);
                lines.push('\n');
            }
        }
        let missing: Vec<&str> = self.words.iter().map(String::as_str).filter(|w| !found.contains(w)).collect();
        if !missing.is_empty() {
            return Err(AgentError::Script(format!(
                "not in the English dictionary, so they cannot be recognised: {}",
                missing.join(", ")
            )));
        }
        Ok(lines)
    }
}

/// The digits spoken in `text` ("five five oh one" gives `5501`), in order.
pub fn spoken_digits(text: &str) -> String {
    words(text)
        .iter()
        .flat_map(|w| {
            let spoken = DIGIT_WORDS.iter().find(|(d, _)| d == w).map(|(_, c)| *c);
            // Typed text may carry the digits themselves.
            spoken.map(|c| vec![c]).unwrap_or_else(|| w.chars().filter(char::is_ascii_digit).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_grammar_has_phrases_keywords_and_digits() {
        let g = Grammar::for_script(&DialogScript::sample());
        let jsgf = g.jsgf();
        assert!(jsgf.starts_with("#JSGF V1.0;"));
        assert!(jsgf.contains("<utterance> = i have a question about my bill |"), "{jsgf}");
        assert!(jsgf.contains("| billing |"));
        assert!(jsgf.contains("[<lead>] <digit>+;"));
        assert_eq!(jsgf.matches("public").count(), 1);
    }

    #[test]
    fn lexicon_is_cut_from_the_dictionary_and_names_missing_words() {
        let model = SpeechModel::default();
        let lex = Grammar::for_sentences(&["the bill", "human please"]).lexicon(&model).unwrap();
        assert!(lex.lines().any(|l| l.starts_with("bill ")), "{lex}");
        assert!(lex.lines().any(|l| l.starts_with("the(2) ")), "alternates kept: {lex}");
        assert!(lex.lines().count() < 10);
        let err = Grammar::for_sentences(&["the zorblaxian bill"]).lexicon(&model).unwrap_err();
        assert!(err.to_string().contains("zorblaxian"), "{err}");
        let gone = SpeechModel { dictionary: "/nonexistent.dict".into(), ..model };
        assert!(Grammar::for_sentences(&["bill"])
            .lexicon(&gone)
            .unwrap_err()
            .to_string()
            .contains("pocketsphinx-en-us"));
    }

    #[test]
    fn digits_come_from_words_and_from_typed_digits() {
        assert_eq!(spoken_digits("my number is five five oh one two"), "55012");
        assert_eq!(spoken_digits("call me on 555 12"), "55512");
        assert_eq!(spoken_digits("human please"), "");
    }
}
