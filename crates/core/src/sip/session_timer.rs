//! Session timers (RFC 4028): who refreshes a call, and how often, so a proxy that keeps call
//! state never drops a long call. The interval is never below 90 s (the RFC's floor, §4).

use std::time::Duration;

use super::message;

/// The smallest interval we accept or ask for.
pub const MIN_SE: u32 = 90;

/// An agreed session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session-Expires, seconds.
    pub interval: u32,
    /// Whether we send the refreshes (else we expect them).
    pub we_refresh: bool,
}

impl SessionTimer {
    /// When we refresh: half the interval (§7.4).
    pub fn refresh_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval) / 2)
    }

    /// When the session is dead without a refresh from the peer: the interval less
    /// min(32 s, a third of it) (§10).
    pub fn expires_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval - (self.interval / 3).min(32)))
    }

    /// The Session-Expires header line for a request or response where `role` (`uac` or `uas`)
    /// names the refresher.
    pub fn header(&self, role: &str) -> String {
        format!("Session-Expires: {};refresher={role}", self.interval)
    }
}

/// What to do with an INVITE's session timer request, as its UAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UasTimer {
    /// No Session-Expires: no timer.
    None,
    /// Use this timer; put these header lines in the 2xx.
    Agreed(SessionTimer, Vec<String>),
    /// The interval is below our floor: answer 422 with these header lines.
    TooSmall(Vec<String>),
}

/// Parses `Session-Expires` (or `x`): the interval and the refresher parameter, if any.
fn session_expires(msg: &impl rsip::prelude::HasHeaders) -> Option<(u32, Option<String>)> {
    let v = message::header_value(msg, "Session-Expires", Some("x"))?;
    let mut parts = v.split(';');
    let secs = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("refresher").then(|| v.trim().to_ascii_lowercase())
    });
    Some((secs, refresher))
}

fn supports_timer(msg: &impl rsip::prelude::HasHeaders) -> bool {
    ["Supported", "Require"].iter().any(|h| {
        message::header_values(msg, h, if *h == "Supported" { Some("k") } else { None })
            .iter()
            .flat_map(|v| message::split_list(v))
            .any(|t| t.trim().eq_ignore_ascii_case("timer"))
    })
}

/// Decides the timer for an incoming INVITE (initial or refresh) we are about to answer (§9).
pub fn for_uas(invite: &rsip::Request) -> UasTimer {
    let Some((secs, refresher)) = session_expires(invite) else { return UasTimer::None };
    if secs < MIN_SE {
        return UasTimer::TooSmall(vec![format!("Min-SE: {MIN_SE}")]);
    }
    let uac_supports = supports_timer(invite);
    // The UAC's choice stands when it can refresh; otherwise we do (§9).
    let we_refresh = !uac_supports || refresher.as_deref() != Some("uac");
    let timer = SessionTimer { interval: secs, we_refresh };
    let mut headers = vec![timer.header(if we_refresh { "uas" } else { "uac" })];
    if uac_supports {
        headers.push("Require: timer".to_string());
    }
    UasTimer::Agreed(timer, headers)
}

/// Reads the timer a 2xx to our INVITE agreed (§7.2): none without Session-Expires.
pub fn for_uac(response: &rsip::Response) -> Option<SessionTimer> {
    let (secs, refresher) = session_expires(response)?;
    // A 2xx without a refresher leaves it to us (§7.2).
    Some(SessionTimer { interval: secs.max(MIN_SE), we_refresh: refresher.as_deref() != Some("uas") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> rsip::Request {
        rsip::Request::try_from(format!("INVITE sip:1001@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1001@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n")).unwrap()
    }

    #[test]
    fn uas_follows_the_uacs_choice_or_refreshes_itself() {
        assert_eq!(for_uas(&invite("")), UasTimer::None);
        let UasTimer::Agreed(t, h) = for_uas(&invite("Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n"))
        else {
            panic!()
        };
        assert_eq!((t.interval, t.we_refresh), (90, false));
        assert_eq!(h, vec!["Session-Expires: 90;refresher=uac", "Require: timer"]);
        // A proxy added the header for a UAC without timer support: we must refresh, no Require.
        let UasTimer::Agreed(t, h) = for_uas(&invite("x: 1800\r\n")) else { panic!() };
        assert_eq!((t.interval, t.we_refresh), (1800, true));
        assert_eq!(h, vec!["Session-Expires: 1800;refresher=uas"]);
        assert_eq!(for_uas(&invite("Session-Expires: 30\r\n")), UasTimer::TooSmall(vec!["Min-SE: 90".into()]));
        assert_eq!(t.refresh_after(), Duration::from_secs(900));
        assert_eq!(t.expires_after(), Duration::from_secs(1768));
        assert_eq!(SessionTimer { interval: 90, we_refresh: false }.expires_after(), Duration::from_secs(60));
    }

    #[test]
    fn uac_reads_the_answer() {
        let resp = |extra: &str| {
            rsip::Response::try_from(format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n")).unwrap()
        };
        assert_eq!(for_uac(&resp("")), None);
        assert_eq!(
            for_uac(&resp("Session-Expires: 120;refresher=uas\r\n")),
            Some(SessionTimer { interval: 120, we_refresh: false })
        );
        assert_eq!(for_uac(&resp("Session-Expires: 120\r\n")), Some(SessionTimer { interval: 120, we_refresh: true }));
    }
}
