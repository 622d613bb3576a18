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
            "endpoint_required" => "a cloud provider needs its WebSocket endpoint",
            "endpoint_invalid" => "endpoint must be a ws:// or wss:// URL with a host",
            "endpoint_insecure" => "plain ws:// is only allowed to this machine (loopback); use wss://",
            "endpoint_unsupported" => "the local agent has no endpoint",
            "api_key_invalid" => "the key may not contain spaces or control characters (at most 512 characters)",
            "api_key_required" => "a key is required before the provider can be enabled",
            "api_key_unsupported" => "the local agent takes no key",
            "app_id_invalid" => "app id must be letters, digits, '-' or '_' (at most 64)",
            "app_id_required" => "Doubao needs its app id before it can be enabled",
            "app_id_unsupported" => "only Doubao takes an app id",
            "voice_invalid" => "voice must be letters, digits, '-', '_' or '.' (at most 64)",
            "voice_unsupported" => "the local agent has only the slt voice",
            "language_invalid" => "language must be a tag such as en, en-US or zh-CN",
            "language_unsupported" => "the local agent speaks English only",
            "instructions_invalid" => "instructions must be at most 8000 characters without control characters",
            "greeting_invalid" => "the greeting must be at most 500 characters on one line",
            "default_disabled" => "only an enabled provider can be the default, and the default cannot be disabled",
            "answer_invalid" => "answer must be never, always, after:SECONDS or outside_hours",
            "answer_after_range" => "the AI may answer after 1 to 119 seconds of ringing (calls stop ringing at 120 s)",
            "days_invalid" => "days must be names from mon, tue, wed, thu, fri, sat, sun",
            "days_empty" => "working hours need at least one day",
            "time_invalid" => "a time must be HH:MM, 00:00 to 23:59",
            "hours_empty" => "working hours must not start and end at the same time",
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

/// Longest endpoint URL accepted.
const ENDPOINT_MAX: usize = 2048;
/// Longest API key accepted.
const API_KEY_MAX: usize = 512;
/// Longest instructions (a cloud model's system prompt), in characters.
pub const INSTRUCTIONS_MAX: usize = 8000;
/// Longest greeting, in characters.
pub const GREETING_MAX: usize = 500;

/// Checks an AI provider's WebSocket endpoint: `wss://host[:port][/path][?query]`, or `ws://` to
/// a loopback host only (a test server on this machine), since the key travels in the handshake.
/// No user info, no spaces or control characters. Returns it trimmed, its scheme in lower case;
/// empty stays empty (whether one is required is the caller's rule).
pub fn endpoint(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    let bad = FieldError { field: "endpoint", code: "endpoint_invalid" };
    if v.len() > ENDPOINT_MAX || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad);
    }
    let (scheme, rest) = v.split_once("://").ok_or(bad.clone())?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "ws" && scheme != "wss" {
        return Err(bad);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') || tail.starts_with('#') {
        return Err(bad);
    }
    let (h, p) = split_host_port(authority).ok_or(bad.clone())?;
    let h = host("server_host", h).map_err(|_| bad.clone())?;
    if let Some(p) = p {
        port(p).map_err(|_| bad.clone())?;
    }
    if scheme == "ws" && !is_loopback(&h) {
        return Err(FieldError { field: "endpoint", code: "endpoint_insecure" });
    }
    Ok(format!("{scheme}://{rest}"))
}

/// `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
}

/// Checks an API key (or access key) typed by an admin: no spaces or control characters, at most
/// 512 characters. Surrounding spaces (a paste) are trimmed.
pub fn api_key(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.len() > API_KEY_MAX || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError { field: "api_key", code: "api_key_invalid" });
    }
    Ok(v.to_string())
}

fn is_name(v: &str, extra: &str) -> bool {
    v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// Checks a Doubao app id: letters, digits, `-` and `_`, at most 64 (empty: none yet).
pub fn app_id(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if !is_name(v, "-_") {
        return Err(FieldError { field: "app_id", code: "app_id_invalid" });
    }
    Ok(v.to_string())
}

/// Checks a provider's voice name (`alloy`, `zh_female_vv_jupiter_bigtts`); empty: the
/// provider's default.
pub fn voice(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if !is_name(v, "-_.") {
        return Err(FieldError { field: "voice", code: "voice_invalid" });
    }
    Ok(v.to_string())
}

/// Checks a language tag (`en`, `en-US`, `zh-CN`, `zh-Hans-CN`) and returns it in its usual case
/// (language lower, script title, region upper); empty: the provider decides.
pub fn language(value: &str) -> Result<String, FieldError> {
    let v = value.trim().replace('_', "-");
    if v.is_empty() {
        return Ok(v);
    }
    let bad = FieldError { field: "language", code: "language_invalid" };
    let mut parts = v.split('-');
    let lang = parts.next().unwrap_or_default();
    if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(bad);
    }
    let mut out = vec![lang.to_ascii_lowercase()];
    for part in parts {
        let alpha = part.chars().all(|c| c.is_ascii_alphabetic());
        let digits = part.chars().all(|c| c.is_ascii_digit());
        out.push(match part.len() {
            4 if alpha => part[..1].to_ascii_uppercase() + &part[1..].to_ascii_lowercase(),
            2 if alpha => part.to_ascii_uppercase(),
            3 if digits => part.to_string(),
            _ => return Err(bad),
        });
    }
    if out.len() > 3 {
        return Err(bad);
    }
    Ok(out.join("-"))
}

/// Checks a cloud model's instructions: at most [`INSTRUCTIONS_MAX`] characters; line breaks and
/// tabs allowed, other control characters not.
pub fn instructions(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.chars().count() > INSTRUCTIONS_MAX || v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(FieldError { field: "instructions", code: "instructions_invalid" });
    }
    Ok(v.replace("\r\n", "\n"))
}

/// Checks a greeting: one line of at most [`GREETING_MAX`] characters (empty: the provider's own).
pub fn greeting(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.chars().count() > GREETING_MAX || v.chars().any(char::is_control) {
        return Err(FieldError { field: "greeting", code: "greeting_invalid" });
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ai_endpoints() {
        assert_eq!(endpoint("").unwrap(), "");
        assert_eq!(
            endpoint(" WSS://api.openai.com/v1/realtime?model=gpt-realtime ").unwrap(),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        let doubao = "wss://openspeech.bytedance.com:443/api/v3/realtime/dialogue";
        assert_eq!(endpoint(doubao).unwrap(), doubao);
        for ok in ["ws://127.0.0.1:9000/v1/realtime", "ws://localhost:8080", "ws://[::1]:9000/x", "wss://10.0.0.5/rt"] {
            assert!(endpoint(ok).is_ok(), "{ok}");
        }
        for (bad, code) in [
            ("https://api.openai.com/v1/realtime", "endpoint_invalid"),
            ("api.openai.com/v1/realtime", "endpoint_invalid"),
            ("wss://", "endpoint_invalid"),
            ("wss://user:pw@api.openai.com/", "endpoint_invalid"),
            ("wss://bad host/", "endpoint_invalid"),
            ("wss://h.example:99999/", "endpoint_invalid"),
            ("wss://h.example/a b", "endpoint_invalid"),
            ("ws://api.openai.com/v1/realtime", "endpoint_insecure"),
            ("ws://192.168.1.10:9000/", "endpoint_insecure"),
        ] {
            assert_eq!(endpoint(bad).unwrap_err(), FieldError { field: "endpoint", code }, "{bad}");
        }
    }

    #[test]
    fn ai_text_fields() {
        assert_eq!(api_key(" sk-abc_123 ").unwrap(), "sk-abc_123");
        assert_eq!(api_key("sk abc").unwrap_err().code, "api_key_invalid");
        assert_eq!(api_key(&"k".repeat(513)).unwrap_err().code, "api_key_invalid");
        assert_eq!(app_id("1234567890").unwrap(), "1234567890");
        assert_eq!(app_id("12 34").unwrap_err().code, "app_id_invalid");
        assert_eq!(voice("zh_female_vv_jupiter_bigtts").unwrap(), "zh_female_vv_jupiter_bigtts");
        assert_eq!(voice("alloy; rm").unwrap_err().code, "voice_invalid");
        assert_eq!(language("").unwrap(), "");
        assert_eq!(language("ZH-cn").unwrap(), "zh-CN");
        assert_eq!(language("zh_hans_cn").unwrap(), "zh-Hans-CN");
        assert_eq!(language("es-419").unwrap(), "es-419");
        for bad in ["english", "e", "en-", "en-USA1", "中文", "en US"] {
            assert_eq!(language(bad).unwrap_err().code, "language_invalid", "{bad}");
        }
        assert_eq!(instructions("Be brief.\r\nAlways polite.\tThanks").unwrap(), "Be brief.\nAlways polite.\tThanks");
        assert_eq!(instructions("a\u{7}").unwrap_err().code, "instructions_invalid");
        assert_eq!(instructions(&"x".repeat(INSTRUCTIONS_MAX + 1)).unwrap_err().code, "instructions_invalid");
        assert_eq!(greeting(" 您好，这里是客服中心。 ").unwrap(), "您好，这里是客服中心。");
        assert_eq!(greeting("two\nlines").unwrap_err().code, "greeting_invalid");
        assert_eq!(greeting(&"x".repeat(GREETING_MAX + 1)).unwrap_err().code, "greeting_invalid");
    }

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
