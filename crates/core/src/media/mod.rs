//! Media: audio frames and endpoints, G.711, Opus, RTP/RTCP, SDP offer/answer, jitter buffer, tones
//! and WAV files.
//!
//! `media` knows nothing of `sip`: SDP crosses as text ([`sdp`]), and this module owns the
//! offer/answer. Audio moves as 20 ms [`frame::Frame`]s between endpoints that all have the same
//! shape ([`frame::FrameSource`] + [`frame::FrameSink`]); see [`frame`] for why.

pub mod codec;
pub mod device;
pub mod device_fallback;
mod device_stream;
pub mod dtmf;
pub mod frame;
pub mod g711;
pub mod hold_music;
pub mod jitter;
pub mod offer_answer;
pub mod opus;
pub mod playout;
pub mod rate_convert;
pub mod resample;
pub mod ring;
pub mod rtcp;
pub mod rtp;
pub mod rtp_session;
pub mod sdp;
pub mod switchboard;
pub mod tone;
pub mod wav;
