//! The AI voice agent a call can be handed to: one provider interface, and the offline local
//! agent that implements it.
//!
//! - [`provider`]: the shape every provider has ([`VoiceAgent`] opens an [`AgentSession`]:
//!   caller audio, DTMF and text in, [`AgentEvent`]s out). Cloud providers (Doubao realtime,
//!   OpenAI Realtime, in [`doubao`] and [`openai`]) implement the same trait.
//! - [`local`]: the local agent ([`LocalAgent`]), offline and English-only (Debian ships only
//!   the English speech model): [`vad`] (earshot) finds the caller's utterances, [`asr`]
//!   (pocketsphinx, in grammar mode, on audio upsampled to 16 kHz) recognises them, [`dialog`]
//!   answers by the rules of a TOML [`script`], and [`tts`] (flite) speaks the answer. Both C
//!   engines are opened on first use ([`dylib`]), so a desk that never uses the agent never
//!   loads them.
//! - The script's format is in [`script`]; a sample ships in `crates/core/assets/sample_dialog.toml`
//!   ([`script::SAMPLE_SCRIPT`]): it greets the caller as an automated assistant, asks why they
//!   call, takes a callback number (spoken or keyed) and offers a person.
//!
//! Nothing here knows SIP or Tauri: the call bridge feeds an [`AgentSession`] from the call's
//! frames and plays its audio events back, paced, into the call.

pub mod asr;
pub mod dialog;
pub mod doubao;
pub mod dylib;
pub mod ear;
pub mod grammar;
pub mod local;
pub mod openai;
pub mod provider;
pub mod script;
pub mod tts;
pub mod vad;
pub mod ws;

#[cfg(test)]
mod local_tests;

pub use local::{LocalAgent, LocalAgentConfig};
pub use provider::{
    AgentAudio, AgentError, AgentEvent, AgentInput, AgentInputs, AgentSession, AgentUsage, AudioFormat, ProviderLink,
    SessionConfig, VoiceAgent,
};
