//! Builds the requests and responses the registration sends, as rsip messages.

use std::net::SocketAddr;

use rand::Rng;

use super::message;
use crate::store::{Account, Protocol};

/// Product token for User-Agent / Server.
pub const USER_AGENT: &str = concat!("SipDesk/", env!("CARGO_PKG_VERSION"));
/// Methods we answer.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY";

/// A random token for tags, Call-IDs and cnonces.
pub fn token(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// A new RFC 3261 branch (magic cookie prefix).
pub fn branch() -> String {
    format!("z9hG4bK{}", token(16))
}

/// `host` in URI form (IPv6 literals in brackets).
pub fn uri_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `host:port` of a socket address in URI and Via form (IPv6 in brackets).
pub fn host_port(a: SocketAddr) -> String {
    addr(a)
}

fn addr(a: SocketAddr) -> String {
    format!("{}:{}", uri_host(&a.ip().to_string()), a.port())
}

/// The SIP domain of an account: its domain, else its server host.
pub fn domain(a: &Account) -> String {
    uri_host(if a.domain.is_empty() { &a.server_host } else { &a.domain })
}

/// Our Contact URI for a flow seen from `public` (the address the server saw, else our socket's).
pub fn contact_uri(a: &Account, public: SocketAddr, proto: Protocol) -> String {
    let transport = if proto == Protocol::Tcp { ";transport=tcp" } else { "" };
    format!("sip:{}@{}{transport}", a.username, addr(public))
}

/// Inputs of one REGISTER.
pub struct RegisterParams<'a> {
    /// The account.
    pub account: &'a Account,
    /// Our socket address.
    pub local: SocketAddr,
    /// Transport.
    pub proto: Protocol,
    /// Contact URI to bind.
    pub contact: &'a str,
    /// Call-ID, the same for every REGISTER of this binding.
    pub call_id: &'a str,
    /// From tag, the same for every REGISTER of this binding.
    pub from_tag: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Requested expiry (0 removes the binding).
    pub expires: u32,
    /// Via branch.
    pub branch: &'a str,
    /// `Authorization` or `Proxy-Authorization` header to add.
    pub auth: Option<(&'a str, &'a str)>,
}

/// The Request-URI of a REGISTER: the domain.
pub fn register_uri(a: &Account) -> String {
    format!("sip:{}", domain(a))
}

/// Builds a REGISTER.
pub fn register(p: &RegisterParams<'_>) -> Result<rsip::Request, BuildError> {
    let aor = format!("sip:{}@{}", p.account.username, domain(p.account));
    let mut lines = vec![
        format!("Via: SIP/2.0/{} {};branch={};rport", p.proto.as_str(), addr(p.local), p.branch),
        "Max-Forwards: 70".to_string(),
        format!("From: {}<{aor}>;tag={}", display(&p.account.display_name), p.from_tag),
        format!("To: <{aor}>"),
        format!("Call-ID: {}", p.call_id),
        format!("CSeq: {} REGISTER", p.cseq),
        format!("Contact: <{}>", p.contact),
        format!("Expires: {}", p.expires),
        format!("Allow: {ALLOW}"),
        format!("User-Agent: {USER_AGENT}"),
    ];
    if !p.account.outbound_proxy.is_empty() {
        lines.push(format!("Route: <{};lr>", proxy_uri(&p.account.outbound_proxy)));
    }
    if let Some((name, value)) = p.auth {
        lines.push(format!("{name}: {value}"));
    }
    build("REGISTER", &register_uri(p.account), &lines)
}

/// Builds an OPTIONS keepalive to the server.
pub fn options(
    a: &Account,
    local: SocketAddr,
    proto: Protocol,
    cseq: u32,
    branch: &str,
) -> Result<rsip::Request, BuildError> {
    let aor = format!("sip:{}@{}", a.username, domain(a));
    let lines = vec![
        format!("Via: SIP/2.0/{} {};branch={branch};rport", proto.as_str(), addr(local)),
        "Max-Forwards: 70".to_string(),
        format!("From: <{aor}>;tag={}", token(10)),
        format!("To: <sip:{}>", domain(a)),
        format!("Call-ID: {}", token(20)),
        format!("CSeq: {cseq} OPTIONS"),
        format!("User-Agent: {USER_AGENT}"),
    ];
    build("OPTIONS", &format!("sip:{}", domain(a)), &lines)
}

fn proxy_uri(p: &str) -> String {
    let p = p.split(';').next().unwrap_or(p);
    if p.starts_with("sip:") {
        p.to_string()
    } else {
        format!("sip:{p}")
    }
}

fn display(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!("\"{}\" ", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// An account value made a request rsip cannot read back (validation should prevent it).
#[derive(Debug, thiserror::Error)]
#[error("cannot build a valid {method} from this account: {reason}")]
pub struct BuildError {
    method: &'static str,
    reason: String,
}

/// Assembles a request from its start line and header lines through rsip's parser, so what we
/// send is exactly what rsip reads back.
fn build(method: &'static str, uri: &str, lines: &[String]) -> Result<rsip::Request, BuildError> {
    let text = format!("{method} {uri} SIP/2.0\r\n{}\r\nContent-Length: 0\r\n\r\n", lines.join("\r\n"));
    rsip::Request::try_from(text.as_str()).map_err(|e| BuildError { method, reason: e.to_string() })
}

/// A response to an inbound request: Via, From, To (with a tag), Call-ID and CSeq copied.
/// None when the request lacks what a response needs (it is then dropped with a log line).
pub fn response_to(req: &rsip::Request, code: u16, reason: &str) -> Option<String> {
    response(req, code, reason, None, &[], None)
}

/// A response with our To tag (a fresh one when None and the request has none), extra header
/// lines and an optional `(content type, body)`.
pub fn response(
    req: &rsip::Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[String],
    body: Option<(&str, &[u8])>,
) -> Option<String> {
    let vias = message::header_values(req, "Via", Some("v"));
    let from = message::header_value(req, "From", Some("f"))?;
    let to = message::header_value(req, "To", Some("t"))?;
    let call_id = message::call_id(req)?;
    let cseq = message::header_value(req, "CSeq", None)?;
    if vias.is_empty() {
        return None;
    }
    let to = match (to.contains(";tag="), to_tag) {
        (true, _) => to,
        // 100 Trying carries no tag of ours (RFC 3261 8.2.6.2).
        (false, _) if code == 100 => to,
        (false, Some(tag)) => format!("{to};tag={tag}"),
        (false, None) => format!("{to};tag={}", token(10)),
    };
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for v in vias {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    // Dialog-creating responses carry the request's Record-Route (RFC 3261 12.1.1).
    if (101..300).contains(&code) {
        for rr in message::header_values(req, "Record-Route", None) {
            out.push_str(&format!("Record-Route: {rr}\r\n"));
        }
    }
    out.push_str(&format!("From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
    if code == 200 || code == 405 || code == 501 {
        out.push_str(&format!("Allow: {ALLOW}\r\n"));
    }
    for e in extra {
        out.push_str(e);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Server: {USER_AGENT}\r\n"));
    match body {
        Some((ct, bytes)) => {
            out.push_str(&format!("Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n", bytes.len()));
            out.push_str(&String::from_utf8_lossy(bytes));
        }
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    Some(out)
}
