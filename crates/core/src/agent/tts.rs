//! Speech synthesis with flite's C library (Debian's flite1-dev) and its `slt` voice.
//!
//! *Choice: the library, not the `flite` program writing a WAV file.* The library returns the
//! samples in memory, with no process to start and no file to clean up, and its voice is
//! loaded once for the whole process, the first time the agent speaks ([`super::dylib`]).
//! flite's documentation does not promise that one voice can synthesise on two threads at once,
//! so a mutex makes sessions take turns; a sentence takes a few tens of milliseconds, which is
//! far below what a caller notices.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{Mutex, OnceLock};

use super::dylib::Library;
use super::provider::AgentError;
use crate::media::frame::SampleRate;

/// flite's `cst_wave`.
#[repr(C)]
struct CstWave {
    kind: *const c_char,
    sample_rate: c_int,
    num_samples: c_int,
    num_channels: c_int,
    samples: *mut i16,
}

/// flite's functions, from its libraries opened on first use ([`super::dylib`]).
struct Flite {
    text_to_wave: unsafe extern "C" fn(*const c_char, *mut c_void) -> *mut CstWave,
    delete_wave: unsafe extern "C" fn(*mut CstWave),
}

/// The process's one flite voice.
struct Voice {
    flite: Flite,
    voice: *mut c_void,
}

// SAFETY: the voice pointer is only used under the mutex that holds it.
unsafe impl Send for Voice {}

static VOICE: OnceLock<Result<Mutex<Voice>, String>> = OnceLock::new();

/// Opens flite and registers the `slt` voice (which pulls in flite, its English text analysis
/// and lexicon).
fn load_voice() -> Result<Voice, String> {
    let voice_lib = Library::open("libflite_cmu_us_slt.so.1", "libflite1 (flite1-dev)")?;
    // SAFETY: the types are flite's C declarations; init and registration run once, here,
    // before any synthesis; the library stays open for the life of the process.
    unsafe {
        let init: unsafe extern "C" fn() -> c_int = voice_lib.get(c"flite_init")?;
        let register: unsafe extern "C" fn(*const c_char) -> *mut c_void = voice_lib.get(c"register_cmu_us_slt")?;
        let flite =
            Flite { text_to_wave: voice_lib.get(c"flite_text_to_wave")?, delete_wave: voice_lib.get(c"delete_wave")? };
        init();
        let voice = register(std::ptr::null());
        if voice.is_null() {
            return Err("the slt voice did not load".into());
        }
        Ok(Voice { flite, voice })
    }
}

/// Synthesised speech: mono PCM at the voice's rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speech {
    /// The voice's rate (16 kHz for `slt`).
    pub rate: SampleRate,
    /// The samples.
    pub samples: Vec<i16>,
}

/// Speaks `text` with the `slt` voice.
pub fn synthesize(text: &str) -> Result<Speech, AgentError> {
    let fail = |message: &str| AgentError::Engine { engine: "flite", message: message.to_string() };
    let text = CString::new(text.replace('\0', " ")).map_err(|_| fail("text has a NUL"))?;
    let voice = VOICE.get_or_init(|| load_voice().map(Mutex::new)).as_ref().map_err(|e| fail(e))?;
    let voice = voice.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: a valid voice and a NUL-terminated text; the wave is read, copied and freed
    // here, while the voice's lock is held.
    unsafe {
        let wave = (voice.flite.text_to_wave)(text.as_ptr(), voice.voice);
        if wave.is_null() {
            return Err(fail("synthesis failed"));
        }
        let w = &*wave;
        let result = match (SampleRate::from_hz(w.sample_rate as u32), w.num_channels) {
            (Ok(rate), 1) if !w.samples.is_null() || w.num_samples == 0 => {
                let n = w.num_samples.max(0) as usize;
                let samples = if n == 0 { Vec::new() } else { std::slice::from_raw_parts(w.samples, n).to_vec() };
                Ok(Speech { rate, samples })
            }
            _ => Err(fail("the voice produced an unexpected format")),
        };
        (voice.flite.delete_wave)(wave);
        result
    }
}

/// Peak (-40 dBFS) under which flite's output counts as silence.
const SILENT_PEAK: u16 = 328;

/// Cuts the silence flite puts before the first word (about 200 ms) down to `keep_ms`: what
/// stands between the caller's last word and the agent's first one is time they wait.
pub fn trim_leading_silence(speech: &mut Speech, keep_ms: u32) {
    let first = speech.samples.iter().position(|s| s.unsigned_abs() >= SILENT_PEAK).unwrap_or(speech.samples.len());
    let keep = (speech.rate.hz() * keep_ms / 1000) as usize;
    speech.samples.drain(..first.saturating_sub(keep));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_silence_is_cut_to_what_is_asked() {
        let mut speech = synthesize("Hello.").unwrap();
        let before = speech.samples.len();
        let lead = speech.samples.iter().position(|s| s.unsigned_abs() >= SILENT_PEAK).unwrap();
        assert!(lead > 16000 / 10, "flite starts with {lead} samples of silence");
        trim_leading_silence(&mut speech, 20);
        let now = speech.samples.iter().position(|s| s.unsigned_abs() >= SILENT_PEAK).unwrap();
        assert_eq!((now, speech.samples.len()), (320, before - (lead - 320)));
        // Silence shorter than what is kept stays as it is.
        let mut quiet = Speech { rate: SampleRate::Hz16000, samples: vec![0; 100] };
        trim_leading_silence(&mut quiet, 20);
        assert_eq!(quiet.samples.len(), 100);
    }

    #[test]
    fn a_sentence_becomes_about_a_second_and_a_half_of_audio() {
        let speech = synthesize("Hello, how can I help you?").unwrap();
        assert_eq!(speech.rate, SampleRate::Hz16000);
        let secs = speech.samples.len() as f64 / 16000.0;
        assert!((0.8..4.0).contains(&secs), "{secs} s");
        let peak = speech.samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 3000, "audible: peak {peak}");
        assert!(synthesize("").unwrap().samples.len() < 16000);
    }
}
