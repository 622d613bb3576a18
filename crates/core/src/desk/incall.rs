//! A confirmed call until it ends: the peer's in-dialog requests (re-INVITE/UPDATE offers, INFO
//! DTMF, BYE), the desk's commands (hold, resume, DTMF, mute, hangup), DTMF heard in the media,
//! and the session timer. Hold is a re-INVITE with a=sendonly and music on hold; the peer's hold
//! (sendonly, inactive or c=0.0.0.0) shows as `held_remote`. Glare gets 491 and a retry after
//! RFC 3261's random wait.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::calls::CallCommand;
use super::{Desk, Event};
use crate::media::offer_answer::{LocalMedia, Negotiated, SdpSession};
use crate::media::rtp_session::{MediaEvent, RtpSession};
use crate::media::sdp::Direction;
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::Endpoint;
use crate::sip::invite_server::{CallRequests, IncomingInvite};
use crate::sip::reinvite::{glare_retry_after, reinvite, via, ReinviteOutcome};
use crate::sip::session_timer::{self, UasTimer};
use crate::sip::transaction::{self, Outcome, Timers};
use crate::sip::{message, request};

/// How a call sends DTMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// RFC 4733 telephone-events in the RTP stream (SIP INFO when the peer did not agree to them).
    #[default]
    Rfc4733,
    /// SIP INFO with application/dtmf-relay.
    Info,
}

/// What a confirmed call needs to answer re-INVITEs and UPDATEs.
pub(super) struct Renegotiation<'a> {
    pub(super) sdp: &'a mut SdpSession,
    pub(super) local: LocalMedia,
    pub(super) contact: String,
}

impl Renegotiation<'_> {
    /// Answers an in-dialog INVITE or UPDATE: an offer gets our answer (the o= version rises
    /// only if it changed); an offerless re-INVITE gets our current offer and its ACK carries the
    /// answer; an unusable offer gets 488 and the call goes on as it was. Returns the new media.
    async fn answer(
        &mut self,
        ep: &Endpoint,
        req: rsip::Request,
        requests: &mut CallRequests,
        extra: &[String],
    ) -> Option<Negotiated> {
        let is_invite = req.method == rsip::Method::Invite;
        let offer = (!req.body().is_empty()).then(|| String::from_utf8_lossy(req.body()).into_owned());
        let (body, negotiated) = match offer.as_deref().map(|o| self.sdp.answer(o, self.local)) {
            Some(Ok((answer, n))) => (answer, Some(n)),
            Some(Err(e)) => {
                tracing::warn!("refusing a new offer in the call: {e}");
                if let Some(r) = request::response_to(&req, 488, "Not Acceptable Here") {
                    let _ = ep.send(r.as_bytes()).await;
                }
                return None;
            }
            None => (self.sdp.offer(self.local), None),
        };
        if is_invite {
            let mut re = IncomingInvite::new(ep.clone(), req, self.contact.clone(), Timers::default());
            match re.accept_with(body.as_bytes(), extra, requests).await {
                Ok((_, ack)) if negotiated.is_none() && !ack.is_empty() => {
                    return self.sdp.accept_answer(&String::from_utf8_lossy(&ack)).ok();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("re-INVITE not completed: {e}"),
            }
        } else {
            let mut headers = vec![format!("Contact: <{}>", self.contact)];
            headers.extend_from_slice(extra);
            if let Some(r) =
                request::response(&req, 200, "OK", None, &headers, Some(("application/sdp", body.as_bytes())))
            {
                let _ = ep.send(r.as_bytes()).await;
            }
        }
        negotiated
    }
}

/// Publishes a call state change: state, codec, end reason.
pub(super) type CallEvent<'a> = &'a (dyn Fn(&'static str, Option<&'static str>, Option<&'static str>) + Sync);

/// Everything a confirmed call runs on.
pub(super) struct InCall<'a> {
    pub(super) call_id: &'a str,
    pub(super) ep: &'a Endpoint,
    pub(super) dialog: &'a mut Dialog,
    pub(super) requests: &'a mut CallRequests,
    pub(super) commands: &'a mut mpsc::UnboundedReceiver<CallCommand>,
    pub(super) offers: Renegotiation<'a>,
    pub(super) media: &'a mut RtpSession,
    pub(super) neg: Negotiated,
    /// We sent the dialog's first INVITE (RFC 3261 14.1: the longer glare wait).
    pub(super) we_own_call_id: bool,
    pub(super) dtmf_mode: DtmfMode,
    pub(super) ev: CallEvent<'a>,
    local_hold: bool,
    remote_hold: bool,
    deferred: VecDeque<rsip::Request>,
    /// A hold change to try again after glare, and when.
    retry: Option<(Instant, bool)>,
    /// Next refresh we send, or the deadline for the peer's.
    timer_at: Option<Instant>,
    /// Where our REFER sent the far end, while its NOTIFYs are awaited.
    pub(super) transfer_to: Option<String>,
    /// The account the call belongs to (a followed REFER calls from it).
    pub(super) account_id: i64,
    /// A REFER from the far end awaiting the desk's consent, and until when.
    pub(super) refer_pending: Option<(rsip::Request, String, Instant)>,
    /// A REFER from the far end being followed.
    pub(super) refer_follow: Option<super::transfer::ReferFollow>,
    /// Where the call's frames flow (the desk or the AI).
    pub(super) board: Option<crate::media::switchboard::Switchboard>,
    /// The AI bridge while the AI has the call.
    pub(super) bridge: Option<super::handoff::Bridge>,
}

impl<'a> InCall<'a> {
    /// A confirmed call's state, with nothing held.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        call_id: &'a str,
        ep: &'a Endpoint,
        dialog: &'a mut Dialog,
        requests: &'a mut CallRequests,
        commands: &'a mut mpsc::UnboundedReceiver<CallCommand>,
        offers: Renegotiation<'a>,
        media: &'a mut RtpSession,
        neg: Negotiated,
        ev: CallEvent<'a>,
    ) -> InCall<'a> {
        if let Some(t) = dialog.session_timer {
            let by = if t.we_refresh { "us" } else { "the peer" };
            tracing::info!(call_id, "session timer: {} s, refreshed by {by}", t.interval);
        }
        let timer_at = dialog
            .session_timer
            .map(|t| Instant::now() + if t.we_refresh { t.refresh_after() } else { t.expires_after() });
        InCall {
            call_id,
            ep,
            dialog,
            requests,
            commands,
            offers,
            media,
            neg,
            we_own_call_id: false,
            dtmf_mode: DtmfMode::default(),
            ev,
            local_hold: false,
            remote_hold: false,
            deferred: VecDeque::new(),
            retry: None,
            timer_at,
            transfer_to: None,
            account_id: 0,
            refer_pending: None,
            refer_follow: None,
            board: None,
            bridge: None,
        }
    }

    fn publish_state(&self) {
        let state = if self.local_hold {
            "held"
        } else if self.remote_hold {
            "held_remote"
        } else {
            "active"
        };
        (self.ev)(state, Some(self.neg.codec.name()), None);
    }

    fn restart_timer(&mut self) {
        self.timer_at = self
            .dialog
            .session_timer
            .map(|t| Instant::now() + if t.we_refresh { t.refresh_after() } else { t.expires_after() });
    }

    /// Takes a new negotiation from either side's offer.
    fn apply(&mut self, neg: Negotiated) {
        self.media.update(neg);
        self.neg = neg;
        // We always want to send; not sending means the peer does not want to hear: held.
        let remote_hold = !neg.direction.sends();
        if remote_hold != self.remote_hold {
            self.remote_hold = remote_hold;
        }
        self.publish_state();
    }
}

impl Desk {
    /// Hands the call to the AI (the bridge opens the agent on its own; if it cannot start, the
    /// call stays with the desk and a `handoff` event says why).
    pub(super) fn hand_to_ai(&self, c: &mut InCall<'_>) {
        let Some(board) = c.board.clone() else { return };
        let law = match c.neg.codec {
            crate::media::offer_answer::Codec::Pcmu => Some(crate::media::g711::Law::Mu),
            crate::media::offer_answer::Codec::Pcma => Some(crate::media::g711::Law::A),
            crate::media::offer_answer::Codec::Opus => None,
        };
        c.bridge = Some(self.start_handoff(c.call_id, &board, law));
    }

    /// Records a confirmed call's dialog identity (attended transfer and Replaces look it up);
    /// done before the call is reported active, so a command reacting to that finds it.
    pub(super) fn register_dialog(&self, call_id: &str, dialog: &Dialog) {
        if let Some(entry) = super::calls::lock(&self.inner.calls.live).get_mut(call_id) {
            entry.dialog = Some(super::calls::DialogTags {
                local_tag: dialog.id.local_tag.clone(),
                remote_tag: dialog.id.remote_tag.clone(),
                remote_uri: crate::sip::message::uri_of(&dialog.remote_uri),
            });
        }
    }

    /// The DTMF mode for calls of `account_id`: the account's `dtmf_mode`, unless
    /// `SIPDESK_DTMF` overrides it (desk/call_settings.rs).
    pub(super) fn dtmf_mode(&self, account_id: i64) -> DtmfMode {
        match self.account_dtmf_mode(account_id) {
            crate::store::DtmfMode::Info => DtmfMode::Info,
            crate::store::DtmfMode::Rfc4733 => DtmfMode::Rfc4733,
        }
    }

    /// Runs a confirmed call until one side hangs up; returns the reason.
    pub(super) async fn in_call(&self, c: &mut InCall<'_>) -> &'static str {
        let mut media_events = c.media.take_events();
        loop {
            if c.bridge.as_ref().is_some_and(|b| b.finished()) {
                // The AI gave the call back (or failed): the bridge already said so.
                c.bridge = None;
            }
            if let Some(req) = c.deferred.pop_front() {
                if let Some(reason) = self.on_request(c, req).await {
                    return reason;
                }
                continue;
            }
            let retry_at = c.retry.map(|(at, _)| at);
            let refer_deadline = c.refer_pending.as_ref().map(|(_, _, at)| *at);
            tokio::select! {
                req = c.requests.recv() => {
                    let Some(req) = req else { return "network_down" };
                    if let Some(reason) = self.on_request(c, req).await {
                        return reason;
                    }
                }
                cmd = c.commands.recv() => {
                    if let Some(reason) = self.on_command(c, cmd).await {
                        return reason;
                    }
                }
                Some(MediaEvent::Dtmf(digit)) = async {
                    match media_events.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(b) = &c.bridge {
                        b.send_dtmf(digit).await;
                    }
                    self.emit(Event::Dtmf { call_id: c.call_id.to_string(), digit: digit.to_string(), direction: "in", method: "rfc4733" })
                }
                _ = async { sleep_until(retry_at.unwrap_or_else(Instant::now)).await }, if retry_at.is_some() => {
                    let (_, on) = c.retry.take().unwrap_or((Instant::now(), false));
                    if let Some(reason) = self.set_hold(c, on).await {
                        return reason;
                    }
                }
                _ = async { sleep_until(refer_deadline.unwrap_or_else(Instant::now)).await }, if refer_deadline.is_some() => {
                    tracing::info!(call_id = c.call_id, "no answer to the transfer request; declining it");
                    self.decide_refer(c, false).await;
                }
                ev = async {
                    match c.refer_follow.as_mut() {
                        Some(f) => f.events.recv().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(ev) = ev {
                        self.on_refer_progress(c, ev).await;
                    }
                }
                _ = async { sleep_until(c.timer_at.unwrap_or_else(Instant::now)).await }, if c.timer_at.is_some() => {
                    if let Some(reason) = self.on_session_timer(c).await {
                        return reason;
                    }
                }
            }
        }
    }

    /// Handles one request from the peer; Some(reason) ends the call.
    async fn on_request(&self, c: &mut InCall<'_>, req: rsip::Request) -> Option<&'static str> {
        if !c.dialog.matches(&req) && req.method != rsip::Method::Ack {
            return None;
        }
        match req.method {
            rsip::Method::Bye => {
                if let Some(ok) = request::response_to(&req, 200, "OK") {
                    let _ = c.ep.send(ok.as_bytes()).await;
                }
                return Some("remote_hangup");
            }
            rsip::Method::Ack => {}
            rsip::Method::Invite | rsip::Method::Update => {
                if !c.dialog.accept_remote_cseq(&req) {
                    if let Some(r) = request::response_to(&req, 500, "Out of Order") {
                        let _ = c.ep.send(r.as_bytes()).await;
                    }
                    return None;
                }
                let extra = match session_timer::for_uas(&req) {
                    UasTimer::None => Vec::new(),
                    UasTimer::Agreed(t, headers) => {
                        c.dialog.session_timer = Some(t);
                        headers
                    }
                    UasTimer::TooSmall(headers) => {
                        if let Some(r) =
                            request::response(&req, 422, "Session Interval Too Small", None, &headers, None)
                        {
                            let _ = c.ep.send(r.as_bytes()).await;
                        }
                        return None;
                    }
                };
                // Any offer or refresh from the peer restarts the session timer (RFC 4028 §10).
                c.restart_timer();
                if let Some(neg) = c.offers.answer(c.ep, req, c.requests, &extra).await {
                    c.apply(neg);
                }
            }
            rsip::Method::Info => self.on_info(c, &req).await,
            rsip::Method::Notify => return self.on_notify(c, &req).await,
            rsip::Method::Refer => self.on_refer(c, req).await,
            _ => {
                if c.dialog.accept_remote_cseq(&req) {
                    transaction::answer_plainly(c.ep, &req).await;
                }
            }
        }
        None
    }

    /// INFO: DTMF as application/dtmf-relay (`Signal=5`) or application/dtmf (`5`).
    async fn on_info(&self, c: &mut InCall<'_>, req: &rsip::Request) {
        if !c.dialog.accept_remote_cseq(req) {
            return;
        }
        let ctype = message::header_value(req, "Content-Type", Some("c")).unwrap_or_default().to_ascii_lowercase();
        let body = String::from_utf8_lossy(req.body());
        let digit = if ctype.starts_with("application/dtmf-relay") {
            body.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim().eq_ignore_ascii_case("signal").then(|| v.trim().to_string())
            })
        } else if ctype.starts_with("application/dtmf") {
            Some(body.trim().to_string())
        } else {
            None
        };
        let digit = digit.filter(|d| {
            d.chars().count() == 1
                && crate::media::rtp::TelephoneEvent::dtmf_code(d.chars().next().unwrap_or(' ')).is_some()
        });
        let (code, reason) = match (&digit, ctype.is_empty()) {
            (Some(_), _) => (200, "OK"),
            // An INFO without a body is a keepalive some peers send (RFC 6086 §4.2).
            (None, true) => (200, "OK"),
            (None, false) => {
                tracing::warn!(call_id = c.call_id, "INFO with {ctype:?} and no DTMF digit in it");
                (415, "Unsupported Media Type")
            }
        };
        let extra =
            if code == 415 { vec!["Accept: application/dtmf-relay, application/dtmf".to_string()] } else { vec![] };
        if let Some(r) = request::response(req, code, reason, None, &extra, None) {
            let _ = c.ep.send(r.as_bytes()).await;
        }
        if let Some(d) = digit {
            self.emit(Event::Dtmf {
                call_id: c.call_id.to_string(),
                digit: d.to_ascii_uppercase(),
                direction: "in",
                method: "info",
            });
        }
    }

    /// Handles one command; Some(reason) ends the call.
    async fn on_command(&self, c: &mut InCall<'_>, cmd: Option<CallCommand>) -> Option<&'static str> {
        match cmd {
            Some(CallCommand::Hangup) | None => {
                self.hangup(c.ep, c.dialog).await;
                return Some("local_hangup");
            }
            Some(CallCommand::Mute(on)) => {
                c.media.set_muted(on);
                self.emit(Event::Mute { call_id: c.call_id.to_string(), on });
            }
            Some(CallCommand::Hold) if !c.local_hold => return self.set_hold(c, true).await,
            Some(CallCommand::Resume) if c.local_hold => return self.set_hold(c, false).await,
            Some(CallCommand::Dtmf(digit)) => self.send_dtmf(c, digit).await,
            Some(CallCommand::Transfer(target)) => self.send_refer(c, &target).await,
            Some(CallCommand::ReferAnswer(accept)) => self.decide_refer(c, accept).await,
            Some(CallCommand::Handoff) => {
                // A bridge that ended by itself (the AI failed or gave the call back) since the
                // loop last looked is no obstacle to a new handoff.
                if c.bridge.as_ref().is_some_and(|b| b.finished()) {
                    c.bridge = None;
                }
                if c.bridge.is_none() {
                    self.hand_to_ai(c);
                }
            }
            Some(CallCommand::TakeBack) => {
                if let Some(b) = c.bridge.take() {
                    b.stop().await;
                }
            }
            Some(CallCommand::Replaced) => {
                self.hangup(c.ep, c.dialog).await;
                return Some("replaced");
            }
            Some(_) => {}
        }
        None
    }

    /// Holds (sendonly + music) or resumes (sendrecv) by re-INVITE.
    async fn set_hold(&self, c: &mut InCall<'_>, on: bool) -> Option<&'static str> {
        let before = c.offers.local.direction;
        c.offers.local.direction = if on { Direction::SendOnly } else { Direction::SendRecv };
        let offer = c.offers.sdp.offer(c.offers.local);
        let mut extra = vec![format!("Contact: <{}>", c.offers.contact), "Supported: timer".to_string()];
        if let Some(t) = c.dialog.session_timer {
            extra.push(t.header(if t.we_refresh { "uac" } else { "uas" }));
        }
        let mut deferred = Vec::new();
        let outcome =
            reinvite(c.ep, c.dialog, offer.as_bytes(), &extra, c.requests, &mut deferred, &Timers::default()).await;
        c.deferred.extend(deferred);
        match outcome {
            ReinviteOutcome::Answered(body) => {
                c.restart_timer();
                match c.offers.sdp.accept_answer(&String::from_utf8_lossy(&body)) {
                    Ok(neg) => {
                        c.local_hold = on;
                        c.media.set_hold_music(on);
                        c.apply(neg);
                    }
                    Err(e) => tracing::warn!(call_id = c.call_id, "unusable answer to our re-INVITE: {e}"),
                }
                None
            }
            ReinviteOutcome::Glare => {
                c.offers.local.direction = before;
                let wait = glare_retry_after(c.we_own_call_id, rand::random::<f64>());
                tracing::info!(call_id = c.call_id, "491 on our re-INVITE; retrying in {wait:?}");
                c.retry = Some((Instant::now() + wait, on));
                None
            }
            ReinviteOutcome::Refused(code) => {
                c.offers.local.direction = before;
                tracing::warn!(call_id = c.call_id, code, "the peer refused to {}", if on { "hold" } else { "resume" });
                // 481 and 408 mean the dialog is gone (RFC 3261 12.2.1.2).
                matches!(code, 481 | 408).then_some("remote_gone")
            }
            ReinviteOutcome::Timeout => {
                self.hangup(c.ep, c.dialog).await;
                Some("remote_gone")
            }
            ReinviteOutcome::FlowLost => Some("network_down"),
        }
    }

    /// Sends a digit in the mode the account chose (RFC 4733 needs the peer's telephone-event).
    async fn send_dtmf(&self, c: &mut InCall<'_>, digit: char) {
        let rfc4733 = c.dtmf_mode == DtmfMode::Rfc4733 && c.neg.telephone_event.is_some();
        if rfc4733 {
            c.media.send_dtmf(digit);
        } else {
            let body = format!("Signal={digit}\r\nDuration={}\r\n", crate::media::dtmf::DIGIT_MS);
            let text = c.dialog.request(
                "INFO",
                None,
                &via(c.ep),
                &request::branch(),
                &[],
                Some(("application/dtmf-relay", body.as_bytes())),
            );
            let Ok(info) = rsip::Request::try_from(text.as_str()) else { return };
            let t = Timers::default();
            match transaction::run(c.ep, &info, t.timer_f, &t).await {
                Outcome::Final(r) if r.status_code.code() < 300 => {}
                Outcome::Final(r) => {
                    tracing::warn!(call_id = c.call_id, code = r.status_code.code(), "INFO DTMF refused")
                }
                _ => tracing::warn!(call_id = c.call_id, "INFO DTMF unanswered"),
            }
        }
        let method = if rfc4733 { "rfc4733" } else { "info" };
        self.emit(Event::Dtmf { call_id: c.call_id.to_string(), digit: digit.to_string(), direction: "out", method });
    }

    /// Our refresh is due (a re-INVITE with the same SDP), or the peer's is overdue (hang up).
    async fn on_session_timer(&self, c: &mut InCall<'_>) -> Option<&'static str> {
        let t = c.dialog.session_timer?;
        if !t.we_refresh {
            tracing::warn!(
                call_id = c.call_id,
                "no session refresh from the peer within {} s; ending the call",
                t.interval
            );
            self.hangup(c.ep, c.dialog).await;
            return Some("session_expired");
        }
        let on = c.local_hold;
        tracing::debug!(call_id = c.call_id, "session refresh");
        let reason = self.set_hold(c, on).await;
        if c.retry.is_none() {
            c.restart_timer();
        }
        reason
    }
}
