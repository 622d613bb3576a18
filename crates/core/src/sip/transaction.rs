//! Non-INVITE client transactions (RFC 3261 17.1.2): retransmit on UDP with timer E (T1
//! doubling up to T2), give up at timer F, match responses by the top Via branch and the CSeq
//! method. While waiting, other inbound traffic is still served: requests from the server are
//! answered, pongs counted, strays logged and dropped.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::message;
use super::request;
use super::transport::{Flow, Inbound};

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

/// Inbound traffic of one flow, with what the owner wants to know about it.
pub struct Inbox {
    rx: mpsc::Receiver<Inbound>,
    /// Pongs received so far (TCP keepalive).
    pub pongs: u64,
    /// Set once the flow closed.
    pub closed: Option<String>,
}

impl Inbox {
    /// Wraps a flow's receiver.
    pub fn new(rx: mpsc::Receiver<Inbound>) -> Inbox {
        Inbox { rx, pongs: 0, closed: None }
    }

    /// Waits for the next inbound item and serves it. Returns a response the caller may be
    /// waiting for, or an event that ends the flow's usefulness.
    pub async fn next(&mut self, flow: &Flow) -> Option<Event> {
        if self.closed.is_some() {
            return Some(Event::Closed);
        }
        match self.rx.recv().await {
            None => {
                self.closed = Some("flow reader ended".into());
                Some(Event::Closed)
            }
            Some(Inbound::Closed(reason)) => {
                self.closed = Some(reason);
                Some(Event::Closed)
            }
            Some(Inbound::Unreachable) => Some(Event::Unreachable),
            Some(Inbound::Pong) => {
                self.pongs += 1;
                None
            }
            Some(Inbound::Message(rsip::SipMessage::Response(r))) => Some(Event::Response(r)),
            Some(Inbound::Message(rsip::SipMessage::Request(req))) => {
                serve_request(flow, &req).await;
                None
            }
        }
    }
}

/// Something the owner of a flow must react to.
#[derive(Debug)]
pub enum Event {
    /// A response (maybe for a transaction, maybe a stray).
    Response(rsip::Response),
    /// ICMP port unreachable.
    Unreachable,
    /// The flow closed.
    Closed,
}

/// Runs one non-INVITE transaction to completion.
pub async fn run(flow: &Flow, inbox: &mut Inbox, req: &rsip::Request, deadline: Duration, timers: &Timers) -> Outcome {
    let Some(branch) = message::branch(req) else { return Outcome::SendFailed("request without a branch".into()) };
    let method = req.method.clone();
    let bytes = req.to_string().into_bytes();
    if let Err(e) = flow.send(&bytes).await {
        return Outcome::SendFailed(e.to_string());
    }
    let give_up = Instant::now() + deadline.min(timers.timer_f);
    let mut interval = timers.t1;
    let mut retransmit = Instant::now() + interval;
    loop {
        let resend = flow.is_unreliable();
        tokio::select! {
            _ = sleep_until(give_up) => return Outcome::Timeout,
            _ = sleep_until(retransmit), if resend => {
                if let Err(e) = flow.send(&bytes).await {
                    return Outcome::SendFailed(e.to_string());
                }
                interval = (interval * 2).min(timers.t2);
                retransmit = Instant::now() + interval;
            }
            ev = inbox.next(flow) => match ev {
                None => {}
                Some(Event::Closed) => return Outcome::Closed(inbox.closed.clone().unwrap_or_default()),
                Some(Event::Unreachable) => return Outcome::Unreachable,
                Some(Event::Response(r)) => {
                    let ours = message::branch(&r).as_deref() == Some(branch.as_str())
                        && message::cseq(&r).map(|(_, m)| m) == Some(method.clone());
                    if !ours {
                        tracing::debug!(code = r.status_code.code(), "dropped a response that matches no transaction");
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

/// Answers a request the server sent us on this flow: OPTIONS gets 200, others 501 for now.
async fn serve_request(flow: &Flow, req: &rsip::Request) {
    let (code, reason) = match req.method {
        rsip::Method::Options => (200, "OK"),
        rsip::Method::Ack => return, // Never answered.
        _ => (501, "Not Implemented"),
    };
    match request::response_to(req, code, reason) {
        Some(resp) => {
            tracing::debug!(method = %req.method, code, "answered a request from the server");
            let _ = flow.send(resp.as_bytes()).await;
        }
        None => tracing::warn!(method = %req.method, "dropped a request without Via, From, To, Call-ID or CSeq"),
    }
}
