//! The calling side of an INVITE inside a confirmed dialog (hold, resume, session refresh):
//! RFC 3261 14.1 and 17.1.1. Retransmits on UDP until a provisional, gives up at timer B, ACKs
//! the final answer (a 2xx with a new ACK, again for each retransmitted 2xx; an error inside
//! the transaction). While it is pending, the peer's own INVITE or UPDATE in the dialog gets
//! 491 Request Pending (glare); its other requests are kept for the call to handle after.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::dialog::Dialog;
use super::endpoint::{Endpoint, TxSignal};
use super::invite_server::CallRequests;
use super::request;
use super::transaction::Timers;

/// How a re-INVITE ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReinviteOutcome {
    /// 2xx: the peer's SDP answer.
    Answered(Vec<u8>),
    /// 491: both sides asked at once; retry after [`glare_retry_after`].
    Glare,
    /// Another final status: the session goes on as it was (RFC 3261 14.1).
    Refused(u16),
    /// No final response before timer B.
    Timeout,
    /// The flow closed or failed.
    FlowLost,
}

/// Our Via (without branch) on `ep`.
pub fn via(ep: &Endpoint) -> String {
    format!("SIP/2.0/{} {}", ep.flow().proto().as_str(), request::host_port(ep.flow().local()))
}

/// The wait before retrying after a 491 (RFC 3261 14.1): 2.1-4 s when we chose the Call-ID
/// (we sent the first INVITE), else 0-2 s, in 10 ms steps; `unit` is uniform in 0..1.
pub fn glare_retry_after(we_own_call_id: bool, unit: f64) -> Duration {
    let steps = (unit.clamp(0.0, 0.999_999) * if we_own_call_id { 190.0 } else { 201.0 }) as u64;
    Duration::from_millis(if we_own_call_id { 2100 + steps * 10 } else { steps * 10 })
}

/// Sends a re-INVITE with `sdp` in `dialog` and runs it to its end. `extra` are header lines
/// (Contact, Session-Expires, ...). Requests from the peer that arrive meanwhile and are not
/// answered with 491 are pushed to `deferred`.
pub async fn reinvite(
    ep: &Endpoint,
    dialog: &mut Dialog,
    sdp: &[u8],
    extra: &[String],
    requests: &mut CallRequests,
    deferred: &mut Vec<rsip::Request>,
    timers: &Timers,
) -> ReinviteOutcome {
    let branch = request::branch();
    let text = dialog.request("INVITE", None, &via(ep), &branch, extra, Some(("application/sdp", sdp)));
    let cseq = dialog.local_cseq;
    let (guard, mut signals) = ep.expect(&branch);
    if ep.send(text.as_bytes()).await.is_err() {
        return ReinviteOutcome::FlowLost;
    }
    let give_up = Instant::now() + timers.t1 * 64;
    let mut interval = timers.t1;
    let mut resend_at = Instant::now() + interval;
    let mut provisional = false;
    let final_resp = loop {
        tokio::select! {
            _ = sleep_until(give_up), if !provisional => return ReinviteOutcome::Timeout,
            _ = sleep_until(resend_at), if !provisional && ep.flow().is_unreliable() => {
                let _ = ep.send(text.as_bytes()).await;
                interval *= 2; // Timer A doubles without a cap (17.1.1.2).
                resend_at = Instant::now() + interval;
            }
            r = requests.recv() => match r {
                None => return ReinviteOutcome::FlowLost,
                Some(req) if dialog.matches(&req) && matches!(req.method, rsip::Method::Invite | rsip::Method::Update) => {
                    // Glare: ours is pending, so theirs waits (RFC 3261 14.2, RFC 3311 5.2).
                    if let Some(r) = request::response_to(&req, 491, "Request Pending") {
                        let _ = ep.send(r.as_bytes()).await;
                    }
                }
                Some(req) => deferred.push(req),
            },
            s = signals.recv() => match s {
                None | Some(TxSignal::Closed(_)) | Some(TxSignal::Unreachable) => return ReinviteOutcome::FlowLost,
                Some(TxSignal::Response(r)) if r.status_code.code() < 200 => provisional = true,
                Some(TxSignal::Response(r)) => break r,
            }
        }
    };
    let code = final_resp.status_code.code();
    if (200..300).contains(&code) {
        let ack = dialog.request("ACK", Some(cseq), &via(ep), &request::branch(), &[], None);
        let _ = ep.send(ack.as_bytes()).await;
        // Each retransmitted 2xx gets the ACK again (13.2.2.4), for 64*T1.
        let (ep2, until) = (ep.clone(), Instant::now() + timers.t1 * 64);
        tokio::spawn(async move {
            let _guard = guard;
            while let Ok(Some(TxSignal::Response(r))) = tokio::time::timeout_at(until, signals.recv()).await {
                if (200..300).contains(&r.status_code.code()) {
                    let _ = ep2.send(ack.as_bytes()).await;
                }
            }
        });
        return ReinviteOutcome::Answered(final_resp.body().clone());
    }
    // An error response is acknowledged inside the transaction: same branch and CSeq number.
    let ack = dialog.request("ACK", Some(cseq), &via(ep), &branch, &[], None);
    let _ = ep.send(ack.as_bytes()).await;
    if code == 491 {
        ReinviteOutcome::Glare
    } else {
        ReinviteOutcome::Refused(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glare_waits_follow_rfc_3261_14_1() {
        assert_eq!(glare_retry_after(true, 0.0), Duration::from_millis(2100));
        assert_eq!(glare_retry_after(true, 1.0), Duration::from_millis(3990));
        assert_eq!(glare_retry_after(false, 0.0), Duration::ZERO);
        assert_eq!(glare_retry_after(false, 1.0), Duration::from_millis(2000));
    }
}
