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
    /// Reception figures of a live call, every 5 s.
    CallStats {
        /// The call.
        call_id: String,
        /// Negotiated codec.
        codec: &'static str,
        /// RTP packets received.
        packets_received: u64,
        /// Packets that never arrived.
        packets_lost: u64,
        /// Lost as a percentage of expected.
        loss_pct: f64,
        /// Interarrival jitter (RFC 3550), ms.
        jitter_ms: f64,
        /// Delay the jitter buffer adds, ms.
        buffer_ms: f64,
        /// Delay the jitter buffer aims at, ms.
        target_ms: f64,
        /// Packets that came after their turn and were dropped.
        late: u64,
        /// 20 ms frames concealed (lost or late).
        concealed: u64,
        /// Loss the far end reports of our audio (its last RTCP report), percent.
        remote_loss_pct: Option<f64>,
        /// Jitter the far end reports of our audio, ms.
        remote_jitter_ms: Option<f64>,
    },
    /// A DTMF digit was received or sent in a call.
    Dtmf {
        /// The call.
        call_id: String,
        /// `0-9`, `*`, `#` or `A-D`.
        digit: String,
        /// `in` (from the far end) or `out` (sent by us).
        direction: &'static str,
        /// `rfc4733` (telephone-event in RTP) or `info` (SIP INFO).
        method: &'static str,
    },
    /// Progress of a blind transfer we asked for (REFER, then the far end's NOTIFYs).
    Transfer {
        /// The call being transferred.
        call_id: String,
        /// `trying`, `ringing`, `done` (our call then ends `transferred`) or `failed`.
        status: &'static str,
        /// The SIP status behind it (the REFER's answer or the NOTIFY's sipfrag).
        code: Option<u16>,
        /// Where the far end was sent.
        target: String,
    },
    /// The far end asks us to call someone else (REFER); answer with `transfer_accept` or
    /// `transfer_reject` within 30 s.
    TransferRequest {
        /// The call.
        call_id: String,
        /// Whom to call.
        target: String,
    },
    /// A call was handed to the AI voice agent, or came back to the desk.
    Handoff {
        /// The call.
        call_id: String,
        /// `ai` or `human`.
        to: &'static str,
        /// The agent's provider (`local`, ...).
        provider: &'static str,
        /// Why it came back, when not taken back from the desk: `ai_requested_human`,
        /// `ai_finished`, `provider_error`, `provider_closed`, `provider_silent`, `provider_unavailable`.
        reason: Option<&'static str>,
    },
    /// A line of the live transcript while the AI has the call.
    Transcript {
        /// The call.
        call_id: String,
        /// `caller` or `ai`.
        speaker: &'static str,
        /// The words (interim ones are replaced by the final line).
        text: String,
        /// Whether this is the final text of the utterance.
        #[serde(rename = "final")]
        is_final: bool,
    },
    /// A call's microphone was muted or unmuted.
    Mute {
        /// The call.
        call_id: String,
        /// Whether it is muted now.
        on: bool,
    },
    /// An audio device could not be used and another one took its place (or none could).
    Device {
        /// `input`, `output` or `ring`.
        direction: &'static str,
        /// The device that was chosen or in use (`None`: the system default).
        wanted: Option<String>,
        /// The device used now (`None`: none, the audio is silent).
        used: Option<String>,
        /// `not_found`, `open_failed`, `lost`, `recovered` or `unavailable`.
        reason: &'static str,
        /// English explanation for logs.
        detail: String,
    },
    /// The microphone meter's level, every 100 ms while it is on.
    MicLevel {
        /// RMS of the last 100 ms in dBFS (a full-scale sine is 0; -120: silence).
        dbfs: f64,
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

/// A `call_stats` event from a session's live counters.
pub fn call_stats(call_id: &str, codec: &'static str, s: &crate::media::rtp_session::RtpStats) -> Event {
    use crate::media::rtp_session::NOT_REPORTED;
    use std::sync::atomic::Ordering::Relaxed;
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let (received, lost) = (s.received.load(Relaxed), s.lost.load(Relaxed));
    let expected = received + lost;
    let clock = if codec.eq_ignore_ascii_case("opus") { 48.0 } else { 8.0 };
    let remote_loss = s.remote_fraction_lost.load(Relaxed);
    let remote_jitter = s.remote_jitter.load(Relaxed);
    Event::CallStats {
        call_id: call_id.to_string(),
        codec,
        packets_received: received,
        packets_lost: lost,
        loss_pct: if expected == 0 { 0.0 } else { round1(lost as f64 * 100.0 / expected as f64) },
        jitter_ms: round1(s.jitter_us.load(Relaxed) as f64 / 1000.0),
        buffer_ms: round1(s.buffer_us.load(Relaxed) as f64 / 1000.0),
        target_ms: round1(s.target_us.load(Relaxed) as f64 / 1000.0),
        late: s.late.load(Relaxed),
        concealed: s.concealed.load(Relaxed),
        remote_loss_pct: (remote_loss != NOT_REPORTED).then(|| round1(remote_loss as f64 * 100.0 / 256.0)),
        remote_jitter_ms: (remote_jitter != NOT_REPORTED).then(|| round1(remote_jitter as f64 / clock)),
    }
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
