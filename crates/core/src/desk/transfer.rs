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

    /// Attended transfer: REFERs `call_id`'s far end to the party of `consult_call_id`, with a
    /// Replaces naming our consult dialog, so the two join and both our calls end.
    pub fn transfer_attended(&self, call_id: &str, consult_call_id: &str) -> Result<(), ApiError> {
        if call_id == consult_call_id {
            return Err(ApiError::new("invalid_argument", "the consult call must be another call"));
        }
        let tags = super::calls::lock(&self.inner.calls.live)
            .get(consult_call_id)
            .map(|e| e.dialog.clone())
            .ok_or_else(|| ApiError::new("not_found", format!("no call {consult_call_id:?}")))?
            .ok_or_else(|| ApiError::new("invalid_state", "the consult call is not connected"))?;
        // RFC 3891: to-tag is the target's own tag, from-tag ours (as the target sees its dialog).
        let replaces = format!("{consult_call_id};to-tag={};from-tag={}", tags.remote_tag, tags.local_tag);
        let target = format!("{}?Replaces={}", tags.remote_uri, message::escape_hvalue(&replaces));
        self.call_command(call_id, CallCommand::Transfer(target))
    }

    /// The live call an INVITE's Replaces header names (Call-ID, to-tag = our tag, from-tag =
    /// the peer's), if there is one.
    pub(super) fn replaced_call(&self, replaces: &str) -> Option<String> {
        let mut parts = replaces.split(';');
        let call_id = parts.next()?.trim().to_string();
        let param = |name: &str, list: &[&str]| {
            list.iter().find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let rest: Vec<&str> = parts.collect();
        let (to_tag, from_tag) = (param("to-tag", &rest)?, param("from-tag", &rest)?);
        let live = super::calls::lock(&self.inner.calls.live);
        let tags = live.get(&call_id)?.dialog.as_ref()?;
        (tags.local_tag == to_tag && tags.remote_tag == from_tag).then_some(call_id)
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

/// What to do when the far end asks us to call someone else (an incoming REFER): ask (the
/// default: a `transfer_request` event, then `transfer_accept` or `transfer_reject`, 603 after
/// 30 s), follow it at once, or refuse it. A desk setting ([`Desk::refer_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferPolicy {
    /// Ask the desk.
    Ask,
    /// Follow it at once.
    Auto,
    /// Decline it (603).
    Refuse,
}

/// How long a REFER waits for the desk's consent.
pub(super) const REFER_CONSENT: std::time::Duration = std::time::Duration::from_secs(30);

/// An incoming REFER being followed: the new call we placed and the events that tell its fate.
pub(super) struct ReferFollow {
    pub(super) new_call: String,
    pub(super) events: tokio::sync::broadcast::Receiver<super::EventEnvelope>,
}

/// The Refer-To URI, without its embedded headers (angle brackets and `?...` stripped).
fn refer_to(req: &rsip::Request) -> Option<String> {
    let uri = refer_to_full(req)?.split('?').next()?.trim().to_string();
    (uri.starts_with("sip:") || uri.starts_with("sips:")).then_some(uri)
}

fn refer_to_full(req: &rsip::Request) -> Option<String> {
    let v = message::header_value(req, "Refer-To", Some("r"))?;
    Some(match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if b > a => v[a + 1..b].to_string(),
        _ => v.split(';').next()?.trim().to_string(),
    })
}

/// The Replaces header a Refer-To URI carries for the INVITE it asks for (attended transfer).
fn embedded_replaces(req: &rsip::Request) -> Option<String> {
    let full = refer_to_full(req)?;
    let (_, headers) = full.split_once('?')?;
    headers.split('&').find_map(|h| {
        let (k, v) = h.split_once('=')?;
        k.eq_ignore_ascii_case("Replaces").then(|| format!("Replaces: {}", message::unescape(v)))
    })
}

/// The SIP status reported for a followed call that ended unanswered.
fn code_for(reason: &str) -> u16 {
    match reason {
        "busy" => 486,
        "declined" | "rejected" => 603,
        "not_found" => 404,
        "unavailable" => 480,
        "timeout" => 408,
        "cancelled" => 487,
        _ => 500,
    }
}

impl Desk {
    /// A REFER from the far end (RFC 3515): checked, then followed, refused or asked about.
    pub(super) async fn on_refer(&self, c: &mut InCall<'_>, req: rsip::Request) {
        if !c.dialog.accept_remote_cseq(&req) {
            return;
        }
        let (code, reason) = match refer_to(&req) {
            None => (400, "Bad Refer-To"),
            Some(_) if c.refer_follow.is_some() || c.refer_pending.is_some() => (491, "Request Pending"),
            Some(target) => match self.refer_policy() {
                ReferPolicy::Refuse => (603, "Decline"),
                ReferPolicy::Auto => return self.accept_refer(c, req, target).await,
                ReferPolicy::Ask => {
                    self.emit(Event::TransferRequest { call_id: c.call_id.to_string(), target: target.clone() });
                    c.refer_pending = Some((req, target, tokio::time::Instant::now() + REFER_CONSENT));
                    return;
                }
            },
        };
        tracing::info!(call_id = c.call_id, code, "REFER refused");
        if let Some(r) = request::response_to(&req, code, reason) {
            let _ = c.ep.send(r.as_bytes()).await;
        }
    }

    /// The desk's answer to a REFER it was asked about (or no answer in time: 603).
    pub(super) async fn decide_refer(&self, c: &mut InCall<'_>, accept: bool) {
        let Some((req, target, _)) = c.refer_pending.take() else { return };
        if accept {
            self.accept_refer(c, req, target).await;
        } else if let Some(r) = request::response_to(&req, 603, "Decline") {
            let _ = c.ep.send(r.as_bytes()).await;
        }
    }

    /// 202, NOTIFY 100, and a new call to the target from the same account.
    async fn accept_refer(&self, c: &mut InCall<'_>, req: rsip::Request, target: String) {
        if let Some(r) = request::response_to(&req, 202, "Accepted") {
            let _ = c.ep.send(r.as_bytes()).await;
        }
        self.refer_notify(c, 100, "Trying", false).await;
        let events = self.subscribe();
        let extra: Vec<String> = embedded_replaces(&req).into_iter().collect();
        match self.dial_with(&target, Some(c.account_id), extra) {
            Ok(new_call) => {
                tracing::info!(call_id = c.call_id, new_call, "following REFER to {target}");
                c.refer_follow = Some(ReferFollow { new_call, events });
            }
            Err(e) => {
                tracing::warn!(call_id = c.call_id, "cannot follow REFER to {target}: {}", e.message);
                self.refer_notify(c, 503, "Service Unavailable", true).await;
            }
        }
    }

    /// Reports the followed call's progress to the referrer.
    pub(super) async fn on_refer_progress(&self, c: &mut InCall<'_>, ev: super::EventEnvelope) {
        let Some(follow) = &c.refer_follow else { return };
        let Event::Call { call_id, state, reason, .. } = ev.event else { return };
        if call_id != follow.new_call {
            return;
        }
        match (state, reason) {
            ("ringing" | "early", _) => self.refer_notify(c, 180, "Ringing", false).await,
            ("active", _) => {
                c.refer_follow = None;
                self.refer_notify(c, 200, "OK", true).await;
            }
            ("ended", reason) => {
                c.refer_follow = None;
                self.refer_notify(c, code_for(reason.unwrap_or("")), "Failed", true).await;
            }
            _ => {}
        }
    }

    /// A NOTIFY of the implicit refer subscription with a sipfrag status line.
    async fn refer_notify(&self, c: &mut InCall<'_>, code: u16, reason: &str, last: bool) {
        let state = if last { "terminated;reason=noresource" } else { "active;expires=60" };
        let extra = [
            "Event: refer".to_string(),
            format!("Subscription-State: {state}"),
            format!("Contact: <{}>", c.offers.contact),
        ];
        let body = format!("SIP/2.0 {code} {reason}\r\n");
        let text = c.dialog.request(
            "NOTIFY",
            None,
            &via(c.ep),
            &request::branch(),
            &extra,
            Some(("message/sipfrag;version=2.0", body.as_bytes())),
        );
        let Ok(notify) = rsip::Request::try_from(text.as_str()) else { return };
        let t = Timers::default();
        if !matches!(transaction::run(c.ep, &notify, t.timer_f, &t).await, Outcome::Final(_)) {
            tracing::debug!(call_id = c.call_id, "refer NOTIFY {code} unanswered");
        }
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

    #[test]
    fn refer_to_targets() {
        let refer = |v: &str| {
            rsip::Request::try_from(format!("REFER sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:b@h>;tag=1\r\nTo: <sip:a@h>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REFER\r\n{v}Content-Length: 0\r\n\r\n")).unwrap()
        };
        assert_eq!(refer_to(&refer("Refer-To: <sip:2002@pbx.example>\r\n")).as_deref(), Some("sip:2002@pbx.example"));
        assert_eq!(
            refer_to(&refer("r: \"Bob\" <sip:bob@h?Replaces=abc%40h%3Bto-tag%3D1>\r\n")).as_deref(),
            Some("sip:bob@h")
        );
        assert_eq!(refer_to(&refer("Refer-To: <http://evil>\r\n")), None);
        assert_eq!(
            embedded_replaces(&refer("r: <sip:bob@h?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n")).as_deref(),
            Some("Replaces: abc@h;to-tag=1;from-tag=2")
        );
        assert_eq!(refer_to(&refer("")), None);
        assert_eq!((code_for("busy"), code_for("cancelled"), code_for("??")), (486, 487, 500));
    }
}
