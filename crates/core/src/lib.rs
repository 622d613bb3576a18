//! SipDesk core: the desktop softphone's engine, with no UI dependency.
//!
//! - [`store`]: SIP accounts and desk settings in SQLite, passwords in the secret store.
//! - [`sip`]: transports, transactions, digest auth and registration.
//! - [`media`]: audio frames and endpoints, G.711, RTP/RTCP, SDP offer/answer, WAV and tones.
//! - [`agent`]: the AI voice agent's provider interface and the offline local agent.
//! - [`desk`]: the orchestration layer both front ends (the Tauri app and the headless
//!   `sipdesk` binary) drive: commands in, events out.
#![deny(missing_docs)]

pub mod agent;
pub mod desk;
pub mod media;
pub mod sip;
pub mod store;
