//! Local SQLite store: SIP accounts (`sip_configs`), desk settings, the call history, the AI
//! agent configurations (`ai_agent_configs`), and the secrets they refer to.
//!
//! Every write runs in a transaction. Errors say what is wrong with the file (locked, not a
//! database, from a newer version) and nothing is ever deleted to "repair" it.

mod account;
mod ai_agent;
mod env_account;
mod history;
mod instance_lock;
mod migrations;
mod secrets;
mod settings;
pub use settings::LOCALES;
pub mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use account::{Account, AccountDraft, AccountView, DtmfMode, Password, Protocol, Source};
pub use ai_agent::{AiAgentConfig, AiAgentDraft, AiAgentView, AiProvider, ApiKey};
pub use env_account::{env_account, merge as merge_env_account, EnvAccountError, ENV_ACCOUNT_ID};
pub use history::{split_name_addr, CallRecord, Speaker, TranscriptLine};
pub use instance_lock::{InstanceLock, LockError};
pub use migrations::LATEST as SCHEMA_VERSION;
pub use secrets::{SecretBackend, SecretError, SecretStore};
pub use validate::FieldError;

/// How long a statement waits for another writer before reporting the database as locked.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// What can go wrong with the store. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another program holds a lock on the database for longer than we wait.
    #[error("database {0} is locked by another program")]
    Locked(PathBuf),
    /// The file exists but is not a SQLite database or cannot be read.
    #[error("database {path} cannot be read: {reason}")]
    Unreadable {
        /// Path of the file.
        path: PathBuf,
        /// SQLite's or the OS's reason.
        reason: String,
    },
    /// The file was written by a newer SipDesk.
    #[error("database {path} has schema version {found}; this SipDesk supports up to {supported}")]
    NewerSchema {
        /// Path of the file.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Newest version we know.
        supported: i64,
    },
    /// Field validation of an account failed.
    #[error("invalid account: {}", list(.0))]
    Invalid(Vec<FieldError>),
    /// No account with that id.
    #[error("no account with id {0}")]
    NotFound(i64),
    /// Field validation of an AI agent configuration failed.
    #[error("invalid AI agent configuration: {}", list(.0))]
    InvalidAiAgent(Vec<FieldError>),
    /// No AI agent configuration with that id.
    #[error("no AI agent configuration with id {0}")]
    NoAiAgent(i64),
    /// The secret store failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Sql(rusqlite::Error),
}

fn list(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl StoreError {
    /// Stable code for the UI and the JSON channel.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Locked(_) => "store_locked",
            StoreError::Unreadable { .. } => "store_unreadable",
            StoreError::NewerSchema { .. } => "store_newer_version",
            StoreError::Invalid(_) => "invalid_account",
            StoreError::NotFound(_) | StoreError::NoAiAgent(_) => "not_found",
            StoreError::InvalidAiAgent(_) => "invalid_ai_agent",
            StoreError::Secret(_) => "secret_store",
            StoreError::Sql(_) => "store_error",
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked(PathBuf::new()),
            _ => StoreError::Sql(e),
        }
    }
}

/// An open account database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    secrets: SecretStore,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it and moves any plaintext
    /// password into the secret store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with_secrets(path, SecretStore::for_db(path))
    }

    /// Like [`Store::open`] with an explicit secret store.
    pub fn open_with_secrets(path: &Path, secrets: SecretStore) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let locate = |e: rusqlite::Error| classify(path, e);
        let mut conn = Connection::open_with_flags(path, flags).map_err(locate)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(locate)?;
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(locate)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(locate)?;
        migrations::migrate(&mut conn).map_err(|e| match e {
            migrations::MigrationError::NewerSchema { found, supported } => {
                StoreError::NewerSchema { path: path.to_path_buf(), found, supported }
            }
            migrations::MigrationError::Sql(e) => classify(path, e),
        })?;
        let mut store = Store { conn, path: path.to_path_buf(), secrets };
        store.move_plaintext_passwords()?;
        store.move_plaintext_api_keys()?;
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The secret store this database uses.
    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    /// SQLite's `data_version`: changes whenever another connection commits, so a running
    /// instance notices `sipdesk account ...` edits made beside it.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(|e| classify(&self.path, e))
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }
}

/// Turns a SQLite error into a StoreError that names the file.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked(path.to_path_buf()),
        Some(
            ErrorCode::NotADatabase
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly,
        ) => StoreError::Unreadable { path: path.to_path_buf(), reason: e.to_string() },
        _ => StoreError::Sql(e),
    }
}
