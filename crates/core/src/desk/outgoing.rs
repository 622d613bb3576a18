//! Outgoing calls: `dial` turns a number or URI into a target for the chosen account, sends the
//! INVITE on the account's flow, follows it (calling, ringing, early), and once answered runs the
//! same confirmed-call loop as incoming calls.

use tokio::sync::mpsc;

use super::calls::{audio_endpoint, bind_rtp, lock, CallCommand, CallEntry};
use super::incall::{InCall, Renegotiation};
use super::{ApiError, Desk};
use crate::media::offer_answer::{LocalMedia, MediaPolicy, SdpSession};
use crate::media::rtp_session::RtpSession;
use crate::media::sdp::Direction;
use crate::media::switchboard::Switchboard;
use crate::sip::invite_client::{InviteResult, OutgoingInvite, Progress};
use crate::sip::request;
use crate::sip::transaction::Timers;
use crate::store::{validate, Account};

/// The SIP URI to call: a full `sip:`/`sips:` URI as is, `user@host` as a SIP URI, a number or
/// extension (spaces, dashes, dots and brackets dropped) at the account's domain.
pub fn dial_target(input: &str, account: &Account) -> Result<String, ApiError> {
    let v = input.trim();
    let uri = if v.contains('@') && !v.contains(':') { format!("sip:{v}") } else { v.to_string() };
    if uri.starts_with("sip:") || uri.starts_with("sips:") {
        let ok = rsip::Uri::try_from(uri.as_str()).is_ok() && !uri.contains(char::is_whitespace);
        return if ok { Ok(uri) } else { Err(ApiError::new("invalid_argument", format!("not a SIP URI: {v:?}"))) };
    }
    let user: String = v.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    validate::username(&user)
        .map_err(|_| ApiError::new("invalid_argument", format!("not a number, extension or SIP URI: {v:?}")))?;
    Ok(format!("sip:{user}@{}", request::domain(account)))
}

/// Maps a final status to a stable end reason.
fn refused_reason(code: u16) -> &'static str {
    match code {
        486 | 600 => "busy",
        603 => "declined",
        404 | 604 => "not_found",
        480 => "unavailable",
        408 => "timeout",
        488 | 606 => "incompatible_media",
        401 | 407 | 403 => "forbidden",
        _ => "rejected",
    }
}

impl Desk {
    /// Places a call from `account_id` (default: the default account) to a number or SIP URI;
    /// returns the call id. Progress arrives as `call` events.
    pub fn dial(&self, target: &str, account_id: Option<i64>) -> Result<String, ApiError> {
        self.dial_with(target, account_id, Vec::new())
    }

    /// [`Desk::dial`] with extra header lines in the INVITE (a followed REFER's Replaces).
    pub(super) fn dial_with(
        &self,
        target: &str,
        account_id: Option<i64>,
        extra: Vec<String>,
    ) -> Result<String, ApiError> {
        let account_id = match account_id {
            Some(id) => id,
            None => {
                self.default_account_id().ok_or_else(|| ApiError::new("no_account", "no SIP account to call from"))?
            }
        };
        let account = lock(&self.inner.loaded)
            .get(&account_id)
            .map(|l| l.account.clone())
            .ok_or_else(|| ApiError::new("not_found", format!("account {account_id} is not active")))?;
        let uri = dial_target(target, &account)?;
        let ep = lock(&self.inner.registrations).get(&account_id).and_then(|h| h.endpoint()).ok_or_else(|| {
            ApiError::new("not_registered", format!("account {account_id} has no connection to its server yet"))
        })?;
        let rt =
            lock(&self.inner.runtime).clone().ok_or_else(|| ApiError::new("not_running", "the desk is not running"))?;
        let mut invite = OutgoingInvite::new(ep.clone(), account, uri.clone(), Timers::default());
        invite.extra_headers = extra;
        let call_id = invite.call_id().to_string();
        let (req_tx, mut requests) = mpsc::unbounded_channel();
        let (cmd_tx, mut commands) = mpsc::unbounded_channel();
        lock(&self.inner.calls.live)
            .insert(call_id.clone(), CallEntry { requests: req_tx, commands: cmd_tx, view: None, dialog: None });
        let desk = self.clone();
        let id = call_id.clone();
        rt.spawn(async move {
            let reason = desk.run_outgoing(account_id, &mut invite, &uri, &mut requests, &mut commands).await;
            lock(&desk.inner.calls.live).remove(&id);
            tracing::info!(call_id = %id, reason, "call ended");
        });
        Ok(call_id)
    }

    async fn run_outgoing(
        &self,
        account_id: i64,
        invite: &mut OutgoingInvite,
        uri: &str,
        requests: &mut crate::sip::invite_server::CallRequests,
        commands: &mut mpsc::UnboundedReceiver<CallCommand>,
    ) -> &'static str {
        let call_id = invite.call_id().to_string();
        let ev = |state, codec, reason| {
            self.call_event_dir("out", &call_id, account_id, state, &format!("<{uri}>"), codec, reason)
        };
        let ep = lock(&self.inner.registrations).get(&account_id).and_then(|h| h.endpoint());
        let Some(ep) = ep else {
            ev("ended", None, Some("network_down"));
            return "network_down";
        };
        let local_ip = ep.flow().local().ip();
        let rtp = match bind_rtp(local_ip).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("no RTP port: {e}");
                ev("ended", None, Some("media_error"));
                return "media_error";
            }
        };
        let mut sdp = SdpSession::new(
            MediaPolicy::for_account(
                lock(&self.inner.loaded).get(&account_id).and_then(|l| l.account.codecs.as_deref()),
            ),
            crate::desk::now_ms(),
        );
        let local = LocalMedia {
            address: super::calls::media_address(local_ip),
            port: rtp.port(),
            direction: Direction::SendRecv,
        };
        let offer = sdp.offer(local);
        let contact = invite.contact().to_string();
        ev("calling", None, None);
        let (cancel_tx, cancel_rx) = mpsc::unbounded_channel();
        let (progress_tx, mut progress) = mpsc::unbounded_channel();
        let run = invite.run(offer.as_bytes(), cancel_rx, progress_tx);
        tokio::pin!(run);
        let mut ringback = None;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                p = progress.recv() => match p {
                    Some(Progress::Ringing) => {
                        ev("ringing", None, None);
                        if ringback.is_none() {
                            ringback = super::tones::play(&self.inner.audio, crate::media::tone::ToneSpec::ringback_eu());
                        }
                    }
                    Some(Progress::Early(_)) => {
                        // The far end sends its own ringback or announcement now.
                        ringback = None;
                        ev("early", None, None);
                    }
                    None => {}
                },
                c = commands.recv() => if matches!(c, Some(CallCommand::Hangup | CallCommand::Reject) | None) {
                    let _ = cancel_tx.send(());
                },
            }
        };
        drop(ringback);
        let (mut dialog, answer) = match result {
            InviteResult::Answered(d, a) => (d, a),
            InviteResult::AnsweredAfterCancel(mut d) => {
                self.hangup(&ep, &mut d).await;
                ev("ended", None, Some("cancelled"));
                return "cancelled";
            }
            InviteResult::Cancelled => {
                ev("ended", None, Some("cancelled"));
                return "cancelled";
            }
            InviteResult::Refused(code) => {
                let reason = refused_reason(code);
                ev("ended", None, Some(reason));
                return reason;
            }
            InviteResult::Timeout => {
                ev("ended", None, Some("timeout"));
                return "timeout";
            }
            InviteResult::FlowLost => {
                ev("ended", None, Some("network_down"));
                return "network_down";
            }
        };
        let negotiated = match sdp.accept_answer(&String::from_utf8_lossy(&answer)) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(call_id, "unusable SDP answer: {e}");
                self.hangup(&ep, &mut dialog).await;
                ev("ended", None, Some("incompatible_media"));
                return "incompatible_media";
            }
        };
        let codec = Some(negotiated.codec.name());
        // The switchboard sits between the desk's audio and the call, for handoffs to the AI.
        let media =
            audio_endpoint(&self.inner.audio, negotiated.codec).map(Switchboard::wrap).and_then(|(board, ep)| {
                RtpSession::start(rtp, negotiated, ep).map(|m| (m, board)).map_err(|e| e.to_string())
            });
        let (mut media, board) = match media {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(call_id, "cannot start the call's audio: {e}");
                self.hangup(&ep, &mut dialog).await;
                ev("ended", codec, Some("media_error"));
                return "media_error";
            }
        };
        self.register_dialog(&call_id, &dialog);
        ev("active", codec, None);
        let levels = self.report_levels(&call_id, &media, negotiated.codec.name());
        let offers = Renegotiation { sdp: &mut sdp, local, contact };
        let mut call = InCall::new(&call_id, &ep, &mut dialog, requests, commands, offers, &mut media, negotiated, &ev);
        call.we_own_call_id = true;
        call.dtmf_mode = self.dtmf_mode(account_id);
        call.account_id = account_id;
        call.board = Some(board);
        let reason = self.in_call(&mut call).await;
        if let Some(bridge) = call.bridge.take() {
            bridge.end().await;
        }
        drop(levels);
        if let Err(e) = media.stop().await {
            tracing::warn!(call_id, "closing the call's audio: {e}");
        }
        ev("ended", codec, Some(reason));
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_targets() {
        let a = crate::store::env_account(|k| match k {
            "SIP_SERVER_HOST" => Some("pbx.example.com".into()),
            "SIP_USERNAME" => Some("1001".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(dial_target(" 010-8888 (22) ", &a).unwrap(), "sip:010888822@pbx.example.com");
        assert_eq!(dial_target("2002", &a).unwrap(), "sip:2002@pbx.example.com");
        assert_eq!(dial_target("bob@other.example", &a).unwrap(), "sip:bob@other.example");
        assert_eq!(dial_target("sip:bob@10.0.0.1:5070", &a).unwrap(), "sip:bob@10.0.0.1:5070");
        for bad in ["<script>", "", "sip:", "a b@c"] {
            assert_eq!(dial_target(bad, &a).unwrap_err().code, "invalid_argument", "{bad}");
        }
    }
}
