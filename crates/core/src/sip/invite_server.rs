//! The answering side of an INVITE (RFC 3261 13.3.1 and 17.2.1): provisional responses, a
//! final error retransmitted until its ACK, and a 2xx with the SDP answer retransmitted (T1
//! doubling to T2) until the ACK arrives or 64*T1 passes. Retransmitted INVITEs get the last
//! response again; a CANCEL before the answer ends the call with 487.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::dialog::{Dialog, DialogError};
use super::endpoint::Endpoint;
use super::message;
use super::request;
use super::transaction::Timers;

/// Requests the call router hands to one call, in arrival order.
pub type CallRequests = mpsc::UnboundedReceiver<rsip::Request>;

/// How answering ended when it did not give a confirmed dialog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The caller cancelled before the answer.
    #[error("the caller cancelled")]
    Cancelled,
    /// No ACK for our 2xx within 64*T1.
    #[error("no ACK for the answer")]
    NoAck,
    /// The caller hung up before acknowledging.
    #[error("the caller hung up before the ACK")]
    ByeBeforeAck,
    /// The INVITE cannot form a dialog.
    #[error(transparent)]
    Dialog(#[from] DialogError),
    /// The flow is gone.
    #[error("the SIP flow closed")]
    FlowClosed,
}

/// One incoming INVITE and the server transaction that answers it.
pub struct IncomingInvite {
    ep: Endpoint,
    /// The INVITE as received.
    pub invite: rsip::Request,
    local_tag: String,
    contact: String,
    branch: Option<String>,
    timers: Timers,
    last_response: Option<String>,
}

impl IncomingInvite {
    /// Takes an INVITE received on `ep`; `contact` is our Contact URI for the dialog.
    pub fn new(ep: Endpoint, invite: rsip::Request, contact: String, timers: Timers) -> IncomingInvite {
        let branch = message::branch(&invite);
        IncomingInvite { ep, invite, local_tag: request::token(12), contact, branch, timers, last_response: None }
    }

    /// The endpoint the INVITE arrived on (in-dialog requests go out on it too).
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// Our Contact URI in this dialog.
    pub fn contact(&self) -> &str {
        &self.contact
    }

    /// Our To tag.
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The caller's SDP offer, if the INVITE carries one.
    pub fn offer(&self) -> Option<&[u8]> {
        let body = self.invite.body();
        (!body.is_empty()).then_some(body.as_slice())
    }

    async fn send(&mut self, code: u16, reason: &str, extra: &[String], body: Option<(&str, &[u8])>) -> bool {
        let Some(text) = request::response(&self.invite, code, reason, Some(&self.local_tag), extra, body) else {
            return false;
        };
        let ok = self.ep.send(text.as_bytes()).await.is_ok();
        self.last_response = Some(text);
        ok
    }

    /// Sends 100, 180 or 183 (183 with an SDP body for early media).
    pub async fn provisional(&mut self, code: u16, reason: &str, sdp: Option<&[u8]>) {
        let contact = [format!("Contact: <{}>", self.contact)];
        let extra: &[String] = if code == 100 { &[] } else { &contact };
        self.send(code, reason, extra, sdp.map(|b| ("application/sdp", b))).await;
    }

    /// Is `req` a retransmission of our INVITE, a CANCEL of it, or an ACK for it?
    fn same_transaction(&self, req: &rsip::Request) -> bool {
        self.branch.is_some() && message::branch(req) == self.branch
    }

    /// Handles a request that arrived while the INVITE is pending (not yet answered).
    /// Returns Err(Cancelled) when it was a CANCEL for this INVITE.
    pub async fn on_pending_request(&mut self, req: &rsip::Request) -> Result<(), AnswerError> {
        match req.method {
            rsip::Method::Invite if self.same_transaction(req) => self.resend().await,
            rsip::Method::Cancel if self.same_transaction(req) => {
                if let Some(ok) = request::response_to(req, 200, "OK") {
                    let _ = self.ep.send(ok.as_bytes()).await;
                }
                return Err(AnswerError::Cancelled);
            }
            _ => tracing::debug!(method = %req.method, "ignored a request while the INVITE is pending"),
        }
        Ok(())
    }

    async fn resend(&self) {
        if let Some(r) = &self.last_response {
            let _ = self.ep.send(r.as_bytes()).await;
        }
    }

    /// Sends a final error (4xx-6xx) and waits (bounded) for its ACK, retransmitting on UDP.
    pub async fn reject(&mut self, code: u16, reason: &str, extra: &[String], requests: &mut CallRequests) {
        if !self.send(code, reason, extra, None).await {
            return;
        }
        let _ = self.await_ack(requests, false).await;
    }

    /// Sends 200 with `sdp` and retransmits it until the ACK; returns the confirmed dialog.
    pub async fn accept(&mut self, sdp: &[u8], requests: &mut CallRequests) -> Result<Dialog, AnswerError> {
        self.accept_with(sdp, &[], requests).await.map(|(dialog, _)| dialog)
    }

    /// [`IncomingInvite::accept`] with `extra` header lines in the 200 (Session-Expires, ...);
    /// also returns the ACK's body (the answer, when the INVITE came without an offer).
    pub async fn accept_with(
        &mut self,
        sdp: &[u8],
        extra: &[String],
        requests: &mut CallRequests,
    ) -> Result<(Dialog, Vec<u8>), AnswerError> {
        let mut dialog = Dialog::from_incoming(&self.invite, &self.local_tag)?;
        dialog.outbound = Some(self.ep.outbound_route());
        let mut headers = vec![format!("Contact: <{}>", self.contact), "Supported: replaces, timer".to_string()];
        headers.extend_from_slice(extra);
        if !self.send(200, "OK", &headers, Some(("application/sdp", sdp))).await {
            return Err(AnswerError::FlowClosed);
        }
        let ack_body = self.await_ack(requests, true).await?;
        Ok((dialog, ack_body))
    }

    /// Retransmits the last response until an ACK arrives (timer G, H = 64*T1); returns its body.
    async fn await_ack(&mut self, requests: &mut CallRequests, is_2xx: bool) -> Result<Vec<u8>, AnswerError> {
        let reliable = !self.ep.flow().is_unreliable();
        let give_up = Instant::now() + self.timers.t1 * 64;
        let mut interval = self.timers.t1;
        let mut next = Instant::now() + interval;
        loop {
            tokio::select! {
                _ = sleep_until(give_up) => return if is_2xx { Err(AnswerError::NoAck) } else { Ok(Vec::new()) },
                // RFC 3261 13.3.1.4: the core retransmits a 2xx even on reliable transports.
                _ = sleep_until(next), if is_2xx || !reliable => {
                    self.resend().await;
                    interval = (interval * 2).min(self.timers.t2);
                    next = Instant::now() + interval;
                }
                req = requests.recv() => match req {
                    None => return Err(AnswerError::FlowClosed),
                    Some(req) => match req.method {
                        rsip::Method::Ack => return Ok(req.body().clone()),
                        rsip::Method::Invite if self.same_transaction(&req) => self.resend().await,
                        rsip::Method::Bye if is_2xx => {
                            if let Some(ok) = request::response_to(&req, 200, "OK") {
                                let _ = self.ep.send(ok.as_bytes()).await;
                            }
                            return Err(AnswerError::ByeBeforeAck);
                        }
                        rsip::Method::Cancel => {
                            // Too late to cancel: the final response is out (9.2).
                            if let Some(ok) = request::response_to(&req, 200, "OK") {
                                let _ = self.ep.send(ok.as_bytes()).await;
                            }
                        }
                        _ => tracing::debug!(method = %req.method, "ignored while waiting for ACK"),
                    },
                },
            }
        }
    }
}

/// How long a pending INVITE may ring before we give up with 480 (no answer).
pub const RING_TIMEOUT: Duration = Duration::from_secs(120);
