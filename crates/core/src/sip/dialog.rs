//! SIP dialogs (RFC 3261 section 12): the state two user agents share after an INVITE is
//! answered: Call-ID, tags, URIs, the remote target, the route set and the CSeq counters,
//! and the in-dialog requests built from them (ACK for a 2xx, BYE, re-INVITE).

use super::message;
use super::request;

/// Identifies a dialog: Call-ID and both tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Why a dialog could not be formed from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("cannot form a dialog: {0} missing or malformed")]
    Missing(&'static str),
}

/// One dialog, from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// Our URI (From of our requests), with display name if any, without tag.
    pub local_uri: String,
    /// The peer's URI (To of our requests), without tag.
    pub remote_uri: String,
    /// Where in-dialog requests go (the peer's Contact URI).
    pub remote_target: String,
    /// Route set, in the order our requests carry it.
    pub route_set: Vec<String>,
    /// Our last CSeq number.
    pub local_cseq: u32,
    /// The peer's last CSeq number, if it sent one in the dialog.
    pub remote_cseq: Option<u32>,
    /// Our outbound proxy as a loose route (`<sip:host:port;lr>`): in-dialog requests go through
    /// it when the dialog has no route set of its own (RFC 3261 8.1.2).
    pub outbound: Option<String>,
    /// The session timer agreed for this dialog (RFC 4028), if any.
    pub session_timer: Option<super::session_timer::SessionTimer>,
}

fn uri_in(value: &str) -> Option<String> {
    let start = value.find('<')?;
    let end = value[start..].find('>')? + start;
    Some(value[start + 1..end].to_string())
}

/// A name-addr or addr-spec without its header parameters (tag and others).
fn without_params(value: &str) -> String {
    match value.find('>') {
        Some(end) => value[..=end].trim().to_string(),
        None => value.split(';').next().unwrap_or(value).trim().to_string(),
    }
}

fn tag_of(value: &str) -> Option<String> {
    let after = match value.find('>') {
        Some(end) => &value[end + 1..],
        None => value,
    };
    after.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("tag").then(|| v.trim().to_string())
    })
}

/// The Contact URI of a message (the first one).
fn contact_target(msg: &impl rsip::prelude::HasHeaders) -> Option<String> {
    let v = message::header_value(msg, "Contact", Some("m"))?;
    let first = message::split_list(&v).into_iter().next()?;
    uri_in(&first).or_else(|| Some(first.split(';').next()?.trim().to_string()))
}

fn record_routes(msg: &impl rsip::prelude::HasHeaders) -> Vec<String> {
    message::header_values(msg, "Record-Route", None).iter().flat_map(|v| message::split_list(v)).collect()
}

impl Dialog {
    /// The dialog a UAS forms when it answers `invite` with our `local_tag` (12.1.1): the route
    /// set is the Record-Route list as received.
    pub fn from_incoming(invite: &rsip::Request, local_tag: &str) -> Result<Dialog, DialogError> {
        let from = message::header_value(invite, "From", Some("f")).ok_or(DialogError::Missing("From"))?;
        let to = message::header_value(invite, "To", Some("t")).ok_or(DialogError::Missing("To"))?;
        let remote_tag = tag_of(&from).ok_or(DialogError::Missing("From tag"))?;
        let (remote_cseq, _) = message::cseq(invite).ok_or(DialogError::Missing("CSeq"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: message::call_id(invite).ok_or(DialogError::Missing("Call-ID"))?,
                local_tag: local_tag.to_string(),
                remote_tag,
            },
            local_uri: without_params(&to),
            remote_uri: without_params(&from),
            remote_target: contact_target(invite).ok_or(DialogError::Missing("Contact"))?,
            route_set: record_routes(invite),
            local_cseq: 0,
            session_timer: None,
            remote_cseq: Some(remote_cseq),
            outbound: None,
        })
    }

    /// The dialog a UAC forms from a 2xx (or 1xx with a tag) to its INVITE (12.1.2): the route
    /// set is the Record-Route list reversed.
    pub fn from_response(resp: &rsip::Response, invite_cseq: u32) -> Result<Dialog, DialogError> {
        let from = message::header_value(resp, "From", Some("f")).ok_or(DialogError::Missing("From"))?;
        let to = message::header_value(resp, "To", Some("t")).ok_or(DialogError::Missing("To"))?;
        let mut route_set = record_routes(resp);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: message::call_id(resp).ok_or(DialogError::Missing("Call-ID"))?,
                local_tag: tag_of(&from).ok_or(DialogError::Missing("From tag"))?,
                remote_tag: tag_of(&to).ok_or(DialogError::Missing("To tag"))?,
            },
            local_uri: without_params(&from),
            remote_uri: without_params(&to),
            remote_target: contact_target(resp).ok_or(DialogError::Missing("Contact"))?,
            route_set,
            local_cseq: invite_cseq,
            remote_cseq: None,
            outbound: None,
            session_timer: None,
        })
    }

    /// Whether `req` belongs to this dialog (Call-ID, and its To tag is ours, its From tag theirs).
    pub fn matches(&self, req: &rsip::Request) -> bool {
        let to_tag = message::header_value(req, "To", Some("t")).and_then(|t| tag_of(&t));
        let from_tag = message::header_value(req, "From", Some("f")).and_then(|f| tag_of(&f));
        message::call_id(req).as_deref() == Some(self.id.call_id.as_str())
            && to_tag.as_deref() == Some(self.id.local_tag.as_str())
            && from_tag.as_deref() == Some(self.id.remote_tag.as_str())
    }

    /// Checks and records the CSeq of an in-dialog request from the peer (12.2.2): a lower one
    /// than seen is out of order (answer 500).
    pub fn accept_remote_cseq(&mut self, req: &rsip::Request) -> bool {
        let Some((seq, method)) = message::cseq(req) else { return false };
        if method == rsip::Method::Ack {
            return true; // An ACK repeats its INVITE's number.
        }
        match self.remote_cseq {
            Some(last) if seq <= last => false,
            _ => {
                self.remote_cseq = Some(seq);
                true
            }
        }
    }

    /// Request-URI and Route headers for an in-dialog request (12.2.1.1): with a loose-routing
    /// first route (`;lr`) the target is the Request-URI; with a strict one, the route becomes
    /// the Request-URI and the target goes last.
    fn uri_and_routes(&self) -> (String, Vec<String>) {
        match self.route_set.first() {
            Some(first) if !first.contains(";lr") => {
                let uri = uri_in(first).unwrap_or_else(|| first.clone());
                let mut routes: Vec<String> = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (uri, routes)
            }
            Some(_) => (self.remote_target.clone(), self.route_set.clone()),
            None => (self.remote_target.clone(), self.outbound.iter().cloned().collect()),
        }
    }

    /// Builds an in-dialog request. `cseq` None takes the next local number (ACK and CANCEL
    /// pass their INVITE's). `via` is our Via value without the branch.
    pub fn request(
        &mut self,
        method: &str,
        cseq: Option<u32>,
        via: &str,
        branch: &str,
        extra: &[String],
        body: Option<(&str, &[u8])>,
    ) -> String {
        let seq = cseq.unwrap_or_else(|| {
            self.local_cseq += 1;
            self.local_cseq
        });
        let (uri, routes) = self.uri_and_routes();
        let mut out = format!("{method} {uri} SIP/2.0\r\nVia: {via};branch={branch};rport\r\nMax-Forwards: 70\r\n");
        for r in routes {
            out.push_str(&format!("Route: {r}\r\n"));
        }
        out.push_str(&format!(
            "From: {};tag={}\r\nTo: {};tag={}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\nUser-Agent: {}\r\n",
            self.local_uri,
            self.id.local_tag,
            self.remote_uri,
            self.id.remote_tag,
            self.id.call_id,
            request::USER_AGENT
        ));
        for e in extra {
            out.push_str(e);
            out.push_str("\r\n");
        }
        match body {
            Some((content_type, bytes)) => {
                out.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", bytes.len()));
                out.push_str(&String::from_utf8_lossy(bytes));
            }
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:1001@127.0.0.1:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy\r\n\
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKcaller;rport=40000\r\n\
Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
Record-Route: <sip:10.0.0.9;lr>\r\n\
f: \"Caller 张\" <sip:2001@example.com>;tag=caller-tag\r\n\
To: <sip:1001@example.com>\r\n\
Call-ID: abc@127.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:2001@127.0.0.1:40000;transport=udp>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn uas_dialog_and_bye() {
        let invite = rsip::Request::try_from(INVITE).unwrap();
        let mut d = Dialog::from_incoming(&invite, "our-tag").unwrap();
        assert_eq!(d.id.remote_tag, "caller-tag");
        assert_eq!(d.remote_target, "sip:2001@127.0.0.1:40000;transport=udp");
        assert_eq!(d.route_set, vec!["<sip:127.0.0.1:5060;lr>", "<sip:10.0.0.9;lr>"]);
        assert_eq!(d.remote_uri, "\"Caller 张\" <sip:2001@example.com>");
        let bye = d.request("BYE", None, "SIP/2.0/UDP 127.0.0.1:5070", "z9hG4bKbye", &[], None);
        let parsed = rsip::Request::try_from(bye.as_str()).unwrap();
        // URI parameters compare case-insensitively (rsip renders transport=UDP).
        assert_eq!(parsed.uri.to_string().to_ascii_lowercase(), "sip:2001@127.0.0.1:40000;transport=udp");
        assert_eq!(
            message::header_values(&parsed, "Route", None),
            vec!["<sip:127.0.0.1:5060;lr>", "<sip:10.0.0.9;lr>"]
        );
        assert_eq!(message::cseq(&parsed), Some((1, rsip::Method::Bye)));
        assert!(
            bye.contains("From: <sip:1001@example.com>;tag=our-tag")
                && bye.contains("To: \"Caller 张\" <sip:2001@example.com>;tag=caller-tag"),
            "{bye}"
        );
    }

    #[test]
    fn uac_dialog_reverses_routes_and_strict_routing() {
        let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
Record-Route: <sip:p1.example;lr>, <sip:p2.example>\r\n\
From: <sip:1001@example.com>;tag=mine\r\nTo: <sip:2001@example.com>;tag=theirs\r\n\
Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:2001@192.0.2.5:5060>\r\nContent-Length: 0\r\n\r\n";
        let mut d = Dialog::from_response(&rsip::Response::try_from(resp).unwrap(), 1).unwrap();
        assert_eq!(d.route_set, vec!["<sip:p2.example>", "<sip:p1.example;lr>"]);
        // The first route is strict (no ;lr): it becomes the Request-URI, the target goes last.
        let bye = d.request("BYE", None, "SIP/2.0/UDP 127.0.0.1:5070", "z9hG4bKb", &[], None);
        assert!(bye.starts_with("BYE sip:p2.example SIP/2.0"), "{bye}");
        assert!(bye.contains("Route: <sip:p1.example;lr>\r\nRoute: <sip:2001@192.0.2.5:5060>"), "{bye}");
        assert_eq!(d.local_cseq, 2);
    }

    #[test]
    fn an_empty_route_set_goes_through_the_outbound_proxy() {
        let invite = rsip::Request::try_from(
            INVITE.replace("Record-Route: <sip:127.0.0.1:5060;lr>\r\nRecord-Route: <sip:10.0.0.9;lr>\r\n", "").as_str(),
        )
        .unwrap();
        let mut d = Dialog::from_incoming(&invite, "t").unwrap();
        d.outbound = Some("<sip:127.0.0.1:5060;lr>".into());
        let bye = d.request("BYE", None, "SIP/2.0/UDP 127.0.0.1:5070", "z9hG4bKo", &[], None);
        assert!(
            bye.starts_with("BYE sip:2001@127.0.0.1:40000;transport=udp SIP/2.0")
                && bye.contains("Route: <sip:127.0.0.1:5060;lr>"),
            "{bye}"
        );
    }

    #[test]
    fn matching_and_cseq_order() {
        let invite = rsip::Request::try_from(INVITE).unwrap();
        let mut d = Dialog::from_incoming(&invite, "our-tag").unwrap();
        let bye = |cseq: u32, to_tag: &str| {
            rsip::Request::try_from(format!("BYE sip:1001@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKq\r\nFrom: <sip:2001@example.com>;tag=caller-tag\r\nTo: <sip:1001@example.com>;tag={to_tag}\r\nCall-ID: abc@127.0.0.1\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n")).unwrap()
        };
        assert!(d.matches(&bye(8, "our-tag")));
        assert!(!d.matches(&bye(8, "other")));
        assert!(d.accept_remote_cseq(&bye(8, "our-tag")));
        assert!(!d.accept_remote_cseq(&bye(8, "our-tag")), "a repeated CSeq is out of order");
    }

    #[test]
    fn missing_headers_are_errors() {
        let no_tag = INVITE.replace(";tag=caller-tag", "");
        assert_eq!(
            Dialog::from_incoming(&rsip::Request::try_from(no_tag.as_str()).unwrap(), "t"),
            Err(DialogError::Missing("From tag"))
        );
        let no_contact = INVITE.replace("Contact: <sip:2001@127.0.0.1:40000;transport=udp>\r\n", "");
        assert_eq!(
            Dialog::from_incoming(&rsip::Request::try_from(no_contact.as_str()).unwrap(), "t"),
            Err(DialogError::Missing("Contact"))
        );
    }
}
