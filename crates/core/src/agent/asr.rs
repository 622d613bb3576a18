//! Speech recognition with Debian's pocketsphinx, in grammar mode, on 16 kHz audio.
//!
//! A [`Recognizer`] is not `Send` (pocketsphinx's decoder is a C object used from one thread):
//! each session builds its own on the thread that runs it. Audio is fed while the caller
//! speaks, so when they stop only the end of the utterance is left to decode.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use pocketsphinx::{CmdLn, PsDecoder, PsDecoderSearchExt};

use super::grammar::{Grammar, SpeechModel};
use super::provider::AgentError;

/// The rate the English model was trained at: 8 kHz call audio must be upsampled to it first,
/// or nothing is recognised.
pub const ASR_RATE: u32 = 16000;

extern "C" {
    /// sphinxbase's log switch (linked with pocketsphinx): NULL turns its logging off.
    fn err_set_logfp(stream: *mut c_void);
}

/// Model loading goes one at a time: sphinxbase keeps some global state (its log, its
/// argument tables) that two threads starting decoders at once could race on.
static INIT: Mutex<()> = Mutex::new(());

/// A pocketsphinx decoder listening for one grammar.
pub struct Recognizer {
    decoder: PsDecoder,
    in_utterance: bool,
}

impl Recognizer {
    /// A decoder for `grammar` with `model`; `lexicon` is [`Grammar::lexicon`]'s output.
    pub fn new(model: &SpeechModel, grammar: &Grammar, lexicon: &str) -> Result<Recognizer, AgentError> {
        static QUIET: Once = Once::new();
        // Its log goes to stderr line by line, which would swamp the desk's own log.
        // SAFETY: sphinxbase accepts NULL here; done once, before any decoder exists.
        QUIET.call_once(|| unsafe { err_set_logfp(std::ptr::null_mut()) });
        let _one_at_a_time = INIT.lock().unwrap_or_else(|p| p.into_inner());
        let fail = |message: String| AgentError::Engine { engine: "pocketsphinx", message };
        if !model.acoustic.is_dir() {
            return Err(fail(format!("no acoustic model at {}; install pocketsphinx-en-us", model.acoustic.display())));
        }
        // pocketsphinx reads the dictionary from a file, so the small one goes through a
        // temporary file that lives only while the decoder loads.
        let dict = LexiconFile::write(lexicon).map_err(|e| fail(format!("cannot write the lexicon: {e}")))?;
        let args = ["-hmm", path_str(&model.acoustic)?, "-dict", path_str(&dict.0)?, "-samprate", "16000"];
        let config = CmdLn::init(true, &args).map_err(|_| fail("rejected its configuration".into()))?;
        let mut decoder = PsDecoder::init(config);
        decoder
            .set_jsgf_string("sipdesk", grammar.jsgf())
            .and_then(|()| decoder.set_search("sipdesk"))
            .map_err(|_| fail("could not load the grammar".into()))?;
        Ok(Recognizer { decoder, in_utterance: false })
    }

    /// Starts an utterance (ends one still open, dropping its result).
    pub fn start(&mut self) -> Result<(), AgentError> {
        if self.in_utterance {
            let _ = self.decoder.end_utt();
        }
        self.decoder.start_utt(None).map_err(|_| engine_error("could not start an utterance"))?;
        self.in_utterance = true;
        Ok(())
    }

    /// Feeds 16 kHz samples of the open utterance.
    pub fn feed(&mut self, samples: &[i16]) -> Result<(), AgentError> {
        if !self.in_utterance || samples.is_empty() {
            return Ok(());
        }
        self.decoder.process_raw(samples, false, false).map_err(|_| engine_error("could not decode audio"))?;
        Ok(())
    }

    /// The best guess so far in the open utterance, if any words.
    pub fn partial(&self) -> Option<String> {
        self.in_utterance.then(|| self.hypothesis()).flatten()
    }

    /// Ends the utterance and returns what was said, if the grammar matched anything.
    pub fn finish(&mut self) -> Result<Option<String>, AgentError> {
        if !self.in_utterance {
            return Ok(None);
        }
        self.in_utterance = false;
        self.decoder.end_utt().map_err(|_| engine_error("could not end the utterance"))?;
        Ok(self.hypothesis())
    }

    /// Decodes one whole utterance of 16 kHz audio.
    pub fn recognize(&mut self, samples: &[i16]) -> Result<Option<String>, AgentError> {
        self.start()?;
        self.feed(samples)?;
        self.finish()
    }

    fn hypothesis(&self) -> Option<String> {
        self.decoder.get_hyp().map(|(text, _, _)| text.trim().to_string()).filter(|t| !t.is_empty())
    }
}

fn engine_error(message: &str) -> AgentError {
    AgentError::Engine { engine: "pocketsphinx", message: message.to_string() }
}

fn path_str(p: &std::path::Path) -> Result<&str, AgentError> {
    p.to_str().ok_or_else(|| engine_error("model paths must be UTF-8"))
}

/// A temporary dictionary file, removed when dropped.
struct LexiconFile(std::path::PathBuf);

impl LexiconFile {
    fn write(text: &str) -> std::io::Result<LexiconFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sipdesk-lexicon-{}-{n}.dict", std::process::id()));
        std::fs::write(&path, text)?;
        Ok(LexiconFile(path))
    }
}

impl Drop for LexiconFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
