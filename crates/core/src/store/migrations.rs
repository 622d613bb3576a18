//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Version 1 is the organisation's original `sip_configs` table (created only if absent, so an
//! existing database keeps its rows); later versions add to it (v2 desk fields and settings, v3
//! call history, v4 the per-account codec order, v5 the per-account DTMF mode, v6 the AI agent
//! configurations and each call's transcript and summary). Each step runs in its own
//! transaction together with the version bump. A database from a newer SipDesk is refused
//! untouched rather than guessed at.

use rusqlite::{Connection, Transaction};

/// The schema version this build writes.
pub const LATEST: i64 = 6;

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The file was written by a newer SipDesk.
    #[error("database schema version {found} is newer than this SipDesk supports ({supported})")]
    NewerSchema {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// SQLite refused a statement.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Brings the schema up to [`LATEST`].
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    migrate_to(conn, LATEST)
}

/// Brings the schema up to `target` (tests build older versions with it).
pub(super) fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), MigrationError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > LATEST {
        return Err(MigrationError::NewerSchema { found, supported: LATEST });
    }
    for version in (found + 1)..=target.min(LATEST) {
        let tx = conn.transaction()?;
        match version {
            1 => v1_base(&tx)?,
            2 => v2_desk_fields(&tx)?,
            3 => v3_call_history(&tx)?,
            4 => v4_account_codecs(&tx)?,
            5 => v5_account_dtmf_mode(&tx)?,
            6 => v6_ai_agents_and_transcripts(&tx)?,
            _ => unreachable!("every version up to LATEST has a step"),
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

/// The table as the organisation's backend already had it.
fn v1_base(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS sip_configs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER,
            server_host TEXT NOT NULL,
            server_port INTEGER NOT NULL DEFAULT 5060,
            username TEXT NOT NULL,
            password TEXT NOT NULL DEFAULT '',
            protocol TEXT NOT NULL DEFAULT 'UDP',
            is_active INTEGER NOT NULL DEFAULT 0,
            last_register_time TEXT,
            register_interval INTEGER NOT NULL DEFAULT 3600,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );",
    )
}

/// Desk fields: display name, auth user, domain, outbound proxy, default flag; desk settings.
fn v2_desk_fields(tx: &Transaction) -> rusqlite::Result<()> {
    for (column, decl) in [
        ("display_name", "TEXT NOT NULL DEFAULT ''"),
        ("auth_username", "TEXT NOT NULL DEFAULT ''"),
        ("domain", "TEXT NOT NULL DEFAULT ''"),
        ("outbound_proxy", "TEXT NOT NULL DEFAULT ''"),
        ("is_default", "INTEGER NOT NULL DEFAULT 0"),
    ] {
        if !has_column(tx, "sip_configs", column)? {
            tx.execute_batch(&format!("ALTER TABLE sip_configs ADD COLUMN {column} {decl};"))?;
        }
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS desk_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         UPDATE sip_configs SET is_default = 1
          WHERE id = (SELECT id FROM sip_configs WHERE is_active = 1 ORDER BY id LIMIT 1)
            AND NOT EXISTS (SELECT 1 FROM sip_configs WHERE is_default = 1);",
    )
}

fn has_column(tx: &Transaction, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?.collect::<Result<Vec<_>, _>>()?;
    Ok(names.iter().any(|n| n == column))
}

/// Call history: one row per call, created when the call starts (so a crash leaves it marked
/// unfinished, never missing or doubled) and completed when it ends.
fn v3_call_history(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS call_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            call_id TEXT NOT NULL UNIQUE,
            account_id INTEGER,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            remote TEXT NOT NULL,
            display_name TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            answered_at TEXT,
            ended_at TEXT,
            duration_s INTEGER,
            end_reason TEXT,
            codec TEXT
        );
        CREATE INDEX IF NOT EXISTS call_history_started ON call_history (started_at DESC);",
    )
}

/// The codec order of an account: a comma list of names such as `opus,pcmu,pcma`; NULL (every
/// existing row) means the default order.
fn v4_account_codecs(tx: &Transaction) -> rusqlite::Result<()> {
    if !has_column(tx, "sip_configs", "codecs")? {
        tx.execute_batch("ALTER TABLE sip_configs ADD COLUMN codecs TEXT;")?;
    }
    Ok(())
}

/// How an account's calls send DTMF: `rfc4733` (every existing row: telephone-events, SIP INFO
/// when the far end did not agree to them) or `info`.
fn v5_account_dtmf_mode(tx: &Transaction) -> rusqlite::Result<()> {
    if !has_column(tx, "sip_configs", "dtmf_mode")? {
        tx.execute_batch("ALTER TABLE sip_configs ADD COLUMN dtmf_mode TEXT NOT NULL DEFAULT 'rfc4733';")?;
    }
    Ok(())
}

/// The AI voice agents a call can be handed to, one row per provider: `local` (offline, the
/// default, enabled), `openai` and `doubao` (disabled until an admin enables them, with their
/// public endpoints). `api_key` holds only a secret store reference, like `sip_configs.password`.
/// Each call's `transcript` (a JSON array of `{speaker, text, ts_ms}`) and `summary` (what the AI
/// collected) join the call history, NULL for every existing call.
fn v6_ai_agents_and_transcripts(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS ai_agent_configs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            provider TEXT NOT NULL CHECK (provider IN ('local', 'doubao', 'openai')),
            enabled INTEGER NOT NULL DEFAULT 0,
            endpoint TEXT NOT NULL DEFAULT '',
            app_id TEXT NOT NULL DEFAULT '',
            api_key TEXT NOT NULL DEFAULT '',
            voice TEXT NOT NULL DEFAULT '',
            instructions TEXT NOT NULL DEFAULT '',
            greeting TEXT NOT NULL DEFAULT '',
            language TEXT NOT NULL DEFAULT '',
            is_default INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );
        CREATE UNIQUE INDEX IF NOT EXISTS ai_agent_configs_provider ON ai_agent_configs (provider);
        INSERT OR IGNORE INTO ai_agent_configs (provider, enabled, endpoint, voice, language, is_default)
            VALUES ('local', 1, '', 'slt', 'en', 1);
        INSERT OR IGNORE INTO ai_agent_configs (provider, enabled, endpoint, voice, language, is_default)
            VALUES ('openai', 0, 'wss://api.openai.com/v1/realtime', 'alloy', '', 0);
        INSERT OR IGNORE INTO ai_agent_configs (provider, enabled, endpoint, voice, language, is_default)
            VALUES ('doubao', 0, 'wss://openspeech.bytedance.com/api/v3/realtime/dialogue',
                    'zh_female_vv_jupiter_bigtts', 'zh-CN', 0);",
    )?;
    for column in ["transcript", "summary"] {
        if !has_column(tx, "call_history", column)? {
            tx.execute_batch(&format!("ALTER TABLE call_history ADD COLUMN {column} TEXT;"))?;
        }
    }
    Ok(())
}
