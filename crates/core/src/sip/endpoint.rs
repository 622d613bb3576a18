//! One flow's SIP endpoint: a dispatcher task routes each response to the client transaction
//! waiting for its branch, and each request to the flow's owner, so registration, keepalives
//! and (later) calls share one flow and run transactions side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::message;
use super::transport::{Flow, Inbound};

/// What a waiting client transaction can be told.
#[derive(Debug)]
pub(super) enum TxSignal {
    /// A response carrying its branch.
    Response(rsip::Response),
    /// ICMP port unreachable on the flow.
    Unreachable,
    /// The flow closed.
    Closed(String),
}

/// What the flow's owner hears about.
#[derive(Debug)]
pub enum FlowEvent {
    /// A request from the server (answer it with [`Endpoint::send`]).
    Request(rsip::Request),
    /// A keepalive pong (TCP).
    Pong,
    /// The server's port is closed (ICMP).
    Unreachable,
    /// The flow closed; nothing more will come.
    Closed(String),
}

type Pending = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<TxSignal>>>>;

/// A flow with its transaction routing. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    flow: Flow,
    pending: Pending,
}

impl Endpoint {
    /// Starts routing the flow's inbound traffic; the owner's events arrive on the receiver.
    pub fn start(flow: Flow, inbound: mpsc::Receiver<Inbound>) -> (Endpoint, mpsc::Receiver<FlowEvent>) {
        let pending: Pending = Arc::default();
        let (events_tx, events) = mpsc::channel(64);
        tokio::spawn(dispatch(inbound, pending.clone(), events_tx));
        (Endpoint { flow, pending }, events)
    }

    /// The flow underneath.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// Our server (registrar or outbound proxy) as a loose route, for in-dialog requests whose
    /// dialog has no route set of its own.
    pub fn outbound_route(&self) -> String {
        let proto = if self.flow.proto() == crate::store::Protocol::Tcp { ";transport=tcp" } else { "" };
        format!("<sip:{}{proto};lr>", super::request::host_port(self.flow.remote()))
    }

    /// Sends bytes as they are (a response, an ACK, a keepalive).
    pub async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.flow.send(bytes).await
    }

    /// Registers a client transaction's branch; signals for it arrive on the receiver until the
    /// returned guard is dropped.
    pub(super) fn expect(&self, branch: &str) -> (PendingGuard, mpsc::UnboundedReceiver<TxSignal>) {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.pending).insert(branch.to_string(), tx);
        (PendingGuard { pending: self.pending.clone(), branch: branch.to_string() }, rx)
    }
}

/// Removes a transaction's routing entry when it ends, however it ends.
pub(super) struct PendingGuard {
    pending: Pending,
    branch: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.branch);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn dispatch(mut inbound: mpsc::Receiver<Inbound>, pending: Pending, events: mpsc::Sender<FlowEvent>) {
    loop {
        // Ending with the owner drops `inbound`, which ends the reader and frees the socket.
        let item = tokio::select! {
            item = inbound.recv() => item,
            _ = events.closed() => None,
        };
        let Some(item) = item else { break };
        let event = match item {
            Inbound::Message(rsip::SipMessage::Response(r)) => {
                let waiting = message::branch(&r).and_then(|b| lock(&pending).get(&b).cloned());
                match waiting {
                    Some(tx) => {
                        let _ = tx.send(TxSignal::Response(r));
                    }
                    None => {
                        tracing::debug!(code = r.status_code.code(), "dropped a response that matches no transaction")
                    }
                }
                continue;
            }
            Inbound::Message(rsip::SipMessage::Request(req)) => FlowEvent::Request(req),
            Inbound::Pong => FlowEvent::Pong,
            Inbound::Unreachable => {
                broadcast(&pending, || TxSignal::Unreachable);
                FlowEvent::Unreachable
            }
            Inbound::Closed(reason) => {
                broadcast(&pending, || TxSignal::Closed(reason.clone()));
                let _ = events.send(FlowEvent::Closed(reason)).await;
                return;
            }
        };
        // Never wait on the owner here: it may itself be waiting for a response this task
        // must route. A flood of requests beyond the queue is dropped with a log line.
        match events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => tracing::warn!("SIP flow busy; dropped {e:?}"),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
    broadcast(&pending, || TxSignal::Closed("flow reader ended".into()));
    let _ = events.send(FlowEvent::Closed("flow reader ended".into())).await;
}

fn broadcast(pending: &Pending, signal: impl Fn() -> TxSignal) {
    for tx in lock(pending).values() {
        let _ = tx.send(signal());
    }
}
