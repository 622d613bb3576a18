//! Snapshot types front ends read: the desk's status and the UI settings.

use serde::Serialize;

use super::Registration;
use crate::store::{Account, AccountView, Source, StoreError};

/// A stable error code with its English message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    /// Stable code the UI translates.
    pub code: &'static str,
    /// English explanation.
    pub message: String,
}

impl From<&StoreError> for ErrorInfo {
    fn from(e: &StoreError) -> ErrorInfo {
        ErrorInfo { code: e.code(), message: e.to_string() }
    }
}

/// An account with its live registration state (the view's keys plus `registration`).
#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    /// The account's columns (no password).
    #[serde(flatten)]
    pub account: AccountView,
    /// Its registration.
    pub registration: Registration,
}

impl AccountStatus {
    /// Joins a stored account and its registration.
    pub fn new(account: AccountView, registration: &Registration) -> AccountStatus {
        AccountStatus { account, registration: registration.clone() }
    }

    /// The environment account, shown read-only.
    pub fn from_env(a: &Account, registration: Registration) -> AccountStatus {
        let view = AccountView {
            id: a.id,
            user_id: None,
            display_name: a.display_name.clone(),
            server_host: a.server_host.clone(),
            server_port: a.server_port,
            username: a.username.clone(),
            password_set: !a.password.is_empty(),
            protocol: a.protocol,
            is_active: true,
            is_default: false,
            register_interval: a.register_interval,
            last_register_time: None,
            auth_username: a.auth_username.clone(),
            domain: a.domain.clone(),
            outbound_proxy: a.outbound_proxy.clone(),
            codecs: a.codecs.clone(),
            dtmf_mode: a.dtmf_mode,
            created_at: String::new(),
            updated_at: String::new(),
            source: Source::Env,
        };
        AccountStatus { account: view, registration }
    }
}

/// What the header and the settings screen show.
#[derive(Debug, Clone, Serialize)]
pub struct DeskStatus {
    /// Why the database cannot be used, if it cannot.
    pub store_error: Option<ErrorInfo>,
    /// Why this process does not register (another instance holds the database), if so.
    pub instance_error: Option<ErrorInfo>,
    /// Why the SIP_* environment account was ignored, if it was.
    pub env_account_error: Option<ErrorInfo>,
    /// The database file.
    pub db_path: String,
    /// The account used for dialling.
    pub default_account_id: Option<i64>,
    /// Every account (the environment one first) with its registration.
    pub accounts: Vec<AccountStatus>,
}

/// UI preferences.
#[derive(Debug, Clone, Serialize)]
pub struct UiSettings {
    /// `system`, `en` or `zh-CN`.
    pub locale: String,
    /// The system's language, as `en` or `zh-CN`.
    pub system_locale: &'static str,
}

impl UiSettings {
    /// `zh-CN` when the POSIX locale (LC_ALL, LC_MESSAGES, LANG) is Chinese, else `en`.
    pub fn system_locale() -> &'static str {
        let lang = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_default();
        if lang.to_ascii_lowercase().starts_with("zh") {
            "zh-CN"
        } else {
            "en"
        }
    }
}
