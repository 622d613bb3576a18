//! Events the core emits to every front end. docs/EVENTS.md is their schema; the names and
//! keys here are a contract with the UI, scripts and tests.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use crate::sip::registration::{Registration, RegistrationState};

/// One event, tagged by `event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An active account was loaded (at start-up or after a change).
    AccountLoaded {
        /// Account id (0: from the environment).
        account_id: i64,
        /// `host:port` of the server.
        server: String,
        /// SIP user.
        username: String,
        /// `UDP` or `TCP`.
        protocol: &'static str,
    },
    /// An account stopped being loaded (deactivated, removed or replaced by an edit).
    AccountUnloaded {
        /// Account id.
        account_id: i64,
        /// `deactivated`, `removed` or `edited`.
        reason: &'static str,
    },
    /// An account's registration changed.
    Registration {
        /// Account id.
        account_id: i64,
        /// New state, expires and reason.
        #[serde(flatten)]
        registration: Registration,
    },
    /// The set of accounts or their fields changed; front ends refresh their lists.
    AccountsChanged,
    /// A call changed state.
    Call {
        /// Our id for the call (its SIP Call-ID).
        call_id: String,
        /// The account it belongs to.
        account_id: i64,
        /// `in` or `out`.
        direction: &'static str,
        /// `calling`, `incoming`, `ringing`, `early`, `active`, `held` or `ended`.
        state: &'static str,
        /// The other party (name-addr from P-Asserted-Identity or From/To).
        remote: String,
        /// The negotiated codec, once known.
        codec: Option<&'static str>,
        /// Why it ended, for `ended`.
        reason: Option<&'static str>,
    },
    /// Audio levels of a live call, about every 200 ms (for the in-call meter).
    CallLevel {
        /// The call.
        call_id: String,
        /// Level of what the far end sends, dBFS (-120: silence).
        rx_dbfs: f64,
        /// Level of what we send, dBFS (-120: silence).
        tx_dbfs: f64,
    },
    /// A call's microphone was muted or unmuted.
    Mute {
        /// The call.
        call_id: String,
        /// Whether it is muted now.
        on: bool,
    },
    /// Do-not-disturb was turned on or off.
    Dnd {
        /// Whether it is on.
        on: bool,
    },
    /// The database could not be used; the desk runs without stored accounts.
    StoreError {
        /// Stable code, e.g. `store_locked`.
        code: &'static str,
        /// English explanation.
        message: String,
    },
}

/// An event with its time: the exact JSON object a front end receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventEnvelope {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

impl EventEnvelope {
    /// Stamps an event with the current time.
    pub fn now(event: Event) -> EventEnvelope {
        EventEnvelope { ts_ms: now_ms(), event }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape() {
        let e = EventEnvelope {
            ts_ms: 5,
            event: Event::Registration { account_id: 1, registration: Registration::UNREGISTERED },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"ts_ms":5,"event":"registration","account_id":1,"state":"unregistered","expires":null,"reason":null}"#
        );
        let e = EventEnvelope { ts_ms: 1, event: Event::AccountsChanged };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"ts_ms":1,"event":"accounts_changed"}"#);
    }
}
