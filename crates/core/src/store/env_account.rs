//! The account defined by environment variables, for kiosks and scripted desks.
//!
//! `SIP_SERVER_HOST` (required to define it), `SIP_SERVER_PORT`, `SIP_USERNAME`, `SIP_PASSWORD`,
//! `SIP_PROTOCOL`, `SIP_REGISTER_INTERVAL`, `SIP_CODECS` (codec order, e.g. `opus,pcmu`),
//! `SIP_DTMF_MODE` (`rfc4733` or `info`). It is never written to the database. When an active stored account has the same user, host and port,
//! the environment account replaces it, so one binding is never registered twice.

use super::account::account_from_draft;
use super::{Account, AccountDraft, FieldError, Source};

/// The environment account's id (stored ids start at 1).
pub const ENV_ACCOUNT_ID: i64 = 0;

/// The environment defines an account, but some of its values are invalid.
#[derive(Debug, thiserror::Error)]
#[error("SIP_* environment account is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct EnvAccountError(pub Vec<FieldError>);

/// Reads the environment account through `get` (normally `std::env::var`); `Ok(None)` when
/// `SIP_SERVER_HOST` is unset.
pub fn env_account(get: impl Fn(&str) -> Option<String>) -> Result<Option<Account>, EnvAccountError> {
    let Some(host) = get("SIP_SERVER_HOST") else { return Ok(None) };
    let draft = AccountDraft {
        server_host: Some(host),
        server_port: get("SIP_SERVER_PORT"),
        username: get("SIP_USERNAME"),
        password: get("SIP_PASSWORD"),
        protocol: get("SIP_PROTOCOL"),
        register_interval: get("SIP_REGISTER_INTERVAL"),
        codecs: get("SIP_CODECS"),
        dtmf_mode: get("SIP_DTMF_MODE"),
        is_active: Some(true),
        ..AccountDraft::default()
    };
    account_from_draft(ENV_ACCOUNT_ID, Source::Env, &draft).map(Some).map_err(EnvAccountError)
}

/// Merges the environment account into the stored active accounts (environment wins on the
/// same user@host:port).
pub fn merge(mut stored: Vec<Account>, env: Option<Account>) -> Vec<Account> {
    if let Some(env) = env {
        stored.retain(|a| {
            !(a.username == env.username && a.server_host == env.server_host && a.server_port == env.server_port)
        });
        stored.insert(0, env);
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn unset_host_means_no_account() {
        assert!(env_account(env(&[("SIP_USERNAME", "1001")])).unwrap().is_none());
    }

    #[test]
    fn full_account_with_defaults() {
        let a = env_account(env(&[
            ("SIP_SERVER_HOST", "127.0.0.1"),
            ("SIP_USERNAME", "1001"),
            ("SIP_PASSWORD", "pw"),
            ("SIP_PROTOCOL", "tcp"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (a.server_port, a.protocol, a.register_interval, a.source),
            (5060, super::super::Protocol::Tcp, 3600, Source::Env)
        );
        assert_eq!(a.password.expose(), "pw");
        assert!(!format!("{a:?}").contains("pw\""), "Debug must not show the password");
    }

    #[test]
    fn invalid_values_are_reported_by_field() {
        let e =
            env_account(env(&[("SIP_SERVER_HOST", "127.0.0.1"), ("SIP_SERVER_PORT", "70000"), ("SIP_USERNAME", "")]))
                .unwrap_err();
        let codes: Vec<_> = e.0.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["port_range", "username_empty"]);
        let e = env_account(env(&[("SIP_SERVER_HOST", "h.example"), ("SIP_USERNAME", "1"), ("SIP_CODECS", "g729")]))
            .unwrap_err();
        assert_eq!(e.0, [FieldError { field: "codecs", code: "codecs_unknown" }]);
        assert!(e.to_string().contains("codecs:"), "{e}");
    }

    #[test]
    fn codec_order_comes_from_sip_codecs() {
        let with = |codecs: &[(&'static str, &'static str)]| {
            let mut pairs = vec![("SIP_SERVER_HOST", "h.example"), ("SIP_USERNAME", "1001")];
            pairs.extend_from_slice(codecs);
            env_account(env(&pairs)).unwrap().unwrap().codecs
        };
        assert_eq!(with(&[]), None);
        assert_eq!(with(&[("SIP_CODECS", "PCMA, pcmu")]).as_deref(), Some("pcma,pcmu"));
        assert_eq!(with(&[("SIP_CODECS", "default")]), None);
    }

    #[test]
    fn dtmf_mode_comes_from_sip_dtmf_mode() {
        use super::super::DtmfMode;
        let base = [("SIP_SERVER_HOST", "h.example"), ("SIP_USERNAME", "1001")];
        assert_eq!(env_account(env(&base)).unwrap().unwrap().dtmf_mode, DtmfMode::Rfc4733, "the default");
        let with = |v: &'static str| env_account(env(&[base[0], base[1], ("SIP_DTMF_MODE", v)]));
        assert_eq!(with("INFO").unwrap().unwrap().dtmf_mode, DtmfMode::Info);
        assert_eq!(with("rfc4733").unwrap().unwrap().dtmf_mode, DtmfMode::Rfc4733);
        let e = with("inband").unwrap_err();
        assert_eq!(e.0, [FieldError { field: "dtmf_mode", code: "dtmf_mode_invalid" }]);
        assert!(e.to_string().contains("dtmf_mode: DTMF mode must be rfc4733 or info"), "{e}");
    }

    #[test]
    fn environment_replaces_the_same_binding() {
        let make = |id, user: &str| {
            let mut a = env_account(env(&[("SIP_SERVER_HOST", "h.example"), ("SIP_USERNAME", user)])).unwrap().unwrap();
            a.id = id;
            a.source = Source::Db;
            a
        };
        let e = env_account(env(&[("SIP_SERVER_HOST", "h.example"), ("SIP_USERNAME", "1001")])).unwrap();
        let merged = merge(vec![make(1, "1001"), make(2, "1002")], e);
        let ids: Vec<_> = merged.iter().map(|a| a.id).collect();
        assert_eq!(ids, [0, 2]);
    }
}
