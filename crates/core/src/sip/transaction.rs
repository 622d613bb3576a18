//! Non-INVITE client transactions (RFC 3261 17.1.2): retransmit on UDP with timer E (T1
//! doubling up to T2), give up at timer F, match responses by the top Via branch and the CSeq
//! method. Responses reach a transaction through its flow's [`Endpoint`], so several can run
//! on one flow at once.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::endpoint::{Endpoint, TxSignal};
use super::message;
use super::request;

/// RFC 3261 timer values.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests (4 s).
    pub t2: Duration,
    /// Transaction timeout, timer F (64 * T1 = 32 s).
    pub timer_f: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        let t1 = Duration::from_millis(500);
        Timers { t1, t2: Duration::from_secs(4), timer_f: t1 * 64 }
    }
}

/// How a transaction ended.
#[derive(Debug)]
pub enum Outcome {
    /// A final (2xx-6xx) response.
    Final(rsip::Response),
    /// No final response before the deadline (timer F, or a shorter keepalive deadline).
    Timeout,
    /// The server's port is closed (ICMP).
    Unreachable,
    /// The transport flow closed.
    Closed(String),
    /// Sending failed locally.
    SendFailed(String),
}

/// Runs one non-INVITE transaction to completion on `ep`.
pub async fn run(ep: &Endpoint, req: &rsip::Request, deadline: Duration, timers: &Timers) -> Outcome {
    let Some(branch) = message::branch(req) else { return Outcome::SendFailed("request without a branch".into()) };
    let method = req.method;
    let bytes = req.to_string().into_bytes();
    let (_guard, mut signals) = ep.expect(&branch);
    if let Err(e) = ep.send(&bytes).await {
        return Outcome::SendFailed(e.to_string());
    }
    let give_up = Instant::now() + deadline.min(timers.timer_f);
    let mut interval = timers.t1;
    let mut retransmit = Instant::now() + interval;
    let resend = ep.flow().is_unreliable();
    loop {
        tokio::select! {
            _ = sleep_until(give_up) => return Outcome::Timeout,
            _ = sleep_until(retransmit), if resend => {
                if let Err(e) = ep.send(&bytes).await {
                    return Outcome::SendFailed(e.to_string());
                }
                interval = (interval * 2).min(timers.t2);
                retransmit = Instant::now() + interval;
            }
            signal = signals.recv() => match signal {
                None => return Outcome::Closed("endpoint gone".into()),
                Some(TxSignal::Closed(reason)) => return Outcome::Closed(reason),
                Some(TxSignal::Unreachable) => return Outcome::Unreachable,
                Some(TxSignal::Response(r)) => {
                    if message::cseq(&r).map(|(_, m)| m) != Some(method) {
                        tracing::debug!(code = r.status_code.code(), "dropped a response whose CSeq method does not match");
                        continue;
                    }
                    if r.status_code.code() >= 200 {
                        return Outcome::Final(r);
                    }
                    // A provisional response stops retransmissions growing past T2 (17.1.2.2).
                    interval = timers.t2;
                }
            }
        }
    }
}

/// Answers a request that no one else handles: OPTIONS gets 200, others 501 (the calls layer
/// will take INVITE and friends).
pub async fn answer_plainly(ep: &Endpoint, req: &rsip::Request) {
    let (code, reason) = match req.method {
        rsip::Method::Options => (200, "OK"),
        rsip::Method::Ack => return, // Never answered.
        _ => (501, "Not Implemented"),
    };
    match request::response_to(req, code, reason) {
        Some(resp) => {
            tracing::debug!(method = %req.method, code, "answered a request from the server");
            let _ = ep.send(resp.as_bytes()).await;
        }
        None => tracing::warn!(method = %req.method, "dropped a request without Via, From, To, Call-ID or CSeq"),
    }
}
