//! Call settings: what happens when the far end transfers us (the `refer_policy` desk setting)
//! and which DTMF mode a call uses (its account's `dtmf_mode`). `SIPDESK_REFER` and
//! `SIPDESK_DTMF`, when set to a known value, win over both (tests rely on them).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::transfer::ReferPolicy;
use super::{lock_or_recover, ApiError, Desk};
use crate::store::DtmfMode;

/// The `desk_settings` key of the transfer consent policy.
const REFER_POLICY_KEY: &str = "refer_policy";

impl ReferPolicy {
    /// Every policy, as the settings and the JSON channel spell it.
    pub const NAMES: [&'static str; 3] = ["ask", "auto", "refuse"];

    /// `ask`, `auto` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferPolicy::Ask => "ask",
            ReferPolicy::Auto => "auto",
            ReferPolicy::Refuse => "refuse",
        }
    }

    /// The policy a name means (any case, spaces trimmed); `None` for anything else.
    pub fn parse(value: &str) -> Option<ReferPolicy> {
        match value.trim().to_ascii_lowercase().as_str() {
            "ask" => Some(ReferPolicy::Ask),
            "auto" => Some(ReferPolicy::Auto),
            "refuse" => Some(ReferPolicy::Refuse),
            _ => None,
        }
    }
}

impl Serialize for ReferPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReferPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ReferPolicy, D::Error> {
        let name = String::deserialize(d)?;
        ReferPolicy::parse(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, &ReferPolicy::NAMES))
    }
}

/// The call settings as the settings screen shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallSettings {
    /// What an incoming REFER gets now.
    pub refer_policy: ReferPolicy,
    /// True when `SIPDESK_REFER` decides it, whatever is saved.
    pub refer_policy_from_env: bool,
}

/// `SIPDESK_REFER` when it names a policy.
fn refer_policy_from_env() -> Option<ReferPolicy> {
    std::env::var("SIPDESK_REFER").ok().as_deref().and_then(ReferPolicy::parse)
}

/// `SIPDESK_DTMF` when it names a mode.
fn dtmf_mode_from_env() -> Option<DtmfMode> {
    std::env::var("SIPDESK_DTMF").ok().as_deref().and_then(DtmfMode::parse)
}

impl Desk {
    /// What happens when the far end asks us to call someone else (an incoming REFER):
    /// `SIPDESK_REFER` when set to `ask`, `auto` or `refuse`, else the saved setting, else `ask`.
    pub fn refer_policy(&self) -> ReferPolicy {
        refer_policy_from_env().unwrap_or_else(|| self.saved_refer_policy())
    }

    /// Saves the transfer consent policy (`SIPDESK_REFER`, when set, still wins).
    pub fn set_refer_policy(&self, policy: ReferPolicy) -> Result<(), ApiError> {
        self.with_store_mut(|s| s.set_setting(REFER_POLICY_KEY, policy.as_str()))?;
        tracing::info!(policy = policy.as_str(), "transfer consent policy saved");
        Ok(())
    }

    /// The call settings and whether the environment overrides them.
    pub fn call_settings_get(&self) -> CallSettings {
        let env = refer_policy_from_env();
        CallSettings {
            refer_policy: env.unwrap_or_else(|| self.saved_refer_policy()),
            refer_policy_from_env: env.is_some(),
        }
    }

    fn saved_refer_policy(&self) -> ReferPolicy {
        // An unreadable store or a hand-edited value falls back to asking, the safe choice.
        let saved = self.with_store(|s| s.setting(REFER_POLICY_KEY)).ok().flatten();
        saved.as_deref().and_then(ReferPolicy::parse).unwrap_or(ReferPolicy::Ask)
    }

    /// The DTMF mode of a new call of `account_id`: `SIPDESK_DTMF` when set to `rfc4733` or
    /// `info`, else the loaded account's own mode (the default for an account not loaded).
    pub(super) fn account_dtmf_mode(&self, account_id: i64) -> DtmfMode {
        dtmf_mode_from_env().unwrap_or_else(|| {
            lock_or_recover(&self.inner.loaded).get(&account_id).map(|l| l.account.dtmf_mode).unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_policy_names_round_trip() {
        for name in ReferPolicy::NAMES {
            let p = ReferPolicy::parse(name).unwrap();
            assert_eq!(p.as_str(), name);
            assert_eq!(serde_json::to_value(p).unwrap(), name);
            assert_eq!(serde_json::from_value::<ReferPolicy>(name.into()).unwrap(), p);
        }
        assert_eq!(ReferPolicy::parse(" AUTO "), Some(ReferPolicy::Auto));
        assert_eq!(ReferPolicy::parse("yes"), None);
        let e = serde_json::from_value::<ReferPolicy>("always".into()).unwrap_err().to_string();
        assert!(e.contains("ask") && e.contains("refuse"), "{e}");
    }
}
