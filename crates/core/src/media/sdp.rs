//! SDP session descriptions (RFC 4566): parse and render, as much as a phone's audio needs.
//!
//! Parsing is lenient where RFC 4566 lets it be (unknown lines and attributes are skipped, LF
//! alone ends a line) and strict where a wrong value would break the call (origin, connection
//! address, port, payload numbers, rtpmap). Any m-line is kept, audio or not, because an answer
//! must mirror every offered m-line (RFC 3264 §6). Offer/answer itself lives in
//! [`super::offer_answer`].

use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

/// Why an SDP body could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    /// Not valid SDP: the line number (1-based) and what is wrong with it.
    #[error("malformed SDP at line {line}: {reason}")]
    Malformed {
        /// 1-based line number (0 when the problem is a missing line).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No usable audio m-line was offered.
    #[error("the SDP has no audio stream")]
    NoAudio,
    /// The audio stream has no connection address (neither session nor media c=).
    #[error("the audio stream has no connection address")]
    NoConnection,
    /// None of the offered codecs is one we accept.
    #[error("no common codec: offered {offered:?}, we accept {accepted:?}")]
    NoCommonCodec {
        /// The offer's payload types with their names.
        offered: Vec<String>,
        /// Our codec names.
        accepted: Vec<String>,
    },
    /// The answer does not fit the offer (different m-line count, a codec we did not offer).
    #[error("the answer does not match the offer: {0}")]
    AnswerMismatch(String),
}

impl SdpError {
    /// The SIP status the call layer answers with: 400 for a body that is not SDP, 488 (Not
    /// Acceptable Here) for a valid description we cannot accept.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed { .. } => 400,
            _ => 488,
        }
    }
}

/// The a=sendrecv / sendonly / recvonly / inactive attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways (the default).
    #[default]
    SendRecv,
    /// The describer only sends.
    SendOnly,
    /// The describer only receives.
    RecvOnly,
    /// No media either way.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(a: &str) -> Option<Direction> {
        [Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive]
            .into_iter()
            .find(|d| d.as_str() == a)
    }

    /// True if the describer sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// True if the describer receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// From who sends and who receives.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The direction seen from the other side (sendonly ↔ recvonly).
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }
}

/// The o= line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: String,
    /// Session id, constant for the session.
    pub session_id: u64,
    /// Version, raised each time the description changes.
    pub version: u64,
    /// Address of the machine that made it.
    pub address: IpAddr,
}

/// One payload format of an RTP m-line, with its rtpmap and fmtp if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpFormat {
    /// Payload type number.
    pub payload_type: u8,
    /// Encoding name from a=rtpmap (e.g. `PCMU`, `telephone-event`).
    pub encoding: Option<String>,
    /// Clock rate from a=rtpmap.
    pub clock_rate: Option<u32>,
    /// Channels from a=rtpmap, when given.
    pub channels: Option<u8>,
    /// The a=fmtp parameters, raw.
    pub fmtp: Option<String>,
}

/// One m= section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Media type: `audio`, `video`, ...
    pub kind: String,
    /// Port (0 = stream rejected or disabled).
    pub port: u16,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// The format tokens as written (echoed when the stream is rejected).
    pub fmts: Vec<String>,
    /// The formats with their rtpmap/fmtp, for RTP transports.
    pub rtp: Vec<RtpFormat>,
    /// Media-level c= address.
    pub connection: Option<IpAddr>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// a=ptime in milliseconds.
    pub ptime: Option<u32>,
}

impl Media {
    /// True for an RTP audio stream that is not disabled.
    pub fn is_active_rtp_audio(&self) -> bool {
        self.kind == "audio" && self.port != 0 && self.proto.contains("RTP/AVP")
    }

    /// The format with payload type `pt`.
    pub fn format(&self, pt: u8) -> Option<&RtpFormat> {
        self.rtp.iter().find(|f| f.payload_type == pt)
    }
}

/// A parsed or built session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The o= line.
    pub origin: Origin,
    /// The s= line.
    pub session_name: String,
    /// Session-level c= address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// The m= sections, in order.
    pub media: Vec<Media>,
}

fn malformed(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Malformed { line, reason: reason.into() }
}

fn parse_connection(n: usize, v: &str) -> Result<IpAddr, SdpError> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 3 || parts[0] != "IN" || !matches!(parts[1], "IP4" | "IP6") {
        return Err(malformed(n, format!("c= must be `IN IP4|IP6 <address>`, got `{v}`")));
    }
    // A multicast address may carry /ttl; we only need the address.
    let addr = parts[2].split('/').next().unwrap_or_default();
    addr.parse().map_err(|_| malformed(n, format!("bad connection address `{}`", parts[2])))
}

impl SessionDescription {
    /// Parses an SDP body.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        let mut origin = None;
        let mut session_name = String::new();
        let mut connection = None;
        let mut direction = None;
        let mut media: Vec<Media> = Vec::new();
        let mut saw_version = false;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (key, value) = match line.split_once('=') {
                Some((k, v)) if k.len() == 1 => (k, v),
                _ => return Err(malformed(n, format!("expected `<letter>=<value>`, got `{line}`"))),
            };
            if !saw_version {
                if key != "v" || value != "0" {
                    return Err(malformed(n, "the first line must be v=0"));
                }
                saw_version = true;
                continue;
            }
            match key {
                "o" => origin = Some(parse_origin(n, value)?),
                "s" => session_name = value.to_string(),
                "c" => {
                    let addr = parse_connection(n, value)?;
                    match media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => connection = Some(addr),
                    }
                }
                "m" => media.push(parse_media(n, value)?),
                "a" => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    match media.last_mut() {
                        None => {
                            if let Some(d) = Direction::from_attr(name) {
                                direction = Some(d);
                            }
                        }
                        Some(m) => parse_media_attr(n, m, name, arg)?,
                    }
                }
                _ => {} // b=, t=, k=, i=, u=, ...: nothing we need
            }
        }
        if !saw_version {
            return Err(malformed(0, "empty body"));
        }
        let origin = origin.ok_or_else(|| malformed(0, "missing o= line"))?;
        Ok(SessionDescription { origin, session_name, connection, direction, media })
    }

    /// The index and section of the first active RTP audio stream.
    pub fn audio(&self) -> Option<(usize, &Media)> {
        self.media.iter().enumerate().find(|(_, m)| m.is_active_rtp_audio())
    }

    /// The connection address of `m` (its own c=, else the session's).
    pub fn connection_of(&self, m: &Media) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The direction of `m` (its own attribute, else the session's, else sendrecv).
    pub fn direction_of(&self, m: &Media) -> Direction {
        m.direction.or(self.direction).unwrap_or_default()
    }

    /// Renders the body (CRLF line ends). Every stream carries its own c= line.
    pub fn render(&self) -> String {
        let o = &self.origin;
        let ip = |a: &IpAddr| if a.is_ipv6() { "IP6" } else { "IP4" };
        let mut s = format!(
            "v=0\r\no={} {} {} IN {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.version,
            ip(&o.address),
            o.address,
            self.session_name
        );
        if let Some(c) = &self.connection {
            let _ = write!(s, "c=IN {} {}\r\n", ip(c), c);
        }
        s.push_str("t=0 0\r\n");
        if let Some(d) = self.direction {
            let _ = write!(s, "a={}\r\n", d.as_str());
        }
        for m in &self.media {
            let _ = write!(s, "m={} {} {} {}\r\n", m.kind, m.port, m.proto, m.fmts.join(" "));
            if let Some(c) = &m.connection {
                let _ = write!(s, "c=IN {} {}\r\n", ip(c), c);
            }
            for f in &m.rtp {
                if let (Some(enc), Some(rate)) = (&f.encoding, f.clock_rate) {
                    let _ = write!(s, "a=rtpmap:{} {}/{}", f.payload_type, enc, rate);
                    if let Some(ch) = f.channels {
                        let _ = write!(s, "/{ch}");
                    }
                    s.push_str("\r\n");
                }
                if let Some(p) = &f.fmtp {
                    let _ = write!(s, "a=fmtp:{} {}\r\n", f.payload_type, p);
                }
            }
            if let Some(p) = m.ptime {
                let _ = write!(s, "a=ptime:{p}\r\n");
            }
            if let Some(d) = m.direction {
                let _ = write!(s, "a={}\r\n", d.as_str());
            }
        }
        s
    }
}

fn parse_origin(n: usize, v: &str) -> Result<Origin, SdpError> {
    let p: Vec<&str> = v.split_whitespace().collect();
    if p.len() != 6 || p[3] != "IN" {
        return Err(malformed(n, format!("o= needs 6 fields `user id version IN IP4 addr`, got `{v}`")));
    }
    let num =
        |s: &str, what: &str| s.parse::<u64>().map_err(|_| malformed(n, format!("o= {what} `{s}` is not a number")));
    // Some phones put a host name in o=; it is informational, so fall back to unspecified.
    let address = p[5].parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    Ok(Origin {
        username: p[0].to_string(),
        session_id: num(p[1], "session id")?,
        version: num(p[2], "version")?,
        address,
    })
}

fn parse_media(n: usize, v: &str) -> Result<Media, SdpError> {
    let p: Vec<&str> = v.split_whitespace().collect();
    if p.len() < 4 {
        return Err(malformed(n, format!("m= needs `media port proto fmt...`, got `{v}`")));
    }
    // `port/count` is allowed; only the port matters here.
    let port = p[1]
        .split('/')
        .next()
        .unwrap_or_default()
        .parse::<u16>()
        .map_err(|_| malformed(n, format!("bad port `{}`", p[1])))?;
    let fmts: Vec<String> = p[3..].iter().map(|s| s.to_string()).collect();
    let mut rtp = Vec::new();
    if p[2].contains("RTP/") {
        for f in &fmts {
            let pt = f
                .parse::<u8>()
                .ok()
                .filter(|pt| *pt <= 127)
                .ok_or_else(|| malformed(n, format!("bad RTP payload type `{f}`")))?;
            rtp.push(RtpFormat { payload_type: pt, encoding: None, clock_rate: None, channels: None, fmtp: None });
        }
    }
    Ok(Media {
        kind: p[0].to_string(),
        port,
        proto: p[2].to_string(),
        fmts,
        rtp,
        connection: None,
        direction: None,
        ptime: None,
    })
}

fn parse_media_attr(n: usize, m: &mut Media, name: &str, arg: &str) -> Result<(), SdpError> {
    if let Some(d) = Direction::from_attr(name) {
        m.direction = Some(d);
        return Ok(());
    }
    match name {
        "ptime" => m.ptime = Some(arg.trim().parse().map_err(|_| malformed(n, format!("bad ptime `{arg}`")))?),
        "rtpmap" | "fmtp" => {
            let (pt, rest) = arg.split_once(' ').ok_or_else(|| malformed(n, format!("bad a={name}:{arg}")))?;
            let pt: u8 = pt.parse().map_err(|_| malformed(n, format!("bad payload type in a={name}:{arg}")))?;
            // An attribute for a format the m-line does not list is ignored (RFC 4566 is silent; phones do it).
            let Some(f) = m.rtp.iter_mut().find(|f| f.payload_type == pt) else { return Ok(()) };
            if name == "fmtp" {
                f.fmtp = Some(rest.trim().to_string());
                return Ok(());
            }
            let mut it = rest.trim().split('/');
            let enc = it
                .next()
                .filter(|e| !e.is_empty())
                .ok_or_else(|| malformed(n, format!("a=rtpmap:{arg} has no encoding")))?;
            let rate = it
                .next()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| malformed(n, format!("a=rtpmap:{arg} has no clock rate")))?;
            let channels = match it.next() {
                Some(c) => Some(c.parse().map_err(|_| malformed(n, format!("a=rtpmap:{arg} has bad channels")))?),
                None => None,
            };
            f.encoding = Some(enc.to_string());
            f.clock_rate = Some(rate);
            f.channels = channels;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        m=audio 49170 RTP/AVP 0 8 97 101\r\na=rtpmap:97 iLBC/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
        a=ptime:20\r\na=sendonly\r\nm=video 51372 RTP/AVP 31\r\nc=IN IP6 2001:db8::1\r\n";

    #[test]
    fn parses_a_typical_offer() {
        let sd = SessionDescription::parse(OFFER).unwrap();
        assert_eq!((sd.origin.session_id, sd.origin.version), (2890844526, 2890844527));
        let (idx, a) = sd.audio().unwrap();
        assert_eq!((idx, a.port, a.ptime, sd.direction_of(a)), (0, 49170, Some(20), Direction::SendOnly));
        assert_eq!(sd.connection_of(a), Some("192.0.2.10".parse().unwrap()));
        assert_eq!(a.format(101).unwrap().fmtp.as_deref(), Some("0-15"));
        assert_eq!(a.format(97).unwrap().encoding.as_deref(), Some("iLBC"));
        assert_eq!(a.format(0).unwrap().encoding, None);
        assert_eq!(sd.connection_of(&sd.media[1]), Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn render_then_parse_is_identity() {
        let sd = SessionDescription::parse(OFFER).unwrap();
        let text = sd.render();
        assert!(text.contains("m=audio 49170 RTP/AVP 0 8 97 101\r\n") && text.contains("a=fmtp:101 0-15\r\n"));
        assert_eq!(SessionDescription::parse(&text).unwrap(), sd);
        // LF-only line ends are accepted too.
        assert_eq!(SessionDescription::parse(&OFFER.replace("\r\n", "\n")).unwrap(), sd);
    }

    #[test]
    fn malformed_bodies_name_the_line() {
        let cases = [
            ("", 0),
            ("hello", 1),
            ("v=1\r\n", 1),
            ("v=0\r\no=x 1 2 IN IP4\r\n", 2),
            ("v=0\r\no=- a 2 IN IP4 1.2.3.4\r\n", 2),
            ("v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nc=IN IP4 999.1.1.1\r\n", 3),
            ("v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n", 3),
            ("v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP x\r\n", 3),
            ("v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", 4),
            ("v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:abc\r\n", 4),
            ("v=0\r\ns=-\r\n", 0),
        ];
        for (text, line) in cases {
            match SessionDescription::parse(text) {
                Err(e @ SdpError::Malformed { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}: {e}");
                    assert_eq!(e.sip_status(), 400);
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn directions() {
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
        assert_eq!(Direction::from_flags(true, true), Direction::SendRecv);
        assert!(!Direction::RecvOnly.sends() && Direction::RecvOnly.receives());
    }
}
