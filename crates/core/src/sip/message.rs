//! Helpers over rsip's message model: header lookup by long or compact name (rsip knows only
//! long names), multi-value splitting, and the few typed values the registration needs.

use rsip::headers::untyped::ToTypedHeader;
use rsip::headers::UntypedHeader;
use rsip::prelude::HasHeaders;

/// Values of every header named `long` or `compact` (compact forms of RFC 3261 7.3.3), in order.
pub fn header_values(msg: &impl HasHeaders, long: &str, compact: Option<&str>) -> Vec<String> {
    msg.headers()
        .iter()
        .filter_map(|h| {
            let line = h.to_string();
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            let matches = name.eq_ignore_ascii_case(long) || compact.is_some_and(|c| name.eq_ignore_ascii_case(c));
            matches.then(|| value.trim().to_string())
        })
        .collect()
}

/// The first value of a header.
pub fn header_value(msg: &impl HasHeaders, long: &str, compact: Option<&str>) -> Option<String> {
    header_values(msg, long, compact).into_iter().next()
}

/// Splits a comma-separated header value at top-level commas (not inside quotes or `<...>`).
pub fn split_list(value: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The top Via, typed.
pub fn top_via(msg: &impl HasHeaders) -> Option<rsip::typed::Via> {
    let v = header_value(msg, "Via", Some("v"))?;
    let first = split_list(&v).into_iter().next()?;
    rsip::headers::Via::new(first).typed().ok()
}

/// Branch of the top Via.
pub fn branch(msg: &impl HasHeaders) -> Option<String> {
    top_via(msg).and_then(|v| v.branch().map(|b| b.to_string()))
}

/// CSeq number and method.
pub fn cseq(msg: &impl HasHeaders) -> Option<(u32, rsip::Method)> {
    let v = header_value(msg, "CSeq", None)?;
    let c = rsip::headers::CSeq::new(v);
    Some((c.seq().ok()?, c.method().ok()?))
}

/// Call-ID.
pub fn call_id(msg: &impl HasHeaders) -> Option<String> {
    header_value(msg, "Call-ID", Some("i"))
}

/// What the server saw as our address: the top Via's `received` and `rport` values.
pub fn received_rport(msg: &impl HasHeaders) -> (Option<std::net::IpAddr>, Option<u16>) {
    let Some(via) = top_via(msg) else { return (None, None) };
    let received = via.received().ok().flatten();
    let rport = via.params.iter().find_map(|p| match p {
        rsip::Param::Other(name, Some(value)) if name.to_string().eq_ignore_ascii_case("rport") => {
            value.to_string().parse().ok()
        }
        _ => None,
    });
    (received, rport)
}

/// Every Contact of a message, typed (unparseable ones are skipped).
pub fn contacts(msg: &impl HasHeaders) -> Vec<rsip::typed::Contact> {
    header_values(msg, "Contact", Some("m"))
        .iter()
        .flat_map(|v| split_list(v))
        .filter_map(|c| rsip::headers::Contact::new(c).typed().ok())
        .collect()
}

/// A header holding a whole number of seconds (Expires, Min-Expires, Retry-After's first token).
pub fn seconds(msg: &impl HasHeaders, long: &str) -> Option<u32> {
    let v = header_value(msg, long, None)?;
    v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The URI of a name-addr (`"Name" <sip:a@h>;tag=x` gives `sip:a@h`), or the value up to its
/// first parameter when it has no angle brackets.
pub fn uri_of(name_addr: &str) -> String {
    match (name_addr.find('<'), name_addr.find('>')) {
        (Some(a), Some(b)) if b > a => name_addr[a + 1..b].trim().to_string(),
        _ => name_addr.split(';').next().unwrap_or_default().trim().to_string(),
    }
}

/// Percent-encodes what may not appear in a URI header value (RFC 3261 25.1 `hvalue`).
pub fn escape_hvalue(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' => {
                (b as char).to_string()
            }
            b'[' | b']' | b'/' | b':' | b'+' | b'$' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
pub fn unescape(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "SIP/2.0 200 OK\r\n\
v: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKabc;rport=40000;received=203.0.113.9\r\n\
From: <sip:1001@example.com>;tag=a\r\n\
To: <sip:1001@example.com>;tag=b\r\n\
i: call-1@example\r\n\
CSeq: 2 REGISTER\r\n\
m: <sip:1001@203.0.113.9:40000>;expires=58, \"Desk, two\" <sip:1001@10.9.9.9:5060;transport=tcp>;expires=300\r\n\
Contact: <sip:1001@10.1.1.1>;expires=12\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn compact_headers_and_contact_lists() {
        let msg = rsip::SipMessage::try_from(OK).unwrap();
        assert_eq!(branch(&msg).as_deref(), Some("z9hG4bKabc"));
        assert_eq!(call_id(&msg).as_deref(), Some("call-1@example"));
        assert_eq!(cseq(&msg), Some((2, rsip::Method::Register)));
        assert_eq!(received_rport(&msg), (Some("203.0.113.9".parse().unwrap()), Some(40000)));
        let c = contacts(&msg);
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].display_name.as_deref(), Some("\"Desk, two\"").or(c[1].display_name.as_deref()));
        let expires: Vec<u32> = c.iter().map(|c| c.expires().unwrap().seconds().unwrap()).collect();
        assert_eq!(expires, [58, 300, 12]);
    }

    #[test]
    fn uris_and_escapes() {
        assert_eq!(uri_of("\"Bob\" <sip:bob@h:5060>;tag=1"), "sip:bob@h:5060");
        assert_eq!(uri_of("sip:a@h;tag=2"), "sip:a@h");
        let replaces = "abc@h;to-tag=1;from-tag=2";
        assert_eq!(escape_hvalue(replaces), "abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2");
        assert_eq!(unescape(&escape_hvalue(replaces)), replaces);
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%zz%4"), "%zz%4");
    }

    #[test]
    fn split_list_respects_quotes_and_brackets() {
        assert_eq!(
            split_list(r#"<sip:a@h;x=1,2>, "x,\"y" <sip:b@h>"#),
            vec!["<sip:a@h;x=1,2>", r#""x,\"y" <sip:b@h>"#]
        );
        assert!(split_list(" , ").is_empty());
    }
}
