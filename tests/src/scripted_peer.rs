//! A scripted SIP peer for tests of bad input and timing (never a stand-in for a real
//! registrar's normal behaviour: those tests use Kamailio and SIPp).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A UDP peer playing registrar, one datagram at a time.
pub struct Peer {
    sock: UdpSocket,
    client: Option<SocketAddr>,
}

impl Peer {
    /// Binds a UDP socket on 127.0.0.1.
    pub fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Peer { sock, client: None }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// The next REGISTER that `accept` likes (retransmissions and others are skipped).
    pub fn register(&mut self, accept: impl Fn(&str) -> bool) -> String {
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(Instant::now() < end, "no suitable REGISTER arrived");
            let (n, from) = self.sock.recv_from(&mut buf).expect("a REGISTER");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("REGISTER ") && accept(&text) {
                self.client = Some(from);
                return text;
            }
        }
    }

    /// The next request of `method` within `t` (other datagrams are skipped); None if none came.
    pub fn request(&mut self, method: &str, t: Duration) -> Option<String> {
        let end = Instant::now() + t;
        while Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let msg = self.recv_within(left)?;
            if msg.starts_with(&format!("{method} ")) {
                return Some(msg);
            }
        }
        None
    }

    /// Sends raw bytes to the desk.
    pub fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.client.expect("a client")).unwrap();
    }

    /// A response to `req` with the given status line and extra header lines.
    pub fn reply(&self, req: &str, status: &str, extra: &[&str]) {
        self.send(response(req, status, extra).as_bytes());
    }

    /// Waits for any datagram (a reply of the desk) for up to `t`.
    pub fn recv_within(&self, t: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(t)).unwrap();
        let mut buf = vec![0u8; 65536];
        let r = self.sock.recv_from(&mut buf).ok().map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned());
        self.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        r
    }
}

/// The first header line named `name` (whole line), or "".
pub fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines().find(|l| l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase()))).unwrap_or("")
}

/// A response to `req`: its Via, From, To, Call-ID and CSeq, then `extra` lines.
pub fn response(req: &str, status: &str, extra: &[&str]) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        out.push_str(header(req, h));
        out.push_str("\r\n");
    }
    for e in extra {
        out.push_str(e);
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The URI inside the request's Contact.
pub fn contact_uri(req: &str) -> String {
    let c = header(req, "Contact");
    c[c.find('<').unwrap() + 1..c.find('>').unwrap()].to_string()
}

impl Default for Peer {
    fn default() -> Peer {
        Peer::new()
    }
}
