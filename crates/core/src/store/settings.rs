//! Desk-wide settings kept as key/value rows (`desk_settings`): the UI language for now.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// UI language choices.
pub const LOCALES: [&str; 3] = ["system", "en", "zh-CN"];

impl Store {
    /// Reads a desk setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM desk_settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Writes a desk setting in its own transaction.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| super::classify(&self.path, e))?;
        tx.execute(
            "INSERT INTO desk_settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
        .and_then(|_| tx.commit())
        .map_err(|e| super::classify(&self.path, e))
    }
}
