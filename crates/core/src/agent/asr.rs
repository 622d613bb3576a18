//! Speech recognition with Debian's pocketsphinx, in grammar mode, on 16 kHz audio. The library
//! is opened the first time a recogniser is made ([`super::dylib`]).
//!
//! A [`Recognizer`] is not `Send` (pocketsphinx's decoder is a C object used from one thread):
//! each session builds its own on the thread that runs it. Audio is fed while the caller
//! speaks, so when they stop only the end of the utterance is left to decode.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::dylib::Library;
use super::grammar::{Grammar, SpeechModel};
use super::provider::AgentError;

/// The rate the English model was trained at: 8 kHz call audio must be upsampled to it first,
/// or nothing is recognised.
pub const ASR_RATE: u32 = 16000;

/// pocketsphinx's and sphinxbase's functions (Debian's pocketsphinx 5prealpha API), from the
/// library opened on first use ([`super::dylib`]).
struct Sphinx {
    args: unsafe extern "C" fn() -> *const c_void,
    parse: unsafe extern "C" fn(*mut c_void, *const c_void, i32, *const *const c_char, i32) -> *mut c_void,
    free_config: unsafe extern "C" fn(*mut c_void) -> c_int,
    init: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void) -> c_int,
    float_arg: unsafe extern "C" fn(*mut c_void, *const c_char) -> f64,
    get_logmath: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    jsgf_parse_string: unsafe extern "C" fn(*const c_char, *mut c_void) -> *mut c_void,
    jsgf_public_rule: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    jsgf_build_fsg: unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, f32) -> *mut c_void,
    jsgf_free: unsafe extern "C" fn(*mut c_void),
    fsg_free: unsafe extern "C" fn(*mut c_void) -> c_int,
    set_fsg: unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_void) -> c_int,
    set_search: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    start_utt: unsafe extern "C" fn(*mut c_void) -> c_int,
    process_raw: unsafe extern "C" fn(*mut c_void, *const i16, usize, c_int, c_int) -> c_int,
    end_utt: unsafe extern "C" fn(*mut c_void) -> c_int,
    get_hyp: unsafe extern "C" fn(*mut c_void, *mut i32) -> *const c_char,
}

/// Opens pocketsphinx (and sphinxbase behind it) and turns its log off: it goes to stderr line
/// by line, which would swamp the desk's own log.
fn load() -> Result<Sphinx, String> {
    let lib = Library::open("libpocketsphinx.so.3", "libpocketsphinx3 (libpocketsphinx-dev)")?;
    // SAFETY: the types are the C declarations of pocketsphinx.h and sphinxbase's cmd_ln.h,
    // err.h, jsgf.h and fsg_model.h; err_set_logfp accepts NULL and runs once, here, before any decoder exists.
    unsafe {
        let quiet: unsafe extern "C" fn(*mut c_void) = lib.get(c"err_set_logfp")?;
        quiet(std::ptr::null_mut());
        Ok(Sphinx {
            args: lib.get(c"ps_args")?,
            parse: lib.get(c"cmd_ln_parse_r")?,
            free_config: lib.get(c"cmd_ln_free_r")?,
            init: lib.get(c"ps_init")?,
            free: lib.get(c"ps_free")?,
            float_arg: lib.get(c"cmd_ln_float_r")?,
            get_logmath: lib.get(c"ps_get_logmath")?,
            jsgf_parse_string: lib.get(c"jsgf_parse_string")?,
            jsgf_public_rule: lib.get(c"jsgf_get_public_rule")?,
            jsgf_build_fsg: lib.get(c"jsgf_build_fsg")?,
            jsgf_free: lib.get(c"jsgf_grammar_free")?,
            fsg_free: lib.get(c"fsg_model_free")?,
            set_fsg: lib.get(c"ps_set_fsg")?,
            set_search: lib.get(c"ps_set_search")?,
            start_utt: lib.get(c"ps_start_utt")?,
            process_raw: lib.get(c"ps_process_raw")?,
            end_utt: lib.get(c"ps_end_utt")?,
            get_hyp: lib.get(c"ps_get_hyp")?,
        })
    }
}

fn sphinx() -> Result<&'static Sphinx, AgentError> {
    static SPHINX: OnceLock<Result<Sphinx, String>> = OnceLock::new();
    SPHINX.get_or_init(load).as_ref().map_err(|e| engine_error(e))
}

/// The name of the decoder's grammar search.
const SEARCH: &CStr = c"sipdesk";

/// Model loading goes one at a time: sphinxbase keeps some global state (its log, its
/// argument tables) that two threads starting decoders at once could race on.
static INIT: Mutex<()> = Mutex::new(());

/// A pocketsphinx decoder listening for one grammar.
pub struct Recognizer {
    sphinx: &'static Sphinx,
    decoder: *mut c_void,
    config: *mut c_void,
    in_utterance: bool,
}

impl Recognizer {
    /// A decoder for `grammar` with `model`; `lexicon` is [`Grammar::lexicon`]'s output.
    pub fn new(model: &SpeechModel, grammar: &Grammar, lexicon: &str) -> Result<Recognizer, AgentError> {
        let sphinx = sphinx()?;
        let _one_at_a_time = INIT.lock().unwrap_or_else(|p| p.into_inner());
        let fail = |message: String| AgentError::Engine { engine: "pocketsphinx", message };
        if !model.acoustic.is_dir() {
            return Err(fail(format!("no acoustic model at {}; install pocketsphinx-en-us", model.acoustic.display())));
        }
        // pocketsphinx reads the dictionary from a file, so the small one goes through a
        // temporary file that lives only while the decoder loads.
        let dict = LexiconFile::write(lexicon).map_err(|e| fail(format!("cannot write the lexicon: {e}")))?;
        // Beams wider than the defaults (1e-48, 1e-48, 7e-29): a grammar search is small, and
        // with the defaults a sentence spoken 2% fast (the playout stretcher shedding delay) was
        // pruned early and nothing reached the grammar's end. About 7% more decoding time.
        let (model_dir, dict_file) = (path_str(&model.acoustic)?, path_str(&dict.0)?);
        let args = [
            "-hmm",
            model_dir,
            "-dict",
            dict_file,
            "-samprate",
            "16000",
            "-beam",
            "1e-80",
            "-pbeam",
            "1e-80",
            "-wbeam",
            "1e-60",
        ];
        let c_args: Vec<CString> = args
            .iter()
            .map(|a| CString::new(*a))
            .collect::<Result<_, _>>()
            .map_err(|_| fail("a path has a NUL".into()))?;
        let argv: Vec<*const c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        // SAFETY: argv holds argc valid C strings, alive for the call (sphinxbase copies them);
        // the definitions come from the library itself.
        let config =
            unsafe { (sphinx.parse)(std::ptr::null_mut(), (sphinx.args)(), argv.len() as i32, argv.as_ptr(), 1) };
        if config.is_null() {
            return Err(fail("rejected its configuration".into()));
        }
        // SAFETY: a valid configuration; the decoder takes its own reference to it.
        let decoder = unsafe { (sphinx.init)(config) };
        let r = Recognizer { sphinx, decoder, config, in_utterance: false };
        if decoder.is_null() {
            return Err(fail("could not load the model".into()));
        }
        let jsgf = CString::new(grammar.jsgf()).map_err(|_| fail("the grammar has a NUL".into()))?;
        // SAFETY: a valid decoder and configuration.
        if !unsafe { r.load_grammar(&jsgf) } {
            return Err(fail("could not load the grammar".into()));
        }
        // SAFETY: a valid decoder that has the search just loaded.
        if unsafe { (sphinx.set_search)(r.decoder, SEARCH.as_ptr()) } != 0 {
            return Err(fail("could not use the grammar".into()));
        }
        Ok(r)
    }

    /// Compiles the JSGF grammar to a finite-state grammar and makes it the decoder's search
    /// [`SEARCH`]. This is what `ps_set_jsgf_string` does, but that one never frees the parsed
    /// grammar (about 30 kB a session, found with heaptrack); here it is freed once compiled.
    ///
    /// # Safety
    /// `self.decoder` and `self.config` are valid.
    unsafe fn load_grammar(&self, jsgf: &CStr) -> bool {
        let sx = self.sphinx;
        let grammar = (sx.jsgf_parse_string)(jsgf.as_ptr(), std::ptr::null_mut());
        if grammar.is_null() {
            return false;
        }
        let rule = (sx.jsgf_public_rule)(grammar);
        let loaded = !rule.is_null() && {
            // The language weight the decoder was configured with, as pocketsphinx uses it.
            let lw = (sx.float_arg)(self.config, c"-lw".as_ptr()) as f32;
            let fsg = (sx.jsgf_build_fsg)(grammar, rule, (sx.get_logmath)(self.decoder), lw);
            // The search keeps its own reference to the compiled grammar.
            let set = !fsg.is_null() && (sx.set_fsg)(self.decoder, SEARCH.as_ptr(), fsg) == 0;
            if !fsg.is_null() {
                (sx.fsg_free)(fsg);
            }
            set
        };
        (sx.jsgf_free)(grammar);
        loaded
    }

    /// Starts an utterance (ends one still open, dropping its result).
    pub fn start(&mut self) -> Result<(), AgentError> {
        if self.in_utterance {
            // SAFETY: a valid decoder with an utterance open.
            unsafe { (self.sphinx.end_utt)(self.decoder) };
        }
        // SAFETY: a valid decoder.
        if unsafe { (self.sphinx.start_utt)(self.decoder) } < 0 {
            return Err(engine_error("could not start an utterance"));
        }
        self.in_utterance = true;
        Ok(())
    }

    /// Feeds 16 kHz samples of the open utterance.
    pub fn feed(&mut self, samples: &[i16]) -> Result<(), AgentError> {
        if !self.in_utterance || samples.is_empty() {
            return Ok(());
        }
        // SAFETY: a valid decoder in an utterance; the slice is read for the call only.
        if unsafe { (self.sphinx.process_raw)(self.decoder, samples.as_ptr(), samples.len(), 0, 0) } < 0 {
            return Err(engine_error("could not decode audio"));
        }
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
        // SAFETY: a valid decoder with an utterance open.
        if unsafe { (self.sphinx.end_utt)(self.decoder) } < 0 {
            return Err(engine_error("could not end the utterance"));
        }
        Ok(self.hypothesis())
    }

    /// Decodes one whole utterance of 16 kHz audio.
    pub fn recognize(&mut self, samples: &[i16]) -> Result<Option<String>, AgentError> {
        self.start()?;
        self.feed(samples)?;
        self.finish()
    }

    fn hypothesis(&self) -> Option<String> {
        let mut score = 0i32;
        // SAFETY: a valid decoder; the text is owned by it and copied at once.
        let text = unsafe { (self.sphinx.get_hyp)(self.decoder, &mut score) };
        if text.is_null() {
            return None;
        }
        // SAFETY: non-null and NUL-terminated.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy().trim().to_string();
        (!text.is_empty()).then_some(text)
    }
}

impl Drop for Recognizer {
    fn drop(&mut self) {
        // SAFETY: each pointer is ours and freed once (the decoder drops its own reference to
        // the configuration; this drops ours, as pocketsphinx's examples do).
        unsafe {
            if !self.decoder.is_null() {
                (self.sphinx.free)(self.decoder);
            }
            (self.sphinx.free_config)(self.config);
        }
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
