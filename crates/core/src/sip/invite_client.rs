//! The calling side of an INVITE (RFC 3261 13.2, 17.1.1): send the offer, retransmit on UDP
//! (timer A) until a provisional, give up at timer B, ACK every final response (in the
//! transaction for errors, again for each retransmission during timer D; as a new request for a
//! 2xx, again for each retransmitted 2xx), answer 401/407 once, and CANCEL on request. A 2xx that crosses our CANCEL is acknowledged and the call is then hung up.

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::dialog::Dialog;
use super::digest::{self, Answer};
use super::endpoint::{Endpoint, TxSignal};
use super::message;
use super::request;
use super::transaction::Timers;
use crate::store::Account;

/// What the calling side reports while the INVITE is pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// 180 Ringing (or another 18x without SDP).
    Ringing,
    /// 183 with SDP: early media from the far end.
    Early(Vec<u8>),
}

/// How an INVITE ended.
#[derive(Debug)]
pub enum InviteResult {
    /// Answered: the dialog and the SDP answer.
    Answered(Dialog, Vec<u8>),
    /// Refused with this final status code.
    Refused(u16),
    /// We cancelled it (487).
    Cancelled,
    /// The answer crossed our CANCEL: the dialog exists and must be ended with BYE.
    AnsweredAfterCancel(Dialog),
    /// No final response (timer B).
    Timeout,
    /// The flow closed or failed.
    FlowLost,
}

/// One outgoing INVITE.
pub struct OutgoingInvite {
    ep: Endpoint,
    account: Account,
    target: String,
    call_id: String,
    from_tag: String,
    cseq: u32,
    contact: String,
    timers: Timers,
    /// More header lines for the INVITE (e.g. `Replaces: ...` when following a REFER).
    pub extra_headers: Vec<String>,
}

impl OutgoingInvite {
    /// Prepares an INVITE to `target` (a SIP URI) from `account` on `ep`.
    pub fn new(ep: Endpoint, account: Account, target: String, timers: Timers) -> OutgoingInvite {
        let contact = request::contact_uri(&account, ep.flow().local(), ep.flow().proto());
        OutgoingInvite {
            ep,
            account,
            target,
            call_id: format!("{}@sipdesk", request::token(24)),
            from_tag: request::token(12),
            cseq: 0,
            contact,
            timers,
            extra_headers: Vec::new(),
        }
    }

    /// Our Contact URI in this dialog.
    pub fn contact(&self) -> &str {
        &self.contact
    }

    /// The Call-ID of this call.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    fn via(&self) -> String {
        format!("SIP/2.0/{} {}", self.ep.flow().proto().as_str(), request::host_port(self.ep.flow().local()))
    }

    fn invite_text(&self, branch: &str, sdp: &[u8], auth: Option<&(String, String)>) -> String {
        let aor = format!("sip:{}@{}", self.account.username, request::domain(&self.account));
        let display = if self.account.display_name.is_empty() {
            String::new()
        } else {
            format!("\"{}\" ", self.account.display_name.replace('"', "'"))
        };
        let mut out = format!(
            "INVITE {t} SIP/2.0\r\nVia: {via};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: {display}<{aor}>;tag={tag}\r\nTo: <{t}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nContact: <{contact}>\r\nAllow: {allow}\r\nSupported: replaces, timer\r\nUser-Agent: {ua}\r\n",
            t = self.target,
            via = self.via(),
            tag = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
            contact = self.contact,
            ua = request::USER_AGENT,
            allow = request::ALLOW
        );
        if let Some((name, value)) = auth {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        for h in &self.extra_headers {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n", sdp.len()));
        out.push_str(&String::from_utf8_lossy(sdp));
        out
    }

    /// The ACK for a non-2xx final response: same branch and CSeq number, To from the response.
    fn ack_error(&self, branch: &str, resp: &rsip::Response) -> String {
        let to = message::header_value(resp, "To", Some("t")).unwrap_or_default();
        let aor = format!("sip:{}@{}", self.account.username, request::domain(&self.account));
        format!(
            "ACK {t} SIP/2.0\r\nVia: {via};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <{aor}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            t = self.target,
            via = self.via(),
            tag = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq
        )
    }

    /// Sends the INVITE with `sdp` and runs it to its end. `cancel` asks to give up; `progress`
    /// hears about ringing and early media.
    pub async fn run(
        &mut self,
        sdp: &[u8],
        mut cancel: mpsc::UnboundedReceiver<()>,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> InviteResult {
        let mut auth: Option<(String, String)> = None;
        let mut challenged = false;
        loop {
            self.cseq += 1;
            let branch = request::branch();
            let text = self.invite_text(&branch, sdp, auth.as_ref());
            let (_guard, mut signals) = self.ep.expect(&branch);
            if self.ep.send(text.as_bytes()).await.is_err() {
                return InviteResult::FlowLost;
            }
            let give_up = Instant::now() + self.timers.t1 * 64;
            let mut interval = self.timers.t1;
            let mut resend_at = Instant::now() + interval;
            let mut provisional = false;
            let mut cancelled = false;
            let final_resp = loop {
                tokio::select! {
                    _ = sleep_until(give_up), if !provisional => return InviteResult::Timeout,
                    _ = sleep_until(resend_at), if !provisional && self.ep.flow().is_unreliable() => {
                        let _ = self.ep.send(text.as_bytes()).await;
                        interval *= 2;
                        resend_at = Instant::now() + interval;
                    }
                    c = cancel.recv(), if !cancelled => {
                        if c.is_none() {
                            continue;
                        }
                        cancelled = true;
                        // RFC 3261 9.1: a CANCEL may only follow a provisional response; before
                        // one, stop retransmitting and send it when the first provisional comes.
                        if provisional {
                            self.send_cancel(&branch).await;
                        }
                    }
                    s = signals.recv() => match s {
                        None | Some(TxSignal::Closed(_)) | Some(TxSignal::Unreachable) => return InviteResult::FlowLost,
                        Some(TxSignal::Response(r)) => {
                            let code = r.status_code.code();
                            if message::cseq(&r).map(|(_, m)| m) == Some(rsip::Method::Cancel) {
                                continue; // 200 for our CANCEL; the INVITE's 487 follows.
                            }
                            if code < 200 {
                                if !provisional && cancelled {
                                    self.send_cancel(&branch).await;
                                }
                                provisional = true;
                                match code {
                                    180..=182 => { let _ = progress.send(Progress::Ringing); }
                                    183 if !r.body().is_empty() => { let _ = progress.send(Progress::Early(r.body().clone())); }
                                    _ => {}
                                }
                                continue;
                            }
                            break r;
                        }
                    }
                }
            };
            let code = final_resp.status_code.code();
            if (200..300).contains(&code) {
                let dialog = Dialog::from_response(&final_resp, self.cseq);
                let Ok(mut dialog) = dialog else { return InviteResult::Refused(502) };
                dialog.outbound = Some(self.ep.outbound_route());
                dialog.session_timer = super::session_timer::for_uac(&final_resp);
                let ack = dialog.request("ACK", Some(self.cseq), &self.via(), &request::branch(), &[], None);
                let _ = self.ep.send(ack.as_bytes()).await;
                // RFC 3261 13.2.2.4: every retransmission of the 2xx gets the ACK again, for 64*T1.
                let (ep, linger) = (self.ep.clone(), self.timers.t1 * 64);
                tokio::spawn(async move {
                    let _guard = _guard;
                    let until = Instant::now() + linger;
                    while let Ok(Some(TxSignal::Response(r))) = tokio::time::timeout_at(until, signals.recv()).await {
                        if (200..300).contains(&r.status_code.code()) {
                            let _ = ep.send(ack.as_bytes()).await;
                        }
                    }
                });
                if cancelled {
                    // The answer crossed our CANCEL: the call exists, so end it properly.
                    return InviteResult::Answered(dialog, Vec::new()).into_cancelled();
                }
                return InviteResult::Answered(dialog, final_resp.body().clone());
            }
            let ack = self.ack_error(&branch, &final_resp);
            let _ = self.ep.send(ack.as_bytes()).await;
            if self.ep.flow().is_unreliable() {
                // Timer D (17.1.1.2): a retransmitted error response gets the same ACK, for 32 s.
                let (ep, linger) = (self.ep.clone(), self.timers.t1 * 64);
                tokio::spawn(async move {
                    let _guard = _guard;
                    let until = Instant::now() + linger;
                    while let Ok(Some(TxSignal::Response(r))) = tokio::time::timeout_at(until, signals.recv()).await {
                        if r.status_code.code() >= 300 {
                            let _ = ep.send(ack.as_bytes()).await;
                        }
                    }
                });
            }
            if cancelled || code == 487 {
                return InviteResult::Cancelled;
            }
            if (code == 401 || code == 407) && !challenged && !self.account.password.is_empty() {
                let header = if code == 407 { "Proxy-Authenticate" } else { "WWW-Authenticate" };
                let values = message::header_values(&final_resp, header, None);
                if let Ok(c) = digest::strongest(values.iter().map(String::as_str)) {
                    let user = if self.account.auth_username.is_empty() {
                        &self.account.username
                    } else {
                        &self.account.auth_username
                    };
                    let cnonce = request::token(16);
                    let a = Answer {
                        username: user,
                        password: self.account.password.expose(),
                        method: "INVITE",
                        uri: &self.target,
                        nc: 1,
                        cnonce: &cnonce,
                    };
                    auth = Some((
                        if code == 407 { "Proxy-Authorization" } else { "Authorization" }.to_string(),
                        c.answer(&a),
                    ));
                    challenged = true;
                    continue;
                }
            }
            return InviteResult::Refused(code);
        }
    }

    async fn send_cancel(&self, branch: &str) {
        let aor = format!("sip:{}@{}", self.account.username, request::domain(&self.account));
        let cancel = format!(
            "CANCEL {t} SIP/2.0\r\nVia: {via};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <{aor}>;tag={tag}\r\nTo: <{t}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} CANCEL\r\nContent-Length: 0\r\n\r\n",
            t = self.target,
            via = self.via(),
            tag = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq
        );
        let _ = self.ep.send(cancel.as_bytes()).await;
    }
}

impl InviteResult {
    fn into_cancelled(self) -> InviteResult {
        match self {
            InviteResult::Answered(d, _) => InviteResult::AnsweredAfterCancel(d),
            other => other,
        }
    }
}
