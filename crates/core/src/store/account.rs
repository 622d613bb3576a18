//! SIP accounts: the `sip_configs` rows, the draft people edit, and the view shown to them.

use rusqlite::{params, types::Value, OptionalExtension, Row};
use serde::{Deserialize, Deserializer, Serialize};

use super::{secrets, validate, FieldError, Store, StoreError};

/// SIP transport of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
}

impl Protocol {
    /// The name stored in the `protocol` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
        }
    }
}

/// How an account's calls send DTMF (the `dtmf_mode` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// RFC 4733 telephone-events in the RTP stream; SIP INFO when the far end did not agree to
    /// telephone-event.
    #[default]
    Rfc4733,
    /// SIP INFO (application/dtmf-relay) always.
    Info,
}

impl DtmfMode {
    /// The name stored in the `dtmf_mode` column.
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfMode::Rfc4733 => "rfc4733",
            DtmfMode::Info => "info",
        }
    }

    /// The mode a stored or typed name means (`None` if it is neither, in any case).
    pub fn parse(value: &str) -> Option<DtmfMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "rfc4733" => Some(DtmfMode::Rfc4733),
            "info" => Some(DtmfMode::Info),
            _ => None,
        }
    }
}

/// Where an account is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A row of `sip_configs`.
    Db,
    /// The SIP_* environment variables (not stored).
    Env,
}

/// A password held in memory; its Debug output is redacted so it cannot reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }
    /// The password itself, for computing a digest response.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no password was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An account ready to register: validated fields and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Row id (0 for the environment account).
    pub id: i64,
    /// Where the account comes from.
    pub source: Source,
    /// Name shown to called parties.
    pub display_name: String,
    /// Registrar / proxy host.
    pub server_host: String,
    /// Registrar / proxy port.
    pub server_port: u16,
    /// Extension / SIP user.
    pub username: String,
    /// Digest auth user when it differs from `username` (empty: same).
    pub auth_username: String,
    /// SIP domain when it differs from `server_host` (empty: same).
    pub domain: String,
    /// Outbound proxy (empty: none).
    pub outbound_proxy: String,
    /// Transport.
    pub protocol: Protocol,
    /// Requested registration lifetime in seconds.
    pub register_interval: u32,
    /// Codec preference order, normalised (`opus,pcmu`); `None`: the default order.
    pub codecs: Option<String>,
    /// How calls send DTMF.
    pub dtmf_mode: DtmfMode,
    /// The password.
    pub password: Password,
}

impl Account {
    /// `host:port` for logs and events (IPv6 hosts in brackets).
    pub fn server(&self) -> String {
        if self.server_host.contains(':') {
            format!("[{}]:{}", self.server_host, self.server_port)
        } else {
            format!("{}:{}", self.server_host, self.server_port)
        }
    }
}

/// What a person submits to create or edit an account. Every field is text so that one place
/// ([`validate`]) parses and judges it; `None` means "default" on create and "unchanged" on edit.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountDraft {
    /// Display name.
    pub display_name: Option<String>,
    /// Server host.
    pub server_host: Option<String>,
    /// Server port (a number or its text).
    #[serde(deserialize_with = "text_or_number")]
    pub server_port: Option<String>,
    /// SIP user.
    pub username: Option<String>,
    /// New password; `None` or empty keeps the stored one on edit.
    pub password: Option<String>,
    /// `UDP` or `TCP`.
    pub protocol: Option<String>,
    /// Registration interval in seconds (a number or its text).
    #[serde(deserialize_with = "text_or_number")]
    pub register_interval: Option<String>,
    /// Auth user.
    pub auth_username: Option<String>,
    /// SIP domain.
    pub domain: Option<String>,
    /// Outbound proxy.
    pub outbound_proxy: Option<String>,
    /// Codec order, e.g. `opus,pcmu`; empty or `default` for the default order.
    pub codecs: Option<String>,
    /// `rfc4733` (the default) or `info`.
    pub dtmf_mode: Option<String>,
    /// Whether the account registers.
    pub is_active: Option<bool>,
}

impl std::fmt::Debug for AccountDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written by hand so the password can never be printed.
        f.debug_struct("AccountDraft")
            .field("server_host", &self.server_host)
            .field("server_port", &self.server_port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("protocol", &self.protocol)
            .field("codecs", &self.codecs)
            .field("dtmf_mode", &self.dtmf_mode)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// An account as listed to people and scripts: the columns, never the password.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccountView {
    /// Row id (0 for the environment account).
    pub id: i64,
    /// Owner in the organisation's user table, if any.
    pub user_id: Option<i64>,
    /// Display name.
    pub display_name: String,
    /// Server host.
    pub server_host: String,
    /// Server port.
    pub server_port: u16,
    /// SIP user.
    pub username: String,
    /// Whether a password is stored (the password itself is never listed).
    pub password_set: bool,
    /// `UDP` or `TCP`.
    pub protocol: Protocol,
    /// Whether the account registers.
    pub is_active: bool,
    /// Whether outgoing calls use this account by default.
    pub is_default: bool,
    /// Registration interval in seconds.
    pub register_interval: u32,
    /// Time of the last successful registration.
    pub last_register_time: Option<String>,
    /// Auth user (empty: the username).
    pub auth_username: String,
    /// SIP domain (empty: the server host).
    pub domain: String,
    /// Outbound proxy (empty: none).
    pub outbound_proxy: String,
    /// Codec preference order (`opus,pcmu`); `null`: the default order.
    pub codecs: Option<String>,
    /// How calls send DTMF: `rfc4733` or `info`.
    pub dtmf_mode: DtmfMode,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Where the account is defined.
    pub source: Source,
}

/// Validated fields of a draft.
struct Fields {
    display_name: String,
    server_host: String,
    server_port: u16,
    username: String,
    protocol: Protocol,
    register_interval: u32,
    auth_username: String,
    domain: String,
    outbound_proxy: String,
    codecs: Option<String>,
    dtmf_mode: DtmfMode,
    is_active: bool,
}

/// Validates `draft` over `base` (the stored account on edit), collecting every field error.
fn validate_draft(draft: &AccountDraft, base: Option<&AccountView>) -> Result<Fields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let pick = |given: &Option<String>, stored: Option<String>, default: &str| {
        given.clone().or(stored).unwrap_or_else(|| default.to_string())
    };
    let host = pick(&draft.server_host, base.map(|b| b.server_host.clone()), "");
    let port = pick(&draft.server_port, base.map(|b| b.server_port.to_string()), "5060");
    let user = pick(&draft.username, base.map(|b| b.username.clone()), "");
    let proto = pick(&draft.protocol, base.map(|b| b.protocol.as_str().to_string()), "UDP");
    let interval = pick(&draft.register_interval, base.map(|b| b.register_interval.to_string()), "3600");
    let display = pick(&draft.display_name, base.map(|b| b.display_name.clone()), "");
    let auth = pick(&draft.auth_username, base.map(|b| b.auth_username.clone()), "");
    let domain = pick(&draft.domain, base.map(|b| b.domain.clone()), "");
    let proxy = pick(&draft.outbound_proxy, base.map(|b| b.outbound_proxy.clone()), "");
    let codecs = pick(&draft.codecs, base.map(|b| b.codecs.clone().unwrap_or_default()), "");
    let dtmf = pick(&draft.dtmf_mode, base.map(|b| b.dtmf_mode.as_str().to_string()), "");
    let fields = (
        keep(&mut errors, validate::display_name(&display)),
        keep(&mut errors, validate::host("server_host", &host)),
        keep(&mut errors, validate::port(&port)),
        keep(&mut errors, validate::username(&user)),
        keep(&mut errors, validate::protocol(&proto)),
        keep(&mut errors, validate::interval(&interval)),
        keep(&mut errors, validate::auth_username(&auth)),
        keep(&mut errors, validate::domain(&domain)),
        keep(&mut errors, validate::outbound_proxy(&proxy)),
        keep(&mut errors, validate::codecs(&codecs)),
        keep(&mut errors, validate::dtmf_mode(&dtmf)),
    );
    match fields {
        (
            Some(display_name),
            Some(server_host),
            Some(server_port),
            Some(username),
            Some(p),
            Some(register_interval),
            Some(auth_username),
            Some(domain),
            Some(outbound_proxy),
            Some(codecs),
            Some(dtmf_mode),
        ) => Ok(Fields {
            display_name,
            server_host,
            server_port,
            username,
            protocol: if p == "TCP" { Protocol::Tcp } else { Protocol::Udp },
            register_interval,
            auth_username,
            domain,
            outbound_proxy,
            codecs,
            dtmf_mode,
            is_active: draft.is_active.or(base.map(|b| b.is_active)).unwrap_or(false),
        }),
        _ => Err(errors),
    }
}

fn keep<T>(errors: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

/// Builds an [`Account`] from a validated draft (used for the environment account).
pub(super) fn account_from_draft(id: i64, source: Source, draft: &AccountDraft) -> Result<Account, Vec<FieldError>> {
    let f = validate_draft(draft, None)?;
    Ok(Account {
        id,
        source,
        display_name: f.display_name,
        server_host: f.server_host,
        server_port: f.server_port,
        username: f.username,
        auth_username: f.auth_username,
        domain: f.domain,
        outbound_proxy: f.outbound_proxy,
        protocol: f.protocol,
        register_interval: f.register_interval,
        codecs: f.codecs,
        dtmf_mode: f.dtmf_mode,
        password: Password::new(draft.password.clone().unwrap_or_default()),
    })
}

const COLUMNS: &str = "id, user_id, display_name, server_host, server_port, username, password, protocol, \
    is_active, is_default, register_interval, last_register_time, auth_username, domain, outbound_proxy, \
    codecs, dtmf_mode, created_at, updated_at";

/// Reads a column that older installs may have stored with another type, as text.
fn text(row: &Row, idx: &str) -> rusqlite::Result<Option<String>> {
    Ok(match row.get::<_, Value>(idx)? {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => Some(f.to_string()),
        Value::Text(s) => Some(s),
        Value::Blob(_) => None,
    })
}

fn view_from_row(row: &Row) -> rusqlite::Result<(AccountView, String)> {
    let protocol = match text(row, "protocol")?.unwrap_or_default().to_ascii_uppercase().as_str() {
        "TCP" => Protocol::Tcp,
        _ => Protocol::Udp,
    };
    let port: i64 = row.get("server_port")?;
    let interval: i64 = row.get("register_interval")?;
    let password_ref = text(row, "password")?.unwrap_or_default();
    let view = AccountView {
        id: row.get("id")?,
        user_id: row.get::<_, Option<i64>>("user_id").unwrap_or(None),
        display_name: text(row, "display_name")?.unwrap_or_default(),
        server_host: text(row, "server_host")?.unwrap_or_default(),
        server_port: u16::try_from(port).unwrap_or(5060),
        username: text(row, "username")?.unwrap_or_default(),
        password_set: !password_ref.is_empty(),
        protocol,
        is_active: row.get::<_, i64>("is_active")? != 0,
        is_default: row.get::<_, i64>("is_default")? != 0,
        register_interval: u32::try_from(interval).unwrap_or(3600),
        last_register_time: text(row, "last_register_time")?,
        auth_username: text(row, "auth_username")?.unwrap_or_default(),
        domain: text(row, "domain")?.unwrap_or_default(),
        outbound_proxy: text(row, "outbound_proxy")?.unwrap_or_default(),
        codecs: text(row, "codecs")?.filter(|c| !c.trim().is_empty()),
        // A value the store would not write (a hand edit) reads as the default.
        dtmf_mode: text(row, "dtmf_mode")?.as_deref().and_then(DtmfMode::parse).unwrap_or_default(),
        created_at: text(row, "created_at")?.unwrap_or_default(),
        updated_at: text(row, "updated_at")?.unwrap_or_default(),
        source: super::Source::Db,
    };
    Ok((view, password_ref))
}

impl Store {
    /// Every stored account, by id.
    pub fn list_accounts(&self) -> Result<Vec<AccountView>, StoreError> {
        Ok(self.rows("")?.into_iter().map(|(v, _)| v).collect())
    }

    /// One stored account.
    pub fn account(&self, id: i64) -> Result<AccountView, StoreError> {
        self.row(id).map(|(v, _)| v)
    }

    /// Every active account with its password read from the secret store.
    ///
    /// An account whose secret cannot be read is still returned (with an empty password) so it
    /// shows up and fails registration with a clear reason rather than vanishing.
    pub fn active_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = self.rows("WHERE is_active = 1")?;
        Ok(rows
            .into_iter()
            .map(|(v, reference)| {
                let password = match reference.as_str() {
                    "" => Password::default(),
                    r => self.secrets.get(r).map(Password::new).unwrap_or_else(|e| {
                        tracing::warn!(account_id = v.id, "password of account unavailable: {e}");
                        Password::default()
                    }),
                };
                Account {
                    id: v.id,
                    source: v.source,
                    display_name: v.display_name,
                    server_host: v.server_host,
                    server_port: v.server_port,
                    username: v.username,
                    auth_username: v.auth_username,
                    domain: v.domain,
                    outbound_proxy: v.outbound_proxy,
                    protocol: v.protocol,
                    register_interval: v.register_interval,
                    codecs: v.codecs,
                    dtmf_mode: v.dtmf_mode,
                    password,
                }
            })
            .collect())
    }

    /// Id of the account used for dialling: the one marked default, else the first active one.
    pub fn default_account_id(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT id FROM sip_configs ORDER BY is_default DESC, is_active DESC, id LIMIT 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Creates an account and returns its id. The first account becomes the default.
    pub fn create_account(&mut self, draft: &AccountDraft) -> Result<i64, StoreError> {
        let f = validate_draft(draft, None).map_err(StoreError::Invalid)?;
        let password = draft.password.as_deref().unwrap_or_default();
        if password.is_empty() {
            return Err(StoreError::Invalid(vec![FieldError { field: "password", code: "password_required" }]));
        }
        let reference = self.secrets.put(password)?;
        let result = (|| {
            let tx = self.conn.transaction()?;
            let no_default: bool =
                tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM sip_configs WHERE is_default = 1)", [], |r| r.get(0))?;
            tx.execute(
                "INSERT INTO sip_configs (display_name, server_host, server_port, username, password, protocol,
                    is_active, is_default, register_interval, auth_username, domain, outbound_proxy, codecs,
                    dtmf_mode)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    f.display_name,
                    f.server_host,
                    f.server_port,
                    f.username,
                    reference,
                    f.protocol.as_str(),
                    f.is_active,
                    no_default,
                    f.register_interval,
                    f.auth_username,
                    f.domain,
                    f.outbound_proxy,
                    f.codecs,
                    f.dtmf_mode.as_str()
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })();
        result.map_err(|e: rusqlite::Error| {
            let _ = self.secrets.delete(&reference);
            self.err(e)
        })
    }

    /// Applies an edit. A missing or empty password keeps the stored one.
    pub fn update_account(&mut self, id: i64, draft: &AccountDraft) -> Result<(), StoreError> {
        let (base, old_ref) = self.row(id)?;
        let f = validate_draft(draft, Some(&base)).map_err(StoreError::Invalid)?;
        let new_ref = match draft.password.as_deref() {
            Some(p) if !p.is_empty() => Some(self.secrets.put(p)?),
            _ => None,
        };
        let result = (|| {
            let tx = self.conn.transaction()?;
            tx.execute(
                "UPDATE sip_configs SET display_name = ?2, server_host = ?3, server_port = ?4, username = ?5,
                    password = COALESCE(?6, password), protocol = ?7, is_active = ?8, register_interval = ?9,
                    auth_username = ?10, domain = ?11, outbound_proxy = ?12, codecs = ?13,
                    dtmf_mode = ?14,
                    updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
                 WHERE id = ?1",
                params![
                    id,
                    f.display_name,
                    f.server_host,
                    f.server_port,
                    f.username,
                    new_ref,
                    f.protocol.as_str(),
                    f.is_active,
                    f.register_interval,
                    f.auth_username,
                    f.domain,
                    f.outbound_proxy,
                    f.codecs,
                    f.dtmf_mode.as_str()
                ],
            )?;
            tx.commit()
        })();
        match (result, new_ref) {
            (Ok(()), Some(_)) => self.forget_secret(&old_ref),
            (Ok(()), None) => Ok(()),
            (Err(e), new_ref) => {
                if let Some(r) = new_ref {
                    let _ = self.secrets.delete(&r);
                }
                Err(self.err(e))
            }
        }
    }

    /// Removes an account and its secret. If it was the default, the next account becomes it.
    pub fn delete_account(&mut self, id: i64) -> Result<(), StoreError> {
        let (_, reference) = self.row(id)?;
        let tx = self.conn.transaction().map_err(|e| classify_tx(&self.path, e))?;
        let run = || -> rusqlite::Result<()> {
            tx.execute("DELETE FROM sip_configs WHERE id = ?1", [id])?;
            tx.execute(
                "UPDATE sip_configs SET is_default = 1
                  WHERE id = (SELECT id FROM sip_configs ORDER BY is_active DESC, id LIMIT 1)
                    AND NOT EXISTS (SELECT 1 FROM sip_configs WHERE is_default = 1)",
                [],
            )?;
            Ok(())
        };
        run().and_then(|_| tx.commit()).map_err(|e| classify_tx(&self.path, e))?;
        self.forget_secret(&reference)
    }

    /// Turns registration of an account on or off.
    pub fn set_active(&mut self, id: i64, active: bool) -> Result<(), StoreError> {
        self.write_one(
            id,
            "UPDATE sip_configs SET is_active = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?1",
            active,
        )
    }

    /// Makes one account the default for dialling.
    pub fn set_default(&mut self, id: i64) -> Result<(), StoreError> {
        self.row(id)?;
        let tx = self.conn.transaction().map_err(|e| classify_tx(&self.path, e))?;
        tx.execute("UPDATE sip_configs SET is_default = (id = ?1)", [id])
            .and_then(|_| tx.commit())
            .map_err(|e| classify_tx(&self.path, e))
    }

    /// Records a successful registration (UTC, ISO 8601).
    pub fn record_registered(&mut self, id: i64) -> Result<(), StoreError> {
        self.write_one(
            id,
            "UPDATE sip_configs SET last_register_time = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?1 AND ?2",
            true,
        )
    }

    fn write_one(&mut self, id: i64, sql: &str, flag: bool) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| classify_tx(&self.path, e))?;
        let n = tx.execute(sql, params![id, flag]).map_err(|e| classify_tx(&self.path, e))?;
        if n == 0 {
            return Err(StoreError::NotFound(id));
        }
        tx.commit().map_err(|e| classify_tx(&self.path, e))
    }

    /// Moves plaintext passwords left by older installs into the secret store, one row per
    /// transaction, so the column only ever holds references.
    pub(super) fn move_plaintext_passwords(&mut self) -> Result<(), StoreError> {
        let rows = self.rows("")?;
        for (view, value) in rows.into_iter().filter(|(_, p)| !p.is_empty() && !secrets::is_reference(p)) {
            let reference = self.secrets.put(&value)?;
            let tx = self.conn.transaction().map_err(|e| super::classify(&self.path, e))?;
            let moved = tx
                .execute(
                    "UPDATE sip_configs SET password = ?2 WHERE id = ?1 AND password = ?3",
                    params![view.id, reference, value],
                )
                .and_then(|n| tx.commit().map(|_| n));
            match moved {
                Ok(1) => tracing::info!(account_id = view.id, "moved a plaintext password into the secret store"),
                Ok(_) => self.forget_secret(&reference)?,
                Err(e) => {
                    let _ = self.secrets.delete(&reference);
                    return Err(self.err(e));
                }
            }
        }
        Ok(())
    }

    fn forget_secret(&self, reference: &str) -> Result<(), StoreError> {
        // The row no longer points at it, so a failure here leaves only an orphan, not lost data.
        if let Err(e) = self.secrets.delete(reference) {
            tracing::warn!("could not delete an unused secret: {e}");
        }
        Ok(())
    }

    fn rows(&self, filter: &str) -> Result<Vec<(AccountView, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM sip_configs {filter} ORDER BY id"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], view_from_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn row(&self, id: i64) -> Result<(AccountView, String), StoreError> {
        self.conn
            .query_row(&format!("SELECT {COLUMNS} FROM sip_configs WHERE id = ?1"), [id], view_from_row)
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound(id))
    }
}

fn classify_tx(path: &std::path::Path, e: rusqlite::Error) -> StoreError {
    super::classify(path, e)
}
