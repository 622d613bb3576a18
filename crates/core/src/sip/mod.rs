//! The SIP stack: transports, client transactions, digest authentication and registration.
//!
//! Layered as the RFC is: [`transport`] (UDP/TCP flows, stream [`framing`]) → [`endpoint`]
//! (routing on a flow) → [`transaction`] (non-INVITE client transactions) → [`registration`] (one task per account),
//! with [`digest`] for authentication and [`message`]/[`request`] over rsip's message model.

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod invite_client;
pub mod invite_server;
pub mod message;
pub mod registration;
pub mod reinvite;
pub mod request;
pub mod session_timer;
pub mod transaction;
pub mod transport;
