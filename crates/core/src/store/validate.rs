//! Validation of account fields typed by people (settings form, CLI flags, environment).
//!
//! Every rule lives here so the UI, the CLI and the environment loader give the same answer;
//! each failure names the field and a stable code that the UI translates.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::DtmfMode;

/// One field that failed validation: the field's column name and a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Column name of the field, e.g. `server_port`.
    pub field: &'static str,
    /// Stable code the UI translates, e.g. `port_range`.
    pub code: &'static str,
}

impl FieldError {
    /// English explanation for logs and the CLI.
    pub fn message(&self) -> &'static str {
        match self.code {
            "host_empty" => "server host is required",
            "host_invalid" => "not a host name, IPv4 or IPv6 address",
            "port_invalid" => "port must be a number",
            "port_range" => "port must be between 1 and 65535",
            "username_empty" => "username is required",
            "username_invalid" => "username may only hold characters allowed in a SIP URI user part",
            "password_required" => "a password is required",
            "protocol_invalid" => "protocol must be UDP or TCP",
            "interval_invalid" => "register interval must be a whole number of seconds",
            "interval_range" => "register interval must be between 60 and 86400 seconds",
            "auth_username_invalid" => "auth username may not contain spaces or control characters",
            "domain_invalid" => "domain must be a host name or IP address",
            "outbound_proxy_invalid" => "outbound proxy must be host[:port] or a sip: URI",
            "display_name_invalid" => "display name must be at most 64 characters without control characters",
            "codecs_unknown" => "codecs must be names from pcmu, pcma, opus, separated by commas",
            "codecs_repeated" => "a codec may be listed only once",
            "codecs_empty" => "the codec list names no codec (use default for the default order)",
            "dtmf_mode_invalid" => "DTMF mode must be rfc4733 or info",
            _ => "invalid value",
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

/// Lowest and highest REGISTER interval we accept, in seconds.
pub const INTERVAL_RANGE: std::ops::RangeInclusive<u32> = 60..=86400;

/// Checks a host (DNS name, IPv4 or IPv6 literal, brackets allowed) and returns it normalised.
pub fn host(field: &'static str, value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError { field, code: "host_empty" });
    }
    let unbracketed = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(v);
    if unbracketed.parse::<Ipv6Addr>().is_ok() {
        return Ok(unbracketed.to_ascii_lowercase());
    }
    if v.parse::<Ipv4Addr>().is_ok() || is_dns_name(v) {
        return Ok(v.to_ascii_lowercase());
    }
    let code = if field == "server_host" { "host_invalid" } else { "domain_invalid" };
    Err(FieldError { field, code })
}

fn is_dns_name(v: &str) -> bool {
    let name = v.strip_suffix('.').unwrap_or(v);
    // A name made only of digits and dots is a malformed IPv4 address, not a host name.
    if name.is_empty() || name.len() > 253 || name.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// Parses a port number (1..=65535).
pub fn port(value: &str) -> Result<u16, FieldError> {
    let v = value.trim();
    let n: u64 = v.parse().map_err(|_| FieldError { field: "server_port", code: "port_invalid" })?;
    if (1..=65535).contains(&n) {
        Ok(n as u16)
    } else {
        Err(FieldError { field: "server_port", code: "port_range" })
    }
}

/// Checks a SIP URI user part: RFC 3261 `unreserved / escaped / user-unreserved`.
pub fn username(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError { field: "username", code: "username_empty" });
    }
    if v.len() > 128 || !v.chars().all(is_sip_user_char) || !escapes_well_formed(v) {
        return Err(FieldError { field: "username", code: "username_invalid" });
    }
    Ok(v.to_string())
}

fn is_sip_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c)
}

fn escapes_well_formed(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'%' || (i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()))
}

/// Checks an optional auth username (may differ from the extension; any visible characters).
pub fn auth_username(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.len() > 128 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError { field: "auth_username", code: "auth_username_invalid" });
    }
    Ok(v.to_string())
}

/// Normalises the transport name; TLS arrives in a later release.
pub fn protocol(value: &str) -> Result<&'static str, FieldError> {
    match value.trim().to_ascii_uppercase().as_str() {
        "UDP" => Ok("UDP"),
        "TCP" => Ok("TCP"),
        _ => Err(FieldError { field: "protocol", code: "protocol_invalid" }),
    }
}

/// Parses the REGISTER interval in seconds.
pub fn interval(value: &str) -> Result<u32, FieldError> {
    let n: u64 =
        value.trim().parse().map_err(|_| FieldError { field: "register_interval", code: "interval_invalid" })?;
    match u32::try_from(n) {
        Ok(n) if INTERVAL_RANGE.contains(&n) => Ok(n),
        _ => Err(FieldError { field: "register_interval", code: "interval_range" }),
    }
}

/// Checks an optional SIP domain (empty means: the server host).
pub fn domain(value: &str) -> Result<String, FieldError> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    host("domain", value).map_err(|_| FieldError { field: "domain", code: "domain_invalid" })
}

/// Checks an optional outbound proxy: `host`, `host:port` or `sip:host[:port][;params]`.
pub fn outbound_proxy(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    let bad = FieldError { field: "outbound_proxy", code: "outbound_proxy_invalid" };
    let rest = v.strip_prefix("sip:").unwrap_or(v);
    let hostport = rest.split(';').next().unwrap_or_default();
    let (h, p) = split_host_port(hostport).ok_or(bad.clone())?;
    host("server_host", h).map_err(|_| bad.clone())?;
    if let Some(p) = p {
        port(p).map_err(|_| bad.clone())?;
    }
    Ok(v.to_string())
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        return match after {
            "" => Some((h, None)),
            _ => Some((h, Some(after.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 literal.
        Some((h, _)) if h.contains(':') => Some((s, None)),
        Some((h, p)) => Some((h, Some(p))),
        None => Some((s, None)),
    }
}

/// Checks the display name shown to the called party.
pub fn display_name(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.chars().count() > 64 || v.chars().any(char::is_control) {
        return Err(FieldError { field: "display_name", code: "display_name_invalid" });
    }
    Ok(v.to_string())
}

/// Codec names an account may list, as `SIPDESK_CODECS` spells them (the media layer knows each).
pub const CODECS: [&str; 3] = ["pcmu", "pcma", "opus"];

/// Checks a codec preference order: names from [`CODECS`] (any case) separated by commas, each
/// at most once; empty entries are skipped. Returns it normalised (`opus,pcmu`), or `None` for the
/// default order: an empty value or `default`.
pub fn codecs(value: &str) -> Result<Option<String>, FieldError> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    let err = |code| FieldError { field: "codecs", code };
    let mut names: Vec<&'static str> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let name = CODECS.into_iter().find(|c| item.eq_ignore_ascii_case(c)).ok_or(err("codecs_unknown"))?;
        if names.contains(&name) {
            return Err(err("codecs_repeated"));
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(err("codecs_empty"));
    }
    Ok(Some(names.join(",")))
}

/// Checks a DTMF mode: `rfc4733` or `info` (any case); empty means the default, `rfc4733`.
pub fn dtmf_mode(value: &str) -> Result<DtmfMode, FieldError> {
    if value.trim().is_empty() {
        return Ok(DtmfMode::default());
    }
    DtmfMode::parse(value).ok_or(FieldError { field: "dtmf_mode", code: "dtmf_mode_invalid" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host("server_host", " PBX.example.com ").unwrap(), "pbx.example.com");
        assert_eq!(host("server_host", "127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(host("server_host", "[::1]").unwrap(), "::1");
        assert_eq!(host("server_host", "fe80::1").unwrap(), "fe80::1");
        assert_eq!(host("server_host", "").unwrap_err().code, "host_empty");
        for bad in ["999.1.1.1", "a b", "-x.com", "x..com", "exa_mple.com", "[::1", "1.2.3"] {
            assert_eq!(host("server_host", bad).unwrap_err().code, "host_invalid", "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(port("5060").unwrap(), 5060);
        assert_eq!(port("70000").unwrap_err().code, "port_range");
        assert_eq!(port("0").unwrap_err().code, "port_range");
        assert_eq!(port("99999999999999999999").unwrap_err().code, "port_invalid");
        assert_eq!(port("50a").unwrap_err().code, "port_invalid");
        assert_eq!(port("-1").unwrap_err().code, "port_invalid");
    }

    #[test]
    fn usernames() {
        assert_eq!(username("1001").unwrap(), "1001");
        assert_eq!(username("alice.smith+desk").unwrap(), "alice.smith+desk");
        assert_eq!(username("a%20b").unwrap(), "a%20b");
        assert_eq!(username(" ").unwrap_err().code, "username_empty");
        for bad in ["a@b", "a b", "a:b", "<a>", "a%2", "a%zz", "名字"] {
            assert_eq!(username(bad).unwrap_err().code, "username_invalid", "{bad}");
        }
    }

    #[test]
    fn protocol_interval_proxy_name() {
        assert_eq!(protocol("udp").unwrap(), "UDP");
        assert_eq!(protocol("Tcp").unwrap(), "TCP");
        assert_eq!(protocol("tls").unwrap_err().code, "protocol_invalid");
        assert_eq!(interval("3600").unwrap(), 3600);
        assert_eq!(interval("59").unwrap_err().code, "interval_range");
        assert_eq!(interval("86401").unwrap_err().code, "interval_range");
        assert_eq!(interval("1h").unwrap_err().code, "interval_invalid");
        assert!(outbound_proxy("sip:proxy.example.com:5070;lr").is_ok());
        assert!(outbound_proxy("[::1]:5060").is_ok());
        assert!(outbound_proxy("10.0.0.1").is_ok());
        assert_eq!(outbound_proxy("sip:bad host").unwrap_err().code, "outbound_proxy_invalid");
        assert_eq!(outbound_proxy("h:99999").unwrap_err().code, "outbound_proxy_invalid");
        assert_eq!(display_name("前台 Desk 1").unwrap(), "前台 Desk 1");
        assert_eq!(display_name("a\u{7}").unwrap_err().code, "display_name_invalid");
        assert_eq!(domain("").unwrap(), "");
        assert_eq!(domain("bad domain").unwrap_err().code, "domain_invalid");
    }

    #[test]
    fn dtmf_modes() {
        assert_eq!(dtmf_mode("rfc4733").unwrap(), DtmfMode::Rfc4733);
        assert_eq!(dtmf_mode(" INFO ").unwrap(), DtmfMode::Info);
        assert_eq!(dtmf_mode("RFC4733").unwrap(), DtmfMode::Rfc4733);
        assert_eq!(dtmf_mode("").unwrap(), DtmfMode::Rfc4733, "empty: the default");
        for bad in ["inband", "rfc2833", "info,rfc4733", "sip-info"] {
            assert_eq!(
                dtmf_mode(bad).unwrap_err(),
                FieldError { field: "dtmf_mode", code: "dtmf_mode_invalid" },
                "{bad}"
            );
        }
    }

    #[test]
    fn codec_orders() {
        assert_eq!(codecs("").unwrap(), None);
        assert_eq!(codecs(" Default ").unwrap(), None);
        assert_eq!(codecs("opus, PCMU,pcma").unwrap().as_deref(), Some("opus,pcmu,pcma"));
        assert_eq!(codecs("pcma,").unwrap().as_deref(), Some("pcma"));
        for (bad, code) in [
            ("g729", "codecs_unknown"),
            ("pcmu,g722", "codecs_unknown"),
            ("pcmu pcma", "codecs_unknown"),
            ("default,pcmu", "codecs_unknown"),
            ("pcmu,PCMU", "codecs_repeated"),
            (",", "codecs_empty"),
            (" , ,", "codecs_empty"),
        ] {
            assert_eq!(codecs(bad).unwrap_err(), FieldError { field: "codecs", code }, "{bad}");
        }
        // The store's names and the media layer's codecs are the same set.
        use crate::media::offer_answer::Codec;
        for name in CODECS {
            assert!(Codec::from_name(name).is_some(), "{name}");
        }
        for c in [Codec::Pcmu, Codec::Pcma, Codec::Opus] {
            // A new codec stops this match compiling until it is listed here and in CODECS.
            match c {
                Codec::Pcmu | Codec::Pcma | Codec::Opus => {}
            }
            assert!(CODECS.contains(&c.name().to_ascii_lowercase().as_str()), "{c:?}");
        }
    }
}
