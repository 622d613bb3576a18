//! A flow to one SIP server over UDP or TCP: outbound bytes in, parsed inbound messages out.
//!
//! UDP uses a connected socket, so ICMP "port unreachable" from the server surfaces at once as
//! [`Inbound::Unreachable`]. TCP frames messages by Content-Length ([`super::framing`]) and
//! answers RFC 5626 pings. A reader task per flow parses with rsip; what does not parse is logged
//! and dropped, never fatal. A TLS flow can be added beside TCP with the same framing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, Mutex};

use super::framing::{Frame, StreamFramer};
use crate::store::Protocol;

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest UDP datagram we read.
const MAX_DATAGRAM: usize = 65_535;

/// What the reader task delivers.
#[derive(Debug)]
pub enum Inbound {
    /// A parsed SIP message.
    Message(rsip::SipMessage),
    /// A keepalive pong (TCP CRLF).
    Pong,
    /// The server's port is closed (ICMP port unreachable on UDP).
    Unreachable,
    /// The connection is gone (TCP close, reset or framing failure); no more will come.
    Closed(String),
}

/// One transport flow to a server.
#[derive(Clone)]
pub struct Flow {
    proto: Protocol,
    local: SocketAddr,
    remote: SocketAddr,
    writer: Writer,
}

#[derive(Clone)]
enum Writer {
    Udp(Arc<UdpSocket>),
    Tcp(Arc<Mutex<tokio::net::tcp::OwnedWriteHalf>>),
}

impl Flow {
    /// Opens a flow to `remote` and starts its reader; inbound traffic arrives on the receiver.
    ///
    /// A UDP flow binds `reuse_port` when given and free, so a reconnecting account keeps its
    /// Contact (and the registrar replaces its binding instead of gaining a stale one).
    pub async fn connect(
        proto: Protocol,
        remote: SocketAddr,
        reuse_port: Option<u16>,
    ) -> std::io::Result<(Flow, mpsc::Receiver<Inbound>)> {
        let (tx, rx) = mpsc::channel(64);
        let flow = match proto {
            Protocol::Udp => {
                let any: std::net::IpAddr = if remote.is_ipv6() {
                    std::net::Ipv6Addr::UNSPECIFIED.into()
                } else {
                    std::net::Ipv4Addr::UNSPECIFIED.into()
                };
                let sock = match reuse_port {
                    Some(p) => bind_again(SocketAddr::new(any, p)).await?,
                    None => UdpSocket::bind(SocketAddr::new(any, 0)).await?,
                };
                let sock = Arc::new(sock);
                sock.connect(remote).await?;
                tokio::spawn(read_udp(sock.clone(), tx));
                Flow { proto, local: sock.local_addr()?, remote, writer: Writer::Udp(sock) }
            }
            Protocol::Tcp => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote))
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TCP connect timed out"))??;
                stream.set_nodelay(true)?;
                let local = stream.local_addr()?;
                let (read, write) = stream.into_split();
                let write = Arc::new(Mutex::new(write));
                tokio::spawn(read_tcp(read, write.clone(), tx));
                Flow { proto, local, remote, writer: Writer::Tcp(write) }
            }
        };
        tracing::debug!(local = %flow.local, remote = %flow.remote, proto = flow.proto.as_str(), "SIP flow open");
        Ok((flow, rx))
    }

    /// Sends one message (or keepalive bytes).
    pub async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        // RUST_LOG=sipdesk_core::sip::transport=trace shows the wire (digests, never passwords).
        tracing::trace!("sent:\n{}", String::from_utf8_lossy(bytes));
        match &self.writer {
            Writer::Udp(s) => s.send(bytes).await.map(|_| ()),
            Writer::Tcp(w) => w.lock().await.write_all(bytes).await,
        }
    }

    /// Our address as the socket sees it.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The server's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The transport.
    pub fn proto(&self) -> Protocol {
        self.proto
    }

    /// True when retransmissions are ours to do (RFC 3261 17.1.2.2: only on unreliable transports).
    pub fn is_unreliable(&self) -> bool {
        self.proto == Protocol::Udp
    }

    /// Closes a TCP flow (UDP flows close when the last handle drops).
    pub async fn close(&self) {
        if let Writer::Tcp(w) = &self.writer {
            let _ = w.lock().await.shutdown().await;
        }
    }
}

/// Binds `addr` again; the previous flow's reader may need a moment to release it. Falls back
/// to any free port of the same family.
async fn bind_again(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    for _ in 0..10 {
        if let Ok(s) = UdpSocket::bind(addr).await {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(port = addr.port(), "previous SIP port is taken; using a new one");
    UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).await
}

/// The local address the OS would use to reach `remote` (no packet is sent).
pub async fn route_local_ip(remote: SocketAddr) -> Option<std::net::IpAddr> {
    let bind: SocketAddr = if remote.is_ipv6() { "[::]:0".parse().ok()? } else { "0.0.0.0:0".parse().ok()? };
    let s = UdpSocket::bind(bind).await.ok()?;
    s.connect(remote).await.ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

async fn read_udp(sock: Arc<UdpSocket>, tx: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // End with the flow: otherwise this task would keep the socket (and its port) forever.
        let received = tokio::select! {
            r = sock.recv(&mut buf) => r,
            _ = tx.closed() => return,
        };
        let item = match received {
            Ok(n) => match parse(&buf[..n]) {
                Some(m) => Inbound::Message(m),
                None => continue,
            },
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Inbound::Unreachable,
            Err(e) => {
                tracing::warn!("UDP receive failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if tx.send(item).await.is_err() {
            return; // The flow's owner is gone.
        }
    }
}

async fn read_tcp(
    mut read: tokio::net::tcp::OwnedReadHalf,
    write: Arc<Mutex<tokio::net::tcp::OwnedWriteHalf>>,
    tx: mpsc::Sender<Inbound>,
) {
    let mut framer = StreamFramer::default();
    let mut buf = vec![0u8; 16 * 1024];
    let reason = loop {
        let read_result = tokio::select! {
            r = read.read(&mut buf) => r,
            _ = tx.closed() => return,
        };
        let n = match read_result {
            Ok(0) => break "connection closed by the server".to_string(),
            Ok(n) => n,
            Err(e) => break format!("connection error: {e}"),
        };
        framer.push(&buf[..n]);
        let failed = loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(bytes))) => {
                    if let Some(m) = parse(&bytes) {
                        if tx.send(Inbound::Message(m)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Some(Frame::Pong)) => {
                    if tx.send(Inbound::Pong).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = write.lock().await.write_all(b"\r\n").await;
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        if let Some(e) = failed {
            tracing::warn!("closing TCP flow: {e}");
            let _ = write.lock().await.shutdown().await;
            break e;
        }
    };
    let _ = tx.send(Inbound::Closed(reason)).await;
}

/// Parses one message; garbage is logged (with a short, printable excerpt) and dropped.
fn parse(bytes: &[u8]) -> Option<rsip::SipMessage> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return None; // A UDP keepalive (CRLF) from the server.
    }
    tracing::trace!("received:\n{}", String::from_utf8_lossy(bytes));
    match rsip::SipMessage::try_from(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            let excerpt: String = String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            tracing::warn!(bytes = bytes.len(), "dropped unparseable SIP message ({e}): {excerpt:?}");
            None
        }
    }
}
