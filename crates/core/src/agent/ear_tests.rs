//! The ear on phone audio: one spoken question, through µ-law at 8 kHz, started at different
//! points of the 20 ms frames and played out at the speeds the playout stretcher uses. Where the
//! caller starts speaking within a frame is chance on a real call, and so is whether the jitter
//! buffer is shedding delay at that moment; what the recogniser makes of the question must depend
//! on neither. (With pocketsphinx's default beams, 2% faster lost the sentence at 3 of 5 offsets.)

use super::*;
use crate::agent::grammar::{Grammar, SpeechModel};
use crate::agent::script::DialogScript;
use crate::agent::tts;
use crate::media::frame::SampleRate;
use crate::media::playout::Stretcher;

/// The question flite speaks, at 8 kHz, after `lead` samples of silence and before a second.
fn phone_question(text: &str, lead: usize) -> Vec<u8> {
    let speech = tts::synthesize(text).unwrap();
    let at8k = crate::media::resample::resample(&speech.samples, speech.rate.hz(), 8000);
    let mut audio = vec![0i16; lead];
    audio.extend(at8k);
    audio.resize(audio.len() + 8000, 0);
    audio.iter().map(|&s| Law::Mu.encode(s)).collect()
}

#[test]
fn a_question_is_heard_the_same_wherever_it_starts_and_at_any_playout_speed() {
    let script = DialogScript::sample();
    let grammar = Grammar::for_script(&script);
    let model = SpeechModel::default();
    let lexicon = grammar.lexicon(&model).unwrap();
    let mut wrong = Vec::new();
    for ratio in [1.0, 1.02, 0.98] {
        for offset in [0, 64, 128] {
            let pcm: Vec<i16> = phone_question("I have a question about my bill", 4000 + offset)
                .iter()
                .map(|&b| Law::Mu.decode(b))
                .collect();
            let mut ear = Ear::new(Recognizer::new(&model, &grammar, &lexicon).unwrap(), VadConfig::default());
            let (mut stretcher, mut frames, mut out) = (Stretcher::new(160), pcm.chunks(160), vec![0i16; 160]);
            let mut finals = Vec::new();
            for _ in 0..pcm.len() / 160 {
                stretcher.produce(&mut out, ratio, |b: &mut [i16]| match frames.next() {
                    Some(f) => b[..f.len()].copy_from_slice(f),
                    None => b.fill(0),
                });
                let heard = ear.hear(&AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: out.clone() });
                finals.extend(heard.into_iter().filter(|h| matches!(h, Heard::Final(_) | Heard::Unclear(_))));
            }
            if finals != [Heard::Final(Some("i have a question about my bill".into()))] {
                wrong.push((ratio, offset, finals));
            }
        }
    }
    assert!(wrong.is_empty(), "heard otherwise (ratio, offset, what): {wrong:?}");
}
