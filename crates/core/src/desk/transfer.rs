//! Moving calls around: swapping between two calls, and blind transfer (RFC 3515, RFC 5589 §6):
//! we REFER the far end to a third party and follow its
//! progress in the NOTIFYs it sends (a message/sipfrag status line each); once the new call is
//! answered (a 2xx sipfrag) we hang up. A refused REFER or a failed attempt leaves our call as it was.

use super::incall::InCall;
use super::{ApiError, CallCommand, Desk, Event};
use crate::sip::message;
use crate::sip::reinvite::via;
use crate::sip::request;
use crate::sip::transaction::{self, Outcome, Timers};

/// What a sipfrag NOTIFY body says: the status code of its status line.
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next()?.trim();
    let mut parts = line.split_whitespace();
    (parts.next()? == "SIP/2.0").then_some(())?;
    parts.next()?.parse::<u16>().ok().filter(|c| (100..700).contains(c))
}

impl Desk {
    /// Blind-transfers `call_id` to `target` (a number, extension or SIP URI, as for dialling).
    pub fn transfer(&self, call_id: &str, target: &str) -> Result<(), ApiError> {
        let account_id = self
            .calls_list()
            .into_iter()
            .find(|c| c.call_id == call_id)
            .map(|c| c.account_id)
            .ok_or_else(|| ApiError::new("not_found", format!("no call {call_id:?}")))?;
        let account = super::calls::lock(&self.inner.loaded)
            .get(&account_id)
            .map(|l| l.account.clone())
            .ok_or_else(|| ApiError::new("not_found", "the call's account is no longer loaded"))?;
        let uri = super::outgoing::dial_target(target, &account)?;
        self.call_command(call_id, CallCommand::Transfer(uri))
    }

    /// Swaps two calls: holds the active one and resumes the one we hold.
    pub fn swap(&self) -> Result<(), ApiError> {
        let calls = self.calls_list();
        let active = calls.iter().find(|c| c.state == "active");
        let held = calls.iter().find(|c| c.state == "held");
        let (Some(active), Some(held)) = (active, held) else {
            return Err(ApiError::new("invalid_state", "swap needs one active call and one on hold"));
        };
        self.call_command(&active.call_id, CallCommand::Hold)?;
        self.call_command(&held.call_id, CallCommand::Resume)
    }

    /// Sends REFER; the outcome arrives later as NOTIFYs ([`Desk::on_notify`]).
    pub(super) async fn send_refer(&self, c: &mut InCall<'_>, target: &str) {
        let extra = [
            format!("Refer-To: <{target}>"),
            format!("Referred-By: {}", c.dialog.local_uri),
            format!("Contact: <{}>", c.offers.contact),
        ];
        let text = c.dialog.request("REFER", None, &via(c.ep), &request::branch(), &extra, None);
        let Ok(refer) = rsip::Request::try_from(text.as_str()) else { return };
        let t = Timers::default();
        let code = match transaction::run(c.ep, &refer, t.timer_f, &t).await {
            Outcome::Final(r) => r.status_code.code(),
            _ => 408,
        };
        let status = if (200..300).contains(&code) { "trying" } else { "failed" };
        tracing::info!(call_id = c.call_id, code, "REFER to {target}");
        self.emit(Event::Transfer {
            call_id: c.call_id.to_string(),
            status,
            code: Some(code),
            target: target.to_string(),
        });
        c.transfer_to = (status == "trying").then(|| target.to_string());
    }

    /// A NOTIFY in the call: REFER progress. Some(reason) ends the call (the transfer succeeded).
    pub(super) async fn on_notify(&self, c: &mut InCall<'_>, req: &rsip::Request) -> Option<&'static str> {
        if !c.dialog.accept_remote_cseq(req) {
            return None;
        }
        let event = message::header_value(req, "Event", Some("o")).unwrap_or_default();
        let is_refer = event.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("refer"));
        let code = if is_refer { 200 } else { 489 };
        if let Some(r) = request::response_to(req, code, if code == 200 { "OK" } else { "Bad Event" }) {
            let _ = c.ep.send(r.as_bytes()).await;
        }
        let (Some(target), true) = (c.transfer_to.clone(), is_refer) else { return None };
        let Some(status) = sipfrag_status(req.body()) else {
            tracing::warn!(call_id = c.call_id, "NOTIFY without a sipfrag status line");
            return None;
        };
        let (state, done) = match status {
            100..=179 => ("trying", false),
            180..=199 => ("ringing", false),
            200..=299 => ("done", true),
            _ => ("failed", true),
        };
        self.emit(Event::Transfer { call_id: c.call_id.to_string(), status: state, code: Some(status), target });
        if !done {
            return None;
        }
        c.transfer_to = None;
        if state == "done" {
            // The far end is now with the third party: our part of the call is over.
            self.hangup(c.ep, c.dialog).await;
            return Some("transferred");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_status_lines() {
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying\r\n"), Some(100));
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n"), Some(486));
        for bad in [&b""[..], b"HTTP/1.1 200 OK", b"SIP/2.0 abc", b"SIP/2.0 999 Nope"] {
            assert_eq!(sipfrag_status(bad), None);
        }
    }
}
